"""The fork manifest: what an installed wafer-sglang-rocm was built from.

Written into the engine wheel's ``.dist-info`` as ``fork_manifest.json`` (the engine owns it; the
tools, ``wafer_sglang/``, are another distribution); ``wafer-sglang info`` and ``doctor`` read it
back from the installed distribution.
"""

from __future__ import annotations

import importlib.metadata
import json
from dataclasses import dataclass

from wafer_sglang.errors import WaferError

MANIFEST_NAME = "fork_manifest.json"
ENGINE_DIST = "wafer-sglang-rocm"


@dataclass(frozen=True)
class PatchRecord:
    file: str
    subject: str
    upstream_status: str
    origin: str
    applied_upstream: str


def render(manifest: dict) -> bytes:
    return (json.dumps(manifest, indent=2, sort_keys=True) + "\n").encode()


def installed_manifest() -> dict | None:
    """The manifest of the installed fork, or None where no engine is installed (the tools alone,
    or a checkout)."""
    try:
        dist = importlib.metadata.distribution(ENGINE_DIST)
        text = dist.read_text(MANIFEST_NAME)
        installed = dist.read_text("RECORD") is not None  # not a checkout's egg-info (setup.py egg_info)
    except importlib.metadata.PackageNotFoundError:
        return None
    except (OSError, UnicodeDecodeError) as exc:
        raise _unreadable(exc) from None
    if text is None:
        if not installed:
            return None
        raise _unreadable(f"no {MANIFEST_NAME} in its .dist-info")
    try:
        manifest = json.loads(text)
    except ValueError as exc:
        raise _unreadable(f"not JSON: {exc}") from None
    missing = _missing(manifest)
    if missing:
        raise _unreadable("missing " + ", ".join(missing))
    return manifest


def _missing(manifest) -> list[str]:
    """The fields ``info`` and ``--version`` read that ``manifest`` lacks."""
    if not isinstance(manifest, dict):
        return ["everything (not an object)"]
    missing = [k for k in ("distribution", "version", "python_tag", "base", "patches", "overlay") if k not in manifest]
    base, patches = manifest.get("base"), manifest.get("patches")
    if isinstance(base, dict):
        missing += [f"base.{k}" for k in ("version", "wheel", "sha256") if k not in base]
    if not isinstance(patches, list) or not all(
        isinstance(p, dict) and {"file", "subject", "upstream_status"} <= p.keys() for p in patches
    ):
        missing.append("patches[].file/subject/upstream_status")
    return missing


def _unreadable(why: object) -> WaferError:
    return WaferError(
        f"the installed fork's manifest ({ENGINE_DIST}'s {MANIFEST_NAME}) is damaged ({why}); reinstall {ENGINE_DIST}"
    )


def format_info(manifest: dict | None) -> str:
    if manifest is None:
        return (
            "wafer-sglang tools without the engine: no wafer-sglang-rocm installed here "
            "(install the engine wheel from `wafer-sglang build` to get the patched sglang)"
        )
    base = manifest["base"]
    lines = [
        f"{manifest['distribution']} {manifest['version']} ({manifest['python_tag']})",
        f"base: sglang {base['version']} — {base['wheel']} (sha256 {base['sha256']})",
        f"patches ({len(manifest['patches'])}):",
    ]
    for patch in manifest["patches"]:
        lines.append(f"  {patch['file']}")
        lines.append(f"      {patch['subject']}  [{patch['upstream_status']}]")
    lines.append(f"overlay files: {len(manifest['overlay'])}")
    lines.append("requirements left to the ROCm environment:")
    lines += [f"  {req}  ({why})" for req, why in sorted(manifest["dropped_requirements"].items())]
    return "\n".join(lines)
