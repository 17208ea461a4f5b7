"""Run the path's launches for one arch in this interpreter (sglang and triton installed) and say,
per kernel, how it was reached, whether it compiled and what it costs; then the path's kernels
no launch reached."""

from __future__ import annotations

import ast
import importlib.util
import re
import traceback
from dataclasses import dataclass, field
from pathlib import Path

from wafer_sglang.errors import WaferError
from wafer_sglang.kernels import resources
from wafer_sglang.kernels.hip_target import CompileError, compile_only, host_arch
from wafer_sglang.kernels.path import GLM5, LAUNCHES, PATH_MODULES, SERVING, Launch

KV_FP8 = "float8_e4m3fn"  # OCP e4m3: the fp8_e4m3 KV default of the fork on gfx95 (0.5.14/0005, 0.5.23/0003)


@dataclass
class LaunchResult:
    name: str
    reached_from: list[str]  # file:line of each launch site found in this sglang
    hot: bool
    kernels: list[dict] = field(default_factory=list)
    error: str | None = None  # Triton's error on a kernel: the check fails
    not_on_path: str | None = None  # no launch site in this sglang: not compiled, said why
    not_checked_here: str | None = None  # the launcher could not run on this host, or ran no Triton kernel


def sglang_root() -> Path:
    """The installed sglang package's folder (found, not imported)."""
    spec = importlib.util.find_spec("sglang")
    if spec is None or not spec.origin:
        raise WaferError("check-kernels runs where sglang runs: install wafer-sglang-rocm (or run it in the image)")
    return Path(spec.origin).parent


def prepare_sglang() -> str:
    """sglang takes its HIP branches at import (``torch.version.hip``), as on an MI355X; on a host
    without ROCm torch that is set here, before sglang is imported. The sglang version."""
    generated = sglang_root() / "_version.py"  # what sglang.version reads, without importing sglang
    found = (
        re.search(r"""__version__ = version = ["']([^"']+)""", generated.read_text()) if generated.is_file() else None
    )
    import torch  # after the check above: the tools alone have no torch, and no sglang either

    if torch.version.hip is None:
        torch.version.hip = "0.0-wafer-check-kernels"  # read by sglang's is_hip(); nothing of ROCm is loaded
    return found[1] if found else "unknown"


def run_launches(arch: str) -> list[LaunchResult]:
    root = sglang_root()
    results = []
    for item in LAUNCHES:
        found = _sites(root, item)
        result = LaunchResult(item.name, found, item.hot)
        results.append(result)
        if not found:
            result.not_on_path = "no launch site in this sglang: " + "; ".join(f"{f}: {s!r}" for f, s in item.sites)
            continue
        try:
            with compile_only(arch) as capture:
                item.run(KV_FP8)
        except CompileError as exc:
            result.error = _error_text(exc)
        except Exception as exc:  # the launcher's own Python, before any kernel: this host, not the kernel
            result.not_checked_here = f"its launcher failed here: {_error_text(exc).splitlines()[-1]}"
        for compiled in capture.kernels:
            result.kernels.append(_kernel_row(compiled, arch))
        if not capture.kernels and not result.error and not result.not_checked_here:
            result.not_checked_here = "its launcher ran no Triton kernel here (it chose another path on this host)"
    return results


def _sites(root: Path, item: Launch) -> list[str]:
    """``file:line`` of each of the launch's sites this sglang has (the bases moved them)."""
    found = []
    for rel, text in item.sites:
        path = root / rel
        lines = path.read_text().splitlines() if path.is_file() else []
        hit = next(
            (n for n, line in enumerate(lines, 1) if text in line and not line.lstrip().startswith("def ")), None
        )
        if hit:
            found.append(f"sglang/{rel}:{hit}")
    return found


def _kernel_row(compiled, arch: str) -> dict:
    kernel = compiled.compiled
    meta = kernel.metadata
    used = resources.read(kernel.asm["amdgcn"], meta.num_warps, arch)
    return {
        "module": compiled.module,
        "kernel": compiled.kernel,
        "constexprs": _constexprs(kernel),
        "num_stages": meta.num_stages,
        **used.as_dict(),
    }


def _constexprs(kernel) -> dict:
    src = getattr(kernel, "src", None)
    values = getattr(src, "constants", None) or getattr(src, "constexprs", None) or {}
    names = getattr(getattr(src, "fn", None), "arg_names", [])
    out = {}
    for key, value in values.items():
        index = key[0] if isinstance(key, tuple) else key
        name = names[index] if isinstance(index, int) and index < len(names) else str(index)
        if isinstance(value, (int, float, bool, str)) or value is None:
            out[name] = value
    return out


def _error_text(exc: BaseException) -> str:
    lines = "".join(traceback.format_exception_only(type(exc), exc)).strip().splitlines()
    return "\n".join(lines[-12:])


def inventory() -> dict[str, tuple[str, list[str]]]:
    """Every @triton.jit function of the path's modules, read from sglang's source (not imported):
    module -> (what it is on the path, its kernels)."""
    kernels = {}
    for why, candidates in PATH_MODULES.items():
        for module in candidates:
            origin = _origin(module)
            if origin:
                tree = ast.parse(origin.read_text())
                names = [
                    node.name
                    for node in ast.walk(tree)
                    if isinstance(node, ast.FunctionDef) and any(_is_jit(d) for d in node.decorator_list)
                ]
                kernels[module] = (why, names)
                break
    return kernels


def _origin(module: str) -> Path | None:
    """The module's file, found without importing it (a package's import may ask for a GPU)."""
    path = sglang_root().joinpath(*module.split(".")[1:]).with_suffix(".py")
    return path if path.is_file() else None


def _is_jit(decorator: ast.expr) -> bool:
    target = decorator.func if isinstance(decorator, ast.Call) else decorator
    return (isinstance(target, ast.Attribute) and target.attr == "jit") or (
        isinstance(target, ast.Name) and target.id == "jit"
    )


def check(arch: str, base: str | None = None) -> dict:
    """The report for ``arch``: what ``check-kernels --json`` prints. ``base``: the sglang release
    this environment must run (refused before anything compiles)."""
    version = prepare_sglang()
    if base and base != version:
        raise WaferError(f"this environment runs sglang {version}, not --base {base}: run it in that base's")
    import triton

    results = run_launches(arch)
    reached = {(k["module"], k["kernel"]) for r in results for k in r.kernels}
    not_checked = {
        f"{module}.{name}": why
        for module, (why, names) in inventory().items()
        for name in names
        if (module, name) not in reached
    }
    return {
        "sglang": version,
        "triton": triton.__version__,
        "arch": arch,
        "host_gpu": host_arch(),
        "shapes": {**GLM5, **SERVING, "kv_cache_dtype": KV_FP8},
        "launches": [r.__dict__ for r in results],
        "not_compile_checked": not_checked,
    }


def findings(arch: str | None = None) -> list[tuple[str, str, str]]:
    """For ``doctor --kernels``: (severity, summary, fix) — the path's kernels against this host's
    triton, for its GPU's arch (gfx950 where it has none)."""
    from wafer_sglang.kernels import report

    arch = arch or host_arch() or "gfx950"
    result = check(arch)
    failed = report.failures(result)
    compiled = sum(len(r["kernels"]) for r in result["launches"])
    where = f"triton {result['triton']}, sglang {result['sglang']}, {arch}"
    if failed:
        return [
            ("error", f"path kernel does not compile ({where}): {line}", "wafer-sglang check-kernels")
            for line in failed
        ]
    return [("ok", f"{compiled} path kernels compile ({where}); {len(result['not_compile_checked'])} not reached", "")]
