"""``bench compare RUN... [--reference NAME]``: runs (their summary.json) and dated published
references side by side — one table, overlay plots of throughput and TTFT against load, and
the per-GPU Pareto (output tok/s per GPU vs tok/s per user)."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

from wafer_sglang import resources
from wafer_sglang.compat import tomllib
from wafer_sglang.errors import WaferError
from wafer_sglang.fsutil import atomic_write_text

REFERENCES = resources.DATA / "bench" / "references.toml"


@dataclass
class Series:
    label: str
    source: str  # a run folder, or a reference's source and date
    x_key: str  # "target_rps" | "concurrency"
    points: list[dict]  # load, output_tok_s, ttft_p50_s, ttft_p95_s, success_rate, per-GPU figures
    knee: str = ""


def load_run(folder: Path) -> Series:
    path = folder / "summary.json"
    try:
        summary = json.loads(path.read_text())
        steps = summary["steps"]
        x_key = "concurrency" if steps and steps[0].get("mode") == "concurrency" else "target_rps"
        points = [
            {
                "load": s[x_key],
                "output_tok_s": s["output_tok_s"],
                "ttft_p50_s": s["ttft_p50_s"],
                "ttft_p95_s": s["ttft_p95_s"],
                "success_rate": s["success_rate"],
                **{k: (s.get("inferencex") or {}).get(k) for k in ("output_tok_s_per_gpu", "interactivity_tok_s_user")},
            }
            for s in steps
        ]
        label = summary["run"].get("tag") or f"{summary['run']['server']['model']} ({folder.name})"
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise WaferError(f"{folder}: not a bench sweep output ({type(exc).__name__}: {exc})") from None
    from wafer_sglang.bench.knee import describe

    return Series(label, str(folder), x_key, points, describe(summary["knee"]) if "knee" in summary else "")


def references() -> dict[str, dict]:
    return tomllib.loads(REFERENCES.read_text())


def load_reference(name: str) -> Series:
    table = references()
    if name not in table:
        raise WaferError(f"unknown reference {name!r}; known: {', '.join(table)}")
    ref = table[name]
    points = []
    for rate, tok_s, p50, p95, success in ref["steps"]:
        points.append(
            {
                "load": rate,
                "output_tok_s": tok_s,
                "ttft_p50_s": _num(p50),
                "ttft_p95_s": _num(p95),
                "success_rate": _num(success),
                "output_tok_s_per_gpu": tok_s / ref["gpus"],
                "interactivity_tok_s_user": None,
            }
        )
    return Series(f"{name}: {ref['title']}", f"{ref['source']} (as of {ref['as_of']})", "target_rps", points)


def _num(value) -> float | None:
    return None if value is None or (isinstance(value, float) and math.isnan(value)) else float(value)


def table(series: list[Series]) -> str:
    lines = [
        "| Series | Load | Aggregate tok/s/node | tok/s/GPU | TTFT p50 / p95 | Success |",
        "|---|---|---|---|---|---|",
    ]
    for s in series:
        unit = "users" if s.x_key == "concurrency" else "rps"
        for p in s.points:
            lines.append(
                f"| {s.label} | {p['load']:g} {unit} | {_f(p['output_tok_s'], '{:.0f}')} | "
                f"{_f(p['output_tok_s_per_gpu'], '{:.0f}')} | {_f(p['ttft_p50_s'], '{:.2f}s')} / "
                f"{_f(p['ttft_p95_s'], '{:.2f}s')} | {_f(p['success_rate'] and p['success_rate'] * 100, '{:.0f}%')} |"
            )
    lines.append("")
    lines += [f"- **{s.label}**: {s.source}" + (f" — {s.knee}" if s.knee else "") for s in series]
    return "\n".join(lines) + "\n"


def _f(value, pattern: str) -> str:
    return "-" if value is None else pattern.format(value)


def write(series: list[Series], out: Path) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from wafer_sglang.bench.report import save_png

    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out / "comparison.md", table(series))
    atomic_write_text(out / "comparison.json", json.dumps([s.__dict__ for s in series], indent=2) + "\n")
    made = [out / "comparison.md", out / "comparison.json"]
    for name, key, ylabel in (
        ("compare_throughput.png", "output_tok_s", "output tok/s (aggregate/node)"),
        ("compare_ttft.png", "ttft_p95_s", "TTFT p95 (s)"),
    ):
        fig, ax = plt.subplots(figsize=(7.5, 4.6), dpi=110)
        for s in series:
            pts = [(p["load"], p[key]) for p in s.points if p[key] is not None]
            if pts:
                ax.plot(*zip(*pts), marker="o", label=s.label[:60])
        ax.set_xlabel("load (target rps, or users for closed-loop runs)")
        ax.set_ylabel(ylabel)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
        made.append(save_png(fig, out / name))
    fig, ax = plt.subplots(figsize=(7.5, 4.6), dpi=110)
    for s in series:
        pts = [
            (p["interactivity_tok_s_user"], p["output_tok_s_per_gpu"])
            for p in s.points
            if p["interactivity_tok_s_user"] and p["output_tok_s_per_gpu"]
        ]
        if pts:
            ax.plot(*zip(*sorted(pts)), marker="o", label=s.label[:60])
    ax.set_xlabel("interactivity: tok/s per user")
    ax.set_ylabel("output tok/s per GPU")
    ax.grid(alpha=0.3)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=7)
    made.append(save_png(fig, out / "compare_pareto.png"))
    return made
