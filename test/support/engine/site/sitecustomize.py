"""Loaded by every Python process started with this folder on PYTHONPATH (the served engine and
the processes sglang spawns): installs the stand-ins of ../standins.py. WAFER_STANDIN_SGL_KERNEL=1
adds the sgl_kernel one (the 0.5.2x bases)."""

import importlib.util
import os

_spec = importlib.util.spec_from_file_location(
    "wafer_test_standins", os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "standins.py")
)
_standins = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_standins)
_standins.install(sgl_kernel=os.environ.get("WAFER_STANDIN_SGL_KERNEL") == "1")
