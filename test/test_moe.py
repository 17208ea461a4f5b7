"""fp4 MoE tuned configs: GLM-5 lookup keys, coverage, additive merge, loud fallback.

Key logic matched against aiter v0.1.18 (d6de77692f62): fused_moe.get_2stage_cfgs and
get_padded_M, jit/core.AITER_CONFIG.get_config_file/update_config_files. The tuned rows used
here are aiter's own (test/fixtures/aiter-v0.1.18, copied as data).
"""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import pytest
from conftest import ROOT, run_cli
from wafer_sglang import moe_configs as mc
from wafer_sglang.errors import WaferError

AITER = ROOT / "test/fixtures/aiter-v0.1.18"
AITER_CONFIGS = AITER / "aiter/configs"
GLM5 = {"architectures": ["GlmMoeDsaForCausalLM"], "hidden_size": 6144, "moe_intermediate_size": 2048,
        "n_routed_experts": 256, "n_shared_experts": 1, "num_experts_per_tok": 8, "num_hidden_layers": 78,
        "quantization_config": {"quant_method": "quark", "exclude": [
            f"model.layers.78.mlp.shared_experts.{p}" for p in ("gate_proj", "up_proj", "down_proj")]}}


@pytest.fixture
def glm5(tmp_path) -> Path:
    (tmp_path / "glm5").mkdir()
    (tmp_path / "glm5/config.json").write_text(json.dumps(GLM5))
    return tmp_path / "glm5"


@pytest.mark.parametrize("m, padded", [(1, 1), (3, 4), (16384, 16384), (16385, 32768), (20000, 32768), (32768, 32768),
                                       (100000, 32768), (131072, 131072), (500000, 131072)])
def test_padded_tokens_follow_get_padded_m(m, padded):
    assert mc.get_padded_m(m) == padded
    assert padded in mc.padded_tokens(m)


@pytest.mark.parametrize("tp", [1, 2, 4, 8])
def test_glm5_keys_at_each_tp(tp):
    fused = mc.model_keys(GLM5, tp, fused_shared=True, max_tokens=16384)
    unfused = mc.model_keys(GLM5, tp, fused_shared=False, max_tokens=16384)
    assert [k.token for k in fused] == [2 ** i for i in range(15)]
    assert {(k.model_dim, k.inter_dim, k.expert, k.topk) for k in fused} == {(6144, 2048 // tp, 257, 9)}
    assert {(k.model_dim, k.inter_dim, k.expert, k.topk) for k in unfused} == {(6144, 2048 // tp, 256, 8)}
    assert {(k.gfx, k.cu_num, k.q_type, k.q_dtype_w) for k in fused} == {("gfx950", 256, "QuantType.per_1x32", "torch.float4_e2m1fn_x2")}


@pytest.mark.parametrize("tp", [4, 8])
def test_fused_keys_are_exactly_the_rows_aiter_ships(tp):
    """Every GLM-5 fused key we compute is a row of aiter's own glm5_fp4_tuned_fmoe.csv."""
    shipped = {row.key for row in mc.read_tuned(AITER_CONFIGS / "model_configs/glm5_fp4_tuned_fmoe.csv")}
    keys = mc.model_keys(GLM5, tp, fused_shared=True, max_tokens=32768)
    assert set(keys) <= shipped
    assert {k for k in shipped if k.inter_dim == 2048 // tp} == set(keys)


def test_ep_and_bad_parallelism():
    keys = mc.model_keys(GLM5, 8, ep=8, fused_shared=False)
    assert {(k.inter_dim, k.expert, k.topk) for k in keys} == {(2048, 32, 8)}
    with pytest.raises(WaferError, match="must divide"):
        mc.model_keys(GLM5, 4, ep=3)
    with pytest.raises(WaferError, match="lacks the MoE fields"):
        mc.model_keys({"hidden_size": 1}, 1)


def test_shapes_writes_aiters_untuned_csv(capsys, glm5, tmp_path):
    out = tmp_path / "untuned.csv"
    rc, _, _ = run_cli(capsys, "moe", "shapes", "--model", str(glm5), "--tp", "8", "--max-tokens", "16384", "-o", str(out))
    rows = list(csv.reader(out.open()))
    assert rc == 0 and rows[0] == (AITER_CONFIGS / "untuned_fmoe.csv").read_text().splitlines()[0].split(",")
    # auto: the fused target and, its MTP shared expert being excluded, the unfused draft
    assert {(r[3], r[4]) for r in rows[1:]} == {("257", "9"), ("256", "8")} and len(rows) == 1 + 2 * 15
    rc, out_text, _ = run_cli(capsys, "moe", "shapes", "--model", str(glm5), "--tp", "8", "--fused-shared-experts", "off")
    assert {line.split(",")[3] for line in out_text.splitlines()[1:]} == {"256"}


def test_coverage_fused_is_covered_unfused_falls_back(capsys, glm5):
    rc, out, _ = run_cli(capsys, "moe", "coverage", "--model", str(glm5), "--tp", "4", "--aiter-root", str(AITER),
                         "--fused-shared-experts", "on", "--json")
    report = json.loads(out)
    assert rc == 0 and all(k["covered_by"].startswith("glm5_fp4_tuned_fmoe.csv:") for k in report["keys"])
    rc, out, _ = run_cli(capsys, "moe", "coverage", "--model", str(glm5), "--tp", "4", "--aiter-root", str(AITER))
    assert rc == 1 and "FALLBACK" in out and f"wafer-sglang moe tune --model {glm5} --tp 4" in out


def test_legacy_rows_without_gfx_are_read_as_aiter_does():
    [row] = [r for r in mc.read_tuned(AITER_CONFIGS / "model_configs/dsv3_fp4_tuned_fmoe.csv") if r.key.token == 1]
    assert (row.key.gfx, row.key.cu_num, row.key.model_dim) == ("gfx950", 256, 7168)


def test_additive_merge_lists_aiters_files_first_then_ours(tmp_path):
    ours = tmp_path / "fmoe"
    ours.mkdir()
    shutil.copyfile(AITER_CONFIGS / "model_configs/glm5_fp4_tuned_fmoe.csv", ours / "glm5_unfused_tuned_fmoe.csv")
    files = mc.merged_files(mc.aiter_configs_dir(AITER), ours)
    assert [f.name for f in files] == ["tuned_fmoe.csv", "dsv3_fp4_tuned_fmoe.csv", "glm5_fp4_tuned_fmoe.csv", "glm5_unfused_tuned_fmoe.csv"]
    assert mc.config_fmoe_value(files).split(":")[0] == str((AITER_CONFIGS / "tuned_fmoe.csv").resolve())
    # ...and a copy of aiter's rows is exactly what aiter's merge rejects: reported first
    clashes = mc.duplicates([row for f in files for row in mc.read_tuned(f)])
    assert len(clashes) == 35 and all({r.file.name for r in g} == {"glm5_fp4_tuned_fmoe.csv", "glm5_unfused_tuned_fmoe.csv"} for g in clashes)


def test_duplicates_stop_coverage_and_config_path(capsys, glm5, tmp_path, monkeypatch):
    ours = tmp_path / "fmoe"
    ours.mkdir()
    shutil.copyfile(AITER_CONFIGS / "model_configs/glm5_fp4_tuned_fmoe.csv", ours / "dup_tuned_fmoe.csv")
    monkeypatch.setattr(mc, "FORK_CONFIGS", ours)
    rc, _, err = run_cli(capsys, "moe", "config-path", "--aiter-root", str(AITER))
    assert rc == 2 and "duplicate tuned keys" in err and "dup_tuned_fmoe.csv" in err


@pytest.mark.parametrize("text, message", [
    ("token,model_dim\n1,2\n", "missing columns"),
    (None, "malformed row"),
])
def test_malformed_csv_is_a_clear_error(tmp_path, text, message):
    path = tmp_path / "bad_tuned_fmoe.csv"
    if text is None:
        lines = (AITER_CONFIGS / "model_configs/glm5_fp4_tuned_fmoe.csv").read_text().splitlines()
        lines[3] = lines[3].replace(",6144,", ",six,", 1)
        text = "\n".join(lines)
    path.write_text(text)
    with pytest.raises(WaferError, match=f"{path.name}.*{message}" if text.startswith("token") else f"{path.name}:4: {message}"):
        mc.read_tuned(path)


def test_tune_refuses_without_mi355x_and_dry_run_shows_the_command(capsys, glm5, tmp_path):
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    rc, out, _ = run_cli(capsys, "moe", "tune", "--model", str(glm5), "--tp", "8", "--aiter-root", str(AITER),
                         "--out-dir", str(out_dir), "--dry-run")
    assert rc == 0 and "gemm_moe_tune.py -i" in out and "glm5_tp8_fp4_tuned_fmoe.csv" in out
    rc, _, err = run_cli(capsys, "moe", "tune", "--model", str(glm5), "--tp", "8", "--aiter-root", str(AITER), "--out-dir", str(out_dir))
    assert rc == 2 and "needs an MI355X (gfx950) host" in err
    assert list(out_dir.iterdir()) == []
