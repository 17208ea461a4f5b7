"""Construct upstream sglang 0.5.23's real ServerArgs (its resolution pipeline, which runs the DSA
KV-cache default from arg_groups/model_hook.py) for a GLM-5 (or another) model with the platform
faked, and report what it resolved; and the post-process pass registry. Run with
PYTHONPATH=<tree>:test/support/engine; prints one PROBE-RESULT line.

argv: JSON {"cases": [{"arch": str, "hip": bool, "gfx95": bool, "args": {...}}, ...]}
-> {"cases": [{"kv_cache_dtype": ...}], "registry": [qualname of every registered pass, in order],
    "registry_returns": {qualname: type name returned by the pass for the first case's view}}
"""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path

import cpu_sglang
from model_configs import glm5_config


def write_model(case: dict, root: Path) -> Path:
    config = {**glm5_config(3), "architectures": [case["arch"]]}  # a DSA model either way
    model = root / f"{case['arch']}-{len(list(root.iterdir()))}"
    model.mkdir()
    (model / "config.json").write_text(json.dumps(config))
    return model


def resolve(case: dict, root: Path):
    from sglang.srt.arg_groups import overrides
    from sglang.srt.arg_groups.model_override_base import resolved_view
    from sglang.srt.runtime_context import override_platform
    from sglang.srt.server_args import ServerArgs

    overrides.is_gfx95_supported = lambda: case["gfx95"]  # the GPU, faked for this test only
    with override_platform(is_hip=case["hip"], is_npu=False, is_xpu=False):
        args = ServerArgs(
            model_path=str(write_model(case, root)), device="cpu", skip_tokenizer_init=True, **case.get("args", {})
        )
        args.resolve_once()  # what publish() runs before the engine reads the config
        return args, resolved_view(args)


def main() -> None:
    cpu_sglang.install(sgl_kernel=True)
    from sglang.srt.arg_groups import overrides

    request = json.loads(sys.argv[1])
    root = Path(tempfile.mkdtemp(prefix="server-args-0523-"))
    cases, returns = [], {}
    for index, case in enumerate(request["cases"]):
        _, view = resolve(case, root)
        cases.append({"kv_cache_dtype": view.kv_cache_dtype})
        if index == 0:
            for fn in overrides.POST_PROCESS_PASSES:
                try:
                    returns[fn.__qualname__] = type(fn(view)).__name__
                except Exception as exc:
                    returns[fn.__qualname__] = f"raised {type(exc).__name__}"
    registry = [fn.__qualname__ for fn in overrides.POST_PROCESS_PASSES]
    print("PROBE-RESULT " + json.dumps({"cases": cases, "registry": registry, "registry_returns": returns}))


if __name__ == "__main__":
    main()
