"""Benchmark outputs: summary.json, requests.jsonl, table.md, plots."""

from __future__ import annotations

import json
from pathlib import Path

from wafer_sglang.bench.stats import AGGREGATE_DEFINITION
from wafer_sglang.fsutil import atomic_write_text


def _fmt(value, pattern: str, missing: str = "-") -> str:
    return missing if value is None else pattern.format(value)


def markdown_table(steps: list[dict], knee_rps: float | None, cost: bool) -> str:
    """The seed's columns, then the rest of what users ask for."""
    head = ["Sustained RPS", "Aggregate tok/s/node", "TTFT p50 / p95", "Success", "Achieved RPS", "TPOT p50",
            "Cache hit (client / server)"]
    if cost:
        head += ["$/M output tok", "$/M total tok"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for s in steps:
        label = f"{s['target_rps']:g}" + (" (knee)" if knee_rps == s["target_rps"] else "")
        row = [label, _fmt(s["output_tok_s"], "{:.0f}"),
               f"{_fmt(s['ttft_p50_s'], '{:.2f}s')} / {_fmt(s['ttft_p95_s'], '{:.2f}s')}",
               _fmt(s["success_rate"] and s["success_rate"] * 100, "{:.0f}%", "0%"),
               _fmt(s["achieved_rps"], "{:.2f}"), _fmt(s["tpot_p50_s"] and s["tpot_p50_s"] * 1000, "{:.1f} ms"),
               f"{_fmt(s['cache_hit_client'], '{:.2f}')} / {_fmt(s['cache_hit_server'], '{:.2f}')}"]
        if cost:
            row += [_fmt(s.get("usd_per_m_output_tokens"), "${:.2f}"), _fmt(s.get("usd_per_m_total_tokens"), "${:.3f}")]
        lines.append("| " + " | ".join(row) + " |")
    lines += ["", f"_{AGGREGATE_DEFINITION}._"]
    return "\n".join(lines) + "\n"


def plots(steps: list[dict], out: Path, knee_rps: float | None) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rates = [s["target_rps"] for s in steps]
    made = []
    for name, series, ylabel in (
        ("throughput.png", [("output tok/s (aggregate/node)", "output_tok_s")], "tokens / s"),
        ("ttft.png", [("TTFT p50", "ttft_p50_s"), ("TTFT p95", "ttft_p95_s")], "seconds"),
    ):
        fig, ax = plt.subplots(figsize=(7, 4.2), dpi=110)
        for label, key in series:
            ax.plot(rates, [s[key] if s[key] is not None else float("nan") for s in steps], marker="o", label=label)
        if knee_rps is not None:
            ax.axvline(knee_rps, color="grey", linestyle="--", label=f"knee {knee_rps:g} rps")
        ax.set_xlabel("target requests / s")
        ax.set_ylabel(ylabel)
        ax.grid(alpha=0.3)
        ax.legend()
        fig.tight_layout()
        fig.savefig(out / name)
        plt.close(fig)
        made.append(out / name)
    return made


def write(out: Path, summary: dict, records: list, steps: list[dict], cost: bool) -> None:
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out / "summary.json", json.dumps(summary, indent=2) + "\n")
    atomic_write_text(out / "requests.jsonl", "".join(json.dumps(r.as_dict()) + "\n" for r in records))
    knee_rps = (summary.get("knee") or {}).get("target_rps")
    atomic_write_text(out / "table.md", markdown_table(steps, knee_rps, cost))
    if steps:
        plots(steps, out, knee_rps)
