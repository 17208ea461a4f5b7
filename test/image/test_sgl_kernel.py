"""The sgl-kernel ROCm recipe: its pins agree with what each base's upstream wheel requires, and
build.sh prints the build it would run (it needs hipcc: not run here)."""

from __future__ import annotations

import subprocess
import sys
import zipfile

import pytest
from support.common import ROOT, pinned_wheel

from wafer_sglang import bases

KERNELS = {base: bases.pins(ROOT).base(base).kernel for base in bases.pins(ROOT).bases}


@pytest.mark.network
@pytest.mark.parametrize("base", bases.pins(ROOT).bases)
def test_recipe_pins_the_sgl_kernel_its_base_requires(base):
    with zipfile.ZipFile(pinned_wheel(base)) as zf:
        metadata = zf.read(f"sglang-{base}.dist-info/METADATA").decode()
    assert f"Requires-Dist: sglang-kernel=={KERNELS[base]['version']}\n" in metadata
    assert KERNELS[base]["sglang-tag"] == f"v{base}" and "gfx950" in KERNELS[base]["archs"]


def test_build_script_prints_its_plan_for_the_default_base():
    out = subprocess.run(
        [str(ROOT / "sgl-kernel/build.sh"), "--print"],
        capture_output=True,
        text=True,
        check=True,
        env={"PATH": "/usr/bin:/bin", "PYTHON": sys.executable},
    ).stdout
    assert "sgl-kernel 0.4.4 for sglang 0.5.14 (v0.5.14)" in out
    assert "--branch" not in out and "not runnable yet: patches/bases.toml records no kernel.sglang-commit" in out
    assert "AMDGPU_TARGET=gfx950 " in out and "setup_rocm.py bdist_wheel" in out


def test_build_script_fetches_by_commit_never_by_tag(tmp_path):
    """A tag can move: without a recorded commit the fetch is refused; with one it is what is fetched."""
    import shutil

    env = {"PATH": "/usr/bin:/bin", "PYTHON": sys.executable}
    proc = subprocess.run([str(ROOT / "sgl-kernel/build.sh")], capture_output=True, text=True, env=env)
    assert (
        proc.returncode == 1
        and "records no kernel.sglang-commit for 0.5.14" in proc.stderr
        and "ls-remote" in proc.stderr
    )
    copy = tmp_path / "repo"
    shutil.copytree(ROOT / "sgl-kernel", copy / "sgl-kernel")
    shutil.copytree(ROOT / "patches", copy / "patches")
    versions = copy / "patches/bases.toml"
    commit = "0123456789abcdef0123456789abcdef01234567"
    versions.write_text(versions.read_text().replace('sglang-commit = ""', f'sglang-commit = "{commit}"', 1))
    out = subprocess.run(
        [str(copy / "sgl-kernel/build.sh"), "--print"], capture_output=True, text=True, check=True, env=env
    ).stdout
    assert f"fetch -q --depth 1 https://github.com/sgl-project/sglang.git {commit}" in out and "--branch" not in out


def test_build_script_refuses_an_unknown_base():
    proc = subprocess.run(
        [str(ROOT / "sgl-kernel/build.sh"), "--base", "0.6.0", "--print"],
        capture_output=True,
        text=True,
        env={"PATH": "/usr/bin:/bin", "PYTHON": sys.executable},
    )
    assert proc.returncode != 0 and "unsupported base '0.6.0': supported bases are" in proc.stderr
