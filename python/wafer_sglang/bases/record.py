"""The typed record of ``patches/bases.toml`` and its one parser (read through ``wafer_sglang.bases``):
each upstream sglang release we build from or compare against, per CPython tag.

``patches/bases.toml`` records, for every pinned version, the exact PyPI wheel file name, its
sha256, size and URL (conda-forge ``source: {url, sha256}`` style). Roles:

* ``base`` — a supported base: ``patches/<version>/`` holds its series, ``build`` makes wheels.
* ``reference`` — only downloaded to compare against (``check-upstream --against``).

A base may also list ``derived`` tags: a Python with no upstream wheel, built from another tag's
wheel after dropping the files only that Python can load (0.5.14's cp310, for the ROCm images
that run Python 3.10).
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path

from packaging.utils import InvalidWheelFilename, parse_wheel_filename
from packaging.version import InvalidVersion, Version

from wafer_sglang.compat import tomllib
from wafer_sglang.errors import WaferError
from wafer_sglang.repo import PIN_FILE

ROLES = ("base", "reference")
ENGINE_FACTS = (
    "draft-mapping",
    "coarse-draft-experts",
    "fusion-respects-draft-excludes",
    "fusion-respects-target-excludes",
)


@dataclass(frozen=True)
class WheelPin:
    filename: str
    sha256: str
    size: int
    url: str

    @property
    def python_tag(self) -> str:
        _, _, _, tags = parse_wheel_filename(self.filename)
        return next(iter(tags)).interpreter

    @property
    def tag_triple(self) -> str:
        """``cp311-cp311-manylinux_2_34_x86_64``: the part of the file name after the version."""
        return self.filename[: -len(".whl")].split("-", 2)[2]


@dataclass(frozen=True)
class DerivedTag:
    source: str  # the pinned tag whose wheel is used
    drop: tuple[str, ...]  # compiled files only the source's Python can load
    reason: str


@dataclass(frozen=True)
class UpstreamPin:
    """One release's record (a base's: its wheels, build matrix, engine behaviour and kernel)."""

    version: str
    role: str
    released: str
    respin: int = 0
    wheels: dict[str, WheelPin] = field(default_factory=dict)
    derived: dict[str, DerivedTag] = field(default_factory=dict)
    pythons: tuple[str, ...] = ()  # what `make` builds wheels for
    engine: dict[str, dict] = field(default_factory=dict)  # "upstream" / "fork" -> loader behaviour
    kernel: dict = field(default_factory=dict)  # sgl-kernel: sglang-tag, sglang-commit, version, archs

    def wheel(self, python_tag: str) -> WheelPin:
        """The upstream wheel a build for ``python_tag`` starts from (a derived tag's source)."""
        if python_tag in self.derived:
            python_tag = self.derived[python_tag].source
        try:
            return self.wheels[python_tag]
        except KeyError:
            have = ", ".join(sorted(self.wheels)) + "".join(
                f"; {t} derived from {d.source}" for t, d in sorted(self.derived.items())
            )
            raise WaferError(
                f"sglang {self.version} has no pinned wheel for {python_tag} (pinned: {have}); "
                f"pick one with --python or add it with `wafer-sglang patches pin {self.version}`"
            ) from None

    def any_wheel(self, preferred: str | None = None) -> WheelPin:
        """A wheel whose Python files serve for comparisons: the preferred tag if pinned."""
        if preferred in self.wheels:
            return self.wheels[preferred]
        return self.wheels[sorted(self.wheels)[0]]


@dataclass(frozen=True)
class PinSet:
    default_base: str
    upstream: dict[str, UpstreamPin]

    @property
    def bases(self) -> list[str]:
        return sorted((v for v, p in self.upstream.items() if p.role == "base"), key=Version)

    def base(self, version: str) -> UpstreamPin:
        pin = self.upstream.get(version)
        if pin is None or pin.role != "base":
            raise WaferError(f"unsupported base {version!r}: supported bases are {', '.join(self.bases)}")
        return pin

    def get(self, version: str) -> UpstreamPin:
        pin = self.upstream.get(version)
        if pin is None:
            raise WaferError(
                f"sglang {version} is not pinned in {PIN_FILE}; record its wheel hashes first with "
                f"`wafer-sglang patches pin {version}`"
            )
        return pin


def python_tag(spec: str | None = None) -> str:
    """``3.12`` / ``cp312`` / None (the running interpreter) → ``cp312``."""
    if spec is None:
        return f"cp{sys.version_info.major}{sys.version_info.minor}"
    if spec.startswith("cp") and spec[2:].isdigit():
        return spec
    parts = spec.split(".")
    if len(parts) == 2 and all(p.isdigit() for p in parts):
        return f"cp{parts[0]}{parts[1]}"
    raise WaferError(f"--python expects a version like 3.12 (or a tag like cp312), got {spec!r}")


def read(path: Path) -> PinSet:
    try:
        data = tomllib.loads(path.read_text())
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise WaferError(f"cannot read the pin file {path}: {exc}") from None
    upstream = {}
    for version, entry in _table(f"{path} [upstream]", data.get("upstream", {})).items():
        upstream[version] = _parse_upstream(path, version, entry)
    default = data.get("default-base")
    if default not in upstream or upstream[default].role != "base":
        raise WaferError(f"{path}: default-base {default!r} is not a pinned base")
    return PinSet(default_base=default, upstream=upstream)


def respins(text: str) -> dict[str, int]:
    """Each base's respin in an earlier revision's record, read leniently: an older record lacks
    fields today's requires, and release notes compare against it."""
    try:
        upstream = tomllib.loads(text).get("upstream", {})
        return {v: int(e.get("respin", 0)) for v, e in upstream.items() if e.get("role") == "base"}
    except (tomllib.TOMLDecodeError, AttributeError, TypeError, ValueError) as exc:
        raise WaferError(f"an earlier {PIN_FILE} cannot be read: {exc}") from None


def checked_wheel(where: str, version: str, w: object, tag: str | None = None) -> WheelPin:
    """One wheel record (the pin file's, or the index's) as a WheelPin, or an error naming the
    field: exact sglang file name of ``version`` (and ``tag``), 64 hex sha256, size > 0, http(s) URL."""
    try:
        missing = [k for k in ("filename", "sha256", "size", "url") if w.get(k) is None]
        if missing:
            raise KeyError(", ".join(missing))
        pin = WheelPin(
            filename=str(w["filename"]), sha256=str(w["sha256"]).lower(), size=int(w["size"]), url=str(w["url"])
        )
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise WaferError(f"{where}: needs filename, sha256, size, url ({type(exc).__name__}: {exc})") from None
    try:
        name, wheel_version, _, _ = parse_wheel_filename(pin.filename)
    except (InvalidWheelFilename, InvalidVersion):
        raise WaferError(f"{where}: {pin.filename!r} is not a wheel file name") from None
    if name != "sglang" or str(wheel_version) != version or (tag is not None and pin.python_tag != tag):
        raise WaferError(f"{where}: {pin.filename} is not sglang {version}" + (f" for {tag}" if tag else ""))
    if len(pin.sha256) != 64 or any(c not in "0123456789abcdef" for c in pin.sha256):
        raise WaferError(f"{where}: sha256 {pin.sha256[:80]!r} is not 64 hex digits")
    if pin.size <= 0:
        raise WaferError(f"{where}: size {pin.size} is not a positive byte count")
    if not pin.url.startswith(("https://", "http://")):
        raise WaferError(f"{where}: url {pin.url[:80]!r} is not http(s)")
    return pin


def _table(where: str, value: object) -> dict:
    if not isinstance(value, dict):
        raise WaferError(f"{where}: expected a table, got {type(value).__name__}")
    return value


def _parse_upstream(path: Path, version: str, entry: dict) -> UpstreamPin:
    where = f"{path} [upstream.{version!r}]"
    entry = _table(where, entry)
    try:
        Version(version)
    except InvalidVersion:
        raise WaferError(f"{where}: not a PEP 440 version") from None
    role = entry.get("role")
    if role not in ROLES:
        raise WaferError(f"{where}: role must be one of {ROLES}, got {role!r}")
    wheels = {
        tag: checked_wheel(f"{where}.wheels.{tag}", version, w, tag)
        for tag, w in _table(where, entry.get("wheels", {})).items()
    }
    if not wheels:
        raise WaferError(f"{where}: no wheels pinned")
    try:
        respin = int(entry.get("respin", 0))
    except (TypeError, ValueError):
        raise WaferError(f"{where}: respin must be an integer") from None
    derived = {
        tag: _parse_derived(f"{where}.derived.{tag}", tag, d, wheels) for tag, d in entry.get("derived", {}).items()
    }
    tags = (*wheels, *derived)
    pythons = tuple(entry.get("pythons") or (f"{t[2]}.{t[3:]}" for t in sorted(wheels)))
    if any(python_tag_or_none(p) not in tags for p in pythons):
        raise WaferError(f"{where}: pythons must name versions with a pinned or derived wheel ({', '.join(tags)})")
    engine = _table(f"{where}.engine", entry.get("engine", {}))
    for side, facts in engine.items():
        if side not in ("upstream", "fork") or set(_table(f"{where}.engine.{side}", facts)) != set(ENGINE_FACTS):
            raise WaferError(f"{where}.engine.{side}: needs exactly {', '.join(ENGINE_FACTS)}")
    return UpstreamPin(
        version=version,
        role=role,
        released=str(entry.get("released", "")),
        respin=respin,
        wheels=wheels,
        derived=derived,
        pythons=pythons,
        engine=dict(engine),
        kernel=dict(_table(f"{where}.kernel", entry.get("kernel", {}))),
    )


def python_tag_or_none(spec: str) -> str | None:
    try:
        return python_tag(str(spec))
    except WaferError:
        return None


def _parse_derived(where: str, tag: str, entry: dict, wheels: dict[str, WheelPin]) -> DerivedTag:
    source, drop, reason = entry.get("from"), entry.get("drop", []), entry.get("reason", "")
    if tag in wheels or source not in wheels:
        raise WaferError(f"{where}: needs from = a pinned tag ({', '.join(wheels)}) and must not be pinned itself")
    if not isinstance(drop, list) or not all(isinstance(d, str) for d in drop) or not reason:
        raise WaferError(f"{where}: drop must be a list of paths in the wheel and reason must say why")
    return DerivedTag(source, tuple(drop), reason)


def record_pin(root: Path, version: str, role: str, wheels: dict[str, WheelPin], released: str) -> bool:
    """Add or refresh ``[upstream.<version>]`` in the pin file, keeping its comments.

    Returns False (and writes nothing) when the pin is already exactly that. An existing pin
    with different hashes is an error: a published file never changes, so that means tampering
    or a wrong index, not an update.
    """
    import tomlkit

    from wafer_sglang.fsutil import atomic_write_text

    if role not in ROLES:
        raise WaferError(f"role must be one of {ROLES}")
    path = root / PIN_FILE
    doc = tomlkit.parse(path.read_text())
    table = doc.setdefault("upstream", tomlkit.table(is_super_table=True))
    existing = table.get(version)
    if existing is not None:
        old = {t: w["sha256"] for t, w in existing.get("wheels", {}).items()}
        clash = [t for t, w in wheels.items() if t in old and old[t] != w.sha256]
        if clash:
            raise WaferError(f"sglang {version}: index hashes differ from the pin for {clash}; refusing")
        if set(wheels) <= set(old) and existing.get("role") in (role, "base"):
            return False
    entry = tomlkit.table()
    entry["role"] = existing.get("role", role) if existing is not None and existing.get("role") == "base" else role
    entry["released"] = released
    if entry["role"] == "base":
        entry["respin"] = int(existing.get("respin", 1)) if existing is not None else 1
    for key, value in (existing or {}).items():  # the record's other facts are not the index's to change
        if key not in ("role", "released", "respin", "wheels"):
            entry[key] = value
    wheels_table = tomlkit.table(is_super_table=True)
    for tag in sorted(wheels):
        w = wheels[tag]
        inline = tomlkit.table()
        inline.update({"filename": w.filename, "sha256": w.sha256, "size": w.size, "url": w.url})
        wheels_table[tag] = inline
    entry["wheels"] = wheels_table
    table[version] = entry
    atomic_write_text(path, tomlkit.dumps(doc))
    return True
