"""``wafer-sglang checkpoint check|fix``: Quark exclude list vs what the engine builds."""

from __future__ import annotations

import argparse
import json
import sys

from wafer_sglang.cli.options import path_arg, release_version

EXIT_CLEAN, EXIT_PROBLEMS, EXIT_UNUSABLE = 0, 1, 2


def add_parsers(sub: argparse._SubParsersAction) -> None:
    checkpoint = sub.add_parser(
        "checkpoint", help="check/fix a Quark MXFP4 checkpoint against the engine's naming rules (headers only)"
    )
    csub = checkpoint.add_subparsers(dest="checkpoint_cmd", required=True, metavar="COMMAND")
    for name, helptext in (
        ("check", "report every weight the engine would build differently from how it is stored"),
        ("fix", "add the missing exclude entries (prints a diff; writes only with --write)"),
    ):
        p = csub.add_parser(name, help=helptext)
        p.add_argument("path", type=path_arg, help="checkpoint folder (config.json + safetensors)")
        p.add_argument(
            "--base", type=release_version, help="sglang base whose rules apply (default: the installed fork's base)"
        )
        p.add_argument(
            "--upstream", action="store_true", help="stock upstream sglang of that base, without the fork's patches"
        )
        p.add_argument(
            "--gpu",
            choices=("gfx950", "gfx942", "other"),
            default="gfx950",
            help="where it will run: shared-expert fusion happens on gfx942/gfx950 (default gfx950 = MI355X)",
        )
        p.add_argument("--disable-shared-experts-fusion", action="store_true", help="judge as if served with this flag")
        p.add_argument("--json", action="store_true", help="the findings as JSON")
        if name == "fix":
            p.add_argument("--write", action="store_true", help="apply: timestamped backup, atomic replace")
        p.set_defaults(func=cmd_check if name == "check" else cmd_fix)


def _report(args):
    from wafer_sglang import bases
    from wafer_sglang.checkpoint import plan, rules, store

    options = plan.Options(
        base=args.base or bases.default_base(),
        upstream=args.upstream,
        gpu=args.gpu,
        disable_shared_experts_fusion=args.disable_shared_experts_fusion,
    )
    rules.rules_for(options.base, options.upstream)  # an unknown base is said before any file is read
    return plan.check(store.load(args.path), options)


def _unusable(exc) -> int:
    print(f"wafer-sglang: unusable checkpoint: {exc}", file=sys.stderr)
    return EXIT_UNUSABLE


def cmd_check(args) -> int:
    from wafer_sglang.checkpoint.store import UnusableCheckpoint

    try:
        report = _report(args)
    except UnusableCheckpoint as exc:
        return _unusable(exc)
    if args.json:
        print(
            json.dumps(
                {
                    "rules": report.rules.label,
                    "modules_checked": report.modules_checked,
                    "findings": [f.as_dict() for f in report.findings],
                    "notes": report.notes,
                },
                indent=2,
            )
        )
    else:
        print(f"{args.path}: {report.modules_checked} linear/expert weights checked against {report.rules.label}")
        for note in report.notes:
            print(f"note: {note}")
        for f in report.findings:
            print(
                f"\n{f.role} {f.module}  (engine: {f.engine_module})\n  stored:   {f.stored}\n  expected: "
                f"{f.expected}\n"
                f"  problem:  {f.problem}\n  fix:      {f.fix}"
            )
        print(
            f"\n{len(report.findings)} problem(s)"
            if report.findings
            else "clean: the engine builds every weight as stored"
        )
    return EXIT_PROBLEMS if report.findings else EXIT_CLEAN


def cmd_fix(args) -> int:
    from wafer_sglang.checkpoint import fix
    from wafer_sglang.checkpoint.store import UnusableCheckpoint

    try:
        report = _report(args)
    except UnusableCheckpoint as exc:
        return _unusable(exc)
    edit = fix.plan_edit(args.path, report)
    unfixable = [f for f in report.findings if not f.exclude_entries and not f.needs_flag]
    if edit.added:
        print(edit.diff, end="")
    else:
        print("nothing to add to quantization_config.exclude")
    for flag in edit.flags:
        print(
            f"also needed on {report.rules.label}: serve with {flag} (its shared-expert fusion ignores the exclude "
            "list)"
        )
    for f in unfixable:
        print(f"not fixable by exclude entries: {f.module}: {f.problem} -> {f.fix}")
    if edit.added and args.write:
        backup = fix.write(edit)
        print(f"wrote {edit.config_file} (backup: {backup.name})")
    elif edit.added:
        print("dry run: pass --write to apply")
    return EXIT_PROBLEMS if unfixable or (edit.added and not args.write) else EXIT_CLEAN
