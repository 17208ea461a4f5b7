"""The record of each base, one place every part reads: ``patches/bases.toml`` (parsed by
``queue.pins``) for the wheels, build matrix, engine behaviour and sgl-kernel, plus the generated
data keyed by the same version (image digests, flag tables).

In a checkout the checkout's file is read; an installed fork reads the copy its wheel ships.
"""

from __future__ import annotations

from pathlib import Path

from wafer_sglang.compat import tomllib
from wafer_sglang.errors import WaferError
from wafer_sglang.queue.pins import PinSet, UpstreamPin, load_pin_file, python_tag
from wafer_sglang.repo import PIN_FILE, find_repo_root
from wafer_sglang.resources import DATA

PACKAGED_RECORD = "data/bases.toml"  # inside the tooling package of a built wheel
IMAGES_FILE = Path("docker/base-images.toml")


def _record_file() -> Path:
    try:
        return find_repo_root() / PIN_FILE
    except WaferError:
        packaged = DATA / "bases.toml"
        if packaged.is_file():
            return packaged
        raise


def pins() -> PinSet:
    return load_pin_file(_record_file())


def record(version: str) -> UpstreamPin:
    """A supported base's record, or an error naming the supported ones."""
    return pins().base(version)


def supported() -> list[str]:
    return pins().bases


def default_base() -> str:
    """The installed fork's base; from a checkout, its default (the LTS)."""
    from wafer_sglang.build.manifest import installed_manifest

    manifest = installed_manifest()
    return manifest["base"]["version"] if manifest else pins().default_base


def builds() -> list[tuple[str, str]]:
    """(base, python) for every wheel `make` builds."""
    pinset = pins()
    return [(base, python) for base in pinset.bases for python in pinset.base(base).pythons]


def image(root: Path, version: str) -> dict | None:
    """The base's upstream ROCm image as recorded by `docker/build --resolve` (None: not resolved)."""
    path = root / IMAGES_FILE
    try:
        return tomllib.loads(path.read_text()).get("images", {}).get(version)
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise WaferError(f"cannot read {path}: {exc}") from None


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
