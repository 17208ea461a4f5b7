"""0.5.14 patch 0001 (the USE_ROCM include guard) and the JIT-vs-ROCm check behind it, on both
bases (0.5.23 has the guard upstream and a reviewed ledger for what the analysis cannot prove)."""

from __future__ import annotations

import functools
import json
import shutil
import subprocess
from pathlib import Path

import pytest
from support.common import needs_tool
from support.engine_harness import tree, variants

from wafer_sglang.jit import rocm_check as jit_rocm

pytestmark = [pytest.mark.network, needs_tool("g++")]
GUARDED = "elementwise/fused_metadata_copy.cuh"


def jit(base: str, variant: str) -> Path:
    return jit_rocm.jit_root(tree(base, variant) / "sglang")


@pytest.mark.parametrize("variant", variants())
def test_fused_metadata_copy_includes_no_cuda_header_under_rocm(variant):
    root = jit("0.5.14", variant)
    assert jit_rocm.rocm_includes(root / "csrc" / GUARDED, root / "include") == []


@functools.cache
def check(variant: str, base: str = "0.5.14", ledger: str | None = None) -> tuple[int, dict]:
    import io
    from contextlib import redirect_stdout

    from wafer_sglang.cli.main import main

    out = io.StringIO()
    with redirect_stdout(out):
        rc = main(
            ["check-jit-rocm", "--tree", str(tree(base, variant)), "--json", *(["--ledger", ledger] if ledger else [])]
        )
    return rc, json.loads(out.getvalue())


@pytest.mark.slow
@pytest.mark.parametrize("variant", variants())
def test_no_jit_source_with_cuda_headers_is_reachable_on_rocm(variant):
    rc, report = check(variant)
    assert [u["unit"] for u in report["units"] if u["verdict"] == "reachable"] == []
    assert report["stale_ledger_entries"] == [] and rc == 0


@pytest.mark.slow
def test_0523_is_clean_with_its_reviewed_ledger(tmp_path):
    rc, report = check("patched", "0.5.23")
    assert rc == 0 and report["stale_ledger_entries"] == []
    verdicts = {u["unit"]: u["verdict"] for u in report["units"]}
    assert "reachable" not in verdicts.values()
    assert verdicts["dsa/fused_store_index_cache.cuh"] == "reviewed"  # on the DSA path GLM-5 takes: a gate
    # without the ledger the same tree fails: the review is what makes it pass
    empty = tmp_path / "empty.toml"
    empty.write_text("")
    rc, report = check("patched", "0.5.23", str(empty))
    assert rc == 1 and sum(u["verdict"] == "reachable" for u in report["units"]) == 39


@pytest.mark.slow
def test_the_check_finds_the_dsa_mtp_call_sites_on_pristine():
    _, report = check("pristine")
    unit = next(u for u in report["units"] if u["unit"] == GUARDED)
    assert unit["cuda_headers"] == ["cuda_runtime.h"] and unit["verdict"] == "reachable"
    assert {s["module"] for s in unit["sites"] if not s["gated_by"]} == {"sglang.srt.layers.attention.dsa_backend"}


@pytest.mark.slow
def test_the_check_proves_cuda_only_call_sites_gated():
    _, report = check("patched")
    verdicts = {u["unit"]: u for u in report["units"]}
    concat = verdicts["elementwise/concat_mla.cuh"]
    assert concat["verdict"] == "gated" and all(s["gated_by"] for s in concat["sites"])
    assert verdicts["gemm/nvfp4/nvfp4_quant.cuh"]["verdict"] == "unloaded"  # a header of other units


@pytest.mark.skipif(shutil.which("nvcc") is None, reason="nvcc (CUDA) is not installed")
def test_cuda_side_still_compiles(tmp_path):
    """The guard must not change the CUDA build: the patched unit, preprocessed by nvcc for sm_90,
    is the pristine one token for token, and it instantiates both kernels with nvcc, as sglang's
    load_jit does on an sm_90 GPU (one compile, ~30 s: the other would build the same text)."""
    import tvm_ffi

    source = tmp_path / "unit.cu"
    source.write_text(
        f'#include "{GUARDED}"\n'
        "TVM_FFI_DLL_EXPORT_TYPED_FUNC(copy, (FusedMetadataCopyKernel<0, true, true>::run));\n"
        "TVM_FFI_DLL_EXPORT_TYPED_FUNC(copy_multi, (FusedMetadataCopyMultiKernel<true, true>::run));\n"
    )

    def nvcc(variant: str, *step: str) -> subprocess.CompletedProcess:
        root = jit("0.5.14", variant)
        flags = ["-DSGL_CUDA_ARCH=900", "-arch=sm_90", "-std=c++20", "-O3", "--expt-relaxed-constexpr"]
        include = [root / "include", root / "csrc", Path(tvm_ffi.__file__).parent / "include"]
        argv = ["nvcc", *flags, *(f"-I{d}" for d in include), *step, str(source)]
        proc = subprocess.run(argv, capture_output=True, text=True)
        assert proc.returncode == 0, f"{variant}: {proc.stderr[-3000:]}"
        return proc

    preprocessed = [nvcc(v, "-E", "-Xcompiler", "-P").stdout for v in ("pristine", "patched")]  # -P: no #line paths
    assert preprocessed[0] == preprocessed[1] and "FusedMetadataCopyMultiKernel" in preprocessed[1]
    nvcc("patched", "-c", "-o", str(tmp_path / "unit.o"))
    assert (tmp_path / "unit.o").stat().st_size > 100_000  # both kernels really instantiated


def test_ledger_entries_need_a_reason(tmp_path, capsys):
    ledger = tmp_path / "ledger.toml"
    ledger.write_text('[unit."a.cuh"]\nreachable_on_rocm = "maybe"\n')
    from wafer_sglang.errors import WaferError

    with pytest.raises(WaferError, match='needs reachable_on_rocm = "no" | "feature"'):
        jit_rocm.load_ledger(ledger)
