"""Per-step statistics (numpy percentiles) and costs."""

from __future__ import annotations

from collections import Counter

import numpy as np

from wafer_sglang.bench.client import Record
from wafer_sglang.bench.results import StepResult

# What "aggregate tok/s/node" means in our tables: output (generated) tokens per second, summed
# over every request the node served in the measured window. The seed table's 2626 tok/s at
# 2.4 rps is ~1094 output tokens per request, i.e. output tokens.
AGGREGATE_DEFINITION = (
    "aggregate tok/s/node = output (completion) tokens per second across the whole server, counted from the "
    "server's usage.completion_tokens of successful requests sent in the measured window, divided by the window length"
)


MIN_PER_THIRD = 5  # requests in each third of a step before its TTFT trend is judged


def _pct(values: list[float], q: float) -> float | None:
    return float(np.percentile(np.asarray(values, dtype=float), q)) if values else None


def _mean(values: list[float]) -> float | None:
    return float(np.mean(values)) if values else None


def error_kind(error: str) -> str:
    """ "http 500", "connection", "truncated", "no output tokens", "unfinished", "cancelled", ..."""
    if not error:
        return "ok"
    head = error.split(":", 1)[0]
    return "unfinished" if head.startswith("unfinished") else head[:40]


def step_stats(
    run, step, target_hit: float | None, server_hit: float | None, requested_output: int | None, goodput=None
) -> StepResult:
    """One step's figures from its records (``run``: load.StepRun, ``step``: load.Step);
    ``goodput``: per-request SLOs in ms ({"ttft": 500, "tpot": 50, "e2el": ...})."""
    window_s = run.end_s - step.warmup_s  # the planned step, or where a counted one ended
    records = run.records
    measured = [r for r in records if r.phase == "measure"]
    ok = [r for r in measured if r.ok]
    tpot = [r.tpot_s for r in ok if r.tpot_s is not None]
    gaps = [g for r in ok for g in r.chunk_gaps_s]
    prompt = sum(r.prompt_tokens or 0 for r in ok)
    output = sum(r.completion_tokens or 0 for r in ok)
    cached = [r.cached_tokens for r in ok if r.cached_tokens is not None]
    lateness = [r.sent_s - r.intended_s for r in measured] if not step.closed else []
    client_hit = sum(cached) / prompt if cached and prompt else None
    stats = StepResult(
        mode="concurrency" if step.closed else "rate",
        load=step.load,
        offered_rps=len(measured) / window_s if window_s > 0 else None,
        requests=len(measured),
        succeeded=len(ok),
        success_rate=len(ok) / len(measured) if measured else None,
        failures=dict(Counter(error_kind(r.error) for r in measured if not r.ok)),
        aborted=run.aborted,
        refused=run.refused,
        drain_s=(run.last_done_s - run.end_s) if run.last_done_s is not None and run.last_done_s > run.end_s else 0.0,
        ttft_p50_s=_pct([r.ttft_s for r in ok], 50),
        ttft_p95_s=_pct([r.ttft_s for r in ok], 95),
        ttft_p99_s=_pct([r.ttft_s for r in ok], 99),
        ttft_trend=ttft_trend(measured),
        tpot_mean_s=_mean(tpot),
        tpot_p50_s=_pct(tpot, 50),
        tpot_p95_s=_pct(tpot, 95),
        itl_p50_s=_pct(gaps, 50),
        itl_p95_s=_pct(gaps, 95),
        itl_p99_s=_pct(gaps, 99),
        e2e_p50_s=_pct([r.e2e_s for r in ok], 50),
        e2e_p95_s=_pct([r.e2e_s for r in ok], 95),
        input_tok_s=prompt / window_s if window_s > 0 else None,
        output_tok_s=output / window_s if window_s > 0 else None,
        total_tok_s=(prompt + output) / window_s if window_s > 0 else None,
        output_tokens_per_request=output / len(ok) if ok else None,
        output_tokens_requested=requested_output,
        prompt_tokens_server_minus_client=_mean(
            [r.prompt_tokens - r.expected_prompt_tokens for r in ok if r.prompt_tokens is not None]
        ),
        cache_hit_target=target_hit,
        cache_hit_client=client_hit,
        cache_hit_server=server_hit,
        prefix_group_requests={
            str(g): n for g, n in sorted(Counter(r.group for r in measured if r.group >= 0).items())
        },
        send_lateness_p99_s=_pct(lateness, 99),
    )
    if goodput:
        good = sum(1 for r in ok if within(r, goodput))
        stats.request_goodput = good / window_s if window_s > 0 else None
        stats.goodput_attainment = good / len(measured) if measured else None
    stats.checks = consistency(stats)
    return stats


def within(record: Record, slos: dict[str, float]) -> bool:
    """Whether a successful request meets every SLO (ms), as vLLM's goodput counts it: TPOT =
    (latency - TTFT) / (output tokens - 1), 0 for a one-token answer."""
    measured = {"ttft": record.ttft_s * 1000, "tpot": (record.tpot_s or 0.0) * 1000, "e2el": record.e2e_s * 1000}
    return all(measured[name] <= ms for name, ms in slos.items())


def ttft_trend(measured: list[Record]) -> dict | None:
    """TTFT p50 of the first and last third of a step's arrivals: a server that keeps pace serves
    both alike; a growing queue shows as late requests waiting longer."""
    timed = sorted((r.intended_s, r.ttft_s) for r in measured if r.ok and r.ttft_s is not None)
    third = len(timed) // 3
    if third < MIN_PER_THIRD:
        return None
    return {
        "early_p50_s": _pct([t for _, t in timed[:third]], 50),
        "late_p50_s": _pct([t for _, t in timed[-third:]], 50),
        "per_third": third,
    }


def consistency(stats: StepResult) -> list[str]:
    """Warnings that make a number in the row unreliable."""
    notes = []
    per_request, requested = stats.output_tokens_per_request, stats.output_tokens_requested
    if per_request and requested and abs(per_request / requested - 1) > 0.02:
        notes.append(
            f"output tokens per request {per_request:.0f} vs {requested} requested: aggregate tok/s counts what the "
            "server reports"
        )
    offset = stats.prompt_tokens_server_minus_client
    if offset is not None and abs(offset) >= 1:
        notes.append(
            f"server counts {offset:+.1f} prompt tokens per request vs the client tokenizer (BOS / chat template?)"
        )
    target = stats.cache_hit_target
    for side, hit in (("client", stats.cache_hit_client), ("server", stats.cache_hit_server)):
        if target is not None and hit is not None and abs(hit - target) > 0.05:
            notes.append(f"{side} hit rate {hit:.2f} is off the {target:.2f} target")
    if target and stats.cache_hit_server is None:
        notes.append("no server cache counters (metrics endpoint missing or unknown)")
    return notes


def add_costs(step: StepResult, hourly_usd: float, gpus: int) -> None:
    per_second = hourly_usd * gpus / 3600.0
    step.usd_per_m_output_tokens = per_second * 1e6 / step.output_tok_s if step.output_tok_s else None
    step.usd_per_m_total_tokens = per_second * 1e6 / step.total_tok_s if step.total_tok_s else None
