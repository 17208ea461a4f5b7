"""Which of sglang's JIT kernel sources pull CUDA-only headers when built for ROCm, and whether
sglang can reach them on ROCm.

sglang compiles its JIT kernels at first use (tvm-ffi ``load_inline`` → hipcc on ROCm, with
``-DUSE_ROCM``). A source that includes ``<cuda_runtime.h>`` & co. under ``USE_ROCM`` fails to
build there; if the DSA backend then falls back and retries, hipcc runs on every call (upstream
saw 6.9 vs 227 tok/s). Two parts:

1. Headers, exactly: ``g++ -x c++ -nostdinc -M -MG -DUSE_ROCM`` lists every header each compiled
   unit includes under ROCm without needing any of them installed (``-MG``); a CUDA-only one
   (cuda*.h, cub, cutlass, cute, thrust, cooperative_groups, ...) marks the unit.
2. Reachability, statically: the Python loaders naming the unit, then every call into them from
   sglang; a call is *gated* when a condition known to be false on ROCm guards it (``_is_cuda``,
   ``is_sm100_supported()``, ``not _is_hip``, a short-circuit ``_is_cuda and ...``, ...). What the
   analysis cannot prove gated must be in the reviewed ledger for that sglang version
   (``data/jit_rocm_reviewed/<version>.toml``), each entry with the reason a person found.

Verdicts: ``gated`` (every call site proved unreachable), ``uncalled`` (no import of its loader
outside the JIT package; dynamic imports would escape this), ``unloaded`` (no loader names it:
a header of other units); from the ledger, ``reviewed`` (a person found the gate) or
``feature`` (reachable only with a feature outside the fork's scope — it then fails to build on
ROCm; reported, not fatal); and ``reachable`` — the problem: it needs a ROCm guard patch, or a
reviewed entry.
"""

from __future__ import annotations

import ast
import copy
import functools
import re
import shutil
import subprocess
import warnings
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path

from wafer_sglang import resources
from wafer_sglang.compat import tomllib
from wafer_sglang.errors import WaferError

CUDA_ONLY_HEADER = re.compile(
    r"^(cuda[\w]*\.h|cuda/\S+|cub/\S+|cutlass/\S+|cute/\S+|thrust/\S+|cooperative_groups(\.h|/\S+)?"
    r"|mma\.h|curand\S*|cublas\S*|cufft\S*|cusparse\S*|cudnn\S*|nvrtc\S*|nvtx\S*|cuda_\S+)$"
)
UNIT_SUFFIXES = (".cu", ".cuh", ".cpp")

# Conditions that are False on ROCm, as read in upstream sglang: is_cuda() needs
# torch.version.cuda; the is_smXX/blackwell/hopper checks call is_cuda() first
# (_check_cuda_device_version); is_arch_support_pdl() returns False on a HIP runtime; the
# other platforms' flags (musa, npu, xpu, mps, cpu) are False on a ROCm GPU.
FALSE_ON_ROCM = re.compile(
    r"^(_?is_cuda|_?is_sm\d+_supported|is_blackwell(_supported)?|is_hopper_with_cuda_12_3"
    r"|is_ampere_with_cuda_12_3|is_arch_support_pdl|_?is_nvidia|_?is_(musa|npu|xpu|mps|cpu)"
    r"|TYPE_CHECKING)$"
)
TRUE_ON_ROCM = re.compile(r"^(_?is_hip|is_hip_runtime)$")


@dataclass
class CallSite:
    module: str
    line: int
    gated_by: str  # the guarding condition, or "" when nothing proves it unreachable on ROCm

    def __str__(self) -> str:
        return f"{self.module}:{self.line}" + (f" (gated by {self.gated_by})" if self.gated_by else "")


@dataclass
class UnitReport:
    unit: str
    cuda_headers: list[str]
    loaders: list[str]
    sites: list[CallSite] = field(default_factory=list)
    verdict: str = ""
    reason: str = ""

    def as_dict(self) -> dict:
        return asdict(self)


def jit_root(package: Path) -> Path:
    """sglang's JIT kernel folder: ``jit_kernel/`` up to 0.5.16, ``kernels/jit/`` from 0.5.17."""
    for candidate in (package / "jit_kernel", package / "kernels" / "jit"):
        if (candidate / "csrc").is_dir():
            return candidate
    raise WaferError(f"{package} has no JIT kernel sources (jit_kernel/ or kernels/jit/)")


def sglang_version(package: Path) -> str:
    """The release a tree was built from (setuptools-scm writes ``_version.py`` into wheels)."""
    for name in ("_version.py", "version.py"):
        path = package / name
        match = (
            re.search(r"__version__\s*=\s*(?:version\s*=\s*)?[\"']([^\"']+)[\"']", path.read_text())
            if path.is_file()
            else None
        )
        if match and match.group(1) != "0.0.0.dev0":
            return match.group(1)
    raise WaferError(f"cannot read the sglang version of {package}")


def rocm_includes(unit: Path, include_dir: Path) -> list[str]:
    """CUDA-only headers ``unit`` includes when preprocessed for ROCm."""
    compiler = shutil.which("g++")
    if compiler is None:
        raise WaferError("g++ is needed to preprocess the JIT sources (apt-get install g++)")
    proc = subprocess.run(
        [
            compiler,
            "-x",
            "c++",
            "-std=c++20",
            "-nostdinc",
            "-M",
            "-MG",
            "-DUSE_ROCM",
            "-D__HIP_PLATFORM_AMD__=1",
            f"-I{include_dir}",
            str(unit),
        ],
        capture_output=True,
        text=True,
    )
    if proc.returncode != 0:
        # A unit that refuses ROCm itself ("#error no path for this arch") is CUDA-only too.
        refusal = re.search(r"#error\s+(.*)", proc.stderr)
        if refusal:
            return [f"#error {refusal.group(1).strip()}"]
        raise WaferError(f"preprocessing {unit} failed:\n{proc.stderr.strip()}")
    tokens = proc.stdout.replace("\\\n", " ").split()[1:]  # drop the "target.o:" rule head
    return sorted({t for t in tokens if CUDA_ONLY_HEADER.match(t)})


@dataclass
class _Module:
    """One source file, parsed only when asked: most of sglang's ~4000 modules never name a
    loader, and their text alone says so (parsing them all took most of a check)."""

    path: Path
    text: str

    @functools.cached_property
    def tree(self) -> ast.Module:
        try:
            with warnings.catch_warnings():  # upstream's own invalid escapes are not our business
                warnings.simplefilter("ignore", SyntaxWarning)
                warnings.simplefilter("ignore", DeprecationWarning)
                return ast.parse(self.text)
        except SyntaxError:
            return ast.Module(body=[], type_ignores=[])

    @functools.cached_property
    def _nodes(self) -> list[ast.AST]:
        return list(ast.walk(self.tree))

    @functools.cached_property
    def imports(self) -> list[ast.AST]:
        return [n for n in self._nodes if isinstance(n, (ast.Import, ast.ImportFrom))]

    @functools.cached_property
    def calls(self) -> list[ast.Call]:
        return [n for n in self._nodes if isinstance(n, ast.Call)]

    @functools.cached_property
    def guards(self) -> _Guards:
        return _Guards(self.tree)


def _python_modules(package: Path) -> dict[str, _Module]:
    """Every runtime module of the package (tests and benchmarks skipped), parsed on demand."""
    parsed = {}
    for path in sorted(package.rglob("*.py")):
        rel = path.relative_to(package.parent)
        if {"tests", "test", "benchmark", "benchmarks"} & set(rel.parts):
            continue
        name = ".".join(rel.with_suffix("").parts).removesuffix(".__init__")
        parsed[name] = _Module(path=path, text=path.read_text(errors="replace"))
    return parsed


def _kernel_package(jit: Path, package: Path) -> Path:
    """Where loaders live: ``jit_kernel/`` itself, or all of ``kernels/`` (0.5.17+ keeps the
    loaders in ``kernels/ops/`` beside ``kernels/jit/``)."""
    return jit if jit.name == "jit_kernel" else jit.parent


def _loaders(kernels: Path, csrc: Path, modules: dict[str, _Module]) -> dict[str, list[str]]:
    """unit (relative to csrc/) -> kernel modules whose source names it as a string literal."""
    found: dict[str, list[str]] = {}
    for name, module in modules.items():
        if not module.path.is_relative_to(kernels):
            continue
        for node in ast.walk(module.tree):
            value = node.value if isinstance(node, ast.Constant) else None
            if isinstance(value, str) and value.endswith(UNIT_SUFFIXES) and (csrc / value).is_file():
                found.setdefault(value, []).append(name)
    return found


class _Guards:
    """The conditions that make a node unreachable on ROCm, found by walking up its parents."""

    def __init__(self, tree: ast.Module):
        self.parent: dict[ast.AST, ast.AST] = {}
        for node in ast.walk(tree):
            for child in ast.iter_child_nodes(node):
                self.parent[child] = node

    def gate(self, node: ast.AST) -> str:
        child = node
        while child in self.parent:
            parent = self.parent[child]
            if isinstance(parent, (ast.If, ast.IfExp, ast.While)):
                in_body = child in (parent.body if isinstance(parent.body, list) else [parent.body])
                if child is not parent.test and (why := _branch_gate(parent.test, in_body)):
                    return why
            if isinstance(parent, ast.BoolOp) and isinstance(parent.op, ast.And):
                for earlier in parent.values[: parent.values.index(child)]:
                    if why := _branch_gate(earlier, True):
                        return why
            child = parent
        return ""


def _branch_gate(test: ast.expr, taken: bool) -> str:
    """The part of ``test`` that is false on ROCm when the branch is taken (``taken``) or
    true on ROCm when the else-branch is, i.e. why that branch never runs on ROCm."""
    if isinstance(test, ast.UnaryOp) and isinstance(test.op, ast.Not):
        return _branch_gate(test.operand, not taken)
    if isinstance(test, ast.BoolOp):
        # The body of "a and b" (the else of "a or b") needs every part to hold, so one
        # blocking part blocks it; the body of "a or b" (else of "a and b") needs them all blocked.
        reasons = [_branch_gate(value, taken) for value in test.values]
        if isinstance(test.op, ast.And) == taken:
            return next((r for r in reasons if r), "")
        return " and ".join(reasons) if all(reasons) else ""
    name = _predicate_name(test)
    if name and taken and FALSE_ON_ROCM.match(name):
        return ast.unparse(test)
    if name and not taken and TRUE_ON_ROCM.match(name):
        return f"not {ast.unparse(test)}"
    return ""


def _predicate_name(test: ast.expr) -> str:
    node = test.func if isinstance(test, ast.Call) else test
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return node.attr
    return ""


def _call_sites(target: str, modules: dict[str, _Module]) -> list[CallSite]:
    """Where sglang reaches module ``target``: each import of it, or each call of what an
    unguarded import bound."""
    parent, _, leaf = target.rpartition(".")
    # Only a module with an import statement naming ``leaf`` can reach it: a text test first,
    # so the modules that cannot are never parsed (it over-approximates; the AST decides).
    up = re.escape(parent.rpartition(".")[2])
    names_leaf = re.compile(
        rf"\b{up}\.{leaf}\b"  # import a.parent.leaf / from ..parent.leaf import
        rf"|\bfrom\s+[.\w]*\b{up}\s+import\b[^)]*?\b{leaf}\b"  # from a.parent import (x, leaf)
        rf"|\bfrom\s+\.+{leaf}\b"  # from .leaf import
        rf"|\bfrom\s+\.+\s+import\b[^)]*?\b{leaf}\b"  # from . import leaf
    )
    sites = []
    for name, module in modules.items():
        if name == target or leaf not in module.text or not names_leaf.search(module.text):
            continue
        package = name if module.path.name == "__init__.py" else name.rpartition(".")[0]
        for node in module.imports:
            bound = _bound_names(node, target, parent, leaf, package)
            if bound is None:
                continue
            if why := module.guards.gate(node):
                sites.append(CallSite(name, node.lineno, why))
                continue
            calls = [c for c in module.calls if _calls_bound(c, bound)]
            if not calls:
                sites.append(CallSite(name, node.lineno, ""))
            sites += [CallSite(name, c.lineno, module.guards.gate(c)) for c in calls]
    return sites


def _bound_names(node: ast.AST, target: str, parent: str, leaf: str, package: str) -> set[str] | None:
    """The names an import statement binds to ``target`` (or to objects from it), else None."""
    if isinstance(node, ast.ImportFrom):
        module = node.module or ""
        if node.level:  # relative: resolve against the importing package
            base = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
            module = f"{base}.{module}" if module else base
        if module == target:
            return {a.asname or a.name for a in node.names}
        if module == parent:
            hits = [a for a in node.names if a.name == leaf]
            return {a.asname or a.name for a in hits} if hits else None
    if isinstance(node, ast.Import):
        hits = [a for a in node.names if a.name == target]
        if hits:
            return {a.asname or a.name.split(".")[0] for a in hits}
    return None


def _calls_bound(call: ast.Call, bound: set[str]) -> bool:
    func = call.func
    while isinstance(func, ast.Attribute):
        func = func.value
    return isinstance(func, ast.Name) and func.id in bound


def _reach(loader: str, modules: dict, jit_module: str, seen: set[str]) -> list[CallSite]:
    """Call sites outside the JIT package, following JIT-internal imports transitively."""
    if loader in seen:
        return []
    seen.add(loader)
    sites = []
    for site in _call_sites(loader, modules):
        if site.module.startswith(jit_module + ".") and not site.gated_by:
            sites += _reach(site.module, modules, jit_module, seen)
        else:
            sites.append(site)
    return sites


LEDGER_STATES = {"no": "reviewed", "feature": "feature"}


def load_ledger(path: Path) -> dict[str, tuple[str, str]]:
    """unit -> (verdict, why) from a reviewed ledger; a missing file is an empty ledger."""
    if not path.is_file():
        return {}
    try:
        data = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as exc:
        raise WaferError(f"{path}: {exc}") from None
    ledger = {}
    for unit, entry in data.get("unit", {}).items():
        state = entry.get("reachable_on_rocm") if isinstance(entry, dict) else None
        why = str(entry.get("why", "")).strip() if isinstance(entry, dict) else ""
        if state not in LEDGER_STATES or not why:
            raise WaferError(
                f'{path}: [unit."{unit}"] needs reachable_on_rocm = "no" | "feature" and why = "<what a person '
                'checked>"'
            )
        ledger[unit] = (LEDGER_STATES[state], why)
    return ledger


def default_ledger(version: str) -> Path:
    return resources.DATA / "jit_rocm_reviewed" / f"{version}.toml"


def scan(package: Path, ledger: dict[str, tuple[str, str]]) -> list[UnitReport]:
    """A report for every JIT unit that includes CUDA-only headers under ROCm."""
    return [_judge(copy.deepcopy(report), ledger) for report in _analyse(package.resolve())]


@functools.lru_cache(maxsize=4)
def _analyse(package: Path) -> tuple[UnitReport, ...]:
    """The units with CUDA-only headers and every call site of their loaders (no verdicts): the
    costly part, done once per tree in a process whatever the ledger."""
    jit = jit_root(package)
    modules = _python_modules(package)
    kernels = _kernel_package(jit, package)
    jit_module = ".".join(kernels.relative_to(package.parent).parts)
    loaders = _loaders(kernels, jit / "csrc", modules)
    units = sorted(
        {
            *loaders,
            *(p.relative_to(jit / "csrc").as_posix() for p in (jit / "csrc").rglob("*") if p.suffix in UNIT_SUFFIXES),
        }
    )
    with ThreadPoolExecutor() as pool:
        headers = dict(
            zip(
                units,
                pool.map(
                    lambda u: rocm_includes(jit / "csrc" / u, jit / "include") if (jit / "csrc" / u).is_file() else [],
                    units,
                ),
            )
        )
    reports = []
    for unit in units:
        if not headers[unit]:
            continue
        report = UnitReport(unit=unit, cuda_headers=headers[unit], loaders=sorted(loaders.get(unit, [])))
        seen: set[str] = set()
        for loader in report.loaders:
            report.sites += _reach(loader, modules, jit_module, seen)
        reports.append(report)
    return tuple(reports)


def _judge(report: UnitReport, ledger: dict[str, tuple[str, str]]) -> UnitReport:
    open_sites = [s for s in report.sites if not s.gated_by]
    if not report.loaders:
        report.verdict, report.reason = "unloaded", "no loader names it (a header of other units, or unused)"
    elif not report.sites:
        report.verdict, report.reason = "uncalled", "no sglang code outside the kernel package imports its loader"
    elif not open_sites:
        report.verdict, report.reason = "gated", "every call site is behind a condition false on ROCm"
    elif report.unit in ledger:
        report.verdict, report.reason = ledger[report.unit]
    else:
        report.verdict = "reachable"
        report.reason = "not proved unreachable: " + ", ".join(map(str, open_sites[:5]))
    return report


def stale_ledger_entries(reports: list[UnitReport], ledger: dict) -> list[str]:
    """Ledger entries that no longer describe a unit needing review (remove them)."""
    needing = {r.unit for r in reports if r.verdict in LEDGER_STATES.values()}
    return sorted(set(ledger) - needing)
