"""The git work tree a base is patched in: upstream import, strict series apply, overlay commit.

Layout of a work tree: the wheel's contents at the root (``sglang/``, ``sglang-X.dist-info/``),
commit 1 = the pristine wheel (tag ``wafer/upstream``), one commit per patch (``git am``), then
one overlay commit (trailer ``Wafer-Overlay: true``) that only adds files.

Patch paths are rooted at the upstream git repo (``python/sglang/...``); the wheel drops the
``python/`` component, so patches go in with ``-p2`` and come out with ``a/python/`` prefixes.

Identity: each patch commit carries a ``Patch-Filename:`` trailer (its file in ``patches/<base>/``,
Electron's scheme), added at apply and stripped at export, so a reworded subject or a reorder
renames nothing. The tree records which base and Python tag it was made from in
``.git/wafer-worktree.json``; only a tree holding that marker (and the ``wafer/upstream`` tag) is
ever replaced by ``--force``.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import stat
import zipfile
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from wafer_sglang.bases import UpstreamPin, WheelPin
from wafer_sglang.errors import WaferError
from wafer_sglang.gitrun import git, out
from wafer_sglang.queue import upstream_pack
from wafer_sglang.queue.series import Series
from wafer_sglang.repo import source_files

UPSTREAM_TAG = "wafer/upstream"
OVERLAY_TRAILER = "Wafer-Overlay"
FILENAME_TRAILER = "Patch-Filename"
MARKER = Path(".git") / "wafer-worktree.json"
STRIP = "-p2"
SRC_PREFIX, DST_PREFIX = "a/python/", "b/python/"


@dataclass
class AppliedPatch:
    name: str
    commit: str


def unpack_wheel(wheel: Path, dest: Path) -> None:
    """Extract ``wheel`` into ``dest`` keeping executable bits; refuse paths that escape."""
    with zipfile.ZipFile(wheel) as zf:
        for info in zf.infolist():
            path = PurePosixPath(info.filename)
            if path.is_absolute() or ".." in path.parts:
                raise WaferError(f"{wheel.name}: unsafe path {info.filename!r} in archive")
            if info.is_dir():
                continue
            target = dest / path
            target.parent.mkdir(parents=True, exist_ok=True)
            with zf.open(info) as src, target.open("wb") as dst:
                shutil.copyfileobj(src, dst)
            mode = (info.external_attr >> 16) & 0o777
            os.chmod(target, 0o755 if mode & 0o111 else 0o644)


def import_upstream(work: Path, wheel: Path, pin: UpstreamPin, wheel_pin: WheelPin) -> None:
    """Commit 1: the verified wheel's files, its objects from the pack the first import left in
    the wheel cache when there is one (upstream_pack.py)."""
    unpack_wheel(wheel, work)
    message = (
        f"upstream: sglang {pin.version} ({wheel_pin.filename})\n\n"
        f"Unpacked from the pinned PyPI wheel, sha256 {wheel_pin.sha256}.\n"
    )
    date = f"{pin.released}T00:00:00+0000"
    packs = upstream_pack.pack_dir(wheel, message, date)
    if not upstream_pack.link_into(work, packs):
        git(work, "init", "-q")
        git(work, "add", "-A")
        git(work, "commit", "-q", "--no-verify", "-m", message, date=date)
        upstream_pack.keep(work, packs)
    git(work, "tag", UPSTREAM_TAG)


def apply_patch(work: Path, patch: Path, base_version: str) -> str:
    """``git am`` one patch strictly; the new commit id. Already-applied and fuzzy patches fail."""
    reverse = git(work, "apply", "--check", "-R", STRIP, str(patch), check=False)
    if reverse.returncode == 0:
        raise WaferError(
            f"{patch.name} is already applied: sglang {base_version} plus the patches before it "
            "already contain this change. Drop it from the series (or mark it Applied-Upstream)."
        )
    forward = git(work, "apply", "--check", STRIP, str(patch), check=False)
    if forward.returncode != 0:
        raise WaferError(
            f"{patch.name} does not apply exactly (no fuzz, no 3-way) to sglang {base_version} "
            f"plus the patches before it:\n{forward.stderr.decode(errors='replace').strip()}"
        )
    am = git(work, "am", "-q", "--keep", "--no-3way", "--committer-date-is-author-date", STRIP, str(patch), check=False)
    if am.returncode != 0:
        git(work, "am", "--abort", check=False)
        raise WaferError(f"git am {patch.name} failed:\n{am.stderr.decode(errors='replace').strip()}")
    return record_filename(work, patch.name)


def record_filename(work: Path, name: str) -> str:
    """Add the ``Patch-Filename`` trailer to HEAD (dates kept); the new commit id."""
    message = out(work, "log", "-1", "--format=%B", "HEAD")
    date = out(work, "log", "-1", "--format=%aI", "HEAD").strip()
    tagged = git(work, "interpret-trailers", "--trailer", f"{FILENAME_TRAILER}: {name}", input=message.encode()).stdout
    git(work, "commit", "-q", "--amend", "--no-verify", "--allow-empty", "-F", "-", input=tagged, date=date)
    return out(work, "rev-parse", "HEAD").strip()


def filename_of(work: Path, commit: str) -> str | None:
    names = out(work, "log", "-1", f"--format=%(trailers:key={FILENAME_TRAILER},valueonly)", commit).split()
    return names[-1] if names else None


def write_marker(work: Path, base: str, python_tag: str) -> None:
    (work / MARKER).write_text(
        json.dumps({"tool": "wafer-sglang patches", "base": base, "python_tag": python_tag}) + "\n"
    )


def read_marker(work: Path) -> dict | None:
    try:
        marker = json.loads((work / MARKER).read_text())
    except (OSError, ValueError):
        return None
    return marker if isinstance(marker, dict) and marker.get("base") else None


def apply_series(work: Path, patch_dir: Path, series: Series, base_version: str) -> list[AppliedPatch]:
    applied = []
    for entry in series.entries:
        patch = patch_dir / entry.name
        if not patch.is_file():
            raise WaferError(f"series lists {entry.name}, but {patch} does not exist")
        applied.append(AppliedPatch(entry.name, apply_patch(work, patch, base_version)))
    return applied


def overlay_files(overlay_root: Path) -> list[PurePosixPath]:
    """Our own files for the sglang package (tracked ones, in a git checkout), as paths relative
    to the wheel root. ``overlay_root`` is ``<checkout>/python/sglang``."""
    if not overlay_root.is_dir():
        return []
    paths, _ = source_files(overlay_root.parents[1], overlay_root)
    return [PurePosixPath("sglang") / path.relative_to(overlay_root).as_posix() for path in paths]


def overlay_collisions(work: Path, files: list[PurePosixPath]) -> list[str]:
    return [str(f) for f in files if (work / f).exists()]


def add_overlay(work: Path, overlay_root: Path, date: str) -> list[PurePosixPath]:
    files = overlay_files(overlay_root)
    if not files:
        return []
    collisions = overlay_collisions(work, files)
    if collisions:
        raise WaferError(
            "overlay files would overwrite upstream files (or files a patch creates); "
            "change them through a patch instead:\n  " + "\n  ".join(f"python/{c}" for c in collisions)
        )
    for rel in files:
        src = overlay_root / PurePosixPath(*rel.parts[1:])
        dst = work / rel
        dst.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(src, dst)
        os.chmod(dst, 0o755 if src.stat().st_mode & stat.S_IXUSR else 0o644)
    git(work, "add", "--", *map(str, files))
    message = (
        f"overlay: add wafer-sglang-rocm files\n\n{len(files)} new files from python/sglang/.\n\n"
        f"{OVERLAY_TRAILER}: true\n"
    )
    git(work, "commit", "-q", "--no-verify", "-m", message, date=date)
    return files


def is_overlay_commit(work: Path, commit: str) -> bool:
    trailers = out(work, "log", "-1", "--format=%(trailers:key=" + OVERLAY_TRAILER + ",valueonly)", commit)
    return trailers.strip() == "true"


def head_date(work: Path) -> str:
    return out(work, "log", "-1", "--format=%aI", "HEAD").strip()


def check_replaceable(final: Path, protected: list[Path]) -> None:
    """``--force`` replaces a work tree these tools made, and nothing else: never a folder
    without the marker and the upstream tag, never one of ``protected`` (the checkout, the
    current directory, $HOME, /) or a folder holding one of them."""
    for keep in protected:
        keep = keep.resolve()
        if final == keep or final in keep.parents:
            raise WaferError(f"refusing to replace {final}: it is or holds {keep}")
    if (
        read_marker(final) is None
        or git(final, "rev-parse", "--verify", "-q", f"refs/tags/{UPSTREAM_TAG}", check=False).returncode != 0
    ):
        raise WaferError(
            f"refusing to replace {final}: it is not a work tree made by `wafer-sglang patches apply` "
            "(no .git/wafer-worktree.json and wafer/upstream tag); remove it yourself or pick another --work-dir"
        )


@contextmanager
def staged_dir(final: Path, *, force: bool, protected: list[Path] = ()):
    """Build in a sibling temp dir and move it to ``final`` only on success.

    A failure — SIGTERM included — leaves nothing behind; an existing ``final`` is refused unless
    ``force`` and it is a work tree these tools made (``check_replaceable``).
    """
    final = final.resolve()
    if final.exists() and not final.is_dir():
        raise WaferError(f"--work-dir {final} is a file")
    if final.exists() and any(final.iterdir()):
        if not force:
            raise WaferError(
                f"{final} already exists and is not empty; pass --force to replace it (a work tree "
                "these tools made only)"
            )
        check_replaceable(final, [*protected, Path.cwd(), Path.home(), Path("/")])
    # The name is chosen before the folder exists, and created inside the try: a SIGTERM that
    # lands just after the mkdir (the moment a watcher first sees it) still removes it.
    tmp = final.parent / f".{final.name}.{secrets.token_hex(6)}"
    created = False
    try:
        try:
            final.parent.mkdir(parents=True, exist_ok=True)
            tmp.mkdir(mode=0o700)  # an existing folder of that name is not ours: never removed
        except OSError as exc:
            raise WaferError(f"cannot create the work tree next to {final}: {exc.strerror or exc}") from None
        created = True
        yield tmp
    except BaseException as exc:  # SIGTERM too: the CLI turns it into an exception that unwinds to here
        if created or (not isinstance(exc, WaferError) and tmp.is_dir()):
            shutil.rmtree(tmp, ignore_errors=True)
        raise
    if final.exists():
        shutil.rmtree(final)
    os.replace(tmp, final)
