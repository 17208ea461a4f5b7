"""The fork's GLM-5 fp4 fused-MoE rows for one aiter, made from aiter's own tuned rows.

Nothing here is measured by us. Sources, read from a clone of ROCm/aiter:

* E=257 / topk 9 (shared expert fused): aiter v0.1.18's ``glm5_fp4_tuned_fmoe.csv``, tuned on
  MI355X upstream;
* E=256 / topk 8 (unfused: shared experts excluded from quantization, the MTP draft): aiter
  PR #4344's retuned file (commit 175e01c8f8a0, closed unmerged), tuned on MI355X upstream;
* every (token, inter_dim) of E=256/topk 8 the second source lacks, or names a kernel the target
  aiter cannot run: the E=257/topk 9 row of the same token and inter_dim, *transferred* (kernel
  names carry no E/topk, so it is a valid config, but not measured for this shape).

A source row whose kernel names the target aiter does not know is left out (and said so). The
output is in the target's format (``_tag`` column, empty: aiter 9127c94a1 ignores untagged rows)
with a provenance sidecar for every row and aiter's MIT notice beside it.
"""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass
from pathlib import Path

from wafer_sglang.errors import WaferError
from wafer_sglang.fsutil import atomic_write_text
from wafer_sglang.moe.aiter_tree import AiterTree
from wafer_sglang.moe.kernel_names import KernelNames

ROWS_FILE = "wafer_glm5_fp4_tuned_fmoe.csv"
PROVENANCE_FILE = "wafer_glm5_fp4_tuned_fmoe.provenance.json"
NOTICE_FILE = "NOTICE.aiter"
GLM5_FP4 = "aiter/configs/model_configs/glm5_fp4_tuned_fmoe.csv"
MEASURED = "tuned on MI355X upstream"
TRANSFERRED = "transferred, not measured"


@dataclass(frozen=True)
class Source:
    label: str
    commit: str
    url: str
    shape: tuple[int, int]  # (expert, topk) taken from it


SOURCES = (
    Source(
        "aiter v0.1.18",
        "d6de77692f62e411375cf2ea0ec17792141d0540",
        "https://github.com/ROCm/aiter/blob/v0.1.18/" + GLM5_FP4,
        (257, 9),
    ),
    Source(
        "aiter PR #4344",
        "175e01c8f8a0c7e4cf4b6caddf0afbec854069f5",
        "https://github.com/ROCm/aiter/pull/4344",
        (256, 8),
    ),
)


@dataclass
class ForkRows:
    columns: list[str]
    rows: list[dict]  # in output order
    provenance: list[dict]  # one per row, same order
    dropped: list[dict]  # source rows left out, with why
    notice: str
    sources: tuple[Source, ...] = SOURCES

    def counts(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for entry in self.provenance:
            counts[entry["provenance"]] = counts.get(entry["provenance"], 0) + 1
        return counts


def build_rows(
    clone: Path, target: KernelNames, target_label: str, sources: tuple[Source, Source] = SOURCES
) -> ForkRows:
    """``sources``: where the fused and the unfused rows come from (aiter's, by default)."""
    fused_source, unfused_source = sources
    fused = _source_rows(clone, fused_source)
    unfused = _source_rows(clone, unfused_source)
    columns = list(fused[0][1].keys()) if fused else []
    if "_tag" not in columns:
        columns.append("_tag")
    kept, provenance, dropped = [], [], []
    by_shape: dict[tuple, tuple[Source, int, dict]] = {}
    for source, entries in ((fused_source, fused), (unfused_source, unfused)):
        for line, row in entries:
            missing = target.unresolved(row.get("kernelName1", ""), row.get("kernelName2", ""))
            if missing:
                dropped.append(
                    {
                        "source": source.label,
                        "commit": source.commit,
                        "line": line,
                        **_shape(row),
                        "why": f"{target_label} has no kernel {', '.join(missing)}",
                    }
                )
            else:
                by_shape[_shape_key(row)] = (source, line, row)
    fused_shape, unfused_shape = fused_source.shape, unfused_source.shape
    for token, inter_dim in sorted({(k[0], k[1]) for k in by_shape if k[2:] == fused_shape}):
        for shape in (fused_shape, unfused_shape):
            hit = by_shape.get((token, inter_dim, *shape))
            if hit is not None:
                source, line, row = hit
                kept.append({**row, "_tag": ""})
                provenance.append(_entry(row, MEASURED, source, line))
                continue
            source, line, row = by_shape[(token, inter_dim, *fused_shape)]
            kept.append({**row, "expert": str(shape[0]), "topk": str(shape[1]), "_tag": ""})
            provenance.append(
                {
                    **_entry(kept[-1], TRANSFERRED, source, line),
                    "transferred_from": dict(zip(("expert", "topk"), fused_shape)),
                }
            )
    license_text = AiterTree.at(clone, fused_source.commit).read("LICENSE") or ""
    notice = (
        "The rows in "
        + ROWS_FILE
        + " are data from ROCm/aiter ("
        + ", ".join(f"{s.label}: {s.url}" for s in sources)
        + "), used under its license:\n\n"
        + license_text
    )
    return ForkRows(columns, kept, provenance, dropped, notice, sources)


def write_rows(rows: ForkRows, out_dir: Path, target: dict) -> list[Path]:
    """The rows CSV, its provenance sidecar and aiter's notice, written atomically."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=rows.columns, lineterminator="\n", extrasaction="ignore")
    writer.writeheader()
    writer.writerows(rows.rows)
    sidecar = {
        "tool": "wafer-sglang moe rows",
        "target_aiter": target,
        "sources": [s.__dict__ | {"shape": list(s.shape)} for s in rows.sources],
        "counts": rows.counts(),
        "rows": [{"line": i, **p} for i, p in enumerate(rows.provenance, start=2)],
        "left_out": rows.dropped,
    }
    paths = [out_dir / ROWS_FILE, out_dir / PROVENANCE_FILE, out_dir / NOTICE_FILE]
    for path, text in zip(paths, (buffer.getvalue(), json.dumps(sidecar, indent=2) + "\n", rows.notice)):
        atomic_write_text(path, text)
    return paths


def read_provenance(rows_file: Path) -> dict[int, dict]:
    """line -> provenance entry for a rows file written by ``write_rows`` ({} for other files)."""
    sidecar = rows_file.with_name(rows_file.name.removesuffix(".csv") + ".provenance.json")
    if not sidecar.is_file():
        return {}
    try:
        return {entry["line"]: entry for entry in json.loads(sidecar.read_text())["rows"]}
    except (ValueError, KeyError, TypeError) as exc:
        raise WaferError(f"{sidecar}: not a provenance sidecar ({exc})") from None


def _source_rows(clone: Path, source: Source) -> list[tuple[int, dict]]:
    text = AiterTree.at(clone, source.commit).read(GLM5_FP4)
    if text is None:
        raise WaferError(f"{source.label} ({source.commit[:12]}) has no {GLM5_FP4}")
    return [
        (line, row)
        for line, row in enumerate(csv.DictReader(io.StringIO(text)), start=2)
        if (int(row["expert"]), int(row["topk"])) == source.shape
    ]


def _shape_key(row: dict) -> tuple[int, int, int, int]:
    return int(row["token"]), int(row["inter_dim"]), int(row["expert"]), int(row["topk"])


def _shape(row: dict) -> dict:
    return dict(zip(("token", "inter_dim", "expert", "topk"), _shape_key(row)))


def _entry(row: dict, provenance: str, source: Source, line: int) -> dict:
    return {
        **_shape(row),
        "provenance": provenance,
        "source": source.label,
        "commit": source.commit,
        "source_line": line,
        "kernels": [row.get("kernelName1", ""), row.get("kernelName2", "")],
    }


@dataclass(frozen=True)
class Refreshed:
    rows: ForkRows
    paths: list[Path]  # the rows file, its provenance, aiter's license
    label: str  # "aiter <version>"
    commit: str


def refresh(root: Path, image_name: str, aiter_src: Path, out_dir: Path | None = None) -> Refreshed:
    """The fork's tuned rows for an image's aiter, rebuilt from a clone of it and written (to the
    image's rows folder by default): `moe rows`, and `image build --aiter-src` before it builds."""
    from wafer_sglang.bases import base_image
    from wafer_sglang.moe.files import fork_rows_dir
    from wafer_sglang.moe.kernel_names import kernel_names

    image = base_image(root, image_name, require_aiter=True)
    label = f"aiter {image.aiter_version}"
    rows = build_rows(aiter_src, kernel_names(AiterTree.at(aiter_src, image.aiter_commit)), label)
    target = {"version": image.aiter_version, "commit": image.aiter_commit}
    paths = write_rows(rows, out_dir or fork_rows_dir(root, image_name), target)
    return Refreshed(rows, paths, label, image.aiter_commit)
