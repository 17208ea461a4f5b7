"""``wafer-sglang bench sweep|single|compare``: the serving benchmark users judge a deployment by."""

from __future__ import annotations

import argparse
import math
import sys

from wafer_sglang.cli.options import path_arg, positive_float

SWEEP_EPILOG = """\
knee: the highest load at which that step and every lower one were sustained by the server:
  ran to the end; success >= 99% (unfinished after the drain = failed); TTFT p95 <= --slo-ttft-p95;
  no queue building in an open loop (late-third TTFT p50 <= 2x early-third p50, or within 0.5 s);
  with --goodput: >= 90% of requests within its SLOs.
  Loads are reported as offered (released in the window), never judged on the client's own draw.
outputs (--out): summary.json, requests.jsonl, table.md, bench_serving.jsonl (sglang bench_serving
  fields), vllm_bench_serve.jsonl (vllm bench serve's), inferencex_agg.jsonl (InferenceX's agg_*.json
  fields), throughput.png, ttft.png, pareto.png.
exit: 0 done; 1 a step had 0% success, or no knee with --fail-on-no-knee; 2 unusable input or
  unreachable server (checked before measuring); 130 Ctrl-C / 143 SIGTERM (what was measured is written).
credentials: --api-key, else OPENAI_API_KEY; --header NAME=VALUE; sent on every call, never written.
"""


def _loads(text: str) -> list[float]:
    values = [positive_float(r) for r in text.split(",") if r.strip()]
    if not values:
        raise argparse.ArgumentTypeError("expected comma-separated numbers")
    return sorted(values)


def _users(text: str) -> list[float]:
    values = _loads(text)
    if any(v != int(v) for v in values):
        raise argparse.ArgumentTypeError("concurrency must be whole numbers of users")
    return values


def _count(text: str) -> int:
    value = positive_float(text)
    if value != int(value):
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}")
    return int(value)


GOODPUT_METRICS = ("ttft", "tpot", "e2el")


def _goodput(text: str) -> tuple[str, float]:
    name, _, value = text.partition(":")
    if name not in GOODPUT_METRICS or not value:
        raise argparse.ArgumentTypeError(f"expected KEY:MS with KEY one of {', '.join(GOODPUT_METRICS)}, got {text!r}")
    try:
        ms = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{name}: expected milliseconds, got {value!r}") from None
    if not math.isfinite(ms) or ms < 0:
        raise argparse.ArgumentTypeError(f"{name}: expected milliseconds >= 0, got {value!r}")
    return name, ms


def _common(p: argparse.ArgumentParser, input_len: int, output_len: int) -> None:
    p.add_argument(
        "--url",
        "--base-url",
        dest="url",
        required=True,
        help="server base URL, http://host:port or http://host:port/v1 (OpenAI-compatible)",
    )
    p.add_argument("--model", help="model name sent in requests (default: the first one /v1/models lists)")
    p.add_argument(
        "--tokenizer", help="the server's tokenizer: tokenizer.json, a folder, or a hub name (default: --model)"
    )
    p.add_argument(
        "--input-len", type=_count, default=input_len, help="prompt tokens per request (default %(default)s)"
    )
    p.add_argument(
        "--output-len", type=_count, default=output_len, help="output tokens per request (default %(default)s)"
    )
    p.add_argument(
        "--api",
        choices=("completions", "chat"),
        default="completions",
        help="completions keeps token counts exact; chat adds the template's tokens (default %(default)s)",
    )
    p.add_argument(
        "--force-length",
        choices=("both", "ignore_eos", "min_tokens", "none"),
        default="both",
        help="force the output length (strict servers reject unknown fields: use none) (default %(default)s)",
    )
    p.add_argument("--api-key", help="bearer token (default: $OPENAI_API_KEY); never written to any output")
    p.add_argument(
        "--header", action="append", default=[], metavar="NAME=VALUE", help="extra header on every call (repeatable)"
    )
    p.add_argument(
        "--timeout", type=positive_float, default=600.0, help="per-request timeout, seconds (default %(default)s)"
    )
    p.add_argument("--seed", type=int, default=0, help="arrivals, prefix groups and prompts (default %(default)s)")
    p.add_argument(
        "--out",
        type=path_arg,
        required=True,
        help="output folder: new, or without a run in it (checked before measuring)",
    )
    p.add_argument("--force", action="store_true", help="write over the run already in --out")
    p.add_argument(
        "--extra-request-body",
        metavar="JSON",
        help="a JSON object merged into every request, e.g. '{\"temperature\": 0.6}' (not the fields it measures with)",
    )
    p.add_argument("--tag", help="a label for this run: in summary.json (run.tag) and bench compare's legends")


def add_parsers(sub: argparse._SubParsersAction) -> None:
    bench = sub.add_parser("bench", help="serving benchmark: open/closed-loop sweeps, single-stream speed, comparisons")
    bsub = bench.add_subparsers(dest="bench_cmd", required=True, metavar="COMMAND")
    p = bsub.add_parser(
        "sweep",
        help="load sweep with a shared-prefix workload (defaults: the seed workload)",
        epilog=SWEEP_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _common(p, 20000, 1000)
    p.add_argument("--cache-hit", type=float, default=0.6, help="target prefix-cache hit rate (default %(default)s)")
    p.add_argument(
        "--prefix-groups",
        type=_count,
        default=8,
        help="distinct shared prefixes, primed before each step (one request per group, all sent at "
        "once as traffic arrives: one after another, a least-loaded router would put every group on one "
        "worker; with several --metrics-url the step reports which worker took how many); "
        "each request's group drawn at random (default %(default)s)",
    )
    p.add_argument(
        "--primers",
        choices=("together", "sequential"),
        default="together",
        help="how each step's primers are sent: together, as traffic arrives (default), or one after "
        "another (a control: behind a least-loaded router they all reach one worker)",
    )
    load = p.add_mutually_exclusive_group()
    load.add_argument(
        "--rates",
        "--request-rate",
        dest="rates",
        type=_loads,
        default=None,
        help="open loop: target requests/s per step (default 0.5,1,1.5,2,2.25,2.4)",
    )
    load.add_argument(
        "--max-concurrency", type=_users, default=None, help="closed loop: concurrent users per step, e.g. 1,4,16,64"
    )
    p.add_argument(
        "--dataset",
        nargs=2,
        metavar=("sharegpt", "FILE"),
        help="real prompts: a local ShareGPT JSON (replaces the synthetic shared-prefix prompts)",
    )
    length = p.add_mutually_exclusive_group()
    length.add_argument("--step-seconds", type=positive_float, default=None, help="per step (default 300)")
    length.add_argument(
        "--num-prompts",
        type=_count,
        help="measured requests per step instead of --step-seconds (vLLM's and sglang's flag; open loop: "
        "they arrive at the step's rate; closed loop: the users send them)",
    )
    p.add_argument(
        "--warmup-seconds",
        type=float,
        default=None,
        help="excluded by start time (default: 10%% of a step; 0 with --num-prompts)",
    )
    p.add_argument(
        "--drain-seconds",
        type=positive_float,
        default=300.0,
        help="wait this long after the last arrival; the rest fail (default %(default)s)",
    )
    p.add_argument(
        "--arrival", choices=("poisson", "constant"), default="poisson", help="open-loop arrivals (default %(default)s)"
    )
    p.add_argument("--keepalive", action="store_true", help="reuse connections (off: llama.cpp breaks on reused ones)")
    p.add_argument(
        "--slo-ttft-p95", type=positive_float, default=5.0, help="knee: TTFT p95 bound, seconds (default %(default)s)"
    )
    p.add_argument(
        "--goodput",
        nargs="+",
        type=_goodput,
        metavar="KEY:MS",
        help="per-request SLOs as vLLM's --goodput (ttft, tpot, e2el in ms): each step reports request_goodput "
        "and goodput_attainment, and the knee needs >= 90%% of requests within them",
    )
    p.add_argument("--fail-on-no-knee", action="store_true", help="exit 1 when not even the lowest load is sustained")
    p.add_argument(
        "--fail-after",
        type=_count,
        default=20,
        help="end a step after this many connection failures, or refusals (HTTP 4xx), in a row; refusals "
        "also stop the sweep (default %(default)s)",
    )
    p.add_argument(
        "--metrics-url",
        action="append",
        default=[],
        metavar="URL",
        help="a server whose /metrics to count (repeatable: every worker behind a router; default: --url)",
    )
    p.add_argument("--gpu-hourly-usd", type=positive_float, help="$/GPU-hour for cost per million tokens")
    p.add_argument("--price-tier", help="TIER/GPU from the shipped, dated price table (e.g. rental/MI355X)")
    p.add_argument(
        "--gpus",
        type=_count,
        help="GPUs serving (per-GPU figures and cost) (default: tp x dp x pp from sglang's server info, else 8)",
    )
    p.set_defaults(func=cmd_sweep)
    p = bsub.add_parser("single", help="single-stream speed, Artificial Analysis style (10k in / 1.5k out)")
    _common(p, 10000, 1500)
    p.add_argument("--runs", type=_count, default=5, help="(default %(default)s)")
    p.set_defaults(func=cmd_single)
    p = bsub.add_parser(
        "compare", help="runs and published references side by side: one table, overlay and Pareto plots"
    )
    p.add_argument(
        "runs",
        nargs="*",
        type=path_arg,
        metavar="INPUT",
        help="a bench sweep output folder, or a results file: sglang bench_serving (JSONL), vllm bench serve (JSON)",
    )
    p.add_argument(
        "--gpus",
        type=_count,
        help="GPUs behind a results file that does not say (vllm's; sglang's say it in server_info): per-GPU figures",
    )
    p.add_argument(
        "--reference",
        action="append",
        default=[],
        metavar="NAME",
        help="a built-in dated reference (repeatable; --list-references)",
    )
    p.add_argument("--list-references", action="store_true", help="list the built-in references and exit")
    p.add_argument("--out", type=path_arg, help="where comparison.md/.json and the plots go (default: print the table)")
    p.set_defaults(func=cmd_compare)


def _endpoint(args):
    from wafer_sglang.bench import endpoint

    return endpoint.Endpoint(
        url=endpoint.base_url(args.url),
        model=args.model,
        api=args.api,
        force_length=args.force_length,
        timeout_s=args.timeout,
        headers=endpoint.headers(args.api_key, args.header),
        extra_body=endpoint.extra_body(args.extra_request_body),
    )


def _command() -> str:
    import shlex

    from wafer_sglang.bench.endpoint import redact

    return shlex.join(["wafer-sglang", *redact(sys.argv[1:])])


def _ready(args) -> None:
    from wafer_sglang.bench import preflight

    preflight.check_extras()
    preflight.check_out(args.out, args.force)


def _extras() -> None:
    """Before anything imports the [bench] extra's modules: say which are missing, not a traceback."""
    from wafer_sglang.bench import preflight

    preflight.check_extras()


def cmd_sweep(args) -> int:
    import asyncio

    _extras()
    from wafer_sglang.bench.costs import price
    from wafer_sglang.bench.knee import Slo
    from wafer_sglang.bench.run import SweepOptions, knee_line, sweep, sweep_exit

    options = SweepOptions.from_flags(
        endpoint=_endpoint(args),
        tokenizer=args.tokenizer or args.model,
        out=args.out,
        input_len=args.input_len,
        output_len=args.output_len,
        cache_hit=args.cache_hit,
        prefix_groups=args.prefix_groups,
        primers=args.primers,
        loads=args.max_concurrency or args.rates,
        closed=args.max_concurrency is not None,
        step_seconds=args.step_seconds,
        num_prompts=args.num_prompts,
        warmup_seconds=args.warmup_seconds,
        drain_seconds=args.drain_seconds,
        arrival=args.arrival,
        seed=args.seed,
        keepalive=args.keepalive,
        slo=Slo(ttft_p95_s=args.slo_ttft_p95, goodput=dict(args.goodput) if args.goodput else None),
        price=price(args.price_tier, args.gpu_hourly_usd),
        gpus=args.gpus,
        dataset=args.dataset,
        metrics_urls=[_base(u) for u in args.metrics_url],
        fail_after=args.fail_after,
        tag=args.tag,
    )
    _ready(args)
    summary = asyncio.run(sweep(options, _command()))
    print((args.out / "table.md").read_text())
    print(knee_line(summary))
    print(
        f"wrote {args.out}/summary.json, requests.jsonl, table.md, bench_serving.jsonl, vllm_bench_serve.jsonl, "
        "inferencex_agg.jsonl, throughput.png, ttft.png, pareto.png"
    )
    code, said = sweep_exit(summary, args.fail_on_no_knee)
    if said:
        print(f"error: {said}", file=sys.stderr)
    return code


def _base(url: str) -> str:
    from wafer_sglang.bench.endpoint import base_url

    return base_url(url)


def cmd_single(args) -> int:
    import asyncio

    _extras()
    from wafer_sglang.bench.run import SingleOptions, single

    options = SingleOptions(
        endpoint=_endpoint(args),
        tokenizer=args.tokenizer or args.model,
        out=args.out,
        input_len=args.input_len,
        output_len=args.output_len,
        runs=args.runs,
        seed=args.seed,
        tag=args.tag,
    )
    _ready(args)
    summary = asyncio.run(single(options, _command()))
    print((args.out / "table.md").read_text())
    if summary.interrupted:
        return 143 if summary.interrupted_by == "SIGTERM" else 130
    return 0 if summary.success_rate == 1 else 1


def cmd_compare(args) -> int:
    from wafer_sglang.bench import compare
    from wafer_sglang.errors import WaferError

    if args.list_references:
        for name, ref in compare.references().items():
            print(f"{name}: {ref['title']} ({ref['source']}, as of {ref['as_of']})")
        return 0
    series = [one for path in args.runs for one in compare.load(path, args.gpus)]
    series += [compare.load_reference(n) for n in args.reference]
    if not series:
        raise WaferError("nothing to compare: give RUN folders and/or --reference NAME")
    for note in compare.differences(series):
        print(f"bench compare: warning: {note}", file=sys.stderr)
    if args.out:
        made = compare.write(series, args.out)
        print(f"wrote {', '.join(str(p) for p in made)}")
    else:
        print(compare.table(series), end="")
    return 0
