"""The record of each base, one place every part reads: ``patches/bases.toml`` (parsed by
``queue.pins``) for the wheels, build matrix, engine behaviour and sgl-kernel, plus the generated
data keyed by the same version (image digests, flag tables).

In a checkout the checkout's file is read; an installed fork reads the copy its wheel ships.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from packaging.version import InvalidVersion, Version

from wafer_sglang.compat import tomllib
from wafer_sglang.errors import WaferError
from wafer_sglang.queue.pins import PinSet, UpstreamPin, load_pin_file, load_pins, python_tag
from wafer_sglang.repo import PIN_FILE, find_repo_root
from wafer_sglang.resources import DATA

PACKAGED_RECORD = "data/bases.toml"  # inside the tooling package of a built wheel
IMAGES_FILE = Path("docker/base-images.toml")
DIGEST = re.compile(r"^sha256:[0-9a-f]{64}$")


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
    from wafer_sglang.manifest import installed_manifest

    manifest = installed_manifest()
    return manifest["base"]["version"] if manifest else pins().default_base


def builds() -> list[tuple[str, str]]:
    """(base, python) for every wheel `make` builds."""
    pinset = pins()
    return [(base, python) for base in pinset.bases for python in pinset.base(base).pythons]


def image(root: Path, version: str) -> dict | None:
    """The base's upstream ROCm image as recorded by `docker/build --resolve` (None: not resolved)."""
    return load_records(root).get(version)


@dataclass(frozen=True)
class BaseImage:
    base: str
    repository: str
    tag: str
    digest: str
    python: str
    sglang: str
    aiter_configs: str
    aiter_fmoe: tuple[str, ...]
    aiter_version: str
    aiter_commit: str

    @property
    def reference(self) -> str:
        return f"{self.repository}:{self.tag}@{self.digest}"

    @property
    def python_tag(self) -> str:
        major, minor = self.python.split(".")[:2]
        return f"cp{major}{minor}"


def load_records(root: Path) -> dict[str, dict]:
    """Every base's upstream ROCm image as `docker/build --resolve` recorded it."""
    path = root / IMAGES_FILE
    try:
        return tomllib.loads(path.read_text()).get("images", {})
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise WaferError(f"cannot read {path}: {exc}") from None


def base_image(root: Path, base: str, *, require_aiter: bool = False) -> BaseImage:
    """The base's pinned image, checked against the fork's own pins. ``require_aiter``: the
    question is about its aiter, which an unresolved image leaves unknown."""
    pin = load_pins(root).base(base)
    record = load_records(root).get(base)
    where = f"{IMAGES_FILE} [images.{base!r}]"
    if record is None:
        raise WaferError(f"{where} is missing: every supported base needs its upstream ROCm image recorded")
    if not DIGEST.match(record.get("digest", "")) or not record.get("tag"):
        unknown = (
            f"aiter unknown: the {base} image is not resolved, so which aiter it runs is not known. "
            if require_aiter
            else ""
        )
        raise WaferError(
            f"{unknown}{where} has no resolved tag and digest: on a machine with registry access run "
            f"`docker/build --resolve {base} TAG` (a tag of {record.get('repository', 'the upstream image')})"
        )
    try:
        image = BaseImage(
            base,
            record["repository"],
            record["tag"],
            record["digest"],
            record["python"],
            record["sglang"],
            record["aiter-configs"],
            tuple(record["aiter-fmoe"]),
            record["aiter"],
            record["aiter-commit"],
        )
    except KeyError as exc:
        raise WaferError(
            f"{where} lacks {exc.args[0]}: re-resolve it with `docker/build --resolve {base} TAG`"
        ) from None
    try:
        same_release = Version(image.sglang).release[:3] == Version(base).release[:3]
    except InvalidVersion:
        same_release = False
    if not same_release:
        raise WaferError(f"{where}: the image ships sglang {image.sglang}, not the base's release {base}")
    if image.python_tag not in {*pin.wheels, *pin.derived}:
        raise WaferError(f"{where}: the image runs Python {image.python}; base {base} has no {image.python_tag} wheel")
    return image


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
