"""``wafer-sglang serve``: launch a named recipe, after checking the checkpoint."""

from __future__ import annotations

import argparse
import os
import shlex
import sys
from pathlib import Path

from wafer_sglang.cli.options import release_version


def add_parsers(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "serve",
        allow_abbrev=False,  # every unknown flag belongs to sglang
        help="launch sglang with a named recipe (extra args are sglang flags and override the recipe)",
        description="Expand a recipe to the exact launch command, check the checkpoint, then run it. "
        "Any flag not listed here is an sglang server flag and overrides the recipe's value.",
    )
    p.add_argument("--recipe", help="NAME or NAME@VERSION (see --list)")
    p.add_argument("--model", help="checkpoint folder (or a hub id, which skips the checkpoint check)")
    p.add_argument(
        "--base", type=release_version, help="sglang base whose flags apply (default: the installed fork's base)"
    )
    p.add_argument("--dry-run", action="store_true", help="print the environment and command, run nothing")
    p.add_argument("--ignore-check", action="store_true", help="start even if `checkpoint check` finds problems")
    p.add_argument("--force", dest="ignore_check", action="store_true", help=argparse.SUPPRESS)  # the old name
    p.add_argument(
        "--no-router", action="store_true", help="no sglang-router: in-server DP balancing (not cache-aware)"
    )
    p.add_argument("--list", action="store_true", help="the recipes, one line each")
    p.epilog = (
        "WAFER_API_KEY (environment) becomes sglang's --api-key unless one is given; it is never printed "
        "(the command shows ***). An empty or blank key is refused: sglang would serve without authentication."
    )
    p.set_defaults(func=cmd_serve, accepts_extra=True)


def cmd_serve(args) -> int:
    from wafer_sglang.bases import default_base
    from wafer_sglang.errors import WaferError
    from wafer_sglang.serve import recipes
    from wafer_sglang.serve.router import colauncher

    if args.list:
        for recipe in recipes.load_recipes().values():
            print(f"{recipe.name}@{recipe.version}  {recipe.purpose}")
        return 0
    if not args.recipe or not args.model:
        raise WaferError("serve needs --recipe NAME and --model PATH (or --list)")
    base = args.base or default_base()
    if recipes.looks_like_a_path(args.model) and not Path(args.model).expanduser().is_dir():
        raise WaferError(f"--model {args.model}: no such folder (a hub id looks like org/name); check the path")
    env_key = os.environ.get("WAFER_API_KEY")
    if env_key and not env_key.strip():
        raise WaferError("WAFER_API_KEY is only whitespace: no client could authenticate; set a real key or unset it")
    recipe = recipes.select(args.recipe)
    expansion = recipes.expand(
        recipe, args.model, base, args.extra, router=not args.no_router, api_key=os.environ.get("WAFER_API_KEY") or None
    )
    problems = _checkpoint_problems(Path(args.model), base, expansion)
    env = {k: v for k, v in expansion.env.items() if k not in os.environ}
    print(f"# recipe {recipe.name}@{recipe.version} on sglang {base}: {recipe.purpose}")
    for note in expansion.notes:
        print(f"# note: {note}")
    for line in problems:
        print(f"# checkpoint: {line}")
    for key, value in env.items():
        print(f"export {key}={shlex.quote(value)}")
    print(shlex.join(recipes.redacted(expansion.argv)))
    if problems and not args.ignore_check:
        print(
            "refusing to start: `wafer-sglang checkpoint check` found problems (fix them, or pass --ignore-check)",
            file=sys.stderr,
        )
        return 1
    if args.dry_run:
        return 0
    router = colauncher()
    if expansion.argv[2] == f"{router.module}.launch_server":
        import importlib.util

        if importlib.util.find_spec(router.module) is None:
            raise WaferError(
                f"this recipe co-launches {router.package} (cache-aware DP routing): pip install {router.pin}, or "
                "pass --no-router"
            )
    os.execvpe(expansion.argv[0], expansion.argv, {**os.environ, **env})
    return 0  # not reached


def _checkpoint_problems(model: Path, base: str, expansion) -> list[str]:
    """`checkpoint check` findings for a local checkpoint, judged with the final flags."""
    model = model.expanduser()
    if not model.is_dir():
        expansion.notes.append(f"{model} is not a local folder: the checkpoint check is skipped")
        return []
    from wafer_sglang.checkpoint import plan, rules, store

    architecture = (store.load_config(model).get("architectures") or ["?"])[0]
    if architecture not in rules.SUPPORTED_ARCHITECTURES:
        # the rules are GLM-5 / DeepSeek-V3 MTP exclude rules: any other model has nothing to check
        expansion.notes.append(
            f"{architecture}: the checkpoint check covers only {', '.join(rules.SUPPORTED_ARCHITECTURES)}"
        )
        return []
    fusion_off = any(flag.option == "--disable-shared-experts-fusion" for flag in expansion.server_args)
    report = plan.check(store.load(model), plan.Options(base=base, disable_shared_experts_fusion=fusion_off))
    return [f"{f.role} {f.module}: {f.problem} -> {f.fix}" for f in report.findings]
