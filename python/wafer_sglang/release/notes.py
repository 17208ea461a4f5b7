"""Release notes from the patch headers: per base, what the queue gained, lost or changed since the
previous release tag, with each patch's Upstream-Status and links."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from wafer_sglang.bases.record import respins
from wafer_sglang.queue.headers import PatchHeader, parse_header
from wafer_sglang.queue.series import parse_series
from wafer_sglang.release.gitstate import file_at
from wafer_sglang.repo import PIN_FILE

URL = re.compile(r"https?://[^\s\]\)>,]+")


@dataclass(frozen=True)
class QueueAt:
    """One base's queue at one revision: patch file name -> (bytes, header), in series order."""

    version: str
    respin: int
    patches: dict[str, tuple[bytes, PatchHeader]]


def queues_at(root: Path, rev: str | None) -> dict[str, QueueAt]:
    """Every base's queue at ``rev`` (None: nothing released before)."""
    if rev is None:
        return {}
    raw = file_at(root, rev, PIN_FILE.as_posix())
    if raw is None:
        return {}
    found = {}
    for version, respin in respins(raw.decode()).items():
        series = file_at(root, rev, f"patches/{version}/series")
        names = [e.name for e in parse_series(series.decode()).entries] if series else []
        patches = {}
        for name in names:
            data = file_at(root, rev, f"patches/{version}/{name}") or b""
            patches[name] = (data, parse_header(name, data))
        found[version] = QueueAt(version, respin, patches)
    return found


def _line(header: PatchHeader) -> str:
    links = sorted(set(URL.findall(" ".join(v for _, v in header.trailers))))
    status = header.upstream_status or "no Upstream-Status"
    return f"`{header.file}` — {header.subject} ({status})" + (f"; {', '.join(links)}" if links else "")


def render(tag: str, previous: str | None, before: dict[str, QueueAt], now: dict[str, QueueAt]) -> str:
    lines = [f"# wafer-sglang-rocm {tag}", ""]
    lines.append(f"Changes since {previous}." if previous else "The first release: every patch is new.")
    for version in sorted(set(before) | set(now)):
        old, new = before.get(version), now.get(version)
        lines += ["", f"## sglang {version}" + (f" — wafer-sglang-rocm {version}.post{new.respin}" if new else ""), ""]
        if new is None:
            lines.append(f"Retired: no longer a supported base (last release: {version}.post{old.respin}).")
            continue
        if old is None:  # every patch is new: listed once, below
            lines.append("New base.")
        old_patches = old.patches if old else dict(new.patches)
        added = [n for n in new.patches if n not in old_patches]
        dropped = [n for n in old_patches if n not in new.patches]
        changed = [n for n in new.patches if n in old_patches and old_patches[n][0] != new.patches[n][0]]
        for title, names, source in (("Added", added, new), ("Changed", changed, new), ("Dropped", dropped, old)):
            if names:
                lines += [f"{title}:", *[f"- {_line(source.patches[n][1])}" for n in names], ""]
        if old is not None and not (added or dropped or changed):
            lines.append("The patch queue is unchanged.")
        if new.patches:
            lines += [
                "",
                f"All {len(new.patches)} patches in this build:",
                *[f"- {_line(new.patches[n][1])}" for n in new.patches],
            ]
    return "\n".join(lines).rstrip() + "\n"
