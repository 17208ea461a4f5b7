"""One engine environment per base, as users install the fork: the cp311 wheel `make` builds
and the tools wheel it requires, installed by pip with their own declared requirements, plus
what a ROCm image would bring and PyPI has for CPU: torch (the CPU build, pinned by
requirements/constraints.txt) and triton (sglang imports it at module level; the fork drops it
from its requirements). Nothing else is pinned against the wheel.

Created once per engine wheel (keyed by its sha256) under build/engine/<base>/ and reused; a
changed queue builds another wheel and so another environment. Changed tools are reinstalled
into it (seconds), not the environment remade (minutes). Safe under parallel test
workers (a lock per base). ``python support/engine_env.py [BASE...]`` prepares them ahead
of a test run (make test does).
"""

from __future__ import annotations

import fcntl
import functools
import hashlib
import os
import shutil
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
ENGINES = ROOT / "build" / "engine"
CONSTRAINTS = ROOT / "requirements" / "constraints.txt"
PYTHON_TAG = "cp311"  # the interpreter the suite runs (make's PYTHON); both bases ship cp311 wheels
# What the ROCm image brings besides the wheel, as PyPI offers it for CPU.
STACK = ("torch==2.13.0", "triton==3.9.0")


# Bytecode is written on import, not by pip: pip compiles all ~28k modules (about half of a
# 140 s install), of which an engine process imports a few thousand. The .pth line runs at every
# start of the environment's interpreter (sglang's spawned processes too) and overrides
# PYTHONDONTWRITEBYTECODE=1 (set on this machine and CI), which would have every process
# compile torch and sglang again. Part of the key: a change remakes the environment.
BYTECODE_PTH = ("wafer_bytecode_on_import.pth", "import sys; sys.dont_write_bytecode = False\n")


def pip_install(venv: Path) -> list[str]:
    return [str(venv / "bin/python"), "-m", "pip", "install", "-q", "--disable-pip-version-check", "--no-compile"]


@contextmanager
def locked(path: Path):
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        yield


def fork_wheel(base: str) -> Path:
    """The fork's cp311 wheel for ``base``, built from the current queue unless build/dist holds
    the one these inputs give (as `make` does: byte-reproducible, so the environment is reused);
    every worker and test that needs it shares the one build."""
    from wafer_sglang.wheels.wheel import build_if_changed

    with locked(ENGINES / f".{base}.wheel.lock"):
        return build_if_changed(ROOT, base, PYTHON_TAG, ROOT / "build" / "dist", quiet=True)[0]


def tools_wheel() -> Path:
    """The wafer-sglang wheel the engine wheel requires, built from the checkout."""
    from wafer_sglang.wheels.tools_wheel import build_tools

    with locked(ENGINES / ".tools.wheel.lock"):
        return build_tools(ROOT, ROOT / "build" / "dist")


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


@functools.cache
def ensure(base: str) -> Path:
    """The environment's interpreter, created if the wheel or the stack changed (checked once
    per process: a test run does not change the queue under itself)."""
    wheel, tools = fork_wheel(base), tools_wheel()
    venv = ENGINES / base
    key = "\n".join([sha256(wheel), CONSTRAINTS.read_text(), *STACK, *BYTECODE_PTH])
    stamp = venv / ".wafer-engine-key"
    with locked(ENGINES / f".{base}.venv.lock"):
        if stamp.is_file() and stamp.read_text() == key:
            _current_tools(venv, tools)
            return venv / "bin" / "python"
        shutil.rmtree(venv, ignore_errors=True)  # ours: build/engine/<base> holds nothing else
        started = time.monotonic()
        print(f"engine env {base}: installing {wheel.name} + {' '.join(STACK)} (a few minutes)", file=sys.stderr)
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        name, line = BYTECODE_PTH
        (_site_packages(venv) / name).write_text(line)
        pip = subprocess.run(
            [*pip_install(venv), "-c", str(CONSTRAINTS), str(wheel), str(tools), *STACK],
            capture_output=True,
            text=True,
            env={**os.environ, "PIP_NO_INPUT": "1"},
        )
        if pip.returncode:
            raise RuntimeError(f"engine env {base}: pip install failed:\n{pip.stdout[-3000:]}{pip.stderr[-3000:]}")
        (venv / ".wafer-tools-key").write_text(sha256(tools))
        stamp.write_text(key)  # last: a half-made environment is never taken for a ready one
        print(f"engine env {base}: ready in {time.monotonic() - started:.0f} s", file=sys.stderr)
    return venv / "bin" / "python"


def _site_packages(venv: Path) -> Path:
    return venv / "lib" / f"python{sys.version_info.major}.{sys.version_info.minor}" / "site-packages"


def _current_tools(venv: Path, tools: Path) -> None:
    """The checkout's tools in the environment: reinstalled when the wheel changed (its version
    stays the same between releases), with any requirement it gained."""
    stamp = venv / ".wafer-tools-key"
    if stamp.is_file() and stamp.read_text() == sha256(tools):
        return
    pip = pip_install(venv)
    for extra in (["--force-reinstall", "--no-deps"], ["-c", str(CONSTRAINTS)]):
        subprocess.run([*pip, *extra, str(tools)], check=True, capture_output=True)
    stamp.write_text(sha256(tools))


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT / "test"))
    from support.common import BASES

    for name in sys.argv[1:] or BASES:
        print(ensure(name))
