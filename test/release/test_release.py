"""`wafer-sglang release` end to end in a copy of the checkout that is its own git repository (up to,
not including, the upload), what it refuses, and the release notes across two tags."""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
from pathlib import Path

import pytest
from support.common import ROOT, run_cli
from support.gitrepo import git

from wafer_sglang import bases
from wafer_sglang.release import gitstate, notes


def commit(repo: Path, message: str, tag: str | None = None) -> None:
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", message)
    if tag:
        git(repo, "tag", "-a", tag, "-m", tag)


@pytest.fixture
def repo(tmp_path, monkeypatch) -> Path:
    """The checkout's tracked files, committed in a fresh repository."""
    repo = tmp_path / "repo"
    tracked = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True).stdout
    for name in filter(None, tracked.decode().split("\0")):
        if (ROOT / name).is_file():
            (repo / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, repo / name)
    git(repo, "init", "-q", "-b", "main")
    commit(repo, "the fork")
    monkeypatch.setenv("WAFER_SGLANG_ROOT", str(repo))
    return repo


@pytest.mark.network
@pytest.mark.slow
def test_a_tagged_clean_tree_releases_checked_wheels_sums_notes_and_sboms(capsys, repo):
    git(repo, "tag", "-a", "v2026.12.1", "-m", "first")
    rc, out, err = run_cli(capsys, "release", "--base", "0.5.14", "--python", "3.11")
    assert rc == 0, err
    folder = repo / "build/release/v2026.12.1"
    wheel = folder / "wafer_sglang_rocm-0.5.14.post1-cp311-cp311-manylinux_2_34_x86_64.whl"
    tools = folder / "wafer_sglang-0.1.0-py3-none-any.whl"  # the tools alone, for client machines
    assert sorted(p.name for p in folder.iterdir()) == sorted(
        [wheel.name, wheel.name + ".cdx.json", tools.name, tools.name + ".cdx.json"]
        + ["SHA256SUMS", "RELEASE_NOTES.md", "release.json"]
    )
    tools_bom = json.loads((folder / f"{tools.name}.cdx.json").read_text())
    assert tools_bom["metadata"]["component"]["hashes"][0]["content"] == hashlib.sha256(tools.read_bytes()).hexdigest()
    subprocess.run(["sha256sum", "--check", "--strict", "SHA256SUMS"], cwd=folder, check=True, capture_output=True)

    bom = json.loads((folder / f"{wheel.name}.cdx.json").read_text())
    assert bom["bomFormat"] == "CycloneDX" and bom["specVersion"] == "1.6"
    assert bom["metadata"]["component"]["hashes"][0]["content"] == hashlib.sha256(wheel.read_bytes()).hexdigest()
    by_name = {c["name"]: c["hashes"][0]["content"] for c in bom["components"]}
    pin = bases.pins(repo).base("0.5.14").wheel("cp311")
    assert by_name.pop("sglang") == pin.sha256
    series = [e for e in (repo / "patches/0.5.14/series").read_text().split() if e.endswith(".patch")]
    assert by_name == {n: hashlib.sha256((repo / "patches/0.5.14" / n).read_bytes()).hexdigest() for n in series}

    notes_text = (folder / "RELEASE_NOTES.md").read_text()
    assert "The first release" in notes_text and all(n in notes_text for n in series)
    assert json.loads((folder / "release.json").read_text())["commit"] == git(repo, "rev-parse", "HEAD").strip()
    rc, _, err = run_cli(capsys, "release", "--base", "0.5.14", "--python", "3.11")
    assert rc == 2 and "is written once" in err  # a release folder is never overwritten


def test_a_dirty_tree_is_refused_and_nothing_is_written(capsys, repo):
    git(repo, "tag", "-a", "v1", "-m", "v1")
    (repo / "notes.txt").write_text("an untracked file\n")
    rc, _, err = run_cli(capsys, "release")
    assert rc == 2 and "the tree is not clean" in err and "notes.txt" in err
    (repo / "notes.txt").unlink()
    (repo / "README.md").write_text("edited\n")
    rc, _, err = run_cli(capsys, "release")
    assert rc == 2 and "README.md" in err and not (repo / "build/release").exists()


def test_an_untagged_commit_is_refused(capsys, repo):
    git(repo, "tag", "-a", "v1", "-m", "v1")
    (repo / "README.md").write_text("after the tag\n")
    commit(repo, "after the tag")
    rc, _, err = run_cli(capsys, "release")
    assert rc == 2 and "has no v* tag" in err and not (repo / "build/release").exists()


def test_a_changed_wheel_without_a_new_respin_is_refused(capsys, repo):
    git(repo, "tag", "-a", "v1", "-m", "v1")
    cli = repo / "python/wafer_sglang/cli/release.py"
    cli.write_text(cli.read_text() + "\n# a tooling change\n")
    commit(repo, "tooling", tag="v2")
    rc, _, err = run_cli(capsys, "release")
    assert rc == 2 and "sglang 0.5.14: its wheel changed since v1" in err and "bump respin" in err


def test_changed_tools_without_a_new_version_are_refused(capsys, repo):
    git(repo, "tag", "-a", "v1", "-m", "v1")
    cli = repo / "python/wafer_sglang/bench/knee.py"  # with every base respun: only the tools rule is left
    cli.write_text(cli.read_text() + "\n# a tooling change\n")
    records = repo / "patches/bases.toml"
    records.write_text(records.read_text().replace("respin = 1", "respin = 2"))
    commit(repo, "tooling", tag="v2")
    rc, _, err = run_cli(capsys, "release")
    assert rc == 2 and "the tools changed since v1" in err and "bump __version__" in err


def test_notes_list_the_patches_added_changed_and_dropped_between_two_tags(repo):
    base = repo / "patches/0.5.14"
    names = [e for e in (base / "series").read_text().split() if e.endswith(".patch")]
    git(repo, "tag", "-a", "v1", "-m", "v1")
    dropped, changed, added = names[3], names[4], "0006-docs-a-new-patch.patch"
    (base / dropped).unlink()
    (base / changed).write_bytes((base / changed).read_bytes().replace(b"Last-Update: ", b"Last-Update:  ", 1))
    (base / added).write_bytes(
        (base / names[0])
        .read_bytes()
        .replace(
            (b"Subject: " + (base / names[0]).read_bytes().split(b"Subject: ", 1)[1].split(b"\n", 1)[0]),
            b"Subject: [PATCH] docs: a new patch",
        )
    )
    series = (base / "series").read_text().replace(dropped + "\n", "") + added + "\n"
    (base / "series").write_text(series)
    pins = repo / "patches/bases.toml"
    pins.write_text(
        pins.read_text().replace('released = "2026-06-26"\nrespin = 1', 'released = "2026-06-26"\nrespin = 2')
    )
    commit(repo, "v2", tag="v2")

    assert gitstate.release_tag(repo) == "v2" and gitstate.previous_tag(repo, "v2") == "v1"
    text = notes.render("v2", "v1", notes.queues_at(repo, "v1"), notes.queues_at(repo, "HEAD"))
    section = text.split("## sglang 0.5.14")[1].split("## sglang")[0]
    assert "wafer-sglang-rocm 0.5.14.post2" in section
    assert section.index("Added:") < section.index(added) < section.index("Changed:") < section.index(changed)
    assert section.index("Dropped:") < section.index(dropped)
    assert "docs: a new patch" in section and "Upstream-Status" not in section  # the status itself, not its key
    other = text.split("## sglang 0.5.23")[1]
    assert "The patch queue is unchanged." in other
    for name in names[:3]:
        assert name in section.split("All ")[1]  # kept patches are listed with the build
