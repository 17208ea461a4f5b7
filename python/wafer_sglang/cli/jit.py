"""``wafer-sglang check-jit-rocm``: CUDA-only headers in JIT kernels vs what ROCm can reach."""

from __future__ import annotations

import argparse
import importlib.util
import json
from pathlib import Path

from wafer_sglang.cli.options import path_arg
from wafer_sglang.textfmt import table


def add_parsers(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "check-jit-rocm",
        help="which JIT kernel sources include CUDA-only headers under -DUSE_ROCM, and whether ROCm reaches them",
    )
    p.add_argument(
        "--tree", type=path_arg, help="a folder holding sglang/ (a work tree); default: the installed sglang"
    )
    p.add_argument(
        "--ledger", type=path_arg, help="reviewed units (default: the one shipped for the tree's sglang version)"
    )
    p.add_argument("--all", action="store_true", help="also list units proved unreachable")
    p.add_argument("--json", action="store_true", help="every unit and its verdict, as JSON")
    p.set_defaults(func=cmd_check_jit_rocm)


def _installed_tree() -> Path:
    from wafer_sglang.errors import WaferError

    spec = importlib.util.find_spec("sglang")
    if spec is None or not spec.submodule_search_locations:
        raise WaferError("sglang is not installed here; pass --tree DIR (a folder holding sglang/)")
    return Path(next(iter(spec.submodule_search_locations))).parent


def cmd_check_jit_rocm(args) -> int:
    from wafer_sglang.jit import rocm_check as jit_rocm

    package = (args.tree or _installed_tree()) / "sglang"
    version = jit_rocm.sglang_version(package)
    ledger_path = args.ledger or jit_rocm.default_ledger(version)
    ledger = jit_rocm.load_ledger(ledger_path)
    reports = jit_rocm.scan(package, ledger)
    stale = jit_rocm.stale_ledger_entries(reports, ledger)
    problems = [r for r in reports if r.verdict == "reachable"]
    if args.json:
        print(
            json.dumps(
                {
                    "sglang": version,
                    "ledger": str(ledger_path),
                    "units": [r.as_dict() for r in reports],
                    "stale_ledger_entries": stale,
                },
                indent=2,
            )
        )
    else:
        shown = reports if args.all else [r for r in reports if r.verdict in ("reachable", "feature", "reviewed")]
        print(f"sglang {version}: {len(reports)} JIT units include CUDA-only headers under -DUSE_ROCM")
        if shown:
            print(
                table(
                    ["unit", "verdict", "CUDA headers", "why"],
                    [[r.unit, r.verdict, " ".join(r.cuda_headers[:2]), r.reason] for r in shown],
                )
            )
        counts = {
            v: sum(r.verdict == v for r in reports)
            for v in ("gated", "uncalled", "unloaded", "reviewed", "feature", "reachable")
        }
        print(", ".join(f"{n} {v}" for v, n in counts.items()))
        for unit in stale:
            print(f"stale ledger entry in {ledger_path}: {unit} (no longer needs review; remove it)")
    return 1 if problems or stale else 0
