"""Atomic writes (a reader sees the old file or the new one, never half of one) and scratch
folders that Ctrl-C cannot leave behind."""

from __future__ import annotations

import os
import shutil
import signal
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

_DEFERRED = {signal.SIGINT, signal.SIGTERM}


@contextmanager
def signals_deferred() -> Iterator[None]:
    """SIGINT/SIGTERM wait until the block is done, then arrive as usual: a KeyboardInterrupt in
    the middle of an rmtree is what left a 68 MB build tree behind. The Python-level handlers are
    swapped, not the signal mask: a mask holds only for its thread, and the kernel hands a
    process's signal to any thread that does not block it (download or progress threads)."""
    if threading.current_thread() is not threading.main_thread():  # handlers belong to the main thread
        yield
        return
    caught: list[int] = []
    previous = {sig: signal.signal(sig, lambda signum, frame: caught.append(signum)) for sig in _DEFERRED}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        if caught:
            signal.raise_signal(caught[0])  # now, to the handler it would have met


@contextmanager
def scratch_dir(prefix: str = "wafer-", dir: Path | str | None = None) -> Iterator[str]:
    """``tempfile.TemporaryDirectory`` whose creation and removal an interrupt cannot split."""
    with signals_deferred():
        path = tempfile.mkdtemp(prefix=prefix, dir=dir)
    try:
        yield path
    finally:
        with signals_deferred():
            shutil.rmtree(path, ignore_errors=True)


def atomic_write_bytes(path: Path, data: bytes, mode: int | None = None) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        if mode is None and path.exists():
            mode = path.stat().st_mode & 0o7777
        os.chmod(tmp, mode if mode is not None else 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_text(path: Path, text: str, mode: int | None = None) -> None:
    atomic_write_bytes(path, text.encode(), mode)
