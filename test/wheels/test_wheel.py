"""The fork wheel: builds, installs with --no-deps (beside the tools wheel it requires) into fresh
venvs, is valid and reproducible, and holds sglang only: the tools are their own distribution."""

from __future__ import annotations

import base64
import csv
import hashlib
import io
import json
import os
import subprocess
import zipfile
from email.parser import BytesParser
from pathlib import Path

import pytest
from packaging.metadata import Metadata
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from support.common import ROOT, python_exe, run_cli

from wafer_sglang import __version__, bases
from wafer_sglang.wheels.metadata import DROPPED_REQUIREMENTS

pytestmark = [pytest.mark.network, pytest.mark.slow]
GUARD_FILE = "sglang/jit_kernel/csrc/elementwise/fused_metadata_copy.cuh"
BUILDS = bases.builds()  # every wheel `make` builds (the bases' record)


class Lazy(dict):
    """Made on first use, once per module: a test selected alone builds only what it reads."""

    def __init__(self, make):
        super().__init__()
        self.make = make

    def __missing__(self, key):
        self[key] = self.make(*key)
        return self[key]


def _builder(tmp_path_factory):
    from wafer_sglang.wheels.wheel import build

    os.environ.setdefault("WAFER_SGLANG_CACHE_DIR", str(ROOT / "build/cache/wheels"))
    return Lazy(
        lambda base, py: build(ROOT, base, "cp" + py.replace(".", ""), tmp_path_factory.mktemp("w"), quiet=True)
    )


@pytest.fixture(scope="module")
def wheels(tmp_path_factory):
    """(base, python) -> the wheel, built on first use."""
    return _builder(tmp_path_factory)


@pytest.fixture(scope="module")
def rebuilt(tmp_path_factory):
    """(base, python) -> the same wheel built again, into another folder."""
    return _builder(tmp_path_factory)


# Reproducibility and the venv install on one wheel per base, a derived tag included; `wafer-sglang
# release` does both for every wheel (test/release/), the metadata test below covers every tag.
REPRODUCED = [next(b for b in BUILDS if b[0] == base) for base in dict.fromkeys(base for base, _ in BUILDS)]


@pytest.mark.parametrize("base, py", REPRODUCED)
def test_builds_are_byte_identical(wheels, rebuilt, base, py):
    first, second = wheels[base, py], rebuilt[base, py]
    assert (
        first.name
        == f"wafer_sglang_rocm-{base}.post1-cp{py.replace('.', '')}-cp{py.replace('.', '')}-manylinux_2_34_x86_64.whl"
    )
    assert first.read_bytes() == second.read_bytes()


@pytest.mark.parametrize("base, py", BUILDS)
def test_record_and_metadata_are_valid(wheels, base, py):
    with zipfile.ZipFile(wheels[base, py]) as zf:
        names = zf.namelist()
        dist_info = f"wafer_sglang_rocm-{base}.post1.dist-info"
        assert not any(n.startswith("sglang-") and ".dist-info/" in n for n in names)
        record = list(csv.reader(io.StringIO(zf.read(f"{dist_info}/RECORD").decode())))
        assert {row[0] for row in record} == set(names)
        for path, digest, size in record:
            if path.endswith("RECORD"):
                assert (digest, size) == ("", "")
                continue
            data = zf.read(path)
            expected = "sha256=" + base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
            assert (digest, int(size)) == (expected, len(data)), path
        raw = zf.read(f"{dist_info}/METADATA")
        wheel_file = zf.read(f"{dist_info}/WHEEL").decode()
        entry_points = zf.read(f"{dist_info}/entry_points.txt").decode()
        manifest = json.loads(zf.read(f"{dist_info}/fork_manifest.json"))  # the engine's own, in its dist-info
    assert not [n for n in names if n.startswith("wafer_sglang/")]  # the tools wheel's, not two owners
    meta = Metadata.from_email(raw, validate=True)
    assert (meta.name, str(meta.version)) == ("wafer-sglang-rocm", f"{base}.post1")
    assert "Root-Is-Purelib: false" in wheel_file and f"Tag: cp{py.replace('.', '')}-" in wheel_file
    assert "wafer-sglang =" not in entry_points and "sglang = sglang.cli.main:main" in entry_points
    tools = [str(r) for r in meta.requires_dist if canonicalize_name(r.name) == "wafer-sglang"]
    assert tools[0] == f"wafer-sglang=={__version__}"
    assert f'wafer-sglang[bench]=={__version__}; extra == "bench"' in tools
    for requirement in meta.requires_dist:
        name = canonicalize_name(requirement.name)
        assert name not in DROPPED_REQUIREMENTS and not name.startswith(("nvidia-", "cuda-")), requirement
        assert name != "sglang", f"self-referencing extra not rewritten: {requirement}"
    assert any(canonicalize_name(r.name) == "wafer-sglang-rocm" for r in meta.requires_dist)  # rewritten extras
    upstream = BytesParser().parsebytes(raw)
    assert "License" in upstream and "Apache License" in upstream["License"]
    assert manifest["base"]["version"] == base and manifest["version"] == f"{base}.post1"
    assert "torch" in {Requirement(r).name for r in manifest["dropped_requirements"]}


@pytest.fixture(scope="module")
def tools_wheel(tmp_path_factory):
    from wafer_sglang.wheels.tools_wheel import build_tools

    return build_tools(ROOT, tmp_path_factory.mktemp("tools"))


@pytest.fixture(scope="module")
def installed(wheels, tools_wheel, tmp_path_factory):
    """(base, py) -> venv with the first wheel and its tools installed --no-deps (not byte-compiled:
    the derived-wheel test compiles what it checks; pip's compile of ~3k modules was most of the time)."""

    def make(base, py):
        venv = tmp_path_factory.mktemp(f"venv-{base}-{py}")
        subprocess.run([python_exe(py), "-m", "venv", str(venv)], check=True)
        subprocess.run(
            [venv / "bin/python", "-m", "pip", "install", "-q", "--no-deps", "--no-compile"]
            + [str(wheels[base, py]), str(tools_wheel)],
            check=True,
        )
        return venv

    return Lazy(make)


def in_venv(venv: Path, *args: str) -> str:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "WAFER_SGLANG_ROOT")}
    return subprocess.run([str(a) for a in args], capture_output=True, text=True, check=True, env=env, cwd=venv).stdout


@pytest.mark.parametrize("base, py", REPRODUCED)  # `release` installs every wheel in a fresh venv
def test_installs_with_no_deps(installed, base, py):
    venv = installed[base, py]
    probe = (
        "import importlib.metadata as m, importlib.util as u, json;"  # sglang itself needs its deps
        "names = sorted(d.metadata['Name'] for d in m.distributions());"
        "print(json.dumps({'dists': names, 'version': m.version('wafer-sglang-rocm'),"
        " 'sglang': u.find_spec('sglang').origin}))"
    )
    result = json.loads(in_venv(venv, venv / "bin/python", "-c", probe))
    assert "wafer-sglang-rocm" in result["dists"] and "sglang" not in result["dists"]
    assert result["version"] == f"{base}.post1"
    site = Path(result["sglang"]).parents[1]
    assert not list(site.glob("sglang-*.dist-info"))
    info = in_venv(venv, venv / "bin/wafer-sglang", "info")
    assert info.startswith(f"wafer-sglang-rocm {base}.post1 (cp{py.replace('.', '')})")
    assert f"base: sglang {base}" in info


def test_derived_cp310_wheel_is_the_cp311_one_without_its_311_only_module(wheels, installed):
    """0.5.14's ROCm images run Python 3.10, for which PyPI has no wheel (patches/bases.toml)."""
    with (
        zipfile.ZipFile(wheels["0.5.14", "3.10"]) as derived,
        zipfile.ZipFile(wheels["0.5.14", "3.11"]) as source,
    ):
        derived_names, source_names = set(derived.namelist()), set(source.namelist())
        manifest = json.loads(derived.read("wafer_sglang_rocm-0.5.14.post1.dist-info/fork_manifest.json"))
        meta = Metadata.from_email(derived.read("wafer_sglang_rocm-0.5.14.post1.dist-info/METADATA"), validate=True)
        sglang_files = {n for n in source_names if n.startswith("sglang/")}
        assert sglang_files - derived_names == {"sglang/srt/grpc/_core.cpython-311-x86_64-linux-gnu.so"}
        assert all(derived.read(n) == source.read(n) for n in sglang_files & derived_names)
    assert not any(".cpython-311-" in n for n in derived_names)
    assert manifest["base"]["wheel"] == "sglang-0.5.14-cp311-cp311-manylinux_2_34_x86_64.whl"
    assert manifest["base"]["derived"]["from"] == "cp311"
    assert str(meta.requires_python) == ">=3.10"
    assert f"wafer-sglang=={__version__}" in [str(r) for r in meta.requires_dist]  # the tools, Python 3.10 too
    # every module of the patched package byte-compiles on a real Python 3.10 (syntax, not imports)
    venv = installed["0.5.14", "3.10"]
    site = next(venv.glob("lib/python3.10/site-packages"))
    subprocess.run([venv / "bin/python", "-m", "compileall", "-f", "-q", str(site / "sglang")], check=True)
    assert len(list((site / "sglang").rglob("*.cpython-310.pyc"))) == len(list((site / "sglang").rglob("*.py")))


def test_a_derived_tag_refuses_a_wheel_with_other_compiled_modules(tmp_path, scratch_root):
    """0.5.23's cp311 wheel has Rust modules sglang imports: no cp310 can be made from it."""
    from wafer_sglang.errors import WaferError
    from wafer_sglang.wheels.wheel import build

    pins = scratch_root / "patches" / "bases.toml"
    pins.write_text(
        pins.read_text() + '\n[upstream."0.5.23".derived.cp310]\nfrom = "cp311"\ndrop = []\nreason = "test"\n'
    )
    with pytest.raises(WaferError, match=r"cannot build cp310 from the cp311 wheel: .*_multimodal\.cpython-311"):
        build(scratch_root, "0.5.23", "cp310", tmp_path)
    assert not list(tmp_path.glob("*.whl"))


def test_guard_change_is_in_the_installed_0514_file(installed):
    for py in [py for base, py in REPRODUCED if base == "0.5.14"]:
        venv = installed["0.5.14", py]
        site = next(venv.glob("lib/python*/site-packages"))
        assert (
            "#ifndef USE_ROCM\n#include <cuda_runtime.h>\n#else\n#include <hip/hip_runtime.h>"
            in (site / GUARD_FILE).read_text()
        )
        info = in_venv(venv, venv / "bin/wafer-sglang", "info")
        assert "0001-rocm-guard-cuda-runtime-include-in-fused-metadata-copy.patch" in info
        assert "[Backport [https://github.com/sgl-project/sglang/pull/29373]]" in info


def test_source_date_epoch_sets_entry_times(capsys, tmp_path, monkeypatch):
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1767225600")  # 2026-01-01
    rc, stdout, _ = run_cli(capsys, "build", "--base", "0.5.14", "--python", "3.11", "-o", str(tmp_path))
    assert rc == 0
    with zipfile.ZipFile(stdout.strip()) as zf:
        assert {i.date_time for i in zf.infolist()} == {(2026, 1, 1, 0, 0, 0)}


def test_build_is_incremental(capsys, tmp_path, monkeypatch):
    """make's second run: the same inputs -> "up to date", the wheel untouched; a changed input
    (here SOURCE_DATE_EPOCH; patches, overlay, tooling and the base record hash the same way) or
    a missing wheel -> built again."""
    argv = ("build", "--base", "0.5.14", "--python", "3.11", "-o", str(tmp_path))
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1767225600")
    rc, first, err = run_cli(capsys, *argv)
    wheel = Path(first.strip())
    built = wheel.stat().st_mtime_ns
    assert rc == 0 and "up to date" not in err
    rc, again, err = run_cli(capsys, *argv)
    assert rc == 0 and again == first and "up to date" in err and wheel.stat().st_mtime_ns == built
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1767312000")
    rc, _, err = run_cli(capsys, *argv)
    assert rc == 0 and "up to date" not in err and wheel.stat().st_mtime_ns != built
    wheel.unlink()
    rc, _, err = run_cli(capsys, *argv)
    assert rc == 0 and "up to date" not in err and wheel.is_file()
    rc, _, err = run_cli(capsys, *argv, "--rebuild")
    assert rc == 0 and "up to date" not in err
