"""Per-step statistics (numpy percentiles), the knee, and costs."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

import numpy as np

from wafer_sglang.bench.client import Record

# What "aggregate tok/s/node" means in our tables: output (generated) tokens per second, summed
# over every request the node served in the measured window. The seed table's 2626 tok/s at
# 2.4 rps is ~1094 output tokens per request, i.e. output tokens.
AGGREGATE_DEFINITION = (
    "aggregate tok/s/node = output (completion) tokens per second across the whole server, counted from the "
    "server's usage.completion_tokens of successful requests sent in the measured window, divided by the window length"
)


def _pct(values: list[float], q: float) -> float | None:
    return float(np.percentile(np.asarray(values, dtype=float), q)) if values else None


def _mean(values: list[float]) -> float | None:
    return float(np.mean(values)) if values else None


def error_kind(error: str) -> str:
    return error.split(":", 1)[0].split(" ")[0] if error else "ok"


def step_stats(records: list[Record], rate: float, window_s: float, target_hit: float | None,
               server_hit: float | None, requested_output: int) -> dict:
    measured = [r for r in records if r.phase == "measure"]
    ok = [r for r in measured if r.ok]
    tpot = [(r.e2e_s - r.ttft_s) / (r.completion_tokens - 1) for r in ok if r.completion_tokens and r.completion_tokens > 1]
    gaps = [g for r in ok for g in r.chunk_gaps_s]
    prompt = sum(r.prompt_tokens or 0 for r in ok)
    output = sum(r.completion_tokens or 0 for r in ok)
    cached = [r.cached_tokens for r in ok if r.cached_tokens is not None]
    lateness = [r.sent_s - r.intended_s for r in measured]
    client_hit = sum(cached) / prompt if cached and prompt else None
    stats = {
        "target_rps": rate,
        "achieved_rps": len(measured) / window_s if window_s > 0 else None,
        "requests": len(measured),
        "succeeded": len(ok),
        "success_rate": len(ok) / len(measured) if measured else None,
        "failures": dict(Counter(error_kind(r.error) for r in measured if not r.ok)),
        "ttft_p50_s": _pct([r.ttft_s for r in ok], 50), "ttft_p95_s": _pct([r.ttft_s for r in ok], 95),
        "ttft_p99_s": _pct([r.ttft_s for r in ok], 99),
        "tpot_mean_s": _mean(tpot), "tpot_p50_s": _pct(tpot, 50), "tpot_p95_s": _pct(tpot, 95),
        "itl_p50_s": _pct(gaps, 50), "itl_p95_s": _pct(gaps, 95), "itl_p99_s": _pct(gaps, 99),
        "e2e_p50_s": _pct([r.e2e_s for r in ok], 50), "e2e_p95_s": _pct([r.e2e_s for r in ok], 95),
        "input_tok_s": prompt / window_s if window_s > 0 else None,
        "output_tok_s": output / window_s if window_s > 0 else None,
        "total_tok_s": (prompt + output) / window_s if window_s > 0 else None,
        "output_tokens_per_request": output / len(ok) if ok else None,
        "output_tokens_requested": requested_output,
        "prompt_tokens_server_minus_client": _mean([r.prompt_tokens - r.expected_prompt_tokens for r in ok if r.prompt_tokens is not None]),
        "cache_hit_target": target_hit,
        "cache_hit_client": client_hit,
        "cache_hit_server": server_hit,
        "send_lateness_p99_s": _pct(lateness, 99),
    }
    stats["checks"] = consistency(stats)
    return stats


def consistency(stats: dict) -> list[str]:
    """Warnings that make a number in the row unreliable."""
    notes = []
    per_request, requested = stats["output_tokens_per_request"], stats["output_tokens_requested"]
    if per_request and requested and abs(per_request / requested - 1) > 0.02:
        notes.append(f"output tokens per request {per_request:.0f} vs {requested} requested: aggregate tok/s counts what the server reports")
    offset = stats["prompt_tokens_server_minus_client"]
    if offset is not None and abs(offset) >= 1:
        notes.append(f"server counts {offset:+.1f} prompt tokens per request vs the client tokenizer (BOS / chat template?)")
    for key in ("cache_hit_client", "cache_hit_server"):
        if stats["cache_hit_target"] is not None and stats[key] is not None and abs(stats[key] - stats["cache_hit_target"]) > 0.05:
            notes.append(f"{key.removeprefix('cache_hit_')} hit rate {stats[key]:.2f} is off the {stats['cache_hit_target']:.2f} target")
    if stats["cache_hit_target"] and stats["cache_hit_server"] is None:
        notes.append("no server cache counters (metrics endpoint missing or unknown)")
    return notes


@dataclass(frozen=True)
class Slo:
    ttft_p95_s: float = 5.0
    success_rate: float = 0.99
    achieved_fraction: float = 0.95

    def met(self, step: dict) -> bool:
        return (step["ttft_p95_s"] is not None and step["ttft_p95_s"] <= self.ttft_p95_s
                and (step["success_rate"] or 0) >= self.success_rate
                and (step["achieved_rps"] or 0) >= self.achieved_fraction * step["target_rps"])


def knee(steps: list[dict], slo: Slo) -> dict:
    """The highest rate at which that step and every lower one meet the SLO (monotone)."""
    best = None
    for step in sorted(steps, key=lambda s: s["target_rps"]):
        if not slo.met(step):
            break
        best = step
    return {"target_rps": best["target_rps"] if best else None,
            "output_tok_s": best["output_tok_s"] if best else None,
            "slo": {"ttft_p95_s": slo.ttft_p95_s, "success_rate": slo.success_rate, "achieved_fraction": slo.achieved_fraction}}


def add_costs(step: dict, hourly_usd: float, gpus: int) -> None:
    per_second = hourly_usd * gpus / 3600.0
    for kind in ("output", "total"):
        rate = step[f"{kind}_tok_s"]
        step[f"usd_per_m_{kind}_tokens"] = per_second * 1e6 / rate if rate else None
