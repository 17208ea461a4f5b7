"""aiter's own merge and lookup code, run on its own: the check behind our model (moe/lookup.py).

From an aiter tree (a commit of a clone, or an installed aiter) this takes, unchanged:
``AITER_CONFIG`` (``aiter/jit/core.py``: ``update_config_files`` + ``get_config_file``, what
``AITER_CONFIG_FMOE`` does) and ``get_2stage_cfgs`` (``aiter/fused_moe.py``) up to its tuned-config
decision — the statements after it (from ``use_non_temporal_load = False``) only build the kernel
launch and are cut. What aiter would import from its compiled parts is stood in for: the GPU
(``get_cu_num`` / ``get_gfx_runtime``: MI355X), the enum types (their ``str()`` is what aiter
writes in its CSVs; an enum is never equal to that string, as aiter's are not), FlyDSL present.
Needs pandas (aiter's own dependency).
"""

from __future__ import annotations

import ast
import functools
import logging
import os
import re
import sys
import tempfile
import types
from contextlib import contextmanager
from enum import Enum
from pathlib import Path

from wafer_sglang.errors import WaferError
from wafer_sglang.fsutil import scratch_dir
from wafer_sglang.moe.aiter_tree import AiterTree
from wafer_sglang.moe.keys import MoeKey

CORE = "aiter/jit/core.py"
FUSED_MOE = "aiter/fused_moe.py"
CHIP_INFO = "aiter/jit/utils/chip_info.py"
CUT_AT = "use_non_temporal_load"  # the first statement after the decision
MERGED = Path("/tmp/aiter_configs")  # where aiter's merge writes (hard-coded in aiter)


class _Member:
    """An aiter enum value: equal only to itself; ``str()`` as aiter's CSVs spell it."""

    def __init__(self, owner: str, name: str):
        self.text = f"{owner}.{name}"

    def __str__(self) -> str:
        return self.text

    __repr__ = __str__


class _EnumType(types.SimpleNamespace):
    def __init__(self, owner: str):
        super().__init__()
        self._owner = owner

    def __getattr__(self, name: str) -> _Member:
        if name.startswith("_"):
            raise AttributeError(name)
        member = _Member(self._owner, name)
        setattr(self, name, member)
        return member


class _Log:
    """aiter's logger; keeps what it says, so a caller can quote it."""

    def __init__(self):
        self.lines: list[str] = []

    def __getattr__(self, level):
        return lambda message, *args: self.lines.append(f"{level}: {message % args if args else message}")


def runnable(tree: AiterTree) -> bool:
    """Whether aiter's own code can run here: the tree has it, and pandas and torch (its dtypes)
    are importable."""
    import importlib.util

    return all(tree.read(path) is not None for path in (CORE, FUSED_MOE)) and all(
        importlib.util.find_spec(name) is not None for name in ("pandas", "torch")
    )


def aiter_decisions(tree: AiterTree, files: list[Path], keys: list[MoeKey]) -> dict[MoeKey, dict | None]:
    """For each key, the tuned row aiter's own code picks from ``files`` (the AITER_CONFIG_FMOE
    list, in order) — a dict of its columns — or None (aiter's default heuristics)."""
    try:
        import pandas  # noqa: F401  (aiter's merge and lookup read the CSVs with it)
    except ImportError:
        raise WaferError("checking against aiter's own code needs pandas (pip install pandas)") from None
    torch = _torch()
    gfx = keys[0].gfx if keys else "gfx950"
    with (
        scratch_dir(prefix="aiter-exec-") as root,
        _env("AITER_CONFIG_FMOE", ":".join(map(str, files))),
        _chip_info(_gfx_from_cu_num(tree, gfx)),
    ):
        _stage_untuned(tree, Path(root))
        log = _Log()
        configs = _aiter_config(tree, Path(root), log)
        lookup = _get_2stage_cfgs(tree, configs, log, gfx, keys[0].cu_num if keys else 256)
        quant, act = _EnumType("QuantType"), _EnumType("ActivationType")
        decisions = {}
        for key in keys:
            cfg = lookup(
                token=key.token,
                model_dim=key.model_dim,
                inter_dim=key.inter_dim,
                expert=key.expert,
                topk=key.topk,
                dtype=_dtype(torch, key.dtype),
                q_dtype_a=_dtype(torch, key.q_dtype_a),
                q_dtype_w=_dtype(torch, key.q_dtype_w),
                q_type=getattr(quant, key.q_type.split(".", 1)[1]),
                use_g1u1=bool(key.use_g1u1),
                activation=getattr(act, key.act_type.split(".", 1)[1]),
                doweight_stage1=bool(key.doweight_stage1),
                hidden_pad=0,
                intermediate_pad=0,
            )
            decisions[key] = None if cfg is None else {k: _plain(v) for k, v in cfg.items()}
        return decisions


def _aiter_config(tree: AiterTree, root: Path, log: _Log):
    module = _module_namespace(tree, CORE, log)
    module.update(
        AITER_ROOT_DIR=str(root),
        AITER_CONFIG_FMOE=f"{root}/aiter/configs/tuned_fmoe.csv",
        mp_lock=lambda lock_path, MainFunc=None, FinalFunc=None, **_: MainFunc() if MainFunc else None,
    )
    source = tree.read(CORE)
    _exec_nodes([_class(source, "AITER_CONFIG", CORE)], module, CORE)
    return module["AITER_CONFIG"]()


def _get_2stage_cfgs(tree: AiterTree, configs, log: _Log, gfx: str, cu_num: int):
    source = tree.read(FUSED_MOE)
    module = _module_namespace(tree, FUSED_MOE, log)
    module.update(
        AITER_CONFIGS=configs,
        get_cu_num=lambda: cu_num,
        get_gfx_runtime=lambda: gfx,
        get_gfx=lambda: gfx,
        gfx_from_cu_num=_gfx_from_cu_num(tree, gfx),
        is_flydsl_available=lambda: True,
        GateMode=Enum("GateMode", {"SEPARATED": "separated", "INTERLEAVE": "interleave"}),
        mp_lock=lambda *a, **k: None,
        bd_dir=tempfile.gettempdir(),
        PY="python3",
        AITER_CSRC_DIR="/nonexistent",
        cfg_2stages=None,
        _opus_a8w4=types.SimpleNamespace(cfg_is_supported=lambda *a, **k: (False, "not modelled")),
    )
    module.update(_constants(source, FUSED_MOE))
    function = _function(source, "get_2stage_cfgs", FUSED_MOE)
    function.decorator_list = []  # lru_cache: every call is asked afresh
    cut = next((i for i, stmt in enumerate(function.body) if _assigns(stmt, CUT_AT)), None)
    if cut is None:
        raise WaferError(
            f"{tree.label}: {FUSED_MOE} get_2stage_cfgs has no '{CUT_AT} =' statement; "
            "this aiter's lookup is not one we can run on its own"
        )
    function.body = function.body[:cut] + [ast.Return(ast.Name("cfg", ast.Load()))]
    _exec_nodes([function], module, FUSED_MOE)
    return module["get_2stage_cfgs"]


def _module_namespace(tree: AiterTree, path: str, log: _Log) -> dict:
    if tree.read(path) is None:
        raise WaferError(f"{tree.label} has no {path}")
    return {
        "__name__": f"_aiter_exec_{Path(path).stem}",
        "os": os,
        "re": re,
        "functools": functools,
        "logger": log,
        "logging": logging,
        "torch": _torch(),
    }


def _gfx_from_cu_num(tree: AiterTree, gfx: str):
    source = tree.read(CHIP_INFO) or ""
    try:
        node = _function(source, "gfx_from_cu_num", CHIP_INFO)
    except WaferError:  # an aiter before the gfx column: rows are keyed on cu_num alone
        return lambda cu_num: gfx
    namespace = {"get_gfx_runtime": lambda: gfx, **_constants(source, CHIP_INFO)}
    _exec_nodes([node], namespace, CHIP_INFO)
    return namespace["gfx_from_cu_num"]


def _class(source: str, name: str, path: str) -> ast.ClassDef:
    for node in ast.parse(source).body:
        if isinstance(node, ast.ClassDef) and node.name == name:
            return node
    raise WaferError(f"{path} has no class {name}")


def _function(source: str, name: str, path: str) -> ast.FunctionDef:
    for node in ast.parse(source).body:
        if isinstance(node, ast.FunctionDef) and node.name == name:
            return node
    raise WaferError(f"{path} has no function {name}")


def _constants(source: str, path: str) -> dict:
    """The module-level names bound to literals (tiers, keys, block sizes)."""
    values = {}
    for node in ast.parse(source).body:
        if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
            try:
                values[node.targets[0].id] = ast.literal_eval(node.value)
            except ValueError:
                continue
    return values


def _assigns(statement: ast.stmt, name: str) -> bool:
    return isinstance(statement, ast.Assign) and any(
        isinstance(t, ast.Name) and t.id == name for t in statement.targets
    )


def _exec_nodes(nodes: list[ast.stmt], namespace: dict, path: str) -> None:
    module = ast.fix_missing_locations(ast.Module(body=nodes, type_ignores=[]))
    exec(compile(module, path, "exec"), namespace)


def _stage_untuned(tree: AiterTree, root: Path) -> None:
    """aiter's merge takes the duplicate-check columns from its own untuned_fmoe.csv."""
    configs = root / "aiter" / "configs"
    configs.mkdir(parents=True)
    untuned = tree.read("aiter/configs/untuned_fmoe.csv")
    if untuned is not None:
        (configs / "untuned_fmoe.csv").write_text(untuned)


def _torch():
    try:
        import torch

        return torch
    except ImportError:
        raise WaferError("checking against aiter's own code needs torch (its dtypes are the keys)") from None


def _dtype(torch, text: str):
    return getattr(torch, text.removeprefix("torch."))


def _plain(value):
    return value.item() if hasattr(value, "item") else value


@contextmanager
def _chip_info(gfx_from_cu_num):
    """``aiter.jit.utils.chip_info`` for the merge's inline import, any real aiter set aside."""
    names = ("aiter", "aiter.jit", "aiter.jit.utils", "aiter.jit.utils.chip_info")
    saved = {name: sys.modules.get(name) for name in names}
    for name in names:
        module = types.ModuleType(name)
        module.__path__ = []
        sys.modules[name] = module
    sys.modules["aiter.jit.utils.chip_info"].gfx_from_cu_num = gfx_from_cu_num
    try:
        yield
    finally:
        for name, module in saved.items():
            if module is None:
                sys.modules.pop(name, None)
            else:
                sys.modules[name] = module


@contextmanager
def _env(name: str, value: str):
    saved = os.environ.get(name)
    os.environ[name] = value
    try:
        yield
    finally:
        if saved is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = saved
