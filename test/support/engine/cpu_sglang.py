"""Test-only bootstrap for importing upstream sglang on a CPU-only machine.

Never used by the product. What it does, and why:
* PyPI torchvision wheels are CUDA builds that fail beside CPU torch, yet sglang imports
  ``torchvision.io`` at module level and registers image processors that transformers only
  offers with torchvision: a stub package stands in (nothing here calls into it);
* ``torch.cuda.get_device_capability`` (and sglang's wrapper of it) has no answer on CPU: both
  report a gfx9 value (9, 5) = MI355X;
* ``SGLANG_USE_CPU_ENGINE=1`` (sglang's own switch) for the rope path;
* the 0.5.2x bases import ``sgl_kernel`` on the model path and the PyPI wheel does not load on
  CPU: those tests stub it too (``sgl_kernel=True``); nothing on the tested paths calls into it.
"""

from __future__ import annotations

import enum
import importlib.abc
import importlib.machinery
import os
import sys
import types


class _Stub(types.ModuleType):
    def __getattr__(self, name):
        if name.startswith("__"):
            raise AttributeError(name)
        return _placeholder(f"{self.__name__}.{name}")


def _placeholder(qualname: str):
    def unavailable(*args, **kwargs):
        raise RuntimeError(f"{qualname} is a test stub (torchvision is not installed)")

    unavailable.__qualname__ = qualname
    return unavailable


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
            # transformers builds its PIL <-> torchvision resampling table at import time.
            module.InterpolationMode = enum.Enum(
                "InterpolationMode", "NEAREST NEAREST_EXACT BILINEAR BICUBIC BOX HAMMING LANCZOS"
            )


def install(capability: tuple[int, int] = (9, 5), sgl_kernel: bool = False) -> None:
    os.environ.setdefault("SGLANG_USE_CPU_ENGINE", "1")
    sys.meta_path.insert(0, _StubFinder("torchvision", submodules=True))
    if sgl_kernel:
        # The root only: optional submodules (sgl_kernel.scalar_type) then fail to import and
        # sglang takes its own fallbacks.
        sys.meta_path.insert(0, _StubFinder("sgl_kernel", submodules=False))
    import torch

    torch.cuda.get_device_capability = lambda *args, **kwargs: capability
    # sglang's own wrapper answers (None, None) without a GPU; modules bind it by name on import,
    # so patch it before anything else imports it.
    import sglang.srt.utils
    import sglang.srt.utils.common

    for module in (sglang.srt.utils, sglang.srt.utils.common):
        module.get_device_capability = lambda device_id=0: capability
