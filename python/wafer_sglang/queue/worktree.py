"""The git work tree a base is patched in: upstream import, strict series apply, overlay commit.

Layout of a work tree: the wheel's contents at the root (``sglang/``, ``sglang-X.dist-info/``),
commit 1 = the pristine wheel (tag ``wafer/upstream``), one commit per patch (``git am``), then
one overlay commit (trailer ``Wafer-Overlay: true``) that only adds files.

Patch paths are rooted at the upstream git repo (``python/sglang/...``); the wheel drops the
``python/`` component, so patches go in with ``-p2`` and come out with ``a/python/`` prefixes.
"""

from __future__ import annotations

import os
import shutil
import stat
import tempfile
import zipfile
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from wafer_sglang.errors import WaferError
from wafer_sglang.gitrun import git, out
from wafer_sglang.queue.pins import UpstreamPin, WheelPin
from wafer_sglang.queue.series import Series

UPSTREAM_TAG = "wafer/upstream"
OVERLAY_TRAILER = "Wafer-Overlay"
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
    unpack_wheel(wheel, work)
    git(work, "init", "-q")
    git(work, "add", "-A")
    message = (
        f"upstream: sglang {pin.version} ({wheel_pin.filename})\n\n"
        f"Unpacked from the pinned PyPI wheel, sha256 {wheel_pin.sha256}.\n"
    )
    git(work, "commit", "-q", "--no-verify", "-m", message, date=f"{pin.released}T00:00:00+0000")
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
    return out(work, "rev-parse", "HEAD").strip()


def apply_series(work: Path, patch_dir: Path, series: Series, base_version: str) -> list[AppliedPatch]:
    applied = []
    for entry in series.entries:
        patch = patch_dir / entry.name
        if not patch.is_file():
            raise WaferError(f"series lists {entry.name}, but {patch} does not exist")
        applied.append(AppliedPatch(entry.name, apply_patch(work, patch, base_version)))
    return applied


def overlay_files(overlay_root: Path) -> list[PurePosixPath]:
    """Our own files for the sglang package, as paths relative to the wheel root."""
    if not overlay_root.is_dir():
        return []
    files = []
    for path in sorted(overlay_root.rglob("*")):
        if path.is_dir() or "__pycache__" in path.parts or path.suffix == ".pyc":
            continue
        files.append(PurePosixPath("sglang") / path.relative_to(overlay_root).as_posix())
    return files


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
    message = f"overlay: add wafer-sglang-rocm files\n\n{len(files)} new files from python/sglang/.\n\n{OVERLAY_TRAILER}: true\n"
    git(work, "commit", "-q", "--no-verify", "-m", message, date=date)
    return files


def is_overlay_commit(work: Path, commit: str) -> bool:
    trailers = out(work, "log", "-1", "--format=%(trailers:key=" + OVERLAY_TRAILER + ",valueonly)", commit)
    return trailers.strip() == "true"


def head_date(work: Path) -> str:
    return out(work, "log", "-1", "--format=%aI", "HEAD").strip()


@contextmanager
def staged_dir(final: Path, *, force: bool):
    """Build in a sibling temp dir and move it to ``final`` only on success.

    A failure leaves nothing behind; an existing ``final`` is refused unless ``force``.
    """
    final = final.resolve()
    if final.exists() and any(final.iterdir()) and not force:
        raise WaferError(f"{final} already exists and is not empty; pass --force to replace it")
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.", dir=final.parent))
    try:
        yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    if final.exists():
        shutil.rmtree(final)
    os.replace(tmp, final)
