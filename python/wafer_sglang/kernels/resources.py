"""What a compiled kernel costs on its CU, read from its AMDGPU code object metadata (the
``.amdhsa``/``amdhsa.kernels`` fields Triton's amdgcn text carries), and the occupancy that follows.

Occupancy (waves per SIMD) is the lower of what the register file and the LDS allow:
CDNA3/CDNA4 give each SIMD lane 512 VGPRs (architectural and accumulation registers share them;
with AGPRs the architectural count is aligned to 4 first), allocated in granules of 8, and at most
8 waves per SIMD; a CU has 4 SIMDs and 64 KiB (gfx942) or 160 KiB (gfx950) of LDS, shared by the
workgroups resident on it. SGPRs (800 per SIMD) never bind first at these counts and are not modelled.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass

LDS_PER_CU = {"gfx942": 64 * 1024, "gfx950": 160 * 1024}
VGPRS_PER_SIMD_LANE = 512
VGPR_GRANULE = 8
MAX_WAVES_PER_SIMD = 8
SIMDS_PER_CU = 4
FIELDS = {
    "vgpr": "vgpr_count",
    "sgpr": "sgpr_count",
    "agpr": "agpr_count",
    "vgpr_spill": "vgpr_spill_count",
    "sgpr_spill": "sgpr_spill_count",
    "scratch_bytes": "private_segment_fixed_size",
    "lds_bytes": "group_segment_fixed_size",
}


@dataclass(frozen=True)
class Resources:
    vgpr: int
    sgpr: int
    agpr: int
    vgpr_spill: int
    sgpr_spill: int
    scratch_bytes: int
    lds_bytes: int
    num_warps: int
    waves_per_simd: int
    limited_by: str  # "vgpr", "lds" or "max"
    instructions: int
    fp8_conversions: list[str]  # the v_cvt_*fp8* instructions used (hardware fp8 casts)

    @property
    def spills(self) -> int:
        return self.vgpr_spill + self.sgpr_spill

    def as_dict(self) -> dict:
        return {**asdict(self), "spills": self.spills}


def read(amdgcn: str, num_warps: int, arch: str) -> Resources:
    values = {}
    for name, key in FIELDS.items():
        found = re.search(rf"\.{key}:\s*(\d+)", amdgcn)
        values[name] = int(found[1]) if found else 0
    body = [line.split()[0] for line in amdgcn.splitlines() if line.startswith("\t") and _is_instruction(line)]
    waves, limit = occupancy(values["vgpr"], values["agpr"], values["lds_bytes"], num_warps, arch)
    return Resources(
        **values,
        num_warps=num_warps,
        waves_per_simd=waves,
        limited_by=limit,
        instructions=len(body),
        fp8_conversions=sorted({op for op in body if op.startswith("v_cvt") and "fp8" in op}),
    )


def _is_instruction(line: str) -> bool:
    text = line.strip()
    return bool(text) and not text.startswith((".", ";", "//")) and not text.endswith(":")


def occupancy(vgpr: int, agpr: int, lds: int, num_warps: int, arch: str) -> tuple[int, str]:
    registers = (_round_up(vgpr, 4) + agpr) if agpr else vgpr
    by_vgpr = min(MAX_WAVES_PER_SIMD, VGPRS_PER_SIMD_LANE // max(_round_up(registers, VGPR_GRANULE), VGPR_GRANULE))
    by_lds = MAX_WAVES_PER_SIMD
    if lds:
        workgroups = LDS_PER_CU.get(arch, LDS_PER_CU["gfx942"]) // lds
        by_lds = min(MAX_WAVES_PER_SIMD, workgroups * num_warps // SIMDS_PER_CU)
    if min(by_vgpr, by_lds) == MAX_WAVES_PER_SIMD:
        return MAX_WAVES_PER_SIMD, "max"
    return (by_vgpr, "vgpr") if by_vgpr <= by_lds else (by_lds, "lds")


def _round_up(value: int, granule: int) -> int:
    return -(-value // granule) * granule
