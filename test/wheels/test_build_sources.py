"""What a build ships of the tools: tracked files only, in a git checkout (an untracked .env with a
token once went into the wheel); outside git, nothing hidden. A dirty tree is said. The tools go
into the tools wheel only (the engine wheel requires it)."""

from __future__ import annotations

import shutil
import subprocess
import zipfile

import pytest
from support.common import CACHE, ROOT

from wafer_sglang.gitrun import git

SECRET = "WAFER_TOKEN=hf_secret_do_not_ship"


@pytest.fixture
def checkout(tmp_path, monkeypatch):
    source = tmp_path / "src"
    tracked = subprocess.run(
        ["git", "ls-files", "-z", "patches", "python", "setup.py"], cwd=ROOT, capture_output=True, check=True
    ).stdout.split(b"\0")
    for name in filter(None, (t.decode() for t in tracked)):
        (source / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / name, source / name)
    monkeypatch.setenv("WAFER_SGLANG_ROOT", str(source))
    monkeypatch.setenv("WAFER_SGLANG_CACHE_DIR", str(CACHE))
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1764806400")  # a copy without git has no commit to date it by
    return source


def _build(root, out):
    from wafer_sglang.wheels.tools_wheel import build_tools

    with zipfile.ZipFile(build_tools(root, out)) as zf:
        return zf.namelist()


def test_a_git_checkout_ships_tracked_files_only_and_says_so(checkout, tmp_path, capfd):
    git(checkout, "init", "-q")
    git(checkout, "add", "-A")
    git(checkout, "commit", "-qm", "checkout")
    (checkout / "python/wafer_sglang/.env").write_text(SECRET)
    (checkout / "python/wafer_sglang/notes.py").write_text("# untracked\n")
    (checkout / "python/wafer_sglang/errors.py").write_text(
        (checkout / "python/wafer_sglang/errors.py").read_text() + "\n"
    )
    names = _build(checkout, tmp_path / "dist")
    err = capfd.readouterr().err
    assert (
        "wafer_sglang/errors.py" in names and "wafer_sglang/.env" not in names and "wafer_sglang/notes.py" not in names
    )
    assert "not shipped (untracked): python/wafer_sglang/.env, python/wafer_sglang/notes.py" in err
    assert "the tree is dirty: shipping uncommitted changes of python/wafer_sglang/errors.py" in err


def test_a_copy_without_git_ships_no_hidden_file(checkout, tmp_path):
    (checkout / "python/wafer_sglang/.env").write_text(SECRET)
    names = _build(checkout, tmp_path / "dist")
    assert "wafer_sglang/errors.py" in names and not [n for n in names if n.startswith("wafer_sglang/") and "/." in n]
