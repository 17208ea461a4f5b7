"""Router commands checked by the router itself: the installed release must be the one pinned
for the base (data/topologies.toml [router]: sglang-router 0.3.2 for 0.5.14, smg for 0.5.23), and
its own argument parser must accept the flags."""

from __future__ import annotations

import contextlib
import importlib
import importlib.metadata
import io
import sys
from dataclasses import dataclass

from wafer_sglang.errors import WaferError
from wafer_sglang.serve.topologies import config


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


@dataclass(frozen=True)
class RouterRelease:
    package: str  # on PyPI
    version: str
    module: str  # python3 -m <module>.launch_router

    @property
    def pin(self) -> str:
        return f"{self.package}=={self.version}"

    def launch_argv(self) -> list[str]:
        return ["python3", "-m", f"{self.module}.launch_router"]


def release(base: str) -> RouterRelease:
    routers = config()["router"]
    if base not in routers:
        raise WaferError(f"no router pinned for base {base}: add it to data/topologies.toml [router]")
    entry = routers[base]
    return RouterRelease(entry["package"], entry["version"], entry["module"])


def colauncher() -> RouterRelease:
    """What `serve` co-launches in front of one node's DP ranks, on every base."""
    entry = config()["colauncher"]
    return RouterRelease(entry["package"], entry["version"], entry["module"])


@contextlib.contextmanager
def _without_sglang():
    """sglang-router 0.3.2's launch_router imports its mini load balancer, which tries sglang's
    tracing (an optional import, skipped on ImportError): next to an installed sglang that imports
    torch only to parse flags (35-53 s in the issue's measurement; in the suite's 0.5.14 engine
    environment a 9.9 s crash on its torchvision). sglang is made unimportable for that import (unless this
    process already has it)."""
    if "sglang" in sys.modules:
        yield
        return
    sys.modules["sglang"] = None  # import sglang... -> ImportError
    try:
        yield
    finally:
        del sys.modules["sglang"]


def check_router_argv(argv: list[str], base: str) -> None:
    """Parse ``argv`` (the router's arguments) with the installed router's real parser."""
    router = release(base)
    try:
        installed = importlib.metadata.version(router.package)
    except importlib.metadata.PackageNotFoundError:
        raise WaferError(
            f"{router.package} is not installed: pip install {router.pin} (the release the fork's {base} "
            "plans are checked with)"
        ) from None
    if installed != router.version:
        raise WaferError(
            f"{router.package} {installed} is installed; base {base}'s plans are checked with "
            f"{router.version}: pip install {router.pin}"
        )
    with _without_sglang():
        parse_router_args = importlib.import_module(f"{router.module}.launch_router").parse_router_args

    errors = io.StringIO()
    try:
        with contextlib.redirect_stderr(errors):
            parse_router_args(list(argv))
    except SystemExit:
        message = errors.getvalue().strip().splitlines()
        raise WaferError(
            f"{router.package} {installed} rejects the router command: {message[-1] if message else argv}"
        ) from None
