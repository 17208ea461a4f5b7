"""The 0.5.14 engine fixes, proven on upstream's real code (pristine must fail, patched pass).

0002 quark: GLM-5's MTP excludes vs the draft's module names, and the unfused draft — through
     the loader's own model build (probe_build.py).
0006 backport (PRs 35200 + 36124): a target whose shared experts are all bf16 (GLM-5.0 MXFP4)
     runs them unfused, while GLM-5.2's MTP excludes still leave the target fused (same probe).
0007 backport (PR 31105): FP8 PTPC attention loads (the model's post_load_weights) and stays off
     the fused group-quant paths on gfx950; block FP8 keeps them (same probe).
0003 backport: the EAGLE greedy verify broadcast — two real gloo ranks (probe_eagle_0514.py).
0004 + 0005 backports, 0008 defaults: what the real ServerArgs settles on for GLM-5 on gfx950, and what
     the real communicator then fuses per batch (probe_server_args_0514.py).
(0001, the ROCm include guard, is in test_jit_rocm.py.)
"""

from __future__ import annotations

import functools

import pytest
from support.engine_harness import run_probe, variants

pytestmark = [pytest.mark.network, pytest.mark.slow]
BASE = "0.5.14"
UNQUANT, MXFP4, MXFP4_MOE, UNQUANT_MOE = (
    "UnquantizedLinearMethod",
    "QuarkLinearMethod",
    "QuarkFusedMoEMethod",
    "UnquantizedFusedMoEMethod",
)
SCENARIOS = [
    {"kind": "build", "role": "target", "layers": 78},
    {"kind": "build", "role": "draft", "layers": 78, "options": {"exclude_eh_proj": True}},
    {"kind": "build", "role": "draft", "layers": 78, "options": {"exclude_eh_proj": False}},
    {"kind": "build", "role": "draft", "layers": 47, "options": {"exclude_eh_proj": True}},
    {"kind": "build", "role": "target", "layers": 78},  # built after the drafts: fusion must still be on
    {
        "kind": "mapper",
        "layers": 61,
        "names": [
            "model.layers.61.eh_proj",
            "model.layers.61.self_attn.q_a_proj",
            "model.layers.61.mlp.shared_experts.gate_proj",
            "model.layers.60.mlp.shared_experts.gate_proj",
            "model.layers.610.mlp.gate_proj",
            "lm_head",
        ],
    },
    {"kind": "layer_quant", "layers": 78},
    {
        "kind": "build",
        "role": "draft",
        "layers": 78,
        "options": {"exclude_eh_proj": True, "mtp_experts_excluded": True},
    },
    # GLM-5.0 MXFP4: every target shared expert bf16 (0006, PRs 35200 + 36124)
    {"kind": "build", "role": "target", "layers": 78, "options": {"target_shared_excluded": True}},
    {
        "kind": "build",
        "role": "target",
        "layers": 78,
        "options": {"target_shared_excluded": True},
        "enforce_fusion": True,
    },
    {"kind": "build", "role": "draft", "layers": 78, "options": {"target_shared_excluded": True}},
    # FP8 PTPC attention (0007, PR 31105); the export as shipped; native block FP8 (build only)
    {"kind": "load", "role": "target", "layers": 78, "options": {"attn_fp8_per_channel": True}},
    {"kind": "load", "role": "draft", "layers": 78, "options": {"attn_fp8_per_channel": True}},
    {"kind": "load", "role": "target", "layers": 78},
    {"kind": "load", "role": "target", "layers": 3, "options": {"block_fp8": True}, "post_load": False},
]
GLM50_TARGET, GLM50_TARGET_ENFORCED, GLM50_DRAFT = 8, 9, 10
PTPC_TARGET, PTPC_DRAFT, SHIPPED_TARGET, BLOCK_FP8_TARGET = 11, 12, 13, 14
# requantizing per-channel FP8 to one per-tensor scale moves a value by at most half an e4m3
# step of the largest one (2**-4 of it); a scale applied along the wrong axis is off by O(1)
FP8_REQUANT_BOUND = 2**-4


@functools.cache
def probe(variant: str) -> list[dict]:
    return run_probe(BASE, variant, "probe_build.py", SCENARIOS)


def assert_draft_is_servable(draft: dict, eh_proj_excluded: bool) -> None:
    modules = draft["modules"]
    assert draft["architecture"] == "DeepseekV3ForCausalLMNextN"
    assert modules.get("model.decoder.mlp.shared_experts.gate_up_proj") == UNQUANT, (
        "shared expert built as MXFP4 (or fused)"
    )
    assert modules.get("model.decoder.mlp.shared_experts.down_proj") == UNQUANT
    assert draft["num_fused_shared_experts"] == 0, "bf16 shared expert fused into the MXFP4 routed experts"
    assert draft["experts"]["model.decoder.mlp.experts"] == 256
    assert modules["model.decoder.mlp.experts"] == MXFP4_MOE, "routed experts must stay MXFP4"
    assert modules["model.eh_proj"] == (UNQUANT if eh_proj_excluded else MXFP4)
    assert draft["fusion_disabled_after"] is False, "the draft's override leaked into the global flag"


@pytest.mark.parametrize("variant", variants())
def test_glm5_draft_builds_excluded_modules_unquantized_and_unfused(variant):
    assert_draft_is_servable(probe(variant)[1], eh_proj_excluded=True)
    assert_draft_is_servable(probe(variant)[2], eh_proj_excluded=False)


@pytest.mark.parametrize("variant", variants())
def test_any_layer_count(variant):
    assert_draft_is_servable(probe(variant)[3], eh_proj_excluded=True)


@pytest.mark.parametrize("variant", variants())
def test_per_expert_mtp_excludes_build_the_fused_moe_unquantized(variant):
    """An export that keeps the whole MTP MoE bf16 lists its 256 experts one by one."""
    draft = probe(variant)[7]
    assert draft["modules"]["model.decoder.mlp.experts"] == UNQUANT_MOE, "bf16 routed experts built as MXFP4"
    assert draft["modules"]["model.eh_proj"] == UNQUANT
    # bf16 shared expert and bf16 routed experts may share the fused kernel
    assert draft["experts"]["model.decoder.mlp.experts"] == 257


@pytest.mark.parametrize("variant", variants())
def test_layer_quant_config_keys_follow_the_draft_names_without_touching_hf_config(variant):
    result = probe(variant)[6]
    assert result["hf_config_untouched"]
    assert result["keys"] == ["*.o_proj", "model.decoder.self_attn.*", "model.eh_proj"]


def test_target_decisions_are_unchanged_and_keep_fusion():
    pristine, patched = probe("pristine"), probe("patched")
    for index in (0, 4):
        assert patched[index]["num_fused_shared_experts"] == 1
        assert patched[index]["modules"] == pristine[index]["modules"]
        assert set(patched[index]["experts"].values()) == {257}
    modules = patched[0]["modules"]
    assert modules["model.layers.5.mlp.experts"] == MXFP4_MOE
    assert modules["model.layers.77.self_attn.o_proj"] == UNQUANT  # excluded in the export


@pytest.mark.parametrize("variant", variants())
@pytest.mark.parametrize("index", [GLM50_TARGET, GLM50_TARGET_ENFORCED], ids=["default", "enforced"])
def test_a_target_whose_shared_experts_are_all_bf16_runs_them_unfused(variant, index):
    """GLM-5.0 MXFP4 (0006, backport of PRs 35200 + 36124): fused, the bf16 shared expert would
    be built as a slot of the MXFP4 routed experts; --enforce-shared-experts-fusion cannot
    force it (upstream 0.5.18's rule)."""
    target = probe(variant)[index]
    assert target["num_fused_shared_experts"] == 0, "bf16 shared expert fused into the MXFP4 routed experts"
    assert target["modules"]["model.layers.5.mlp.shared_experts.gate_up_proj"] == UNQUANT
    assert target["modules"]["model.layers.5.mlp.experts"] == MXFP4_MOE
    assert target["experts"]["model.layers.5.mlp.experts"] == 256


@pytest.mark.parametrize("variant", variants())
def test_a_glm50_draft_follows_its_target_unfused(variant):
    draft = probe(variant)[GLM50_DRAFT]
    assert draft["num_fused_shared_experts"] == 0
    assert draft["modules"]["model.decoder.mlp.shared_experts.gate_up_proj"] == UNQUANT
    assert draft["modules"]["model.decoder.mlp.experts"] == MXFP4_MOE


@pytest.mark.parametrize("variant", variants())
@pytest.mark.parametrize("index", [PTPC_TARGET, PTPC_DRAFT], ids=["target", "mtp-draft"])
def test_per_channel_fp8_attention_loads_with_its_absorbed_weights(variant, index):
    """Quark's per-channel scale is 1-D at post_load_weights: 0.5.14 multiplies it into kv_b_proj's
    [out, in] weight and fails to broadcast (PR 31105 views it as [out, 1])."""
    result = probe(variant)[index]
    assert "error" not in result, f"load failed: {result.get('error')}"
    assert result["absorbed_error"], "no FP8 kv_b_proj was loaded"
    for attention, error in result["absorbed_error"].items():
        assert error <= FP8_REQUANT_BOUND, f"{attention}: w_kc/w_vc off the checkpoint by {error:.3f}"


@pytest.mark.parametrize("variant", variants())
@pytest.mark.parametrize("index", [PTPC_TARGET, PTPC_DRAFT], ids=["target", "mtp-draft"])
def test_per_channel_fp8_attention_stays_off_the_fused_group_quant_paths(variant, index):
    """On gfx950 the layer hands this format to the fused input RMSNorm: "fp8" means group-128
    scales a per-channel GEMM cannot take."""
    result = probe(variant)[index]
    assert set(result["gfx95_quant_format_at_init"].values()) == {""}
    assert set(result["gfx95_quant_format"].values()) == {""}


def test_the_export_as_shipped_and_block_fp8_load_as_upstream_does():
    """The backport changes nothing for bf16 attention (GLM-5.x MXFP4 as exported) and, unlike
    upstream's one-name detection, keeps native block FP8 (weight_scale_inv) on the fused paths."""
    pristine, patched = probe("pristine"), probe("patched")
    assert patched[SHIPPED_TARGET] == pristine[SHIPPED_TARGET]
    assert set(patched[SHIPPED_TARGET]["absorbed_error"].values()) == {0.0}
    assert patched[BLOCK_FP8_TARGET] == pristine[BLOCK_FP8_TARGET]
    assert set(patched[BLOCK_FP8_TARGET]["gfx95_quant_format_at_init"].values()) == {"fp8"}


def test_deepseek_61_layer_mapping_is_exactly_upstreams():
    pristine, patched = probe("pristine")[5], probe("patched")[5]
    assert patched == pristine
    assert patched["mapped"][:3] == [
        "model.decoder.eh_proj",
        "model.decoder.self_attn.q_a_proj",
        "model.decoder.mlp.shared_experts.gate_proj",
    ]


# -- 0003: EAGLE greedy verify on HIP, two real TP ranks ---------------------------------------


@pytest.mark.parametrize("variant", variants())
def test_eagle_greedy_verify_agrees_across_tp_ranks(variant):
    """Rank 1's logits make it accept a different number of drafts than rank 0."""
    ranks = run_probe(BASE, variant, "probe_eagle_0514.py", {"world_size": 2}, timeout=300)
    local = [r["local_accept"] for r in ranks]
    assert local[0] != local[1], "the test must give the ranks different draft outcomes"
    results = [(r["predict"], r["accept_index"], r["accept_length"]) for r in ranks]
    assert results[0] == results[1], "TP ranks committed different verify results"
    assert results[1] == (ranks[0]["predict"], ranks[0]["accept_index"], ranks[0]["accept_length"])


# -- 0004 + 0005 + 0008: MI355X defaults and what the communicator fuses ------------------------

GLM, DEEPSEEK = "GlmMoeDsaForCausalLM", "DeepseekV3ForCausalLM"
DECODE_SIDE = ["DECODE", "IDLE", "TARGET_VERIFY"]
ALL_MODES = ["DECODE", "EXTEND", "IDLE", "MIXED", "TARGET_VERIFY"]
APPLIED = {
    "kv_cache_dtype": "fp8_e4m3",
    "enable_aiter_allreduce_fusion": True,
    "disable_aiter_allreduce_fusion_in_prefill": True,
    "SGLANG_USE_AITER": "1",
    "fused": DECODE_SIDE,
    "incomplete": [],
}
NO_FUSION = {
    **APPLIED,
    "enable_aiter_allreduce_fusion": False,
    "disable_aiter_allreduce_fusion_in_prefill": False,
    "fused": [],
}
UNTOUCHED = {**NO_FUSION, "kv_cache_dtype": "bfloat16", "SGLANG_USE_AITER": None}
GLM8 = {"platform": "gfx950", "arch": GLM, "args": {"tp_size": 8}}
EXPLICIT = {"tp_size": 8, "enable_aiter_allreduce_fusion": True}
DEFAULT_CASES = [
    # (case, what the server settles on and fuses)
    (GLM8, APPLIED),
    ({**GLM8, "args": {"tp_size": 4}}, APPLIED),
    ({**GLM8, "args": {"tp_size": 8, "kv_cache_dtype": "bfloat16"}}, {**APPLIED, "kv_cache_dtype": "bfloat16"}),
    ({**GLM8, "args": {"tp_size": 8, "enable_aiter_allreduce_fusion": False}}, NO_FUSION),
    # the explicit flag means what upstream's means from 0.5.21 for GLM-5 on HIP: decode only
    ({**GLM8, "args": EXPLICIT}, APPLIED),
    ({**GLM8, "args": {**EXPLICIT, "disable_aiter_allreduce_fusion_in_prefill": True}}, APPLIED),
    ({**GLM8, "env": {"SGLANG_USE_AITER": "0"}}, {**NO_FUSION, "SGLANG_USE_AITER": "0"}),
    ({**GLM8, "args": {"tp_size": 8, "enable_dp_attention": True, "dp_size": 2}}, NO_FUSION),
    ({**GLM8, "args": {"tp_size": 8, "nnodes": 2, "node_rank": 0, "dist_init_addr": "127.0.0.1:5000"}}, NO_FUSION),
    ({**GLM8, "args": {"tp_size": 6}}, NO_FUSION),
    ({**GLM8, "args": {"tp_size": 1}}, NO_FUSION),
    (
        {**GLM8, "args": {"tp_size": 8, "enable_deterministic_inference": True, "attention_backend": "triton"}},
        NO_FUSION,
    ),
    ({**GLM8, "env": {"SGLANG_USE_1STAGE_ALLREDUCE": "1"}}, NO_FUSION),
    ({**GLM8, "env": {"SGLANG_USE_AITER_AR": "0"}}, NO_FUSION),
    ({**GLM8, "args": {"tp_size": 8, "moe_a2a_backend": "deepep"}}, NO_FUSION),
    ({**GLM8, "checkpoint": "fp8"}, {**NO_FUSION, "SGLANG_USE_AITER": None}),  # block FP8: no aiter (issue 28685)
    ({**GLM8, "checkpoint": "bf16"}, {**NO_FUSION, "SGLANG_USE_AITER": None}),
    ({**GLM8, "platform": "gfx942"}, UNTOUCHED),
    ({**GLM8, "platform": "cuda"}, UNTOUCHED),
    ({**GLM8, "arch": DEEPSEEK}, UNTOUCHED),
    # EP: a batch over 64 MiB (6,144 tokens) falls back to the MoE-TP all-reduce, 1 rank at EP = TP
    ({**GLM8, "args": {"tp_size": 8, "ep_size": 8}}, NO_FUSION),
    ({**GLM8, "args": {"tp_size": 8, "ep_size": 2}}, NO_FUSION),
    # PP: a stage's last layer would hand the next stage an unreduced hidden state
    ({**GLM8, "args": {"tp_size": 4, "pp_size": 2}}, NO_FUSION),
]
INERT = {
    12: "SGLANG_USE_1STAGE_ALLREDUCE=1",
    13: "SGLANG_USE_AITER_AR=0",
    14: "--moe-a2a-backend deepep",
    15: "it needs SGLANG_USE_AITER=1",
    7: "DP attention is enabled",
    20: "expert parallelism (EP = 8)",
    21: "expert parallelism (EP = 2)",
    22: "pipeline parallelism (PP = 2)",
}
# asked for explicitly where upstream 0.5.14's own communicator leaves a reduction incomplete:
# honoured (the operator asked) with a warning that says exactly that
EXPLICIT_RISKY = [
    ({**GLM8, "args": {**EXPLICIT, "ep_size": 8}}, {f"{mode}@6144" for mode in DECODE_SIDE}),
    ({**GLM8, "args": {**EXPLICIT, "tp_size": 4, "pp_size": 2}}, {f"{mode}@16/stage-end" for mode in DECODE_SIDE}),
]


@functools.cache
def server_args(variant: str) -> list[dict]:
    """This module's server-args cases in one probe per tree (each probe imports sglang: ~9 s)."""
    cases = [case for case, _ in DEFAULT_CASES] + NOTHING_TO_FUSE + [case for case, _ in EXPLICIT_RISKY]
    return run_probe(BASE, variant, "probe_server_args_0514.py", cases)


def defaults(variant: str) -> list[dict]:
    return server_args(variant)[: len(DEFAULT_CASES)]


def incomplete(result: dict) -> list[str]:
    """Every skipped MLP all-reduce that nothing pays back over the whole TP group."""
    return sorted(
        f"{mode}@{c['tokens']}" + ("/stage-end" if c["stage_end"] else "")
        for mode, crossings in result["fusion"].items()
        for c in crossings
        if c["skipped"] and c["reduced_over"] != result["tp_size"]
    )


def settled(result: dict) -> dict:
    if "error" in result:
        return result
    keys = (
        "kv_cache_dtype",
        "enable_aiter_allreduce_fusion",
        "disable_aiter_allreduce_fusion_in_prefill",
        "SGLANG_USE_AITER",
    )
    fused = sorted(mode for mode, crossings in result["fusion"].items() if crossings[0]["skipped"])
    return {**{k: result[k] for k in keys}, "fused": fused, "incomplete": incomplete(result)}


@pytest.mark.parametrize("variant", variants())
def test_mi355x_defaults_table(variant):
    got = [settled(result) for result in defaults(variant)]
    mismatches = [(case, g, want) for (case, want), g in zip(DEFAULT_CASES, got) if g != want]
    assert mismatches == []


@pytest.mark.parametrize("variant", variants())
def test_each_default_is_logged_once_with_its_reason(variant):
    results = defaults(variant)
    logs = results[0]["logs"]
    # every line about the fusion is collected, upstream's own included: one true line per decision
    assert len(logs) == 3 and len(set(logs)) == 3, logs
    assert all("GLM-5 on gfx950 (MI350X/MI355X)" in m for m in logs)
    assert any("--kv-cache-dtype to fp8_e4m3" in m and "--kv-cache-dtype bfloat16 to keep" in m for m in logs)
    assert any("SGLANG_USE_AITER=1" in m and "fails at load" in m and "page size 64" in m for m in logs)
    assert any("for decode batches" in m and "--no-enable-aiter-allreduce-fusion" in m for m in logs)
    assert not any("kv-cache-dtype" in m for m in results[2]["logs"])  # nothing said about what the user set
    for index, blocker in INERT.items():
        fusion_lines = [m for m in results[index]["logs"] if "AllReduce Fusion" in m]
        assert len(fusion_lines) == 1 and f"not enabling Aiter AllReduce Fusion: {blocker}" in fusion_lines[0], index
    explicit = [m for m in results[4]["logs"] if "AllReduce Fusion" in m]
    assert len(explicit) == 1 and "decode batches only" in explicit[0] and "0.5.21" in explicit[0]


# PR 27835 (0004): with the fusion flag given, the MLP side must not skip its all-reduce under DP
# attention or an all-to-all MoE backend (nothing to fuse there; upstream saw CUDA-graph capture crash)
NOTHING_TO_FUSE = [
    {**GLM8, "args": {**EXPLICIT, "enable_dp_attention": True, "dp_size": 2}},
    {**GLM8, "args": {**EXPLICIT, "moe_a2a_backend": "deepep"}},
]


@pytest.mark.parametrize("variant", variants())
def test_the_mlp_side_never_skips_its_all_reduce_where_there_is_nothing_to_fuse(variant):
    results = server_args(variant)[len(DEFAULT_CASES) : len(DEFAULT_CASES) + len(NOTHING_TO_FUSE)]
    for case, result in zip(NOTHING_TO_FUSE, results):
        assert result["enable_aiter_allreduce_fusion"] is True, case
        skipped = {mode for mode, crossings in result["fusion"].items() if any(c["skipped"] for c in crossings)}
        assert skipped == set(), (case["args"], skipped)


def risky(variant: str) -> list[dict]:
    return server_args(variant)[len(DEFAULT_CASES) + len(NOTHING_TO_FUSE) :]


@pytest.mark.parametrize("variant", variants())
def test_an_explicit_flag_under_ep_or_pp_is_honoured_with_a_warning_that_says_what_breaks(variant):
    """The communicator (upstream's, unchanged) really leaves these reductions incomplete: the
    warning is true, and the fork's defaults never choose this (test_mi355x_defaults_table)."""
    for (case, broken), result in zip(EXPLICIT_RISKY, risky(variant)):
        assert result["enable_aiter_allreduce_fusion"] is True
        assert set(incomplete(result)) == broken, case
        warnings = [m for m in result["logs"] if "AllReduce Fusion" in m and "incomplete" in m]
        assert len(warnings) == 1, result["logs"]
    assert any("64 MiB" in m for m in risky(variant)[0]["logs"])
    assert any("stage" in m for m in risky(variant)[1]["logs"])


def test_only_glm5_on_hip_asks_for_the_gpu():
    queries = [result["gfx95_queries"] for result in defaults("patched")]
    assert queries[19] == 0 and queries[18] == 0  # another model; CUDA
    assert queries[0] == 1 and queries[17] == 1  # GLM-5 on HIP: once
