"""The record of each base, the one place every part reads it: ``patches/bases.toml`` (typed and
parsed in ``record``) for the wheels, build matrix, engine behaviour and sgl-kernel, and
``docker/base-images.toml`` (``images``) for the upstream ROCm image of each.

In a checkout the checkout's file is read; an installed fork reads the copy its wheel ships.
Nothing else parses either file (``test/test_bases.py`` counts the readers).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from wafer_sglang.bases import images
from wafer_sglang.bases.images import DIGEST, IMAGES_FILE, BaseImage
from wafer_sglang.bases.record import PinSet, UpstreamPin, WheelPin, python_tag, read
from wafer_sglang.errors import WaferError
from wafer_sglang.repo import PIN_FILE, find_repo_root
from wafer_sglang.resources import DATA

__all__ = ["DIGEST", "IMAGES_FILE", "BaseImage", "PinSet", "UpstreamPin", "WheelPin", "python_tag"]

PACKAGED_RECORD = "data/bases.toml"  # inside the tooling package of a built wheel


def _record_file() -> Path:
    try:
        return find_repo_root() / PIN_FILE
    except WaferError:
        packaged = DATA / "bases.toml"
        if packaged.is_file():
            return packaged
        raise


def pins(root: Path | None = None) -> PinSet:
    """Every pinned release: ``root``'s record, or (None) the checkout's or the installed copy."""
    return read(root / PIN_FILE if root is not None else _record_file())


def record(version: str) -> UpstreamPin:
    """A supported base's record, or an error naming the supported ones."""
    return pins().base(version)


def supported() -> list[str]:
    return pins().bases


def default_base() -> str:
    """The installed fork's base; from a checkout, its default (the LTS)."""
    from wafer_sglang.manifest import installed_manifest

    manifest = installed_manifest()
    return manifest["base"]["version"] if manifest else pins().default_base


def builds() -> list[tuple[str, str]]:
    """(base, python) for every wheel `make` builds."""
    pinset = pins()
    return [(base, python) for base in pinset.bases for python in pinset.base(base).pythons]


@dataclass(frozen=True)
class KernelRecipe:
    """How sgl-kernel/build.sh builds the base's sgl-kernel for ROCm."""

    base: str
    tag: str  # sglang's git tag
    version: str  # the sglang-kernel version the base's wheel requires
    archs: tuple[str, ...]
    commit: str  # the tag's commit ("" until recorded: a tag can move)


def kernel_recipe(version: str | None = None) -> KernelRecipe:
    """The base's (default: the LTS) sgl-kernel recipe, checked."""
    pinset = pins()
    base = version or pinset.default_base
    kernel = pinset.base(base).kernel
    if not kernel:
        raise WaferError(f"no sgl-kernel recipe for base {base!r} in {PIN_FILE} ([upstream.{base!r}.kernel])")
    commit = kernel.get("sglang-commit", "")
    if commit and (len(commit) != 40 or any(c not in "0123456789abcdef" for c in commit)):
        raise WaferError(f"{PIN_FILE}: kernel.sglang-commit for {base} is not a 40-digit commit")
    try:
        return KernelRecipe(base, kernel["sglang-tag"], kernel["version"], tuple(kernel["archs"]), commit)
    except KeyError as exc:
        raise WaferError(f"{PIN_FILE}: the kernel recipe of {base} lacks {exc.args[0]}") from None


def image_records(root: Path) -> dict[str, dict]:
    """Every base's upstream ROCm image as `docker/build --resolve` recorded it."""
    return images.load_records(root)


def base_image(root: Path, base: str, *, require_aiter: bool = False) -> BaseImage:
    """The base's pinned image, checked against the fork's own pins (``images.base_image``)."""
    return images.base_image(root, pins(root), base, require_aiter=require_aiter)


def image(root: Path, version: str) -> dict | None:
    """The base's upstream ROCm image as recorded by `docker/build --resolve` (None: not resolved)."""
    return image_records(root).get(version)


def summary(root: Path | None, version: str) -> dict:
    """Everything recorded about one base, for `wafer-sglang bases --json`."""
    pin = record(version)
    image_entry = image(root, version) if root else None
    return {
        "version": version,
        "lts": version == pins().default_base,
        "respin": pin.respin,
        "released": pin.released,
        "pythons": list(pin.pythons),
        "wheel-tags": sorted({python_tag(p) for p in pin.pythons}),
        "engine": pin.engine,
        "kernel": pin.kernel,
        "image": None
        if image_entry is None
        else {k: image_entry.get(k) for k in ("repository", "tag", "digest", "python", "aiter")},
    }
