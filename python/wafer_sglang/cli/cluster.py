"""``wafer-sglang cluster plan|k8s|topologies``: past one node, on sglang-router."""

from __future__ import annotations

import argparse
import json
import sys

from wafer_sglang.cli.options import out_dir, positive_int, release_version

EPILOG = """\
Flags after the options are sglang flags for every worker (e.g. --disaggregation-ib-device rdma0).
The API key is never written: commands and manifests refer to $WAFER_API_KEY (set it on every
node, or create the Secret: kubectl create secret generic wafer-api-key --from-literal=key=...).
Workers bind their node's address (use private ones); the router is the only public endpoint."""


def _nodes(text: str) -> list[str]:
    return [n.strip() for n in text.split(",") if n.strip()]  # checked by the plan (serve/names.py)


def _pinned_image(text: str) -> str:
    name, _, digest = text.partition("@")
    if not (name and digest.startswith("sha256:") and len(digest) == 71):
        raise argparse.ArgumentTypeError(
            f"{text!r} is not pinned by digest; pass REPO:TAG@sha256:<64 hex> "
            "(docker buildx imagetools inspect REPO:TAG prints it)"
        )
    return text


def add_parsers(sub: argparse._SubParsersAction) -> None:
    cluster = sub.add_parser(
        "cluster", help="multi-node serving on sglang-router: per-node commands, Kubernetes manifests"
    )
    csub = cluster.add_subparsers(dest="cluster_cmd", required=True, metavar="COMMAND")
    p = csub.add_parser("topologies", help="the topologies, one line each")
    p.set_defaults(func=cmd_topologies)
    for name, helptext in (
        ("plan", "the worker command for each node and the one router command"),
        ("k8s", "Kubernetes manifests (router Deployment + Service, worker StatefulSet / LeaderWorkerSet)"),
    ):
        p = csub.add_parser(name, help=helptext, epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
        p.add_argument("--topology", required=True, help="dp | pd | tp (cluster topologies)")
        p.add_argument("--model", required=True, help="checkpoint path on every node (or in the model volume)")
        p.add_argument(
            "--base", type=release_version, help="sglang base whose flags apply (default: the installed fork's base)"
        )
        p.add_argument("--no-api-key", action="store_true", help="serve without an API key (not recommended)")
        p.add_argument("--out", type=out_dir, help="write the files into this folder (default: print)")
        if name == "plan":
            p.add_argument("--nodes", type=_nodes, default=[], help="node addresses, comma-separated (dp, tp)")
            p.add_argument("--prefill-nodes", type=_nodes, default=[], help="pd: prefill node addresses")
            p.add_argument("--decode-nodes", type=_nodes, default=[], help="pd: decode node addresses")
            p.add_argument("--router-node", help="where the router runs (default: the first node)")
            p.add_argument("--json", action="store_true", help="the plan as JSON")
            p.set_defaults(func=cmd_plan, accepts_extra=True)
        else:
            p.add_argument(
                "--name",
                default="glm5",
                help="resource name prefix (Kubernetes name rules; default %(default)s)",
            )
            p.add_argument(
                "--image",
                required=True,
                type=_pinned_image,
                help="the wafer/sglang image, pinned by digest (REPO:TAG@sha256:...)",
            )
            p.add_argument("--replicas", type=positive_int, default=2, help="worker replicas (default %(default)s)")
            p.add_argument("--namespace", default="default", help="Kubernetes namespace of every object")
            p.add_argument("--model-claim", default="models", help="PVC holding the model (default %(default)s)")
            p.add_argument(
                "--cache-size",
                default="100Gi",
                help="each worker's own compile-cache volume (StatefulSet claim template; default %(default)s)",
            )
            p.add_argument(
                "--cache-claim",
                default="wafer-compile-cache",
                help="multi-node TP only: a ReadWriteMany claim the LeaderWorkerSet's pods share, "
                "a folder per pod (default %(default)s)",
            )
            p.add_argument(
                "--no-validate",
                action="store_true",
                help="write the manifests without checking them against the Kubernetes schemas "
                "(the check needs the [k8s] extra)",
            )
            p.set_defaults(func=cmd_k8s, accepts_extra=True)


def _base(args) -> str:
    from wafer_sglang.bases import default_base

    return args.base or default_base()


def cmd_topologies(args) -> int:
    from wafer_sglang.serve.topologies import config

    for name, entry in config()["topology"].items():
        print(f"{name}: {entry['purpose']}")
    return 0


def cmd_plan(args) -> int:
    from wafer_sglang.fsutil import atomic_write_text
    from wafer_sglang.serve.cluster import load_topology, plan
    from wafer_sglang.serve.names import inside

    result = plan(
        load_topology(args.topology),
        args.model,
        _base(args),
        args.nodes,
        prefill_nodes=args.prefill_nodes,
        decode_nodes=args.decode_nodes,
        router_node=args.router_node,
        api_key=not args.no_api_key,
        extra=args.extra,
    )
    if args.json:
        print(
            json.dumps(
                {
                    "topology": result.topology.name,
                    "base": result.base,
                    "notes": result.notes,
                    "processes": [p.__dict__ for p in result.processes],
                },
                indent=2,
            )
        )
        return 0
    print(f"# {result.topology.name}: {result.topology.purpose} (sglang {result.base})")
    for note in result.notes:
        print(f"# note: {note}")
    for index, process in enumerate(result.processes):
        print(f"\n# on {process.node}: {process.role}" + (f" -> {process.url}" if process.url else ""))
        print(process.shell())
        if args.out:
            atomic_write_text(
                inside(args.out, f"{index:02d}-{process.role}-{process.node}.sh"),
                f"#!/usr/bin/env bash\n# {process.role} on {process.node}\n"
                f'set -euo pipefail\n: "${{WAFER_API_KEY:?set WAFER_API_KEY}}"\n{process.exec_line()}\n',
                mode=0o755,
            )
    if args.out:
        print(f"\nwrote one script per process to {args.out}", file=sys.stderr)
    return 0


def cmd_k8s(args) -> int:
    from wafer_sglang.errors import WaferError
    from wafer_sglang.fsutil import atomic_write_text
    from wafer_sglang.serve import k8s
    from wafer_sglang.serve.cluster import load_topology
    from wafer_sglang.serve.names import inside
    from wafer_sglang.serve.router import check_router_argv

    topology = load_topology(args.topology)
    base = _base(args)
    docs = k8s.manifests(
        topology,
        name=args.name,
        image=args.image,
        base=base,
        model_claim=args.model_claim,
        model_path=args.model,
        replicas=args.replicas,
        namespace=args.namespace,
        cache_claim=args.cache_claim,
        cache_size=args.cache_size,
        flags=args.extra,
    )
    check_router_argv(k8s.router_args_of(docs[-1]), base)
    errors = [] if args.no_validate else k8s.validate(docs)
    if errors:
        raise WaferError(
            "the manifests do not validate against Kubernetes " + k8s.KUBERNETES + ":\n  " + "\n  ".join(errors)
        )
    text = k8s.dump(docs)
    checked = "not validated (--no-validate)" if args.no_validate else f"valid for Kubernetes {k8s.KUBERNETES}"
    if args.no_validate:
        print("warning: the manifests were not checked against the Kubernetes schemas", file=sys.stderr)
    if args.out:
        path = inside(args.out, f"{args.name}-{topology.name}.yaml")
        atomic_write_text(path, text)
        print(f"wrote {path} ({len(docs)} objects, {checked})")
    else:
        print(text, end="")
    return 0
