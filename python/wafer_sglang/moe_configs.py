"""aiter's fp4 fused-MoE tuned configs: the lookup keys a model hits, coverage, additive merge.

Matched against aiter v0.1.18 (d6de77692f62):
* ``aiter/fused_moe.py`` ``get_2stage_cfgs`` keys a tuned row on (gfx, cu_num, token, model_dim,
  inter_dim, expert, topk, act_type, dtype, q_dtype_a, q_dtype_w, q_type, use_g1u1,
  doweight_stage1), ``token`` being ``get_padded_M(M)``: the next power of two below 32768,
  then the tiers 32768 / 131072; a miss tries act_type-agnostic rows (not ck2stages kernels)
  and, above 32768, smaller tiers; then falls back to default heuristics.
* ``aiter/jit/core.py`` ``AITER_CONFIG.get_config_file``: without ``AITER_CONFIG_FMOE`` it
  merges ``configs/tuned_fmoe.csv`` with every ``configs/model_configs/*tuned_fmoe*.csv``
  (not "untuned"); **with it set, only the listed files are used** — so the fork lists aiter's
  own files plus its own, never its own alone. ``update_config_files`` raises on rows that
  repeat the untuned columns + cu_num (+ gfx, + _tag).
* legacy CSVs without a ``gfx`` column: ``chip_info.gfx_from_cu_num`` (256 -> gfx950, 80/304 -> gfx942).
"""

from __future__ import annotations

import csv
import importlib.util
import io
from dataclasses import astuple, dataclass, fields
from pathlib import Path

from wafer_sglang.errors import WaferError

AITER_MATCHED = "aiter v0.1.18 (d6de77692f62)"
UNTUNED_COLUMNS = ["token", "model_dim", "inter_dim", "expert", "topk", "act_type", "dtype",
                   "q_dtype_a", "q_dtype_w", "q_type", "use_g1u1", "doweight_stage1"]
LEGACY_GFX = {256: "gfx950", 80: "gfx942", 304: "gfx942"}
PADDED_M_TIERS = (32768, 131072)
MI355X = ("gfx950", 256)
FORK_CONFIGS = Path(__file__).parent / "data" / "fmoe"
# Quark MXFP4 (w4a4, 1x32 e8m0 scales) through sglang's aiter runner: bf16 activations in,
# fp4 x2 packed weights and dynamic fp4 activations, SiLU, gate+up fused (g1u1).
MXFP4 = dict(act_type="ActivationType.Silu", dtype="torch.bfloat16", q_dtype_a="torch.float4_e2m1fn_x2",
             q_dtype_w="torch.float4_e2m1fn_x2", q_type="QuantType.per_1x32", use_g1u1=1, doweight_stage1=0)


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
        return (f"gfx={self.gfx} cu_num={self.cu_num} token={self.token} model_dim={self.model_dim} "
                f"inter_dim={self.inter_dim} expert={self.expert} topk={self.topk} {self.q_type}")

    def untuned_row(self) -> list:
        return [getattr(self, c) for c in UNTUNED_COLUMNS]


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


def model_keys(config: dict, tp: int, ep: int = 1, fused_shared: bool = False, max_tokens: int = 16384,
               gfx: str = MI355X[0], cu_num: int = MI355X[1]) -> list[MoeKey]:
    """The keys an MXFP4 DeepSeek-V2-family MoE (GLM-5) looks up on one rank at TP x EP."""
    try:
        model_dim, inter = int(config["hidden_size"]), int(config["moe_intermediate_size"])
        experts, topk = int(config["n_routed_experts"]), int(config["num_experts_per_tok"])
        shared = int(config.get("n_shared_experts") or 0)
    except (KeyError, TypeError, ValueError) as exc:
        raise WaferError(f"model config lacks the MoE fields (hidden_size, moe_intermediate_size, n_routed_experts, num_experts_per_tok): {exc}") from None
    if tp < 1 or ep < 1 or tp % ep:
        raise WaferError(f"--ep {ep} must divide --tp {tp}")
    moe_tp = tp // ep
    if inter % moe_tp or experts % ep:
        raise WaferError(f"moe_intermediate_size {inter} / n_routed_experts {experts} do not split over MoE TP {moe_tp} x EP {ep}")
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


@dataclass(frozen=True)
class TunedRow:
    key: MoeKey
    kernel1: str
    tag: str
    file: Path
    line: int


def read_tuned(path: Path) -> list[TunedRow]:
    """Rows of an aiter tuned fMoE CSV; a missing column or a bad value is an error naming the line."""
    try:
        text = path.read_text()
    except OSError as exc:
        raise WaferError(f"cannot read tuned config {path}: {exc}") from None
    reader = csv.DictReader(io.StringIO(text))
    columns = set(reader.fieldnames or [])
    missing = [c for c in ["cu_num", *UNTUNED_COLUMNS] if c not in columns]
    if missing:
        raise WaferError(f"{path}: not an aiter tuned fMoE CSV, missing columns {missing}")
    rows = []
    for line, record in enumerate(reader, start=2):
        try:
            cu_num = int(record["cu_num"])
            gfx = (record.get("gfx") or "").strip()
            values = {f.name: record[f.name] for f in fields(MoeKey) if f.name not in ("gfx", "cu_num")}
            for name in ("token", "model_dim", "inter_dim", "expert", "topk", "use_g1u1", "doweight_stage1"):
                values[name] = int(float(values[name]))
        except (TypeError, ValueError) as exc:
            raise WaferError(f"{path}:{line}: malformed row ({exc})") from None
        if gfx in ("", "0", "nan", "None"):
            gfx = LEGACY_GFX.get(cu_num, "")
        key = MoeKey(gfx, cu_num, **values)
        rows.append(TunedRow(key, record.get("kernelName1") or "", record.get("_tag") or "", path, line))
    return rows


def aiter_configs_dir(explicit: Path | None = None) -> Path | None:
    """aiter's ``configs/`` folder: ``explicit`` (an aiter checkout or package), else the installed
    aiter's, found without importing it."""
    if explicit is not None:
        for candidate in (explicit / "aiter" / "configs", explicit / "configs"):
            if (candidate / "tuned_fmoe.csv").is_file():
                return candidate
        raise WaferError(f"{explicit} holds no aiter configs (aiter/configs/tuned_fmoe.csv)")
    spec = importlib.util.find_spec("aiter")
    if spec is None or not spec.submodule_search_locations:
        return None
    configs = Path(next(iter(spec.submodule_search_locations))) / "configs"
    return configs if configs.is_dir() else None


def aiter_tuned_files(configs: Path | None) -> list[Path]:
    """The files aiter merges when AITER_CONFIG_FMOE is unset (get_config_file)."""
    if configs is None:
        return []
    model_configs = sorted(p for p in (configs / "model_configs").glob("*tuned_fmoe*.csv") if p.is_file() and "untuned" not in p.name)
    default = configs / "tuned_fmoe.csv"
    return ([default] if default.is_file() else []) + model_configs


def fork_tuned_files(folder: Path | None = None) -> list[Path]:
    folder = folder or FORK_CONFIGS
    return sorted(p for p in folder.glob("*tuned_fmoe*.csv") if "untuned" not in p.name) if folder.is_dir() else []


def merged_files(configs: Path | None, fork_folder: Path | None = None) -> list[Path]:
    return aiter_tuned_files(configs) + fork_tuned_files(fork_folder)


def config_fmoe_value(files: list[Path]) -> str:
    """The AITER_CONFIG_FMOE value: aiter's own files first, then the fork's, ':'-joined."""
    return ":".join(str(f.resolve()) for f in files)


def duplicates(rows: list[TunedRow]) -> list[list[TunedRow]]:
    """Rows aiter's merge would reject: equal untuned columns + cu_num + gfx (+ _tag)."""
    groups: dict[tuple, list[TunedRow]] = {}
    for row in rows:
        groups.setdefault((astuple(row.key), row.tag), []).append(row)
    return [group for group in groups.values() if len(group) > 1]


def _disabled_act(key: MoeKey) -> MoeKey:
    return MoeKey(**{**key.__dict__, "act_type": "*"})


def coverage(keys: list[MoeKey], rows: list[TunedRow]) -> dict[MoeKey, TunedRow | None]:
    """Which row aiter would use for each key (None: default heuristics, the slow fallback)."""
    primary, fallback = {}, {}
    for row in rows:
        if row.tag == "flydsl_fallback":
            continue
        primary.setdefault(row.key, row)
        if "moe_ck2stages" not in row.kernel1:
            fallback.setdefault(_disabled_act(row.key), row)
    found: dict[MoeKey, TunedRow | None] = {}
    for key in keys:
        candidates = [key]
        if key.token > PADDED_M_TIERS[0]:
            candidates += [MoeKey(**{**key.__dict__, "token": t}) for t in reversed(PADDED_M_TIERS) if t < key.token]
        found[key] = next((primary.get(c) or fallback.get(_disabled_act(c)) for c in candidates
                           if primary.get(c) or fallback.get(_disabled_act(c))), None)
    return found
