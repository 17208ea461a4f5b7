"""Export a work tree back to ``patches/<base>/``: deterministic format-patch files and the series."""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass, field
from pathlib import Path

from wafer_sglang.errors import WaferError
from wafer_sglang.fsutil import atomic_write_bytes, scratch_dir
from wafer_sglang.gitrun import out
from wafer_sglang.queue.apply import Queue
from wafer_sglang.queue.series import Series, SeriesEntry
from wafer_sglang.queue.worktree import (
    DST_PREFIX,
    FILENAME_TRAILER,
    SRC_PREFIX,
    UPSTREAM_TAG,
    filename_of,
    is_overlay_commit,
    overlay_files,
    read_marker,
)


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
                    f"a/{name}",
                    f"b/{name}",
                    lineterm="",
                    n=1,
                )
                found.append(f"would change {name}:\n" + "\n".join(list(diff)[:40]))
        found += [f"would remove {name}" for name in self.stale]
        return found


def work_tree_base(work: Path) -> str:
    """The base a work tree was made from (``patches apply`` / ``rebase`` record it)."""
    if not (work / ".git").exists():
        raise WaferError(f"{work} is not a work tree made by `wafer-sglang patches apply`")
    marker = read_marker(work)
    if marker is None:
        raise WaferError(
            f"{work} records no base (.git/wafer-worktree.json): it was not made by this version of "
            "`wafer-sglang patches apply`; apply again and redo the commits there"
        )
    return marker["base"]


def plan_export(queue: Queue, work: Path) -> ExportPlan:
    base = work_tree_base(work)
    if base != queue.base.version:
        raise WaferError(
            f"{work} was made from sglang {base}, not {queue.base.version}: exporting it would replace "
            f"patches/{queue.base.version} with another base's queue (use --base {base})"
        )
    if out(work, "status", "--porcelain").strip():
        raise WaferError(f"{work} has uncommitted changes; commit them (one commit per patch) first")
    merges = out(work, "rev-list", "--merges", f"{UPSTREAM_TAG}..HEAD").split()
    if merges:
        raise WaferError(
            f"{work} has merge commit(s) {', '.join(m[:12] for m in merges)}: a queue is a line of "
            "patches; rebase them into single commits first"
        )
    commits = out(work, "rev-list", "--reverse", f"{UPSTREAM_TAG}..HEAD").split()
    patch_commits = [c for c in commits if not is_overlay_commit(work, c)]
    _refuse_overlay_edits(work, patch_commits, overlay_files(queue.overlay_root))
    names = _names(work, patch_commits, queue.patch_dir)
    files: dict[str, bytes] = {}
    with scratch_dir() as tmp:
        for commit, name in zip(patch_commits, names):
            path = Path(_format_patch(work, commit, Path(tmp)))
            files[name] = _strip_filename_trailer(path.read_bytes())
    series = _series(queue, names)
    files["series"] = series.render().encode()
    existing = {p.name for p in queue.patch_dir.glob("*.patch")}
    return ExportPlan(files=files, stale=sorted(existing - set(files)))


def _names(work: Path, commits: list[str], patch_dir: Path) -> list[str]:
    """Each commit's recorded file name; a new commit gets the next free number and its subject's slug."""
    recorded = [filename_of(work, c) for c in commits]
    seen = [n for n in recorded if n]
    twice = sorted({n for n in seen if seen.count(n) > 1})
    if twice:
        raise WaferError(
            f"several commits record the same {FILENAME_TRAILER}: {', '.join(twice)}; give each its own "
            "(git commit --amend and edit the trailer) or squash them"
        )
    existing = {p.name for p in patch_dir.glob("*.patch")}
    number = max([int(m.group(1)) for n in set(seen) | existing if (m := re.match(r"(\d{4})-", n))] + [0])
    names = []
    for commit, name in zip(commits, recorded):
        if name is None:  # a commit made in the work tree: its earlier export's file, else the next number
            slug = _slug(out(work, "log", "-1", "--format=%s", commit)) + ".patch"
            earlier = [n for n in existing - set(seen) - set(names) if n[5:] == slug]
            if len(earlier) == 1:
                name = earlier[0]
            else:
                number += 1
                name = f"{number:04d}-{slug}"
        names.append(name)
    # the number is cosmetic and follows the position (CONVENTIONS: "regenerated by export");
    # the rest of the name is the patch's identity and stays
    return [
        f"{position:04d}-{name[5:]}" if re.match(r"\d{4}-", name) else name for position, name in enumerate(names, 1)
    ]


def _slug(subject: str) -> str:
    """git format-patch's file-name rule for a subject, shortened to its 52-character default."""
    slug = re.sub(r"[^A-Za-z0-9._]+", "-", subject).strip("-.")
    return re.sub(r"\.+", ".", slug)[:52].rstrip("-.")


def _strip_filename_trailer(data: bytes) -> bytes:
    """The exported patch without the ``Patch-Filename`` trailer apply added (nor the blank line
    before it when it was the only trailer): the message is everything before the first diff."""
    head, sep, rest = data.partition(b"\ndiff --git ")
    kept = [line for line in head.split(b"\n") if not line.startswith(FILENAME_TRAILER.encode() + b": ")]
    while len(kept) >= 2 and kept[-1] == b"" and kept[-2] == b"":
        kept.pop()
    return b"\n".join(kept) + sep + rest


def write_export(queue: Queue, plan: ExportPlan) -> None:
    queue.patch_dir.mkdir(parents=True, exist_ok=True)
    # Patches first, series last: a reader never sees a series naming a file not yet written.
    for name in sorted(plan.files, key=lambda n: n == "series"):
        path = queue.patch_dir / name
        if not path.exists() or path.read_bytes() != plan.files[name]:
            atomic_write_bytes(path, plan.files[name])
    for name in plan.stale:
        (queue.patch_dir / name).unlink()


def _format_patch(work: Path, commit: str, dest: Path) -> str:
    return out(
        work,
        "format-patch",
        "-1",
        commit,
        "--zero-commit",
        "--full-index",
        "--no-signature",
        "--no-stat",
        "--keep-subject",
        "--no-notes",
        "--no-renames",
        "--binary",
        f"--src-prefix={SRC_PREFIX}",
        f"--dst-prefix={DST_PREFIX}",
        "-o",
        str(dest),
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


def _series(queue: Queue, names: list[str]) -> Series:
    """The new series in commit order, each entry keeping its old comments (matched by file name:
    identity, not subject)."""
    try:
        old = queue.series()
    except WaferError:
        old = Series(entries=[])
    kept: dict[str, SeriesEntry] = {}
    carry: list[str] = []
    for entry in old.entries:
        if entry.name not in names:
            carry += entry.leading  # a dropped entry's group header moves to the next kept one
            continue
        kept[entry.name] = SeriesEntry(entry.name, carry + entry.leading, entry.inline)
        carry = []
    entries = [kept.get(name) or SeriesEntry(name=name) for name in names]
    trailer = carry + old.trailer
    return Series(entries=entries, trailer=trailer, header=old.header)
