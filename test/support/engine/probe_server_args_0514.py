"""Construct upstream sglang 0.5.14's real ServerArgs for a GLM-5 (or another) model with the
platform faked, and report what it settled on, then what its communicator decides per batch
with those settings. Run with PYTHONPATH=<tree>:test/support/engine; prints one PROBE-RESULT line.

argv: a JSON list of cases
  {"platform": "gfx950"|"gfx942"|"cuda", "arch": str, "checkpoint": "mxfp4"|"fp8"|"bf16",
   "args": {...}, "env": {...}}
Each result: the settled kv_cache_dtype, AR fusion flags and SGLANG_USE_AITER, the MI355X log
lines (every log line about AllReduce Fusion, upstream's included), how often the gfx95 query ran,
and, per forward mode, what the real communicator does with a layer's MLP all-reduce
(should_fuse_mlp_allreduce_with_next_layer, then the next layer's prepare_attn): skipped or not,
and over how many ranks it is paid back. The collectives themselves cannot run without ranks:
recorders stand in for the MoE-TP all-reduce and the norm's fused all-reduce, and say which
group each reduces over. A constructor that rejects an argument reports {"error": ...}.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import tempfile
from pathlib import Path
from types import SimpleNamespace

import cpu_sglang
from model_configs import glm5_config

BLOCK_FP8 = {"quant_method": "fp8", "fmt": "e4m3", "activation_scheme": "dynamic", "weight_block_size": [128, 128]}
FUSION_MODES = ("EXTEND", "MIXED", "DECODE", "TARGET_VERIFY", "IDLE")
ENV = ("SGLANG_USE_AITER", "SGLANG_USE_1STAGE_ALLREDUCE", "SGLANG_USE_AITER_AR")


class _Collect(logging.Handler):
    def __init__(self):
        super().__init__(logging.INFO)
        self.messages: list[str] = []

    def emit(self, record):
        self.messages.append(record.getMessage())


def write_model(case: dict, root: Path) -> Path:
    config = glm5_config(3)
    config["architectures"] = [case["arch"]]
    checkpoint = case.get("checkpoint", "mxfp4")
    if checkpoint == "fp8":
        config["quantization_config"] = BLOCK_FP8
    elif checkpoint == "bf16":
        del config["quantization_config"]
    model = root / f"{case['arch']}-{checkpoint}"
    model.mkdir(exist_ok=True)
    (model / "config.json").write_text(json.dumps(config))
    return model


def fake_platform(server_args, platform: str) -> list:
    """is_hip / is_gfx95_supported as the server module sees them; counts the gfx95 queries."""
    queries = []
    server_args.is_hip = lambda: platform in ("gfx950", "gfx942")

    def gfx95() -> bool:
        queries.append(1)
        return platform == "gfx950"

    server_args.is_gfx95_supported = gfx95
    return queries


BOUNDARY_TOKENS = (16, 6144)  # 6,144 x 6,144 bf16 = 72 MiB: past the fused kernel's 64 MiB bound


class _Norm:
    """The next layer's input norm; records which reduction reached it."""

    def __init__(self, owed: list):
        self.owed = owed
        self.weight = None

    def forward_with_allreduce_fusion(self, hidden, residual, use_attn_tp_group=True):
        # layernorm.py _forward_with_allreduce_fusion: aiter's fused op or its fallback, both over
        # the whole TP group (get_tp_group / tensor_model_parallel_all_reduce)
        self.owed.append("tp")
        return hidden, residual

    def __call__(self, hidden, residual=None, post_residual_addition=None):
        return hidden, residual


def boundary(args, layer, communicator, mode, tokens: int, crosses_stage: bool) -> dict:
    """One layer's MLP output reaching the next layer's input, through the real communicator:
    did the layer skip its all-reduce, and over how many ranks did anything pay it back?"""
    import torch
    from sglang.srt.model_executor.forward_batch_info import ForwardMode

    batch = SimpleNamespace(forward_mode=getattr(ForwardMode, mode), input_ids=torch.zeros(tokens))
    skipped = bool(layer.should_fuse_mlp_allreduce_with_next_layer(batch))
    if not skipped:
        return {"skipped": False, "reduced_over": None}
    hidden = torch.zeros(tokens, 6144, dtype=torch.bfloat16)
    hidden._sglang_needs_allreduce_fusion = True  # as deepseek_v2.py's decoder layer marks it
    if crosses_stage:  # PPProxyTensors: the next stage receives a new tensor, without the mark
        hidden = hidden.clone()
    owed: list[str] = []
    communicator.moe_tensor_model_parallel_all_reduce = lambda x: owed.append("moe_tp") or x
    layer.input_layernorm = _Norm(owed)
    layer.prepare_attn(hidden, torch.zeros_like(hidden), batch)
    moe_tp = args.tp_size // args.ep_size // args.moe_dp_size  # parallel_state.py: the MoE-TP group
    sizes = {"tp": args.tp_size, "moe_tp": moe_tp}
    return {"skipped": True, "reduced_over": sum(sizes[g] for g in owed) or None}


def fusion_decisions(args) -> dict:
    """The communicator's decisions under ``args`` (aiter on, no DP attention) per forward mode:
    whether a 16-token batch fuses, and what happens to a skipped MLP all-reduce at 16 and 6,144
    tokens, and (PP > 1) at a stage's last layer."""
    from sglang.srt.layers import communicator, dp_attention
    from sglang.srt.layers.moe.utils import initialize_moe_config
    from sglang.srt.server_args import set_global_server_args_for_scheduler

    set_global_server_args_for_scheduler(args)
    # the process state the scheduler sets up from these args (scheduler.py, dp_attention.py)
    initialize_moe_config(args)
    dp_attention._ENABLE_DP_ATTENTION_FLAG = args.enable_dp_attention
    communicator._use_aiter = True
    communicator.get_parallel = lambda: SimpleNamespace(tp_size=args.tp_size)
    layer = object.__new__(communicator.LayerCommunicator)
    layer._speculative_algo = None
    layer.is_last_layer = False  # deepseek_v2.py: only the model's last layer, whatever the stage
    layer._context = SimpleNamespace(tp_size=args.tp_size)
    layer.layer_scatter_modes = SimpleNamespace(mlp_mode=communicator.ScatterMode.FULL)
    # after the norm: attention's input layout (identity without DP attention) and the DSA
    # latent hand-off, neither part of the reduction under test
    layer._communicate_simple_fn = lambda hidden_states, **_: hidden_states
    layer.qkv_latent_func = None
    decisions = {}
    for mode in FUSION_MODES:
        crossings = [(tokens, False) for tokens in BOUNDARY_TOKENS]
        if args.pp_size > 1:
            crossings.append((BOUNDARY_TOKENS[0], True))
        decisions[mode] = [
            {"tokens": tokens, "stage_end": stage_end, **boundary(args, layer, communicator, mode, tokens, stage_end)}
            for tokens, stage_end in crossings
        ]
    return decisions


def run_case(case: dict, root: Path) -> dict:
    from sglang.srt import server_args

    model = write_model(case, root)
    queries = fake_platform(server_args, case["platform"])
    for key in ENV:
        os.environ.pop(key, None)
    os.environ.update(case.get("env", {}))
    collect = _Collect()
    logger = logging.getLogger("sglang.srt.server_args")
    logger.addHandler(collect)
    logger.setLevel(logging.INFO)
    try:
        args = server_args.ServerArgs(
            model_path=str(model), device="cpu", skip_tokenizer_init=True, **case.get("args", {})
        )
    except TypeError as exc:
        return {"error": str(exc)}
    finally:
        logger.removeHandler(collect)
    return {
        "kv_cache_dtype": args.kv_cache_dtype,
        "tp_size": args.tp_size,
        "enable_aiter_allreduce_fusion": bool(args.enable_aiter_allreduce_fusion),
        "disable_aiter_allreduce_fusion_in_prefill": getattr(args, "disable_aiter_allreduce_fusion_in_prefill", None),
        "SGLANG_USE_AITER": os.environ.get("SGLANG_USE_AITER"),
        "gfx95_queries": len(queries),
        "logs": [m for m in collect.messages if "gfx950" in m or "AllReduce Fusion" in m],
        "fusion": fusion_decisions(args),
    }


def main() -> None:
    cpu_sglang.install()
    cases = json.loads(sys.argv[1])
    root = Path(tempfile.mkdtemp(prefix="server-args-probe-"))
    print("PROBE-RESULT " + json.dumps([run_case(case, root) for case in cases]))


if __name__ == "__main__":
    main()
