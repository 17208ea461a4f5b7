"""``wafer-sglang bench sweep|single``: the serving benchmark users judge a deployment by."""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path


def _rates(text: str) -> list[float]:
    try:
        rates = [float(r) for r in text.split(",") if r.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"rates must be comma-separated numbers, got {text!r}") from None
    if not rates or any(r <= 0 for r in rates):
        raise argparse.ArgumentTypeError("rates must be positive")
    return sorted(rates)


def _common(p: argparse.ArgumentParser, input_len: int, output_len: int) -> None:
    p.add_argument("--url", required=True, help="server base URL (OpenAI-compatible), e.g. http://127.0.0.1:30000")
    p.add_argument("--model", default="default", help="model name sent in requests")
    p.add_argument("--tokenizer", help="the server's tokenizer: tokenizer.json, a folder, or a hub name (default: --model)")
    p.add_argument("--input-len", type=int, default=input_len)
    p.add_argument("--output-len", type=int, default=output_len)
    p.add_argument("--api", choices=("completions", "chat"), default="completions",
                   help="completions keeps token counts exact; chat adds the template's tokens")
    p.add_argument("--force-length", choices=("both", "ignore_eos", "min_tokens", "none"), default="both",
                   help="force the output length (strict servers reject unknown fields: use none)")
    p.add_argument("--api-key")
    p.add_argument("--timeout", type=float, default=600.0, help="per-request timeout, seconds")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path, required=True, help="output folder")


def add_parsers(sub: argparse._SubParsersAction) -> None:
    bench = sub.add_parser("bench", help="serving benchmark: open-loop RPS sweep, single-stream speed, cost per million tokens")
    bsub = bench.add_subparsers(dest="bench_cmd", required=True, metavar="COMMAND")
    p = bsub.add_parser("sweep", help="open-loop RPS sweep with a shared-prefix workload (defaults: the seed workload)")
    _common(p, 20000, 1000)
    p.add_argument("--cache-hit", type=float, default=0.6, help="target prefix-cache hit rate")
    p.add_argument("--prefix-groups", type=int, default=8, help="distinct shared prefixes (primed before each step)")
    p.add_argument("--rates", type=_rates, default=[0.5, 1, 1.5, 2, 2.25, 2.4], help="target RPS per step")
    p.add_argument("--step-seconds", type=float, default=300.0)
    p.add_argument("--warmup-seconds", type=float, default=None, help="excluded by start time (default: 10%% of a step)")
    p.add_argument("--drain-seconds", type=float, default=300.0, help="wait this long after the last arrival; the rest fail")
    p.add_argument("--arrival", choices=("poisson", "constant"), default="poisson")
    p.add_argument("--keepalive", action="store_true", help="reuse connections (off: llama.cpp breaks on reused ones)")
    p.add_argument("--slo-ttft-p95", type=float, default=5.0, help="knee: TTFT p95 bound, seconds")
    p.add_argument("--gpu-hourly-usd", type=float, help="$/GPU-hour for cost per million tokens")
    p.add_argument("--price-tier", help="TIER/GPU from the shipped, dated price table (e.g. rental/MI355X)")
    p.add_argument("--gpus", type=int, default=8, help="GPUs in the node (for cost)")
    p.set_defaults(func=cmd_sweep)
    p = bsub.add_parser("single", help="single-stream speed, Artificial Analysis style (10k in / 1.5k out)")
    _common(p, 10000, 1500)
    p.add_argument("--runs", type=int, default=5)
    p.set_defaults(func=cmd_single)


def _endpoint(args):
    from wafer_sglang.bench.client import Endpoint

    return Endpoint(url=args.url, model=args.model, api=args.api, force_length=args.force_length,
                    timeout_s=args.timeout, api_key=args.api_key)


def cmd_sweep(args) -> int:
    import asyncio

    from wafer_sglang.bench.costs import price
    from wafer_sglang.bench.run import SweepOptions, sweep
    from wafer_sglang.bench.stats import Slo
    from wafer_sglang.errors import WaferError

    if args.step_seconds <= 0:
        raise WaferError("--step-seconds must be positive")
    warmup = args.step_seconds * 0.1 if args.warmup_seconds is None else args.warmup_seconds
    if not 0 <= warmup < args.step_seconds:
        raise WaferError("--warmup-seconds must be shorter than a step")
    options = SweepOptions(
        endpoint=_endpoint(args), tokenizer=args.tokenizer or args.model, out=args.out, input_len=args.input_len,
        output_len=args.output_len, cache_hit=args.cache_hit, prefix_groups=args.prefix_groups, rates=args.rates,
        step_seconds=args.step_seconds, warmup_seconds=warmup, drain_seconds=args.drain_seconds, arrival=args.arrival,
        seed=args.seed, keepalive=args.keepalive, slo=Slo(ttft_p95_s=args.slo_ttft_p95),
        price=price(args.price_tier, args.gpu_hourly_usd), gpus=args.gpus,
    )
    summary = asyncio.run(sweep(options, shlex.join(["wafer-sglang", *sys.argv[1:]])))
    print((args.out / "table.md").read_text())
    knee = summary["knee"]["target_rps"]
    print(f"knee: {knee:g} rps" if knee is not None else "knee: none (the lowest rate already misses the SLO)")
    print(f"wrote {args.out}/summary.json, requests.jsonl, table.md, throughput.png, ttft.png")
    return 130 if any(s.get("interrupted") for s in summary["steps"]) else 0


def cmd_single(args) -> int:
    import asyncio

    from wafer_sglang.bench.run import SingleOptions, single

    options = SingleOptions(endpoint=_endpoint(args), tokenizer=args.tokenizer or args.model, out=args.out,
                            input_len=args.input_len, output_len=args.output_len, runs=args.runs, seed=args.seed)
    summary = asyncio.run(single(options, shlex.join(["wafer-sglang", *sys.argv[1:]])))
    print((args.out / "table.md").read_text())
    return 130 if summary["interrupted"] else (0 if summary["success_rate"] == 1 else 1)
