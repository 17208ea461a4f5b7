"""Compiling instead of launching, for a HIP target.

sglang's launchers run as written: their Python computes grids, block sizes and constexprs, and
``kernel[grid](...)`` reaches Triton's ``JITFunction.run``. Here that call compiles (Triton's own
``warmup`` path: bind, specialise, compile) and returns without launching. On a host without the
target GPU, a stand-in driver reports the target (``GPUTarget("hip", arch, 64)``) and nothing else:
it has no launcher, so a launch would fail loudly instead of running anything.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass, field


@dataclass
class Compiled:
    module: str
    kernel: str
    compiled: object  # triton's CompiledKernel


class CompileError(Exception):
    """Triton failed on a kernel (binding, specialising or compiling it): the check's failure,
    unlike an error in the launcher's own Python before any kernel."""

    def __init__(self, kernel: str, cause: Exception):
        super().__init__(f"{kernel}: {type(cause).__name__}: {cause}")
        self.kernel = kernel


@dataclass
class Capture:
    arch: str
    kernels: list[Compiled] = field(default_factory=list)


class TargetOnlyDriver:
    """What Triton asks the active driver while it binds and compiles; no launcher."""

    def __init__(self, arch: str):
        from triton.backends.compiler import GPUTarget

        self.target = GPUTarget("hip", arch, 64)

    def get_current_target(self):
        return self.target

    def get_current_device(self) -> int:
        return 0

    def get_current_stream(self, device=None) -> int:
        return 0

    def get_active_torch_device(self):
        import torch

        return torch.device("cpu")


def host_arch() -> str | None:
    """The gfx arch of this host's active Triton driver, or None (no HIP GPU)."""
    try:
        from triton.runtime import driver

        target = driver.active.get_current_target()
    except Exception:  # no GPU driver at all: Triton raises its own RuntimeError variants
        return None
    return target.arch if getattr(target, "backend", None) == "hip" else None


@contextlib.contextmanager
def compile_only(arch: str) -> Iterator[Capture]:
    """Every Triton launch in the block compiles for ``arch`` and is recorded, never run."""
    from triton.runtime import driver, jit

    capture = Capture(arch)
    real_run = jit.JITFunction.run
    stand_in = host_arch() != arch
    touched: list = []

    def run(self, *args, grid, warmup, **kwargs):
        _forget_other_targets(self, arch)  # a kernel binds its target once, on first use
        touched.append(self)
        try:
            compiled = real_run(self, *args, grid=grid, warmup=True, **kwargs)
        except Exception as exc:
            raise CompileError(f"{self.fn.__module__}.{self.fn.__name__}", exc) from exc
        capture.kernels.append(Compiled(self.fn.__module__, self.fn.__name__, compiled))
        return compiled

    previous = getattr(driver, "_active", None)  # reset_active() would look for a GPU driver: none here
    if stand_in:
        driver.set_active(TargetOnlyDriver(arch))
    jit.JITFunction.run = run
    try:
        yield capture
    finally:
        jit.JITFunction.run = real_run
        if stand_in:
            driver._active = previous
        for fn in touched:
            fn.device_caches.clear()  # bound to the stand-in's target: never reused for a launch


def _forget_other_targets(fn, arch: str) -> None:
    bound = fn.device_caches.get(0)
    if bound is not None and bound[2].arch != arch:
        fn.device_caches.clear()
