"""Reading PyPI's JSON simple API (PEP 691) for a release's exact wheel files and hashes."""

from __future__ import annotations

import json
import os
import urllib.error
import urllib.request
from datetime import date

from packaging.utils import parse_wheel_filename
from packaging.version import Version

from wafer_sglang.errors import WaferError
from wafer_sglang.queue.pins import WheelPin

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
            return json.load(response)["files"]
    except (urllib.error.URLError, OSError, ValueError, KeyError) as exc:
        raise WaferError(f"cannot read the package index {url}: {exc}") from None


def release_wheels(version: str, tags: tuple[str, ...] = PYTHON_TAGS) -> tuple[dict[str, WheelPin], str]:
    """The x86_64 manylinux wheels of sglang ``version`` per CPython tag, and the upload date."""
    wanted = Version(version)
    wheels: dict[str, WheelPin] = {}
    uploaded: list[str] = []
    for f in project_files():
        name = f["filename"]
        if not name.endswith(".whl"):
            continue
        _, v, _, wheel_tags = parse_wheel_filename(name)
        tag = next(iter(wheel_tags))
        if v != wanted or tag.platform != PLATFORM or tag.interpreter not in tags or f.get("yanked"):
            continue
        wheels[tag.interpreter] = WheelPin(
            filename=name, sha256=f["hashes"]["sha256"], size=int(f["size"]), url=f["url"]
        )
        uploaded.append(f.get("upload-time", "")[:10])
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
