"""The 0.5.14 engine fixes, proven on upstream's real code (pristine must fail, patched pass).

0002 quark: GLM-5's MTP excludes vs the draft's module names, and the unfused draft.
0003 defaults: MI355X defaults for GLM-5 in the real ServerArgs.
(0001, the ROCm include guard, is in test_jit_rocm.py.)
"""

from __future__ import annotations

import functools

import pytest
from engine_harness import run_probe, variants

pytestmark = [pytest.mark.network, pytest.mark.slow]
BASE = "0.5.14"
UNQUANT, MXFP4, MXFP4_MOE = "UnquantizedLinearMethod", "QuarkLinearMethod", "QuarkFusedMoEMethod"
SCENARIOS = [
    {"kind": "target", "layers": 78},
    {"kind": "draft", "layers": 78, "exclude_eh_proj": True},
    {"kind": "draft", "layers": 78, "exclude_eh_proj": False},
    {"kind": "draft", "layers": 47, "exclude_eh_proj": True},
    {"kind": "target", "layers": 78},  # built after the drafts: fusion must still be on
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
]


@functools.cache
def probe(variant: str) -> list[dict]:
    return run_probe(BASE, variant, "probe_glm_mtp.py", SCENARIOS)


def assert_draft_is_servable(draft: dict, eh_proj_excluded: bool) -> None:
    modules = draft["modules"]
    assert draft["architecture"] == "DeepseekV3ForCausalLMNextN"
    assert modules.get("model.decoder.mlp.shared_experts.gate_up_proj") == UNQUANT, "shared expert built as MXFP4 (or fused)"
    assert modules.get("model.decoder.mlp.shared_experts.down_proj") == UNQUANT
    assert draft["num_fused_shared_experts"] == 0, "bf16 shared expert fused into the MXFP4 routed experts"
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
def test_layer_quant_config_keys_follow_the_draft_names_without_touching_hf_config(variant):
    result = probe(variant)[6]
    assert result["hf_config_untouched"]
    assert result["keys"] == ["*.o_proj", "model.decoder.self_attn.*", "model.eh_proj"]


def test_target_decisions_are_unchanged_and_keep_fusion():
    pristine, patched = probe("pristine"), probe("patched")
    for index in (0, 4):
        assert patched[index]["num_fused_shared_experts"] == 1
        assert patched[index]["modules"] == pristine[index]["modules"]
    modules = patched[0]["modules"]
    assert modules["model.layers.5.mlp.experts"] == MXFP4_MOE
    assert modules["model.layers.77.self_attn.o_proj"] == UNQUANT  # excluded in the export


def test_deepseek_61_layer_mapping_is_exactly_upstreams():
    pristine, patched = probe("pristine")[5], probe("patched")[5]
    assert patched == pristine
    assert patched["mapped"][:3] == [
        "model.decoder.eh_proj",
        "model.decoder.self_attn.q_a_proj",
        "model.decoder.mlp.shared_experts.gate_proj",
    ]


# -- 0003: MI355X defaults ---------------------------------------------------------------------

GLM, DEEPSEEK = "GlmMoeDsaForCausalLM", "DeepseekV3ForCausalLM"
APPLIED = {"kv_cache_dtype": "fp8_e4m3", "enable_aiter_allreduce_fusion": True, "SGLANG_USE_AITER": "1"}
UNTOUCHED = {"kv_cache_dtype": "bfloat16", "enable_aiter_allreduce_fusion": False, "SGLANG_USE_AITER": None}
DEFAULT_CASES = [
    # (case, what the server settles on)
    ({"platform": "gfx950", "arch": GLM, "args": {"tp_size": 8}}, APPLIED),
    ({"platform": "gfx950", "arch": GLM, "args": {"tp_size": 4}}, APPLIED),
    ({"platform": "gfx950", "arch": GLM, "args": {"tp_size": 8, "kv_cache_dtype": "bfloat16"}},
     {**APPLIED, "kv_cache_dtype": "bfloat16"}),
    ({"platform": "gfx950", "arch": GLM, "args": {"tp_size": 8, "enable_aiter_allreduce_fusion": False}},
     {**APPLIED, "enable_aiter_allreduce_fusion": False}),
    ({"platform": "gfx950", "arch": GLM, "args": {"tp_size": 8}, "env": {"SGLANG_USE_AITER": "0"}},
     {**APPLIED, "enable_aiter_allreduce_fusion": False, "SGLANG_USE_AITER": "0"}),
    ({"platform": "gfx950", "arch": GLM, "args": {"tp_size": 8, "enable_dp_attention": True, "dp_size": 2}},
     {**APPLIED, "enable_aiter_allreduce_fusion": False}),
    ({"platform": "gfx950", "arch": GLM, "args": {"tp_size": 8, "nnodes": 2, "node_rank": 0, "dist_init_addr": "127.0.0.1:5000"}},
     {**APPLIED, "enable_aiter_allreduce_fusion": False}),
    ({"platform": "gfx950", "arch": GLM, "args": {"tp_size": 6}}, {**APPLIED, "enable_aiter_allreduce_fusion": False}),
    ({"platform": "gfx950", "arch": GLM, "args": {"tp_size": 1}}, {**APPLIED, "enable_aiter_allreduce_fusion": False}),
    ({"platform": "gfx950", "arch": GLM, "args": {"tp_size": 8, "enable_deterministic_inference": True, "attention_backend": "triton"}},
     {**APPLIED, "enable_aiter_allreduce_fusion": False}),
    ({"platform": "gfx942", "arch": GLM, "args": {"tp_size": 8}}, UNTOUCHED),
    ({"platform": "cuda", "arch": GLM, "args": {"tp_size": 8}}, UNTOUCHED),
    ({"platform": "gfx950", "arch": DEEPSEEK, "args": {"tp_size": 8}}, UNTOUCHED),
]


@functools.cache
def defaults(variant: str) -> list[dict]:
    return run_probe(BASE, variant, "probe_server_args_0514.py", [case for case, _ in DEFAULT_CASES])


@pytest.mark.parametrize("variant", variants())
def test_mi355x_defaults_table(variant):
    settled = [{k: v for k, v in result.items() if k != "logs"} for result in defaults(variant)]
    expected = [outcome for _, outcome in DEFAULT_CASES]
    mismatches = [(case, got, want) for (case, _), got, want in zip(DEFAULT_CASES, settled, expected) if got != want]
    assert mismatches == []


@pytest.mark.parametrize("variant", variants())
def test_each_default_is_logged_once_with_its_reason(variant):
    applied, user_kv = defaults(variant)[0], defaults(variant)[2]
    logs = applied["logs"]
    assert len(logs) == 3 and len(set(logs)) == 3
    assert any("--kv-cache-dtype to fp8_e4m3" in m and "--kv-cache-dtype bfloat16 to keep" in m for m in logs)
    assert any("SGLANG_USE_AITER=1" in m for m in logs)
    assert any("enabling Aiter AllReduce Fusion" in m and "--no-enable-aiter-allreduce-fusion" in m for m in logs)
    assert not any("kv-cache-dtype" in m for m in user_kv["logs"])  # nothing said about what the user set
    assert any("not enabling Aiter AllReduce Fusion: DP attention is enabled" in m for m in defaults(variant)[5]["logs"])
