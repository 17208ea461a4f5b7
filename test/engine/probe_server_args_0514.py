"""Construct upstream sglang 0.5.14's real ServerArgs for a GLM-5 (or another) model with the
platform faked, and report the defaults it settled on. Run with PYTHONPATH=<tree>:test/engine;
prints one JSON line. argv: a JSON list of cases
{"platform": "gfx950"|"gfx942"|"cuda", "arch": str, "args": {...}, "env": {...}}.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import tempfile
from pathlib import Path

import cpu_sglang

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "glm_moe_dsa_tiny_mtp_quark_mxfp4.config.json"
GCN_ARCH = {"gfx950": "gfx950:sramecc+:xnack-", "gfx942": "gfx942:sramecc+:xnack-"}


class _Collect(logging.Handler):
    def __init__(self):
        super().__init__(logging.INFO)
        self.messages: list[str] = []

    def emit(self, record):
        self.messages.append(record.getMessage())


def run_case(case: dict, root: Path) -> dict:
    import sglang.srt.server_args as server_args

    config = json.loads(FIXTURE.read_text())
    config["architectures"] = [case["arch"]]
    model = root / case["arch"]
    model.mkdir(exist_ok=True)
    (model / "config.json").write_text(json.dumps(config))
    hip = case["platform"] in GCN_ARCH
    server_args.is_hip = lambda: hip  # the platform, faked for this test only
    server_args._hip_gcn_arch = lambda: GCN_ARCH.get(case["platform"])
    os.environ.pop("SGLANG_USE_AITER", None)
    os.environ.update(case.get("env", {}))
    collect = _Collect()
    logging.getLogger("sglang.srt.server_args").addHandler(collect)
    logging.getLogger("sglang.srt.server_args").setLevel(logging.INFO)
    try:
        args = server_args.ServerArgs(model_path=str(model), device="cpu", skip_tokenizer_init=True, **case.get("args", {}))
    finally:
        logging.getLogger("sglang.srt.server_args").removeHandler(collect)
    return {
        "kv_cache_dtype": args.kv_cache_dtype,
        "enable_aiter_allreduce_fusion": bool(args.enable_aiter_allreduce_fusion),
        "SGLANG_USE_AITER": os.environ.get("SGLANG_USE_AITER"),
        "logs": [m for m in collect.messages if "MI355X" in m],
    }


def main() -> None:
    cpu_sglang.install()
    cases = json.loads(sys.argv[1])
    root = Path(tempfile.mkdtemp(prefix="server-args-probe-"))
    print("PROBE-RESULT " + json.dumps([run_case(case, root) for case in cases]))


if __name__ == "__main__":
    main()
