"""The upstream import's pack in the wheel cache: made by the first import, hard-linked by the next,
the same commits either way, and never trusted when it does not match the wheel's files."""

from __future__ import annotations

import shutil

import pytest
from support.common import pinned_wheel, run_cli

from wafer_sglang.gitrun import git, out
from wafer_sglang.queue import upstream_pack

pytestmark = pytest.mark.network


@pytest.fixture
def cache(tmp_path, monkeypatch):
    """A wheel cache of its own holding the verified 0.5.14 cp311 wheel (a symlink to the shared
    cache's: CI's checkout and /tmp may be on different file systems)."""
    wheel = pinned_wheel("0.5.14")
    own = tmp_path / "cache"
    own.mkdir()
    (own / wheel.name).symlink_to(wheel)
    monkeypatch.setenv("WAFER_SGLANG_CACHE_DIR", str(own))
    return own


def apply(capsys, work):
    rc, _, err = run_cli(capsys, "patches", "apply", "--base", "0.5.14", "--python", "3.11", "--work-dir", str(work))
    assert rc == 0, err
    return out(work, "rev-parse", "wafer/upstream", "HEAD").split()


def test_the_first_import_leaves_a_pack_the_next_links(capsys, cache, tmp_path):
    first = apply(capsys, tmp_path / "first")
    (packs,) = (cache / "imports").iterdir()
    pack = next(packs.glob("pack-*.pack"))
    assert (packs / "commit").read_text().strip() == first[0]
    assert apply(capsys, tmp_path / "second") == first  # the same commits, patches and overlay included
    linked = tmp_path / "second/.git/objects/pack" / pack.name
    assert linked.stat().st_ino == pack.stat().st_ino  # hard-linked, not written again
    assert out(tmp_path / "second", "status", "--porcelain") == ""
    loose = int(out(tmp_path / "second", "count-objects", "-v").split("count: ")[1].split()[0])
    assert loose < 500  # the patches' and the overlay's objects; the wheel's ~3,200 files are in the pack


@pytest.mark.parametrize("damage", ["other-files", "truncated"])
def test_a_pack_that_does_not_match_the_wheel_is_dropped_and_the_import_done_in_full(capsys, cache, tmp_path, damage):
    first = apply(capsys, tmp_path / "first")
    (packs,) = (cache / "imports").iterdir()
    if damage == "other-files":  # a sound pack whose commit is not the wheel's files
        edited = tmp_path / "first"
        git(edited, "checkout", "-q", "--detach", "wafer/upstream")
        (edited / "sglang/version.py").write_text("__version__ = 'not the wheel'\n")
        git(edited, "commit", "-qam", "edited")
        shutil.rmtree(packs)
        upstream_pack.keep(edited, packs)
    else:
        pack = next(packs.glob("pack-*.pack"))
        data = pack.read_bytes()
        pack.unlink()
        pack.write_bytes(data[: len(data) // 2])
    assert apply(capsys, tmp_path / "second") == first
    assert out(tmp_path / "second", "status", "--porcelain") == ""
    assert (packs / "commit").read_text().strip() == first[0]  # made again by the full import
