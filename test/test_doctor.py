"""doctor on staged hosts: a folder with the KFD topology, /dev and /opt/rocm of an MI355X node."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from support import aiter_standin as standin
from support.common import run_cli

from wafer_sglang import doctor
from wafer_sglang.moe.fork_rows import ROWS_FILE
from wafer_sglang.moe.shapes import glm5_keys

MANIFEST = {
    "version": "0.5.14.post1",
    "base": {"version": "0.5.14"},
    "patches": [{}, {}, {}, {}, {}],
    "dropped_requirements": {"sglang-kernel==0.4.4": "built for gfx950", "torch==2.11.0": "ROCm env"},
}
ROCM_STACK = {
    "torch": "2.9.1+rocm7.1.1",
    "amd-aiter": "0.1.17.dev110+g9127c94a1",
    "triton": "3.5.1+rocm7.1.1",
    "sgl-kernel": "0.4.4",
    "wafer-sglang-rocm": "0.5.14.post1",
}


def stage(root: Path, gfx_target: int = 90500, gpus: int = 8) -> Path:
    nodes = root / "sys/class/kfd/kfd/topology/nodes"
    (nodes / "0").mkdir(parents=True, exist_ok=True)
    (nodes / "0/properties").write_text("cpu_cores_count 96\nsimd_count 0\ngfx_target_version 0\n")
    for i in range(1, gpus + 1):
        (nodes / str(i)).mkdir(exist_ok=True)
        (nodes / f"{i}/properties").write_text(f"cpu_cores_count 0\nsimd_count 1024\ngfx_target_version {gfx_target}\n")
    (root / "dev/dri").mkdir(parents=True, exist_ok=True)
    (root / "dev/kfd").write_text("")
    (root / "opt/rocm/.info").mkdir(parents=True, exist_ok=True)
    (root / "opt/rocm/.info/version").write_text("7.1.1-38\n")
    return root


def aiter(tmp_path) -> Path:
    """A stand-in aiter (no GLM-5 fp4 rows, like the 0.5.14 image's) and rows for every GLM-5 key."""
    root = standin.write_tree(tmp_path / "aiter")
    rows = [standin.row(k.token, k.inter_dim, k.expert, k.topk) for k in glm5_keys()]
    (tmp_path / "fmoe").mkdir(exist_ok=True)
    (tmp_path / "fmoe" / ROWS_FILE).write_text(standin.tuned_csv(rows))
    return root


def additive(tmp_path) -> str:
    return f"{tmp_path}/aiter/aiter/configs/tuned_fmoe.csv:{tmp_path}/fmoe/{ROWS_FILE}"


def host(tmp_path, env=None, dists=None, **stage_args) -> doctor.Host:
    root = aiter(tmp_path)
    env = {"SGLANG_USE_AITER": "1", "AITER_CONFIG_FMOE": additive(tmp_path), **(env or {})}
    return doctor.Host(
        root=stage(tmp_path / "host", **stage_args),
        env={k: v for k, v in env.items() if v is not None},
        dists={**ROCM_STACK, **(dists or {})},
        aiter_root=root,
    )


def by_check(findings, check):
    return [f for f in findings if f.check == check]


def test_healthy_mi355x_host_has_no_errors(tmp_path):
    findings = doctor.run(host(tmp_path), MANIFEST)
    assert [f for f in findings if f.severity in ("error", "warning")] == []
    assert by_check(findings, "gpu")[0].summary == "8 GPU(s): gfx950"
    assert "wafer-sglang-rocm 0.5.14.post1: sglang 0.5.14 + 5 patches" in by_check(findings, "fork")[0].summary
    assert by_check(findings, "fmoe")[0].summary == "GLM-5 fp4 MoE keys at TP4/TP8: 64 tuned (aiter)"


def test_tools_other_than_the_engine_requires_are_said(tmp_path):
    """Both wheels go in --no-deps on a ROCm host: nothing else checks the engine's exact pin."""
    from wafer_sglang import __version__

    assert by_check(doctor.run(host(tmp_path), {**MANIFEST, "tooling_version": __version__}), "install") == []
    [finding] = by_check(doctor.run(host(tmp_path), {**MANIFEST, "tooling_version": "0.0.1"}), "install")
    assert finding.severity == "warning" and "requires 0.0.1" in finding.summary
    assert finding.fix == "pip install --no-deps wafer-sglang==0.0.1"


@pytest.mark.parametrize(
    "env, severity, text",
    [
        (
            {"AITER_CONFIG_FMOE": None},
            "warning",
            "64 of 64 GLM-5 fp4 MoE keys at TP4/TP8 are not on a usable tuned row (64 fallback)",
        ),
        ({}, "warning", "aiter unknown"),
    ],
)
def test_fmoe_on_the_fallback_or_on_an_aiter_without_a_model(tmp_path, env, severity, text):
    dists = {} if env else {"amd-aiter": "0.1.20"}
    [finding] = by_check(doctor.run(host(tmp_path, env=env, dists=dists), MANIFEST), "fmoe")
    assert finding.severity == severity and text in finding.summary and "moe coverage" in finding.fix


def test_no_gpu_is_an_error_that_says_why(tmp_path):
    empty = doctor.Host(root=tmp_path, env={}, dists=ROCM_STACK)
    [gpu] = doctor.check_gpus(empty)
    assert gpu.severity == "error" and "no /dev/kfd" in gpu.summary and "--device=/dev/kfd" in gpu.fix


def test_other_gpus_warn(tmp_path):
    [gpu, *_] = doctor.check_gpus(host(tmp_path, gfx_target=90402))
    assert gpu.severity == "warning" and gpu.summary == "8 GPU(s): gfx942"


@pytest.mark.parametrize(
    "dists, check, severity, text",
    [
        ({"sglang": "0.5.14"}, "install", "error", "both sglang 0.5.14 and wafer-sglang-rocm"),
        ({"torch": "2.14.1+cu130"}, "torch", "error", "is a CUDA build"),
        ({"sgl-kernel": "0.4.10"}, "sgl-kernel", "warning", "sglang 0.5.14 pins 0.4.4"),
    ],
)
def test_stack_hazards(tmp_path, dists, check, severity, text):
    [finding] = by_check(doctor.run(host(tmp_path, dists=dists), MANIFEST), check)
    assert finding.severity == severity and text in finding.summary + finding.fix


@pytest.mark.parametrize(
    "env, severity, text",
    [
        ({"HIP_VISIBLE_DEVICES": "0,8"}, "error", "names devices ['8'] but 8 GPU(s)"),
        ({"HIP_VISIBLE_DEVICES": "0,1", "CUDA_VISIBLE_DEVICES": "2,3"}, "warning", "different device selections"),
    ],
)
def test_visible_device_hazards(tmp_path, env, severity, text):
    findings = by_check(doctor.run(host(tmp_path, env=env), MANIFEST), "visible-devices")
    assert [f.severity for f in findings] == [severity] and text in findings[0].summary


def test_aiter_config_fmoe_that_replaces_aiters_files_is_an_error(tmp_path):
    ours = tmp_path / "ours_tuned_fmoe.csv"
    ours.write_text("cu_num,token,model_dim,inter_dim,expert,topk\n")
    [finding] = [
        f for f in doctor.run(host(tmp_path, env={"AITER_CONFIG_FMOE": str(ours)}), MANIFEST) if f.check == "env"
    ]
    assert finding.severity == "error" and "tuned_fmoe.csv" in finding.summary and "moe config-path" in finding.fix
    assert by_check(doctor.run(host(tmp_path), MANIFEST), "env") == []


def test_sglang_use_aiter_unset_warns(tmp_path):
    staged = host(tmp_path)
    staged.env.pop("SGLANG_USE_AITER")
    [finding] = by_check(doctor.run(staged, MANIFEST), "env")
    assert finding.severity == "warning" and finding.fix == "export SGLANG_USE_AITER=1"


def test_cli_json_and_exit_code(capsys, tmp_path):
    rc, out, _ = run_cli(capsys, "doctor", "--json", "--root", str(tmp_path))
    findings = json.loads(out)
    assert rc == 1 and {"check", "severity", "summary", "fix"} <= set(findings[0])
    assert any(f["check"] == "gpu" and f["severity"] == "error" for f in findings)


@pytest.mark.parametrize(
    "value, ok",
    [
        ("GPU-4a1b2c3d4e5f6071", True),
        ("GPU-4A1B2C3D4E5F6071,1", True),
        ("GPU-ffffffffffffffff", False),
        ("GPU-xyz", False),
    ],
)
def test_rocr_visible_devices_takes_the_topologys_uuids(tmp_path, value, ok):
    """ROCm accepts GPU-<uuid>; doctor (and so the image's entrypoint) once refused them."""
    staged = host(tmp_path, env={"ROCR_VISIBLE_DEVICES": value})
    properties = staged.path("/sys/class/kfd/kfd/topology/nodes/1/properties")
    properties.write_text(properties.read_text() + f"unique_id {0x4A1B2C3D4E5F6071}\n")
    findings = by_check(doctor.run(staged, MANIFEST), "visible-devices")
    assert (findings == []) == ok, findings


@pytest.mark.parametrize(
    "listed, problem", [("missing_tuned_fmoe.csv", "does not exist"), ("notes.txt", "is not an aiter tuned fMoE CSV")]
)
def test_listed_fmoe_files_that_aiter_cannot_use_are_errors(tmp_path, listed, problem):
    (tmp_path / "notes.txt").write_text("hello\n")
    staged = host(tmp_path)
    staged.env["AITER_CONFIG_FMOE"] += f":{tmp_path / listed}"
    findings = [f for f in by_check(doctor.run(staged, MANIFEST), "env") if listed in f.summary]
    assert [f.severity for f in findings] == ["error"] and problem in findings[0].summary
