"""`bench sweep` and `bench single`: check, run, measure, and write what was measured (Ctrl-C and
SIGTERM included, at once)."""

from __future__ import annotations

import asyncio
import dataclasses
import math
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
from wafer_sglang.bench import export, preflight, prom, report, results
from wafer_sglang.bench.client import Record, make_client, stream
from wafer_sglang.bench.endpoint import Endpoint
from wafer_sglang.bench.knee import Slo, describe, judged, knee
from wafer_sglang.bench.load import Step, StepRun, run_step
from wafer_sglang.bench.prompts import (
    PromptBuilder,
    ShareGPTPrompts,
    SweepPrompts,
    load_tokenizer,
    tokenizer_hash,
    unique_prompt,
)
from wafer_sglang.bench.results import SingleSummary, StepResult, SweepSummary
from wafer_sglang.bench.stats import AGGREGATE_DEFINITION, add_costs, step_stats
from wafer_sglang.errors import WaferError


@dataclass
class SweepOptions:
    endpoint: Endpoint
    tokenizer: str | None  # None: the served model's name
    out: Path
    input_len: int = 20000
    output_len: int = 1000
    cache_hit: float = 0.6
    prefix_groups: int = 8
    primers: str = "together"  # "sequential": one after another (a control for router tests)
    loads: list[float] = field(default_factory=lambda: [0.5, 1, 1.5, 2, 2.25, 2.4])
    closed: bool = False  # loads are concurrent users (--max-concurrency), not rates
    step_seconds: float = 300.0
    num_prompts: int | None = None  # measured requests per step instead of step_seconds
    warmup_seconds: float = 30.0
    drain_seconds: float = 300.0
    arrival: str = "poisson"
    seed: int = 0
    keepalive: bool = False
    slo: Slo = field(default_factory=Slo)
    price: tuple[float, str] | None = None
    gpus: int | None = None  # None: from the server's info (sglang), else ASSUMED_GPUS
    dataset: Path | None = None  # ShareGPT JSON instead of the synthetic shared-prefix prompts
    metrics_urls: list[str] = field(default_factory=list)  # default: the server's own
    fail_after: int = 20
    tag: str | None = None

    def planned_step_s(self, load: float) -> float | None:
        """How long a step sends for: step_seconds, or with num_prompts the warm-up plus the
        requests at the rate (closed loop: unknown, the users' pace decides)."""
        if self.num_prompts is None:
            return self.step_seconds
        return None if self.closed else self.warmup_seconds + self.num_prompts / load

    def plan(self, loads: list[float]) -> str:
        """How long the steps at ``loads`` take, in words (the start line and each step's ETA)."""
        return preflight.describe_plan([self.planned_step_s(x) for x in loads], self.drain_seconds, self.num_prompts)

    def __post_init__(self):
        """Every value checked before anything is sent (a dataset that is a FIFO or a device would
        block the read, deaf to Ctrl-C)."""
        warmup = self.warmup_seconds
        if not (math.isfinite(warmup) and warmup >= 0 and (self.num_prompts or warmup < self.step_seconds)):
            raise WaferError("--warmup-seconds must be >= 0 and shorter than a step")
        if not 0 <= self.cache_hit < 1:
            raise WaferError("--cache-hit must be in [0, 1)")
        if self.dataset is not None and not self.dataset.is_file():
            raise WaferError(f"--dataset sharegpt {self.dataset}: not a regular file (a ShareGPT JSON file)")

    @classmethod
    def from_flags(cls, *, step_seconds: float | None, warmup_seconds: float | None, dataset, **given) -> SweepOptions:
        """The command's values with the defaults that depend on others: a step of 300 s, a warm-up
        of a tenth of it (none with --num-prompts), rates when no concurrency is given."""
        step_seconds = step_seconds or 300.0
        if warmup_seconds is None:
            warmup_seconds = 0.0 if given.get("num_prompts") else step_seconds * 0.1
        if dataset:
            kind, file = dataset
            if kind != "sharegpt":
                raise WaferError(f"--dataset {kind}: only sharegpt is supported")
            dataset = Path(file)
        given["loads"] = given["loads"] or [0.5, 1, 1.5, 2, 2.25, 2.4]
        return cls(step_seconds=step_seconds, warmup_seconds=warmup_seconds, dataset=dataset or None, **given)


def sweep_exit(summary: SweepSummary, fail_on_no_knee: bool) -> tuple[int, str | None]:
    """The command's exit code for a finished sweep, and what to say: 130 / 143 interrupted (Ctrl-C
    / SIGTERM); 1 when the sweep stopped on refusals, a step had no success, or (when asked) no knee."""
    if any(s.interrupted for s in summary.steps):
        return (143 if summary.interrupted_by == "SIGTERM" else 130), None
    refused = [s for s in summary.steps if s.refused]
    if refused:
        return 1, f"the sweep stopped: {refused[0].aborted}"
    dead = [s for s in summary.steps if s.requests and not s.succeeded]
    if dead:
        return 1, f"{len(dead)} step(s) had no successful request"
    return (1 if fail_on_no_knee and summary.knee.load is None else 0), None


ASSUMED_GPUS = 8  # one MI355X node
PARALLEL_KEYS = ("tp_size", "dp_size", "pp_size", "enable_dp_attention")
SECRET_WORDS = ("key", "token", "secret", "password")  # sglang's server info holds api_key / admin_api_key


async def server_info(client: aiohttp.ClientSession, endpoint: Endpoint) -> dict:
    """Whatever the server says about itself (sglang, vLLM, llama.cpp endpoints), best effort:
    the first 20 fields of each answer and sglang's parallelism, never a field named like a secret."""
    info = {}
    for path in ("/v1/models", "/get_server_info", "/version", "/props"):
        try:
            async with client.get(
                endpoint.url + path, headers=dict(endpoint.headers), timeout=aiohttp.ClientTimeout(total=10)
            ) as response:
                if response.status != 200 or not response.content_type.endswith("json"):
                    continue
                body = await response.json()
        except (aiohttp.ClientError, TimeoutError, OSError, ValueError):
            continue
        if isinstance(body, dict):
            public = [k for k in body if not any(word in k.lower() for word in SECRET_WORDS)]
            info[path] = {k: body[k] for k in public[:20] + [k for k in PARALLEL_KEYS if k in body]}
        else:
            info[path] = body
    return info


def gpus_serving(info: dict) -> int | None:
    """GPUs behind the endpoint, from sglang's server info: tp x pp, times dp unless DP attention
    splits the TP group (then dp ranks share its GPUs)."""
    args = info.get("/get_server_info") or {}
    if "tp_size" not in args:  # not sglang
        return None
    try:
        tp, pp, dp = (int(args.get(k) or 1) for k in ("tp_size", "pp_size", "dp_size"))
    except (TypeError, ValueError):
        return None
    return tp * pp * (1 if args.get("enable_dp_attention") else dp)


async def connect(client: aiohttp.ClientSession, endpoint: Endpoint) -> Endpoint:
    """The endpoint with the model it serves (checked, or taken from /v1/models)."""
    served = await preflight.served_models(client, endpoint)
    return dataclasses.replace(endpoint, model=preflight.choose_model(endpoint.model, served, endpoint.url))


def _metadata(
    endpoint: Endpoint, server: dict, tokenizer, spec: str, seed: int, started: str, command: str, tag: str | None
) -> dict:
    return {
        "tag": tag,
        "command": command,
        "started": started,
        "finished": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "client": {
            "wafer_sglang": __version__,
            "aiohttp": aiohttp.__version__,
            "python": platform.python_version(),
            "host": platform.node(),
        },
        "server": {**endpoint.public(), "info": server},
        "tokenizer": {"spec": spec, "sha256_16": tokenizer_hash(tokenizer)},
        "seed": seed,
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

            self.live = Live(console=Console(stderr=True), refresh_per_second=4, transient=True)
            self.live.__enter__()
        return self

    def __exit__(self, *exc):
        if self.live:
            self.live.__exit__(*exc)

    def update(self, label: str, run: StepRun) -> None:
        now = time.perf_counter()
        if not self.tty and now - self.last < 10:
            return
        self.last = now
        done = sum(1 for r in run.records if r.e2e_s is not None or r.error)
        failed = sum(1 for r in run.records if r.error)
        line = (
            f"{label} | {now - run.t0:6.1f} s | sent {len(run.records)} | done {done} | "
            f"in flight {len(run.records) - done} | failed {failed}"
        )
        if self.live:
            self.live.update(line)
        else:
            print(line, file=sys.stderr, flush=True)

    def say(self, text: str) -> None:
        (self.live.console.print if self.live else lambda t: print(t, file=sys.stderr, flush=True))(text)


async def _prime(
    client, endpoint: Endpoint, prompts, load: float, stop: asyncio.Event, metrics_urls: list[str], together: bool
) -> tuple[list[Record], dict | None]:
    """One request per prefix group, all at once, so the measured requests find them cached.

    At once, as traffic arrives: sent one after another, every primer would reach a router with
    nothing in flight, and a router that sends a cache miss to the least-loaded worker (first
    minimum wins: sglang-router 0.3.2) would put every group on one worker. With several
    metrics URLs (workers behind a router), the second value says where the primers went."""
    groups = range(len(prompts.prefixes) if prompts.cache_hit and not stop.is_set() else 0)
    if not groups:
        return [], None
    before = await prom.scrape(client, metrics_urls, endpoint.headers) if len(metrics_urls) > 1 else None
    primed = []
    for group in groups:
        prompt = prompts.primer(group)
        record = Record(
            index=-1 - group,
            step=load,
            phase="prime",
            intended_s=0.0,
            expected_prompt_tokens=prompt.tokens,
            requested_output=1,
            group=group,
        )
        primed.append((record, stream(client, endpoint, record, prompt.text, time.perf_counter())))
    if together:
        await asyncio.gather(*(_unless_stopped(request, stop) for _, request in primed))
    else:
        for _, request in primed:
            await _unless_stopped(request, stop)
    records = [record for record, _ in primed]
    if before is None:
        return records, None
    after = await prom.scrape(client, metrics_urls, endpoint.headers)
    return records, prom.primers_per_server(before, after, [r.expected_prompt_tokens for r in records])


async def _unless_stopped(request, stop: asyncio.Event):
    """Await one request, cancelled (and recorded so) the moment the run is stopped."""
    task, stopped = asyncio.create_task(request), asyncio.create_task(stop.wait())
    await asyncio.wait([task, stopped], return_when=asyncio.FIRST_COMPLETED)
    for t in (task, stopped):
        t.cancel()
    results = await asyncio.gather(task, stopped, return_exceptions=True)
    return results[0]


def _install_stop() -> asyncio.Event:
    """Ctrl-C and SIGTERM end the run at once: in-flight requests are cancelled and recorded."""
    stop = asyncio.Event()
    stop.signal = None  # which one: the exit code says it (130 SIGINT, 143 SIGTERM)
    loop = asyncio.get_running_loop()

    def stopped(sig: signal.Signals) -> None:
        stop.signal = stop.signal or sig.name
        stop.set()

    for sig in (signal.SIGINT, signal.SIGTERM):
        try:
            loop.add_signal_handler(sig, stopped, sig)
        except (NotImplementedError, RuntimeError, ValueError):
            pass
    return stop


class _Sweep:
    """One sweep's state: what it writes after every step."""

    def __init__(self, options: SweepOptions, command: str):
        self.options, self.command = options, command
        self.interrupted_by: str | None = None  # SIGINT / SIGTERM
        now = datetime.now(timezone.utc)
        self.started = now.isoformat(timespec="seconds")
        self.started_compact = now.strftime("%Y%m%d-%H%M%S")  # vllm bench serve's "date"
        self.records: list[Record] = []
        self.steps: list[StepResult] = []
        self.exports: list[dict] = []  # bench_serving lines
        self.vllm_exports: list[dict] = []
        self.gpus_from = "--gpus"

    def count_gpus(self, server: dict) -> None:
        """--gpus, else what sglang says serves it, else ASSUMED_GPUS (said, and recorded)."""
        if self.options.gpus is not None:
            return
        found = gpus_serving(server)
        self.gpus_from = "the server's /get_server_info" if found else "assumed: the server does not say"
        if not found:
            say = "the server does not say how many GPUs serve it: per-GPU figures assume"
            print(f"bench sweep: {say} {ASSUMED_GPUS} (--gpus N)", file=sys.stderr)
        self.options = dataclasses.replace(self.options, gpus=found or ASSUMED_GPUS)

    def workload(self) -> dict:
        o = self.options
        shape = (
            {"dataset": "sharegpt", "dataset_file": str(o.dataset)}
            if o.dataset
            else {
                "input_len": o.input_len,
                "output_len": o.output_len,
                "cache_hit_target": o.cache_hit,
                "prefix_groups": o.prefix_groups,
                "prefix_groups_drawn": "at random per request (seeded)",
                "primers": o.primers,
            }
        )
        return {
            **shape,
            "mode": "closed loop (concurrent users)" if o.closed else f"open loop ({o.arrival} arrivals)",
            "step_seconds": None if o.num_prompts else o.step_seconds,
            "num_prompts": o.num_prompts,
            "warmup_seconds": o.warmup_seconds,
            "drain_seconds": o.drain_seconds,
            "gpus": o.gpus,
            "gpus_from": self.gpus_from,
        }

    def summary(self, endpoint, server, tokenizer) -> SweepSummary:
        o = self.options
        return SweepSummary(
            run=_metadata(
                endpoint, server, tokenizer, o.tokenizer or endpoint.model, o.seed, self.started, self.command, o.tag
            ),
            workload=self.workload(),
            definitions={
                "aggregate_tok_s_node": AGGREGATE_DEFINITION,
                "offered_rps": "measured requests the client released in the window / window length",
                "cache_hit_server": "delta of the servers' cached/prompt token counters over the measured window",
                "accept_length": "speculative decoding: tokens per target forward over the window (server counters)",
                "inferencex": "output/total tok/s per GPU (--gpus), interactivity = 1000 / TPOT p50 ms",
            },
            steps=self.steps,
            knee=knee(self.steps, o.slo),
            interrupted_by=self.interrupted_by,
            cost={"usd_per_gpu_hour": o.price[0], "source": o.price[1], "gpus_per_node": o.gpus} if o.price else None,
        )

    def write(self, endpoint, server, tokenizer) -> SweepSummary:
        summary = self.summary(endpoint, server, tokenizer)
        for row in self.exports:
            row["server_info"] = server
        workload = self.workload()
        exports = {
            "bench_serving.jsonl": self.exports,
            "vllm_bench_serve.jsonl": self.vllm_exports,
            "inferencex_agg.jsonl": [
                export.inferencex_agg(v, server, workload, self.options.gpus) for v in self.vllm_exports
            ],
        }
        report.write(self.options.out, summary, self.records, exports, cost=self.options.price is not None)
        return summary


def _prompts(options: SweepOptions, tokenizer):
    builder = PromptBuilder(tokenizer, options.seed)
    if options.dataset:
        return ShareGPTPrompts(builder, options.dataset, options.seed)
    return SweepPrompts(
        builder,
        options.input_len,
        options.cache_hit,
        options.prefix_groups,
        f"{time.time_ns()}-{options.seed}",
        options.seed,
    )


async def sweep(options: SweepOptions, command: str) -> SweepSummary:
    state = _Sweep(options, command)
    stop = _install_stop()
    async with make_client(options.keepalive) as client:
        endpoint = await connect(client, options.endpoint)
        tokenizer = load_tokenizer(options.tokenizer or endpoint.model)
        prompts = _prompts(options, tokenizer)
        server = await server_info(client, endpoint)
        state.count_gpus(server)
        options = state.options
        largest = prompts.largest()
        metrics_urls = options.metrics_urls or [endpoint.url]
        await _preflight(client, endpoint, largest, largest.output_len or options.output_len, metrics_urls, stop)
        print(
            f"bench sweep: {endpoint.model} at {endpoint.url}; "
            + options.plan(options.loads)
            + f"; writing {options.out}",
            file=sys.stderr,
            flush=True,
        )
        with _Live() as live:
            for number, load in enumerate(options.loads):
                if stop.is_set():
                    break
                stats = await _step(client, endpoint, options, prompts, state, number, load, metrics_urls, stop, live)
                stats.interrupted = stop.is_set()
                state.interrupted_by = stop.signal
                state.steps.append(stats)
                state.write(endpoint, server, tokenizer)
                live.say(_step_line(number, options, stats))
                if stats.refused:
                    live.say(f"stopping: the server refuses this workload ({stats.aborted})")
                    break
    return state.write(endpoint, server, tokenizer)


async def _preflight(client, endpoint: Endpoint, largest, output_len: int, metrics_urls: list[str], stop) -> None:
    """The largest request, refused or not, before anything is measured; then the wait for the
    servers to be done with it, so that it is not in the first measurement."""
    before = await prom.scrape(client, metrics_urls, endpoint.headers)
    await preflight.check_largest(client, endpoint, largest, output_len)
    if not await preflight.settle(client, endpoint, metrics_urls, before, stop):
        print(
            "bench: the servers did not report the preflight request finished within 30 s; measuring anyway",
            file=sys.stderr,
            flush=True,
        )


async def _step(
    client,
    endpoint: Endpoint,
    options: SweepOptions,
    prompts,
    state: _Sweep,
    number: int,
    load: float,
    metrics_urls: list[str],
    stop: asyncio.Event,
    live: _Live,
) -> StepResult:
    together = options.primers == "together"
    primed, primer_servers = await _prime(client, endpoint, prompts, load, stop, metrics_urls, together)
    state.records += primed
    if primer_servers:
        live.say(
            "primers per worker: " + ", ".join(f"{url} {'?' if n is None else n}" for url, n in primer_servers.items())
        )
    base_index, window = len(state.records), {}

    def make_request(index: int, phase: str, offset: float):
        prompt = prompts.make(base_index + index)
        output_len = prompt.output_len or options.output_len
        return Record(
            index=base_index + index,
            step=load,
            phase=phase,
            intended_s=offset,
            group=prompt.group,
            expected_prompt_tokens=prompt.tokens,
            requested_output=output_len,
        ), prompt.text

    def window_start():
        window["before"] = asyncio.create_task(prom.scrape(client, metrics_urls, endpoint.headers))

    step = Step(
        load,
        options.closed,
        options.step_seconds,
        options.warmup_seconds,
        options.drain_seconds,
        options.arrival,
        options.seed + number,
        options.fail_after,
        options.num_prompts,
    )
    label = f"step {number + 1}/{len(options.loads)} ({load:g} {'users' if options.closed else 'rps'})"
    run = await run_step(client, endpoint, step, make_request, stop, lambda r: live.update(label, r), window_start)
    before = await window["before"] if "before" in window else {}
    after = await prom.scrape(client, metrics_urls, endpoint.headers)
    counters = prom.window(before, after) if before else {}
    stats = step_stats(
        run,
        step,
        prompts.cache_hit,
        counters.get("cache_hit_server"),
        None if options.dataset else options.output_len,
        options.slo.goodput,
    )
    for name in ("metrics_family", "accept_length", "per_server"):
        setattr(stats, name, counters.get(name))
    stats.primers_per_server = primer_servers or None
    stats.inferencex = export.inferencex(stats, options.gpus)
    if options.price:
        add_costs(stats, options.price[0], options.gpus)
    state.records += run.records
    reuse = _dataset_reuse(prompts, len(state.records))
    if reuse:
        stats.checks.append(reuse)
        live.say(f"warning: {reuse}")
    summary_run = {"server": endpoint.public()}
    row = export.bench_serving_result(
        stats, run.records, summary_run, state.workload(), run.end_s - options.warmup_seconds
    )
    state.exports.append(row)
    vllm_run = {
        **summary_run,
        "tag": options.tag,
        "tokenizer": options.tokenizer or endpoint.model,
        "arrival": options.arrival,
    }
    state.vllm_exports.append(export.vllm_result(row, stats, run.records, vllm_run, state.started_compact))
    return stats


def _dataset_reuse(prompts, drawn: int) -> str | None:
    """A dataset smaller than the run replays its conversations, and repeats are cache hits."""
    pairs = getattr(prompts, "pairs", None)
    if not pairs or drawn <= len(pairs):
        return None
    return (
        f"dataset reused: {drawn} requests so far drew on {len(pairs)} conversations "
        f"({drawn / len(pairs):.1f}x); repeats hit the server's prefix cache and read faster than new prompts"
    )


def _step_line(number: int, options: SweepOptions, stats: StepResult) -> str:
    reasons = options.slo.failures(stats) if judged(stats) else ["not judged: no request measured in the window"]
    left = options.loads[number + 1 :]
    eta = f"; {len(left)} step(s) left: {options.plan(left)}" if left else ""
    unit = "users" if options.closed else "rps"
    figures = (
        f"{stats.output_tok_s or 0:.0f} tok/s, TTFT p50/p95 "
        f"{stats.ttft_p50_s or 0:.2f}/{stats.ttft_p95_s or 0:.2f} s, "
        f"{(stats.success_rate or 0):.0%} ok" + (f", offered {stats.offered_rps:.2f} rps" if not options.closed else "")
    )
    verdict = "sustained" if not reasons else "FAILED: " + "; ".join(reasons)
    return f"step {number + 1}/{len(options.loads)} ({stats.load:g} {unit}): {figures} -- {verdict}{eta}"


def knee_line(summary: SweepSummary) -> str:
    return describe(summary.knee)


@dataclass
class SingleOptions:
    endpoint: Endpoint
    tokenizer: str | None
    out: Path
    input_len: int = 10000
    output_len: int = 1500
    runs: int = 5
    seed: int = 0
    tag: str | None = None


async def single(options: SingleOptions, command: str) -> SingleSummary:
    """Artificial Analysis single stream: unique prompts, one at a time; output speed = tokens
    per second after the first chunk (TTFT excluded), median over runs."""
    started = datetime.now(timezone.utc).isoformat(timespec="seconds")
    stop = _install_stop()
    records = []
    async with make_client(False) as client:
        endpoint = await connect(client, options.endpoint)
        tokenizer = load_tokenizer(options.tokenizer or endpoint.model)
        builder = PromptBuilder(tokenizer, options.seed)
        run_nonce = f"{time.time_ns()}-{options.seed}"
        server = await server_info(client, endpoint)
        largest = unique_prompt(builder, options.input_len, f"{run_nonce}/largest")
        await _preflight(client, endpoint, largest, options.output_len, [endpoint.url], stop)
        for index in range(options.runs):
            if stop.is_set():
                break
            prompt = unique_prompt(builder, options.input_len, f"{run_nonce}/single/{index}")
            record = Record(
                index=index,
                step=0.0,
                phase="measure",
                intended_s=0.0,
                expected_prompt_tokens=prompt.tokens,
                requested_output=options.output_len,
            )
            await _unless_stopped(stream(client, endpoint, record, prompt.text, time.perf_counter()), stop)
            records.append(record)
            print(
                f"run {index + 1}/{options.runs}: {_speed(record) or 0:.1f} tok/s, TTFT {record.ttft_s or 0:.2f} s"
                + (f" ({record.error})" if record.error else ""),
                file=sys.stderr,
                flush=True,
            )
            if record.status is not None and 400 <= record.status < 500:
                break  # refused: the same request again would be refused again
    summary = _single_summary(options, endpoint, server, tokenizer, started, command, records, stop.signal)
    _write_single(options, summary, records)
    return summary


def _single_summary(options, endpoint, server, tokenizer, started, command, records, interrupted) -> SingleSummary:
    ok = [r for r in records if r.ok]
    speeds = [s for r in ok if (s := _speed(r)) is not None]
    spec = options.tokenizer or endpoint.model
    return SingleSummary(
        run=_metadata(endpoint, server, tokenizer, spec, options.seed, started, command, options.tag),
        workload={"input_len": options.input_len, "output_len": options.output_len, "runs": options.runs},
        definitions={
            "output_speed_tok_s": "(completion tokens - 1) / (end - first chunk): tokens per second after the first "
            "chunk, TTFT excluded (Artificial Analysis)"
        },
        runs=[
            {
                "index": r.index,
                "output_speed_tok_s": _speed(r),
                "ttft_s": r.ttft_s,
                "e2e_s": r.e2e_s,
                "completion_tokens": r.completion_tokens,
                "prompt_tokens": r.prompt_tokens,
                "error": r.error,
            }
            for r in records
        ],
        median_output_speed_tok_s=statistics.median(speeds) if speeds else None,
        median_ttft_s=statistics.median([r.ttft_s for r in ok]) if ok else None,
        success_rate=len(ok) / len(records) if records else None,
        interrupted_by=interrupted,
    )


def _write_single(options: SingleOptions, summary: SingleSummary, records: list[Record]) -> None:
    from wafer_sglang.fsutil import atomic_write_text

    results.write(options.out, summary)
    report.write_requests(options.out, records)
    table = (
        "| Input / output | Runs | Output speed (median) | TTFT (median) | Success |\n|---|---|---|---|---|\n"
        f"| {options.input_len} / {options.output_len} | {len(records)} | "
        f"{summary.median_output_speed_tok_s or 0:.1f} tok/s | {summary.median_ttft_s or 0:.2f} s | "
        f"{(summary.success_rate or 0) * 100:.0f}% |\n"
    )
    atomic_write_text(options.out / "table.md", table)


def _speed(record: Record) -> float | None:
    if not record.ok or not record.completion_tokens or record.completion_tokens < 2:
        return None
    decode = record.e2e_s - record.ttft_s
    return (record.completion_tokens - 1) / decode if decode > 0 else None
