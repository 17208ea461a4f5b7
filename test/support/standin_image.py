"""A local stand-in for the upstream ROCm sglang image, for building docker/Dockerfile.mi355x with
buildah here (no registry, no GPU): Debian bookworm (debootstrap) with a venv at /opt/venv holding
the real upstream sglang wheel (--no-deps), the fork tooling's real requirements, and dist-info
stand-ins for everything else the fork requires and for the ROCm stack (torch 2.9.1+rocm7.2.0,
triton, aiter with tuned fMoE CSVs and aiter_standin's naming code, FlyDSL). What it cannot be: a
ROCm userspace, real torch or kernels.
"""

from __future__ import annotations

import json
import os
import subprocess
import zipfile
from pathlib import Path

from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from packaging.utils import canonicalize_name

from support import aiter_standin

SITE = "/opt/venv/lib/python3.11/site-packages"
ROCM_STACK = {
    "torch": "2.9.1+rocm7.2.0.lw.git7e1940d4",
    "triton": "3.6.0+git42270451",
    "aiter": "0.1.17.dev110+g9127c94a1",
}
AITER_FMOE = ["tuned_fmoe.csv", "model_configs/glm5_fp4_tuned_fmoe.csv"]
ENV = {**os.environ, "STORAGE_DRIVER": "vfs", "BUILDAH_ISOLATION": "chroot"}


def buildah(*args: str) -> str:
    return subprocess.run(["buildah", *args], env=ENV, check=True, text=True, stdout=subprocess.PIPE).stdout.strip()


def rootfs(cache: Path) -> Path:
    """bookworm minbase + python3-venv as a tarball, made once (~40 s) and cached."""
    tar = cache / "bookworm-python3.tar"
    if not tar.is_file():
        tree = cache / "rootfs"
        subprocess.run(
            [
                "debootstrap",
                "--variant=minbase",
                "--include=python3,python3-venv",
                "bookworm",
                str(tree),
                "http://deb.debian.org/debian",
            ],
            check=True,
            stdout=subprocess.DEVNULL,
        )
        subprocess.run(
            [
                "tar",
                "-C",
                str(tree),
                "-cf",
                f"{tar}.tmp",
                "--exclude=./usr/share/doc",
                "--exclude=./usr/share/locale",
                "--exclude=./usr/share/man",
                "--exclude=./var/cache/apt",
                ".",
            ],
            check=True,
        )
        os.replace(f"{tar}.tmp", tar)
        subprocess.run(["rm", "-rf", str(tree)], check=True)
    return tar


def satisfying_version(spec: SpecifierSet) -> str:
    for s in spec:
        if s.operator in ("==", ">=", "~=", "==="):
            return s.version.replace(".*", ".0")
    return "1.0"


def dist_info(folder: Path, name: str, version: str) -> None:
    info = folder / f"{canonicalize_name(name).replace('-', '_')}-{version}.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n")
    (info / "INSTALLER").write_text("wafer-standin\n")
    (info / "RECORD").write_text("")


def stand_ins(folder: Path, wheels: list[Path], real: set[str]) -> None:
    """dist-info for every requirement of the fork and its tools not installed for real, the ROCm
    stack, and aiter's configs (what `image setup` and aiter's file discovery look at)."""
    lines = []
    for wheel in wheels:
        with zipfile.ZipFile(wheel) as zf:
            meta = next(n for n in zf.namelist() if n.endswith(".dist-info/METADATA"))
            lines += zf.read(meta).decode().splitlines()
    seen = set(real) | {"wafer-sglang"}  # the tools wheel: installed for real by the Dockerfile
    for line in lines:
        if line.startswith("Requires-Dist: "):
            req = Requirement(line.split(": ", 1)[1])
            if (req.marker and not any(req.marker.evaluate({"extra": e}) for e in ("", "router"))) or canonicalize_name(
                req.name
            ) in seen:
                continue
            seen.add(canonicalize_name(req.name))
            dist_info(folder, req.name, satisfying_version(req.specifier))
    for name, version in ROCM_STACK.items():
        if not any(folder.glob(f"{name}-*.dist-info")):
            dist_info(folder, name, version)
    no_glm5 = {
        f"aiter/configs/{rel}": aiter_standin.tuned_csv([aiter_standin.row(4 + i, 1536, 8, 2)])
        for i, rel in enumerate(AITER_FMOE)
    }  # one non-GLM-5 row each, none repeating a key
    aiter_standin.write_tree(folder, no_glm5, wheel=True)
    (folder / "flydsl").mkdir()
    (folder / "flydsl" / "__init__.py").write_text("")


def build_standin(
    cache: Path, work: Path, upstream_wheel: Path, wheels: list[Path], wheelhouse: Path, name: str
) -> str:
    """The stand-in image ``name``; returns its manifest digest."""
    ctr = buildah("from", "scratch")
    try:
        buildah("add", ctr, str(rootfs(cache)), "/")
        buildah("run", ctr, "--", "python3", "-m", "venv", "/opt/venv")
        buildah("copy", ctr, str(wheelhouse), "/tmp/wheelhouse")
        buildah("copy", ctr, str(upstream_wheel), f"/tmp/{upstream_wheel.name}")
        pip = ("/opt/venv/bin/pip", "install", "-q", "--no-compile")  # no test reads bytecode: CPU saved
        buildah(
            "run",
            ctr,
            "--",
            *pip,
            "--no-index",
            "--find-links",
            "/tmp/wheelhouse",
            *sorted({p.name.split("-")[0] for p in wheelhouse.glob("*.whl")}),
        )
        buildah("run", ctr, "--", *pip, "--no-deps", f"/tmp/{upstream_wheel.name}")
        real = {canonicalize_name(p.name.split("-")[0]) for p in wheelhouse.glob("*.whl")} | {"sglang", "pip"}
        extra = work / "site"
        stand_ins(extra, wheels, real)
        buildah("copy", ctr, str(extra), SITE)
        buildah("run", ctr, "--", "rm", "-rf", "/tmp/wheelhouse", f"/tmp/{upstream_wheel.name}")
        buildah(
            "config", "--env", "PATH=/opt/venv/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", ctr
        )
        buildah("commit", "-q", "--format", "docker", ctr, name)
    finally:
        buildah("rm", ctr)
    return json.loads(buildah("inspect", "--type", "image", name))["FromImageDigest"]
