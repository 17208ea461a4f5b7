"""Which fused-MoE kernel names one aiter can run, from aiter's own naming code at that tree.

A tuned row names up to two kernels. aiter resolves them at the first MoE forward, and a name
it does not know fails there (``ValueError: Invalid FlyDSL kernel name``, a missing asm kernel,
a CK instance the codegen never generates). Three families, each answered by aiter's own code:

* ``flydsl_*`` — ``aiter/ops/flydsl/moe_kernels.py``: ``get_flydsl_kernel_params(name)``;
* ``moe_ck2stages_*`` — ``csrc/ck_gemm_moe_2stages_codegen/gemm_moe_ck2stages_common.py``: the
  names of the instances ``get_gemm{1,2}_kernels_list`` generates;
* ``_ZN5aiter*`` (asm) — the ``knl_name`` column of ``hsa/<gfx>/fmoe/**.csv``.
"""

from __future__ import annotations

import csv
import importlib.abc
import importlib.machinery
import io
import itertools
import sys
import types
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass
from typing import ClassVar

from wafer_sglang.moe.aiter_tree import AiterTree

FLYDSL_NAMING = "aiter/ops/flydsl/moe_kernels.py"
CK_NAMING = "csrc/ck_gemm_moe_2stages_codegen/gemm_moe_ck2stages_common.py"
DTYPES = ("B16", "F16", "F8", "I8", "I4", "FP4X2")


@dataclass(frozen=True)
class KernelNames:
    """The kernel names one aiter tree resolves (for one GPU architecture)."""

    label: str
    flydsl: Callable[[str], bool]
    ck: frozenset[str]
    asm: frozenset[str]

    def resolves(self, name: str) -> bool:
        if not name:  # no kernel named: aiter picks one itself
            return True
        if name.startswith("flydsl_"):
            return self.flydsl(name)
        if name.startswith("moe_ck2stages_"):
            return name in self.ck
        return name in self.asm

    def unresolved(self, *names: str) -> list[str]:
        return [n for n in names if not self.resolves(n)]


def kernel_names(tree: AiterTree, gfx: str = "gfx950") -> KernelNames:
    return KernelNames(tree.label, _flydsl(tree), _ck(tree, gfx), _asm(tree, gfx))


def _flydsl(tree: AiterTree) -> Callable[[str], bool]:
    source = tree.read(FLYDSL_NAMING)
    if source is None:  # this aiter has no FlyDSL MoE at all
        return lambda name: False
    module = _exec(source, FLYDSL_NAMING, stubs=_torch_stub())
    return lambda name: module.get_flydsl_kernel_params(name) is not None


def _ck(tree: AiterTree, gfx: str) -> frozenset[str]:
    source = tree.read(CK_NAMING)
    if source is None:
        return frozenset()
    chip_info = types.ModuleType("chip_info")
    chip_info.get_gfx = lambda: gfx
    module = _exec(source, CK_NAMING, stubs={"chip_info": chip_info})
    names = set()
    for a, b, c in itertools.product(DTYPES, DTYPES, ("B16", "F16")):
        for nswizzle, quant, routed, preshuffle in itertools.product(
            (False, True), range(6), (False, True), (False, True)
        ):
            for act in ("silu", "gelu"):
                names |= _instance_names(
                    module.get_gemm1_kernels_list, a, b, c, nswizzle, quant, act, routed, preshuffle
                )
            names |= _instance_names(module.get_gemm2_kernels_list, a, b, c, nswizzle, quant, routed, preshuffle)
    return frozenset(names)


def _instance_names(generate, *args) -> set[str]:
    try:
        _, kernels = generate(*args)
    except (ValueError, KeyError):  # a dtype combination the codegen has no instances for
        return set()
    return {kernel.name for kernel in kernels.values()}


def _asm(tree: AiterTree, gfx: str) -> frozenset[str]:
    names = set()
    for path in tree.files(f"hsa/{gfx}/fmoe"):
        if path.endswith(".csv"):
            for row in csv.DictReader(io.StringIO(tree.read(path) or "")):
                if row.get("knl_name"):
                    names.add(row["knl_name"].strip())
    return frozenset(names)


def _exec(source: str, path: str, stubs: dict) -> types.ModuleType:
    """Run one of aiter's pure-Python naming modules on its own: ``stubs`` and a stand-in
    ``aiter`` package answer what it imports but does not use for naming (kernel builders)."""
    module = types.ModuleType(f"_aiter_{path.replace('/', '_').removesuffix('.py')}")
    module.__file__ = f"/nonexistent/{path}"
    with _stand_in_aiter(), _sys_modules({**stubs, module.__name__: module}), _kept_sys_path():
        exec(compile(source, path, "exec"), module.__dict__)
    return module


class _Anything(types.ModuleType):
    """A module whose every attribute is a further stand-in (never called while naming)."""

    def __getattr__(self, name):
        if name.startswith("__"):
            raise AttributeError(name)
        return _Anything(f"{self.__name__}.{name}")

    def __call__(self, *args, **kwargs):
        return _Anything(self.__name__ + "()")


class _StandInFinder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    def find_spec(self, name, path=None, target=None):
        if name == "aiter" or name.startswith("aiter."):
            return importlib.machinery.ModuleSpec(name, self, is_package=True)
        return None

    def create_module(self, spec):
        module = _Anything(spec.name)
        module.__path__ = []
        return module

    def exec_module(self, module):
        pass


@contextmanager
def _stand_in_aiter():
    """Hide any imported aiter (it may be another commit) behind stand-ins, and restore it."""
    hidden = {n: m for n, m in sys.modules.items() if n == "aiter" or n.startswith("aiter.")}
    for name in hidden:
        del sys.modules[name]
    finder = _StandInFinder()
    sys.meta_path.insert(0, finder)
    try:
        yield
    finally:
        sys.meta_path.remove(finder)
        for name in [n for n in sys.modules if n == "aiter" or n.startswith("aiter.")]:
            del sys.modules[name]
        sys.modules.update(hidden)


class AbsentTorch:
    """A torch name on a host without torch. aiter's naming module only reads torch names at
    import (``_DLPACK_SAFE = (torch.uint8, ...)``, annotations); any use of one is a call, which
    raises and is recorded in ``CALLS`` (tests assert it stays empty)."""

    CALLS: ClassVar[list[str]] = []

    def __init__(self, path: str):
        self._path = path

    def __getattr__(self, name: str) -> AbsentTorch:
        if name.startswith("__"):
            raise AttributeError(name)
        return AbsentTorch(f"{self._path}.{name}")

    def __call__(self, *args, **kwargs):
        AbsentTorch.CALLS.append(self._path)
        raise RuntimeError(f"{self._path}() needs torch, which is not installed (kernel names need none)")

    def __repr__(self) -> str:
        return f"<absent {self._path}>"


def _torch_stub() -> dict:
    try:
        import torch  # noqa: F401  (the real one, when installed)

        return {}
    except ImportError:
        module = types.ModuleType("torch")
        module.__getattr__ = lambda name: AbsentTorch(f"torch.{name}")  # PEP 562: every name resolves
        return {"torch": module}


@contextmanager
def _sys_modules(stubs: dict):
    saved = {name: sys.modules.get(name) for name in stubs}
    sys.modules.update(stubs)
    try:
        yield
    finally:
        for name, module in saved.items():
            if module is None:
                sys.modules.pop(name, None)
            else:
                sys.modules[name] = module


@contextmanager
def _kept_sys_path():
    saved = list(sys.path)
    try:
        yield
    finally:
        sys.path[:] = saved
