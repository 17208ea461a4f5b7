"""patches backport on the real 0.5.14 base, with a local sglang-shaped git repo as upstream
(network: the pinned wheels are cached under build/)."""

from __future__ import annotations

import zipfile

import pytest
from support.common import pinned_wheel, run_cli
from support.gitrepo import git

from wafer_sglang.gitrun import out
from wafer_sglang.queue.series import parse_series

pytestmark = pytest.mark.network
CACHE_PARAMS = "sglang/srt/mem_cache/cache_init_params.py"
GUARDED = "sglang/jit_kernel/csrc/elementwise/fused_metadata_copy.cuh"
SESSION_FLAG = "    enable_session_radix_cache: bool = False\n"  # what 0.5.15 added to CACHE_PARAMS


@pytest.fixture
def work(capsys, scratch_root, tmp_path):
    work = tmp_path / "work"
    assert run_cli(capsys, "patches", "apply", "--base", "0.5.14", "--work-dir", str(work))[0] == 0
    return work


def upstream(tmp_path, work, *paths: str):
    """An sglang clone's layout (python/sglang/...) holding the base's pristine files."""
    repo = tmp_path / "sglang"
    for path in paths:
        dest = repo / "python" / path
        dest.parent.mkdir(parents=True, exist_ok=True)
        dest.write_text(out(work, "show", f"wafer/upstream:{path}"))
    git(repo.parent, "init", "-q", str(repo))
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "upstream at 0.5.14")
    return repo


def commit(repo, subject: str, edits: dict[str, str]) -> str:
    for path, text in edits.items():
        (repo / path).parent.mkdir(parents=True, exist_ok=True)
        (repo / path).write_text(text)
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", subject)
    return git(repo, "rev-parse", "HEAD")


def release_file(version: str, path: str) -> str:
    with zipfile.ZipFile(pinned_wheel(version)) as zf:
        return zf.read(path).decode()


def snapshot(scratch_root, work):
    queue = {p.name: p.read_bytes() for p in (scratch_root / "patches/0.5.14").iterdir()}
    return queue, out(work, "rev-parse", "HEAD"), out(work, "worktree", "list").count("\n")


def test_an_upstream_commit_becomes_the_next_patch_with_its_trailers(capsys, scratch_root, work, tmp_path):
    series = scratch_root / "patches/0.5.14/series"
    position = len(parse_series(series.read_text()).entries) + 1
    repo = upstream(tmp_path, work, CACHE_PARAMS)
    sha = commit(
        repo,
        "[Feature] Add the session radix cache flag (#12345)",
        {f"python/{CACHE_PARAMS}": release_file("0.5.15", CACHE_PARAMS), "test/srt/test_session.py": "x = 1\n"},
    )
    rc, stdout, err = run_cli(
        capsys, "patches", "backport", "--base", "0.5.14", "--commit", sha, "--repo", str(repo), "--work-dir", str(work)
    )
    assert rc == 0, err
    name = f"{position:04d}-backport-add-the-session-radix-cache-flag.patch"
    assert f"added {name}" in stdout and "left out (not in the wheel): test/srt/test_session.py" in stdout
    patch = (scratch_root / "patches/0.5.14" / name).read_text()
    url = "https://github.com/sgl-project/sglang/pull/12345"
    assert "Subject: backport: add the session radix cache flag\n" in patch
    assert f"Upstream-Status: Backport [{url}]\nOrigin: backport, {url}\n" in patch
    assert f"Applied-Upstream: 0.5.15, {url}\n" in patch  # the first pinned release that has it
    assert "removed once the base is sglang 0.5.15" in patch and "Left out, not in the wheel" in patch
    assert f"+{SESSION_FLAG}" in patch and "diff --git a/python/sglang/srt/mem_cache/" in patch
    assert series.read_text().splitlines()[-1] == name
    assert run_cli(capsys, "patches", "lint", "--base", "0.5.14")[0] == 0
    again = tmp_path / "again"  # the exported queue applies from scratch and round-trips
    assert run_cli(capsys, "patches", "apply", "--base", "0.5.14", "--work-dir", str(again))[0] == 0
    assert SESSION_FLAG in (again / CACHE_PARAMS).read_text()
    rc, stdout, _ = run_cli(capsys, "patches", "export", "--base", "0.5.14", "--work-dir", str(again), "--check")
    assert rc == 0 and "up to date" in stdout


def test_a_conflicting_change_names_its_hunk_and_writes_nothing(capsys, scratch_root, work, tmp_path):
    repo = upstream(tmp_path, work, CACHE_PARAMS)
    pristine = out(work, "show", f"wafer/upstream:{CACHE_PARAMS}")
    commit(
        repo,
        "Metrics on",
        {f"python/{CACHE_PARAMS}": pristine.replace("enable_metrics: bool = False", "enable_metrics: bool = True")},
    )
    edited = (repo / "python" / CACHE_PARAMS).read_text()
    sha = commit(
        repo,
        "Add a flag (#7)",
        {
            f"python/{CACHE_PARAMS}": edited.replace(
                "    enable_kv_cache_events: bool = False\n",
                "    enable_kv_cache_events: bool = False\n" + SESSION_FLAG,
            )
        },
    )
    before = snapshot(scratch_root, work)
    rc, _, err = run_cli(
        capsys, "patches", "backport", "--base", "0.5.14", "--commit", sha, "--repo", str(repo), "--work-dir", str(work)
    )
    assert rc == 2 and "does not apply exactly (no fuzz, no 3-way)" in err
    assert f"{CACHE_PARAMS}: hunk #1 @@ -31,6 +31,7 @@" in err and "Nothing was written" in err
    assert snapshot(scratch_root, work) == before and not out(work, "status", "--porcelain").strip()


def test_a_change_the_base_already_has_is_said_and_nothing_is_added(capsys, scratch_root, work, tmp_path):
    """The include guard: 0.5.14's queue carries it (patch 0001)."""
    repo = upstream(tmp_path, work, GUARDED)
    sha = commit(repo, "[AMD] Guard the CUDA include (#29373)", {f"python/{GUARDED}": (work / GUARDED).read_text()})
    before = snapshot(scratch_root, work)
    rc, stdout, err = run_cli(
        capsys, "patches", "backport", "--base", "0.5.14", "--commit", sha, "--repo", str(repo), "--work-dir", str(work)
    )
    assert rc == 0, err
    assert "pull/29373 is already in sglang 0.5.14 plus its queue: nothing added" in stdout
    assert snapshot(scratch_root, work) == before


def test_bad_sources_are_refused_before_anything_is_touched(capsys, work, tmp_path):
    plain = tmp_path / "change.diff"
    pristine = out(work, "show", f"wafer/upstream:{CACHE_PARAMS}")
    plain.write_text(
        f"diff --git a/python/{CACHE_PARAMS} b/python/{CACHE_PARAMS}\n--- a/python/{CACHE_PARAMS}\n"
        f"+++ b/python/{CACHE_PARAMS}\n@@ -1 +1 @@\n-{pristine.splitlines()[0]}\n+# changed\n"
    )
    cases = [
        (["--pr", "not-a-pr"], "give a PR number"),
        (["--patch", str(plain)], "--url"),
        (["--patch", str(plain), "--url", "https://github.com/sgl-project/sglang/pull/1"], "--subject"),
        (["--patch", str(tmp_path / "missing.patch")], "cannot read"),
        (["--commit", "HEAD"], "--commit needs --repo"),
        (["--commit", "nope", "--repo", str(work)], "is not a commit"),
    ]
    head = out(work, "rev-parse", "HEAD")
    for argv, message in cases:
        rc, _, err = run_cli(capsys, "patches", "backport", "--base", "0.5.14", *argv, "--work-dir", str(work))
        assert rc == 2 and message in err, (argv, err)
    assert out(work, "rev-parse", "HEAD") == head and not out(work, "status", "--porcelain").strip()
