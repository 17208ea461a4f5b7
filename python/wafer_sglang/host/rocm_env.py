"""The ROCm stack a host provides and the fork must never replace.

The fork's wheel declares none of these (see metadata.DROPPED_REQUIREMENTS), but upstream's
other requirements can still reach them transitively: e.g. an unpinned ``compressed-tensors``
resolves to a release needing a newer torch than the host's ROCm build, and pip would then
install a CUDA torch from PyPI over it. Installing with ``-c`` on the constraints printed here
pins the stack to what is installed, so pip picks compatible releases instead.
"""

from __future__ import annotations

import importlib.metadata
import re

from wafer_sglang.errors import WaferError

ROCM_STACK = (
    "torch",
    "torchvision",
    "torchaudio",
    "triton",
    "pytorch-triton-rocm",
    "amd-aiter",
    "aiter",
    "sgl-kernel",
    "sglang-kernel",
)


def _canonical(name: str) -> str:
    # PEP 503 normalisation, inline: this runs right after a --no-deps install, before `packaging`.
    return re.sub(r"[-_.]+", "-", name).lower()


def installed_stack() -> dict[str, str]:
    """Name -> version of every ROCm-stack distribution installed in this environment."""
    found = {}
    for dist in importlib.metadata.distributions():
        name = _canonical(dist.metadata["Name"] or "")
        if name in ROCM_STACK:
            found[name] = dist.version
    return found


def constraints(stack: dict[str, str]) -> str:
    torch = stack.get("torch")
    if torch is None:
        raise WaferError(
            "torch is not installed: install the ROCm build of torch first (the fork never installs torch)"
        )
    if "rocm" not in torch:
        raise WaferError(f"torch {torch} is not a ROCm build; install torch from a ROCm index or use the ROCm image")
    header = "# The ROCm stack of this environment: `pip install -c THIS_FILE wafer-sglang-rocm` keeps it.\n"
    return header + "".join(f"{name}=={version}\n" for name, version in sorted(stack.items()))
