"""`checkpoint check` on a GLM-5-sized index, headers only: ~120k tensors in 100 shards.

Target (operator-tools issue): < 5 s on the 2-core development machine. Run with the test venv
(it has safetensors + numpy for writing the synthetic checkpoint):

    make benchmark B=checkpoint_check
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

from support import synthetic_checkpoint

from wafer_sglang.checkpoint import plan, store

TARGET_S = 5.0


def main() -> int:
    with tempfile.TemporaryDirectory() as tmp:
        path = synthetic_checkpoint.glm5(Path(tmp) / "glm5", layers=78, shards=100)
        shards = len(list(path.glob("*.safetensors")))
        best = float("inf")
        for _ in range(3):
            start = time.perf_counter()
            ckpt = store.load(path)
            report = plan.check(ckpt, plan.Options(base="0.5.14"))
            best = min(best, time.perf_counter() - start)
    print(
        f"checkpoint: {len(ckpt.tensors)} tensors in {shards} shards, {report.modules_checked} linear/expert weights "
        "judged"
    )
    print(
        f"check (headers + decisions), best of 3: {best:.2f} s  (target < {TARGET_S:.0f} s, {best / TARGET_S:.2f} of "
        "target)"
    )
    print("PASS" if best < TARGET_S else "FAIL: over target")
    return 0 if best < TARGET_S else 1


if __name__ == "__main__":
    sys.exit(main())
