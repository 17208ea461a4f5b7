"""Construct upstream sglang 0.5.14's real ServerArgs for a GLM-5 (or another) model with the
platform faked, and report what it settled on, then what its communicator decides per batch
with those settings. Run with PYTHONPATH=<tree>:test/support/engine; prints one PROBE-RESULT line.

argv: a JSON list of cases
  {"platform": "gfx950"|"gfx942"|"cuda", "arch": str, "checkpoint": "mxfp4"|"fp8"|"bf16",
   "args": {...}, "env": {...}}
Each result: the settled kv_cache_dtype, AR fusion flags and SGLANG_USE_AITER, the MI355X log
lines, how often the gfx95 query ran, and, per forward mode, whether the real
apply_aiter_all_reduce_fusion / should_fuse_mlp_allreduce_with_next_layer fuse (aiter enabled,
TP 8, as on the node). A constructor that rejects an argument reports {"error": ...}.
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


def fusion_decisions(args) -> dict:
    """The communicator's per-batch decisions under ``args`` (aiter on, TP 8, no DP attention)."""
    import torch
    from sglang.srt.layers import communicator
    from sglang.srt.model_executor.forward_batch_info import ForwardMode
    from sglang.srt.server_args import set_global_server_args_for_scheduler

    set_global_server_args_for_scheduler(args)
    communicator._use_aiter = True
    communicator.get_parallel = lambda: SimpleNamespace(tp_size=8)
    layer = object.__new__(communicator.LayerCommunicator)
    layer._speculative_algo = None
    layer.is_last_layer = False
    layer._context = SimpleNamespace(tp_size=8)
    layer.layer_scatter_modes = SimpleNamespace(mlp_mode=communicator.ScatterMode.FULL)
    hidden = torch.zeros(16, 6144, dtype=torch.bfloat16)
    decisions = {}
    for name in FUSION_MODES:
        batch = SimpleNamespace(forward_mode=getattr(ForwardMode, name), input_ids=torch.zeros(16))
        try:
            attn = communicator.apply_aiter_all_reduce_fusion(hidden, batch)
        except TypeError:  # before the per-phase switches the function took no batch
            attn = communicator.apply_aiter_all_reduce_fusion(hidden)
        decisions[name] = {"attn": bool(attn), "mlp": bool(layer.should_fuse_mlp_allreduce_with_next_layer(batch))}
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
        "enable_aiter_allreduce_fusion": bool(args.enable_aiter_allreduce_fusion),
        "disable_aiter_allreduce_fusion_in_prefill": getattr(args, "disable_aiter_allreduce_fusion_in_prefill", None),
        "SGLANG_USE_AITER": os.environ.get("SGLANG_USE_AITER"),
        "gfx95_queries": len(queries),
        "logs": [m for m in collect.messages if "gfx950" in m or "MI355X" in m],
        "fusion": fusion_decisions(args),
    }


def main() -> None:
    cpu_sglang.install()
    cases = json.loads(sys.argv[1])
    root = Path(tempfile.mkdtemp(prefix="server-args-probe-"))
    print("PROBE-RESULT " + json.dumps([run_case(case, root) for case in cases]))


if __name__ == "__main__":
    main()
