"""Upstream sglang 0.5.23's real Quark exclude mapping for MTP drafts and its DSA KV-cache
default, on CPU. Run with PYTHONPATH=<tree>:test/engine; prints one JSON line.

argv: a JSON list of
  {"kind": "quant_methods", "architecture": ..., "layers": N, "exclude": [...], "prefixes": [...]}
      -> each prefix's quant method after the loader's mapper (get_hf_to_sglang_mapper(hf_config))
  {"kind": "mapper", "class": "deepseek"|"glm", "layers": N, "names": [...]} -> mapped names
  {"kind": "kv_default", "architecture": ..., "hip": b, "gfx95": b, "kv_cache_dtype": ...}
      -> the kv_cache_dtype _dsa_kv_cache_dtype_default settles on
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from types import SimpleNamespace

import cpu_sglang

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "glm_moe_dsa_tiny_mtp_quark_mxfp4.config.json"
PACKED = {"gate_up_proj": ["gate_proj", "up_proj"], "fused_qkv_a_proj_with_mqa": ["q_a_proj", "kv_a_proj_with_mqa"]}


def _nextn_class(name: str):
    if name == "glm":
        from sglang.srt.models.glm4_moe import GlmMoeDsaForCausalLMNextN

        return GlmMoeDsaForCausalLMNextN
    from sglang.srt.models.deepseek_nextn import DeepseekV3ForCausalLMNextN

    return DeepseekV3ForCausalLMNextN


def quant_methods(case: dict) -> dict:
    import torch
    from sglang.srt.layers.linear import LinearBase
    from sglang.srt.layers.quantization.quark.quark import QuarkConfig

    class Linear(LinearBase):  # get_quant_method only asks isinstance(layer, LinearBase)
        def __init__(self):
            torch.nn.Module.__init__(self)

    quant = json.loads(FIXTURE.read_text())["quantization_config"]
    quant.update(exclude=case["exclude"], packed_modules_mapping=PACKED)
    quark = QuarkConfig.from_config(quant)
    hf_config = SimpleNamespace(architectures=[case["architecture"]], num_hidden_layers=case["layers"])
    quark.apply_weight_name_mapper(_nextn_class("deepseek").get_hf_to_sglang_mapper(hf_config))
    return {p: type(quark.get_quant_method(Linear(), p)).__name__ for p in case["prefixes"]}


def mapper(case: dict) -> dict:
    hf_config = SimpleNamespace(num_hidden_layers=case["layers"])
    mapped = _nextn_class(case["class"]).get_hf_to_sglang_mapper(hf_config)
    return {"mapped": [mapped._map_name(n) for n in case["names"]]}


def kv_default(case: dict) -> dict:
    import sglang.srt.arg_groups.overrides as overrides
    from sglang.srt.runtime_context import override_platform

    hf_config = SimpleNamespace(architectures=[case["architecture"]], index_topk=2048)
    overrides.model_config_of = lambda view: SimpleNamespace(hf_config=hf_config)
    overrides.is_deepseek_dsa = lambda config: True
    overrides.is_gfx95_supported = lambda: case["gfx95"]  # the platform, faked for this test only
    view = SimpleNamespace(kv_cache_dtype=case["kv_cache_dtype"], dsa_prefill_backend=None, dsa_decode_backend=None)
    with override_platform(is_hip=case["hip"], is_npu=False, is_xpu=False):
        resolved = overrides._dsa_kv_cache_dtype_default(view)  # only what it changes
    return {"kv_cache_dtype": resolved.get("kv_cache_dtype", view.kv_cache_dtype)}


def main() -> None:
    cpu_sglang.install(sgl_kernel=True)
    import sglang.srt.configs.model_config as model_config

    model_config.is_deepseek_dsa = lambda config: True  # the tiny configs are DSA models
    handlers = {"quant_methods": quant_methods, "mapper": mapper, "kv_default": kv_default}
    print("PROBE-RESULT " + json.dumps([handlers[c["kind"]](c) for c in json.loads(sys.argv[1])]))


if __name__ == "__main__":
    main()
