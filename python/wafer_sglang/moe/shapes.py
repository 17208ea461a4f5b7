"""Which fused-MoE shapes a GLM-5 checkpoint runs on the fork: the target's and the MTP draft's.

On gfx950 sglang fuses the shared expert into the routed experts' MoE (E=257, topk 9) when the
model has 256/384 routed experts and one shared expert — unless the engine respects an exclude
list that leaves the shared expert bf16, which then runs unfused (E=256, topk 8). Which engine
respects which list is ``checkpoint/rules.py``'s (per base, fork vs upstream).
"""

from __future__ import annotations

from typing import Literal

from wafer_sglang.checkpoint import rules
from wafer_sglang.moe.keys import MoeKey, model_keys

Fusion = Literal["auto", "on", "off", "both"]


def fused_choices(config: dict, base: str | None, fusion: Fusion = "auto") -> set[bool]:
    """The shared-expert fusion states the model runs in (target and draft)."""
    if fusion != "auto":
        return {True, False} if fusion == "both" else {fusion == "on"}
    eligible = config.get("n_routed_experts") in (256, 384) and config.get("n_shared_experts") == 1
    if not eligible:
        return {False}
    if base is None:
        from wafer_sglang.bases import default_base

        base = default_base()
    engine = rules.rules_for(base, upstream=False)
    excludes = (config.get("quantization_config") or {}).get("exclude") or []
    target_layer = int(config.get("first_k_dense_replace") or 0)
    target_bf16 = rules.matches(f"model.layers.{target_layer}.mlp.shared_experts.gate_proj", excludes)
    draft = rules.draft_excludes(excludes, rules.nextn_layer(config), engine)
    draft_bf16 = rules.matches("model.decoder.mlp.shared_experts.gate_proj", draft)
    draft_moe_bf16 = rules.matches("model.decoder.mlp.experts", draft)  # one dtype: fused again
    target_fused = not (target_bf16 and engine.fusion_respects_target_excludes)
    draft_fused = not (draft_bf16 and engine.fusion_respects_draft_excludes and not draft_moe_bf16)
    return {target_fused, draft_fused}


def keys_for(config: dict, tps: list[int], ep: int, base: str | None, fusion: Fusion, max_tokens: int) -> list[MoeKey]:
    """Every key the model looks up at each TP, deduplicated, in key order (``base`` decides the
    fusion when ``fusion`` is "auto")."""
    keys: set[MoeKey] = set()
    for tp in tps:
        for fused in fused_choices(config, base, fusion):
            keys |= set(model_keys(config, tp, ep, fused_shared=fused, max_tokens=max_tokens))
    return sorted(keys)


# GLM-5's MoE (hidden 6144, 256 routed experts of 2048, top 8, one shared expert): what the
# image build and doctor check, at the TP sizes it is served with, fused and unfused.
GLM5_MOE = {
    "hidden_size": 6144,
    "moe_intermediate_size": 2048,
    "n_routed_experts": 256,
    "num_experts_per_tok": 8,
    "n_shared_experts": 1,
}
GLM5_SERVED_TP = (4, 8)


def glm5_keys() -> list[MoeKey]:
    return keys_for(GLM5_MOE, list(GLM5_SERVED_TP), 1, None, "both", 32768)
