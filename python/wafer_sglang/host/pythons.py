"""Finding an interpreter of a given version (the wheels are checked in venvs of their own Python)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path


def find_python(version: str) -> str | None:
    """``python3.10`` etc. on PATH (one that runs), else the newest of pyenv's installs, else None."""
    found = shutil.which(f"python{version}")
    if found and subprocess.run([found, "-c", ""], capture_output=True).returncode == 0:
        return found
    candidates = sorted(Path.home().glob(f".pyenv/versions/{version}.*/bin/python{version}"), reverse=True)
    return str(candidates[0]) if candidates else None
