"""A fleet on 127.0.0.1: real llama.cpp workers (xllamacpp, no host prompt cache: a prefix stays
cached only while a slot holds it) behind the real sglang-router, started with the router flags
the cluster plan gives (or others). Used by test_cluster.py and benchmark/router_fleet.py."""

from __future__ import annotations

import json
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from support.tiny_llm import LlamaServer, free_port


class Fleet:
    def __init__(self, model: Path, workers: int, slots: int, router_args: list[str], log: Path):
        self.model = model
        self.workers = [LlamaServer(model, slots=slots, host_cache=False) for _ in range(workers)]
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.router = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "sglang_router.launch_router",
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
        for worker in self.workers:
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
