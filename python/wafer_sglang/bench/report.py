"""Benchmark outputs: summary.json, requests.jsonl, table.md, bench_serving.jsonl,
vllm_bench_serve.jsonl, inferencex_agg.jsonl and plots."""

from __future__ import annotations

import json
from pathlib import Path

from wafer_sglang.bench import results
from wafer_sglang.bench.knee import Slo, judged
from wafer_sglang.bench.results import Knee, StepResult, SweepSummary
from wafer_sglang.bench.stats import AGGREGATE_DEFINITION
from wafer_sglang.fsutil import atomic_write_text

PLOTS = ("throughput.png", "ttft.png", "pareto.png")


def _fmt(value, pattern: str, missing: str = "-") -> str:
    return missing if value is None else pattern.format(value)


def _load_label(step: StepResult) -> str:
    if step.closed:
        return f"{step.load:g} users"
    return f"{step.load:g} ({_fmt(step.offered_rps, '{:.2f}')})"


def markdown_table(steps: list[StepResult], knee: Knee, slo: Slo, cost: bool) -> str:
    """The seed's columns, then the rest of what users ask for, and each step's verdict."""
    closed = bool(steps) and steps[0].closed
    head = [
        "Users" if closed else "Target RPS (offered)",
        "Aggregate tok/s/node",
        "TTFT p50 / p95",
        "Success",
        "TPOT p50",
        "Cache hit (client / server)",
        "Accept len",
        "Verdict",
    ]
    if cost:
        head[-1:-1] = ["$/M output tok", "$/M total tok"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for s in steps:
        reasons = slo.failures(s)
        verdict = ("knee" if s.load == knee.load else "ok") if not reasons else "failed: " + "; ".join(reasons)
        if not judged(s):
            verdict = "not judged: no request measured (window too short for the rate)"
        row = [
            _load_label(s),
            _fmt(s.output_tok_s, "{:.0f}"),
            f"{_fmt(s.ttft_p50_s, '{:.2f}s')} / {_fmt(s.ttft_p95_s, '{:.2f}s')}",
            _fmt(s.success_rate and s.success_rate * 100, "{:.0f}%", "0%"),
            _fmt(s.tpot_p50_s and s.tpot_p50_s * 1000, "{:.1f} ms"),
            f"{_fmt(s.cache_hit_client, '{:.2f}')} / {_fmt(s.cache_hit_server, '{:.2f}')}",
            _fmt(s.accept_length, "{:.2f}"),
            verdict,
        ]
        if cost:
            row[-1:-1] = [
                _fmt(s.usd_per_m_output_tokens, "${:.2f}"),
                _fmt(s.usd_per_m_total_tokens, "${:.3f}"),
            ]
        lines.append("| " + " | ".join(row) + " |")
    lines += ["", f"_{AGGREGATE_DEFINITION}._", "", "_Knee rules: " + "; ".join(slo.rules()) + "._"]
    return "\n".join(lines) + "\n"


def title(summary: SweepSummary) -> str:
    run, workload = summary.run, summary.workload
    shape = (
        f"ShareGPT {workload['dataset_file']}"
        if workload.get("dataset") == "sharegpt"
        else f"{workload['input_len']} in / {workload['output_len']} out, {workload['cache_hit_target']:.0%} prefix hit"
    )
    return (
        f"{run['server']['model']} @ {run['server']['url']} — {shape}\n"
        f"{run['started'][:10]}, wafer-sglang {run['client']['wafer_sglang']}"
    )


def figures(summary: SweepSummary) -> dict[str, object]:
    """The run's plots by file name: throughput and TTFT against load with the knee and failed
    steps marked, and the per-GPU Pareto frontier."""
    from wafer_sglang.bench import plots

    steps, slo = summary.steps, Slo(**summary.knee.slo)
    closed = steps[0].closed
    xs = [s.load if closed else (s.offered_rps or s.load) for s in steps]
    xlabel = "concurrent users" if closed else "offered requests / s (released in the window)"
    failed = [judged(s) and bool(slo.failures(s)) for s in steps]
    knee_value = summary.knee.load
    knee_at = next((i for i, s in enumerate(steps) if knee_value is not None and s.load == knee_value), None)
    made = {}
    for name, series, ylabel in (
        ("throughput.png", [("output tok/s (aggregate/node)", "output_tok_s")], "tokens / s"),
        ("ttft.png", [("TTFT p50", "ttft_p50_s"), ("TTFT p95", "ttft_p95_s")], "seconds"),
    ):
        fig, (ax,) = plots.figure()
        for label, key in series:
            ys = [getattr(s, key) for s in steps]
            ax.plot(xs, [float("nan") if y is None else y for y in ys], marker="o", label=label)
            plots.mark(ax, xs, ys, knee_at if key == series[-1][1] else None, failed, key == series[0][1])
        if name == "ttft.png":
            ax.axhline(slo.ttft_p95_s, color="red", linestyle=":", label=f"SLO: TTFT p95 <= {slo.ttft_p95_s:g} s")
        _axes(ax, xlabel, ylabel)
        plots.finish(fig, title(summary))
        made[name] = fig
    fig, (ax,) = plots.figure()
    points = [
        {
            "per_user": (s.inferencex or {}).get("interactivity_tok_s_user"),
            "per_gpu": (s.inferencex or {}).get("output_tok_s_per_gpu"),
            "load_label": plots.load_label(x, closed),
            "failed": f,
        }
        for s, x, f in zip(steps, xs, failed)
    ]
    plots.pareto(ax, [p for p in points if p["per_user"] and p["per_gpu"]], "frontier of the sustained steps")
    _axes(ax, "interactivity: tok/s per user (1000 / TPOT p50 ms)", "output tok/s per GPU")
    plots.finish(fig, title(summary))
    made["pareto.png"] = fig
    return made


def _axes(ax, xlabel: str, ylabel: str) -> None:
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.grid(alpha=0.3)
    ax.margins(x=0.12, y=0.12)


def write_requests(out: Path, records: list) -> None:
    """requests.jsonl: every request of the run, as the client recorded it (sweep and single)."""
    atomic_write_text(out / "requests.jsonl", "".join(json.dumps(r.as_dict()) + "\n" for r in records))


def write(out: Path, summary: SweepSummary, records: list, exports: dict[str, list[dict]], cost: bool) -> None:
    """``exports``: JSON-lines files by name (bench_serving.jsonl, vllm_bench_serve.jsonl, ...)."""
    results.write(out, summary)
    write_requests(out, records)
    for name, rows in exports.items():
        atomic_write_text(out / name, "".join(json.dumps(row) + "\n" for row in rows))
    atomic_write_text(out / "table.md", markdown_table(summary.steps, summary.knee, Slo(**summary.knee.slo), cost))
    if summary.steps:
        from wafer_sglang.bench.plots import save_png

        for name, fig in figures(summary).items():
            save_png(fig, out / name)
