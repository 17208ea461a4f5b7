"""The real sglang-router in front of real llama.cpp workers on 127.0.0.1, run here without a GPU:

1. routing: the seed workload's shape (60 % shared prefix, prefix groups drawn at random, more
   groups than one worker's cache holds, fewer than all workers' caches hold) through the router
   with the cluster plan's cache_aware settings, then round_robin; summed server-side hit rate
   and each worker's requests and hit rate;
2. failover: one worker killed mid-step: success rate and failures;
3. rejoin: the worker restarted on its address: whether the router sends it requests again.

    build/venv-test/bin/python benchmark/router_fleet.py [--workers 3] [--slots 2] [--groups 5] [--seconds 40]
"""

from __future__ import annotations

import argparse
import shlex
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "test"))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=3)
    parser.add_argument("--slots", type=int, default=2, help="llama.cpp slots per worker (prefixes it can hold)")
    parser.add_argument("--groups", type=int, default=5, help="prefix groups (> slots, < workers x slots)")
    parser.add_argument("--rate", type=float, default=2.0)
    parser.add_argument("--output-len", type=int, default=100)
    parser.add_argument("--seconds", type=float, default=40)
    args = parser.parse_args()
    from support.fleet import Fleet, per_worker
    from support.tiny_llm import make_model

    from wafer_sglang.serve.cluster import load_topology

    recipe_args = load_topology("dp").router_args
    workload = [
        "--input-len",
        "1500",
        "--output-len",
        str(args.output_len),
        "--cache-hit",
        "0.6",
        "--prefix-groups",
        str(args.groups),
        "--rates",
        str(args.rate),
        "--step-seconds",
        str(args.seconds),
        "--warmup-seconds",
        str(args.seconds / 4),
        "--drain-seconds",
        "60",
    ]
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        model = make_model(tmp / "model")
        print(
            f"{args.workers} llama.cpp workers x {args.slots} slots (no host prompt cache), {args.groups} prefix "
            "groups, "
            f"{args.rate:g} rps, 1500 in / {args.output_len} out, 60 % shared prefix"
        )
        for label, router_args in (
            ("cache_aware (cluster plan dp)", recipe_args),
            ("round_robin", ["--policy", "round_robin"]),
        ):
            fleet = Fleet(model, args.workers, args.slots, router_args, tmp / "router.log")
            try:
                step = fleet.sweep(tmp / label.split()[0], *workload)["steps"][0]
            finally:
                fleet.stop()
            print(f"\n{label}: {shlex.join(router_args)}")
            print(
                f"  summed server hit rate {step['cache_hit_server']:.3f} (target 0.60, "
                f"{step['cache_hit_server'] / 0.6:.2f} of it); "
                f"success {step['success_rate']:.0%}; TTFT p50 {step['ttft_p50_s'] * 1000:.0f} ms"
            )
            for row in per_worker(step, fleet, args.output_len):
                hit = f"{row['cache_hit']:.2f}" if row["cache_hit"] is not None else "-"
                print(f"  {row['worker']}: {row['requests']} requests, hit {hit}")
        failover(model, tmp, ["--policy", "round_robin", "--health-check-interval-secs", "5"], workload, args)
    return 0


def failover(model, tmp, router_args, workload, args) -> None:
    from support.fleet import Fleet, per_worker

    fleet = Fleet(model, args.workers, args.slots, router_args, tmp / "router-failover.log")
    try:
        victim = fleet.workers[1]
        killed = threading.Timer(args.seconds / 2, victim.kill)
        started = time.monotonic()
        killed.start()
        step = fleet.sweep(tmp / "failover", *workload)["steps"][0]
        print(
            f"\nfailover (round_robin, so every worker is in use): {victim.url} killed {args.seconds / 2:g} s into a "
            f"{args.seconds:g} s step: success "
            f"{step['success_rate']:.1%} of {step['requests']} ({step['failures'] or 'no failures'}), "
            f"step took {time.monotonic() - started:.0f} s"
        )
        fleet.workers[1] = victim.restart()
        time.sleep(12)  # two health checks
        step = fleet.sweep(tmp / "rejoin", *workload)["steps"][0]
        rows = per_worker(step, fleet, args.output_len)
        print(
            f"rejoin: {victim.url} restarted; next step: {rows[1]['requests']} of its requests reached it "
            f"({', '.join(str(r['requests']) for r in rows)} per worker), success {step['success_rate']:.0%}"
        )
    finally:
        fleet.stop()


if __name__ == "__main__":
    sys.exit(main())
