"""Upstream sglang trees for the engine tests: pristine (the pinned wheel as is) and patched
(the series + overlay), and running a probe script against one of them in a subprocess.

A tree is put on PYTHONPATH only in that subprocess, run by the base's engine environment: it
holds the whole sglang package, so it shadows the fork installed there (pristine = upstream's
code on the dependencies users get); test/support/engine/ rides along for the CPU bootstrap.
"""

from __future__ import annotations

import functools
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

from support import engine_env
from support.common import ROOT

ENGINE = Path(__file__).resolve().parent / "engine"
PYTHON_TAG = f"cp{sys.version_info.major}{sys.version_info.minor}"


@functools.cache
def tree(base: str, variant: str) -> Path:
    """``variant`` is "pristine" or "patched"; built once per test run, in the run's folder, by
    the first worker that asks (the others wait for it: a tree is ~9 s of CPU). The engine
    processes that import it write its bytecode (support/engine_env.py: BYTECODE_PTH)."""
    from support.served_engine import run_dir
    from wafer_sglang.queue.apply import Queue
    from wafer_sglang.queue.worktree import unpack_wheel

    folder = run_dir() / "trees"
    target = folder / f"{base}-{variant}"
    with engine_env.locked(folder / f".{base}-{variant}.lock"):
        if target.is_dir():
            return target
        queue, partial = Queue.open(ROOT, base), folder / f".{base}-{variant}.partial"
        if variant == "pristine":
            shutil.rmtree(partial, ignore_errors=True)
            unpack_wheel(queue.fetch(PYTHON_TAG, quiet=True), partial)
        else:
            queue.apply(PYTHON_TAG, partial, quiet=True, force=True)
        partial.rename(target)
    return target


def run_probe(base: str, variant: str, script: str, cases: list[dict], timeout: int = 600) -> list:
    """Runs in the base's engine environment (support/engine_env.py): the fork wheel's own
    declared dependencies, so every load-time claim is made on what users install.

    Once per test run: the engine tests and checkpoint's cross-check ask for the same builds from
    different xdist workers, so the first computes them (minutes each) and the others wait for its
    result in the run's folder (removed at the end of the run)."""
    import fcntl
    import hashlib

    from support.served_engine import run_dir

    key = hashlib.sha256(json.dumps([base, variant, script, cases], sort_keys=True).encode()).hexdigest()[:24]
    folder = run_dir() / "probes"
    folder.mkdir(parents=True, exist_ok=True)
    done = folder / f"{key}.json"
    with open(folder / f"{key}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if done.is_file():
            return json.loads(done.read_text())
        result = _probe(base, variant, script, cases, timeout, folder / key)
        tmp = done.with_suffix(".tmp")
        tmp.write_text(json.dumps(result))
        tmp.replace(done)
        return result


def _probe(base: str, variant: str, script: str, cases: list[dict], timeout: int, scratch: Path) -> list:
    """``scratch`` is the probe's TMPDIR (its models, gloo files), in the run's folder: removed
    with it at the end of the run, never left in /tmp."""
    scratch.mkdir(exist_ok=True)
    env = {**os.environ, "PYTHONPATH": f"{tree(base, variant)}{os.pathsep}{ENGINE}", "TMPDIR": str(scratch)}
    proc = subprocess.run(
        [str(engine_env.ensure(base)), str(ENGINE / script), json.dumps(cases)],
        capture_output=True,
        text=True,
        env=env,
        timeout=timeout,
    )
    for line in proc.stdout.splitlines():
        if line.startswith("PROBE-RESULT "):
            return json.loads(line.removeprefix("PROBE-RESULT "))
    # Not an AssertionError: a probe that crashes must fail the test even where a failed
    # assertion is expected (the pristine tree's strict xfail).
    raise RuntimeError(f"{script} on {base}-{variant} failed (rc {proc.returncode}):\n{proc.stderr[-4000:]}")


def variants():
    """pristine must fail (strict xfail: a pass means the test no longer detects the bug)."""
    import pytest

    return [
        pytest.param(
            "pristine",
            marks=pytest.mark.xfail(
                strict=True, raises=AssertionError, reason="upstream without the patch has the bug"
            ),
        ),
        "patched",
    ]
