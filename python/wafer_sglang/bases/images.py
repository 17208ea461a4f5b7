"""The record of each base's upstream ROCm image, ``docker/base-images.toml`` (written by
``docker/build --resolve``), and its one reader."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from packaging.version import InvalidVersion, Version

from wafer_sglang.bases.record import PinSet
from wafer_sglang.compat import tomllib
from wafer_sglang.errors import WaferError

IMAGES_FILE = Path("docker/base-images.toml")
DIGEST = re.compile(r"^sha256:[0-9a-f]{64}$")


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


def base_image(root: Path, pins: PinSet, base: str, *, require_aiter: bool = False) -> BaseImage:
    """The base's pinned image, checked against the fork's own pins. ``require_aiter``: the
    question is about its aiter, which an unresolved image leaves unknown."""
    pin = pins.base(base)
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


def record_image(root: Path, base: str, entry: dict) -> None:
    """Replace ``[images.<base>]`` with ``entry`` (``docker/build --resolve``), keeping the comments."""
    import tomlkit

    from wafer_sglang.fsutil import atomic_write_text

    path = root / IMAGES_FILE
    doc = tomlkit.parse(path.read_text())
    table = tomlkit.table()
    table.update(entry)
    doc["images"][base] = table
    atomic_write_text(path, tomlkit.dumps(doc))
