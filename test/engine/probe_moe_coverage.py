"""Run upstream's real QuarkW4A4MXFp4MoE.create_moe_runner (the aiter branch) for MoE layers of
given shapes and report what the fused-MoE coverage check logged. PYTHONPATH=<tree>:test/engine;
argv: JSON {"aiter_root": dir, "base": "0.5.14"|"0.5.23", "layers": [[experts, inter, hidden, topk], ...]}.

aiter itself cannot load on CPU: a stand-in answers get_gfx/get_cu_num (MI355X: gfx950, 256
CUs) and points at a folder of real aiter tuned CSVs; the MoE runner is a stand-in too (the
check runs before any kernel would).
"""

from __future__ import annotations

import json
import logging
import sys
import types
from pathlib import Path

import cpu_sglang


class _Collect(logging.Handler):
    def __init__(self):
        super().__init__(logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record):
        self.messages.append(record.getMessage())


def fake_aiter(root: Path) -> None:
    package = types.ModuleType("aiter")
    package.__file__ = str(root / "aiter" / "__init__.py")
    package.__path__ = [str(root / "aiter")]
    chip_info = types.ModuleType("aiter.jit.utils.chip_info")
    chip_info.get_gfx = lambda: "gfx950"
    chip_info.get_cu_num = lambda: 256
    for name, module in {"aiter": package, "aiter.jit": types.ModuleType("aiter.jit"),
                         "aiter.jit.utils": types.ModuleType("aiter.jit.utils"),
                         "aiter.jit.utils.chip_info": chip_info}.items():
        sys.modules[name] = module


def publish_schedule(base: str) -> None:
    from types import SimpleNamespace

    if base == "0.5.14":
        from sglang.srt.server_args import set_global_server_args_for_scheduler

        set_global_server_args_for_scheduler(SimpleNamespace(chunked_prefill_size=16384, max_prefill_tokens=16384))
    else:
        import sglang.srt.runtime_context as runtime_context

        runtime_context.get_schedule = lambda: SimpleNamespace(chunked_prefill_size=16384, max_prefill_tokens=16384)


def main() -> None:
    request = json.loads(sys.argv[1])
    cpu_sglang.install(sgl_kernel=request["base"] != "0.5.14")
    import torch

    fake_aiter(Path(request["aiter_root"]))
    publish_schedule(request["base"])
    import sglang.srt.layers.moe.utils as moe_utils
    import sglang.srt.layers.quantization.quark.schemes.quark_w4a4_mxfp4_moe as scheme
    from sglang.srt.layers.moe import MoeRunnerBackend, MoeRunnerConfig

    moe_utils.get_moe_runner_backend = lambda: MoeRunnerBackend.AITER
    scheme.MoeRunner = lambda backend, config: ("runner", backend)
    collect = _Collect()
    logging.getLogger().addHandler(collect)
    for experts, inter, hidden, topk in request["layers"]:
        layer = torch.nn.Module()
        layer.w13_weight = torch.nn.Parameter(torch.empty(experts, 2 * inter, hidden // 2, dtype=torch.uint8), requires_grad=False)
        method = object.__new__(scheme.QuarkW4A4MXFp4MoE)
        method.create_moe_runner(layer, MoeRunnerConfig(num_experts=experts, num_local_experts=experts,
                                                        hidden_size=hidden, intermediate_size_per_partition=inter, top_k=topk))
    counted = None
    try:
        from sglang.srt.layers.moe.aiter_tuned_coverage import uncovered_aiter_moe_keys

        counted = uncovered_aiter_moe_keys()
    except ImportError:
        pass
    print("PROBE-RESULT " + json.dumps({"warnings": [m for m in collect.messages if "aiter" in m], "uncovered": counted}))


if __name__ == "__main__":
    main()
