"""How a given aiter merges its tuned fused-MoE CSVs and looks a key up: our model, per commit.

Read from aiter's own code (``aiter/jit/core.py`` ``AITER_CONFIG.update_config_files`` and
``aiter/fused_moe.py`` ``get_2stage_cfgs``) at each commit we model, and checked against that code
by ``moe/aiter_exec.py`` (the same answer key for key, or the tools say they disagree):

* merge (both commits): the listed CSVs are concatenated on the union of their columns; a column
  a file lacks is filled — ``gfx`` from ``cu_num`` (256 -> gfx950, 80/304 -> gfx942), any other
  with 0 (so a file without ``_tag``, merged with files that have it, gets ``_tag`` 0); rows
  repeating the untuned columns + cu_num + gfx (+ _tag) make aiter raise at startup;
* the lookup keeps rows by ``_tag``: at 9127c94a1 only rows whose ``_tag`` is empty (a filled 0
  is not — such a file's rows are silently ignored), at v0.1.18 every row but ``flydsl_fallback``;
* the exact key carries ``act_type``: at 9127c94a1 the enum itself (never equal to the CSV's
  string, so only the act-agnostic lookup hits), at v0.1.18 ``str(activation)``; the
  act-agnostic lookup takes every row; above 32768 tokens smaller tiers are tried.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass, fields
from typing import Literal

from wafer_sglang.errors import WaferError
from wafer_sglang.moe.keys import PADDED_M_TIERS, UNTUNED_COLUMNS, MoeKey

LEGACY_GFX = {256: "gfx950", 80: "gfx942", 304: "gfx942"}
FLYDSL_FALLBACK = "flydsl_fallback"
FILLED_TAG = "0"  # what aiter's merge writes into _tag for a file without the column
NUMERIC = ("cu_num", "token", "model_dim", "inter_dim", "expert", "topk", "use_g1u1", "doweight_stage1")


@dataclass(frozen=True)
class AiterLookup:
    version: str
    commit: str
    keeps: Literal["empty-tag", "all-but-fallback"]
    act_in_key: Literal["enum", "str"]

    def keeps_tag(self, tag: str) -> bool:
        return tag == "" if self.keeps == "empty-tag" else tag != FLYDSL_FALLBACK


LOOKUPS = (
    AiterLookup("0.1.17.dev110+g9127c94a1", "9127c94a18e4398e1eba91f6639e910f0994ad02", "empty-tag", "enum"),
    AiterLookup("0.1.18", "d6de77692f62e411375cf2ea0ec17792141d0540", "all-but-fallback", "str"),
)


def lookup_for(aiter: str) -> AiterLookup | None:
    """The model of an aiter given as a commit (or prefix) or a version (``0.1.18``,
    ``0.1.17.dev110+g9127c94a1``); None when we have no model of it."""
    for model in LOOKUPS:
        if aiter == model.version or (len(aiter) >= 7 and model.commit.startswith(aiter.removeprefix("g"))):
            return model
        if "+g" in aiter and model.commit.startswith(aiter.rsplit("+g", 1)[1]):
            return model
    return None


@dataclass(frozen=True)
class Row:
    key: MoeKey
    tag: str
    kernel1: str
    kernel2: str
    file: str
    line: int

    @property
    def where(self) -> str:
        return f"{self.file}:{self.line}"


@dataclass
class Merged:
    rows: list[Row]
    untagged_files: list[str]  # files whose rows got _tag 0 in the merge
    duplicates: list[list[Row]]


def merge(files: list[tuple[str, str]]) -> Merged:
    """aiter's merge of ``files`` [(name, CSV text)], in order."""
    tables = [(name, _read(name, text)) for name, text in files]
    any_tag = any("_tag" in columns for _, (columns, _) in tables)
    rows, untagged = [], []
    for name, (columns, records) in tables:
        if any_tag and "_tag" not in columns:
            untagged.append(name)
        for line, record in records:
            tag = (record.get("_tag") or "").strip() if "_tag" in columns else (FILLED_TAG if any_tag else "")
            rows.append(
                Row(
                    _key(name, line, record),
                    tag,
                    (record.get("kernelName1") or "").strip(),
                    (record.get("kernelName2") or "").strip(),
                    name,
                    line,
                )
            )
    groups: dict[tuple, list[Row]] = {}
    for row in rows:
        groups.setdefault((row.key, row.tag), []).append(row)
    return Merged(rows, untagged, [g for g in groups.values() if len(g) > 1])


def resolve(keys: list[MoeKey], merged: Merged, model: AiterLookup) -> dict[MoeKey, Row | None]:
    """The row aiter picks for each key (None: its default heuristics)."""
    primary: dict[MoeKey, Row] = {}
    fallback: dict[MoeKey, Row] = {}
    for row in merged.rows:
        if not model.keeps_tag(row.tag):
            continue
        if model.act_in_key == "str":
            primary.setdefault(row.key, row)
        fallback.setdefault(_act_free(row.key), row)
    found = {}
    for key in keys:
        tiers = [key] + [key.replace(token=t) for t in reversed(PADDED_M_TIERS) if key.token > t]
        found[key] = next((hit for k in tiers if (hit := primary.get(k) or fallback.get(_act_free(k)))), None)
    return found


def ignored_rows(merged: Merged, model: AiterLookup) -> list[Row]:
    return [row for row in merged.rows if not model.keeps_tag(row.tag)]


def _act_free(key: MoeKey) -> MoeKey:
    return key.replace(act_type="*")


def _read(name: str, text: str) -> tuple[list[str], list[tuple[int, dict]]]:
    reader = csv.DictReader(io.StringIO(text))
    columns = list(reader.fieldnames or [])
    missing = [c for c in ("cu_num", *UNTUNED_COLUMNS) if c not in columns]  # aiter's key columns
    if missing:
        raise WaferError(f"{name}: not an aiter tuned fMoE CSV, missing columns {missing}")
    return columns, list(enumerate(reader, start=2))


def _key(name: str, line: int, record: dict) -> MoeKey:
    try:
        values = {f.name: (record.get(f.name) or "").strip() for f in fields(MoeKey)}
        for column in NUMERIC:
            values[column] = int(float(values[column]))
    except ValueError as exc:
        raise WaferError(f"{name}:{line}: malformed row ({exc})") from None
    if values["gfx"] in ("", "0", "nan", "None"):
        values["gfx"] = LEGACY_GFX.get(values["cu_num"], "")
    return MoeKey(**values)
