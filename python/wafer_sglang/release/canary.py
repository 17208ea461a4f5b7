"""The upstream canary: every base's queue against one upstream release, as the table the weekly
workflow posts to its tracking issue (applies / already-upstream / upstream-per-trailer / conflicts)."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from wafer_sglang import bases
from wafer_sglang.bases import python_tag
from wafer_sglang.queue.apply import Queue
from wafer_sglang.queue.upstream import Verdict, check_against


def check_all(root: Path, against: str) -> dict[str, list[Verdict]]:
    pins = bases.pins(root)
    pins.get(against)  # pinned first (`patches pin`): its wheel is verified like any other
    return {base: check_against(Queue.open(root, base), against, python_tag("3.11")) for base in pins.bases}


def render(against: str, released: str, results: dict[str, list[Verdict]]) -> str:
    lines = [
        f"# Upstream canary: sglang {against} (released {released or 'unknown'})",
        "",
        "| base | patch | verdict | detail |",
        "|---|---|---|---|",
    ]
    for base, verdicts in results.items():
        lines += [f"| {base} | `{v.patch}` | {v.status} | {v.detail.replace('|', '/')} |" for v in verdicts]
        if not verdicts:
            lines.append(f"| {base} | (no patches) | | |")
    lines.append("")
    for base, verdicts in results.items():
        counts = Counter(v.status for v in verdicts)
        summary = ", ".join(f"{n} {status}" for status, n in sorted(counts.items())) or "no patches"
        lines.append(f"- **{base}**: {summary}")
    conflicts = sum(v.status == "conflicts" for vs in results.values() for v in vs)
    lines += [
        "",
        f"{conflicts} patch(es) need porting to move to {against}"
        if conflicts
        else f"Every patch applies to {against} or is already upstream.",
    ]
    return "\n".join(lines) + "\n"
