"""``wafer-sglang release`` (everything up to the upload) and ``canary`` (the weekly upstream check)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from wafer_sglang.cli.options import emit, out_dir, path_arg, release_version

RELEASE_EPILOG = """\
Refuses a dirty tree, a HEAD without a v* tag, and a base whose wheel changed since the previous
tag without a new respin. Writes <out>/<tag>/: the wheels, one CycloneDX SBOM per wheel
(*.cdx.json), SHA256SUMS (sha256sum -c), RELEASE_NOTES.md (patches added / changed / dropped per
base since the previous tag) and release.json. Each wheel is built twice and compared byte for
byte, validated (packaging, twine check --strict) and installed --no-deps into a fresh venv of its
Python, where `wafer-sglang info` must list every patch. The upload is the release workflow's."""


def add_parsers(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "release",
        help="build and check every wheel of a tagged commit, with sums, notes and SBOMs",
        epilog=RELEASE_EPILOG,
    )
    p.add_argument("--out", type=out_dir, default=Path("build/release"), help="the release folder goes in here")
    p.add_argument(
        "--base",
        action="append",
        type=release_version,
        default=[],
        help="only this base (repeatable; default: every base)",
    )
    p.add_argument("--python", action="append", default=[], help="only this Python, e.g. 3.11 (repeatable)")
    p.set_defaults(func=cmd_release)
    p = sub.add_parser("canary", help="every base's queue against an upstream release: the weekly tracking table")
    which = p.add_mutually_exclusive_group(required=True)
    which.add_argument("--against", type=release_version, metavar="VERSION", help="a pinned upstream release")
    which.add_argument(
        "--latest",
        action="store_true",
        help="the newest sglang on the index, pinned first as a reference (patches pin)",
    )
    p.add_argument("--out", type=path_arg, help="write the markdown table here (default: print it)")
    p.add_argument("--json", action="store_true", help="the verdicts as JSON")
    p.set_defaults(func=cmd_canary)


def cmd_release(args) -> int:
    from wafer_sglang.release.run import Options, release
    from wafer_sglang.repo import find_repo_root

    root = find_repo_root()
    out = args.out if args.out.is_absolute() else root / args.out
    folder = release(Options(root, out, args.base, args.python))
    print(f"release ready in {folder}: " + ", ".join(sorted(p.name for p in folder.iterdir())))
    return 0


def cmd_canary(args) -> int:
    from wafer_sglang import bases
    from wafer_sglang.bases.record import record_pin
    from wafer_sglang.release import canary
    from wafer_sglang.repo import find_repo_root

    root = find_repo_root()
    version = args.against
    if args.latest:
        from wafer_sglang.queue.index import latest_release, release_wheels

        version = latest_release()
        if version not in bases.pins(root).upstream:
            record_pin(root, version, "reference", *release_wheels(version))
            print(f"pinned sglang {version} as a reference in patches/bases.toml", file=sys.stderr)
    results = canary.check_all(root, version)
    if args.json:
        print(
            json.dumps(
                {"against": version, "bases": {b: [v.as_dict() for v in vs] for b, vs in results.items()}}, indent=2
            )
        )
        return 0
    emit(canary.render(version, bases.pins(root).get(version).released, results), args.out)
    return 0
