"""The tools-only wheel on a client machine: `pip install 'wafer-sglang[bench,eval,router]'` into a fresh
venv from the package index brings no torch, triton or nvidia-* (the engine wheel's requirements
reach CUDA torch through sglang's, e.g. timm -> torchvision: 7 GB in 11 min), and the commands a
client uses run there. The install's time and size are printed."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import pytest
from packaging.utils import canonicalize_name
from support import synthetic_checkpoint
from support.common import ROOT, run_cli

pytestmark = [pytest.mark.network, pytest.mark.slow]

SERVER_ONLY = ("torch", "triton", "sglang", "wafer-sglang-rocm")


def _size_mb(folder) -> float:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file() and not p.is_symlink()) / 2**20


def test_the_tools_wheel_is_pure_python_and_reproducible(capsys, tmp_path, monkeypatch):
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1767225600")
    wheels = []
    for out in ("a", "b"):
        rc, stdout, _ = run_cli(capsys, "build", "--tools", "-o", str(tmp_path / out))
        wheels.append(stdout.strip())
    assert rc == 0 and wheels[0].endswith("-py3-none-any.whl")
    assert Path(wheels[0]).read_bytes() == Path(wheels[1]).read_bytes()
    with zipfile.ZipFile(wheels[0]) as zf:
        names = zf.namelist()
        wheel = zf.read(next(n for n in names if n.endswith(".dist-info/WHEEL"))).decode()
    assert "Root-Is-Purelib: true" in wheel and "Tag: py3-none-any" in wheel
    assert not [n for n in names if n.startswith("sglang/") or n.endswith(".so")]
    assert any(n.endswith("bases.toml") for n in names)  # the base records: `bases`, `cluster plan --base`


def test_a_client_install_brings_no_torch_and_the_tools_run(capsys, tmp_path):
    rc, stdout, _ = run_cli(capsys, "build", "--tools", "-o", str(tmp_path / "dist"))
    wheel = stdout.strip()
    venv = tmp_path / "client"
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH" and not k.startswith("WAFER_SGLANG_")}
    started = time.monotonic()
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    subprocess.run(
        [
            venv / "bin/python",
            "-m",
            "pip",
            "install",
            "-q",
            "--disable-pip-version-check",
            "--no-compile",  # what is resolved and installed is the claim, not bytecode (unmeasured saving)
            f"{wheel}[bench,eval,router]",
        ],
        check=True,
        env=env,
    )
    took, size = time.monotonic() - started, _size_mb(venv)
    print(f"\ntools-only client install ([bench,eval,router], no byte-compile): {took:.0f} s, {size:.0f} MB")
    listed = subprocess.run(
        [venv / "bin/python", "-m", "pip", "list", "--format=json"], capture_output=True, text=True, check=True
    ).stdout
    names = {canonicalize_name(p["name"]) for p in json.loads(listed)}
    assert "wafer-sglang" in names and "lm-eval" in names and "aiohttp" in names
    assert not [n for n in names if n in SERVER_ONLY or n.startswith("nvidia-")], sorted(names)

    def run(*argv: str) -> subprocess.CompletedProcess:
        return subprocess.run([venv / "bin/wafer-sglang", *argv], capture_output=True, text=True, env=env, cwd=tmp_path)

    for argv in (("bench", "sweep", "--help"), ("eval", "run", "--help"), ("doctor", "--help"), ("bases",)):
        proc = run(*argv)
        assert proc.returncode == 0, (argv, proc.stderr)
    checkpoint = synthetic_checkpoint.glm5(tmp_path / "ckpt", layers=3, shards=1)
    proc = run("checkpoint", "check", str(checkpoint))
    assert proc.returncode in (0, 1) and "Traceback" not in proc.stderr and "error:" not in proc.stderr, proc.stderr
    proc = run("cluster", "plan", "--topology", "dp", "--model", "/m", "--nodes", "10.0.0.1,10.0.0.2", "--out", "plan")
    assert proc.returncode == 0 and (tmp_path / "plan").is_dir(), proc.stderr
    proc = run("--version")
    assert proc.returncode == 0 and "wafer-sglang" in proc.stdout
    proc = run("check-kernels")  # no sglang, no torch here: said, not an internal error
    assert proc.returncode == 2 and "check-kernels runs where sglang runs" in proc.stderr, proc.stderr
    where = subprocess.run(
        [venv / "bin/python", "-c", "import wafer_sglang; print(wafer_sglang.__file__)"],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        check=True,
    ).stdout
    assert where.startswith(str(venv)) and str(ROOT) not in where  # the wheel's tools, not the checkout's
