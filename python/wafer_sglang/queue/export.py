"""Export a work tree back to ``patches/<base>/``: deterministic format-patch files and the series."""

from __future__ import annotations

import difflib
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from wafer_sglang.errors import WaferError
from wafer_sglang.fsutil import atomic_write_bytes
from wafer_sglang.gitrun import out
from wafer_sglang.queue.apply import Queue
from wafer_sglang.queue.headers import read_header
from wafer_sglang.queue.series import Series, SeriesEntry
from wafer_sglang.queue.worktree import DST_PREFIX, SRC_PREFIX, UPSTREAM_TAG, is_overlay_commit, overlay_files


@dataclass
class ExportPlan:
    files: dict[str, bytes]  # name -> content, series included
    stale: list[str] = field(default_factory=list)  # existing patch files no longer produced

    def changes(self, patch_dir: Path) -> list[str]:
        found = []
        for name, data in sorted(self.files.items()):
            path = patch_dir / name
            if not path.exists():
                found.append(f"would add {name}")
            elif path.read_bytes() != data:
                diff = difflib.unified_diff(
                    path.read_text(errors="replace").splitlines(),
                    data.decode(errors="replace").splitlines(),
                    f"a/{name}", f"b/{name}", lineterm="", n=1,
                )
                found.append(f"would change {name}:\n" + "\n".join(list(diff)[:40]))
        found += [f"would remove {name}" for name in self.stale]
        return found


def plan_export(queue: Queue, work: Path) -> ExportPlan:
    if not (work / ".git").exists():
        raise WaferError(f"{work} is not a work tree made by `wafer-sglang patches apply`")
    if out(work, "status", "--porcelain").strip():
        raise WaferError(f"{work} has uncommitted changes; commit them (one commit per patch) first")
    commits = out(work, "rev-list", "--reverse", f"{UPSTREAM_TAG}..HEAD").split()
    patch_commits = [c for c in commits if not is_overlay_commit(work, c)]
    _refuse_overlay_edits(work, patch_commits, overlay_files(queue.overlay_root))
    files: dict[str, bytes] = {}
    subjects: list[str] = []
    with tempfile.TemporaryDirectory() as tmp:
        for number, commit in enumerate(patch_commits, start=1):
            path = Path(_format_patch(work, commit, number, Path(tmp)))
            files[path.name] = path.read_bytes()
            subjects.append(read_header(path).subject)
    series = _renumbered_series(queue, list(files), subjects)
    files["series"] = series.render().encode()
    existing = {p.name for p in queue.patch_dir.glob("*.patch")}
    return ExportPlan(files=files, stale=sorted(existing - set(files)))


def write_export(queue: Queue, plan: ExportPlan) -> None:
    queue.patch_dir.mkdir(parents=True, exist_ok=True)
    # Patches first, series last: a reader never sees a series naming a file not yet written.
    for name in sorted(plan.files, key=lambda n: n == "series"):
        path = queue.patch_dir / name
        if not path.exists() or path.read_bytes() != plan.files[name]:
            atomic_write_bytes(path, plan.files[name])
    for name in plan.stale:
        (queue.patch_dir / name).unlink()


def _format_patch(work: Path, commit: str, number: int, dest: Path) -> str:
    return out(
        work,
        "format-patch", "-1", commit,
        "--zero-commit", "--full-index", "--no-signature", "--no-stat", "--keep-subject",
        "--no-notes", "--no-renames", "--binary",
        f"--src-prefix={SRC_PREFIX}", f"--dst-prefix={DST_PREFIX}",
        f"--start-number={number}", "--filename-max-length=80", "-o", str(dest),
    ).strip()


def _refuse_overlay_edits(work: Path, commits: list[str], overlay: list) -> None:
    overlay_paths = {str(p) for p in overlay}
    for commit in commits:
        touched = set(out(work, "diff-tree", "--no-commit-id", "--name-only", "-r", commit).split())
        clash = touched & overlay_paths
        if clash:
            raise WaferError(
                f"commit {commit[:12]} changes overlay files {sorted(clash)}; edit them in python/sglang/ "
                "instead (patches must apply to a plain upstream clone)"
            )


def _renumbered_series(queue: Queue, names: list[str], subjects: list[str]) -> Series:
    """The new series in commit order, keeping each old entry's comments (matched by subject)."""
    try:
        old = queue.series()
    except WaferError:
        old = Series(entries=[])
    old_subjects = []
    for entry in old.entries:
        path = queue.patch_dir / entry.name
        old_subjects.append(read_header(path).subject if path.is_file() else None)
    kept: dict[int, SeriesEntry] = {}
    carry: list[str] = []
    used: set[int] = set()
    for entry, subject in zip(old.entries, old_subjects):
        match = next((i for i, s in enumerate(subjects) if s == subject and i not in used), None)
        if match is None:
            carry += entry.leading  # a dropped entry's group header moves to the next one
            continue
        used.add(match)
        kept[match] = SeriesEntry(name=names[match], leading=carry + entry.leading, inline=entry.inline)
        carry = []
    entries = [kept.get(i) or SeriesEntry(name=n) for i, n in enumerate(names)]
    return Series(entries=entries, trailer=carry + old.trailer, header=old.header)
