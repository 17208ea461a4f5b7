"""``wafer-sglang patches …`` and ``wafer-sglang build``: the patch-queue commands."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from wafer_sglang.cli.options import out_dir, path_arg, release_version
from wafer_sglang.repo import build_dir, find_repo_root
from wafer_sglang.textfmt import table

# Only argparse wiring at module level: `wafer-sglang info` must run in a --no-deps install.


def add_parsers(sub: argparse._SubParsersAction) -> None:
    patches = sub.add_parser(
        "patches", help="the patch queue: fetch, apply, export, lint, check-upstream, rebase, backport, pin, status"
    )
    psub = patches.add_subparsers(dest="patches_cmd", required=True, metavar="COMMAND")

    p = psub.add_parser("fetch", help="download and sha256-verify a base's pinned wheel(s) into the cache")
    _base(p)
    p.add_argument("--python", action="append", help="3.11, 3.12, ... (repeatable; default: this interpreter)")
    p.add_argument("--all-pythons", action="store_true", help="every pinned CPython tag")
    p.add_argument("--refresh", action="store_true", help="delete the cached file and download again")
    p.set_defaults(func=cmd_fetch)

    p = psub.add_parser("apply", help="unpack the verified base into a git work tree and apply the series strictly")
    _base(p)
    _python(p)
    p.add_argument(
        "--work-dir",
        required=True,
        type=path_arg,
        help="where to make the work tree: a git repo of the base wheel, one commit per patch",
    )
    p.add_argument("--force", action="store_true", help="replace an existing work dir made by this tool")
    p.set_defaults(func=cmd_apply)

    p = psub.add_parser("export", help="regenerate patch files + series from a work tree")
    p.add_argument(
        "--base", type=release_version, help="must match the base the work tree was made from (default: that base)"
    )
    p.add_argument("--work-dir", required=True, type=path_arg, help="the git work tree (made by `patches apply`)")
    p.add_argument("--check", action="store_true", help="write nothing; exit 1 and list what would change")
    p.set_defaults(func=cmd_export)

    p = psub.add_parser("lint", help="series <-> files, headers and trailers, whitespace, overlay collisions")
    p.add_argument("--base", type=release_version, help="one base (default: all)")
    _python(p)
    p.set_defaults(func=cmd_lint)

    p = psub.add_parser(
        "check-upstream", help="per patch: still applies / already upstream / conflicts against release V"
    )
    _base(p)
    _python(p)
    p.add_argument("--against", required=True, type=release_version, metavar="V", help="a pinned sglang release")
    p.add_argument("--json", action="store_true", help="as JSON")
    p.set_defaults(func=cmd_check_upstream)

    p = psub.add_parser("rebase", help="move a base's queue onto release V in a work tree (then export --base V)")
    _base(p)
    _python(p)
    p.add_argument("--to", required=True, type=release_version, metavar="V", help="a release pinned with role = base")
    p.add_argument("--work-dir", required=True, type=path_arg, help="the git work tree (made by `patches apply`)")
    p.add_argument("--force", action="store_true", help="replace an existing work dir made by this tool")
    p.set_defaults(func=cmd_rebase)

    p = psub.add_parser(
        "backport",
        help="an upstream PR, patch file or commit as a new patch of a base's queue (strict, with trailers)",
        description=(
            "Apply an upstream change to a base's work tree strictly (no fuzz, no 3-way; every rejected "
            "hunk named, nothing written), commit it with Upstream-Status/Origin/Applied-Upstream/"
            "Last-Update filled in (Applied-Upstream: the first pinned release after the base that "
            "contains it) and export the queue. Only python/sglang/ is in the wheel: other paths are "
            "left out and named. A change the base already has is said and nothing is added."
        ),
    )
    _base(p)
    source = p.add_mutually_exclusive_group(required=True)
    source.add_argument("--pr", metavar="N|URL", help="an sglang PR: downloads its .patch from GitHub")
    source.add_argument(
        "--patch", type=path_arg, metavar="FILE", help="a .patch (format-patch, one or more commits) or .diff"
    )
    source.add_argument("--commit", metavar="REV", help="a commit of the sglang clone given with --repo")
    p.add_argument("--repo", type=path_arg, help="a local sglang clone (with --commit)")
    p.add_argument(
        "--url", help="the PR or commit URL for the trailers (default: the PR, the commit, or '(#N)' in its title)"
    )
    p.add_argument("--work-dir", required=True, type=path_arg, help="the base's work tree (made by `patches apply`)")
    p.add_argument("--after", metavar="PATCH", help="the patch file it goes after (default: the queue's last)")
    p.add_argument("--subject", help="the patch's subject (default: 'backport: ' and upstream's title)")
    p.add_argument("--no-export", action="store_true", help="commit in the work tree only; export later")
    p.set_defaults(func=cmd_backport)

    p = psub.add_parser("pin", help="record a release's wheel names and sha256 from PyPI in patches/bases.toml")
    p.add_argument("version", type=release_version, help="the sglang release to pin, e.g. 0.5.24")
    p.add_argument("--role", choices=("reference", "base"), default="reference", help="what the release is to the fork")
    p.set_defaults(func=cmd_pin)

    p = psub.add_parser("status", help="each base's patches with Upstream-Status (no network)")
    p.add_argument("--base", type=release_version, help="one base (default: all)")
    p.add_argument("--json", action="store_true", help="as JSON")
    p.set_defaults(func=cmd_status)

    p = sub.add_parser("build", help="build the wafer-sglang-rocm wheel for a base and CPython tag")
    _base(p)
    _python(p)
    p.add_argument(
        "-o", "--out", "--out-dir", dest="out_dir", type=out_dir, help="where the wheel goes (default: build/dist)"
    )
    p.add_argument(
        "--rebuild", action="store_true", help="build even when the wheel there was built from the same inputs"
    )
    p.add_argument(
        "--tools",
        action="store_true",
        help="build the tools-only wheel, wafer-sglang (py3-none-any: no sglang, no torch) for client machines",
    )
    p.set_defaults(func=cmd_build)


def _base(p: argparse.ArgumentParser) -> None:
    p.add_argument("--base", type=release_version, help="supported base (default: patches/bases.toml default-base)")


def _python(p: argparse.ArgumentParser) -> None:
    p.add_argument("--python", help="CPython version of the base wheel, e.g. 3.12 (default: this interpreter)")


def _queue(args):
    from wafer_sglang.queue.apply import Queue

    return Queue.open(find_repo_root(), args.base)


def python_tag(spec: str | None) -> str:
    from wafer_sglang.bases import python_tag as parse

    return parse(spec)


def _bases(root: Path, one: str | None) -> list[str]:
    from wafer_sglang import bases

    return [one] if one else bases.pins(root).bases


def cmd_fetch(args) -> int:
    queue = _queue(args)
    tags = sorted(queue.base.wheels) if args.all_pythons else [python_tag(p) for p in (args.python or [None])]
    for tag in tags:
        path = queue.fetch(tag, refresh=args.refresh)
        print(f"verified {path}")
    return 0


def cmd_apply(args) -> int:
    queue = _queue(args)
    applied = queue.apply(python_tag(args.python), args.work_dir, force=args.force)
    print(f"sglang {queue.base.version}: applied {len(applied)} patches in {args.work_dir}")
    for a in applied:
        print(f"  {a.commit[:12]}  {a.name}")
    return 0


def cmd_export(args) -> int:
    from wafer_sglang.queue.apply import Queue
    from wafer_sglang.queue.export import plan_export, work_tree_base, write_export

    queue = Queue.open(find_repo_root(), args.base or work_tree_base(args.work_dir))
    plan = plan_export(queue, args.work_dir)
    changes = plan.changes(queue.patch_dir)
    if args.check:
        if changes:
            print(f"patches/{queue.base.version} is out of date with {args.work_dir}:")
            print("\n".join(changes))
            return 1
        print(f"patches/{queue.base.version}: up to date ({len(plan.files) - 1} patches)")
        return 0
    write_export(queue, plan)
    print(f"patches/{queue.base.version}: {len(changes)} file(s) updated, {len(plan.files) - 1} patches")
    return 0


def cmd_lint(args) -> int:
    from wafer_sglang.queue.apply import Queue
    from wafer_sglang.queue.lint import lint_queue

    root = find_repo_root()
    bases = _bases(root, args.base)
    findings = []
    for base in bases:
        findings += lint_queue(Queue.open(root, base), python_tag(args.python))
    for f in findings:
        print(f)
    print(f"lint: {len(findings)} problem(s) in {', '.join(bases)}", file=sys.stderr)
    return 1 if findings else 0


def cmd_check_upstream(args) -> int:
    from wafer_sglang.queue.upstream import check_against

    queue = _queue(args)
    verdicts = check_against(queue, args.against, python_tag(args.python))
    if args.json:
        print(
            json.dumps(
                {"base": queue.base.version, "against": args.against, "patches": [v.as_dict() for v in verdicts]},
                indent=2,
            )
        )
    else:
        print(f"patches of {queue.base.version} against sglang {args.against}:")
        print(table(["patch", "status", "detail"], [[v.patch, v.status, v.detail] for v in verdicts]))
    return 0


def cmd_rebase(args) -> int:
    from wafer_sglang.queue.upstream import existing_queue, rebase

    queue = _queue(args)
    verdicts = rebase(queue, args.to, python_tag(args.python), args.work_dir, force=args.force)
    replaced = existing_queue(queue.root, args.to)
    if replaced:
        print(
            f"warning: patches/{args.to} already holds {len(replaced)} patch(es); the export below replaces that "
            "queue with this rebase (files it does not produce are removed): " + ", ".join(replaced),
            file=sys.stderr,
        )
    print(table(["patch", "status", "detail"], [[v.patch, v.status, v.detail] for v in verdicts]))
    kept = sum(v.status == "applies" for v in verdicts)
    conflicts = [v.patch for v in verdicts if v.status == "conflicts"]
    print(
        f"\n{kept} patch(es) carried to {args.to} in {args.work_dir}; dropped: "
        f"{sum(v.status in ('already-upstream', 'upstream-per-trailer') for v in verdicts)}"
    )
    if conflicts:
        print("port by hand (commit each in the work dir), then export:\n  " + "\n  ".join(conflicts))
    print(f"next: wafer-sglang patches export --base {args.to} --work-dir {args.work_dir}")
    return 1 if conflicts else 0


def cmd_backport(args) -> int:
    from wafer_sglang.errors import WaferError
    from wafer_sglang.queue import backport as bp
    from wafer_sglang.queue.export import plan_export, write_export

    if args.commit is not None and not args.repo:
        raise WaferError("--commit needs --repo, the sglang clone it is in")
    if args.pr is not None:  # an empty --pr "$N" is said, not taken for no --pr
        change = bp.from_pr(args.pr)
    elif args.patch is not None:
        change = bp.from_file(args.patch, args.url)
    else:
        change = bp.from_commit(args.repo, args.commit, args.url)
    queue = _queue(args)
    outcome = bp.backport(queue, args.work_dir, change, after=args.after, subject=args.subject)
    if outcome.left_out:
        print("left out (not in the wheel): " + ", ".join(outcome.left_out))
    if outcome.status == "already-in-base":
        print(f"{change.url} is already in sglang {queue.base.version} plus its queue: nothing added")
        return 0
    landed = f"Applied-Upstream {outcome.applied_upstream}" if outcome.applied_upstream else "in no pinned release yet"
    print(f"committed {outcome.commit[:12]} {outcome.subject} ({landed})")
    if args.no_export:
        print(f"next: wafer-sglang patches export --base {queue.base.version} --work-dir {args.work_dir}")
        return 0
    plan = plan_export(queue, args.work_dir)
    added = sorted(name for name in plan.files if not (queue.patch_dir / name).exists())
    write_export(queue, plan)
    print(f"patches/{queue.base.version}: added {', '.join(added)}; series updated")
    return 0


def cmd_pin(args) -> int:
    from wafer_sglang.bases.record import record_pin
    from wafer_sglang.queue.index import release_wheels

    root = find_repo_root()
    wheels, released = release_wheels(args.version)
    changed = record_pin(root, args.version, args.role, wheels, released)
    print(f"sglang {args.version}: {'pinned' if changed else 'already pinned'} ({', '.join(sorted(wheels))})")
    return 0


def cmd_status(args) -> int:
    from wafer_sglang.queue.apply import Queue
    from wafer_sglang.queue.headers import read_header

    root = find_repo_root()
    bases = _bases(root, args.base)
    report = {}
    for base in bases:
        queue = Queue.open(root, base)
        rows = []
        for entry in queue.series().entries:
            header = read_header(queue.patch_dir / entry.name)
            rows.append(
                {
                    "patch": entry.name,
                    "subject": header.subject,
                    "upstream_status": header.upstream_status,
                    "applied_upstream": header.get("Applied-Upstream") or "",
                }
            )
        report[base] = rows
    if args.json:
        print(json.dumps(report, indent=2))
        return 0
    for base, rows in report.items():
        print(f"sglang {base}: {len(rows)} patch(es)")
        if rows:
            print(
                table(
                    ["patch", "Upstream-Status", "Applied-Upstream"],
                    [[r["patch"], r["upstream_status"], r["applied_upstream"] or "-"] for r in rows],
                )
            )
        print()
    return 0


def cmd_build(args) -> int:
    from wafer_sglang.wheels.wheel import build, build_if_changed

    root = find_repo_root()
    out_dir = args.out_dir or build_dir(root) / "dist"
    if args.tools:
        from wafer_sglang.wheels.tools_wheel import build_tools

        print(build_tools(root, out_dir))
        return 0
    if args.rebuild:
        path = build(root, args.base, python_tag(args.python), out_dir)
    else:
        path, built = build_if_changed(root, args.base, python_tag(args.python), out_dir)
        if not built:
            print(f"up to date (its inputs are unchanged; --rebuild builds it anyway): {path}", file=sys.stderr)
    print(path)
    return 0
