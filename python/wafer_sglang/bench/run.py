"""`bench sweep` and `bench single`: run, measure, and write what was measured (Ctrl-C included)."""

from __future__ import annotations

import asyncio
import platform
import signal
import statistics
import sys
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import aiohttp

from wafer_sglang import __version__
from wafer_sglang.bench import prom, report
from wafer_sglang.bench.client import Endpoint, Record, make_client, stream
from wafer_sglang.bench.load import Step, run_step
from wafer_sglang.bench.prompts import PromptBuilder, SweepPrompts, load_tokenizer, tokenizer_hash, unique_prompt
from wafer_sglang.bench.stats import AGGREGATE_DEFINITION, Slo, add_costs, knee, step_stats


@dataclass
class SweepOptions:
    endpoint: Endpoint
    tokenizer: str
    out: Path
    input_len: int = 20000
    output_len: int = 1000
    cache_hit: float = 0.6
    prefix_groups: int = 8
    rates: list[float] = field(default_factory=lambda: [0.5, 1, 1.5, 2, 2.25, 2.4])
    step_seconds: float = 300.0
    warmup_seconds: float = 30.0
    drain_seconds: float = 300.0
    arrival: str = "poisson"
    seed: int = 0
    keepalive: bool = False
    slo: Slo = field(default_factory=Slo)
    price: tuple[float, str] | None = None
    gpus: int = 8


async def server_info(client: aiohttp.ClientSession, url: str) -> dict:
    """Whatever the server says about itself (sglang, vLLM, llama.cpp endpoints), best effort."""
    info = {}
    for path in ("/v1/models", "/get_server_info", "/version", "/props"):
        try:
            async with client.get(url.rstrip("/") + path, timeout=aiohttp.ClientTimeout(total=10)) as response:
                if response.status != 200 or not response.content_type.endswith("json"):
                    continue
                body = await response.json()
        except (aiohttp.ClientError, TimeoutError, OSError, ValueError):
            continue
        info[path] = {k: body[k] for k in list(body)[:20]} if isinstance(body, dict) else body
    return info


def _metadata(options, server: dict, tokenizer, started: str, command: str) -> dict:
    return {
        "command": command,
        "started": started,
        "finished": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "client": {"wafer_sglang": __version__, "aiohttp": aiohttp.__version__, "python": platform.python_version(),
                   "host": platform.node()},
        "server": {"url": options.endpoint.url, "model": options.endpoint.model, "api": options.endpoint.api,
                   "force_length": options.endpoint.force_length, "info": server},
        "tokenizer": {"spec": options.tokenizer, "sha256_16": tokenizer_hash(tokenizer)},
        "seed": options.seed,
    }


class _Live:
    """A live status line per step: a rich display on a terminal, plain lines otherwise."""

    def __init__(self):
        self.tty = sys.stderr.isatty()
        self.last = 0.0
        self.live = None

    def __enter__(self):
        if self.tty:
            from rich.console import Console
            from rich.live import Live

            self.live = Live(console=Console(stderr=True), refresh_per_second=4, transient=False)
            self.live.__enter__()
        return self

    def __exit__(self, *exc):
        if self.live:
            self.live.__exit__(*exc)

    def update(self, rate: float, records: list[Record], tasks: list, started: float) -> None:
        now = time.perf_counter()
        if not self.tty and now - self.last < 10:
            return
        self.last = now
        done = sum(t.done() for t in tasks)
        failed = sum(1 for r, t in zip(records, tasks) if t.done() and not r.ok)
        line = (f"rate {rate:g} rps | {now - started:6.1f} s | sent {len(records)} | done {done} | "
                f"in flight {len(tasks) - done} | failed {failed}")
        if self.live:
            self.live.update(line)
        else:
            print(line, file=sys.stderr, flush=True)


async def _prime(client, endpoint: Endpoint, prompts: SweepPrompts, rate: float) -> list[Record]:
    """One request per prefix group, sequentially, so the measured requests find them cached."""
    primed = []
    for group in range(len(prompts.prefixes)):
        prompt = prompts.primer(group)
        record = Record(index=-1 - group, step=rate, phase="prime", intended_s=0.0,
                        expected_prompt_tokens=prompt.tokens, requested_output=1)
        primed.append(await stream(client, endpoint, record, prompt.text, time.perf_counter()))
    return primed


def _install_stop() -> asyncio.Event:
    stop = asyncio.Event()
    try:
        asyncio.get_running_loop().add_signal_handler(signal.SIGINT, stop.set)
    except (NotImplementedError, RuntimeError):
        pass
    return stop


async def sweep(options: SweepOptions, command: str) -> dict:
    started = datetime.now(timezone.utc).isoformat(timespec="seconds")
    tokenizer = load_tokenizer(options.tokenizer)
    builder = PromptBuilder(tokenizer, options.seed)
    run_nonce = f"{time.time_ns()}-{options.seed}"
    prompts = SweepPrompts(builder, options.input_len, options.cache_hit, options.prefix_groups, run_nonce)
    stop = _install_stop()
    window = options.step_seconds - options.warmup_seconds
    all_records: list[Record] = []
    steps: list[dict] = []
    async with make_client(options.keepalive) as client:
        server = await server_info(client, options.endpoint.url)
        with _Live() as live:
            for number, rate in enumerate(options.rates):
                if stop.is_set():
                    break
                all_records += await _prime(client, options.endpoint, prompts, rate)
                counters = {}
                base_index = len(all_records)

                def make_request(index: int, phase: str, offset: float, rate=rate, base=base_index):
                    prompt = prompts.make(base + index)
                    return Record(index=base + index, step=rate, phase=phase, intended_s=offset,
                                  expected_prompt_tokens=prompt.tokens, requested_output=options.output_len), prompt.text

                step = Step(rate, options.step_seconds, options.warmup_seconds, options.drain_seconds, options.arrival, options.seed + number)
                began = time.perf_counter()

                def window_start(counters=counters):
                    counters["before"] = asyncio.create_task(prom.scrape(client, options.endpoint.url))

                records, _ = await run_step(client, options.endpoint, step, make_request, stop,
                                            lambda r, t, rate=rate: live.update(rate, r, t, began), window_start)
                before = await counters["before"] if "before" in counters else None
                after = await prom.scrape(client, options.endpoint.url)
                server_hit = after.hit_rate_since(before) if before and after else None
                stats = step_stats(records, rate, window, options.cache_hit, server_hit, options.output_len)
                stats["interrupted"] = stop.is_set()
                if options.price:
                    add_costs(stats, options.price[0], options.gpus)
                steps.append(stats)
                all_records += records
                summary = _summary(options, server, tokenizer, started, command, steps)
                report.write(options.out, summary, all_records, steps, cost=options.price is not None)
    summary = _summary(options, server, tokenizer, started, command, steps)
    report.write(options.out, summary, all_records, steps, cost=options.price is not None)
    return summary


def _summary(options: SweepOptions, server, tokenizer, started, command, steps) -> dict:
    summary = {
        "run": _metadata(options, server, tokenizer, started, command),
        "workload": {"input_len": options.input_len, "output_len": options.output_len, "cache_hit_target": options.cache_hit,
                     "prefix_groups": options.prefix_groups, "arrival": options.arrival, "step_seconds": options.step_seconds,
                     "warmup_seconds": options.warmup_seconds, "drain_seconds": options.drain_seconds},
        "definitions": {"aggregate_tok_s_node": AGGREGATE_DEFINITION,
                        "cache_hit_server": "delta of the server's cached/prompt token counters over the measured window"},
        "steps": steps,
        "knee": knee(steps, options.slo),
    }
    if options.price:
        summary["cost"] = {"usd_per_gpu_hour": options.price[0], "source": options.price[1], "gpus_per_node": options.gpus}
    return summary


@dataclass
class SingleOptions:
    endpoint: Endpoint
    tokenizer: str
    out: Path
    input_len: int = 10000
    output_len: int = 1500
    runs: int = 5
    seed: int = 0


async def single(options: SingleOptions, command: str) -> dict:
    """Artificial Analysis single stream: unique prompts, one at a time; output speed = tokens
    per second after the first chunk (TTFT excluded), median over runs."""
    started = datetime.now(timezone.utc).isoformat(timespec="seconds")
    tokenizer = load_tokenizer(options.tokenizer)
    builder = PromptBuilder(tokenizer, options.seed)
    run_nonce = f"{time.time_ns()}-{options.seed}"
    stop = _install_stop()
    records = []
    async with make_client(False) as client:
        server = await server_info(client, options.endpoint.url)
        for index in range(options.runs):
            if stop.is_set():
                break
            prompt = unique_prompt(builder, options.input_len, f"{run_nonce}/single/{index}")
            record = Record(index=index, step=0.0, phase="measure", intended_s=0.0,
                            expected_prompt_tokens=prompt.tokens, requested_output=options.output_len)
            records.append(await stream(client, options.endpoint, record, prompt.text, time.perf_counter()))
            print(f"run {index + 1}/{options.runs}: {_speed(record) or 0:.1f} tok/s, TTFT {record.ttft_s or 0:.2f} s"
                  + (f" ({record.error})" if record.error else ""), file=sys.stderr, flush=True)
    ok = [r for r in records if r.ok]
    speeds = [s for r in ok if (s := _speed(r)) is not None]
    summary = {
        "run": _metadata(options, server, tokenizer, started, command),
        "workload": {"input_len": options.input_len, "output_len": options.output_len, "runs": options.runs},
        "definitions": {"output_speed_tok_s": "(completion tokens - 1) / (end - first chunk): tokens per second after the first chunk, TTFT excluded (Artificial Analysis)"},
        "runs": [{"index": r.index, "output_speed_tok_s": _speed(r), "ttft_s": r.ttft_s, "e2e_s": r.e2e_s,
                  "completion_tokens": r.completion_tokens, "prompt_tokens": r.prompt_tokens, "error": r.error} for r in records],
        "median_output_speed_tok_s": statistics.median(speeds) if speeds else None,
        "median_ttft_s": statistics.median([r.ttft_s for r in ok]) if ok else None,
        "success_rate": len(ok) / len(records) if records else None,
        "interrupted": stop.is_set(),
    }
    import json

    from wafer_sglang.fsutil import atomic_write_text

    options.out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(options.out / "summary.json", json.dumps(summary, indent=2) + "\n")
    atomic_write_text(options.out / "requests.jsonl", "".join(json.dumps(r.as_dict()) + "\n" for r in records))
    table = ("| Input / output | Runs | Output speed (median) | TTFT (median) | Success |\n|---|---|---|---|---|\n"
             f"| {options.input_len} / {options.output_len} | {len(records)} | "
             f"{summary['median_output_speed_tok_s'] or 0:.1f} tok/s | {summary['median_ttft_s'] or 0:.2f} s | "
             f"{(summary['success_rate'] or 0) * 100:.0f}% |\n")
    atomic_write_text(options.out / "table.md", table)
    return summary


def _speed(record: Record) -> float | None:
    if not record.ok or not record.completion_tokens or record.completion_tokens < 2:
        return None
    decode = record.e2e_s - record.ttft_s
    return (record.completion_tokens - 1) / decode if decode > 0 else None
