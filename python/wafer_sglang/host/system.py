"""The serving host as the tools read it: filesystem root, environment, installed distributions,
and its GPUs from the KFD topology (/sys/class/kfd/kfd/topology/nodes/*/properties, the source
rocminfo uses) — no ROCm tools or torch needed, and a folder can stand in for a host in tests."""

from __future__ import annotations

import importlib.metadata
import os
import re
from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class Host:
    root: Path = Path("/")
    env: dict[str, str] = field(default_factory=lambda: dict(os.environ))
    dists: dict[str, str] | None = None  # canonical name -> version; None = this interpreter's
    aiter_root: Path | None = None  # an aiter checkout/package; None = the installed aiter

    def path(self, absolute: str) -> Path:
        return self.root / absolute.lstrip("/")

    def distributions(self) -> dict[str, str]:
        if self.dists is None:
            self.dists = {}
            for dist in importlib.metadata.distributions():
                name = re.sub(r"[-_.]+", "-", dist.metadata["Name"] or "").lower()
                self.dists[name] = dist.version
        return self.dists


def gpus(host: Host) -> list[str]:
    """gfx names of the GPU nodes in the KFD topology (CPU nodes have no gfx target)."""
    nodes = host.path("/sys/class/kfd/kfd/topology/nodes")
    found = []
    for properties in sorted(nodes.glob("*/properties")) if nodes.is_dir() else []:
        values = dict(line.split(None, 1) for line in properties.read_text().splitlines() if " " in line)
        target = int(values.get("gfx_target_version", "0"))
        if target:
            major, minor, step = target // 10000, (target // 100) % 100, target % 100
            found.append(f"gfx{major}{minor:x}{step:x}")
    return found
