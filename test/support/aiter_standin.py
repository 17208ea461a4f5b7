"""A stand-in aiter for CI, which has no clone of ROCm/aiter (the fork commits none of aiter's code
or data): the same file layout and the same naming entry points as aiter's — ``get_flydsl_kernel_params``,
the CK codegen's ``get_gemm{1,2}_kernels_list``, ``hsa/<gfx>/fmoe`` CSVs with ``knl_name`` — with
made-up kernels, and tuned CSVs in aiter's format. Tests against the real aiter are in
test_moe_aiter.py (they need WAFER_AITER_SRC, a clone).
"""

from __future__ import annotations

import csv
import io
from pathlib import Path

from support.gitrepo import git

FLYDSL = """
import re
from typing import Dict, Optional

import torch  # aiter's module reads torch names at import; naming calls nothing of it
from aiter.ops.flydsl.utils import is_flydsl_available  # noqa: F401  (a kernel builder import)

_KERNEL_PARAMS = {"flydsl_moe1_s1": {"stage": 1}, "flydsl_moe2_s2": {"stage": 2}}
_DLPACK_SAFE = (torch.uint8, torch.float16, torch.bfloat16)  # read at import, as aiter 9127c94a1 does


def _view_safe(t: torch.Tensor) -> torch.Tensor:  # annotations evaluated at import
    return t.view(torch.uint8)


_SUFFIX_RE = re.compile(r"(_kw(?P<kw>\\d+))?(?P<fp4>_fp4)?$")


def get_flydsl_kernel_params(name: str) -> Optional[Dict]:
    params = _KERNEL_PARAMS.get(name)
    if params is not None:
        return params
    m = _SUFFIX_RE.search(name)
    if m and m.group(0):
        return _KERNEL_PARAMS.get(name[: m.start()])
    return None
"""

CK = """
from chip_info import get_gfx


class _Kernel:
    def __init__(self, name):
        self.name = name


def get_gemm1_kernels_list(a, b, c, nswizzle, quant, act, routed, preshuffle):
    if (a, b, get_gfx()) != ("FP4X2", "FP4X2", "gfx950"):
        raise ValueError("no instances")
    return "gemm1", {0: _Kernel(f"moe_ck2stages_gemm1_256x32_{act}_FP4X2")}


def get_gemm2_kernels_list(a, b, c, nswizzle, quant, routed, preshuffle):
    if (a, b) != ("FP4X2", "FP4X2"):
        raise KeyError(a)
    return "gemm2", {0: _Kernel("moe_ck2stages_gemm2_256x32_FP4X2")}
"""

ASM_KERNEL = "_ZN5aiter21fmoe_fp4_g1u1_stub_32E"
KNOWN = (
    "flydsl_moe1_s1_fp4",
    "flydsl_moe2_s2",
    "moe_ck2stages_gemm1_256x32_silu_FP4X2",
    "moe_ck2stages_gemm2_256x32_FP4X2",
    ASM_KERNEL,
)
COLUMNS = [
    "gfx",
    "cu_num",
    "token",
    "model_dim",
    "inter_dim",
    "expert",
    "topk",
    "act_type",
    "dtype",
    "q_dtype_a",
    "q_dtype_w",
    "q_type",
    "use_g1u1",
    "doweight_stage1",
    "block_m",
    "ksplit",
    "us1",
    "kernelName1",
    "err1",
    "us2",
    "kernelName2",
    "err2",
    "us",
    "run_1stage",
    "tflops",
    "bw",
    "_tag",
]
MXFP4 = {
    "act_type": "ActivationType.Silu",
    "dtype": "torch.bfloat16",
    "q_dtype_a": "torch.float4_e2m1fn_x2",
    "q_dtype_w": "torch.float4_e2m1fn_x2",
    "q_type": "QuantType.per_1x32",
    "use_g1u1": 1,
    "doweight_stage1": 0,
}


def row(token: int, inter_dim: int, expert: int, topk: int, kernels=KNOWN[:2], tag: str = "", **extra) -> dict:
    return {
        "gfx": "gfx950",
        "cu_num": 256,
        "token": token,
        "model_dim": 6144,
        "inter_dim": inter_dim,
        "expert": expert,
        "topk": topk,
        **MXFP4,
        "block_m": 32,
        "ksplit": 0,
        "us1": 10.0,
        "kernelName1": kernels[0],
        "err1": "0.0%",
        "us2": 8.0,
        "kernelName2": kernels[1],
        "err2": "0.0%",
        "us": 18.0,
        "run_1stage": 0,
        "tflops": 1.0,
        "bw": 1.0,
        "_tag": tag,
        **extra,
    }


def tuned_csv(rows: list[dict], columns: list[str] = COLUMNS) -> str:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns, lineterminator="\n", extrasaction="ignore")
    writer.writeheader()
    writer.writerows(rows)
    return buffer.getvalue()


def glm5_rows(expert: int, topk: int, inter_dims=(512, 256), tokens=tuple(2**i for i in range(16)), **kw) -> list[dict]:
    return [row(t, i, expert, topk, **kw) for i in inter_dims for t in tokens]


def write_tree(root: Path, files: dict[str, str] | None = None, *, wheel: bool = False) -> Path:
    """An aiter checkout at ``root``: the naming code, an asm kernel list, aiter's default tuned
    file (one non-GLM row), and ``files`` (relative path -> text). ``wheel``: laid out as a wheel
    installs it (site-packages: csrc/ and hsa/ under aiter_meta/)."""
    base = {
        "aiter/__init__.py": "",
        "aiter/ops/flydsl/moe_kernels.py": FLYDSL,
        "csrc/ck_gemm_moe_2stages_codegen/gemm_moe_ck2stages_common.py": CK,
        "hsa/gfx950/fmoe/silu/fmoe_fp4.csv": f"knl_name,co_name\n{ASM_KERNEL},fmoe_fp4.co\n",
        "aiter/configs/tuned_fmoe.csv": tuned_csv([row(4, 1536, 8, 2, kernels=("", ""))]),
        "aiter/configs/untuned_fmoe.csv": "token\n",
        "LICENSE": "MIT License\n\nCopyright (c) stand-in\n",
    }
    for rel, text in {**base, **(files or {})}.items():
        path = root / ("aiter_meta/" + rel if wheel and not rel.startswith("aiter/") else rel)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root


def commit_tree(clone: Path, files: dict[str, str], message: str) -> str:
    """Commit ``files`` on top of the clone's stand-in tree; returns the commit."""
    if not (clone / ".git").exists():
        clone.mkdir(parents=True, exist_ok=True)
        git(clone, "init", "-q")
    write_tree(clone, files)
    git(clone, "add", "-A")
    git(clone, "commit", "-q", "-m", message)
    return git(clone, "rev-parse", "HEAD")
