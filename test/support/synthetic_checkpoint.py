"""GLM-5-shaped synthetic checkpoints: real safetensors files with tiny tensors, but the real
names, dtypes and layouts of a Quark MXFP4 export (bf16 [out, in] for excluded modules, uint8
[out, in/2] + uint8 [out, in/32] scales for quantized ones) and the 78 + 1 layer naming.

The config is the fixture's real Quark export config scaled to the layer count (see
engine/model_configs.py). Also used by benchmark/checkpoint_check.py.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

ENGINE = Path(__file__).resolve().parent / "engine"
sys.path.insert(0, str(ENGINE))
from model_configs import glm5_config  # noqa: E402  (the one scaled-config definition)


def linear_shapes(config: dict, layer: int, moe: bool, mtp: bool, experts: int) -> dict[str, tuple[int, int]]:
    """Checkpoint module name -> logical [out, in] for one decoder layer."""
    h, heads = config["hidden_size"], config["num_attention_heads"]
    qk = config["qk_nope_head_dim"] + config["qk_rope_head_dim"]
    p = f"model.layers.{layer}"
    shapes = {
        f"{p}.self_attn.q_a_proj": (config["q_lora_rank"], h),
        f"{p}.self_attn.q_b_proj": (heads * qk, config["q_lora_rank"]),
        f"{p}.self_attn.kv_a_proj_with_mqa": (config["kv_lora_rank"] + config["qk_rope_head_dim"], h),
        f"{p}.self_attn.kv_b_proj": (
            heads * (config["qk_nope_head_dim"] + config["v_head_dim"]),
            config["kv_lora_rank"],
        ),
        f"{p}.self_attn.o_proj": (h, heads * config["v_head_dim"]),
        f"{p}.self_attn.indexer.wq_b": (config["index_n_heads"] * config["index_head_dim"], config["q_lora_rank"]),
        f"{p}.self_attn.indexer.wk": (config["index_head_dim"], h),
        f"{p}.self_attn.indexer.weights_proj": (config["index_n_heads"], h),
    }
    if moe:
        inter = config["moe_intermediate_size"]
        for e in range(experts):
            shapes |= {
                f"{p}.mlp.experts.{e}.gate_proj": (inter, h),
                f"{p}.mlp.experts.{e}.up_proj": (inter, h),
                f"{p}.mlp.experts.{e}.down_proj": (h, inter),
            }
        shared = inter * config["n_shared_experts"]
        shapes |= {
            f"{p}.mlp.shared_experts.gate_proj": (shared, h),
            f"{p}.mlp.shared_experts.up_proj": (shared, h),
            f"{p}.mlp.shared_experts.down_proj": (h, shared),
        }
    else:
        inter = config["intermediate_size"]
        shapes |= {f"{p}.mlp.gate_proj": (inter, h), f"{p}.mlp.up_proj": (inter, h), f"{p}.mlp.down_proj": (h, inter)}
    if mtp:
        shapes[f"{p}.eh_proj"] = (h, 2 * h)
    return shapes


def tensors(
    config: dict, stored_bf16: set[str] = frozenset(), stored_mxfp4: set[str] = frozenset(), extra_mtp_layers: int = 0
) -> dict[str, np.ndarray]:
    """Every weight of the model + its MTP layer(s), stored as the exclude list says unless
    ``stored_bf16`` / ``stored_mxfp4`` force a module the other way (an inconsistent export)."""
    layers, experts = config["num_hidden_layers"], config["n_routed_experts"]
    from wafer_sglang.checkpoint.rules import Excludes  # sglang's matching; the engine cross-check judges it

    excludes = Excludes(config["quantization_config"]["exclude"])
    h = config["hidden_size"]
    out: dict[str, np.ndarray] = {
        "model.embed_tokens.weight": np.zeros((config["vocab_size"], h), np.float16),
        "model.norm.weight": np.zeros((h,), np.float16),
        "lm_head.weight": np.zeros((config["vocab_size"], h), np.float16),
    }
    for layer in range(layers + 1 + extra_mtp_layers):
        moe = layer >= config["first_k_dense_replace"]
        for name, (rows, cols) in linear_shapes(config, layer, moe, layer >= layers, experts).items():
            bf16 = (name in excludes or name in stored_bf16) and name not in stored_mxfp4
            if bf16:
                out[f"{name}.weight"] = np.zeros((rows, cols), np.float16)  # 2-byte stand-in for BF16
            else:
                out[f"{name}.weight"] = np.zeros((rows, cols // 2), np.uint8)
                out[f"{name}.weight_scale"] = np.zeros((rows, cols // 32), np.uint8)
        p = f"model.layers.{layer}"
        out[f"{p}.input_layernorm.weight"] = np.zeros((h,), np.float16)
        if moe:
            out[f"{p}.mlp.gate.weight"] = np.zeros((experts, h), np.float16)
        if layer >= layers:
            out |= {
                f"{p}.enorm.weight": np.zeros((h,), np.float16),
                f"{p}.hnorm.weight": np.zeros((h,), np.float16),
                f"{p}.shared_head.norm.weight": np.zeros((h,), np.float16),
            }
    return out


def write(path: Path, config: dict, shards: int = 4, **overrides) -> Path:
    """A sharded checkpoint folder: config.json, model.safetensors.index.json, shards."""
    from safetensors.numpy import save_file

    path.mkdir(parents=True, exist_ok=True)
    (path / "config.json").write_text(json.dumps(config, indent=2) + "\n")
    weights = tensors(config, **overrides)
    names = sorted(weights)
    weight_map = {}
    for index in range(shards):
        file = f"model-{index + 1:05d}-of-{shards:05d}.safetensors"
        chunk = names[index::shards]
        save_file({n: weights[n] for n in chunk}, str(path / file))
        weight_map |= {n: file for n in chunk}
    (path / "model.safetensors.index.json").write_text(json.dumps({"metadata": {}, "weight_map": weight_map}))
    return path


def glm5(
    path: Path,
    layers: int = 78,
    exclude_eh_proj: bool = False,
    shards: int = 4,
    mtp_experts_excluded: bool = False,
    target_shared_excluded: bool = False,
    **overrides,
) -> Path:
    config = glm5_config(
        layers,
        exclude_eh_proj=exclude_eh_proj,
        mtp_experts_excluded=mtp_experts_excluded,
        target_shared_excluded=target_shared_excluded,
    )
    return write(path, config, shards=shards, **overrides)
