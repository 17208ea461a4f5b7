"""wafer-sglang-rocm tooling: the patch queue, the fork wheel builder and operator tools.

Everything importable from here must work without torch or a GPU; heavy imports stay lazy.
"""

__version__ = "0.1.0"
