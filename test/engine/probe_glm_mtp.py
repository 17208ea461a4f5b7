"""Build upstream sglang's real GLM-5 target and MTP draft models on CPU and report what each
linear/expert module was built as. Run as a script with PYTHONPATH=<sglang tree>:test/engine;
prints one JSON object. Used by test_engine_0514.py (pristine and patched trees alike).

Scenarios (argv: a JSON list of {"kind": ..., ...}):
  target       {"layers": N}                       -> per-module quant method, num_fused
  draft        {"layers": N, "exclude_eh_proj": b} -> same, plus the global fusion flag after
  mapper       {"layers": N, "names": [...]}       -> names as the loader's mapper maps them
  layer_quant  {"layers": N}                       -> mapped layer_quant_config keys; whether the
                                                      hf_config dict was left untouched
"""

from __future__ import annotations

import copy
import json
import re
import sys
import tempfile
from pathlib import Path

import cpu_sglang

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "glm_moe_dsa_tiny_mtp_quark_mxfp4.config.json"


def glm5_config(layers: int, exclude_eh_proj: bool = False, layer_quant: bool = False) -> dict:
    """The fixture's real Quark export, scaled from its 2+1 layers to ``layers``+1.

    Fixture layer 0 (dense) stays layer 0, layer 1 (MoE) stands for every MoE layer
    1..layers-1, layer 2 (the MTP layer) becomes ``layers``. 256 experts with one shared expert
    is the GLM-5 layout that qualifies for shared-expert fusion.
    """
    fixture = json.loads(FIXTURE.read_text())
    config = copy.deepcopy(fixture)
    config.update(
        num_hidden_layers=layers,
        n_routed_experts=256,
        num_experts_per_tok=8,
        mlp_layer_types=["dense"] + ["sparse"] * (layers - 1),
        indexer_types=["full"] * layers,
    )
    quant = config["quantization_config"]
    quant["exclude"] = [scaled for name in fixture["quantization_config"]["exclude"] for scaled in _scale(name, layers)]
    if exclude_eh_proj:
        quant["exclude"].append(f"model.layers.{layers}.eh_proj")
    if layer_quant:
        scheme = copy.deepcopy(quant["global_quant_config"])
        quant["layer_quant_config"] = {
            f"model.layers.{layers}.self_attn.*": scheme,
            f"model.layers.{layers}.eh_proj": scheme,
            "*.o_proj": scheme,
        }
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


class Harness:
    """sglang's process-wide state, set up once: server args, gloo, model parallel groups."""

    def __init__(self):
        cpu_sglang.install()
        import sglang.srt.models.deepseek_v2 as deepseek_v2
        from sglang.srt.distributed import parallel_state
        from sglang.srt.server_args import ServerArgs, set_global_server_args_for_scheduler

        self.root = Path(tempfile.mkdtemp(prefix="glm5-probe-"))
        self.server_args = ServerArgs(
            model_path=str(self.write_model("base", glm5_config(3))),
            device="cpu",
            quantization="quark",
            load_format="dummy",
            skip_tokenizer_init=True,
        )
        set_global_server_args_for_scheduler(self.server_args)
        parallel_state.init_distributed_environment(
            world_size=1, rank=0, local_rank=0, backend="gloo",
            distributed_init_method=f"file://{self.root / 'dist'}",
        )
        parallel_state.initialize_model_parallel(1)
        # Shared-expert fusion is decided for HIP >= gfx942; the capability is faked to (9, 5).
        deepseek_v2._is_hip = True

    def write_model(self, name: str, config: dict) -> Path:
        path = self.root / name
        path.mkdir(parents=True, exist_ok=True)
        (path / "config.json").write_text(json.dumps(config))
        return path

    def model_config(self, path: Path, draft: bool):
        from sglang.srt.configs.model_config import ModelConfig
        from sglang.srt.layers.dp_attention import initialize_dp_attention
        from sglang.srt.layers.moe.utils import initialize_moe_config

        model_config = ModelConfig.from_server_args(self.server_args, model_path=str(path), is_draft_model=draft)
        initialize_dp_attention(self.server_args, model_config)
        initialize_moe_config(self.server_args)
        return model_config

    def build(self, path: Path, draft: bool) -> dict:
        from sglang.srt.configs.load_config import LoadConfig
        from sglang.srt.model_loader.loader import _get_quantization_config, _initialize_model

        self.server_args.disable_shared_experts_fusion = False
        model_config = self.model_config(path, draft)
        load_config = LoadConfig(load_format="dummy")
        quant_config = _get_quantization_config(model_config, load_config)
        model = _initialize_model(model_config, load_config, quant_config)
        return {
            "architecture": model_config.hf_config.architectures[0],
            "num_fused_shared_experts": model.num_fused_shared_experts,
            "fusion_disabled_after": self.server_args.disable_shared_experts_fusion,
            "modules": {
                name: type(module.quant_method).__name__
                for name, module in model.named_modules()
                if getattr(module, "quant_method", None) is not None
            },
        }


def run(harness: Harness, scenario: dict) -> dict:
    kind, layers = scenario["kind"], scenario["layers"]
    if kind in ("target", "draft"):
        config = glm5_config(layers, exclude_eh_proj=scenario.get("exclude_eh_proj", False))
        path = harness.write_model(f"{kind}-{layers}-{scenario.get('exclude_eh_proj', False)}", config)
        return harness.build(path, draft=kind == "draft")
    if kind == "mapper":
        from sglang.srt.configs.load_config import LoadConfig
        from sglang.srt.model_loader.loader import _get_quantization_config

        config = glm5_config(layers)
        config["quantization_config"]["exclude"] = scenario["names"]
        path = harness.write_model(f"mapper-{layers}-{len(scenario['names'])}", config)
        quant_config = _get_quantization_config(harness.model_config(path, draft=True), LoadConfig(load_format="dummy"))
        return {"mapped": quant_config.exclude_layers}
    if kind == "layer_quant":
        from sglang.srt.configs.load_config import LoadConfig
        from sglang.srt.model_loader.loader import _get_quantization_config

        path = harness.write_model(f"lqc-{layers}", glm5_config(layers, layer_quant=True))
        model_config = harness.model_config(path, draft=True)
        shared = model_config.hf_config.quantization_config
        before = copy.deepcopy({k: shared.get(k) for k in ("exclude", "layer_quant_config")})
        quant_config = _get_quantization_config(model_config, LoadConfig(load_format="dummy"))
        after = {k: shared.get(k) for k in ("exclude", "layer_quant_config")}
        return {
            "keys": sorted(quant_config.quant_config.get("layer_quant_config", {})),
            "hf_config_untouched": before == after,
        }
    raise SystemExit(f"unknown scenario {kind!r}")


def main() -> None:
    scenarios = json.loads(sys.argv[1])
    harness = Harness()
    results = [run(harness, scenario) for scenario in scenarios]
    print("PROBE-RESULT " + json.dumps(results))


if __name__ == "__main__":
    main()
