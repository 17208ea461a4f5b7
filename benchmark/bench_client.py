"""The benchmark client's own overhead, against a local endpoint that streams tokens at a fixed rate.

Targets (serving-benchmark issue), at 26k tok/s aggregate (10x the seed workload's peak):
arrival lateness p99 < 2 ms, client CPU < 5% of one core per 1k tok/s. The endpoint runs in
its own process, so the CPU figure is the client's alone. Run with the test venv:

    make benchmark B=bench_client ARGS="--tok-s 26000 --seconds 20"   # the defaults
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import resource
import socket
import sys
import tempfile
import time
from pathlib import Path

TICK_S = 0.01  # the endpoint flushes each stream's due tokens every 10 ms (one SSE event per token)


async def _handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, stream_rate: float) -> None:
    try:
        await _respond(reader, writer, stream_rate)
    except (ConnectionError, asyncio.IncompleteReadError):
        writer.close()  # the client went away


async def _respond(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, stream_rate: float) -> None:
    head = await reader.readuntil(b"\r\n\r\n")
    length = next(
        (int(line.split(b":")[1]) for line in head.split(b"\r\n") if line.lower().startswith(b"content-length")), 0
    )
    body = json.loads(await reader.readexactly(length)) if length else {}
    if head.startswith(b"GET /v1/models"):
        models = json.dumps({"object": "list", "data": [{"id": "fake"}]}).encode()
        writer.write(
            b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n"
            b"Connection: close\r\n\r\n%s" % (len(models), models)
        )
        await writer.drain()
        writer.close()
        return
    if not head.startswith(b"POST /v1/completions"):
        writer.write(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
        await writer.drain()
        writer.close()
        return
    tokens = int(body.get("max_tokens", 16))
    writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nConnection: close\r\n\r\n")
    chunk = b'data: {"choices":[{"text":" tok","index":0,"finish_reason":null}]}\n\n'
    start, sent = time.perf_counter(), 0
    while sent < tokens:
        due = min(tokens, int((time.perf_counter() - start) * stream_rate) + 1)
        if due > sent:
            writer.write(chunk * (due - sent))
            sent = due
            await writer.drain()
        await asyncio.sleep(TICK_S)
    usage = {"prompt_tokens": 64, "completion_tokens": tokens, "prompt_tokens_details": {"cached_tokens": 0}}
    writer.write(b'data: {"choices":[{"text":"","index":0,"finish_reason":"length"}]}\n\n')
    writer.write(("data: " + json.dumps({"choices": [], "usage": usage}) + "\n\ndata: [DONE]\n\n").encode())
    await writer.drain()
    writer.close()


def _serve(port: int, stream_rate: float) -> None:
    async def main():
        server = await asyncio.start_server(lambda r, w: _handle(r, w, stream_rate), "127.0.0.1", port, backlog=1024)
        async with server:
            await server.serve_forever()

    asyncio.run(main())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tok-s", type=float, default=26000, help="aggregate tokens/s to stream")
    parser.add_argument("--stream-rate", type=float, default=500, help="tokens/s per stream")
    parser.add_argument("--output-len", type=int, default=1000)
    parser.add_argument("--seconds", type=float, default=20)
    args = parser.parse_args()
    from support.tiny_llm import free_port, make_model

    from wafer_sglang.bench.client import Endpoint
    from wafer_sglang.bench.run import SweepOptions, sweep

    port = free_port()
    endpoint_process = multiprocessing.Process(target=_serve, args=(port, args.stream_rate), daemon=True)
    endpoint_process.start()
    for _ in range(100):
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                break
        time.sleep(0.05)
    rate = args.tok_s / args.output_len
    with tempfile.TemporaryDirectory() as tmp:
        model = make_model(Path(tmp) / "tokenizer")
        options = SweepOptions(
            endpoint=Endpoint(f"http://127.0.0.1:{port}", "fake", force_length="none"),
            tokenizer=str(model),
            out=Path(tmp) / "out",
            input_len=64,
            output_len=args.output_len,
            cache_hit=0.0,
            prefix_groups=1,
            loads=[rate],
            step_seconds=args.seconds,
            warmup_seconds=0.0,
            drain_seconds=30,
            seed=0,
        )
        before, wall = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
        summary = asyncio.run(sweep(options, "bench_client.py"))
        after, wall = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter() - wall
    endpoint_process.terminate()
    step = summary.steps[0]
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    streamed = step.output_tok_s
    core_share = cpu / wall
    per_1k = core_share / (streamed / 1000) if streamed else float("inf")
    lateness_ms = step.send_lateness_p99_s * 1000
    print(
        f"streamed {streamed:,.0f} tok/s over {step.requests} requests ({rate:.1f} rps, {args.stream_rate:g} tok/s "
        "per stream)"
    )
    print(f"arrival lateness p99: {lateness_ms:.2f} ms  (target < 2 ms, {lateness_ms / 2:.2f} of target)")
    print(
        f"client CPU: {core_share * 100:.1f}% of one core = {per_1k * 100:.2f}% per 1k tok/s  "
        f"(target < 5%, {per_1k / 0.05:.2f} of target)"
    )
    ok = lateness_ms < 2 and per_1k < 0.05 and step["success_rate"] == 1
    print("PASS" if ok else "FAIL: over target")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
