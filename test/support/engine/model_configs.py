"""Tiny GLM-5 (and DeepSeek-V3-architecture) model configs for upstream's real model code.

Each is the shared fixture's real Quark MXFP4 export config (a tiny GLM-MoE-DSA, 2 + 1 MTP
layers) scaled to ``layers`` + 1: fixture layer 0 (dense) stays layer 0, layer 1 (MoE) stands
for every MoE layer 1..layers-1, layer 2 (the MTP layer) becomes ``layers``. 256 routed experts
and one shared expert is the GLM-5 layout that qualifies for shared-expert fusion.
"""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path

FIXTURE = Path(__file__).resolve().parents[2] / "fixtures" / "glm_moe_dsa_tiny_mtp_quark_mxfp4.config.json"
ROUTED_EXPERTS = 256
EXPERT_PROJECTIONS = ("gate_proj", "up_proj", "down_proj")
MLA_PROJECTIONS = ("q_a_proj", "q_b_proj", "kv_a_proj_with_mqa", "kv_b_proj", "o_proj")
_FP8 = {"dtype": "fp8_e4m3", "symmetric": True, "round_method": "half_even", "scale_type": "float"}
BLOCK_FP8 = {"quant_method": "fp8", "fmt": "e4m3", "activation_scheme": "dynamic", "weight_block_size": [128, 128]}
PTPC_FP8 = {  # Quark's FP8 PTPC scheme, as its exports write it
    "weight": {**_FP8, "qscheme": "per_channel", "ch_axis": 0, "is_dynamic": False},
    "input_tensors": {**_FP8, "qscheme": "per_channel", "ch_axis": 1, "is_dynamic": True},
    "output_tensors": None,
    "bias": None,
}


def glm5_config(
    layers: int,
    exclude_eh_proj: bool = False,
    layer_quant: bool = False,
    mtp_experts_excluded: bool = False,
    target_shared_excluded: bool = False,
    attn_fp8_per_channel: bool = False,
    block_fp8: bool = False,
) -> dict:
    """The scaled export. ``mtp_experts_excluded`` adds the per-expert entries of an export
    that keeps the whole MTP MoE in bf16 (model.layers.<N>.mlp.experts.<e>.<proj>);
    ``target_shared_excluded`` keeps every MoE layer's shared expert bf16 (GLM-5.0 MXFP4);
    ``attn_fp8_per_channel`` quantizes the MLA projections of every layer (MTP included) to
    Quark's FP8 PTPC: per-channel static weights, per-token dynamic activations;
    ``block_fp8`` makes it a native block-FP8 checkpoint instead (DeepSeek-V3 / GLM-5 FP8: 128x128
    scales), at a hidden size of 256 so the attention's input has more than one scale block."""
    fixture = json.loads(FIXTURE.read_text())
    config = copy.deepcopy(fixture)
    config.update(
        num_hidden_layers=layers,
        n_routed_experts=ROUTED_EXPERTS,
        num_experts_per_tok=8,
        mlp_layer_types=["dense"] + ["sparse"] * (layers - 1),
        indexer_types=["full"] * layers,
    )
    quant = config["quantization_config"]
    quant["exclude"] = [scaled for name in fixture["quantization_config"]["exclude"] for scaled in _scale(name, layers)]
    mtp = f"model.layers.{layers}"
    if exclude_eh_proj:
        quant["exclude"].append(f"{mtp}.eh_proj")
    if mtp_experts_excluded:
        quant["exclude"] += [f"{mtp}.mlp.experts.{e}.{p}" for e in range(ROUTED_EXPERTS) for p in EXPERT_PROJECTIONS]
    if target_shared_excluded:
        quant["exclude"] += [
            f"model.layers.{k}.mlp.shared_experts.{p}" for k in range(1, layers) for p in EXPERT_PROJECTIONS
        ]
    if attn_fp8_per_channel:
        attention = [f".self_attn.{p}" for p in MLA_PROJECTIONS]
        quant["exclude"] = [name for name in quant["exclude"] if not name.endswith(tuple(attention))]
        quant["layer_quant_config"] = {f"*{name}": PTPC_FP8 for name in attention}
    if block_fp8:
        config.update(hidden_size=256, moe_intermediate_size=128)  # block_n divides the MoE shards
        config["quantization_config"] = BLOCK_FP8
    if layer_quant:
        scheme = copy.deepcopy(quant["global_quant_config"])
        quant["layer_quant_config"] = {f"{mtp}.self_attn.*": scheme, f"{mtp}.eh_proj": scheme, "*.o_proj": scheme}
    return config


def deepseek_v3_config(layers: int, **options) -> dict:
    """The same export as a DeepSeek-V3-architecture model (no DSA indexer) with ``layers``."""
    config = glm5_config(layers, **options)
    config.update(architectures=["DeepseekV3ForCausalLM"], model_type="deepseek_v3")
    for key in [k for k in config if k.startswith("index") or k in ("mlp_layer_types", "indexer_types")]:
        del config[key]
    config["quantization_config"]["exclude"] = [
        name for name in config["quantization_config"]["exclude"] if ".indexer." not in name
    ]
    return config


def _scale(name: str, layers: int) -> list[str]:
    match = re.match(r"model\.layers\.(\d+)\.(.*)", name)
    if not match:
        return [name]
    index, rest = int(match.group(1)), match.group(2)
    if index == 0:
        return [name]
    if index == 1:
        return [f"model.layers.{k}.{rest}" for k in range(1, layers)]
    return [f"model.layers.{layers}.{rest}"]
