"""The 0.5.23 engine patches, proven on upstream's real code (pristine must fail, patched pass).

0001 models: a DeepSeek-V3-architecture draft with another layer count — its excluded modules
     and its fusion — through the loader's own model build (probe_build.py).
0002 models: the GLM-5 MTP draft's fusion gate on gfx95x, same build path.
0003 defaults: fp8 KV for GLM-5 on gfx95, through the real ServerArgs resolution; the
     post-process registry keeps upstream's passes (probe_server_args_0523.py).
"""

from __future__ import annotations

import functools

import pytest
from support.engine_harness import run_probe, variants

pytestmark = [pytest.mark.network, pytest.mark.slow]
BASE = "0.5.23"
UNQUANT, MXFP4, MXFP4_MOE = "UnquantizedLinearMethod", "QuarkLinearMethod", "QuarkFusedMoEMethod"
UNQUANT_MOE = "UnquantizedFusedMoEMethod"
OTHER_LAYERS = 27  # a DeepSeek-V3-architecture model that is not DeepSeek's 61 layers
SCENARIOS = [
    {"kind": "build", "role": "draft", "arch": "glm", "layers": 78},
    {"kind": "build", "role": "target", "arch": "glm", "layers": 78},
    {
        "kind": "build",
        "role": "draft",
        "arch": "deepseek",
        "layers": OTHER_LAYERS,
        "options": {"exclude_eh_proj": True},
    },
    {
        "kind": "mapper",
        "arch": "deepseek",
        "layers": 61,
        "names": [
            "model.layers.61.eh_proj",
            "model.layers.61.mlp.shared_experts.gate_proj",
            "model.layers.60.self_attn.o_proj",
        ],
    },
    {"kind": "mapper", "arch": "glm", "layers": 78, "names": ["model.layers.78.eh_proj", "model.layers.61.eh_proj"]},
    # GLM-5.2-MXFP4's real layout: the whole MTP MoE (256 routed experts and the shared one) bf16
    {"kind": "build", "role": "draft", "arch": "glm", "layers": 78, "options": {"mtp_experts_excluded": True}},
]


@functools.cache
def probe(variant: str) -> list:
    return run_probe(BASE, variant, "probe_build.py", SCENARIOS)


def assert_unfused_with_bf16_shared_expert(draft: dict) -> None:
    modules = draft["modules"]
    assert draft["num_fused_shared_experts"] == 0, "bf16 shared expert fused into the MXFP4 routed experts"
    assert draft["experts"]["model.decoder.mlp.experts"] == 256
    assert modules["model.decoder.mlp.experts"] == MXFP4_MOE, "routed experts must stay MXFP4"
    assert modules.get("model.decoder.mlp.shared_experts.gate_up_proj") == UNQUANT
    assert modules.get("model.decoder.mlp.shared_experts.down_proj") == UNQUANT


@pytest.mark.parametrize("variant", variants())
def test_glm5_mtp_draft_keeps_its_bf16_shared_expert_unfused(variant):
    """The shared fixture's export: the MTP layer's shared expert is bf16, all else MXFP4."""
    draft = probe(variant)[0]
    assert draft["architecture"] == "GlmMoeDsaForCausalLMNextN"
    assert_unfused_with_bf16_shared_expert(draft)


def test_glm5_mtp_draft_with_a_whole_bf16_moe_keeps_its_fusion():
    """Every expert of the MTP MoE is bf16: the shared expert joins a bf16 fused MoE (one kernel,
    one dtype) instead of running beside it. Upstream fuses here and the patch must not take
    that away (its first version did: a draft-speed cost with nothing to protect)."""
    for variant in ("pristine", "patched"):
        draft = probe(variant)[5]
        assert draft["architecture"] == "GlmMoeDsaForCausalLMNextN"
        assert draft["modules"]["model.decoder.mlp.experts"] == UNQUANT_MOE, "bf16 routed experts built as MXFP4"
        assert draft["num_fused_shared_experts"] == 1, variant
        assert draft["experts"]["model.decoder.mlp.experts"] == 257
        assert "model.decoder.mlp.shared_experts.gate_up_proj" not in draft["modules"]


def test_glm5_target_keeps_its_fusion():
    """The MTP layer's excludes must not veto the target's fusion (upstream PR 36124)."""
    for variant in ("pristine", "patched"):
        target = probe(variant)[1]
        assert target["num_fused_shared_experts"] == 1
        assert set(target["experts"].values()) == {257}
    assert probe("patched")[1]["modules"] == probe("pristine")[1]["modules"]


@pytest.mark.parametrize("variant", variants())
def test_other_layer_counts_get_their_excludes_and_stay_unfused(variant):
    draft = probe(variant)[2]
    assert draft["architecture"] == "DeepseekV3ForCausalLMNextN"
    assert draft["modules"]["model.eh_proj"] == UNQUANT, "excluded bf16 eh_proj built quantized"
    assert_unfused_with_bf16_shared_expert(draft)


def test_deepseek_61_and_glm_mappers_are_unchanged():
    pristine, patched = probe("pristine"), probe("patched")
    assert patched[3] == pristine[3]
    assert patched[3]["mapped"][:2] == ["model.decoder.eh_proj", "model.decoder.mlp.shared_experts.gate_proj"]
    assert patched[4] == pristine[4]  # GLM-5's own NextN class keeps upstream's (empty) mapper


# -- 0003: fp8 KV default, through the real ServerArgs resolution -------------------------------

GLM = "GlmMoeDsaForCausalLM"
KV_CASES = [
    # (architecture, hip, gfx95, user's args) -> what the resolved config settles on
    ((GLM, True, True, {}), "fp8_e4m3"),
    ((GLM, True, True, {"kv_cache_dtype": "bfloat16"}), "bfloat16"),
    ((GLM, True, False, {}), "bfloat16"),  # MI300X (gfx942)
    ((GLM, False, False, {}), "bfloat16"),  # capability 9 on CUDA
    (("DeepseekV32ForCausalLM", True, True, {}), "bfloat16"),
]


@functools.cache
def server_args(variant: str) -> dict:
    cases = [{"arch": a, "hip": h, "gfx95": g, "args": args} for (a, h, g, args), _ in KV_CASES]
    return run_probe(BASE, variant, "probe_server_args_0523.py", {"cases": cases})


@pytest.mark.parametrize("variant", variants())
def test_fp8_kv_default_for_glm5_on_gfx95(variant):
    settled = [case["kv_cache_dtype"] for case in server_args(variant)["cases"]]
    assert settled == [want for _, want in KV_CASES]


def test_post_process_registry_holds_upstreams_passes():
    """Every registered pass is a view -> dict pass; the patches register none and drop none."""
    pristine, patched = server_args("pristine"), server_args("patched")
    assert patched["registry"] == pristine["registry"]
    assert "_dsa_kv_cache_dtype_default" in patched["registry"]
    returned = set(patched["registry_returns"].values())
    assert returned <= {"dict"} | {v for v in returned if v.startswith("raised ")}, patched["registry_returns"]
