"""``wafer-sglang build --tools``: the tools as a pure-Python wheel, ``wafer-sglang`` (py3-none-any).
The only distribution that holds ``wafer_sglang/`` and the command: a client machine installs it
alone — `bench`, `eval`, `checkpoint`, `cluster`, `doctor` without the patched sglang, whose
requirements pull CUDA torch, triton and the nvidia-* wheels (7 GB, 11 min) onto a machine that
serves nothing — and the engine wheel requires exactly its release.

Byte-reproducible like the engine wheel (the same zip writer), dated by SOURCE_DATE_EPOCH or the
checkout's HEAD commit.
"""

from __future__ import annotations

import sys
from pathlib import Path

from wafer_sglang import __version__ as tooling_version
from wafer_sglang import bases
from wafer_sglang import manifest as fork_manifest
from wafer_sglang.bases import PACKAGED_RECORD
from wafer_sglang.fsutil import atomic_write_bytes
from wafer_sglang.repo import PIN_FILE, source_files
from wafer_sglang.wheels.metadata import TOOLING_EXTRAS, TOOLING_REQUIREMENTS, TOOLS_DIST, router_requirements
from wafer_sglang.wheels.wheel import TOOLING_PACKAGE, _zip, source_date_epoch

CONSOLE_SCRIPT = "wafer-sglang = wafer_sglang.cli.main:main"
# `checkpoint check` reads safetensors headers (safe_open, framework="numpy")
TOOLS_REQUIREMENTS = [*TOOLING_REQUIREMENTS, "packaging>=24", "safetensors>=0.4", "numpy"]


def _tooling_files(root: Path) -> dict[str, tuple[bytes, int]]:
    package = root / "python" / TOOLING_PACKAGE
    paths, notes = source_files(root, package)
    for note in notes:
        print(f"build: {note}", file=sys.stderr)
    files = {}
    for path in paths:
        if path.name == fork_manifest.MANIFEST_NAME:
            continue  # a stale manifest from a checkout is never shipped
        files[f"{TOOLING_PACKAGE}/{path.relative_to(package).as_posix()}"] = (path.read_bytes(), 0o644)
    # the base records, so an installed fork's tools know every base (wafer_sglang.bases)
    files[f"{TOOLING_PACKAGE}/{PACKAGED_RECORD}"] = ((root / PIN_FILE).read_bytes(), 0o644)
    return files


def tools_wheel_name() -> str:
    return f"{TOOLS_DIST.replace('-', '_')}-{tooling_version}-py3-none-any.whl"


def build_tools(root: Path, out_dir: Path) -> Path:
    files = _tooling_files(root)
    dist_info = f"{TOOLS_DIST.replace('-', '_')}-{tooling_version}.dist-info"
    meta = {f"{dist_info}/{name}": data for name, data in _dist_info(root).items()}
    data = _zip(files, meta, f"{dist_info}/RECORD", source_date_epoch(root))
    target = out_dir / tools_wheel_name()
    out_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(target, data)
    return target


def _dist_info(root: Path) -> dict[str, bytes]:
    lts = bases.pins(root).default_base
    extras = {**TOOLING_EXTRAS, "router": router_requirements(lts)}  # the LTS's router pin
    lines = [
        "Metadata-Version: 2.1",
        f"Name: {TOOLS_DIST}",
        f"Version: {tooling_version}",
        "Summary: wafer-sglang-rocm's tools without the engine: bench, eval, checkpoint, cluster, doctor",
        "Requires-Python: >=3.10",
        "Description-Content-Type: text/markdown",
        *(f"Requires-Dist: {r}" for r in TOOLS_REQUIREMENTS),
    ]
    for extra, requirements in extras.items():
        lines.append(f"Provides-Extra: {extra}")
        lines += [f'Requires-Dist: {r}; extra == "{extra}"' for r in requirements]
    readme = (
        "The `wafer-sglang` command of wafer-sglang-rocm: alone on a client machine (no sglang, no "
        "torch), or beside the engine wheel, `wafer-sglang-rocm`, which requires exactly this release.\n"
    )
    name, target = (s.strip() for s in CONSOLE_SCRIPT.split("="))
    return {
        "METADATA": ("\n".join(lines) + "\n\n" + readme).encode(),
        "WHEEL": (
            f"Wheel-Version: 1.0\nGenerator: wafer-sglang-rocm ({tooling_version})\nRoot-Is-Purelib: true\n"
            "Tag: py3-none-any\n"
        ).encode(),
        "entry_points.txt": f"[console_scripts]\n{name} = {target}\n".encode(),
        "top_level.txt": f"{TOOLING_PACKAGE}\n".encode(),
    }
