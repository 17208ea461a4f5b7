"""What a cluster plan accepts as a node address or a resource name, and where it may write.

Node addresses and ``--name`` become file names under ``--out`` and host names in commands:
``../../etc/x`` would escape the folder, ``http://h`` or ``0.0.0.0`` cannot be dialled by the
router, and a duplicate node would get two workers on one port.
"""

from __future__ import annotations

import ipaddress
import re
from pathlib import Path

from wafer_sglang.errors import WaferError

HOSTNAME = re.compile(
    r"^(?=.{1,253}$)([A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$"
)
# Kubernetes object names are DNS-1123 labels (63); the longest suffix we add is "-prefill-workers"
K8S_NAME = re.compile(r"^[a-z0-9]([-a-z0-9]{0,38}[a-z0-9])?$")


def node_address(text: str) -> str:
    """A host name or an IPv4 address, as the router dials it and the worker binds it."""
    value = text.strip()
    if "://" in value or "/" in value:
        raise WaferError(f"node {text!r} is not an address (give the address only: no scheme, no path)")
    address = _ip(value.strip("[]"))
    if address is not None and address.version == 6:
        # --host, --dist-init-addr and the router's URLs would each need their own spelling
        raise WaferError(f"node {text!r}: IPv6 addresses are not supported; give a host name that resolves to it")
    if address is None and not HOSTNAME.match(value):
        raise WaferError(f"node {text!r} is not a host name or an IPv4 address")
    if address is not None and address.is_unspecified:
        raise WaferError(f"node {text!r} is the unspecified address: give the address other nodes reach it at")
    return value


def node_list(given: list[str]) -> list[str]:
    nodes = [node_address(n) for n in given if n.strip()]
    if not nodes:
        raise WaferError("expected comma-separated node addresses")
    twice = sorted({n for n in nodes if nodes.count(n) > 1})
    if twice:
        raise WaferError(f"node(s) listed twice: {', '.join(twice)} (one worker per node)")
    return nodes


def resource_name(text: str) -> str:
    if not K8S_NAME.match(text):
        raise WaferError(
            f"--name {text!r}: lowercase letters, digits and '-', starting and ending with a letter or "
            "digit, at most 40 characters (a Kubernetes object name, with our suffixes)"
        )
    return text


def inside(folder: Path, name: str) -> Path:
    """``folder / name``, refused unless it is a file directly in ``folder``."""
    path = folder / name
    if "/" in name or "\\" in name or name in (".", "..") or path.resolve().parent != folder.resolve():
        raise WaferError(f"refusing to write {name!r} outside {folder}")
    return path


def _ip(text: str):
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        return None
