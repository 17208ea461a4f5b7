"""The tooling package's layer order (README, "Code layers"): every import, function-local
ones included, goes from a layer to a lower one or stays inside its own package."""

from __future__ import annotations

import ast
import re

from support.common import ROOT

PACKAGE = ROOT / "python" / "wafer_sglang"


def layers() -> dict[str, int]:
    readme = (ROOT / "README.md").read_text()
    block = re.search(r"<!-- layers -->\n```\n(.*?)```", readme, re.S).group(1)
    return {name: int(level) for level, *names in map(str.split, block.splitlines()) for name in names}


def modules() -> set[str]:
    return {
        ".".join(p.relative_to(PACKAGE.parent).with_suffix("").parts).removesuffix(".__init__")
        for p in PACKAGE.rglob("*.py")
    }


def module_of(name: str, known: set[str]) -> str:
    """``wafer_sglang.serve.router.release`` -> ``wafer_sglang.serve.router``."""
    while name not in known and "." in name:
        name = name.rsplit(".", 1)[0]
    return name


def unit(module: str) -> str:
    """wafer_sglang.bench.run -> bench; wafer_sglang.__version__ (from the package) -> __init__."""
    parts = module.split(".")
    name = parts[1] if len(parts) > 1 else "__init__"
    return name if (PACKAGE / name).is_dir() or (PACKAGE / f"{name}.py").is_file() else "__init__"


def imports(level=unit) -> list[tuple[str, str, str]]:
    """(importer, imported, file:line) for every wafer_sglang import in the package, by ``level``
    (``unit``: top-level package or module; or a full module name)."""
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        here = level(".".join(path.relative_to(PACKAGE.parent).with_suffix("").parts).removesuffix(".__init__"))
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == "wafer_sglang":
                names = [f"{node.module}.{a.name}" for a in node.names]  # a module, or a name in one
            elif isinstance(node, ast.Import):
                names = [a.name for a in node.names if a.name.split(".")[0] == "wafer_sglang"]
            else:
                continue
            found += [(here, level(name), f"{path.relative_to(ROOT)}:{node.lineno}") for name in names]
    return found


def test_every_package_has_a_layer():
    units = {
        p.stem if p.is_file() else p.name
        for p in PACKAGE.iterdir()
        if p.suffix == ".py" or (p / "__init__.py").is_file()
    }
    assert units - {"__init__"} <= set(layers()) - {"__init__"}, sorted(units - set(layers()))


def test_imports_only_go_down():
    level = layers()
    upward = [f"{where}: {src} ({level[src]}) imports {dst} ({level[dst]})" for src, dst, where in imports()
              if src != dst and level[dst] >= level[src]]  # fmt: skip
    assert upward == []


def test_no_import_cycle_between_modules():
    """Inside a package too (serve/router.py and serve/cluster.py once imported each other)."""
    known = modules()
    graph: dict[str, set[str]] = {}
    for src, dst, _ in imports(lambda name: module_of(name, known)):
        if src != dst:
            graph.setdefault(src, set()).add(dst)

    def reaches(start: str, goal: str, seen: set[str]) -> bool:
        return any(
            n == goal or (n not in seen and not seen.add(n) and reaches(n, goal, seen)) for n in graph.get(start, ())
        )

    cycles = sorted(m for m in graph if reaches(m, m, set()))
    assert cycles == []
