"""Shared fixtures: the checkout, a shared verified-wheel cache, and scratch copies of the queue."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CACHE = ROOT / "build" / "cache" / "wheels"
SHARED = ROOT.parent / "shared"


@pytest.fixture(autouse=True)
def _isolated_env(monkeypatch):
    """Every test uses the checkout's wheel cache and never a caller's WAFER_SGLANG_* settings."""
    for key in list(os.environ):
        if key.startswith("WAFER_SGLANG_") or key == "SOURCE_DATE_EPOCH":
            monkeypatch.delenv(key)
    monkeypatch.setenv("WAFER_SGLANG_CACHE_DIR", str(CACHE))
    monkeypatch.setenv("WAFER_SGLANG_ROOT", str(ROOT))


@pytest.fixture
def scratch_root(tmp_path, monkeypatch) -> Path:
    """A writable copy of the checkout's queue (patches/, python/) that tests may break."""
    root = tmp_path / "checkout"
    shutil.copytree(ROOT / "patches", root / "patches")
    shutil.copytree(ROOT / "python", root / "python", ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    monkeypatch.setenv("WAFER_SGLANG_ROOT", str(root))
    monkeypatch.setenv("WAFER_SGLANG_BUILD_DIR", str(tmp_path / "build"))
    return root


def python_exe(version: str) -> str:
    """An interpreter for ``version`` (PATH, then pyenv's install folder); skip if there is none."""
    found = shutil.which(f"python{version}")
    if found and subprocess.run([found, "-c", ""], capture_output=True).returncode == 0:
        return found
    for candidate in sorted(Path.home().glob(f".pyenv/versions/{version}.*/bin/python{version}"), reverse=True):
        return str(candidate)
    pytest.skip(f"no python{version} interpreter on this machine")


def run_cli(capsys, *argv: str) -> tuple[int, str, str]:
    from wafer_sglang.cli.main import main

    rc = main(list(argv))
    captured = capsys.readouterr()
    return rc, captured.out, captured.err
