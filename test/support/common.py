"""What tests share besides fixtures: the checkout's paths, the supported bases, running the CLI
in-process, and skipping where a tool or interpreter is missing. Tests import these from here,
never from conftest.py (pytest's plugin module, not a library)."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pytest

from wafer_sglang import bases

ROOT = Path(__file__).resolve().parents[2]
CACHE = ROOT / "build" / "cache" / "wheels"
# The supported bases, from their record (patches/bases.toml): tests parametrise from it, so
# adding a base runs every per-base test on it.
BASES = bases.pins(ROOT).bases
LTS = bases.pins(ROOT).default_base


def pinned_wheel(version: str) -> Path:
    """The verified cp311 wheel of a pinned sglang release, in the shared cache (fetched if no test
    has yet: none may count on another's download)."""
    from wafer_sglang.queue import download

    return download.fetch(bases.pins(ROOT).get(version).any_wheel("cp311"), CACHE, quiet=True)


def needs_tool(*tools: str):
    """Skip, saying which, when a tool the test runs is not installed (make test-env installs them)."""
    missing = [
        t for t in tools if shutil.which(t) is None and shutil.which(t, path=str(Path(sys.executable).parent)) is None
    ]
    return pytest.mark.skipif(bool(missing), reason=f"needs {', '.join(missing)} (make test-env installs it)")


def python_exe(version: str) -> str:
    """An interpreter for ``version`` (PATH, then pyenv's install folder); skip if there is none."""
    from wafer_sglang.host.pythons import find_python

    return find_python(version) or pytest.skip(f"no python{version} interpreter on this machine")


# The CLI in a process of its own (signals, closed pipes): the checkout's tools, linked in alone
CLI = [sys.executable, "-m", "wafer_sglang"]


def cli_env(**extra: str) -> dict[str, str]:
    import os

    return {**os.environ, "PYTHONPATH": str(ROOT / "build/devpath"), **extra}


def run_cli(capsys, *argv: str) -> tuple[int, str, str]:
    from wafer_sglang.cli.main import main

    rc = main(list(argv))
    captured = capsys.readouterr()
    return rc, captured.out, captured.err
