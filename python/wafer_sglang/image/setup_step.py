"""``wafer-sglang image setup``: the Dockerfile's step after the fork wheel is installed into the
upstream image — pin the image's ROCm stack for every later pip, add the fork's missing
requirements under that pin, check AITER_CONFIG_FMOE against aiter's files and the fork's fMoE rows
against the image's own aiter (every kernel they name exists, and aiter's own lookup picks them),
and write the versions manifest (/etc/wafer/versions.json)."""

from __future__ import annotations

import importlib.metadata
import importlib.util
import json
import os
import platform
import subprocess
import sys
from pathlib import Path

from packaging.requirements import Requirement

from wafer_sglang.errors import WaferError
from wafer_sglang.fsutil import atomic_write_text
from wafer_sglang.host.rocm_env import constraints, installed_stack
from wafer_sglang.manifest import installed_manifest
from wafer_sglang.moe.files import aiter_configs_dir, aiter_tuned_files, fork_tuned_files
from wafer_sglang.wheels.metadata import DIST_NAME, TOOLS_DIST

IMAGE_EXTRAS = ("", "router")  # the image serves through sglang-router too


def missing_requirements() -> list[str]:
    """The fork's and its tools' own requirements (and the image's extras) this environment does
    not satisfy."""
    missing = []
    for dist, extras in ((DIST_NAME, IMAGE_EXTRAS), (TOOLS_DIST, ("",))):  # both went in --no-deps
        missing += [r for r in _unmet(dist, extras) if r not in missing]
    return missing


def _unmet(dist: str, extras: tuple[str, ...]) -> list[str]:
    missing = []
    for text in importlib.metadata.requires(dist) or []:
        requirement = Requirement(text)
        if requirement.marker and not any(requirement.marker.evaluate({"extra": e}) for e in extras):
            continue
        unmarked = str(requirement).split(";")[0].strip()  # pip must install it whatever the marker said
        try:
            installed = importlib.metadata.version(requirement.name)
        except importlib.metadata.PackageNotFoundError:
            missing.append(unmarked)
            continue
        if not requirement.specifier.contains(installed, prereleases=True):
            missing.append(unmarked)
    return missing


def check_fmoe(expected: str, fork_dir: Path) -> str:
    actual = ":".join(str(p) for p in aiter_tuned_files(aiter_configs_dir()) + fork_tuned_files(fork_dir))
    if expected != actual:
        raise WaferError(
            "AITER_CONFIG_FMOE does not list exactly aiter's tuned files plus the fork's in this image "
            f"(aiter then ignores the unlisted ones).\n  given: {expected}\n  image: {actual}\n"
            "Record the image's aiter-configs/aiter-fmoe in docker/base-images.toml (docker/build --resolve)."
        )
    return actual


def check_fork_rows(fork_dir: Path) -> dict:
    """The image's own aiter against the fork's rows: every kernel they name must exist in it
    (an unknown one fails at the first MoE forward); then aiter's own lookup over GLM-5's fp4
    keys at TP4/TP8, fused and unfused, with the file list AITER_CONFIG_FMOE names."""
    from wafer_sglang.moe.targets import glm5_coverage, host_target

    if importlib.util.find_spec("flydsl") is None:
        raise WaferError(
            "FlyDSL is not installed in this image: aiter would take its default heuristics for every "
            "flydsl_* row (its is_flydsl_available() is False)"
        )
    report = glm5_coverage(host_target(None, fork_dir))
    if not report.ok:
        misses = [f"{v.key.short()}: {v.status} ({v.detail})" for v in report.verdicts if v.status != "tuned"]
        raise WaferError(
            "the fork's fMoE rows do not fit this image's aiter:\n  "
            + "\n  ".join(report.problems + report.disagreements + misses[:10])
        )
    return {
        "aiter": report.aiter,
        "glm5_fp4_keys": len(report.verdicts),
        "by_status": report.counts(),
        "answered_by": "aiter's own lookup code"
        if report.checked_with_aiter_code
        else "the fork's model of this aiter",
    }


def setup(constraints_path: Path, manifest_path: Path, fork_fmoe: Path, build: dict[str, str]) -> dict:
    stack = installed_stack()
    atomic_write_text(constraints_path, constraints(stack))
    missing = missing_requirements()
    if missing:
        print(f"installing the fork's missing requirements under {constraints_path}: {', '.join(missing)}", flush=True)
        subprocess.run(
            [sys.executable, "-m", "pip", "install", "--no-cache-dir", "-c", str(constraints_path), *missing],
            check=True,
        )
    if installed_stack() != stack:
        raise WaferError(f"installing the fork's requirements changed the ROCm stack: {stack} -> {installed_stack()}")
    fmoe = check_fmoe(os.environ.get("AITER_CONFIG_FMOE", ""), fork_fmoe)
    fmoe_coverage = check_fork_rows(fork_fmoe)
    versions = {
        "image": build,
        "fork": installed_manifest(),
        "python": platform.python_version(),
        "rocm": _rocm_version(),
        "rocm_stack": stack,
        "installed_for_the_fork": missing,
        "aiter_config_fmoe": fmoe.split(":") if fmoe else [],
        "fmoe_coverage": fmoe_coverage,
        "distributions": {
            d.metadata["Name"]: d.version
            for d in sorted(importlib.metadata.distributions(), key=lambda d: (d.metadata["Name"] or "").lower())
        },
    }
    atomic_write_text(manifest_path, json.dumps(versions, indent=2) + "\n")
    return versions


def _rocm_version() -> str | None:
    for path in (Path("/opt/rocm/.info/version"), Path("/opt/rocm/.info/version-dev")):
        if path.is_file():
            return path.read_text().strip()
    return None
