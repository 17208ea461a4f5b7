"""The real sglang-router in front of real llama.cpp workers on 127.0.0.1, run here without a GPU:

1. routing: the seed workload's shape (60 % shared prefix, prefix groups drawn at random) on a
   fleet that can show affinity (support/fleet.py AFFINITY_FLEET: each worker holds ~2 prefixes,
   6 groups: more than one worker holds, fewer than the fleet holds), primers sent together;
   cache_aware with the cluster plan's settings vs round_robin on each seed, behind sglang-router
   0.3.2 (0.5.14's) and smg (0.5.23's): summed server hit rate, each worker's requests and hit;
   then the control, primers sent one after another;
2. failover: one worker killed mid-step: success rate and failures;
3. rejoin: the worker restarted on its address: whether the router sends it requests again.

A run whose median TTFT is above 1 s is marked inconclusive: a loaded machine makes load
differences, and so rebalancing, that the workload does not have.

With --engine sglang the workers are the fork's own sglang servers (0.5.14, CPU, the suite's
engine environment and tiny model) with a KV pool of 1,536 tokens (about two groups' prefixes
next to the requests in flight), and a workload they serve quickly (600 in / 16 out).

    make benchmark B=router_fleet ARGS="--seeds 0,1,2 --engine sglang"   # or --no-failover
"""

from __future__ import annotations

import argparse
import shlex
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--no-failover", action="store_true")
    parser.add_argument("--engine", choices=("llama.cpp", "sglang"), default="llama.cpp")
    args = parser.parse_args()
    if args.engine == "sglang":
        return sglang_fleet([int(s) for s in args.seeds.split(",")])
    from support.fleet import AFFINITY_FLEET, AFFINITY_WORKLOAD, affinity_run
    from support.tiny_llm import make_model

    policies = _policies()
    w, f = AFFINITY_WORKLOAD, AFFINITY_FLEET
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        model = make_model(tmp / "model")
        print(
            f"{f['workers']} llama.cpp workers x {f['slots']} slots, host prompt cache {f['cache_ram_mib']} MiB; "
            f"{w['groups']} prefix groups, {w['rate']:g} rps for {w['seconds']} s, {w['input_len']} in / "
            f"{w['output_len']} out, 60 % shared prefix, primers sent together"
        )
        for router in ("sglang_router", "smg"):
            for name, router_args in policies.items():
                print(f"\n{router} {name}: {shlex.join(router_args)}")
                for seed in (int(s) for s in args.seeds.split(",")):
                    print("  " + line(f"seed {seed}", affinity_run(model, tmp, router_args, seed, router=router)))
        for router in ("sglang_router", "smg"):
            control = affinity_run(model, tmp, policies["cache_aware"], 0, primers="sequential", router=router)
            print(f"\ncontrol, {router} cache_aware, primers one after another:\n  " + line("seed 0", control))
        if not args.no_failover:
            failover(model, tmp)
    return 0


SGLANG_KV_TOKENS = "1536"
SGLANG_WORKLOAD = {"input_len": 600, "output_len": 16, "rate": 2.0}


def _policies() -> dict[str, list[str]]:
    from wafer_sglang.serve.cluster import load_topology

    return {"cache_aware": load_topology("dp").router_args, "round_robin": ["--policy", "round_robin"]}


def sglang_fleet(seeds: list[int]) -> int:
    from support import served_engine
    from support.fleet import AFFINITY_WORKLOAD, affinity_run

    def launch(python, server):
        argv = [str(python), "-m", "sglang.launch_server", "--model-path", server.model, "--port", str(server.port)]
        flags = list(served_engine.FLAGS)
        flags[flags.index("--max-total-tokens") + 1] = SGLANG_KV_TOKENS
        return [*argv, *flags]  # no key: the router in front is the fleet's only client here

    policies = _policies()
    w = {**AFFINITY_WORKLOAD, **SGLANG_WORKLOAD}
    workers = []
    try:
        for i in range(3):
            workers.append(
                served_engine.Server.start(f"fleet-{i}", "0.5.14", served_engine.shared_model(), launch=launch)
            )
        print(
            f"3 fork sglang 0.5.14 workers (CPU, KV pool {SGLANG_KV_TOKENS} tokens), {w['groups']} prefix groups, "
            f"{w['rate']:g} rps for {w['seconds']} s, {w['input_len']} in / {w['output_len']} out, "
            "60 % shared prefix, primers sent together"
        )
        with tempfile.TemporaryDirectory() as tmp:
            model = served_engine.shared_model()
            for router in ("sglang_router", "smg"):
                for name, router_args in policies.items():
                    print(f"\n{router} {name}: {shlex.join(router_args)}")
                    for seed in seeds:
                        for worker in workers:  # every run starts from empty radix caches
                            urllib.request.urlopen(urllib.request.Request(worker.url + "/flush_cache", method="POST"))
                        run = affinity_run(
                            model,
                            Path(tmp),
                            router_args,
                            seed,
                            router=router,
                            running=workers,
                            workload=SGLANG_WORKLOAD,
                        )
                        print("  " + line(f"seed {seed}", run), flush=True)
    finally:
        for worker in workers:
            worker.stop()
    return 0


def line(label: str, run: dict) -> str:
    per_worker = " / ".join(
        f"{r['requests']} ({r['cache_hit']:.2f})" if r["cache_hit"] is not None else f"{r['requests']} (-)"
        for r in run["workers"]
    )
    primers = "/".join(str(n) for n in (run["primers"] or {}).values())
    verdict = " INCONCLUSIVE (machine loaded)" if run["inconclusive"] else ""
    return (
        f"{label}: hit {run['hit']:.3f}, {run['requests']} requests; per worker requests (hit) {per_worker}; "
        f"primers {primers}; TTFT p50 {run['ttft_p50_s'] * 1000:.0f} ms{verdict}"
    )


def failover(model, tmp) -> None:
    """On the earlier fleet (2-slot workers without a host cache), round_robin so every worker is in use."""
    from support.fleet import Fleet, per_worker

    router_args = ["--policy", "round_robin", "--health-check-interval-secs", "5"]
    seconds, output_len = 40.0, 100
    workload = [
        *("--input-len", "1500", "--output-len", str(output_len), "--cache-hit", "0.6", "--prefix-groups", "5"),
        *("--rates", "2", "--step-seconds", str(seconds), "--warmup-seconds", "10", "--drain-seconds", "60"),
    ]
    fleet = Fleet(model, 3, 2, router_args, tmp / "router-failover.log")
    try:
        victim = fleet.workers[1]
        killed = threading.Timer(seconds / 2, victim.kill)
        started = time.monotonic()
        killed.start()
        step = fleet.sweep(tmp / "failover", *workload)["steps"][0]
        print(
            f"\nfailover (round_robin, so every worker is in use): {victim.url} killed {seconds / 2:g} s into a "
            f"{seconds:g} s step: success "
            f"{step['success_rate']:.1%} of {step['requests']} ({step['failures'] or 'no failures'}), "
            f"step took {time.monotonic() - started:.0f} s"
        )
        fleet.workers[1] = victim.restart()
        time.sleep(12)  # two health checks
        step = fleet.sweep(tmp / "rejoin", *workload)["steps"][0]
        rows = per_worker(step, fleet, output_len)
        print(
            f"rejoin: {victim.url} restarted; next step: {rows[1]['requests']} of its requests reached it "
            f"({', '.join(str(r['requests']) for r in rows)} per worker), success {step['success_rate']:.0%}"
        )
    finally:
        fleet.stop()


if __name__ == "__main__":
    sys.exit(main())
