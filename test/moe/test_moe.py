"""fp4 fused MoE on a given aiter: GLM-5's lookup keys, the per-aiter merge/lookup model, kernel
names from aiter's naming code, the fork's rows and their provenance, coverage, tuning.

CI has no aiter (the fork commits none of its code or data): these run on a stand-in with
aiter's layout and entry points (aiter_standin.py). The same questions against the real aiter,
at the commit the 0.5.14 image ships, are test_moe_aiter.py.
"""

from __future__ import annotations

import csv
import json
import sys
import types
from pathlib import Path

import pytest
from support import aiter_standin as standin
from support.common import run_cli

from wafer_sglang.errors import WaferError
from wafer_sglang.moe import lookup
from wafer_sglang.moe.aiter_tree import AiterTree
from wafer_sglang.moe.fork_rows import MEASURED, ROWS_FILE, TRANSFERRED, Source, build_rows, write_rows
from wafer_sglang.moe.kernel_names import kernel_names
from wafer_sglang.moe.keys import UNTUNED_COLUMNS, get_padded_m, model_keys, padded_tokens
from wafer_sglang.moe.shapes import fused_choices
from wafer_sglang.moe.tune import normalize

GLM5 = {
    "architectures": ["GlmMoeDsaForCausalLM"],
    "hidden_size": 6144,
    "moe_intermediate_size": 2048,
    "n_routed_experts": 256,
    "n_shared_experts": 1,
    "num_experts_per_tok": 8,
    "num_hidden_layers": 78,
    "first_k_dense_replace": 3,
    "quantization_config": {
        "quant_method": "quark",
        "exclude": [f"model.layers.78.mlp.shared_experts.{p}" for p in ("gate_proj", "up_proj", "down_proj")],
    },
}
AT_9127 = "0.1.17.dev110+g9127c94a1"
KEYS_64 = ("--tp", "4", "--tp", "8", "--fused-shared-experts", "both")


@pytest.fixture
def glm5(tmp_path) -> Path:
    (tmp_path / "glm5").mkdir()
    (tmp_path / "glm5/config.json").write_text(json.dumps(GLM5))
    return tmp_path / "glm5"


@pytest.fixture
def aiter(tmp_path, monkeypatch) -> Path:
    """A stand-in installed aiter, with no GLM-5 fp4 rows (like 9127c94a1); AITER_CONFIG_FMOE unset."""
    monkeypatch.delenv("AITER_CONFIG_FMOE", raising=False)
    return standin.write_tree(tmp_path / "aiter-src")


def _rows_dir(tmp_path: Path, rows: list[dict], columns=standin.COLUMNS) -> Path:
    folder = tmp_path / "fork-rows"
    folder.mkdir(exist_ok=True)
    (folder / ROWS_FILE).write_text(standin.tuned_csv(rows, columns))
    return folder


def _coverage(capsys, glm5, aiter, *extra):
    rc, out, err = run_cli(
        capsys,
        "moe",
        "coverage",
        "--model",
        str(glm5),
        *KEYS_64,
        "--aiter-root",
        str(aiter),
        "--aiter-version",
        AT_9127,
        "--json",
        *extra,
    )
    return rc, (json.loads(out) if out else None), err


# -- keys -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "m, padded",
    [
        (1, 1),
        (3, 4),
        (16384, 16384),
        (16385, 32768),
        (20000, 32768),
        (32768, 32768),
        (100000, 32768),
        (131072, 131072),
        (500000, 131072),
    ],
)
def test_padded_tokens_follow_get_padded_m(m, padded):
    assert get_padded_m(m) == padded
    assert padded in padded_tokens(m)


@pytest.mark.parametrize("tp", [1, 2, 4, 8])
def test_glm5_keys_at_each_tp(tp):
    fused = model_keys(GLM5, tp, fused_shared=True, max_tokens=16384)
    unfused = model_keys(GLM5, tp, fused_shared=False, max_tokens=16384)
    assert [k.token for k in fused] == [2**i for i in range(15)]
    assert {(k.model_dim, k.inter_dim, k.expert, k.topk) for k in fused} == {(6144, 2048 // tp, 257, 9)}
    assert {(k.model_dim, k.inter_dim, k.expert, k.topk) for k in unfused} == {(6144, 2048 // tp, 256, 8)}
    assert {(k.gfx, k.cu_num, k.q_type, k.q_dtype_w) for k in fused} == {
        ("gfx950", 256, "QuantType.per_1x32", "torch.float4_e2m1fn_x2")
    }


def test_ep_and_bad_parallelism():
    keys = model_keys(GLM5, 8, ep=8, fused_shared=False)
    assert {(k.inter_dim, k.expert, k.topk) for k in keys} == {(2048, 32, 8)}
    with pytest.raises(WaferError, match="must divide"):
        model_keys(GLM5, 4, ep=3)
    with pytest.raises(WaferError, match="lacks the MoE fields"):
        model_keys({"hidden_size": 1}, 1)


def test_fusion_follows_each_bases_rules_for_the_checkpoints_excludes():
    # MTP shared expert bf16 only: the target fuses, the fork's draft runs it unfused (both bases)
    assert fused_choices(GLM5, "0.5.14") == fused_choices(GLM5, "0.5.23") == {True, False}
    every_shared = {
        **GLM5,
        "quantization_config": {
            "exclude": [
                f"model.layers.{n}.mlp.shared_experts.{p}"
                for n in range(3, 79)
                for p in ("gate_proj", "up_proj", "down_proj")
            ]
        },
    }
    # every target shared expert bf16 (GLM-5.0): both bases' targets respect their excludes
    # (0.5.14 through its backport of PRs 35200 + 36124; checkpoint/rules.py), so nothing fuses
    assert fused_choices(every_shared, "0.5.14") == fused_choices(every_shared, "0.5.23") == {False}
    assert fused_choices({**GLM5, "n_routed_experts": 160}, "0.5.14") == {False}
    assert fused_choices(GLM5, "0.5.14", "both") == {True, False}
    # the whole MTP MoE bf16 (GLM-5.2-MXFP4): one dtype, so the fork's draft fuses too
    projections = ("gate_proj", "up_proj", "down_proj")
    whole_mtp_moe = [f"model.layers.78.mlp.{m}.{p}" for m in ("shared_experts", "experts.0") for p in projections]
    whole = {**GLM5, "quantization_config": {"exclude": whole_mtp_moe}}
    assert fused_choices(whole, "0.5.14") == fused_choices(whole, "0.5.23") == {True}


def test_shapes_writes_aiters_untuned_csv(capsys, glm5, tmp_path):
    out = tmp_path / "untuned.csv"
    rc, _, _ = run_cli(
        capsys, "moe", "shapes", "--model", str(glm5), "--tp", "8", "--max-tokens", "16384", "-o", str(out)
    )
    rows = list(csv.reader(out.open()))
    assert rc == 0 and rows[0] == UNTUNED_COLUMNS
    assert {(r[3], r[4]) for r in rows[1:]} == {("257", "9"), ("256", "8")} and len(rows) == 1 + 2 * 15
    rc, out_text, _ = run_cli(
        capsys, "moe", "shapes", "--model", str(glm5), "--tp", "8", "--tp", "4", "--fused-shared-experts", "off"
    )
    assert {line.split(",")[2] for line in out_text.splitlines()[1:]} == {"256", "512"}


# -- the per-aiter model ----------------------------------------------------------------------

MODEL_9127, MODEL_0118 = lookup.LOOKUPS


def _resolve(model, *files: tuple[str, list[dict], list[str]]):
    merged = lookup.merge([(name, standin.tuned_csv(rows, columns)) for name, rows, columns in files])
    keys = model_keys(GLM5, 4, fused_shared=True, max_tokens=131072)
    return merged, lookup.resolve(keys, merged, model)


def test_a_file_without_tag_is_ignored_at_9127_and_used_at_0118():
    untagged = [c for c in standin.COLUMNS if c != "_tag"]
    files = (
        ("aiter.csv", [standin.row(1, 9999, 8, 2)], standin.COLUMNS),
        ("ours.csv", standin.glm5_rows(257, 9), untagged),
    )
    merged, at_9127 = _resolve(MODEL_9127, *files)
    assert merged.untagged_files == ["ours.csv"] and set(at_9127.values()) == {None}
    _, at_0118 = _resolve(MODEL_0118, *files)
    assert all(row is not None and row.file == "ours.csv" for row in at_0118.values())


def test_act_type_is_exact_at_0118_and_ignored_at_9127():
    gelu = standin.row(1, 512, 257, 9, act_type="ActivationType.Gelu", kernels=("flydsl_moe1_s1", ""))
    silu = standin.row(1, 512, 257, 9, kernels=("flydsl_moe1_s1_fp4", ""))
    files = (("a.csv", [gelu, silu], standin.COLUMNS),)
    key = model_keys(GLM5, 4, fused_shared=True, max_tokens=1)[0]
    assert _resolve(MODEL_9127, *files)[1][key].kernel1 == "flydsl_moe1_s1"  # the act-agnostic lookup: first row
    assert _resolve(MODEL_0118, *files)[1][key].kernel1 == "flydsl_moe1_s1_fp4"  # the exact key: the SiLU row


def test_large_batches_fall_to_the_largest_tier_and_fallback_tags_are_skipped():
    rows = [standin.row(32768, 512, 257, 9), standin.row(16, 512, 257, 9, tag="flydsl_fallback")]
    _, found = _resolve(MODEL_0118, ("a.csv", rows, standin.COLUMNS))
    by_token = {k.token: r for k, r in found.items()}
    assert by_token[131072].key.token == 32768 and by_token[16] is None


def test_duplicates_and_legacy_rows_read_as_aiter_does():
    merged = lookup.merge(
        [
            ("a.csv", standin.tuned_csv([standin.row(1, 512, 257, 9)])),
            ("b.csv", standin.tuned_csv([standin.row(1, 512, 257, 9, gfx="")])),
        ]
    )
    assert [[r.where for r in group] for group in merged.duplicates] == [["a.csv:2", "b.csv:2"]]  # gfx from cu_num 256


@pytest.mark.parametrize(
    "text, message", [("token,model_dim\n1,2\n", "missing columns"), (None, "bad.csv:3: malformed row")]
)
def test_malformed_csv_is_a_clear_error(text, message):
    if text is None:
        text = standin.tuned_csv([standin.row(1, 512, 257, 9), standin.row(2, 512, 257, 9, model_dim="six")])
    with pytest.raises(WaferError, match=message):
        lookup.merge([("bad.csv", text)])


def test_lookup_for_knows_versions_commits_and_nothing_else():
    assert lookup.lookup_for(AT_9127) is MODEL_9127 and lookup.lookup_for("d6de77692f62") is MODEL_0118
    assert lookup.lookup_for("0.1.20") is None


# -- kernel names from aiter's naming code ------------------------------------------------------


def test_kernel_names_come_from_the_trees_own_naming_code(tmp_path, monkeypatch):
    real = types.ModuleType("aiter")  # an imported aiter (another commit) must not answer, nor be lost
    monkeypatch.setitem(sys.modules, "aiter", real)
    for tree in (
        AiterTree.installed(standin.write_tree(tmp_path / "disk")),
        AiterTree.at(tmp_path / "clone", standin.commit_tree(tmp_path / "clone", {}, "stand-in")),
    ):
        names = kernel_names(tree)
        assert names.unresolved(*standin.KNOWN, "") == []
        assert names.unresolved(
            "flydsl_mxmoe_fp4_t32", "flydsl_moe1_s1_kw2_fp4", "moe_ck2stages_gemm1_256x32_gelu_F8", "_ZN5aiter_missingE"
        ) == ["flydsl_mxmoe_fp4_t32", "moe_ck2stages_gemm1_256x32_gelu_F8", "_ZN5aiter_missingE"]
    assert sys.modules["aiter"] is real


def test_kernel_names_need_no_torch_and_call_none_of_it(tmp_path, monkeypatch):
    """aiter's naming module reads torch names at import (9127c94a1: ``(torch.uint8, ...)``); on a
    host without torch (build/venv-dev, the image build) every name resolves and none is called."""
    from wafer_sglang.moe.kernel_names import AbsentTorch

    monkeypatch.setitem(sys.modules, "torch", None)  # `import torch` raises ImportError
    monkeypatch.setattr(AbsentTorch, "CALLS", [])
    names = kernel_names(AiterTree.installed(standin.write_tree(tmp_path / "disk")))
    assert names.unresolved(*standin.KNOWN, "flydsl_moe1_s1_kw2_fp4") == [] and AbsentTorch.CALLS == []
    with pytest.raises(RuntimeError, match="needs torch"):
        AbsentTorch("torch.empty")(0)
    assert AbsentTorch.CALLS == ["torch.empty"]


# -- the fork's rows ----------------------------------------------------------------------------


@pytest.fixture
def sources(tmp_path):
    """A clone with a 'release' (257/9 at inter_dim 512/256) and a 'PR' (256/8 at 512, some buckets,
    one naming a kernel the target lacks); the target is the clone's first commit."""
    clone = tmp_path / "clone"
    target = standin.commit_tree(clone, {}, "target")
    fused = standin.glm5_rows(257, 9, kernels=("flydsl_moe1_s1_fp4", "moe_ck2stages_gemm2_256x32_FP4X2"))
    release = standin.commit_tree(
        clone, {"aiter/configs/model_configs/glm5_fp4_tuned_fmoe.csv": standin.tuned_csv(fused)}, "release"
    )
    pr_rows = fused + standin.glm5_rows(256, 8, inter_dims=(512,), tokens=(1, 2, 4), kernels=(standin.ASM_KERNEL, ""))
    pr_rows.append(standin.row(8, 512, 256, 8, kernels=("_ZN5aiter_flat_fp4_newE", "")))
    pr = standin.commit_tree(
        clone, {"aiter/configs/model_configs/glm5_fp4_tuned_fmoe.csv": standin.tuned_csv(pr_rows)}, "pr"
    )
    return (
        clone,
        AiterTree.at(clone, target),
        (Source("release", release, "url-r", (257, 9)), Source("PR", pr, "url-p", (256, 8))),
    )


def test_rows_take_measured_rows_and_transfer_the_rest(sources, tmp_path):
    clone, target, srcs = sources
    rows = build_rows(clone, kernel_names(target), "target aiter", srcs)
    assert rows.counts() == {MEASURED: 32 + 3, TRANSFERRED: 32 - 3}
    assert [(d["line"], d["token"], d["why"]) for d in rows.dropped] == [
        (37, 8, "target aiter has no kernel _ZN5aiter_flat_fp4_newE")
    ]
    by_shape = {
        (int(r["token"]), int(r["inter_dim"]), int(r["expert"]), int(r["topk"])): (r, p)
        for r, p in zip(rows.rows, rows.provenance)
    }
    measured, transferred = by_shape[(2, 512, 256, 8)], by_shape[(8, 512, 256, 8)]
    assert measured[0]["kernelName1"] == standin.ASM_KERNEL and measured[1]["source"] == "PR"
    assert transferred[0]["kernelName1"] == "flydsl_moe1_s1_fp4" and transferred[1]["transferred_from"] == {
        "expert": 257,
        "topk": 9,
    }
    paths = write_rows(rows, tmp_path / "out", {"commit": target.commit})
    table = list(csv.DictReader(paths[0].open()))
    assert len(table) == 64 and {r["_tag"] for r in table} == {""} and "_tag" in paths[0].read_text().splitlines()[0]
    sidecar = json.loads(paths[1].read_text())
    assert [e["line"] for e in sidecar["rows"]] == list(range(2, 66)) and sidecar["left_out"] == rows.dropped
    assert "Copyright (c) stand-in" in paths[2].read_text() and "url-p" in paths[2].read_text()


def test_coverage_before_and_after_the_fork_rows(capsys, glm5, aiter, sources, tmp_path):
    rc, before, _ = _coverage(capsys, glm5, aiter)
    assert rc == 1 and before["counts"] == {"fallback": 64} and not before["checked_with_aiter_code"]
    clone, target, srcs = sources
    rows = build_rows(clone, kernel_names(target), "target", srcs)
    tp8 = [{**r, "inter_dim": "256"} for r in rows.rows if r["inter_dim"] == "512"]  # stand-in: TP8 = TP4's kernels
    folder = _rows_dir(tmp_path, [r for r in rows.rows if r["inter_dim"] == "512"] + tp8)
    rc, after, _ = _coverage(capsys, glm5, aiter, "--fork-rows", str(folder))
    assert rc == 0 and after["counts"] == {"tuned (aiter)": 64}, after["problems"]  # no sidecar: no provenance
    write_rows(rows, folder, {})
    rc, after, _ = _coverage(capsys, glm5, aiter, "--fork-rows", str(folder))
    assert rc == 0 and after["counts"] == {f"tuned ({MEASURED})": 35, f"tuned ({TRANSFERRED})": 29}
    rc, text, _ = run_cli(
        capsys,
        "moe",
        "coverage",
        "--model",
        str(glm5),
        *KEYS_64,
        "--aiter-root",
        str(aiter),
        "--aiter-version",
        AT_9127,
        "--fork-rows",
        str(folder),
    )
    assert rc == 0 and f"29 tuned ({TRANSFERRED}), 35 tuned ({MEASURED})" in text


def test_an_untagged_file_and_an_unknown_kernel_are_reported_as_unusable(capsys, glm5, aiter, tmp_path):
    untagged = _rows_dir(tmp_path, standin.glm5_rows(257, 9), [c for c in standin.COLUMNS if c != "_tag"])
    rc, report, _ = _coverage(capsys, glm5, aiter, "--fork-rows", str(untagged))
    assert rc == 1 and report["counts"] == {"fallback": 64}
    assert report["problems"] == [
        f"{untagged / ROWS_FILE} has no _tag column: aiter {AT_9127} (this host) fills it with 0 "
        "when merging and then ignores every row of the file (add an empty _tag column)"
    ]
    newer = _rows_dir(tmp_path, standin.glm5_rows(257, 9, kernels=("flydsl_mxmoe_afp4_wfp4_t32", "")))
    rc, report, _ = _coverage(capsys, glm5, aiter, "--fork-rows", str(newer), "--fused-shared-experts", "on")
    assert rc == 1 and report["counts"] == {"unusable": 32}
    [first] = [k for k in report["keys"] if (k["token"], k["inter_dim"]) == (1, 512)]
    assert first["detail"] == (
        f"{newer / ROWS_FILE}:2 names flydsl_mxmoe_afp4_wfp4_t32, unknown to aiter {AT_9127} "
        "(this host): aiter fails at the first MoE forward"
    )


def test_an_aiter_without_a_model_or_its_code_is_unknown(capsys, glm5, aiter):
    rc, _, err = run_cli(
        capsys,
        "moe",
        "coverage",
        "--model",
        str(glm5),
        "--tp",
        "8",
        "--aiter-root",
        str(aiter),
        "--aiter-version",
        "0.1.20",
    )
    assert rc == 2 and "aiter unknown" in err and "Traceback" not in err


def test_the_image_questions_name_what_they_need(capsys, glm5, tmp_path, monkeypatch):
    monkeypatch.setenv("WAFER_SGLANG_BUILD_DIR", str(tmp_path / "build"))
    rc, out, _ = run_cli(capsys, "moe", "config-path", "--image", "0.5.14")
    listed = out.strip().split(":")
    assert rc == 0 and listed[0] == "/sgl-workspace/aiter/aiter/configs/tuned_fmoe.csv" and len(listed) == 21
    assert listed[-1] == f"/opt/wafer/fmoe/{ROWS_FILE}"  # aiter's first, then the fork's (the build demands it)
    rows = tmp_path / "build/fmoe/0.5.14"
    rows.mkdir(parents=True)
    (rows / ROWS_FILE).write_text("x\n")
    (rows / "wafer_tp8_fp4_tuned_fmoe.csv").write_text("x\n")  # `moe tune` output put beside them
    rc, out, _ = run_cli(capsys, "moe", "config-path", "--image", "0.5.14")
    assert out.strip().split(":") == listed + ["/opt/wafer/fmoe/wafer_tp8_fp4_tuned_fmoe.csv"]
    for argv, message in (
        (("config-path", "--image", "0.5.23"), "aiter unknown"),
        (("rows", "--image", "0.5.23", "--aiter-src", str(tmp_path)), "aiter unknown"),
        (("rows", "--image", "0.5.14", "--aiter-src", str(tmp_path)), "not a clone of ROCm/aiter"),
        (("coverage", "--model", str(glm5), "--tp", "8", "--image", "0.5.14"), "needs --aiter-src"),
    ):
        rc, _, err = run_cli(capsys, "moe", *argv)
        assert rc == 2 and message in err, err


def test_config_path_on_a_host_keeps_aiters_files_and_the_users_own(capsys, aiter, tmp_path, monkeypatch):
    mine = tmp_path / "mine_tuned_fmoe.csv"
    monkeypatch.setenv("AITER_CONFIG_FMOE", str(mine))  # replaces aiter's own files: doctor's error
    rc, out, _ = run_cli(capsys, "moe", "config-path", "--aiter-root", str(aiter))
    assert rc == 0 and out.strip().split(":") == [str(aiter / "aiter/configs/tuned_fmoe.csv"), str(mine)]


# -- tune -----------------------------------------------------------------------------------------


def test_tune_refuses_without_mi355x_and_dry_run_shows_the_command(capsys, glm5, aiter, tmp_path):
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    (aiter / "csrc/ck_gemm_moe_2stages_codegen/gemm_moe_tune.py").write_text("")
    base = ("moe", "tune", "--model", str(glm5), "--tp", "8", "--aiter-root", str(aiter), "--out-dir", str(out_dir))
    rc, out, _ = run_cli(capsys, *base, "--dry-run")
    assert rc == 0 and "gemm_moe_tune.py -i" in out and "wafer_tp8_fp4_tuned_fmoe.csv" in out
    rows = _rows_dir(tmp_path, standin.glm5_rows(257, 9)) / ROWS_FILE
    rc, out, _ = run_cli(capsys, *base, "--verify", str(rows), "--dry-run")
    assert rc == 0 and f"--run_config {rows}" in out and "32 rows" in out
    rc, _, err = run_cli(capsys, *base, "--verify", str(tmp_path / "absent.csv"))
    assert rc == 2 and "absent.csv" in err
    rc, _, err = run_cli(capsys, *base)
    assert rc == 2 and "needs an MI355X (gfx950) host" in err
    assert list(out_dir.iterdir()) == []


def test_normalize_gives_a_tuners_output_the_tag_9127_needs(tmp_path):
    tuned = tmp_path / "t.csv"
    tuned.write_text(standin.tuned_csv([standin.row(1, 512, 257, 9)], [c for c in standin.COLUMNS if c != "_tag"]))
    assert not normalize(tuned, MODEL_0118)
    assert normalize(tuned, MODEL_9127) and not normalize(tuned, MODEL_9127)  # idempotent
    merged = lookup.merge([("t.csv", tuned.read_text())])
    assert merged.untagged_files == [] and merged.rows[0].tag == ""
