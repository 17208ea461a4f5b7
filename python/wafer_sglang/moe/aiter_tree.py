"""aiter's files as one commit has them: a git clone of ROCm/aiter (any commit of its history), or
an installed aiter on disk (the image's editable checkout, a wheel install).

Nothing of aiter is shipped with the fork: what the tools know about a given aiter — its tuned
configs, its kernel names, its own lookup code — is read from aiter itself, here.
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path

from wafer_sglang.errors import WaferError


@dataclass(frozen=True)
class AiterTree:
    """``root`` is a git clone read at ``commit``, or (``commit`` None) a directory holding
    ``aiter/`` as installed."""

    root: Path
    commit: str | None = None

    @classmethod
    def at(cls, clone: Path, commit: str) -> AiterTree:
        """``commit`` of a clone; a commit the clone lacks is an error naming the fetch to run."""
        clone = Path(clone)
        proc = _git(clone, "rev-parse", "--verify", "--quiet", f"{commit}^{{commit}}")
        if proc.returncode != 0:
            raise WaferError(
                f"{clone} is not a clone of ROCm/aiter holding commit {commit} "
                "(git clone https://github.com/ROCm/aiter; for an unmerged PR also "
                "git -C aiter fetch origin pull/<N>/head)"
            )
        return cls(clone, proc.stdout.strip())

    @classmethod
    def installed(cls, root: Path) -> AiterTree:
        root = Path(root)
        package = root if (root / "configs").is_dir() and root.name == "aiter" else root / "aiter"
        if not (package / "configs").is_dir():
            raise WaferError(f"{root} holds no aiter package (aiter/configs/)")
        return cls(package.parent)

    @property
    def label(self) -> str:
        return f"aiter {self.commit[:12]}" if self.commit else f"aiter at {self.root}"

    def read(self, path: str) -> str | None:
        """The text of ``path`` (relative to the repository root), or None if absent."""
        if self.commit is None:
            file = self._on_disk(path)
            return file.read_text() if file is not None and file.is_file() else None
        proc = _git(self.root, "show", f"{self.commit}:{path}")
        return proc.stdout if proc.returncode == 0 else None

    def files(self, folder: str) -> list[str]:
        """Paths of the files under ``folder``, recursively, sorted."""
        if self.commit is None:
            base = self._on_disk(folder)
            if base is None or not base.is_dir():
                return []
            return sorted(f"{folder}/{p.relative_to(base).as_posix()}" for p in base.rglob("*") if p.is_file())
        proc = _git(self.root, "ls-tree", "-r", "--name-only", self.commit, "--", folder)
        return sorted(proc.stdout.split())

    def _on_disk(self, path: str) -> Path | None:
        """An installed aiter keeps csrc/ and hsa/ beside its package (a checkout) or in
        aiter_meta/ (a wheel install)."""
        for candidate in (self.root / path, self.root / "aiter_meta" / path):
            if candidate.exists():
                return candidate
        return None


def _git(root: Path, *args: str) -> subprocess.CompletedProcess:
    try:
        return subprocess.run(["git", "-C", str(root), *args], capture_output=True, text=True)
    except FileNotFoundError:
        raise WaferError("git is required to read aiter's history (apt-get install git)") from None
