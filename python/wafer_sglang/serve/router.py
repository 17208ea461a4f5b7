"""sglang-router commands checked by the router itself: the installed release must be the one
pinned for the base (data/topologies.toml), and its own argument parser must accept the flags."""

from __future__ import annotations

import contextlib
import importlib.metadata
import io

from wafer_sglang.errors import WaferError


def listen_args(ports: dict) -> list[str]:
    """The router serves clients on every address; its metrics stay on the node (127.0.0.1)."""
    return [
        "--host",
        "0.0.0.0",
        "--port",
        str(ports["router"]),
        "--prometheus-host",
        "127.0.0.1",
        "--prometheus-port",
        str(ports["router-metrics"]),
    ]


def pinned_version(base: str) -> str:
    from wafer_sglang.serve.cluster import config

    versions = config()["router-version"]
    if base not in versions:
        raise WaferError(f"no sglang-router pinned for base {base}: add it to data/topologies.toml [router-version]")
    return versions[base]


def check_router_argv(argv: list[str], base: str) -> None:
    """Parse ``argv`` (the router's arguments) with the installed router's real parser."""
    pinned = pinned_version(base)
    try:
        installed = importlib.metadata.version("sglang-router")
    except importlib.metadata.PackageNotFoundError:
        raise WaferError(
            f"sglang-router is not installed: pip install sglang-router=={pinned} (the release the "
            f"fork's {base} plans are checked with)"
        ) from None
    if installed != pinned:
        raise WaferError(
            f"sglang-router {installed} is installed; base {base}'s plans are checked with {pinned}: "
            f"pip install sglang-router=={pinned}"
        )
    from sglang_router.launch_router import parse_router_args

    errors = io.StringIO()
    try:
        with contextlib.redirect_stderr(errors):
            parse_router_args(list(argv))
    except SystemExit:
        message = errors.getvalue().strip().splitlines()
        raise WaferError(
            f"sglang-router {installed} rejects the router command: {message[-1] if message else argv}"
        ) from None
