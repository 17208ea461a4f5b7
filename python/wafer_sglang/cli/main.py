"""``wafer-sglang``: the fork's command line. ``main(argv)`` is what tests call."""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
import traceback

from wafer_sglang.cli import conventions
from wafer_sglang.errors import WaferError

# Older spellings, still accepted: `eval --baseline ...` is `eval run`, `eval-prepare` is `eval prepare`.
RENAMED = {"eval-prepare": ["eval", "prepare"]}


def parser() -> argparse.ArgumentParser:
    from wafer_sglang.cli import bench as cli_bench
    from wafer_sglang.cli import checkpoint as cli_checkpoint
    from wafer_sglang.cli import cluster as cli_cluster
    from wafer_sglang.cli import doctor as cli_doctor
    from wafer_sglang.cli import eval as cli_eval
    from wafer_sglang.cli import image as cli_image
    from wafer_sglang.cli import jit as cli_jit
    from wafer_sglang.cli import kernels as cli_kernels
    from wafer_sglang.cli import moe as cli_moe
    from wafer_sglang.cli import patches as cli_patches
    from wafer_sglang.cli import release as cli_release
    from wafer_sglang.cli import serve as cli_serve

    p = argparse.ArgumentParser(
        prog="wafer-sglang",
        description="wafer-sglang-rocm: SGLang for AMD Instinct MI355X — patch queue, builds and operator tools.",
        epilog="Start with `wafer-sglang doctor` on the serving host, then `serve --recipe`.",
    )
    p.add_argument("--debug", action="store_true", help="show the traceback of an error")
    p.add_argument("--version", action=conventions.VersionAction, help="the fork, its base and patches, the tooling")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")
    info = sub.add_parser("info", help="the installed fork: base version and patches")
    info.add_argument("--json", action="store_true", help="the whole manifest, as JSON")
    info.set_defaults(func=cmd_info)
    bases = sub.add_parser("bases", help="the supported bases and everything recorded about each")
    bases.add_argument("--json", action="store_true", help="every field, as JSON")
    bases.add_argument("--builds", action="store_true", help="'BASE PYTHON' per wheel `make` builds, one per line")
    bases.add_argument(
        "--kernel",
        nargs="?",
        const="",
        metavar="BASE",
        help="'BASE TAG VERSION ARCHS COMMIT' of the base's sgl-kernel recipe (default: the LTS; sgl-kernel/build.sh)",
    )
    bases.set_defaults(func=cmd_bases)
    completion = sub.add_parser("completion", help="print a shell completion script")
    completion.add_argument("shell", choices=("bash", "zsh", "tcsh"), help="the shell to complete in")
    completion.set_defaults(func=cmd_completion)
    cli_patches.add_parsers(sub)
    cli_jit.add_parsers(sub)
    cli_kernels.add_parsers(sub)
    cli_checkpoint.add_parsers(sub)
    cli_serve.add_parsers(sub)
    cli_cluster.add_parsers(sub)
    cli_moe.add_parsers(sub)
    cli_doctor.add_parsers(sub)
    cli_bench.add_parsers(sub)
    cli_eval.add_parsers(sub)
    cli_image.add_parsers(sub)
    cli_release.add_parsers(sub)
    rocm = sub.add_parser(
        "rocm-constraints",
        help="pip constraints pinning this host's ROCm stack (torch, triton, aiter, sgl-kernel) "
        "for installing the fork",
    )
    rocm.set_defaults(func=cmd_rocm_constraints)
    conventions.apply(p)
    return p


def cmd_bases(args) -> int:
    import json

    from wafer_sglang import bases
    from wafer_sglang.repo import find_repo_root

    if args.kernel is not None:
        k = bases.kernel_recipe(args.kernel or None)
        print(k.base, k.tag, k.version, ",".join(k.archs), k.commit or "-")
        return 0
    if args.builds:
        for base, python in bases.builds():
            print(base, python)
        return 0
    try:
        root = find_repo_root()
    except WaferError:
        root = None  # an installed fork: no image records
    records = [bases.summary(root, version) for version in bases.supported()]
    if args.json:
        print(json.dumps(records, indent=2))
        return 0
    for r in records:
        image = (
            f"{r['image']['tag']} (aiter {r['image']['aiter']})" if r["image"] and r["image"]["tag"] else "not resolved"
        )
        print(
            f"sglang {r['version']}{' (LTS)' if r['lts'] else ''}: respin {r['respin']}, Python "
            f"{', '.join(r['pythons'])}, sgl-kernel {r['kernel'].get('version', '?')}, image {image}"
        )
    return 0


def cmd_completion(args) -> int:
    print(conventions.completion_script(parser(), args.shell), end="")
    return 0


def cmd_rocm_constraints(args) -> int:
    from wafer_sglang.host.rocm_env import constraints, installed_stack

    print(constraints(installed_stack()), end="")
    return 0


def cmd_info(args) -> int:
    import json

    from wafer_sglang.manifest import format_info, installed_manifest

    manifest = installed_manifest()
    print(json.dumps(manifest, indent=2) if args.json else format_info(manifest))
    return 0


class Terminated(BaseException):
    """SIGTERM: unwinds like Ctrl-C, so every cleanup (temp trees, partial files) runs."""


def _terminate(signum, frame) -> None:
    raise Terminated


def normalize(argv: list[str]) -> list[str]:
    """The older spellings as today's."""
    if argv and argv[0] in RENAMED:
        return RENAMED[argv[0]] + argv[1:]
    if argv[:1] == ["eval"] and len(argv) > 1 and argv[1].startswith("--") and argv[1] not in ("--help",):
        return ["eval", "run", *argv[1:]]
    return argv


def main(argv: list[str] | None = None) -> int:
    p, args = parser(), None
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _terminate)
    try:  # parsing too: an argument type that reads the file system can fail
        args, extra = p.parse_known_args(normalize(list(sys.argv[1:] if argv is None else argv)))
        if extra and not getattr(args, "accepts_extra", False):
            p.error(f"unrecognized arguments: {' '.join(extra)}")
        args.extra = extra
        return args.func(args)
    except WaferError as exc:
        return _fail(f"wafer-sglang: error: {exc}", exc.exit_code, args)
    except KeyboardInterrupt:
        return _fail("wafer-sglang: interrupted", 130, args)
    except Terminated:
        return _fail("wafer-sglang: terminated", 143, args)
    except BrokenPipeError:
        _quiet_stdout()
        return 141
    except OSError as exc:  # a file-system error no command anticipated: still one line, naming the file
        where = f": {exc.filename}" if exc.filename else ""
        return _fail(f"wafer-sglang: error: {exc.strerror or exc}{where}", 2, args)
    except Exception as exc:
        return _fail(
            f"wafer-sglang: internal error: {type(exc).__name__}: {exc} (rerun with --debug for the "
            "traceback, and report it)",
            3,
            args,
        )


def _fail(message: str, code: int, args) -> int:
    if getattr(args, "debug", False):
        traceback.print_exc()
    try:
        print(message, file=sys.stderr)
    except BrokenPipeError:
        pass
    return code


def _quiet_stdout() -> None:
    """The reader went away (| head): say nothing more, and let Python's exit flush nowhere."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):
        pass


if __name__ == "__main__":
    sys.exit(main())
