"""`moe tune`: aiter's own tuner on the keys a model hits, on an MI355X host, with provenance.

No tuned numbers are made up here: the rows come from aiter's tuner
(csrc/ck_gemm_moe_2stages_codegen/gemm_moe_tune.py) run on the GPU; we only choose the keys,
check the result covers them, and record where it came from.
"""

from __future__ import annotations

import json
import shlex
import subprocess
import sys
from datetime import datetime, timezone
from pathlib import Path

from wafer_sglang import doctor
from wafer_sglang.errors import WaferError
from wafer_sglang.fsutil import atomic_write_text
from wafer_sglang.moe_configs import FORK_CONFIGS, aiter_configs_dir, coverage, read_tuned, write_untuned

TUNER = Path("csrc") / "ck_gemm_moe_2stages_codegen" / "gemm_moe_tune.py"


def find_tuner(configs: Path) -> Path | None:
    package = configs.parent  # .../aiter
    for root in (package.parent, package / "aiter_meta", package.parent / "aiter_meta"):
        if (root / TUNER).is_file():
            return root / TUNER
    return None


def tune(args, keys: list) -> int:
    configs = aiter_configs_dir(args.aiter_root)
    if configs is None:
        raise WaferError("aiter is not installed here; `moe tune` runs aiter's own tuner (pass --aiter-root for a checkout)")
    tuner = find_tuner(configs)
    name = f"{Path(args.model).resolve().name.lower().replace('.', '_')}_tp{args.tp}" + (f"_ep{args.ep}" if args.ep > 1 else "")
    out_dir = args.out_dir or FORK_CONFIGS
    tuned = out_dir / f"{name}_fp4_tuned_fmoe.csv"
    untuned = out_dir / f"{name}_fp4_untuned_fmoe.csv"
    command = [sys.executable, str(tuner or configs.parent.parent / TUNER), "-i", str(untuned), "-o", str(tuned)]
    print(f"{len(keys)} keys -> {untuned}")
    print(shlex.join(command))
    if args.dry_run:
        return 0
    arches = doctor.gpus(doctor.Host())
    if not arches or set(arches) != {"gfx950"}:
        raise WaferError(f"`moe tune` runs aiter's tuner on the GPU and needs an MI355X (gfx950) host; this one has {arches or 'no AMD GPU'}")
    if tuner is None:
        raise WaferError(f"aiter's tuner ({TUNER}) is not in this aiter install; use an aiter source checkout with --aiter-root")
    atomic_write_text(untuned, write_untuned(keys))
    subprocess.run(command, check=True)
    rows = read_tuned(tuned)
    missing = [k for k, row in coverage(keys, rows).items() if row is None]
    atomic_write_text(tuned.with_suffix(".provenance.json"), json.dumps(provenance(command, len(keys), missing), indent=2) + "\n")
    print(f"wrote {tuned} ({len(rows)} rows); {len(missing)} key(s) still uncovered")
    return 1 if missing else 0


def provenance(command: list[str], keys: int, missing: list) -> dict:
    host = doctor.Host()
    dists = host.distributions()
    version_file = host.path("/opt/rocm/.info/version")
    return {
        "tool": "wafer-sglang moe tune",
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "aiter": dists.get("amd-aiter") or dists.get("aiter"),
        "torch": dists.get("torch"),
        "rocm": version_file.read_text().strip() if version_file.is_file() else None,
        "gpus": doctor.gpus(host),
        "command": command,
        "keys": keys,
        "uncovered_after_tuning": [k.short() for k in missing],
    }
