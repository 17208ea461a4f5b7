"""``patches lint``: the queue's static checks (Electron's lint.js, OE's upstream-status check).

* series <-> files: listed but missing, present but unlisted, listed twice, number != position;
* each header: subject form, body with a drop condition, trailers (missing vs malformed);
* each diff: paths inside ``python/sglang/`` (the only part of the repo the wheel ships), no
  trailing whitespace on added lines;
* the overlay never overwrites a file of the base wheel or one a patch creates.
"""

from __future__ import annotations

import re
import zipfile
from dataclasses import dataclass
from pathlib import Path

from wafer_sglang.queue import download
from wafer_sglang.queue.apply import Queue
from wafer_sglang.queue.headers import read_header
from wafer_sglang.queue.series import NUMBERED
from wafer_sglang.queue.worktree import overlay_files

DIFF_HEADER = re.compile(r"^diff --git a/(\S+) b/(\S+)$")
WHEEL_ROOT = "python/sglang/"


@dataclass(frozen=True)
class Finding:
    where: str
    message: str

    def __str__(self) -> str:
        return f"{self.where}: {self.message}"


def lint_queue(queue: Queue, python_tag: str) -> list[Finding]:
    findings = _series_findings(queue)
    listed = {e.name for e in queue.series().entries}
    for patch in sorted(queue.patch_dir.glob("*.patch")):
        if patch.name in listed:
            findings += [Finding(_rel(queue, patch), p) for p in read_header(patch).problems()]
            findings += [Finding(_rel(queue, patch), p) for p in diff_problems(patch.read_text())]
    findings += overlay_findings(queue, python_tag)
    return findings


def _series_findings(queue: Queue) -> list[Finding]:
    series = queue.series()
    where = _rel(queue, queue.patch_dir / "series")
    found = []
    seen: set[str] = set()
    for position, entry in enumerate(series.entries, start=1):
        if entry.name in seen:
            found.append(Finding(f"{where}:{entry.line}", f"{entry.name} is listed twice"))
        seen.add(entry.name)
        if not (queue.patch_dir / entry.name).is_file():
            found.append(Finding(f"{where}:{entry.line}", f"lists {entry.name}, which does not exist"))
        m = NUMBERED.match(entry.name)
        if not m or int(m.group(1)) != position:
            found.append(
                Finding(f"{where}:{entry.line}", f"{entry.name} should be numbered {position:04d} (run export)")
            )
    for patch in sorted(queue.patch_dir.glob("*.patch")):
        if patch.name not in seen:
            found.append(Finding(_rel(queue, patch), "not listed in series (add it or delete it)"))
    return found


def diff_problems(text: str) -> list[str]:
    found = []
    in_hunk, path = False, "?"
    for number, line in enumerate(text.splitlines(), start=1):
        m = DIFF_HEADER.match(line)
        if m:
            in_hunk, path = False, m.group(2)
            for side in m.groups():
                if not side.startswith(WHEEL_ROOT):
                    found.append(
                        f"line {number}: touches {side}, which is not under {WHEEL_ROOT} (the wheel ships only that)"
                    )
            continue
        if line.startswith("@@"):
            in_hunk = True
        elif in_hunk and line.startswith("+") and line != line.rstrip():
            found.append(f"line {number}: trailing whitespace added to {path}")
    return found


def overlay_findings(queue: Queue, python_tag: str) -> list[Finding]:
    overlay = overlay_files(queue.overlay_root)
    if not overlay:
        return []
    wheel = download.fetch(queue.base.any_wheel(python_tag), queue.cache_dir, quiet=True)
    with zipfile.ZipFile(wheel) as zf:
        upstream = set(zf.namelist())
    created = set()
    for entry in queue.series().entries:
        patch = queue.patch_dir / entry.name
        if patch.is_file():
            created |= set(re.findall(r"^\+\+\+ b/python/(\S+)$", patch.read_text(), re.M))
    found = []
    for rel in overlay:
        if str(rel) in upstream:
            found.append(
                Finding(
                    f"python/{rel}",
                    f"overlay file overwrites upstream sglang {queue.base.version}'s file; change it with a patch",
                )
            )
        elif str(rel) in created:
            found.append(
                Finding(f"python/{rel}", f"overlay file collides with a file a {queue.base.version} patch creates")
            )
    return found


def _rel(queue: Queue, path: Path) -> str:
    return str(path.relative_to(queue.root))
