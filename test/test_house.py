"""House rules the suite keeps by itself."""

from __future__ import annotations

import ast

from support.common import ROOT


def test_nothing_imports_conftest():
    """conftest.py is pytest's plugin module: what tests share lives in test/support/."""
    offenders = []
    for path in sorted([*(ROOT / "test").rglob("*.py"), *(ROOT / "benchmark").rglob("*.py")]):
        for node in ast.walk(ast.parse(path.read_text())):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else []
            module = node.module if isinstance(node, ast.ImportFrom) else None
            if module == "conftest" or "conftest" in names:
                offenders.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    assert offenders == []


def test_no_script_or_module_extends_sys_path():
    """benchmark/ runs with `make benchmark` (test/ on PYTHONPATH) and the package imports as
    installed: a sys.path.insert would hide a missing dependency, or put python/sglang (the
    overlay) in front of the real sglang. Restoring a saved path (kernel_names) is not extending it."""
    offenders = []
    for path in sorted([*(ROOT / "benchmark").rglob("*.py"), *(ROOT / "python").rglob("*.py")]):
        for node in ast.walk(ast.parse(path.read_text())):
            call = node.func if isinstance(node, ast.Call) else None
            target = getattr(call, "value", None)
            if (
                isinstance(call, ast.Attribute)
                and call.attr in ("insert", "append", "extend")
                and isinstance(target, ast.Attribute)
                and target.attr == "path"
                and getattr(target.value, "id", None) == "sys"
            ):
                offenders.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    assert offenders == []
