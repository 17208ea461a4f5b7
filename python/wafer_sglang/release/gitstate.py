"""What a release starts from: a clean tree at a ``v*`` tag, and the tag before it."""

from __future__ import annotations

from pathlib import Path

from wafer_sglang.errors import WaferError
from wafer_sglang.gitrun import git

TAG_PATTERN = "v*"


def require_clean(root: Path) -> None:
    """No change to a tracked file and no untracked file (ignored ones, like build/, are fine)."""
    if not (root / ".git").exists():
        raise WaferError(f"{root} is not a git checkout: a release is made from a tagged commit")
    status = git(root, "status", "--porcelain", "--untracked-files=normal").stdout.decode()
    if status.strip():
        listed = "\n  ".join(status.splitlines()[:10])
        raise WaferError(f"the tree is not clean; commit or remove these first:\n  {listed}")


def release_tag(root: Path) -> str:
    """The ``v*`` tag at HEAD, or an error: a release is always of a tagged commit."""
    proc = git(root, "describe", "--exact-match", "--tags", "--match", TAG_PATTERN, "HEAD", check=False)
    if proc.returncode != 0:
        head = git(root, "rev-parse", "--short", "HEAD").stdout.decode().strip()
        raise WaferError(f"HEAD ({head}) has no {TAG_PATTERN} tag; tag the release first: git tag -a vYYYY.MM.DD")
    return proc.stdout.decode().strip()


def previous_tag(root: Path, tag: str) -> str | None:
    """The nearest ``v*`` tag before ``tag`` (None for the first release)."""
    proc = git(root, "describe", "--tags", "--abbrev=0", "--match", TAG_PATTERN, f"{tag}^", check=False)
    return proc.stdout.decode().strip() if proc.returncode == 0 else None


def file_at(root: Path, rev: str, path: str) -> bytes | None:
    proc = git(root, "show", f"{rev}:{path}", check=False)
    return proc.stdout if proc.returncode == 0 else None


def changed_since(root: Path, rev: str, *paths: str) -> bool:
    return git(root, "diff", "--quiet", rev, "HEAD", "--", *paths, check=False).returncode != 0
