"""Build upstream sglang's real models on CPU the way its loader does, and report the decisions.

Run as a script with PYTHONPATH=<sglang tree>:test/support/engine (0.5.14 or 0.5.23, pristine or
patched); prints one ``PROBE-RESULT`` JSON line. Each build goes through the loader's own
functions: ``_get_quantization_config`` (the Quark config and the model class's name mapper),
then ``_initialize_model`` (0.5.23: the shared-experts fusion gate
``resolve_shared_experts_config``; 0.5.14: the model's ``determine_num_fused_shared_experts``)
and the model's construction, including the MTP draft's quant-config resolution. HIP is
faked for the fusion decision (capability (9, 5) = MI355X, from cpu_sglang).

argv: a JSON list of scenarios
  build        {"role": "target"|"draft", "arch": "glm"|"deepseek", "layers": N, "options": {...},
                "enforce_fusion": bool}  (--enforce-shared-experts-fusion)
               -> architecture, num_fused_shared_experts, per-module quant method, expert counts
  mapper       {"arch": ..., "layers": N, "names": [...]}  -> the exclude names after the draft's mapper
  layer_quant  {"layers": N}                   -> mapped layer_quant_config keys, and whether the
                                                  hf_config dict was left untouched
  load         {"role": ..., "layers": N, "options": {...}}  -> the build (quantization as the
               checkpoint says), then the loader's
               post-load steps on checkpoint-like FP8 kv_b_proj values (the model's
               post_load_weights, the attention's process_weights_after_loading):
               the error if loading fails; otherwise how far each layer's absorbed w_kc/w_vc
               (times w_scale) is from the dequantized kv_b_proj, and the gfx95 quant format
               each decoder layer hands the fused RMSNorm (gfx95 faked for that decision);
               "post_load": false stops after the build
"""

from __future__ import annotations

import copy
import importlib.metadata
import json
import sys
import tempfile
from pathlib import Path

import cpu_sglang
from model_configs import deepseek_v3_config, glm5_config

CONFIGS = {"glm": glm5_config, "deepseek": deepseek_v3_config}


class Harness:
    """sglang's process-wide state, set up once: server args, gloo, model parallel groups."""

    def __init__(self):
        self.version = importlib.metadata.version("sglang")  # the tree's dist-info
        cpu_sglang.install(sgl_kernel=not self.is_0514)
        from sglang.srt.server_args import ServerArgs

        self.root = Path(tempfile.mkdtemp(prefix="probe-build-"))
        self.server_args = ServerArgs(
            model_path=str(self.write_model("base", glm5_config(3))),
            device="cpu",
            quantization="quark",
            load_format="dummy",
            skip_tokenizer_init=True,
        )
        self.publish()
        from sglang.srt.distributed import parallel_state

        parallel_state.init_distributed_environment(
            world_size=1,
            rank=0,
            local_rank=0,
            backend="gloo",
            distributed_init_method=f"file://{self.root / 'dist'}",
        )
        if self.is_0514:
            parallel_state.initialize_model_parallel(1)
        else:
            parallel_state.initialize_model_parallel()
        self.fake_hip()

    @property
    def is_0514(self) -> bool:
        return self.version.startswith("0.5.14")

    def publish(self) -> None:
        if self.is_0514:
            from sglang.srt.server_args import set_global_server_args_for_scheduler

            set_global_server_args_for_scheduler(self.server_args)
        else:
            from sglang.srt.runtime_context import SpawnRanks, publish

            publish(self.server_args, role="scheduler", ranks=SpawnRanks(world_rank=0))

    def fake_hip(self) -> None:
        """The fusion gates allow HIP >= gfx942; DeepseekV2 then uses its (real) ROCm glue."""
        from sglang.srt.models import deepseek_v2

        deepseek_v2._is_hip = True
        if not self.is_0514:
            from sglang.srt.models.deepseek_common.amd import deepseek_v2_hip_moe

            deepseek_v2._hip_moe = deepseek_v2_hip_moe

    def write_model(self, name: str, config: dict) -> Path:
        path = self.root / name
        path.mkdir(parents=True, exist_ok=True)
        (path / "config.json").write_text(json.dumps(config))
        return path

    def model_config(self, path: Path, draft: bool):
        from sglang.srt.configs.model_config import ModelConfig

        model_config = ModelConfig.from_server_args(self.server_args, model_path=str(path), is_draft_model=draft)
        if self.is_0514:
            from sglang.srt.layers.dp_attention import initialize_dp_attention
            from sglang.srt.layers.moe.utils import initialize_moe_config

            initialize_dp_attention(self.server_args, model_config)
            initialize_moe_config(self.server_args)
        return model_config

    def quant_config(self, model_config):
        from sglang.srt.configs.load_config import LoadConfig
        from sglang.srt.model_loader.loader import _get_quantization_config

        return _get_quantization_config(model_config, LoadConfig(load_format="dummy"))

    def build(self, path: Path, draft: bool, enforce_fusion: bool = False) -> dict:
        model_config, model = self.initialize(path, draft, enforce_fusion)
        modules = {
            name: module for name, module in model.named_modules() if getattr(module, "quant_method", None) is not None
        }
        fused = getattr(model, "shared_experts_config", model).num_fused_shared_experts
        report = {
            "architecture": model_config.hf_config.architectures[0],
            "num_fused_shared_experts": fused,
            "modules": {name: type(module.quant_method).__name__ for name, module in modules.items()},
            "experts": {name: module.num_experts for name, module in modules.items() if hasattr(module, "num_experts")},
        }
        if self.is_0514:
            report["fusion_disabled_after"] = self.server_args.disable_shared_experts_fusion
        return report

    def initialize(self, path: Path, draft: bool, enforce_fusion: bool = False):
        from sglang.srt.configs.load_config import LoadConfig
        from sglang.srt.model_loader.loader import _initialize_model

        if self.is_0514:
            self.server_args.enforce_shared_experts_fusion = enforce_fusion
            self.server_args.disable_shared_experts_fusion = False
        elif enforce_fusion:
            raise SystemExit("enforce_fusion is a 0.5.14 scenario (0.5.2x reads it from the runtime context)")
        model_config = self.model_config(path, draft)
        load_config = LoadConfig(load_format="dummy")
        return model_config, _initialize_model(model_config, load_config, self.quant_config(model_config))

    def load(self, path: Path, draft: bool, post_load: bool = True) -> dict:
        """What DefaultModelLoader does once model.load_weights has read the checkpoint
        (``post_load=False``: the build only, e.g. block FP8, whose CPU kernels need AMX)."""
        from sglang.srt.model_loader.loader import _post_load_weights
        from sglang.srt.models import deepseek_v2

        deepseek_v2._is_gfx95_supported = True  # only _detect_gfx95_quant_format reads it
        try:
            _, model = self.initialize(path, draft)
        finally:
            deepseek_v2._is_gfx95_supported = False
        layers = {name: m for name, m in model.named_modules() if hasattr(m, "_detect_gfx95_quant_format")}
        report = {"gfx95_quant_format_at_init": {name: layer._gfx95_quant_format for name, layer in layers.items()}}
        if not post_load:
            return report
        checkpoint = _read_kv_b_proj(model)
        try:
            _post_load_weights(model)
            for name, module in model.named_modules():
                # the MXFP4 MoE's own step shuffles with aiter (no CPU build): attention only
                if ".self_attn." in name and getattr(module, "quant_method", None) is not None:
                    module.quant_method.process_weights_after_loading(module)
        except Exception as error:  # the pristine tree's failure, reported for the test to show
            return {**report, "error": f"{type(error).__name__}: {error}"}
        modules = dict(model.named_modules())
        return {
            **report,
            "absorbed_error": {name: _absorbed_error(modules[name], weight) for name, weight in checkpoint.items()},
            "gfx95_quant_format": {name: _resolved_quant_format(layer) for name, layer in layers.items()},
        }


def _read_kv_b_proj(model) -> dict:
    """Stands in for model.load_weights on every kv_b_proj: checkpoint-like FP8 values (or bf16
    where the export excludes it) with positive per-channel scales; returns the dequantized
    weights by attention module."""
    import torch

    checkpoint = {}
    for name, module in model.named_modules():
        if name.endswith("self_attn.kv_b_proj"):
            generator = torch.Generator().manual_seed(len(checkpoint))
            module.weight.data.copy_(torch.randn(module.weight.shape, generator=generator).to(module.weight.dtype))
            dequantized = module.weight.data.float()
            if hasattr(module, "weight_scale"):
                module.weight_scale.data.copy_(torch.rand(module.weight_scale.shape, generator=generator) + 0.5)
                dequantized = dequantized * module.weight_scale.data.reshape(-1, 1)
            checkpoint[name.removesuffix(".kv_b_proj")] = dequantized
    return checkpoint


def _absorbed_error(attn, dequantized) -> float:
    """Largest error of w_kc/w_vc (bmm operands, times the per-tensor w_scale) against the
    checkpoint's dequantized kv_b_proj, relative to its largest value."""
    import torch

    w_kc = attn.w_kc.float()  # [heads, qk_nope, kv_lora]
    w_vc = attn.w_vc.transpose(1, 2).float()  # stored [heads, kv_lora, v]
    absorbed = torch.cat([w_kc, w_vc], dim=1).flatten(0, 1)
    if attn.w_scale is not None:  # a tensor for FP8, the float 1.0 otherwise
        absorbed = absorbed * torch.as_tensor(attn.w_scale, dtype=torch.float32)
    return float((absorbed - dequantized).abs().max() / dequantized.abs().max())


def _resolved_quant_format(layer) -> str:
    """The format the layer's forward passes to prepare_attn (0.5.14 reads the attribute set at
    __init__; the backport resolves a pending one after loading)."""
    resolve = getattr(layer, "_resolve_gfx95_quant_format", None)
    return resolve() if resolve else layer._gfx95_quant_format


def run(harness: Harness, scenario: dict) -> dict:
    kind, layers = scenario["kind"], scenario["layers"]
    if kind == "build":
        config = CONFIGS[scenario.get("arch", "glm")](layers, **scenario.get("options", {}))
        path = harness.write_model(f"build-{len(list(harness.root.iterdir()))}", config)
        return harness.build(
            path, draft=scenario["role"] == "draft", enforce_fusion=scenario.get("enforce_fusion", False)
        )
    if kind == "load":
        config = CONFIGS[scenario.get("arch", "glm")](layers, **scenario.get("options", {}))
        path = harness.write_model(f"load-{len(list(harness.root.iterdir()))}", config)
        harness.server_args.quantization = config["quantization_config"]["quant_method"]
        try:
            return harness.load(path, draft=scenario["role"] == "draft", post_load=scenario.get("post_load", True))
        finally:
            harness.server_args.quantization = "quark"
    if kind == "mapper":
        config = CONFIGS[scenario.get("arch", "glm")](layers)
        config["quantization_config"]["exclude"] = scenario["names"]
        path = harness.write_model(f"mapper-{layers}-{len(scenario['names'])}", config)
        return {"mapped": harness.quant_config(harness.model_config(path, draft=True)).exclude_layers}
    if kind == "layer_quant":
        path = harness.write_model(f"lqc-{layers}", glm5_config(layers, layer_quant=True))
        model_config = harness.model_config(path, draft=True)
        shared = model_config.hf_config.quantization_config
        before = copy.deepcopy({k: shared.get(k) for k in ("exclude", "layer_quant_config")})
        quant_config = harness.quant_config(model_config)
        after = {k: shared.get(k) for k in ("exclude", "layer_quant_config")}
        return {
            "keys": sorted(quant_config.quant_config.get("layer_quant_config", {})),
            "hf_config_untouched": before == after,
        }
    raise SystemExit(f"unknown scenario {kind!r}")


def main() -> None:
    scenarios = json.loads(sys.argv[1])
    harness = Harness()
    print("PROBE-RESULT " + json.dumps([run(harness, scenario) for scenario in scenarios]))


if __name__ == "__main__":
    main()
