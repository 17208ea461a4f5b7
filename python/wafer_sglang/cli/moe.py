"""``wafer-sglang moe shapes|coverage|config-path|rows|tune``: GLM-5 fp4 fused-MoE rows for the
aiter a server runs (the fork's image of a base, or this host's)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from wafer_sglang.cli.options import emit, out_dir, path_arg, release_version
from wafer_sglang.textfmt import table


def add_parsers(sub: argparse._SubParsersAction) -> None:
    moe = sub.add_parser("moe", help="aiter fp4 fused MoE: lookup keys, coverage on an aiter, the fork's rows, tuning")
    msub = moe.add_subparsers(dest="moe_cmd", required=True, metavar="COMMAND")
    shapes = msub.add_parser("shapes", help="the keys the model looks up, as aiter's untuned CSV")
    _model_args(shapes)
    shapes.add_argument(
        "-o", "--out", "--output", dest="output", type=path_arg, help="write this file (default: stdout)"
    )
    shapes.set_defaults(func=cmd_shapes)

    cov = msub.add_parser(
        "coverage",
        help="what an aiter does for each key: tuned row, fallback, or a kernel it "
        "cannot run; exit 1 unless every key is tuned and usable",
    )
    _model_args(cov)
    _target_args(cov)
    cov.add_argument("--json", action="store_true", help="every key and where it resolves, as JSON")
    cov.set_defaults(func=cmd_coverage)

    path = msub.add_parser("config-path", help="the AITER_CONFIG_FMOE value: aiter's own tuned files, then the fork's")
    _target_args(path)
    path.set_defaults(func=cmd_config_path)

    rows = msub.add_parser("rows", help="make the fork's GLM-5 fp4 rows for a base's image from a clone of ROCm/aiter")
    rows.add_argument(
        "--image", type=release_version, metavar="BASE", required=True, help="the base whose image the rows are for"
    )
    rows.add_argument(
        "--aiter-src",
        type=path_arg,
        required=True,
        metavar="CLONE",
        help="a clone of ROCm/aiter with PR #4344 fetched (git fetch origin pull/4344/head)",
    )
    rows.add_argument(
        "--out", "--out-dir", dest="out_dir", type=out_dir, help="default: build/fmoe/BASE (what docker/build ships)"
    )
    rows.set_defaults(func=cmd_rows)

    tune = msub.add_parser(
        "tune",
        help="on an MI355X host: run the installed aiter's tuner on the keys (or "
        "--verify rows already made), output in that aiter's format + provenance",
    )
    _model_args(tune, required=False)  # --verify needs no model
    tune.add_argument("--aiter-root", type=path_arg, help="an aiter source checkout (default: the installed aiter)")
    tune.add_argument(
        "--out",
        "--out-dir",
        dest="out_dir",
        type=out_dir,
        default=Path("."),
        help="where the tuned CSV goes (default: .)",
    )
    tune.add_argument(
        "--verify",
        type=path_arg,
        metavar="ROWS_CSV",
        help="run aiter's --run_config on these rows (e.g. the fork's) instead of tuning",
    )
    tune.add_argument("--dry-run", action="store_true", help="print the tuner command, run nothing")
    tune.set_defaults(func=cmd_tune)


def _model_args(p: argparse.ArgumentParser, required: bool = True) -> None:
    p.add_argument("--model", required=required, type=path_arg, help="checkpoint folder or its config.json")
    p.add_argument("--tp", type=int, action="append", required=required, help="tensor parallel size (repeatable)")
    p.add_argument("--ep", type=int, default=1, help="expert parallel size (default 1)")
    p.add_argument(
        "--fused-shared-experts",
        choices=("auto", "on", "off", "both"),
        default="auto",
        help="auto: what the fork does on gfx950 for this checkpoint's excludes (target and MTP draft)",
    )
    p.add_argument("--max-tokens", type=int, default=32768, help="largest batch per rank (chunked prefill)")
    p.add_argument(
        "--base",
        type=release_version,
        default=None,
        help="the fork's base deciding fusion (default: --image, else the installed fork's / the LTS)",
    )


def _target_args(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--image",
        type=release_version,
        metavar="BASE",
        help="the fork's image of BASE (its aiter commit, its file list)",
    )
    p.add_argument(
        "--aiter-src",
        type=path_arg,
        metavar="CLONE",
        help="with --image: a clone of ROCm/aiter to read that commit from",
    )
    p.add_argument("--aiter-root", type=path_arg, help="an installed aiter or checkout (default: this host's aiter)")
    p.add_argument(
        "--aiter-version",
        metavar="VERSION",
        help="which aiter --aiter-root is, when its metadata is not installed (e.g. 0.1.17.dev110+g9127c94a1)",
    )
    p.add_argument(
        "--fork-rows",
        type=path_arg,
        metavar="DIR",
        help="the fork's rows (default with --image: build/fmoe/BASE; on a host: what AITER_CONFIG_FMOE lists)",
    )


def _keys(args) -> list:
    from wafer_sglang.checkpoint.store import load_config
    from wafer_sglang.moe.shapes import keys_for

    base = args.base or getattr(args, "image", None)  # None: the default base
    return keys_for(load_config(args.model), args.tp, args.ep, base, args.fused_shared_experts, args.max_tokens)


def _target(args):
    from wafer_sglang.errors import WaferError
    from wafer_sglang.moe import targets
    from wafer_sglang.moe.files import fork_rows_dir
    from wafer_sglang.repo import find_repo_root

    if args.image:
        if args.aiter_root:
            raise WaferError("--image reads the image's aiter from --aiter-src; --aiter-root is for an installed aiter")
        if not args.aiter_src:
            raise WaferError(
                f"--image {args.image} needs --aiter-src CLONE (git clone https://github.com/ROCm/aiter): "
                "the image's aiter commit is read from it"
            )
        root = find_repo_root()
        return targets.image_target(root, args.image, args.aiter_src, args.fork_rows or fork_rows_dir(root, args.image))
    return targets.host_target(args.aiter_root, args.fork_rows, version=args.aiter_version)


def cmd_shapes(args) -> int:
    from wafer_sglang.moe.keys import write_untuned

    text = write_untuned(_keys(args))
    emit(text, args.output, f"{text.count(chr(10)) - 1} keys")
    return 0


def cmd_coverage(args) -> int:
    from wafer_sglang.moe.coverage import coverage

    keys = _keys(args)
    target = _target(args)
    report = coverage(keys, target.files, target.model, target.names(), _own_code(target), target.label)
    if args.json:
        print(json.dumps(_report_json(report), indent=2))
    else:
        _print_report(report, args)
    return 0 if report.ok else 1


def _own_code(target):
    """aiter's own lookup code, when what it needs (pandas, torch) is importable here."""
    from wafer_sglang.moe.aiter_exec import runnable

    return target.tree if runnable(target.tree) else None


def _print_report(report, args) -> None:
    print(f"{report.aiter}: {len(report.verdicts)} keys over {len(report.files)} tuned files")
    if report.checked_with_aiter_code:
        print("checked with aiter's own merge + lookup code at that tree")
    elif report.verdicts:
        print("answered by the fork's model of this aiter (aiter's own code needs pandas and torch here)")
    print(
        table(
            ["token", "inter_dim", "expert", "topk", "aiter does", "row", "provenance"],
            [
                [
                    v.key.token,
                    v.key.inter_dim,
                    v.key.expert,
                    v.key.topk,
                    v.status.upper() if v.status != "tuned" else "tuned",
                    v.detail,
                    v.provenance or ("aiter's" if v.status == "tuned" else ""),
                ]
                for v in report.verdicts
            ],
        )
    )
    print("\n" + ", ".join(f"{n} {label}" for label, n in sorted(report.counts().items())))
    for problem in report.problems + report.disagreements:
        print(f"error: {problem}")
    if any(v.status == "fallback" for v in report.verdicts):
        tps = " ".join(f"--tp {tp}" for tp in args.tp)
        print(
            f"\nkeys on the fallback run aiter's default heuristics (slow); tune them on an MI355X host:\n"
            f"  wafer-sglang moe tune --model {args.model} {tps}"
        )


def _report_json(report) -> dict:
    return {
        "aiter": report.aiter,
        "files": report.files,
        "ok": report.ok,
        "counts": report.counts(),
        "checked_with_aiter_code": report.checked_with_aiter_code,
        "problems": report.problems,
        "disagreements": report.disagreements,
        "keys": [
            {
                **v.key.__dict__,
                "status": v.status,
                "row": v.row.where if v.row else None,
                "kernels": [v.row.kernel1, v.row.kernel2] if v.row else None,
                "detail": v.detail,
                "provenance": v.provenance,
            }
            for v in report.verdicts
        ],
    }


def cmd_config_path(args) -> int:
    import os

    from wafer_sglang.bases import base_image
    from wafer_sglang.errors import WaferError
    from wafer_sglang.image.builder import aiter_config_fmoe
    from wafer_sglang.moe.files import aiter_configs_dir, host_config_fmoe
    from wafer_sglang.repo import find_repo_root

    if args.image:  # the image's record says it all
        root = find_repo_root()
        print(aiter_config_fmoe(base_image(root, args.image, require_aiter=True), root))
        return 0
    configs = aiter_configs_dir(args.aiter_root)
    if configs is None:
        raise WaferError("aiter is not installed here; pass --aiter-root DIR (an aiter package or checkout)")
    print(host_config_fmoe(configs, args.fork_rows, os.environ.get("AITER_CONFIG_FMOE", "")))
    return 0


def cmd_rows(args) -> int:
    from wafer_sglang.moe.fork_rows import refresh
    from wafer_sglang.repo import find_repo_root

    done = refresh(find_repo_root(), args.image, args.aiter_src, args.out_dir)
    rows, paths = done.rows, done.paths
    print(f"{paths[0]}: {len(rows.rows)} rows for {done.label} ({done.commit[:12]}, the {args.image} image)")
    for provenance, n in sorted(rows.counts().items()):
        print(f"  {n:3d} {provenance}")
    for entry in rows.dropped:
        print(
            f"  left out: {entry['source']} line {entry['line']} "
            f"(token {entry['token']}, inter_dim {entry['inter_dim']}, E={entry['expert']}/topk {entry['topk']}): "
            f"{entry['why']}"
        )
    print(f"provenance: {paths[1]}; aiter's license: {paths[2]}")
    return 0


def cmd_tune(args) -> int:
    from wafer_sglang.errors import WaferError
    from wafer_sglang.moe import tune
    from wafer_sglang.moe.targets import host_target

    if not args.verify and (args.model is None or not args.tp):
        raise WaferError("moe tune needs --model and --tp (or --verify ROWS_CSV)")
    target = host_target(args.aiter_root, None)
    stem = f"wafer_tp{'-'.join(map(str, args.tp or []))}_fp4"
    job = tune.TuneJob(
        target.tree, target.model, args.out_dir / f"{stem}_untuned_fmoe.csv", args.out_dir / f"{stem}_tuned_fmoe.csv"
    )
    if args.verify:
        return tune.verify(job, args.verify, dry_run=args.dry_run)
    if target.model is None:
        print(f"note: no model of {target.label}; rows get the _tag column aiter 9127c94a1 needs", file=sys.stderr)
    return tune.tune(job, _keys(args), dry_run=args.dry_run)
