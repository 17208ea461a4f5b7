"""The fork manifest: what an installed wafer-sglang-rocm was built from.

Written into the wheel as ``wafer_sglang/fork_manifest.json``; ``wafer-sglang info`` and
``doctor`` read it back from the installed package.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from importlib import resources

from wafer_sglang.errors import WaferError

MANIFEST_NAME = "fork_manifest.json"


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
    """The manifest of the installed fork, or None when running the tooling from a checkout."""
    try:
        text = resources.files("wafer_sglang").joinpath(MANIFEST_NAME).read_text()
    except (FileNotFoundError, ModuleNotFoundError):
        return None
    except (OSError, UnicodeDecodeError) as exc:
        raise _unreadable(exc) from None
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
        f"the installed fork's manifest (wafer_sglang/{MANIFEST_NAME}) is damaged ({why}); reinstall wafer-sglang-rocm"
    )


def format_info(manifest: dict | None) -> str:
    if manifest is None:
        return (
            "wafer-sglang tooling from a source checkout: no fork manifest "
            "(install a wheel from `wafer-sglang build` to get the patched sglang)"
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
