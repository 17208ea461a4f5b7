"""Installing the fork on a (simulated) ROCm host must never bring a CUDA torch or triton.

The host is a venv with stand-in distributions for the ROCm stack (metadata only: pip judges
installs by metadata). pip resolves the fork's real requirements against PyPI with --dry-run.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from packaging.utils import canonicalize_name
from support import engine_env
from support.common import cli_env

pytestmark = [pytest.mark.network, pytest.mark.slow]
# The stack of a ROCm host per base (what the ROCm sglang images ship: triton built as `triton`).
ROCM_HOSTS = {
    "0.5.14": {
        "torch": "2.9.1+rocm7.1.1",
        "torchvision": "0.24.1+rocm7.1.1",
        "torchaudio": "2.9.1+rocm7.1.1",
        "triton": "3.5.1+rocm7.1.1",
    },
    "0.5.23": {
        "torch": "2.11.0+rocm7.2.0",
        "torchvision": "0.26.0+rocm7.2.0",
        "torchaudio": "2.11.0+rocm7.2.0",
        "triton": "3.6.0+rocm7.2.0",
    },
}
FORBIDDEN_PREFIXES = ("torch", "triton", "nvidia-", "cuda-", "flashinfer", "sgl-kernel", "sglang-kernel")


def fake_rocm_host(venv: Path, stack: dict[str, str]) -> None:
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    site = Path(
        subprocess.run(
            [venv / "bin/python", "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    )
    for name, version in stack.items():
        info = site / f"{name}-{version}.dist-info"
        info.mkdir()
        (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n")
        (info / "RECORD").write_text("")


def dry_run(tmp_path: Path, base: str, stack: dict[str, str]) -> subprocess.CompletedProcess:
    """pip's plan for installing the fork on a host with ``stack``, constrained by rocm-constraints,
    with the tools wheel it requires beside it (pip finds it there, as on the index): the run's
    shared builds (support/engine_env.py)."""
    wheel = engine_env.fork_wheel(base)
    assert engine_env.tools_wheel().parent == wheel.parent
    venv = tmp_path / "host"
    fake_rocm_host(venv, stack)
    env = cli_env()  # our CLI, run by the host's python
    constraints = subprocess.run(
        [venv / "bin/python", "-m", "wafer_sglang", "rocm-constraints"],
        capture_output=True,
        text=True,
        check=True,
        env=env,
    ).stdout
    assert all(f"{name}=={version}" in constraints for name, version in stack.items())
    (tmp_path / "c.txt").write_text(constraints)
    return subprocess.run(
        [
            venv / "bin/python",
            "-m",
            "pip",
            "install",
            "--dry-run",
            "-q",
            "--report",
            str(tmp_path / "report.json"),
            "-c",
            str(tmp_path / "c.txt"),
            "--find-links",
            str(wheel.parent),
            str(wheel),
        ],
        capture_output=True,
        text=True,
        env={k: v for k, v in os.environ.items() if k != "PYTHONPATH"},
    )


@pytest.mark.parametrize("base", sorted(ROCM_HOSTS))
def test_constrained_install_keeps_the_rocm_stack(tmp_path, base):
    proc = dry_run(tmp_path, base, ROCM_HOSTS[base])
    assert proc.returncode == 0, proc.stderr
    installs = [
        canonicalize_name(i["metadata"]["name"]) for i in json.loads((tmp_path / "report.json").read_text())["install"]
    ]
    assert "wafer-sglang-rocm" in installs and "wafer-sglang" in installs
    assert [n for n in installs if n.startswith(FORBIDDEN_PREFIXES)] == []


def test_too_old_rocm_torch_fails_instead_of_pulling_cuda_torch(tmp_path):
    """0.5.23 pins compressed-tensors 0.18.0 (torch>=2.10): on a torch 2.9 ROCm host the install
    must stop with a conflict, not replace torch."""
    proc = dry_run(tmp_path, "0.5.23", ROCM_HOSTS["0.5.14"])
    assert proc.returncode != 0
    assert "ResolutionImpossible" in proc.stderr and not (tmp_path / "report.json").exists()


def test_rocm_constraints_refuses_a_cuda_torch(tmp_path):
    from wafer_sglang.errors import WaferError
    from wafer_sglang.host.rocm_env import constraints

    with pytest.raises(WaferError, match="not a ROCm build"):
        constraints({"torch": "2.14.1+cu130"})
    with pytest.raises(WaferError, match="torch is not installed"):
        constraints({})
