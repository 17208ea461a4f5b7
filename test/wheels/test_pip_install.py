"""`pip install .` from the checkout builds and installs the fork (setup.py -> wafer-sglang build)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import pytest
from support.common import ROOT

pytestmark = [pytest.mark.network, pytest.mark.slow]


def checkout_copy(tmp_path):
    """A copy, as a user's clean checkout: only what git tracks (pip writes its egg-info into the
    source folder, which must not be ours: importlib.metadata then finds it from the checkout)."""
    source = tmp_path / "src"
    tracked = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True).stdout.split(b"\0")
    for name in filter(None, (t.decode() for t in tracked)):
        (source / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / name, source / name)
    return source


def test_pip_install_dot_builds_the_default_base(tmp_path):
    source = checkout_copy(tmp_path)  # plus the shared wheel cache
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH" and not k.startswith("WAFER_SGLANG_")}
    env["WAFER_SGLANG_CACHE_DIR"] = str(ROOT / "build/cache/wheels")
    from wafer_sglang.wheels.tools_wheel import build_tools

    tools = build_tools(ROOT, tmp_path / "tools")  # the release the engine requires (not on the index yet)
    pip = [venv / "bin/python", "-m", "pip", "install", "-q", "--no-deps", "--no-compile"]  # the test reads no .pyc
    subprocess.run([*pip, str(tools), str(source)], check=True, env=env)
    info = subprocess.run(
        [venv / "bin/wafer-sglang", "info"], capture_output=True, text=True, check=True, env=env, cwd=tmp_path
    ).stdout
    tag = f"cp{sys.version_info.major}{sys.version_info.minor}"
    assert info.startswith(f"wafer-sglang-rocm 0.5.14.post1 ({tag})")


def test_editable_install_is_refused_with_a_reason(tmp_path):
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["WAFER_SGLANG_CACHE_DIR"] = str(ROOT / "build/cache/wheels")
    proc = subprocess.run(
        [venv / "bin/python", "-m", "pip", "install", "--no-deps", "-e", str(checkout_copy(tmp_path))],
        capture_output=True,
        text=True,
        env=env,
    )
    assert proc.returncode != 0 and "cannot be installed in editable mode" in proc.stdout + proc.stderr


def test_checkout_metadata_declares_the_extras_and_python_the_wheel_does(tmp_path):
    """pip reads a checkout's metadata from setup.py (egg_info) before it builds: `pip install
    '.[bench]'` once warned "does not provide the extra 'bench'" and Requires-Python said 3.11."""
    from email.parser import Parser

    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH" and not k.startswith("WAFER_SGLANG_")}
    env["WAFER_SGLANG_CACHE_DIR"] = str(ROOT / "build/cache/wheels")
    subprocess.run(
        [sys.executable, "setup.py", "-q", "egg_info", "--egg-base", str(tmp_path)],
        cwd=ROOT,
        env=env,
        check=True,
        capture_output=True,
    )
    info = Parser().parsestr((tmp_path / "wafer_sglang_rocm.egg-info" / "PKG-INFO").read_text())
    assert {"bench", "eval", "router"} <= set(info.get_all("Provides-Extra"))
    assert info["Requires-Python"] == ">=3.10"  # sglang 0.5.14's own; its ROCm images run 3.10
    requires = (tmp_path / "wafer_sglang_rocm.egg-info" / "requires.txt").read_text()
    from wafer_sglang import __version__

    assert f"\nwafer-sglang=={__version__}\n" in requires  # exactly the tools of its release
    assert f"[bench]\nwafer-sglang[bench]=={__version__}" in requires and "[router]\nsglang-router==0.3.2" in requires
