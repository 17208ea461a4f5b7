"""Comparing a base's queue with another upstream release: check-upstream and rebase.

Each patch, in series order, against release V plus the patches before it that still apply:

* ``applies``           — applies strictly; it is still needed (and is applied for the next ones).
* ``already-upstream``  — reverse-applies (with one line of context if upstream edited the
  lines around it): V contains this change; drop it.
* ``upstream-per-trailer`` — neither, but its ``Applied-Upstream`` trailer names a release <= V:
  upstream fixed it differently; drop it after checking the behaviour.
* ``conflicts``         — neither: port it by hand.

Files upstream moved (sglang 0.5.17 moved ``jit_kernel/`` to ``kernels/jit/``) are followed by
basename when exactly one file in V has that name; the verdict then says where it went.
"""

from __future__ import annotations

import re
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

from packaging.version import Version

from wafer_sglang import bases
from wafer_sglang.fsutil import scratch_dir
from wafer_sglang.gitrun import git, out
from wafer_sglang.queue import download
from wafer_sglang.queue.apply import Queue
from wafer_sglang.queue.headers import read_header
from wafer_sglang.queue.worktree import (
    STRIP,
    add_overlay,
    head_date,
    import_upstream,
    record_filename,
    staged_dir,
    write_marker,
)

DIFF_PATH = re.compile(r"^diff --git a/python/(\S+) b/python/(\S+)$", re.M)


@dataclass
class Verdict:
    patch: str
    subject: str
    status: str
    detail: str = ""
    moved: dict[str, str] | None = None

    def as_dict(self) -> dict:
        return asdict(self)


def check_against(queue: Queue, version: str, python_tag: str, work: Path | None = None) -> list[Verdict]:
    """Verdicts for every patch of ``queue`` against upstream ``version``.

    With ``work`` given, the scratch tree is made there and keeps the applicable patches as
    commits (that is ``rebase``); otherwise a temporary tree is used and thrown away.
    """
    pin = bases.pins(queue.root).get(version)
    wheel_pin = pin.any_wheel(python_tag)
    wheel = download.fetch(wheel_pin, queue.cache_dir, quiet=True)
    with scratch_dir(prefix="wafer-upstream-") as tmp:
        tree = work or Path(tmp)
        import_upstream(tree, wheel, pin, wheel_pin)
        return [_verdict(tree, queue.patch_dir / e.name, Version(version)) for e in queue.series().entries]


def _verdict(tree: Path, patch: Path, version: Version) -> Verdict:
    header = read_header(patch)
    text = patch.read_text()
    moved = _relocations(tree, text)
    candidate = Path(tempfile.mkstemp(suffix=".patch")[1])
    try:
        candidate.write_text(_relocate(text, moved) if moved else text)
        verdict = Verdict(patch.name, header.subject, "", moved=moved or None)
        where = f" (files moved: {', '.join(f'{a} -> {b}' for a, b in moved.items())})" if moved else ""
        if git(tree, "apply", "--check", "-R", STRIP, str(candidate), check=False).returncode == 0:
            verdict.status, verdict.detail = "already-upstream", f"sglang {version} contains this change{where}"
            return verdict
        # Same change, but upstream edited the lines around it: still "already upstream".
        if git(tree, "apply", "--check", "-R", "-C1", STRIP, str(candidate), check=False).returncode == 0:
            verdict.status = "already-upstream"
            verdict.detail = f"sglang {version} contains this change; its surroundings changed{where}"
            return verdict
        forward = git(tree, "apply", "--check", STRIP, str(candidate), check=False)
        if forward.returncode == 0:
            git(tree, "am", "-q", "--keep", "--no-3way", "--committer-date-is-author-date", STRIP, str(candidate))
            record_filename(tree, patch.name)
            verdict.status, verdict.detail = "applies", f"still needed{where}"
            return verdict
        landed = header.applied_upstream
        if landed and Version(landed[0]) <= version:
            verdict.status = "upstream-per-trailer"
            verdict.detail = f"fixed upstream differently in {landed[0]} ({landed[1]}); verify, then drop{where}"
            return verdict
        verdict.status = "conflicts"
        verdict.detail = _first_error(forward.stderr.decode(errors="replace")) + where
        return verdict
    finally:
        candidate.unlink(missing_ok=True)


def _relocations(tree: Path, text: str) -> dict[str, str]:
    """Patch paths missing in ``tree`` that exist under exactly one other path there."""
    missing = {b for a, b in DIFF_PATH.findall(text) if a == b and not (tree / b).exists()}
    if not missing:
        return {}
    files = out(tree, "ls-files").splitlines()
    moved = {}
    for old in sorted(missing):
        same_name = [f for f in files if f.rsplit("/", 1)[-1] == old.rsplit("/", 1)[-1]]
        if len(same_name) == 1:
            moved[old] = same_name[0]
    return moved


def _relocate(text: str, moved: dict[str, str]) -> str:
    lines = []
    for line in text.splitlines(keepends=True):
        if line.startswith(("diff --git ", "--- a/", "+++ b/")):
            for old, new in moved.items():
                line = line.replace(f"python/{old}", f"python/{new}")
        lines.append(line)
    return "".join(lines)


def _first_error(stderr: str) -> str:
    errors = [line for line in stderr.splitlines() if line.startswith("error:")]
    if errors:
        return "; ".join(errors[:2])
    return stderr.strip().splitlines()[0] if stderr.strip() else "does not apply"


def rebase(queue: Queue, version: str, python_tag: str, work_dir: Path, *, force: bool = False) -> list[Verdict]:
    """Move ``queue`` onto base ``version`` in ``work_dir``: applicable patches become commits,
    upstreamed ones are dropped, conflicting ones are left out for porting by hand. Then
    ``patches export --base <version>`` writes the new queue. Nothing is written in the checkout."""
    target = Queue.open(queue.root, version)  # must be pinned with role = "base"
    with staged_dir(work_dir, force=force, protected=[queue.root]) as tmp:
        verdicts = check_against(queue, version, python_tag, work=tmp)
        write_marker(tmp, version, python_tag)
        add_overlay(tmp, target.overlay_root, head_date(tmp))
    return verdicts


def existing_queue(root: Path, version: str) -> list[str]:
    """The patches ``patches/<version>/`` holds now (what an export of a rebase replaces)."""
    folder = root / "patches" / version
    return sorted(p.name for p in folder.glob("*.patch")) if folder.is_dir() else []
