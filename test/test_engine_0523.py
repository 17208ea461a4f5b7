"""The 0.5.23 engine patches, proven on upstream's real code (pristine must fail, patched pass)."""

from __future__ import annotations

import functools

import pytest
from engine_harness import run_probe, variants

pytestmark = [pytest.mark.network, pytest.mark.slow]
BASE = "0.5.23"
UNQUANT, MXFP4 = "UnquantizedLinearMethod", "QuarkLinearMethod"
MTP = 27  # a DeepSeek-V3-architecture model that is not DeepSeek's 61 layers
DEEPSEEK_61_NAMES = ["model.layers.61.eh_proj", "model.layers.61.mlp.shared_experts.gate_proj", "model.layers.60.self_attn.o_proj"]
CASES = [
    {
        "kind": "quant_methods",
        "architecture": "DeepseekV3ForCausalLM",
        "layers": MTP,
        "exclude": [f"model.layers.{MTP}.mlp.shared_experts.{p}" for p in ("gate_proj", "up_proj", "down_proj")]
        + [f"model.layers.{MTP}.eh_proj", "model.layers.5.self_attn.o_proj"],
        "prefixes": [
            "model.decoder.mlp.shared_experts.gate_up_proj",
            "model.decoder.mlp.shared_experts.down_proj",
            "model.eh_proj",
            "model.decoder.self_attn.o_proj",
            "model.layers.5.self_attn.o_proj",
        ],
    },
    {"kind": "mapper", "class": "deepseek", "layers": 61, "names": DEEPSEEK_61_NAMES},
    {"kind": "mapper", "class": "glm", "layers": 78, "names": ["model.layers.78.eh_proj", "model.layers.61.eh_proj"]},
]
KV_CASES = [
    # (architecture, hip, gfx95, user's kv_cache_dtype) -> what the DSA default settles on
    (("GlmMoeDsaForCausalLM", True, True, "auto"), "fp8_e4m3"),
    (("GlmMoeDsaForCausalLM", True, True, "bfloat16"), "bfloat16"),
    (("GlmMoeDsaForCausalLM", True, False, "auto"), "bfloat16"),  # MI300X (gfx942)
    (("GlmMoeDsaForCausalLM", False, False, "auto"), "bfloat16"),  # capability 9 on CUDA
    (("DeepseekV32ForCausalLM", True, True, "auto"), "bfloat16"),
]


@functools.cache
def probe(variant: str) -> list:
    kv = [{"kind": "kv_default", "architecture": a, "hip": h, "gfx95": g, "kv_cache_dtype": k} for (a, h, g, k), _ in KV_CASES]
    return run_probe(BASE, variant, "probe_0523.py", CASES + kv)


@pytest.mark.parametrize("variant", variants())
def test_mtp_excludes_reach_the_draft_for_other_layer_counts(variant):
    methods = probe(variant)[0]
    assert methods == {
        "model.decoder.mlp.shared_experts.gate_up_proj": UNQUANT,
        "model.decoder.mlp.shared_experts.down_proj": UNQUANT,
        "model.eh_proj": UNQUANT,
        "model.decoder.self_attn.o_proj": MXFP4,
        "model.layers.5.self_attn.o_proj": UNQUANT,
    }


def test_deepseek_61_and_glm_mappers_are_unchanged():
    pristine, patched = probe("pristine"), probe("patched")
    assert patched[1] == pristine[1] == {"mapped": ["model.decoder.eh_proj", "model.decoder.mlp.shared_experts.gate_proj", "model.layers.60.self_attn.o_proj"]}
    assert patched[2] == pristine[2]  # GLM-5's own NextN class keeps upstream's mapping


@pytest.mark.parametrize("variant", variants())
def test_fp8_kv_default_for_glm5_on_gfx95(variant):
    settled = [result["kv_cache_dtype"] for result in probe(variant)[len(CASES):]]
    assert settled == [want for _, want in KV_CASES]
