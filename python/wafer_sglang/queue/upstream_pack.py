"""The upstream import's objects, packed once per wheel beside it in the wheel cache.

``git add -A`` of an unpacked wheel hashes, compresses and writes ~3,200 loose objects (1.4 s on an
idle 2-core machine, most of it system time); every ``patches apply``, ``build`` and
``check-upstream`` starts with it. The first import keeps its objects as one pack in
``<wheel cache>/imports/<key>/``; later ones hard-link that pack (or copy it across file systems)
and only build the index. A pack is trusted only if the work tree then matches its commit
exactly: ``git status`` hashes every file of the verified wheel against it; otherwise it is
dropped and the import is done in full. The cache is an optimisation: it failing changes nothing.
"""

from __future__ import annotations

import hashlib
import os
import shutil
from pathlib import Path

from wafer_sglang.errors import WaferError
from wafer_sglang.fsutil import scratch_dir
from wafer_sglang.gitrun import git, out

COMMIT_FILE = "commit"


def pack_dir(wheel: Path, message: str, date: str) -> Path:
    """Keyed by all the commit is made of: the wheel (its hash is in ``message``), message, date."""
    key = hashlib.sha256(f"{wheel.name}\0{message}\0{date}".encode()).hexdigest()[:24]
    return wheel.parent / "imports" / key


def link_into(work: Path, packs: Path) -> bool:
    """Put the pack's commit at HEAD of the fresh repository ``work`` (files already unpacked) with
    its index; False (and ``work`` has no repository) if the pack is missing or does not match the
    files."""
    commit_file = packs / COMMIT_FILE
    if not commit_file.is_file():
        return False
    commit = commit_file.read_text().strip()
    git(work, "init", "-q")
    dest = work / ".git" / "objects" / "pack"
    try:
        for pack in packs.glob("pack-*"):
            _link_or_copy(pack, dest / pack.name)
        git(work, "update-ref", "HEAD", commit)
        git(work, "reset", "-q")
        clean = out(work, "status", "--porcelain", "--untracked-files=all") == ""
    except (WaferError, OSError):  # a damaged or partial pack: the full import still works
        clean = False
    if not clean:
        shutil.rmtree(work / ".git")
        shutil.rmtree(packs, ignore_errors=True)
    return clean


def keep(work: Path, packs: Path) -> None:
    """Pack HEAD's objects of ``work`` into ``packs``; a cache that cannot be written is skipped,
    and of two processes packing at once the first rename wins."""
    commit = out(work, "rev-parse", "HEAD").strip()
    try:
        packs.parent.mkdir(parents=True, exist_ok=True)
        with scratch_dir(prefix=".pack-", dir=packs.parent) as tmp:
            objects = git(work, "rev-list", "--objects", "HEAD").stdout
            git(work, "pack-objects", "-q", "--window=0", "--depth=0", f"{tmp}/pack", input=objects)
            Path(tmp, COMMIT_FILE).write_text(commit + "\n")
            os.rename(tmp, packs)
    except (WaferError, OSError):
        pass


def _link_or_copy(src: Path, dst: Path) -> None:
    try:
        os.link(src, dst)
    except OSError:
        shutil.copy2(src, dst)
