"""`moe tune`: the installed aiter's own tuner on the keys a model hits, on an MI355X host.

No tuned numbers are made up here: the rows come from aiter's tuner
(csrc/ck_gemm_moe_2stages_codegen/gemm_moe_tune.py) of the aiter the server will run, on the
GPU; we only choose the keys, put the output in the format that aiter reads (aiter 9127c94a1
ignores rows without an empty ``_tag``), check it covers the keys, and record where it came
from. ``verify`` runs the same tuner's ``--run_config`` on rows already made (the fork's
shipped rows, transferred ones included) so an MI355X owner can see each row run, and measure.
"""

from __future__ import annotations

import csv
import io
import json
import shlex
import subprocess
import sys
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from wafer_sglang.errors import WaferError
from wafer_sglang.fsutil import atomic_write_text
from wafer_sglang.host.system import Host, gpus
from wafer_sglang.moe import lookup
from wafer_sglang.moe.aiter_tree import AiterTree
from wafer_sglang.moe.fork_rows import PROVENANCE_FILE
from wafer_sglang.moe.keys import MoeKey, write_untuned

TUNER = "csrc/ck_gemm_moe_2stages_codegen/gemm_moe_tune.py"
TUNED_HERE = "tuned on this host"


@dataclass(frozen=True)
class TuneJob:
    tree: AiterTree  # the aiter the server runs (its tuner, its format)
    model: lookup.AiterLookup | None
    untuned: Path
    tuned: Path

    def command(self, *extra: str) -> list[str]:
        tuner = self.tree.root / TUNER
        if not tuner.is_file():
            tuner = self.tree.root / "aiter_meta" / TUNER
        return [sys.executable, str(tuner), "-i", str(self.untuned), *extra]


def tune(job: TuneJob, keys: list[MoeKey], *, dry_run: bool, host: Host | None = None) -> int:
    command = job.command("-o", str(job.tuned))
    print(f"{len(keys)} keys -> {job.untuned}")
    print(shlex.join(command))
    if dry_run:
        return 0
    _require_mi355x(host or Host(), job)
    atomic_write_text(job.untuned, write_untuned(keys))
    subprocess.run(command, check=True)
    normalize(job.tuned, job.model)
    merged = lookup.merge([(str(job.tuned), job.tuned.read_text())])
    found = lookup.resolve(keys, merged, job.model or lookup.LOOKUPS[-1])
    missing = [k for k, row in found.items() if row is None]
    atomic_write_text(
        job.tuned.with_name(job.tuned.name.removesuffix(".csv") + ".provenance.json"),
        json.dumps(provenance(job, command, merged, missing, host or Host()), indent=2) + "\n",
    )
    print(f"wrote {job.tuned} ({len(merged.rows)} rows); {len(missing)} key(s) still uncovered")
    return 1 if missing else 0


def verify(job: TuneJob, rows_file: Path, *, dry_run: bool, host: Host | None = None) -> int:
    """aiter's ``--run_config`` on every row of ``rows_file`` (its production operator with the
    row's kernels, checked against its reference)."""
    try:
        merged = lookup.merge([(str(rows_file), rows_file.read_text())])
    except OSError as exc:
        raise WaferError(f"cannot read {rows_file}: {exc.strerror}") from None
    command = job.command("--run_config", str(rows_file))
    print(f"{len(merged.rows)} rows of {rows_file} -> {job.untuned}")
    print(shlex.join(command))
    if dry_run:
        return 0
    _require_mi355x(host or Host(), job)
    atomic_write_text(job.untuned, write_untuned([row.key for row in merged.rows]))
    return subprocess.run(command).returncode


def normalize(tuned: Path, model: lookup.AiterLookup | None) -> bool:
    """Give a tuner's output the ``_tag`` column (empty) an aiter that keeps only untagged-empty
    rows needs; True when the file was rewritten."""
    text = tuned.read_text()
    reader = csv.DictReader(io.StringIO(text))
    if "_tag" in (reader.fieldnames or []) or (model is not None and model.keeps != "empty-tag"):
        return False
    rows = list(reader)
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=[*reader.fieldnames, "_tag"], lineterminator="\n")
    writer.writeheader()
    writer.writerows({**row, "_tag": ""} for row in rows)
    atomic_write_text(tuned, buffer.getvalue())
    return True


def provenance(job: TuneJob, command: list[str], merged: lookup.Merged, missing: list[MoeKey], host: Host) -> dict:
    dists = host.distributions()
    version_file = host.path("/opt/rocm/.info/version")
    return {
        "tool": "wafer-sglang moe tune",
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "target_aiter": {
            "version": dists.get("amd-aiter") or dists.get("aiter"),
            "commit": job.model.commit if job.model else None,
        },
        "torch": dists.get("torch"),
        "rocm": version_file.read_text().strip() if version_file.is_file() else None,
        "gpus": gpus(host),
        "command": command,
        "rows": [
            {
                "line": row.line,
                "token": row.key.token,
                "inter_dim": row.key.inter_dim,
                "expert": row.key.expert,
                "topk": row.key.topk,
                "provenance": TUNED_HERE,
                "kernels": [row.kernel1, row.kernel2],
            }
            for row in merged.rows
        ],
        "uncovered_after_tuning": [k.short() for k in missing],
    }


def _require_mi355x(host: Host, job: TuneJob) -> None:
    arches = gpus(host)
    if not arches or set(arches) != {"gfx950"}:
        raise WaferError(
            "`moe tune` runs aiter's tuner on the GPU and needs an MI355X (gfx950) host; "
            f"this one has {arches or 'no AMD GPU'}"
        )
    if not Path(job.command()[1]).is_file():
        raise WaferError(
            f"aiter's tuner ({TUNER}) is not in the aiter at {job.tree.root}; "
            "use an aiter source checkout with --aiter-root"
        )


assert PROVENANCE_FILE.endswith(".provenance.json")  # the fork's and a tuner's sidecars share a shape
