"""The ``wafer-sglang`` command line: one module per command group, thin adapters over the library."""

from wafer_sglang.cli.main import main

__all__ = ["main"]
