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


def test_make_lint_reaches_every_tracked_python_file_and_nothing_else():
    """`make lint` is `ruff check .` from the root: it must see exactly what git tracks (ruff's
    defaults once skipped python/wafer_sglang/build/; a folder list once missed docker/image/)."""
    import subprocess
    import sys
    from pathlib import Path

    ruff = Path(sys.executable).with_name("ruff")
    shown = subprocess.run([ruff, "check", "--show-files", "."], cwd=ROOT, capture_output=True, text=True, check=True)
    linted = {Path(line).relative_to(ROOT).as_posix() for line in shown.stdout.split() if line.endswith(".py")}
    tracked = subprocess.run(["git", "ls-files", "*.py"], cwd=ROOT, capture_output=True, text=True, check=True)
    assert linted == set(tracked.stdout.split())
    assert "\t$(TEST)/bin/ruff check .\n" in (ROOT / "Makefile").read_text()
