"""Scratch folders that an interrupt cannot leave behind (build/release leaked a 68 MB tree in 1
of 8 Ctrl-C tries: a KeyboardInterrupt landing inside TemporaryDirectory's rmtree)."""

from __future__ import annotations

import os
import signal
import tempfile
from pathlib import Path

import pytest

from wafer_sglang.fsutil import scratch_dir


def _tree(root: Path) -> None:
    for i in range(20):
        (root / f"d{i}").mkdir()
        for j in range(10):
            (root / f"d{i}" / f"f{j}").write_bytes(b"x" * 100)


def _interrupt_on_first_unlink(monkeypatch) -> None:
    """SIGINT arrives while the tree is being removed (the first file's unlink)."""
    real = os.unlink
    fired = []

    def unlink(*args, **kwargs):
        real(*args, **kwargs)
        if not fired:
            fired.append(True)
            os.kill(os.getpid(), signal.SIGINT)

    monkeypatch.setattr(os, "unlink", unlink)


@pytest.mark.parametrize("make", [tempfile.TemporaryDirectory, scratch_dir], ids=["stdlib", "scratch_dir"])
def test_ctrl_c_during_cleanup(tmp_path, monkeypatch, make):
    """The stdlib's folder is left half-removed (pristine: the defect); ours is gone, and the
    interrupt still arrives, right after."""
    with pytest.raises(KeyboardInterrupt):
        with make(dir=tmp_path) as folder:
            _tree(Path(folder))
            _interrupt_on_first_unlink(monkeypatch)
    left = list(tmp_path.iterdir())
    if make is scratch_dir:
        assert left == []
    else:
        assert left, "the stdlib's TemporaryDirectory no longer leaks on Ctrl-C: scratch_dir may be unneeded"


def test_no_command_uses_the_stdlib_temporary_directory():
    package = Path(__file__).parents[1] / "python" / "wafer_sglang"
    users = [p.name for p in package.rglob("*.py") if "TemporaryDirectory(" in p.read_text() and p.name != "fsutil.py"]
    assert users == []
