"""``wafer-sglang image build|resolve|setup``: wafer/sglang:mi355x (docker/build calls these)."""

from __future__ import annotations

import argparse
import shlex

from wafer_sglang.cli.options import path_arg, release_version


def add_parsers(sub: argparse._SubParsersAction) -> None:
    image = sub.add_parser("image", help="the wafer/sglang:mi355x image: build on a release machine (docker/build)")
    isub = image.add_subparsers(dest="image_cmd", required=True, metavar="COMMAND")
    p = isub.add_parser("build", help="build and tag the image from the pinned upstream ROCm image")
    p.add_argument("--base", type=release_version, help="sglang base (default: the default base)")
    p.add_argument("--engine", choices=("docker", "buildah"), default="docker", help="the image builder to run")
    p.add_argument("--wheel", type=path_arg, help="the fork wheel (default: build/dist/, built if missing)")
    p.add_argument(
        "--aiter-src",
        type=path_arg,
        metavar="CLONE",
        help="a clone of ROCm/aiter: make the fork's fMoE rows for the image first (wafer-sglang moe rows)",
    )
    p.add_argument(
        "--print", dest="print_only", action="store_true", help="show the plan and the command; build nothing"
    )
    p.add_argument(
        "--push", action="store_true", help="push the tags with provenance and SBOM attestations (release workflow)"
    )
    p.set_defaults(func=cmd_build)
    p = isub.add_parser("resolve", help="record an upstream image's digest and contents in docker/base-images.toml")
    p.add_argument("base", help="the sglang base whose upstream image this is")
    p.add_argument("tag", help="a tag of the base's upstream repository, e.g. v0.5.23-rocm724-mi35x")
    p.set_defaults(func=cmd_resolve)
    p = isub.add_parser(
        "setup", help="inside the image build: constraints, missing requirements, fMoE check, versions manifest"
    )
    p.add_argument(
        "--constraints", type=path_arg, required=True, help="write the pip constraints of the image's ROCm stack here"
    )
    p.add_argument(
        "--manifest", type=path_arg, required=True, help="write what the setup found and changed here (JSON)"
    )
    p.add_argument("--fork-fmoe", type=path_arg, required=True, help="the fork's tuned fMoE CSVs in the image")
    p.add_argument("--build-arg", action="append", default=[], metavar="KEY=VALUE", help="recorded in the manifest")
    p.set_defaults(func=cmd_setup)


def cmd_build(args) -> int:
    from wafer_sglang.image import builder as image
    from wafer_sglang.repo import find_repo_root

    root = find_repo_root()
    plan = image.prepare(
        root,
        args.base,
        wheel=args.wheel,
        aiter_src=args.aiter_src,
        engine=args.engine,
        push=args.push,
        build=not args.print_only,
    )
    print(f"base image:  {plan.image.reference}")
    print(f"             Python {plan.image.python}, sglang {plan.image.sglang}")
    print(f"fork wheel:  {plan.wheel}")
    print(f"tools wheel: {plan.tools_wheel}")
    print(f"tags:        {', '.join(plan.tags)}")
    print(f"context:     {plan.context} (wheels/, fmoe/, image/, Dockerfile.mi355x)")
    print(shlex.join(plan.command))
    if args.print_only:
        return 0
    if args.aiter_src:
        from wafer_sglang.moe.fork_rows import refresh

        done = refresh(root, plan.image.base, args.aiter_src)
        print(f"fork rows:   {done.paths[0]} ({len(done.rows.rows)} rows for {done.label}, rebuilt from --aiter-src)")
    image.assemble_context(root, plan)
    image.run(plan.command)
    return 0


def cmd_resolve(args) -> int:
    import json

    from wafer_sglang.image.builder import PIN_FILE, resolve
    from wafer_sglang.repo import find_repo_root

    recorded = resolve(find_repo_root(), args.base, args.tag)
    print(json.dumps(recorded, indent=2))
    print(f"recorded in {PIN_FILE}: review and commit it")
    return 0


def cmd_setup(args) -> int:
    from wafer_sglang.errors import WaferError
    from wafer_sglang.image.setup_step import setup

    build = {}
    for item in args.build_arg:
        key, sep, value = item.partition("=")
        if not sep:
            raise WaferError(f"--build-arg expects KEY=VALUE, got {item!r}")
        build[key] = value
    versions = setup(args.constraints, args.manifest, args.fork_fmoe, build)
    print(f"wrote {args.constraints} ({len(versions['rocm_stack'])} pinned) and {args.manifest}")
    return 0
