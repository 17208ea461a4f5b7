"""checkpoint check/fix on GLM-5-shaped synthetic checkpoints (real safetensors, 78+1 layers)."""

from __future__ import annotations

import json

import pytest
from support import synthetic_checkpoint as sc
from support.common import BASES, run_cli

MTP = 78
SHARED = [f"model.layers.{MTP}.mlp.shared_experts.{p}" for p in ("gate_proj", "up_proj", "down_proj")]


@pytest.fixture(scope="module")
def consistent(tmp_path_factory):
    """A faithful export of the fixture's Quark config: stored exactly as the exclude list says."""
    return sc.glm5(tmp_path_factory.mktemp("ckpt") / "glm5")


def check(capsys, path, *flags):
    rc, out, err = run_cli(capsys, "checkpoint", "check", str(path), "--json", *flags)
    return rc, (json.loads(out) if out.strip() else None), err


@pytest.mark.slow  # a full-size (78 + 1 layer, ~120k tensor) synthetic checkpoint
def test_faithful_export_is_clean_on_the_fork(capsys, consistent):
    for base in BASES:
        rc, report, _ = check(capsys, consistent, "--base", base)
        assert (rc, report["findings"]) == (0, [])
        assert report["modules_checked"] == 79 * 8 + 3 + 78 * (256 * 3 + 3) + 1  # attention, dense MLP, MoE, eh_proj


@pytest.mark.slow  # a full-size (78 + 1 layer, ~120k tensor) synthetic checkpoint
def test_stock_0514_fuses_the_bf16_mtp_shared_expert(capsys, consistent):
    rc, report, _ = check(capsys, consistent, "--base", "0.5.14", "--upstream")
    assert rc == 1 and report["rules"] == "upstream sglang 0.5.14"
    assert sorted(f["module"] for f in report["findings"]) == sorted(SHARED)
    for finding in report["findings"]:
        assert finding["role"] == "draft" and finding["expected"] == "mxfp4"
        assert finding["needs_flag"] == "--disable-shared-experts-fusion"
        assert finding["exclude_entries"] == [finding["module"].replace(f"model.layers.{MTP}.", "model.decoder.")]


@pytest.mark.slow  # a full-size (78 + 1 layer, ~120k tensor) synthetic checkpoint
def test_fix_on_stock_0514_then_the_flag_makes_it_clean(capsys, tmp_path):
    path = sc.glm5(tmp_path / "glm5")
    rc, out, _ = run_cli(capsys, "checkpoint", "fix", str(path), "--base", "0.5.14", "--upstream", "--write")
    assert '+      "model.decoder.mlp.shared_experts.gate_proj"' in out
    assert "also needed on upstream sglang 0.5.14: serve with --disable-shared-experts-fusion" in out
    rc, report, _ = check(capsys, path, "--base", "0.5.14", "--upstream", "--disable-shared-experts-fusion")
    assert (rc, report["findings"]) == (0, [])


@pytest.mark.slow  # a full-size (78 + 1 layer, ~120k tensor) synthetic checkpoint
def test_glm50_with_bf16_target_shared_experts_is_served_with_the_forks_defaults(capsys, tmp_path):
    """Every target shared expert bf16 (GLM-5.0 MXFP4): stock 0.5.14 fuses them into the MXFP4
    routed experts; the fork carries PRs 35200 + 36124 (0.5.14/0006) and runs them unfused."""
    path = sc.glm5(tmp_path / "glm5", target_shared_excluded=True)
    rc, report, _ = check(capsys, path, "--base", "0.5.14", "--upstream")
    assert rc == 1 and {f["role"] for f in report["findings"]} == {"target", "draft"}
    assert all(f["needs_flag"] == "--disable-shared-experts-fusion" for f in report["findings"])
    assert len([f for f in report["findings"] if f["role"] == "target"]) == 77 * 3  # MoE layers 1-77
    for base in BASES:
        rc, report, _ = check(capsys, path, "--base", base)
        assert (rc, report["findings"]) == (0, []), base


@pytest.mark.slow  # a full-size (78 + 1 layer, ~120k tensor) synthetic checkpoint
def test_bf16_eh_proj_missing_from_exclude_is_found_and_fixed_idempotently(capsys, tmp_path):
    """amd GLM-5.2 exports that keep eh_proj bf16 (PR 30379: [6144,6144] uint8 vs [6144,12288] bf16)."""
    path = sc.glm5(tmp_path / "glm5", stored_bf16={f"model.layers.{MTP}.eh_proj"})
    rc, report, _ = check(capsys, path, "--base", "0.5.14")
    assert rc == 1
    [finding] = report["findings"]
    assert finding["engine_module"] == "model.eh_proj" and finding["expected"] == "mxfp4"
    assert finding["stored"] == "unquantized F16 [64x128]"
    before = (path / "config.json").read_text()
    rc, out, _ = run_cli(capsys, "checkpoint", "fix", str(path), "--base", "0.5.14")
    assert rc == 1 and '+      "model.eh_proj"' in out and "dry run" in out
    assert (path / "config.json").read_text() == before  # no --write, nothing written
    rc, out, _ = run_cli(capsys, "checkpoint", "fix", str(path), "--base", "0.5.14", "--write")
    assert rc == 0 and "backup: config.json.bak-" in out
    [backup] = path.glob("config.json.bak-*")
    assert backup.read_text() == before
    assert json.loads((path / "config.json").read_text())["quantization_config"]["exclude"][-1] == "model.eh_proj"
    rc, out, _ = run_cli(capsys, "checkpoint", "fix", str(path), "--base", "0.5.14", "--write")
    assert rc == 0 and "nothing to add" in out and len(list(path.glob("config.json.bak-*"))) == 1
    assert check(capsys, path, "--base", "0.5.14")[0] == 0


@pytest.mark.slow  # a full-size (78 + 1 layer, ~120k tensor) synthetic checkpoint
def test_excluded_but_stored_quantized_is_reported_not_fixed(capsys, tmp_path):
    path = sc.glm5(tmp_path / "glm5", stored_mxfp4={"model.layers.3.self_attn.o_proj"})
    rc, report, _ = check(capsys, path, "--base", "0.5.14")
    [finding] = report["findings"]
    assert rc == 1 and finding["expected"] == "unquantized" and finding["stored"].startswith("mxfp4 U8 [64x32]")
    assert "remove the exclude entry" in finding["fix"] and finding["exclude_entries"] == []
    rc, out, _ = run_cli(capsys, "checkpoint", "fix", str(path), "--base", "0.5.14", "--write")
    assert rc == 1 and "not fixable by exclude entries: model.layers.3.self_attn.o_proj" in out
    assert not list(path.glob("config.json.bak-*"))


@pytest.mark.slow  # a full-size (78 + 1 layer, ~120k tensor) synthetic checkpoint
def test_regex_excludes_and_routed_experts(capsys, tmp_path):
    config = sc.glm5_config(MTP)
    quant = config["quantization_config"]
    quant["exclude"] = [e for e in quant["exclude"] if ".self_attn." not in e] + [
        r"re:model\.layers\.\d+\.self_attn\..*"
    ]
    path = sc.write(
        tmp_path / "glm5",
        config,
        stored_bf16={
            f"model.layers.5.mlp.experts.{e}.{p}" for e in range(256) for p in ("gate_proj", "up_proj", "down_proj")
        },
    )
    rc, report, _ = check(capsys, path, "--base", "0.5.14")
    modules = {f["module"] for f in report["findings"]}
    # attention everywhere is excluded by the regex: no finding; the draft's attention is not
    # (re: entries are not renamed for the draft), and bf16 routed experts need the coarse name.
    assert not any(m.startswith("model.layers.5.self_attn") for m in modules)
    assert {f["exclude_entries"][0] for f in report["findings"] if ".experts." in f["module"]} == {
        "model.layers.5.mlp.experts"
    }
    draft_attention = {f["engine_module"] for f in report["findings"] if f["role"] == "draft"}
    assert "model.decoder.self_attn.o_proj" in draft_attention
    run_cli(capsys, "checkpoint", "fix", str(path), "--base", "0.5.14", "--write")
    # Layer 5's experts are now bf16, but its MXFP4 shared expert is fused into them: the
    # check says so, and that serving unfused resolves it.
    rc, report, _ = check(capsys, path, "--base", "0.5.14")
    assert rc == 1 and {f["module"] for f in report["findings"]} == {
        f"model.layers.5.mlp.shared_experts.{p}" for p in ("gate_proj", "up_proj", "down_proj")
    }
    assert all(
        f["needs_flag"] == "--disable-shared-experts-fusion"
        and "fused into the unquantized routed experts" in f["problem"]
        for f in report["findings"]
    )
    assert check(capsys, path, "--base", "0.5.14", "--disable-shared-experts-fusion")[0] == 0


@pytest.mark.slow  # a full-size (78 + 1 layer, ~120k tensor) synthetic checkpoint
def test_fused_shards_that_disagree(capsys, tmp_path):
    config = sc.glm5_config(MTP)
    config["quantization_config"]["exclude"].remove("model.layers.0.mlp.up_proj")
    path = sc.write(tmp_path / "glm5", config, stored_bf16={"model.layers.0.mlp.up_proj"})
    rc, report, _ = check(capsys, path, "--base", "0.5.14")
    assert rc == 1 and any(
        "shards of fused model.layers.0.mlp.gate_up_proj disagree" in f["problem"] for f in report["findings"]
    )


@pytest.mark.slow  # a full-size (78 + 1 layer, ~120k tensor) synthetic checkpoint
def test_other_layer_counts_single_file_and_extra_mtp_layers(capsys, tmp_path):
    config = sc.glm5_config(47, exclude_eh_proj=True)
    config["num_nextn_predict_layers"] = 2
    path = sc.write(tmp_path / "glm5", config, shards=1, extra_mtp_layers=1)
    (path / "model-00001-of-00001.safetensors").rename(path / "model.safetensors")
    (path / "model.safetensors.index.json").unlink()
    rc, report, _ = check(capsys, path, "--base", "0.5.14")
    assert (rc, report["findings"]) == (0, [])
    assert report["notes"] == ["layers [48] are further MTP layers: sglang loads only model.layers.47"]
    # Stock 0.5.14 maps only layer 61: with 47 layers no draft exclude reaches the draft (with 78,
    # GLM's real layer-61 entries happen to cover the draft's attention).
    rc, report, _ = check(capsys, path, "--base", "0.5.14", "--upstream")
    draft_bf16 = {n for n in sc.linear_shapes(config, 47, True, True, 256) if ".experts." not in n}
    assert rc == 1 and {f["module"] for f in report["findings"]} == draft_bf16


@pytest.mark.parametrize(
    "base, says",
    [
        ("0.5.14", "issue 28685, fixed in 0.5.15 by PR 29275, which this base does not carry"),
        ("0.5.23", "PR 29275 is in since 0.5.15"),
    ],
)
def test_a_block_fp8_glm5_is_told_what_its_base_does_with_aiter(capsys, tmp_path, base, says):
    path = sc.glm5(tmp_path / "glm5", layers=3)
    config = path / "config.json"
    config.write_text(config.read_text().replace('"quant_method": "quark"', '"quant_method": "fp8"'))
    rc, _, err = run_cli(capsys, "checkpoint", "check", str(path), "--base", base)
    assert rc == 2 and "not 'quark'" in err and says in err, err


@pytest.mark.parametrize(
    "breakage, message",
    [
        ("no_config", "config.json is missing"),
        ("bad_json", "is not valid JSON"),
        ("not_quark", "not 'quark'"),
        ("no_index", "has neither model.safetensors.index.json nor model.safetensors"),
        ("truncated", "unreadable safetensors header"),
        ("missing_shard", "which is missing"),
        ("unreadable", "is not a regular file"),
        ("bad_regex", "invalid re: pattern"),
    ],
)
def test_unusable_input_exits_2_and_writes_nothing(capsys, tmp_path, breakage, message):
    path = sc.glm5(tmp_path / "glm5", layers=3)
    config = path / "config.json"
    shard = sorted(path.glob("*.safetensors"))[0]
    if breakage == "no_config":
        config.unlink()
    elif breakage == "bad_json":
        config.write_text(config.read_text()[:-20])
    elif breakage == "not_quark":
        config.write_text(config.read_text().replace('"quant_method": "quark"', '"quant_method": "fp8"'))
    elif breakage == "no_index":
        (path / "model.safetensors.index.json").unlink()
    elif breakage == "truncated":
        shard.write_bytes(shard.read_bytes()[:40])
    elif breakage == "missing_shard":
        shard.unlink()
    elif breakage == "unreadable":
        shard.unlink()
        shard.mkdir()  # not a file: reading it fails even as root
    elif breakage == "bad_regex":
        config.write_text(config.read_text().replace('"lm_head"', '"re:model.layers.(unclosed"'))
    snapshot = {p.name: p.read_bytes() for p in path.iterdir() if p.is_file()}
    for command in ("check", "fix"):
        rc, _, err = run_cli(capsys, "checkpoint", command, str(path), "--write" if command == "fix" else "--json")
        assert rc == 2 and message in err, err
    assert {p.name: p.read_bytes() for p in path.iterdir() if p.is_file()} == snapshot


# -- the rules are the engine's: cross-check with upstream's real model builds --------------------

ENGINE_METHOD = {
    "mxfp4": ("QuarkLinearMethod", "QuarkFusedMoEMethod"),
    "unquantized": ("UnquantizedLinearMethod", "UnquantizedFusedMoEMethod"),
}
# (base, the engine test's probe builds: target, draft, the draft's export options)
ENGINE_BUILDS = [
    ("0.5.14", 0, 1, {"exclude_eh_proj": True}),
    ("0.5.14", 0, 7, {"exclude_eh_proj": True, "mtp_experts_excluded": True}),
    ("0.5.14", 8, 10, {"target_shared_excluded": True}),  # GLM-5.0: every target shared expert bf16
    ("0.5.23", 1, 0, {}),
    ("0.5.23", 1, 5, {"mtp_experts_excluded": True}),  # the whole MTP MoE bf16: the draft fuses
]


@pytest.mark.network
@pytest.mark.slow
@pytest.mark.parametrize("variant", ["patched", "pristine"])
@pytest.mark.parametrize("base, target, draft, options", ENGINE_BUILDS)
def test_decisions_match_the_real_engine(tmp_path, base, target, draft, options, variant):
    import importlib

    from wafer_sglang.checkpoint import plan, store

    built = importlib.import_module(f"test_engine_{base.replace('.', '')}").probe(variant)
    path = sc.glm5(tmp_path / "glm5", **options)
    upstream = variant == "pristine"
    decisions = plan.check(store.load(path), plan.Options(base=base, upstream=upstream)).decisions
    compared = 0
    for role, engine in (("target", built[target]), ("draft", built[draft])):
        for module, method in engine["modules"].items():
            key = f"{role} {module}"
            if key in decisions:
                assert method in ENGINE_METHOD[decisions[key]], (key, decisions[key], method)
                compared += 1
    assert compared > 500
    # a fused shared expert is a slot of the routed experts and takes their quantization
    engine_draft = built[draft]
    shared = "model.decoder.mlp.shared_experts.gate_up_proj"
    fused = engine_draft["num_fused_shared_experts"] > 0
    assert fused == (shared not in engine_draft["modules"])
    effective = engine_draft["modules"]["model.decoder.mlp.experts" if fused else shared]
    assert effective in ENGINE_METHOD[decisions[f"draft {shared}"]], (decisions[f"draft {shared}"], effective)


# -- fix --write is safe: its own backup, verified, minimal diff; nonsense configs are unusable ----


def _needs_fix(tmp_path):
    """A small GLM-5-shaped export that keeps eh_proj bf16 without excluding it: fix adds one entry."""
    return sc.glm5(tmp_path / "glm5", layers=3, shards=1, stored_bf16={"model.layers.3.eh_proj"})


def _edit(path):
    from wafer_sglang.checkpoint import fix, plan, store

    report = plan.check(store.load(path), plan.Options(base="0.5.14"))
    return fix.plan_edit(path, report)


def test_concurrent_fixes_keep_the_original(tmp_path):
    """Backups named by the second once collided: two runs lost the original config."""
    from datetime import datetime, timezone

    from wafer_sglang.checkpoint import fix
    from wafer_sglang.errors import WaferError

    path = _needs_fix(tmp_path)
    original = (path / "config.json").read_text()
    first, second = _edit(path), _edit(path)  # both planned from the original
    now = datetime(2026, 12, 1, tzinfo=timezone.utc)
    backup = fix.write(first, now)
    with pytest.raises(WaferError, match="changed while fix was working"):
        fix.write(second, now)  # same second: a new name, and it sees the file moved under it
    assert backup.read_text() == original and sorted(p.name for p in path.glob("config.json.bak-*")) == [backup.name]
    assert (path / "config.json").read_text() == first.new_text


def test_a_link_planted_at_the_backup_name_is_never_followed(tmp_path):
    from datetime import datetime, timezone

    from wafer_sglang.checkpoint import fix

    path = _needs_fix(tmp_path)
    outside = tmp_path / "outside.txt"
    outside.write_text("not yours")
    now = datetime(2026, 12, 1, tzinfo=timezone.utc)
    (path / f"config.json.bak-{now:%Y%m%dT%H%M%SZ}").symlink_to(outside)
    backup = fix.write(_edit(path), now)
    assert outside.read_text() == "not yours" and backup.name.endswith("Z-1") and not backup.is_symlink()


@pytest.mark.parametrize(
    "fault, message",
    [
        ("enospc", "No space left on device; nothing was changed"),
        ("erofs", "Read-only file system; nothing was changed"),
        ("0444", "is read-only (mode 444)"),
    ],
)
def test_a_failed_backup_changes_nothing(capsys, tmp_path, monkeypatch, fault, message):
    import errno
    import os

    path = _needs_fix(tmp_path)
    before = {p.name: p.read_bytes() for p in path.iterdir()}
    if fault == "0444":
        (path / "config.json").chmod(0o444)
    else:
        code = errno.ENOSPC if fault == "enospc" else errno.EROFS
        target = os.fsync if fault == "enospc" else os.open

        def fail(*args, **kwargs):
            if fault == "erofs" and "bak-" not in str(args[0]):
                return target(*args, **kwargs)
            raise OSError(code, os.strerror(code))

        monkeypatch.setattr(os, "fsync" if fault == "enospc" else "open", fail)
    rc, _, err = run_cli(capsys, "checkpoint", "fix", str(path), "--base", "0.5.14", "--write")
    assert rc == 2 and message in err and "Traceback" not in err
    assert {p.name: p.read_bytes() for p in path.iterdir()} == before


def test_fix_keeps_the_users_formatting(capsys, tmp_path):
    """Tabs and number spellings stay: the diff adds the exclude entry and nothing else."""
    path = _needs_fix(tmp_path)
    config = json.loads((path / "config.json").read_text())
    text = json.dumps(config, indent="\t").replace("{", '{\n\t"rms_norm_eps": 1.0e-5,', 1)
    (path / "config.json").write_text(text)
    rc, out, _ = run_cli(capsys, "checkpoint", "fix", str(path), "--base", "0.5.14", "--write")
    new = (path / "config.json").read_text()
    changed = [line for line in out.splitlines() if line[:1] in "+-" and line[:3] not in ("+++", "---")]
    assert (
        rc == 0 and len(changed) == 3 and changed[-1] == '+\t\t\t"model.eh_proj"'
    )  # last entry gains a comma, one added
    assert '"rms_norm_eps": 1.0e-5' in new and new.replace(',\n\t\t\t"model.eh_proj"', "") == text


@pytest.mark.parametrize(
    "field, value",
    [
        ("num_hidden_layers", -1),
        ("num_hidden_layers", 0),
        ("num_hidden_layers", True),
        ("num_hidden_layers", "78"),
        ("n_routed_experts", 0.5),
        ("num_experts_per_tok", 300),
    ],
)
def test_nonsense_configs_are_unusable_not_clean(capsys, tmp_path, field, value):
    path = _needs_fix(tmp_path)
    config = json.loads((path / "config.json").read_text())
    config[field] = value
    (path / "config.json").write_text(json.dumps(config))
    rc, _, err = run_cli(capsys, "checkpoint", "check", str(path))
    assert rc == 2 and field in err and "Traceback" not in err
