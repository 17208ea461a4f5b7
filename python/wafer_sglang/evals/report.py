"""comparison.json and comparison.md: the side-by-side table, acceptance, settings and the exact
lm-eval commands, written atomically into the output folder."""

from __future__ import annotations

import json
import math
import platform
import shlex
from datetime import datetime, timezone

from wafer_sglang import __version__
from wafer_sglang.evals import lmeval
from wafer_sglang.evals.run import ROLES, Options, TaskRun, seeds_for
from wafer_sglang.evals.stats import compare
from wafer_sglang.fsutil import atomic_write_text


def build(opts: Options, runs: dict[str, dict[str, TaskRun]], data: dict[str, dict]) -> dict:
    tasks = []
    for task in opts.tasks:
        seeds = seeds_for(task, opts)
        by_role = {role: runs[role][task.name] for role in ROLES}
        comparison = compare(by_role["baseline"].score, by_role["candidate"].score, z=opts.z, gate=opts.gate)
        tasks.append(
            {
                "task": task.name,
                "title": task.title,
                "setting": task.label,
                "filter": task.filter,
                "metric": "exact_match",
                "seeds": list(seeds),
                "questions": by_role["baseline"].score.n // len(seeds),
                **{
                    role: {
                        "score": run.score.__dict__,
                        "per_seed": run.per_seed,
                        "acceptance": run.acceptance.to_json() if run.acceptance else None,
                    }
                    for role, run in by_role.items()
                },
                "comparison": comparison.to_json(),
            }
        )
    gated = [t["comparison"]["gate_passed"] for t in tasks] if opts.gate else []
    return {
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "versions": {"wafer_sglang": __version__, "lm_eval": lmeval.version(), "python": platform.python_version()},
        "endpoints": {role: {"url": e.url, "model": e.model} for role, e in opts.endpoints.items()},
        "settings": {**opts.settings.__dict__, "seeds_override": opts.seeds, "z": opts.z},
        "data": data,
        "gate": (
            {
                **opts.gate.__dict__,
                "rule": "fail if delta < -(threshold + sigmas * stderr_delta), or neither side > floor",
                "passed": all(gated),
            }
            if opts.gate
            else None
        ),
        "tasks": tasks,
        "commands": {
            role: [shlex.join(cmd) for t in opts.tasks for cmd in runs[role][t.name].commands] for role in ROLES
        },
    }


def _num(x: float, digits: int = 3) -> str:
    return "n/a" if math.isnan(x) else f"{x:.{digits}f}"


def _delta(x: float) -> str:
    return "n/a" if math.isnan(x) else ("+" if x >= 0 else "\u2212") + f"{abs(x):.3f}"


def _verdicts(c: dict) -> tuple[str, str]:
    """'within noise' and gate cells, from a Comparison's JSON (no '|': they sit in a table)."""
    band = c["z"] * c["stderr"]
    noise = f"{'yes' if c['within_noise'] else 'no'} (\u00b1{_num(band)} = {c['z']:g}\u00b7se)"
    if c["gate_passed"] is None:
        return noise, ""
    if c.get("no_signal"):
        return noise, "FAIL (no signal: neither side above the floor)"
    return noise, f"{'pass' if c['gate_passed'] else 'FAIL'} (limit {_delta(c['gate_limit'])})"


def markdown(report: dict) -> str:
    e = report["endpoints"]
    gate = report["gate"]
    lines = [
        f"# Quality gate: {e['candidate']['model']} vs {e['baseline']['model']}",
        "",
        f"baseline `{e['baseline']['url']}` \u00b7 candidate `{e['candidate']['url']}` \u00b7 "
        f"lm-eval {report['versions']['lm_eval']} \u00b7 {report['created']}",
        "",
        "| Eval | baseline | candidate | \u0394 \u00b1 stderr | within noise |" + (" gate |" if gate else ""),
        "|---|---|---|---|---|" + ("---|" if gate else ""),
    ]
    for t in report["tasks"]:
        b, c = t["baseline"]["score"], t["candidate"]["score"]
        comparison = t["comparison"]
        noise, verdict = _verdicts(comparison)
        seeds = f" \u00d7 {len(t['seeds'])} seeds" if len(t["seeds"]) > 1 else ""
        lines.append(
            f"| {t['title']} ({t['questions']}q{seeds}, {t['setting']}) | {_num(b['mean'], 4)} \u00b1 "
            f"{_num(b['stderr'])} | "
            f"{_num(c['mean'], 4)} \u00b1 {_num(c['stderr'])} | {_delta(comparison['delta'])} \u00b1 "
            f"{_num(comparison['stderr'])} | "
            f"{noise} |" + (f" {verdict} |" if gate else "")
        )
    lines += [
        "",
        "exact_match on lm-eval's "
        + ", ".join(f"{t['task']} {t['filter']}" for t in report["tasks"])
        + " filter; stderr = sample std (ddof=1) / sqrt(n) over all seeds' samples; "
        "stderr of \u0394 = sqrt(se_baseline\u00b2 + se_candidate\u00b2).",
    ]
    if gate:
        lines += [
            "",
            f"**Gate: {'PASSED' if gate['passed'] else 'FAILED'}** \u2014 a task fails when "
            f"\u0394 < \u2212({gate['threshold']:g} + {gate['sigmas']:g} \u00b7 stderr of \u0394), or when neither "
            f"side scores above {gate.get('floor', 0.0):g} (no signal).",
        ]
    lines += [
        "",
        "## MTP / speculative acceptance (mean accepted length per verify step)",
        "",
        "| Eval | baseline | candidate | source |",
        "|---|---|---|---|",
    ]
    for t in report["tasks"]:
        acc = {role: t[role]["acceptance"] for role in ROLES}
        cells = [_num(a["accept_length"], 2) if a else "not reported" for a in acc.values()]
        sources = (
            "; ".join(f"{role}: {a['basis']}" for role, a in acc.items() if a)
            or "no speculative counters on /metrics (sglang needs --enable-metrics) and no server log given"
        )
        lines.append(f"| {t['title']} | {cells[0]} | {cells[1]} | {sources} |")
    lines += ["", "## Commands", ""]
    for role in ROLES:
        lines += [f"{role}:", "", "```sh", *report["commands"][role], "```", ""]
    return "\n".join(lines)


def write(opts: Options, report: dict) -> None:
    atomic_write_text(opts.out / "comparison.json", json.dumps(report, indent=2) + "\n")
    atomic_write_text(opts.out / "comparison.md", markdown(report))
