"""Import-time stand-ins for the two modules upstream sglang imports that cannot load on this
CPU-only machine. Test-only: never part of the product. Every use of them goes through here.

* ``torchvision``: PyPI's wheels are CUDA builds; beside CPU torch ``import torchvision`` raises
  "operator torchvision::nms does not exist". sglang imports ``torchvision.io`` at module level,
  and transformers builds an interpolation table from ``torchvision.transforms`` at import time.
* ``sgl_kernel`` (root only, the 0.5.2x bases): sglang imports eight ``*_cpu`` ops under
  ``if _is_cpu:`` at module level; PyPI's sglang-kernel wheel is CUDA-only. Its optional
  submodules (``sgl_kernel.scalar_type``) stay missing, so sglang takes its own fallbacks.

Nothing of either may run: every function a stand-in hands out appends its name to the file named
by ``WAFER_STANDIN_CALLS`` (when set; one line per call, any process) and then raises. The served
engine's tests read that file and fail on any line.
"""

from __future__ import annotations

import enum
import importlib.abc
import importlib.machinery
import os
import sys
import types

CALLS_ENV = "WAFER_STANDIN_CALLS"


def _record(qualname: str) -> None:
    path = os.environ.get(CALLS_ENV)
    if path:
        with open(path, "a") as log:  # one short line per write: appends from processes don't interleave
            log.write(f"{os.getpid()} {qualname}\n")


def _placeholder(qualname: str):
    def unavailable(*args, **kwargs):
        _record(qualname)
        raise RuntimeError(f"{qualname} is a test stand-in: the real module cannot load on this machine")

    unavailable.__qualname__ = qualname
    return unavailable


class _Stub(types.ModuleType):
    def __getattr__(self, name):
        if name.startswith("__"):
            raise AttributeError(name)
        return _placeholder(f"{self.__name__}.{name}")


class _StubFinder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    def __init__(self, root: str, submodules: bool):
        self.root = root
        self.submodules = submodules

    def find_spec(self, name, path=None, target=None):
        if name == self.root or (self.submodules and name.startswith(self.root + ".")):
            return importlib.machinery.ModuleSpec(name, self, is_package=True)
        return None

    def create_module(self, spec):
        module = _Stub(spec.name)
        module.__path__ = []
        return module

    def exec_module(self, module):
        if module.__name__ == "torchvision.transforms":
            # transformers builds its PIL <-> torchvision resampling table at import time (a type, not a call).
            module.InterpolationMode = enum.Enum(
                "InterpolationMode", "NEAREST NEAREST_EXACT BILINEAR BICUBIC BOX HAMMING LANCZOS"
            )


def install(sgl_kernel: bool) -> None:
    """Put the stand-ins in front of every other importer (idempotent)."""
    if any(isinstance(f, _StubFinder) for f in sys.meta_path):
        return
    sys.meta_path.insert(0, _StubFinder("torchvision", submodules=True))
    if sgl_kernel:
        sys.meta_path.insert(0, _StubFinder("sgl_kernel", submodules=False))
