"""Running git with an environment that makes its output independent of the user's config."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

from wafer_sglang.errors import WaferError

# The identity for commits the tools make themselves (the upstream import and the overlay).
TOOL_IDENTITY = ("wafer-sglang-rocm", "wafer-sglang-rocm@users.noreply.github.com")


def git_env(date: str | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GIT_")}
    env.update(
        GIT_CONFIG_NOSYSTEM="1",
        GIT_CONFIG_GLOBAL=os.devnull,
        GIT_COMMITTER_NAME=TOOL_IDENTITY[0],
        GIT_COMMITTER_EMAIL=TOOL_IDENTITY[1],
        GIT_AUTHOR_NAME=TOOL_IDENTITY[0],
        GIT_AUTHOR_EMAIL=TOOL_IDENTITY[1],
        LC_ALL="C",
        TZ="UTC",
    )
    if date:
        env["GIT_AUTHOR_DATE"] = env["GIT_COMMITTER_DATE"] = date
    return env


def git(
    cwd: Path, *args: str, input: bytes | None = None, date: str | None = None, check: bool = True
) -> subprocess.CompletedProcess:
    if shutil.which("git") is None:
        raise WaferError("git is required (apt-get install git)")
    cmd = [
        "git",
        "-c",
        "core.autocrlf=false",
        "-c",
        "core.fileMode=true",
        "-c",
        "core.quotePath=false",
        "-c",
        "diff.noprefix=false",
        "-c",
        "diff.renames=false",
        "-c",
        "init.defaultBranch=main",
        "-c",
        "gc.auto=0",
        *args,
    ]
    proc = subprocess.run(cmd, cwd=cwd, input=input, capture_output=True, env=git_env(date))
    if check and proc.returncode != 0:
        raise WaferError(f"git {' '.join(args[:2])} failed in {cwd}:\n{proc.stderr.decode(errors='replace').strip()}")
    return proc


def out(cwd: Path, *args: str) -> str:
    return git(cwd, *args).stdout.decode()
