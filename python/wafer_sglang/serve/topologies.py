"""``data/topologies.toml``, read in one place: the topologies `cluster plan` lays out and the
router each base pins (serve/cluster.py and serve/router.py both read it from here)."""

from __future__ import annotations

from wafer_sglang import resources
from wafer_sglang.compat import tomllib


def config() -> dict:
    return tomllib.loads((resources.DATA / "topologies.toml").read_text())
