"""Patch-queue timings on this machine: first `apply` and a wheel `build` from a cached base.

Targets (issue: patch-queue foundation): build < 60 s, apply < 30 s. Run with the dev venv:

    build/venv-dev/bin/python benchmark/patch_queue.py [--base 0.5.14 --base 0.5.23] [--python 3.11]
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

from wafer_sglang.bases import python_tag, supported
from wafer_sglang.queue.apply import Queue
from wafer_sglang.repo import find_repo_root
from wafer_sglang.wheels.wheel import build

TARGETS = {"apply": 30.0, "build": 60.0}


def timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base", action="append")
    parser.add_argument("--python", default=None)
    args = parser.parse_args()
    root = find_repo_root()
    tag = python_tag(args.python)
    print(f"machine: {os.cpu_count()} CPUs, python tag {tag}")
    worst = 0.0
    for base in args.base or supported():
        queue = Queue.open(root, base)
        queue.fetch(tag, quiet=True)  # "from a cached base": the download is not timed
        scratch = Path(tempfile.mkdtemp(prefix="bench-", dir=root / "build"))
        try:
            results = {
                "apply": timed(lambda q=queue, s=scratch: q.apply(tag, s / "work", quiet=True)),
                "build": timed(lambda b=base, s=scratch: build(root, b, tag, s / "dist", quiet=True)),
            }
        finally:
            shutil.rmtree(scratch)
        for step, seconds in results.items():
            ratio = seconds / TARGETS[step]
            worst = max(worst, ratio)
            print(f"sglang {base} {step:5s}: {seconds:6.2f} s  (target < {TARGETS[step]:.0f} s, {ratio:.2f} of target)")
    print("PASS" if worst < 1 else "FAIL: over target")
    return 0 if worst < 1 else 1


if __name__ == "__main__":
    sys.exit(main())
