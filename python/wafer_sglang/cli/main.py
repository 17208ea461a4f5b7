"""``wafer-sglang``: the fork's command line. ``main(argv)`` is what tests call."""

from __future__ import annotations

import argparse
import sys

from wafer_sglang import __version__
from wafer_sglang.errors import WaferError


def parser() -> argparse.ArgumentParser:
    from wafer_sglang.cli import bench as cli_bench
    from wafer_sglang.cli import checkpoint as cli_checkpoint
    from wafer_sglang.cli import doctor as cli_doctor
    from wafer_sglang.cli import eval as cli_eval
    from wafer_sglang.cli import image as cli_image
    from wafer_sglang.cli import jit as cli_jit
    from wafer_sglang.cli import moe as cli_moe
    from wafer_sglang.cli import patches as cli_patches
    from wafer_sglang.cli import serve as cli_serve

    p = argparse.ArgumentParser(
        prog="wafer-sglang",
        description="wafer-sglang-rocm: SGLang for AMD Instinct MI355X — patch queue, builds and operator tools.",
    )
    p.add_argument("--version", action="version", version=f"wafer-sglang {__version__}")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")
    info = sub.add_parser("info", help="the installed fork: base version and patches")
    info.add_argument("--json", action="store_true")
    info.set_defaults(func=cmd_info)
    cli_patches.add_parsers(sub)
    cli_jit.add_parsers(sub)
    cli_checkpoint.add_parsers(sub)
    cli_serve.add_parsers(sub)
    cli_moe.add_parsers(sub)
    cli_doctor.add_parsers(sub)
    cli_bench.add_parsers(sub)
    cli_eval.add_parsers(sub)
    cli_image.add_parsers(sub)
    rocm = sub.add_parser(
        "rocm-constraints",
        help="pip constraints pinning this host's ROCm stack (torch, triton, aiter, sgl-kernel) for installing the fork",
    )
    rocm.set_defaults(func=cmd_rocm_constraints)
    return p


def cmd_rocm_constraints(args) -> int:
    from wafer_sglang.host.rocm_env import constraints, installed_stack

    print(constraints(installed_stack()), end="")
    return 0


def cmd_info(args) -> int:
    import json

    from wafer_sglang.build.manifest import format_info, installed_manifest

    manifest = installed_manifest()
    print(json.dumps(manifest, indent=2) if args.json else format_info(manifest))
    return 0


def main(argv: list[str] | None = None) -> int:
    p = parser()
    args, extra = p.parse_known_args(argv)
    if extra and not getattr(args, "accepts_extra", False):
        p.error(f"unrecognized arguments: {' '.join(extra)}")
    args.extra = extra
    try:
        return args.func(args)
    except WaferError as exc:
        print(f"wafer-sglang: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("wafer-sglang: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
