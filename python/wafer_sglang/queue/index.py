"""Reading PyPI's JSON simple API (PEP 691) for a release's exact wheel files and hashes."""

from __future__ import annotations

import json
import os
import urllib.error
import urllib.request
from datetime import date

from packaging.utils import InvalidWheelFilename, parse_wheel_filename
from packaging.version import InvalidVersion, Version

from wafer_sglang.bases.record import WheelPin, checked_wheel
from wafer_sglang.errors import WaferError

DEFAULT_INDEX = "https://pypi.org/simple"
# The interpreters we build for; upstream ships these for every release we support.
PYTHON_TAGS = ("cp311", "cp312", "cp313")
PLATFORM = "manylinux_2_34_x86_64"


def index_url() -> str:
    return os.environ.get("WAFER_SGLANG_INDEX_URL", DEFAULT_INDEX).rstrip("/")


def project_files(project: str = "sglang") -> list[dict]:
    url = f"{index_url()}/{project}/"
    request = urllib.request.Request(url, headers={"Accept": "application/vnd.pypi.simple.v1+json"})
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            files = json.load(response)["files"]
    except (urllib.error.URLError, OSError, ValueError, KeyError, TypeError) as exc:
        raise WaferError(f"cannot read the package index {url}: {exc}") from None
    if not isinstance(files, list):
        raise WaferError(f"the package index {url} answered no file list")
    return files


def _pinnable_wheels(tags: tuple[str, ...]):
    """(index record, version, tag) of every non-yanked sglang wheel we could pin: our platform,
    one of ``tags``. Other files the project page lists are skipped."""
    for f in project_files():
        name = f.get("filename", "") if isinstance(f, dict) else ""
        if not name.endswith(".whl"):
            continue
        try:
            _, v, _, wheel_tags = parse_wheel_filename(name)
        except (InvalidWheelFilename, InvalidVersion):
            continue
        tag = next(iter(wheel_tags))
        if tag.platform == PLATFORM and tag.interpreter in tags and not f.get("yanked"):
            yield f, v, tag


def release_wheels(version: str, tags: tuple[str, ...] = PYTHON_TAGS) -> tuple[dict[str, WheelPin], str]:
    """The x86_64 manylinux wheels of sglang ``version`` per CPython tag, and the upload date."""
    wanted = Version(version)
    wheels: dict[str, WheelPin] = {}
    uploaded: list[str] = []
    for f, v, tag in _pinnable_wheels(tags):
        if v != wanted:
            continue
        record = {
            "filename": f["filename"],
            "sha256": (f.get("hashes") or {}).get("sha256"),
            "size": f.get("size"),
            "url": f.get("url"),
        }
        wheels[tag.interpreter] = checked_wheel(f"{index_url()}: {f['filename']}", version, record, tag.interpreter)
        uploaded.append(str(f.get("upload-time") or "")[:10])
    if not wheels:
        raise WaferError(
            f"sglang {version} has no {PLATFORM} wheel for {', '.join(tags)} on {index_url()} "
            "(sglang >= 0.5.11 ships per-Python binary wheels only)"
        )
    released = min(u for u in uploaded if u) if any(uploaded) else date.today().isoformat()
    return wheels, released


def find_url(filename: str) -> str:
    """The download URL of one exact file name, for pins written without one."""
    for f in project_files():
        if f["filename"] == filename:
            return f["url"]
    raise WaferError(f"{filename} is not on {index_url()}")


def latest_release(tags: tuple[str, ...] = PYTHON_TAGS) -> str:
    """The newest final sglang release with a wheel we could pin (pre-releases and yanked files skipped)."""
    versions = {v for _, v, _ in _pinnable_wheels(tags) if not v.is_prerelease}
    if not versions:
        raise WaferError(f"{index_url()} lists no sglang release with a {PLATFORM} wheel")
    return str(max(versions))
