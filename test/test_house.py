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
