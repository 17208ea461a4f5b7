"""Argument types shared by the command groups: checked at parse time, so a bad value is a usage
error (exit 2) before anything runs or is printed."""

from __future__ import annotations

import argparse
import math
from pathlib import Path


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected 1 or more, got {value}")
    return value


def positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not math.isfinite(value) or value <= 0:
        raise argparse.ArgumentTypeError(f"expected a finite number > 0, got {text!r}")
    return value


def release_version(text: str) -> str:
    """argparse type: a PEP 440 release such as 0.5.24 (a bad one is a usage error, exit 2)."""
    from packaging.version import InvalidVersion, Version

    try:
        return str(Version(text))
    except InvalidVersion:
        raise argparse.ArgumentTypeError(f"{text[:60]!r} is not a release version like 0.5.24") from None


def emit(text: str, path: Path | None, what: str = "") -> None:
    """Write ``text`` to ``path`` atomically (saying so on stderr), or print it."""
    import sys

    if path is None:
        print(text, end="")
        return
    from wafer_sglang.fsutil import atomic_write_text

    atomic_write_text(path, text)
    print(f"wrote {path}{f' ({what})' if what else ''}", file=sys.stderr)


def path_arg(text: str) -> Path:
    """A path; an empty one (``--x "$UNSET"``) is refused rather than read as the current folder."""
    if not text.strip():
        raise argparse.ArgumentTypeError("an empty path (an unset variable?)")
    return Path(text)


def out_dir(text: str) -> Path:
    """A folder to write into: absent (it is created) or a folder, never an existing file."""
    if not text.strip():
        raise argparse.ArgumentTypeError("an empty path (an unset variable?); pass a folder")
    path = Path(text)
    try:
        is_file = path.exists() and not path.is_dir()
    except OSError as exc:  # a name too long for the file system, ...
        raise argparse.ArgumentTypeError(f"{text[:60]!r}: {exc.strerror}") from None
    if is_file:
        raise argparse.ArgumentTypeError(f"{path} is a file; pass a folder")
    return path
