"""Shared fixtures: the checkout, a shared verified-wheel cache, and scratch copies of the queue."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
from support import served_engine
from support.common import CACHE, ROOT


def pytest_configure(config):
    """One folder for this run's served engines, made before xdist starts its workers (they
    inherit it): a server started by one worker serves them all."""
    if not hasattr(config, "workerinput") and served_engine.RUN_ENV not in os.environ:
        folder = ROOT / "build" / "test-run" / f"run-{os.getpid()}"
        folder.mkdir(parents=True, exist_ok=True)
        os.environ[served_engine.RUN_ENV] = str(folder)


def pytest_sessionfinish(session, exitstatus):
    """The controlling process stops every served engine once all tests are done; a server that
    leaves processes behind, or any call into an import stand-in, fails the run."""
    if hasattr(session.config, "workerinput"):
        return
    problems = served_engine.stop_all()
    if problems:
        session.config.get_terminal_writer().line("\n".join(["served engines:", *problems]), red=True)
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


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
