"""check-kernels on the fork's own engines: sglang's launchers compile the GLM-5 MXFP4 + MTP
path's Triton kernels for gfx950 with the triton release the LTS image ships (PyPI 3.6.0; the image
has 3.6.0+git42270451, a ROCm build of it), without a GPU — and a CUDA-only op on HIP fails it.

The JSON reports land in build/kernels/ (CI keeps them)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from support import engine_env
from support.common import BASES, ROOT

from wafer_sglang.kernels import report, resources

TRITON = "3.6.0"
REPORTS = ROOT / "build" / "kernels"
SITE = ROOT / "test" / "support" / "engine" / "site"  # the import stand-ins sglang needs on CPU


@pytest.fixture(scope="session")
def image_triton():
    """PyPI's triton of the LTS image's release, beside the engine env's own (put first on the path)."""
    target = ROOT / "build" / "cache" / f"triton-{TRITON}"
    if not (target / f"triton-{TRITON}.dist-info").is_dir():
        subprocess.run(
            [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(target), f"triton=={TRITON}"],
            check=True,
        )
    return target


def check_kernels(base, image_triton, tmp_path, *argv, python_code=None):
    """(rc, stdout, stderr, stand-in calls): the command in the base's engine env, or ``python_code``
    that runs it there after changing something."""
    calls = tmp_path / "standin-calls"
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(image_triton), str(ROOT / "build/devpath"), str(SITE)]),
        "WAFER_STANDIN_SGL_KERNEL": "0",
        "WAFER_STANDIN_CALLS": str(calls),
    }
    command = ["-c", python_code, *argv] if python_code else ["-m", "wafer_sglang", "check-kernels", *argv]
    proc = subprocess.run(
        [str(engine_env.ensure(base)), *command], capture_output=True, text=True, env=env, timeout=900
    )
    return proc.returncode, proc.stdout, proc.stderr, calls.read_text().split() if calls.is_file() else []


@pytest.fixture(scope="module")
def reports(image_triton, tmp_path_factory):
    made = {}

    def get(base):
        if base not in made:
            out = REPORTS / f"check-kernels-{base}.json"
            rc, stdout, stderr, calls = check_kernels(
                base,
                image_triton,
                tmp_path_factory.mktemp(base),
                "--base",
                base,
                "--contrast",
                "gfx942",
                "--out",
                str(out),
            )
            assert rc == 0 and calls == [], stderr[-3000:]
            made[base] = (json.loads(out.read_text()), stdout)
        return made[base]

    return get


def kernel(report_, name):
    return next(k for launch in report_["launches"] for k in launch["kernels"] if k["kernel"] == name)


# What a base's launches cannot show here, each said in the report (the rest must compile).
NOT_ON_PATH = {"0.5.23": {"MTP verify: extend cache locations"}}  # 0.5.23's EAGLE verify has no such site
NOT_CHECKED_HERE = {
    "0.5.23": {
        "MLA KV store, bf16 KV cache",  # 0.5.23 picks its platform at run time: here the CPU's torch scatter
        "MTP verify: request-to-token rows (6 draft tokens)",  # its module asks torch.cuda at import
    }
}


@pytest.mark.network
@pytest.mark.slow
@pytest.mark.parametrize("base", BASES)
def test_every_path_kernel_compiles_for_gfx950_with_the_images_triton(reports, base):
    result, stdout = reports(base)
    assert (result["sglang"], result["triton"], result["arch"]) == (base, TRITON, "gfx950")
    assert [(r["name"], r["error"]) for r in result["launches"] if r["error"]] == []
    launches = {r["name"]: r for r in result["launches"]}
    assert {n for n, r in launches.items() if r["not_on_path"]} == NOT_ON_PATH.get(base, set())
    assert {n for n, r in launches.items() if r["not_checked_here"]} == NOT_CHECKED_HERE.get(base, set())
    compiled = [r for r in launches.values() if not r["not_on_path"] and not r["not_checked_here"]]
    assert all(r["kernels"] and r["reached_from"] for r in compiled)
    # the specialisations the serving path uses, as sglang's launchers chose them
    draft = kernel(result, "assign_draft_cache_locs_contiguous")["constexprs"]
    assert (draft["pool_len"], draft["topk"], draft["speculative_num_steps"]) == (8192, 1, 5)
    assert kernel(result, "fill_bonus_tokens")["constexprs"] == {"accept_stride": 6}
    assert kernel(result, "alloc_decode_kernel")["constexprs"]["page_size"] == 64
    assert kernel(result, "set_mla_kv_buffer_fp8_quant_kernel")["constexprs"]["nope_dim"] == 512
    assert report.hot_spills(result) == []  # none today; a spill would be listed with its kernel and config
    assert "| `set_mla_kv_buffer_fp8_quant_kernel` (MLA KV store, fp8 quantised (DSA on HIP)) |" in stdout
    assert "Path kernels not compile-checked" in stdout and result["not_compile_checked"]


@pytest.mark.network
@pytest.mark.slow
@pytest.mark.parametrize("base", BASES)
def test_the_fp8_kv_kernels_cast_in_hardware_on_gfx950_and_emulate_on_gfx942(reports, base):
    """The fp8_e4m3 KV default (0.5.14/0005, 0.5.23/0003) is gated on gfx95: OCP e4m3 has hardware
    conversions there; gfx942's are for its FNUZ format, so the same kernels emulate it."""
    result, stdout = reports(base)
    ours, theirs = result, result["contrast"]
    assert theirs["arch"] == "gfx942" and report.failures(theirs) == []
    for name in ("set_mla_kv_buffer_fp8_quant_kernel", "get_mla_kv_buffer_kernel"):
        on_950, on_942 = kernel(ours, name), kernel(theirs, name)
        assert on_950["fp8_conversions"] and not on_942["fp8_conversions"], name
        assert on_942["instructions"] > on_950["instructions"], name
    assert "none (emulated)" in stdout


@pytest.mark.network
@pytest.mark.slow
def test_a_cuda_only_op_on_hip_fails_the_check(image_triton, tmp_path):
    """The deliberate break: the fp8 KV store launched as on an SM90 GPU (USE_GDC: PDL's
    gdc_launch_dependents, CUDA inline PTX) does not compile for gfx950, and the check says which."""
    from support.common import LTS

    code = (
        "import sys, sglang.srt.mem_cache.triton_ops.mla_buffer as m\n"
        "m.is_arch_support_pdl = lambda: True  # the edit: a launcher that forgets HIP has no PDL\n"
        "from wafer_sglang.cli.main import main\n"
        "sys.exit(main(['check-kernels'] + sys.argv[1:]))\n"
    )
    rc, stdout, stderr, _ = check_kernels(LTS, image_triton, tmp_path, "--base", LTS, python_code=code)
    assert rc == 1, stderr[-2000:]
    assert "check-kernels: does not compile for gfx950: MLA KV store, fp8 quantised (DSA on HIP)" in stderr
    assert "| **no**:" in stdout


@pytest.mark.network
@pytest.mark.slow
def test_doctor_runs_the_same_check_against_the_hosts_triton(image_triton, tmp_path):
    from support.common import LTS

    code = "import sys\nfrom wafer_sglang.cli.main import main\nsys.exit(main(['doctor', '--kernels', '--json']))\n"
    _, stdout, stderr, _ = check_kernels(LTS, image_triton, tmp_path, python_code=code)
    (finding,) = [f for f in json.loads(stdout) if f["check"] == "kernels"]
    assert finding["severity"] == "ok", stderr[-2000:]
    assert finding["summary"].startswith(f"12 path kernels compile (triton {TRITON}, sglang {LTS}, gfx950)")


@pytest.mark.network
@pytest.mark.slow
def test_glm5_shapes_are_transformers_glm5_config(image_triton):
    from wafer_sglang.kernels.path import GLM5

    code = (
        "import json, transformers; c = transformers.GlmMoeDsaConfig()\n"
        f"print(json.dumps({{k: getattr(c, k) for k in {sorted(GLM5)!r}}}))"
    )
    python = engine_env.ensure(BASES[-1])  # its transformers knows GLM-5
    out = subprocess.run([str(python), "-c", code], capture_output=True, text=True, check=True).stdout
    assert json.loads(out) == GLM5


# -- without an engine: the code object metadata and the resource rules --------------------------

AMDGCN = """\
\tv_cvt_scalef32_pk_fp8_bf16 v1, v2, v3
\ts_endpgm
\t.amdhsa_kernel k
amdhsa.kernels:
  - .agpr_count:     {agpr}
    .group_segment_fixed_size: {lds}
    .private_segment_fixed_size: 0
    .sgpr_count:     20
    .sgpr_spill_count: 0
    .vgpr_count:     {vgpr}
    .vgpr_spill_count: {spill}
"""


@pytest.mark.parametrize(
    "vgpr, agpr, lds, warps, arch, waves, limit",
    [
        (6, 0, 0, 4, "gfx950", 8, "max"),
        (71, 0, 0, 4, "gfx950", 7, "vgpr"),  # 512 // 72
        (128, 128, 0, 4, "gfx950", 2, "vgpr"),  # unified file: 256 registers
        (32, 0, 65536, 4, "gfx950", 2, "lds"),  # 2 workgroups of 4 waves over 4 SIMDs
        (32, 0, 65536, 4, "gfx942", 1, "lds"),  # 64 KiB: one workgroup
    ],
)
def test_occupancy_follows_registers_and_lds(vgpr, agpr, lds, warps, arch, waves, limit):
    used = resources.read(AMDGCN.format(vgpr=vgpr, agpr=agpr, lds=lds, spill=0), warps, arch)
    assert (used.waves_per_simd, used.limited_by) == (waves, limit)
    assert used.fp8_conversions == ["v_cvt_scalef32_pk_fp8_bf16"] and used.instructions == 2


def test_more_lds_than_a_cu_has_fails_and_spills_in_the_decode_path_are_listed():
    row = resources.read(AMDGCN.format(vgpr=8, agpr=0, lds=200_000, spill=3), 4, "gfx950").as_dict()
    result = {
        "arch": "gfx950",
        "launches": [
            {"name": "decode step", "hot": True, "error": None, "kernels": [{**row, "kernel": "k", "constexprs": {}}]}
        ],
    }
    assert report.failures(result) == ["k (decode step): LDS 200000 bytes > the CU's 163840"]
    assert report.hot_spills(result) == ["k (decode step): 3 VGPR + 0 SGPR spills, {}"]
