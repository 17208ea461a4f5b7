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
