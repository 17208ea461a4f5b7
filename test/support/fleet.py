"""A fleet on 127.0.0.1: real llama.cpp workers (xllamacpp; a host prompt cache of a chosen size,
none by default: a prefix then stays cached only while a slot holds it) behind the real
sglang-router, started with the router flags the cluster plan gives (or others). Used by
test_cluster.py and benchmark/router_fleet.py."""

from __future__ import annotations

import json
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from support.tiny_llm import LlamaServer, free_port


class Fleet:
    def __init__(
        self,
        model: Path,
        workers: int,
        slots: int,
        router_args: list[str],
        log: Path,
        cache_ram_mib: int = 0,
        router: str = "sglang_router",
        running: list | None = None,
    ):
        """``cache_ram_mib``: each worker's host prompt cache (0: none, a prefix stays cached only
        while a slot holds it; 2 holds about two 1,500-token prompts of the tiny model).
        ``router``: the router's module, sglang_router (0.3.2) or smg. ``running``: workers
        already up (sglang servers, with a ``url``) to route to instead; they are not stopped."""
        self.model = model
        self.owns_workers = running is None
        self.workers = running or [LlamaServer(model, slots=slots, cache_ram_mib=cache_ram_mib) for _ in range(workers)]
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.router = subprocess.Popen(
            [
                sys.executable,
                "-m",
                f"{router}.launch_router",
                "--host",
                "127.0.0.1",
                "--port",
                str(self.port),
                "--prometheus-host",
                "127.0.0.1",
                "--prometheus-port",
                str(free_port()),
                "--worker-urls",
                *[w.url for w in self.workers],
                *router_args,
            ],
            stdout=log.open("w"),
            stderr=subprocess.STDOUT,
        )
        self._wait()

    def _wait(self) -> None:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(self.url + "/v1/models", timeout=2) as response:
                    if json.load(response).get("data"):
                        return
            except (OSError, ValueError):
                pass
            time.sleep(0.3)
        raise RuntimeError("the router did not list a model in 60 s")

    def sweep(self, out: Path, *extra: str) -> dict:
        """`wafer-sglang bench sweep` through the router, counting every worker's /metrics."""
        argv = [
            sys.executable,
            "-m",
            "wafer_sglang",
            "bench",
            "sweep",
            "--url",
            self.url,
            "--tokenizer",
            str(self.model),
            "--out",
            str(out),
            "--fail-after",
            "1000",
            *extra,
        ]
        for worker in self.workers:
            argv += ["--metrics-url", worker.url]
        proc = subprocess.run(argv, capture_output=True, text=True)
        if not (out / "summary.json").is_file():
            raise RuntimeError(f"bench failed: {proc.stderr[-2000:]}")
        return json.loads((out / "summary.json").read_text())

    def stop(self) -> None:
        self.router.kill()
        self.router.wait(timeout=10)
        for worker in self.workers if self.owns_workers else []:
            worker.kill()


def per_worker(step: dict, fleet: Fleet, output_len: int) -> list[dict]:
    """Requests (generated tokens / output length) and hit rate of each worker over the window."""
    rows = []
    for worker in fleet.workers:
        share = (step.get("per_server") or {}).get(worker.url) or {}
        generated = share.get("generated_tokens")
        rows.append(
            {
                "worker": worker.url,
                "requests": round(generated / output_len) if generated is not None else None,
                "cache_hit": share.get("cache_hit"),
            }
        )
    return rows


# A fleet that can show prefix affinity (../shared/notes/router.md): each worker holds about two
# prefixes (2 slots, a 2 MiB host prompt cache), there are more groups than one worker holds and
# fewer than the fleet holds.
AFFINITY_FLEET = {"workers": 3, "slots": 2, "cache_ram_mib": 2}
AFFINITY_WORKLOAD = {"groups": 6, "rate": 2.0, "input_len": 1500, "output_len": 100, "seconds": 24}
LOADED_TTFT_S = 1.0  # median TTFT above this: the machine, not the workload, makes the load differences


def affinity_run(
    model: Path,
    tmp: Path,
    router_args: list[str],
    seed: int,
    primers: str = "together",
    seconds: float | None = None,
    router: str = "sglang_router",
    running: list | None = None,
    workload: dict | None = None,
) -> dict:
    """One step of the shared-prefix workload through the real router: the summed server hit
    rate, each worker's requests and hit, and whether the machine was too loaded to judge."""
    w = {**AFFINITY_WORKLOAD, **(workload or {}), **({"seconds": seconds} if seconds else {})}
    fleet = Fleet(
        model,
        AFFINITY_FLEET["workers"],
        AFFINITY_FLEET["slots"],
        router_args,
        tmp / f"router-{seed}.log",
        cache_ram_mib=AFFINITY_FLEET["cache_ram_mib"],
        router=router,
        running=running,
    )
    try:
        step = fleet.sweep(
            tmp / f"run-{router}-{'-'.join(router_args[:2])}-{seed}-{primers}".replace("--", ""),
            *("--input-len", str(w["input_len"]), "--output-len", str(w["output_len"]), "--cache-hit", "0.6"),
            *("--prefix-groups", str(w["groups"]), "--rates", str(w["rate"]), "--seed", str(seed)),
            *("--step-seconds", str(w["seconds"]), "--warmup-seconds", "0", "--drain-seconds", "60"),
            *("--primers", primers),
        )["steps"][0]
    finally:
        fleet.stop()
    rows = per_worker(step, fleet, w["output_len"])
    return {
        "hit": step["cache_hit_server"],
        "requests": step["requests"],
        "workers": rows,
        "primers": step.get("primers_per_server"),
        "ttft_p50_s": step["ttft_p50_s"],
        "inconclusive": step["ttft_p50_s"] is None or step["ttft_p50_s"] > LOADED_TTFT_S,
    }
