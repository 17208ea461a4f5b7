"""Fetching pinned upstream wheels: download by exact name, sha256-verify, fail closed, cache.

Like pip's ``--require-hashes``: a file is used only if its size and sha256 equal the pin. A
cached file that does not match is never replaced silently (it may be tampered with or
half-written); the error names the file and both hashes, and ``--refresh`` re-downloads it.
"""

from __future__ import annotations

import hashlib
import os
import urllib.error
import urllib.request
from pathlib import Path

from wafer_sglang.bases import WheelPin
from wafer_sglang.errors import WaferError
from wafer_sglang.progress import download_progress

CHUNK = 1 << 20


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


def verify(path: Path, pin: WheelPin) -> None:
    """Raise unless ``path`` is exactly the pinned file."""
    size = path.stat().st_size
    actual = sha256_of(path)
    if actual == pin.sha256 and size == pin.size:
        return
    what = "truncated" if size < pin.size else "sha256 mismatch"
    raise WaferError(
        f"{pin.filename}: {what}, refusing to use it\n"
        f"  file:     {path}\n"
        f"  expected: sha256={pin.sha256} size={pin.size}\n"
        f"  actual:   sha256={actual} size={size}\n"
        "It is not the pinned upstream wheel. Re-download it with --refresh "
        "(or delete the file); if a fresh download mismatches too, the pin or the index is wrong."
    )


def fetch(pin: WheelPin, cache_dir: Path, *, refresh: bool = False, quiet: bool = False) -> Path:
    """The verified local copy of ``pin``, downloading it into ``cache_dir`` if needed. With
    ``refresh`` the cached file is replaced only by a download that verifies: offline, or
    from a bad mirror, the old file stays."""
    target = cache_dir / pin.filename
    if target.exists() and not refresh:
        verify(target, pin)
        return target
    try:
        cache_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise WaferError(f"cannot create the wheel cache {cache_dir}: {exc.strerror or exc}") from None
    partial = target.with_name(f".{pin.filename}.{os.getpid()}.part")
    try:
        _download(pin, partial, quiet=quiet)
        verify(partial, pin)
        os.replace(partial, target)
    except WaferError as exc:
        if target.exists() and refresh:
            raise WaferError(f"{exc}\nThe cached {target.name} was kept.", exc.exit_code) from None
        raise
    finally:
        partial.unlink(missing_ok=True)
    return target


def _download(pin: WheelPin, dest: Path, *, quiet: bool) -> None:
    """Stream ``pin.url`` to ``dest``, stopping at the pinned size: a mirror serving more (a
    60 MB file for a 12 MB pin, or an endless stream) cannot fill the disk."""
    written = 0
    try:
        with urllib.request.urlopen(pin.url, timeout=120) as response, dest.open("wb") as out:
            with download_progress(pin.filename, pin.size, quiet=quiet) as advance:
                for chunk in iter(lambda: response.read(CHUNK), b""):
                    written += len(chunk)
                    if written > pin.size:
                        raise WaferError(
                            f"{pin.filename}: {pin.url} sent more than the pinned {pin.size} bytes; "
                            "stopped (the mirror or the pin is wrong)"
                        )
                    out.write(chunk)
                    advance(len(chunk))
    except (urllib.error.URLError, OSError) as exc:
        raise WaferError(f"download of {pin.filename} from {pin.url} failed: {exc}") from None
