"""Locating the fork's checkout (patches/, python/sglang overlay) and its ignored build folder."""

from __future__ import annotations

import os
from pathlib import Path

from wafer_sglang.errors import WaferError

PIN_FILE = Path("patches") / "bases.toml"


def find_repo_root(start: Path | None = None) -> Path:
    """The checkout holding ``patches/bases.toml``.

    ``WAFER_SGLANG_ROOT`` wins; otherwise walk up from ``start`` (default: cwd), then from this
    module's own location (a source checkout run in place).
    """
    env = os.environ.get("WAFER_SGLANG_ROOT")
    if env:
        root = Path(env).resolve()
        if not (root / PIN_FILE).is_file():
            raise WaferError(f"WAFER_SGLANG_ROOT={env} has no {PIN_FILE}")
        return root
    for origin in (Path(start or Path.cwd()).resolve(), Path(__file__).resolve().parent):
        for candidate in (origin, *origin.parents):
            if (candidate / PIN_FILE).is_file():
                return candidate
    raise WaferError(
        f"not inside a wafer-sglang-rocm checkout (no {PIN_FILE} above {Path.cwd()}); "
        "run from the checkout or set WAFER_SGLANG_ROOT"
    )


def build_dir(root: Path) -> Path:
    """The ignored folder for caches, work trees and outputs (``WAFER_SGLANG_BUILD_DIR`` overrides)."""
    env = os.environ.get("WAFER_SGLANG_BUILD_DIR")
    return Path(env).resolve() if env else root / "build"


def wheel_cache_dir(root: Path) -> Path:
    """Verified upstream wheels (``WAFER_SGLANG_CACHE_DIR`` overrides; tests share one cache)."""
    env = os.environ.get("WAFER_SGLANG_CACHE_DIR")
    return Path(env).resolve() if env else build_dir(root) / "cache" / "wheels"


def source_files(root: Path, folder: Path) -> tuple[list[Path], list[str]]:
    """The files under ``folder`` (inside the checkout ``root``) that a build ships, and what to
    tell the user. In a git checkout: tracked files only — an untracked file (a ``.env`` with a
    token) never goes into a wheel; a dirty tree is said. Outside git (a source copy pip builds):
    every file but hidden ones and bytecode."""
    import subprocess

    rel = folder.relative_to(root).as_posix()
    if (root / ".git").exists():
        try:
            listed = subprocess.run(
                ["git", "-C", str(root), "ls-files", "-z", "--", rel], capture_output=True, check=True
            ).stdout
            status = subprocess.run(
                ["git", "-C", str(root), "status", "--porcelain", "--", rel], capture_output=True, text=True, check=True
            ).stdout
        except (OSError, subprocess.CalledProcessError) as exc:
            raise WaferError(f"cannot list the tracked files of {root} (git: {exc})") from None
        files = sorted(root / name for name in listed.decode().split("\0") if name and (root / name).is_file())
        notes = []
        untracked = [line[3:] for line in status.splitlines() if line.startswith("??")]
        modified = [line[3:] for line in status.splitlines() if line and not line.startswith("??")]
        if untracked:
            notes.append(
                f"not shipped (untracked): {', '.join(untracked[:10])}" + (" ..." if len(untracked) > 10 else "")
            )
        if modified:
            notes.append(
                f"the tree is dirty: shipping uncommitted changes of {', '.join(modified[:10])}"
                + (" ..." if len(modified) > 10 else "")
            )
        return [f for f in files if "__pycache__" not in f.parts and f.suffix != ".pyc"], notes
    files = sorted(
        p
        for p in folder.rglob("*")
        if p.is_file()
        and "__pycache__" not in p.parts
        and p.suffix != ".pyc"
        and not any(part.startswith(".") for part in p.relative_to(folder).parts)
    )
    return files, [f"{root} is not a git checkout: shipping every non-hidden file under {rel}"]
