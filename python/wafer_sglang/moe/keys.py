"""The keys a GLM-5 (DeepSeek-V2-family) MXFP4 MoE looks up in aiter's tuned fused-MoE configs.

aiter's ``get_2stage_cfgs`` keys a tuned row on (gfx, cu_num, token, model_dim, inter_dim,
expert, topk, act_type, dtype, q_dtype_a, q_dtype_w, q_type, use_g1u1, doweight_stage1), token
being ``get_padded_M(M)``: the next power of two below 32768, then the tiers 32768 / 131072.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass

from wafer_sglang.errors import WaferError

UNTUNED_COLUMNS = [
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
]
PADDED_M_TIERS = (32768, 131072)
MI355X = ("gfx950", 256)
# Quark MXFP4 (w4a4, 1x32 e8m0 scales) through sglang's aiter runner: bf16 activations in,
# fp4 x2 packed weights and dynamic fp4 activations, SiLU, gate+up fused (g1u1).
MXFP4 = dict(
    act_type="ActivationType.Silu",
    dtype="torch.bfloat16",
    q_dtype_a="torch.float4_e2m1fn_x2",
    q_dtype_w="torch.float4_e2m1fn_x2",
    q_type="QuantType.per_1x32",
    use_g1u1=1,
    doweight_stage1=0,
)


@dataclass(frozen=True, order=True)
class MoeKey:
    gfx: str
    cu_num: int
    token: int
    model_dim: int
    inter_dim: int
    expert: int
    topk: int
    act_type: str
    dtype: str
    q_dtype_a: str
    q_dtype_w: str
    q_type: str
    use_g1u1: int
    doweight_stage1: int

    def short(self) -> str:
        return (
            f"gfx={self.gfx} cu_num={self.cu_num} token={self.token} model_dim={self.model_dim} "
            f"inter_dim={self.inter_dim} expert={self.expert} topk={self.topk} {self.q_type}"
        )

    def untuned_row(self) -> list:
        return [getattr(self, c) for c in UNTUNED_COLUMNS]

    def replace(self, **changes) -> MoeKey:
        return MoeKey(**{**self.__dict__, **changes})


def get_padded_m(m: int) -> int:
    """aiter's get_padded_M."""
    if m < PADDED_M_TIERS[0]:
        return 1 if m <= 1 else 1 << (m - 1).bit_length()
    return max(t for t in PADDED_M_TIERS if m >= t)


def padded_tokens(max_tokens: int) -> list[int]:
    """Every value get_padded_M returns for a batch of 1..max_tokens tokens."""
    top = get_padded_m(min(max(1, max_tokens), PADDED_M_TIERS[0] - 1))
    buckets = {1 << i for i in range(top.bit_length())}
    return sorted(buckets | {t for t in PADDED_M_TIERS if t <= max_tokens})


def model_keys(
    config: dict,
    tp: int,
    ep: int = 1,
    fused_shared: bool = False,
    max_tokens: int = 16384,
    gfx: str = MI355X[0],
    cu_num: int = MI355X[1],
) -> list[MoeKey]:
    """The keys an MXFP4 DeepSeek-V2-family MoE (GLM-5) looks up on one rank at TP x EP."""
    try:
        model_dim, inter = int(config["hidden_size"]), int(config["moe_intermediate_size"])
        experts, topk = int(config["n_routed_experts"]), int(config["num_experts_per_tok"])
        shared = int(config.get("n_shared_experts") or 0)
    except (KeyError, TypeError, ValueError) as exc:
        raise WaferError(
            "model config lacks the MoE fields (hidden_size, moe_intermediate_size, "
            f"n_routed_experts, num_experts_per_tok): {exc}"
        ) from None
    if tp < 1 or ep < 1 or tp % ep:
        raise WaferError(f"--ep {ep} must divide --tp {tp}")
    moe_tp = tp // ep
    if inter % moe_tp or experts % ep:
        raise WaferError(
            f"moe_intermediate_size {inter} / n_routed_experts {experts} do not split over MoE TP {moe_tp} x EP {ep}"
        )
    extra = shared if fused_shared else 0
    return [
        MoeKey(gfx, cu_num, token, model_dim, inter // moe_tp, experts // ep + extra, topk + extra, **MXFP4)
        for token in padded_tokens(max_tokens)
    ]


def write_untuned(keys: list[MoeKey]) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(UNTUNED_COLUMNS)
    for key in keys:
        writer.writerow(key.untuned_row())
    return buffer.getvalue()
