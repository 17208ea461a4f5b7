"""``wafer-sglang moe shapes|coverage|config-path|tune``: aiter fp4 MoE tuned configs for GLM shapes."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from wafer_sglang.textfmt import table


def add_parsers(sub: argparse._SubParsersAction) -> None:
    moe = sub.add_parser("moe", help="aiter fp4 MoE: lookup keys, coverage, additive AITER_CONFIG_FMOE, tuning")
    msub = moe.add_subparsers(dest="moe_cmd", required=True, metavar="COMMAND")
    for name, helptext in (
        ("shapes", "the aiter lookup keys the model hits at this parallelism, as aiter's untuned CSV"),
        ("coverage", "which keys aiter's tuned CSVs plus ours cover; exit 1 on any fallback"),
        ("tune", "on an MI355X host: run aiter's tuner on the untuned keys, write our tuned CSV + provenance"),
    ):
        p = msub.add_parser(name, help=helptext)
        p.add_argument("--model", required=True, type=Path, help="checkpoint folder or its config.json")
        p.add_argument("--tp", type=int, required=True)
        p.add_argument("--ep", type=int, default=1, help="expert parallel size (default 1)")
        p.add_argument("--fused-shared-experts", choices=("auto", "on", "off"), default="auto",
                       help="auto: what the fork does on MI355X (target fused; MTP draft unfused when its shared expert is excluded)")
        p.add_argument("--max-tokens", type=int, default=32768, help="largest batch (chunked prefill) per rank")
        p.add_argument("--aiter-root", type=Path, help="aiter checkout or package (default: the installed aiter)")
        if name == "shapes":
            p.add_argument("-o", "--output", type=Path, help="write here (default: stdout)")
            p.set_defaults(func=cmd_shapes)
        elif name == "coverage":
            p.add_argument("--json", action="store_true")
            p.set_defaults(func=cmd_coverage)
        else:
            p.add_argument("--out-dir", type=Path, help="where the tuned CSV goes (default: the fork's config folder)")
            p.add_argument("--dry-run", action="store_true", help="print the tuner command, run nothing")
            p.set_defaults(func=cmd_tune)
    p = msub.add_parser("config-path", help="the AITER_CONFIG_FMOE value: aiter's own tuned files plus ours")
    p.add_argument("--aiter-root", type=Path)
    p.set_defaults(func=cmd_config_path)


def _config(model: Path) -> dict:
    from wafer_sglang.checkpoint.store import load_config

    return load_config(model)


def keys_for(args) -> list:
    """Lookup keys for the target and the MTP draft, deduplicated, in key order."""
    from wafer_sglang.checkpoint import rules
    from wafer_sglang.moe_configs import model_keys

    config = _config(args.model)
    eligible = config.get("n_routed_experts") in (256, 384) and config.get("n_shared_experts") == 1
    if args.fused_shared_experts == "auto":
        excludes = (config.get("quantization_config") or {}).get("exclude") or []
        mtp = rules.nextn_layer(config)
        draft = rules.Excludes(rules.draft_excludes(excludes, mtp, rules.rules_for("0.5.14", False)))
        draft_unfused = "model.decoder.mlp.shared_experts.gate_proj" in draft
        choices = {eligible, eligible and not draft_unfused}
    else:
        choices = {args.fused_shared_experts == "on"}
    keys = set()
    for fused in choices:
        keys |= set(model_keys(config, args.tp, args.ep, fused_shared=fused, max_tokens=args.max_tokens))
    return sorted(keys)


def _rows(args):
    from wafer_sglang.errors import WaferError
    from wafer_sglang.moe_configs import aiter_configs_dir, duplicates, merged_files, read_tuned

    configs = aiter_configs_dir(args.aiter_root)
    if configs is None:
        raise WaferError("aiter is not installed here; pass --aiter-root DIR (an aiter checkout or package)")
    files = merged_files(configs)
    rows = [row for f in files for row in read_tuned(f)]
    clashes = duplicates(rows)
    if clashes:
        lines = [f"  {g[0].key.short()}: " + ", ".join(f"{r.file.name}:{r.line}" for r in g) for g in clashes[:10]]
        raise WaferError(f"{len(clashes)} duplicate tuned keys across the merged files (aiter raises on these):\n" + "\n".join(lines))
    return files, rows


def cmd_shapes(args) -> int:
    from wafer_sglang.fsutil import atomic_write_text
    from wafer_sglang.moe_configs import write_untuned

    text = write_untuned(keys_for(args))
    if args.output:
        atomic_write_text(args.output, text)
        print(f"wrote {args.output} ({text.count(chr(10)) - 1} keys)", file=sys.stderr)
    else:
        print(text, end="")
    return 0


def cmd_coverage(args) -> int:
    from wafer_sglang.moe_configs import AITER_MATCHED, coverage

    files, rows = _rows(args)
    found = coverage(keys_for(args), rows)
    missing = [k for k, row in found.items() if row is None]
    if args.json:
        print(json.dumps({"matched": AITER_MATCHED, "files": [str(f) for f in files],
                          "keys": [{**k.__dict__, "covered_by": f"{r.file.name}:{r.line}" if r else None} for k, r in found.items()]}, indent=2))
    else:
        print(f"{len(found)} keys; tuned files: {len(files)} (aiter's + the fork's); key logic matches {AITER_MATCHED}")
        print(table(["token", "inter_dim", "expert", "topk", "tuned row"],
                    [[k.token, k.inter_dim, k.expert, k.topk, f"{r.file.name}:{r.line}" if r else "FALLBACK (default heuristics)"] for k, r in found.items()]))
        if missing:
            print(f"\n{len(missing)} key(s) fall back to aiter's slow default heuristics; tune them on an MI355X host:\n"
                  f"  wafer-sglang moe tune --model {args.model} --tp {args.tp}" + (f" --ep {args.ep}" if args.ep > 1 else ""))
    return 1 if missing else 0


def cmd_config_path(args) -> int:
    from wafer_sglang.moe_configs import config_fmoe_value

    files, _ = _rows(args)
    print(config_fmoe_value(files))
    return 0


def cmd_tune(args) -> int:
    from wafer_sglang.moe_tune import tune

    return tune(args, keys_for(args))
