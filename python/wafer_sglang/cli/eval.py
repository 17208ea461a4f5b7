"""``wafer-sglang eval run`` (the quality gate) and ``eval prepare`` (its datasets, on a connected
machine). The older spellings ``eval --baseline ...`` and ``eval-prepare`` still work (main.py)."""

from __future__ import annotations

import argparse
import sys

from wafer_sglang.cli.options import out_dir, path_arg, positive_float, positive_int

DEFAULT_TASKS = "gsm8k,gpqa_diamond"


def _seeds(text: str) -> tuple[int, ...]:
    try:
        seeds = tuple(int(s) for s in text.split(",") if s.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"seeds must be comma-separated integers, got {text!r}") from None
    if not seeds:
        raise argparse.ArgumentTypeError("no seeds given")
    return seeds


def add_parsers(sub: argparse._SubParsersAction) -> None:
    group = sub.add_parser(
        "eval", help="quality gate: lm-eval on two endpoints side by side (run), its datasets (prepare)"
    )
    esub = group.add_subparsers(dest="eval_cmd", required=True, metavar="COMMAND")
    p = esub.add_parser(
        "run",
        help="lm-eval on a baseline and a candidate endpoint, side by side, with MTP acceptance; "
        "--gate-threshold makes it a release gate",
    )
    for role in ("baseline", "candidate"):
        p.add_argument(f"--{role}", required=True, metavar="URL", help=f"{role} server base URL (OpenAI-compatible)")
        p.add_argument(f"--{role}-model", help="model name in requests (default: the first of GET /v1/models)")
        p.add_argument(
            f"--{role}-log",
            type=path_arg,
            metavar="FILE",
            help="the server's log, for 'accept len' when its /metrics has no speculative counters",
        )
    p.add_argument("--tasks", default=DEFAULT_TASKS, help="comma-separated task names")
    p.add_argument(
        "--limit", type=int, help="questions per task (default: the reference run's: gsm8k 200, gpqa_diamond all 198)"
    )
    p.add_argument("--seeds", type=_seeds, help="seeds for every task (default: gsm8k 0; gpqa_diamond 0,1)")
    p.add_argument(
        "--data-dir", type=path_arg, help="JSONL datasets from eval prepare (default: the offline Hugging Face cache)"
    )
    p.add_argument(
        "--api",
        choices=("completions", "chat"),
        default="completions",
        help="lm-eval backend: local-completions, or local-chat-completions with the chat template",
    )
    p.add_argument("--concurrency", type=positive_int, default=32, help="requests in flight per endpoint")
    p.add_argument(
        "--max-gen-toks", type=int, help="generation limit for every task (default: gsm8k 256, gpqa_diamond 16384)"
    )
    p.add_argument(
        "--timeout", type=positive_float, default=3600.0, help="per-request timeout, seconds (default %(default)s)"
    )
    p.add_argument("--z", type=float, default=1.96, help="'within noise' means |delta| <= z * stderr of delta")
    p.add_argument(
        "--gate-threshold",
        type=float,
        metavar="DROP",
        help="release gate: exit 1 if a task's delta < -(DROP + sigmas * stderr of delta)",
    )
    p.add_argument("--gate-sigmas", type=float, default=1.0, help="stderrs of slack the gate allows beyond DROP")
    p.add_argument(
        "--gate-floor",
        type=float,
        default=0.0,
        metavar="SCORE",
        help="the gate also fails a task where neither side scores above this: no signal (default %(default)s)",
    )
    p.add_argument(
        "--api-key", help="bearer token for both endpoints (default: $OPENAI_API_KEY); never written to any output"
    )
    p.add_argument(
        "--header",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="extra header on every call to both endpoints (repeatable, as bench's); credentials among them are "
        "masked in every file of the run",
    )
    p.add_argument(
        "--sequential", action="store_true", help="one endpoint at a time (automatic when both URLs are the same)"
    )
    p.add_argument("--out", type=path_arg, required=True, help="output folder")
    p.set_defaults(func=cmd_eval)

    p = esub.add_parser(
        "prepare", help="on a connected machine: write eval datasets as the JSONL folder `eval run --data-dir` reads"
    )
    p.add_argument("--tasks", default=DEFAULT_TASKS, help="comma-separated task names")
    p.add_argument("--data-dir", type=out_dir, required=True, help="the folder to write (copy it to the eval machine)")
    p.set_defaults(func=cmd_prepare)


def cmd_eval(args) -> int:
    import requests

    from wafer_sglang.bench.endpoint import base_url, headers
    from wafer_sglang.evals import lmeval, report
    from wafer_sglang.evals.run import ROLES, Endpoint, Options, evaluate, model_name
    from wafer_sglang.evals.stats import Gate
    from wafer_sglang.evals.tasks import parse_tasks

    tasks = parse_tasks(args.tasks)
    lmeval.version()  # the install hint before anything else
    sent = headers(args.api_key, args.header)  # --api-key, else OPENAI_API_KEY, as bench
    urls = {role: base_url(getattr(args, role), f"--{role}") for role in ROLES}
    with requests.Session() as session:
        endpoints = {
            role: Endpoint(
                role,
                urls[role],
                getattr(args, f"{role}_model") or model_name(urls[role], session, role, sent),
                getattr(args, f"{role}_log"),
                sent,
            )
            for role in ROLES
        }
    gate = Gate(args.gate_threshold, args.gate_sigmas, args.gate_floor) if args.gate_threshold is not None else None
    opts = Options(
        endpoints,
        tasks,
        args.out,
        lmeval.Settings(args.api, args.concurrency, args.timeout, args.limit, args.max_gen_toks),
        args.seeds,
        args.data_dir,
        args.z,
        gate,
        args.sequential,
    )
    runs, data = evaluate(opts)
    result = report.build(opts, runs, data)
    report.write(opts, result)
    print(report.markdown(result))
    print(f"wrote {args.out / 'comparison.md'} and comparison.json", file=sys.stderr)
    if gate and not result["gate"]["passed"]:
        print("wafer-sglang: quality gate FAILED", file=sys.stderr)
        return 1
    return 0


def cmd_prepare(args) -> int:
    from wafer_sglang.evals.prepare import prepare
    from wafer_sglang.evals.tasks import parse_tasks

    for task in parse_tasks(args.tasks):
        files = prepare(task, args.data_dir)
        print(f"{task.name}: " + ", ".join(f"{split} -> {path}" for split, path in files.items()))
    return 0
