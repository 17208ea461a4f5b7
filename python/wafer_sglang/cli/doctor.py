"""``wafer-sglang doctor``: preflight for a serving host."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from wafer_sglang.cli.options import path_arg


def add_parsers(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "doctor", help="preflight a serving host: GPUs, ROCm, torch, aiter/triton/sgl-kernel, the fork, env hazards"
    )
    p.add_argument("--json", action="store_true", help="the findings as JSON")
    p.add_argument(
        "--kernels",
        action="store_true",
        help="also compile the GLM-5 path's Triton kernels with this host's triton (check-kernels, for its GPU)",
    )
    p.add_argument("--root", type=path_arg, default=Path("/"), help=argparse.SUPPRESS)  # a staged host, for tests
    p.set_defaults(func=cmd_doctor)


def cmd_doctor(args) -> int:
    from wafer_sglang import doctor
    from wafer_sglang.manifest import installed_manifest

    findings = doctor.run(doctor.Host(root=args.root), installed_manifest())
    if args.kernels:
        from wafer_sglang.kernels.check import findings as kernel_findings

        findings += [doctor.Finding("kernels", *found) for found in kernel_findings()]
    if args.json:
        print(json.dumps([f.as_dict() for f in findings], indent=2))
    else:
        print(doctor.format_report(findings))
    return 1 if any(f.severity == "error" for f in findings) else 0
