"""``wafer-sglang release``: every wheel of every base, and the tools wheel, from a clean tagged commit, checked the way
an index and a user will see it, with SHA256SUMS, release notes and an SBOM per wheel. Everything up
to the upload: the release workflow publishes the folder this writes."""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from wafer_sglang import bases
from wafer_sglang.errors import WaferError
from wafer_sglang.fsutil import atomic_write_text, scratch_dir
from wafer_sglang.progress import step_progress
from wafer_sglang.release import gitstate, notes, sbom

# What goes into a base's wheel: a change here since the previous release needs a new respin (a
# published version never changes; the wheels are byte-reproducible, so an unchanged input set
# rebuilds the same files).
WHEEL_INPUTS = ("patches/{base}", "patches/bases.toml", "python")


@dataclass
class Options:
    root: Path
    out: Path
    bases: list[str] = field(default_factory=list)  # empty: every base
    pythons: list[str] = field(default_factory=list)  # empty: every Python of each base's record


def release(opts: Options) -> Path:
    root = opts.root
    gitstate.require_clean(root)
    tag = gitstate.release_tag(root)
    previous = gitstate.previous_tag(root, tag)
    before, now = notes.queues_at(root, previous), notes.queues_at(root, "HEAD")
    _require_respins(root, previous, before, now)
    _require_tools_version(root, previous)
    builds = [
        (b, p)
        for b, p in bases.builds()
        if (not opts.bases or b in opts.bases) and (not opts.pythons or p in opts.pythons)
    ]
    if not builds:
        raise WaferError(f"nothing to build: no base/Python matches {opts.bases or 'any'} / {opts.pythons or 'any'}")
    final = opts.out / tag
    if final.exists():
        raise WaferError(f"{final} exists: a release folder is written once (remove it to redo the release)")
    scratch = _mkdir(opts.out) / f".{tag}-{secrets.token_hex(6)}"
    try:
        scratch.mkdir()  # inside the try: an interrupt right after it still removes it
        tools = _checked_tools_wheel(root, scratch)  # first: every engine wheel is checked beside it
        steps = step_progress(builds, "release: wheel")
        wheels = [_checked_wheel(root, base, py, scratch, tools) for base, py in steps] + [tools]
        _twine_check(wheels)
        _write_sums(scratch, wheels)
        atomic_write_text(scratch / "RELEASE_NOTES.md", notes.render(tag, previous, before, now))
        atomic_write_text(
            scratch / "release.json",
            json.dumps(
                {
                    "tag": tag,
                    "previous": previous,
                    "commit": _head(root),
                    "wheels": [
                        {"file": w.name, "sha256": sbom.sha256_file(w), "sbom": f"{w.name}.cdx.json"} for w in wheels
                    ],
                },
                indent=2,
            )
            + "\n",
        )
        scratch.rename(final)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return final


def _mkdir(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    return path


def _head(root: Path) -> str:
    return gitstate.git(root, "rev-parse", "HEAD").stdout.decode().strip()


def _require_respins(root: Path, previous: str | None, before: dict, now: dict) -> None:
    """A base whose wheel inputs changed since the previous release needs a new respin."""
    for version, queue in now.items():
        old = before.get(version)
        if old is None or queue.respin != old.respin:
            continue
        inputs = [p.format(base=version) for p in WHEEL_INPUTS]
        if gitstate.changed_since(root, previous, *inputs):
            raise WaferError(
                f"sglang {version}: its wheel changed since {previous} ({', '.join(inputs)}) but its respin is "
                f"still {queue.respin}; bump respin in patches/bases.toml (a published version never changes)"
            )


TOOLS_VERSION_FILE = "python/wafer_sglang/__init__.py"


def _require_tools_version(root: Path, previous: str | None) -> None:
    """The tools wheel's version is the tooling's ``__version__``: changed tools need a new one."""
    if previous is None or not gitstate.changed_since(root, previous, "python/wafer_sglang"):
        return
    if gitstate.file_at(root, previous, TOOLS_VERSION_FILE) == (root / TOOLS_VERSION_FILE).read_bytes():
        raise WaferError(
            f"the tools changed since {previous} (python/wafer_sglang) but their version did not; bump "
            f"__version__ in {TOOLS_VERSION_FILE} (the wafer-sglang wheel of a version never changes)"
        )


def _checked_tools_wheel(root: Path, out: Path) -> Path:
    """The tools wheel, reproducible, valid for an index, installable, with its SBOM."""
    from wafer_sglang.wheels.tools_wheel import build_tools

    first = _reproducible(lambda folder: build_tools(root, folder), out)
    with scratch_dir() as tmp:
        command, env = _installed([first], sys.executable, Path(tmp))
        proc = subprocess.run([command, "--version"], capture_output=True, text=True, env=env, cwd=tmp)
        if proc.returncode != 0:
            raise WaferError(f"{first.name}: `wafer-sglang --version` in a fresh venv failed:\n{proc.stderr.strip()}")
    _write_sbom(out, first, sbom.tools_sbom(first))
    return first


def _checked_wheel(root: Path, base: str, python: str, out: Path, tools: Path) -> Path:
    from wafer_sglang.bases import python_tag
    from wafer_sglang.wheels.metadata import check_tools_wheel
    from wafer_sglang.wheels.wheel import build

    tag = python_tag(python)
    first = _reproducible(lambda folder: build(root, base, tag, folder, quiet=True), out)
    check_tools_wheel(first, tools)
    with scratch_dir() as tmp:
        _install_check([first, tools], python, sbom.wheel_manifest(first), Path(tmp))
    _write_sbom(out, first, sbom.build_sbom(first, root / "patches" / base))
    return first


def _reproducible(build_into: Callable[[Path], Path], out: Path) -> Path:
    """The wheel ``build_into(out)`` makes, built a second time to compare the bytes, with
    metadata an index accepts."""
    from packaging.metadata import Metadata

    from wafer_sglang.wheels.metadata import dist_info_file

    first = build_into(out)
    with scratch_dir(dir=out) as again:
        if build_into(Path(again)).read_bytes() != first.read_bytes():
            raise WaferError(f"{first.name} is not reproducible: two builds from the same commit differ")
    Metadata.from_email(dist_info_file(first, "METADATA"), validate=True)  # raises on what an index rejects
    return first


def _installed(wheels: list[Path], interpreter: str, tmp: Path) -> tuple[str, dict[str, str]]:
    """``wheels`` installed --no-deps into a fresh venv of ``interpreter``: the wafer-sglang
    command, and the environment to run it in (nothing of the checkout's)."""
    venv = tmp / "venv"
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH" and not k.startswith("WAFER_SGLANG_")}
    for command in (
        [interpreter, "-m", "venv", str(venv)],
        [str(venv / "bin/python"), "-m", "pip", "install", "-q", "--no-deps", "--no-compile", *map(str, wheels)],
    ):
        proc = subprocess.run(command, capture_output=True, text=True, env=env)
        if proc.returncode != 0:
            raise WaferError(f"{wheels[0].name}: `{' '.join(command[:4])} ...` failed:\n{proc.stderr.strip()[-2000:]}")
    return str(venv / "bin/wafer-sglang"), env


def _install_check(wheels: list[Path], python: str, manifest: dict, tmp: Path) -> None:
    """The engine wheel and its tools install --no-deps into a fresh venv of its Python, and
    `info` there lists every patch."""
    wheel = wheels[0]
    command, env = _installed(wheels, _python(python), tmp)
    info = subprocess.run([command, "info"], capture_output=True, text=True, env=env, cwd=tmp)
    missing = [p["file"] for p in manifest["patches"] if p["file"] not in info.stdout]
    if info.returncode != 0 or missing or not info.stdout.startswith(f"wafer-sglang-rocm {manifest['version']}"):
        raise WaferError(
            f"{wheel.name}: `wafer-sglang info` in a fresh venv does not list {missing or 'the fork'}:\n"
            f"{info.stdout}{info.stderr}"
        )


def _write_sbom(out: Path, wheel: Path, text: str) -> None:
    sbom.validate(text)
    atomic_write_text(out / f"{wheel.name}.cdx.json", text)


def _python(version: str) -> str:
    from wafer_sglang.host.pythons import find_python

    found = find_python(version)
    if found is None:
        raise WaferError(f"Python {version} is needed to check its wheel in a fresh venv, and none is installed")
    return found


def _twine_check(wheels: list[Path]) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "twine", "check", "--strict", *map(str, wheels)], capture_output=True, text=True
    )
    if proc.returncode != 0:
        raise WaferError(f"twine check failed:\n{(proc.stdout + proc.stderr).strip()}")


def _write_sums(folder: Path, wheels: list[Path]) -> None:
    """``sha256sum -c SHA256SUMS`` format: the wheels and their SBOMs."""
    files = sorted([*wheels, *(w.with_name(w.name + ".cdx.json") for w in wheels)], key=lambda p: p.name)
    lines = [f"{hashlib.sha256(p.read_bytes()).hexdigest()}  {p.name}" for p in files]
    atomic_write_text(folder / "SHA256SUMS", "\n".join(lines) + "\n")
