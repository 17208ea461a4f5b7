"""``bench compare INPUT... [--reference NAME]``: runs side by side — ours (a sweep's folder),
sglang ``bench_serving`` JSONL, ``vllm bench serve`` result JSON, and dated published
references — in one table, overlay plots of throughput and TTFT against load (rps and users on
separate axes), and the per-GPU Pareto. Workloads that differ are named, never overlaid silently."""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path

from wafer_sglang import resources
from wafer_sglang.compat import tomllib
from wafer_sglang.errors import WaferError
from wafer_sglang.fsutil import atomic_write_text

REFERENCES = resources.DATA / "bench" / "references.toml"
WORKLOAD_FIELDS = ("input_len", "output_len", "cache_hit", "dataset")


@dataclass
class Series:
    label: str
    source: str  # a run folder or file, or a reference's source and date
    x_key: str  # "target_rps" | "concurrency"
    points: list[dict]  # load, output_tok_s, ttft_p50_s, ttft_p95_s, success_rate, per-GPU figures, failed, knee
    knee: str = ""
    workload: dict = field(default_factory=dict)  # WORKLOAD_FIELDS; None where the input does not say


def _point(load, tok_s, p50, p95, success, per_gpu=None, per_user=None, failed=None, knee=False) -> dict:
    return {
        "load": load,
        "output_tok_s": tok_s,
        "ttft_p50_s": p50,
        "ttft_p95_s": p95,
        "success_rate": success,
        "output_tok_s_per_gpu": per_gpu,
        "interactivity_tok_s_user": per_user,
        "failed": failed,
        "knee": knee,
    }


def load(path: Path, gpus: int | None = None) -> list[Series]:
    """A sweep's folder, or a results file (JSON or JSON lines) of sglang bench_serving or vllm
    bench serve. ``gpus``: for files that do not say how many GPUs served them."""
    if path.is_dir():
        return [load_run(path)]
    try:
        rows = _json_rows(path.read_text())
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise WaferError(f"{path}: not a bench sweep folder or a JSON results file ({exc})") from None
    if not rows:
        raise WaferError(f"{path}: no results in it")
    kinds = {_kind(row, path) for row in rows}
    if len(kinds) > 1:
        raise WaferError(f"{path}: mixes sglang bench_serving and vllm bench serve results")
    by_mode: dict[str, list[dict]] = {}
    for row in rows:
        by_mode.setdefault(_mode(row), []).append(row)
    kind = kinds.pop()
    return [_foreign(path, kind, mode, mode_rows, gpus, len(by_mode) > 1) for mode, mode_rows in by_mode.items()]


def _json_rows(text: str) -> list[dict]:
    """One JSON value (an object or a list of them) or JSON lines (bench_serving's
    --output-file, vllm's --append-result)."""
    try:
        data = json.loads(text)
    except ValueError:
        data = [json.loads(line) for line in text.splitlines() if line.strip()]
    rows = data if isinstance(data, list) else [data]
    if not all(isinstance(r, dict) for r in rows):
        raise ValueError("expected JSON objects")
    return rows


SGLANG_KEYS = ("random_input_len", "median_ttft_ms", "output_throughput")  # sglang/bench_serving.py result
VLLM_KEYS = ("endpoint_type", "median_ttft_ms", "output_throughput")  # vllm/benchmarks/serve.py result_json


def _kind(row: dict, path: Path) -> str:
    if all(k in row for k in SGLANG_KEYS):
        return "sglang bench_serving"
    if all(k in row for k in VLLM_KEYS):
        return "vllm bench serve"
    raise WaferError(
        f"{path}: a result with neither sglang bench_serving's fields ({', '.join(SGLANG_KEYS)}) nor vllm "
        f"bench serve's ({', '.join(VLLM_KEYS)}); has: {', '.join(list(row)[:12])}"
    )


def _rate(row: dict) -> float:
    rate = row.get("request_rate")
    return math.inf if rate in (None, "inf") else float(rate)


def _mode(row: dict) -> str:
    return "concurrency" if row.get("max_concurrency") and math.isinf(_rate(row)) else "target_rps"


def _foreign(path: Path, kind: str, x_key: str, rows: list[dict], gpus: int | None, split: bool) -> Series:
    first = rows[0]
    if kind == "sglang bench_serving":
        from wafer_sglang.bench.run import gpus_serving

        info = first.get("server_info") or {}
        gpus = gpus_serving(info if "/get_server_info" in info else {"/get_server_info": info}) or gpus
        workload = {
            "input_len": first.get("random_input_len"),
            "output_len": first.get("random_output_len"),
            "cache_hit": None,
            "dataset": first.get("dataset_name"),
        }
        name = first.get("tag")
    else:
        done = sum(r.get("completed") or 0 for r in rows)
        workload = {
            "input_len": round(sum(r.get("total_input_tokens") or 0 for r in rows) / done) if done else None,
            "output_len": round(sum(r.get("total_output_tokens") or 0 for r in rows) / done) if done else None,
            "cache_hit": None,
            "dataset": None,
        }
        name = first.get("label") or first.get("model_id")
    points = sorted((_foreign_point(r, x_key, gpus) for r in rows), key=lambda p: p["load"])
    label = f"{name or path.stem} ({kind})" + (
        f", {'closed' if x_key == 'concurrency' else 'open'} loop" if split else ""
    )
    gpus_said = f"{gpus} GPUs" if gpus else "GPUs unknown: --gpus N for per-GPU figures"
    return Series(label, f"{path} ({gpus_said})", x_key, points, workload=workload)


def _foreign_point(row: dict, x_key: str, gpus: int | None) -> dict:
    completed, failed = row.get("completed"), row.get("failed")
    tpot = row.get("median_tpot_ms")
    tok_s = row.get("output_throughput")
    return _point(
        row["max_concurrency"] if x_key == "concurrency" else _rate(row),
        tok_s,
        _ms(row.get("median_ttft_ms")),
        _ms(row.get("p95_ttft_ms")),
        completed / (completed + failed)
        if completed is not None and failed is not None and completed + failed
        else None,
        tok_s / gpus if gpus and tok_s is not None else None,
        1000 / tpot if tpot else None,
    )


def _ms(value) -> float | None:
    return None if value is None else float(value) / 1000


def load_run(folder: Path) -> Series:
    from wafer_sglang.bench import results
    from wafer_sglang.bench.knee import Slo, describe, judged

    summary = results.read(folder, kind="sweep")  # bench compare puts sweeps side by side
    steps, knee = summary.steps, summary.knee
    slo = Slo(**knee.slo) if knee.slo else Slo()
    closed = bool(steps) and steps[0].closed
    points = [
        _point(
            s.load,
            s.output_tok_s,
            s.ttft_p50_s,
            s.ttft_p95_s,
            s.success_rate,
            *((s.inferencex or {}).get(k) for k in ("output_tok_s_per_gpu", "interactivity_tok_s_user")),
            failed=judged(s) and bool(slo.failures(s)),
            knee=s.load == knee.load,
        )
        for s in steps
    ]
    try:
        label = summary.run.get("tag") or f"{summary.run['server']['model']} ({folder.name})"
    except (KeyError, TypeError) as exc:
        raise WaferError(f"{folder}: summary.json has no run.server.model ({type(exc).__name__}: {exc})") from None
    shape = summary.workload
    workload = {
        "input_len": None if shape.get("dataset") else shape.get("input_len"),
        "output_len": shape.get("output_len"),
        "cache_hit": None if shape.get("dataset") else shape.get("cache_hit_target"),
        "dataset": shape.get("dataset") or "generated-shared-prefix",
    }
    x_key = "concurrency" if closed else "target_rps"
    return Series(label, str(folder), x_key, points, describe(knee) if steps else "", workload)


def references() -> dict[str, dict]:
    return tomllib.loads(REFERENCES.read_text())


def load_reference(name: str) -> Series:
    table = references()
    if name not in table:
        raise WaferError(f"unknown reference {name!r}; known: {', '.join(table)}")
    ref = table[name]
    points = [
        _point(rate, tok_s, _num(p50), _num(p95), _num(success), tok_s / ref["gpus"], knee=rate == ref.get("knee_rps"))
        for rate, tok_s, p50, p95, success in ref["steps"]
    ]
    workload = {k: ref.get(k) for k in WORKLOAD_FIELDS}
    return Series(
        f"{name}: {ref['title']}", f"{ref['source']} (as of {ref['as_of']})", "target_rps", points, "", workload
    )


def _num(value) -> float | None:
    return None if value is None or (isinstance(value, float) and math.isnan(value)) else float(value)


def differences(series: list[Series]) -> list[str]:
    """Each workload field on which the series disagree, with every series' value (lengths
    within 10 % and hit rates within 0.05 agree; a field a series does not record is skipped)."""
    notes = []
    for name in WORKLOAD_FIELDS:
        known = [(s.label, s.workload.get(name)) for s in series if s.workload.get(name) is not None]
        values = [v for _, v in known]
        if len(values) > 1 and not all(_same(name, values[0], v) for v in values[1:]):
            notes.append(
                f"{name} differs: "
                + "; ".join(
                    f"{label} {value:g}" if not isinstance(value, str) else f"{label} {value}" for label, value in known
                )
            )
    return notes


def _same(name: str, a, b) -> bool:
    if name == "dataset":
        return a == b
    if name == "cache_hit":
        return abs(a - b) <= 0.05
    return abs(a - b) <= 0.1 * max(abs(a), abs(b))


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
    lines += ["", "Workloads:", ""] + [f"- {s.label}: {_workload(s.workload)}" for s in series]
    notes = differences(series)
    if notes:
        lines += ["", "**Workloads differ — these series do not measure the same thing:**", ""]
        lines += [f"- {note}" for note in notes]
    return "\n".join(lines) + "\n"


def _workload(workload: dict) -> str:
    said = [f"{k} {v:g}" if not isinstance(v, str) else f"{k} {v}" for k, v in workload.items() if v is not None]
    return ", ".join(said) or "not recorded"


def _f(value, pattern: str) -> str:
    return "-" if value is None else pattern.format(value)


def figures(series: list[Series]) -> dict[str, object]:
    from wafer_sglang.bench import plots

    title = "bench compare: " + " vs ".join(s.label.split(":")[0] for s in series)
    kinds = [k for k in ("target_rps", "concurrency") if any(s.x_key == k for s in series)]
    made = {}
    for name, key, ylabel in (
        ("compare_throughput.png", "output_tok_s", "output tok/s (aggregate/node)"),
        ("compare_ttft.png", "ttft_p95_s", "TTFT p95 (s)"),
    ):
        fig, axes = plots.figure(len(kinds))
        for ax, kind in zip(axes, kinds):
            for index, s in ((i, s) for i, s in enumerate(series) if s.x_key == kind):
                pts = [p for p in s.points if p[key] is not None]
                if not pts:
                    continue
                xs, ys = [p["load"] for p in pts], [p[key] for p in pts]
                ax.plot(xs, ys, marker="o", label=s.label, color=f"C{index}")  # one colour per series on every plot
                knee_at = next((i for i, p in enumerate(pts) if p["knee"]), None)
                plots.mark(ax, xs, ys, knee_at, [bool(p["failed"]) for p in pts])
            ax.set_xlabel("users (closed loop)" if kind == "concurrency" else "requests / s (open loop)")
            ax.set_ylabel(ylabel)
            ax.grid(alpha=0.3)
            ax.margins(x=0.12, y=0.12)
        plots.finish(fig, title)
        made[name] = fig
    made["compare_pareto.png"] = _pareto(series, title)
    return made


def _pareto(series: list[Series], title: str):
    """Series with per-user speed on the frontier plot; those without it (the published
    references) as a dashed line at their best per-GPU throughput, said so in the legend."""
    from wafer_sglang.bench import plots

    fig, (ax,) = plots.figure()
    for index, s in enumerate(series):
        closed = s.x_key == "concurrency"
        pts = [
            {
                "per_user": p["interactivity_tok_s_user"],
                "per_gpu": p["output_tok_s_per_gpu"],
                "load_label": plots.load_label(p["load"], closed),
                "failed": bool(p["failed"]),
            }
            for p in s.points
            if p["interactivity_tok_s_user"] and p["output_tok_s_per_gpu"]
        ]
        if pts:
            plots.pareto(ax, pts, s.label, color=f"C{index}")
            continue
        per_gpu = [
            (p["output_tok_s_per_gpu"], p["load"]) for p in s.points if p["output_tok_s_per_gpu"] and not p["failed"]
        ]
        if per_gpu:
            best, at = max(per_gpu)
            ax.axhline(
                best,
                linestyle="--",
                color=f"C{index}",
                label=f"{s.label}: {best:.0f} tok/s/GPU at {plots.load_label(at, closed)} "
                "(per-user speed not published)",
            )
    ax.set_xlabel("interactivity: tok/s per user (1000 / TPOT p50 ms)")
    ax.set_ylabel("output tok/s per GPU")
    ax.grid(alpha=0.3)
    ax.margins(x=0.12, y=0.12)
    plots.finish(fig, title)
    return fig


def write(series: list[Series], out: Path) -> list[Path]:
    from wafer_sglang.bench.plots import save_png

    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out / "comparison.md", table(series))
    atomic_write_text(
        out / "comparison.json",
        json.dumps({"series": [asdict(s) for s in series], "workload_differences": differences(series)}, indent=2)
        + "\n",
    )
    made = [out / "comparison.md", out / "comparison.json"]
    for name, fig in figures(series).items():
        made.append(save_png(fig, out / name))
    return made
