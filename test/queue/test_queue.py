"""apply / export / lint on the real pinned bases (network: the wheels are cached under build/)."""

from __future__ import annotations

import pytest
from support.common import BASES, ROOT, run_cli

from wafer_sglang.gitrun import git, out
from wafer_sglang.queue.series import parse_series

pytestmark = pytest.mark.network
GUARD = "0001-rocm-guard-cuda-runtime-include-in-fused-metadata-copy.patch"


@pytest.mark.parametrize("base", BASES)
def test_apply_then_export_check_round_trips(capsys, tmp_path, base):
    work = tmp_path / "work"
    rc, stdout, _ = run_cli(capsys, "patches", "apply", "--base", base, "--python", "3.11", "--work-dir", str(work))
    assert rc == 0, stdout
    assert (work / "sglang" / "__init__.py").is_file()
    assert out(work, "tag").split() == ["wafer/upstream"]
    rc, stdout, _ = run_cli(capsys, "patches", "export", "--base", base, "--work-dir", str(work), "--check")
    assert rc == 0 and "up to date" in stdout
    rc, _, err = run_cli(capsys, "patches", "lint", "--base", base)
    assert rc == 0, err


def test_guard_patch_is_in_the_0514_work_tree(capsys, tmp_path):
    work = tmp_path / "work"
    assert run_cli(capsys, "patches", "apply", "--base", "0.5.14", "--work-dir", str(work))[0] == 0
    header = (work / "sglang/jit_kernel/csrc/elementwise/fused_metadata_copy.cuh").read_text()
    assert "#ifndef USE_ROCM\n#include <cuda_runtime.h>\n#else\n#include <hip/hip_runtime.h>\n#endif" in header
    subjects = out(work, "log", "--format=%s", "wafer/upstream..HEAD").splitlines()
    assert subjects[-1] == "rocm: guard cuda runtime include in fused metadata copy"


def test_changed_context_line_fails_and_leaves_nothing(capsys, scratch_root, tmp_path):
    patch = scratch_root / "patches/0.5.14" / GUARD
    text = patch.read_text()
    patch.write_text(
        text.replace(" #include <tvm/ffi/container/tensor.h>\n", " #include <tvm/ffi/container/tensorx.h>\n", 1)
    )
    work = tmp_path / "work"
    rc, _, err = run_cli(capsys, "patches", "apply", "--base", "0.5.14", "--work-dir", str(work))
    assert rc == 2
    assert f"{GUARD} does not apply exactly (no fuzz, no 3-way)" in err and "patch failed" in err
    assert not work.exists() and not any(p.name.startswith(".work.") for p in tmp_path.iterdir())


def test_already_applied_patch_is_an_error(capsys, scratch_root, tmp_path):
    """The 0.5.14 guard patch on 0.5.16 (which has the guard): git am -3 would pass; we must not."""
    pins = scratch_root / "patches/bases.toml"
    pins.write_text(
        pins.read_text().replace(
            '[upstream."0.5.16"]\nrole = "reference"', '[upstream."0.5.16"]\nrole = "base"\nrespin = 1'
        )
    )
    (scratch_root / "patches/0.5.16").mkdir()
    (scratch_root / "patches/0.5.16" / GUARD).write_bytes((scratch_root / "patches/0.5.14" / GUARD).read_bytes())
    (scratch_root / "patches/0.5.16/series").write_text(GUARD + "\n")
    work = tmp_path / "work"
    rc, _, err = run_cli(capsys, "patches", "apply", "--base", "0.5.16", "--work-dir", str(work))
    assert rc == 2 and f"{GUARD} is already applied" in err
    assert not work.exists()


def test_overlay_collision_fails_apply_and_lint(capsys, scratch_root, tmp_path):
    clash = scratch_root / "python/sglang/srt/server_args.py"
    clash.parent.mkdir(parents=True, exist_ok=True)
    clash.write_text("# would shadow upstream\n")
    work = tmp_path / "work"
    rc, _, err = run_cli(capsys, "patches", "apply", "--base", "0.5.14", "--work-dir", str(work))
    assert rc == 2 and "would overwrite upstream files" in err and "python/sglang/srt/server_args.py" in err
    assert not work.exists()
    rc, stdout, _ = run_cli(capsys, "patches", "lint", "--base", "0.5.14")
    assert (
        rc == 1 and "python/sglang/srt/server_args.py: overlay file overwrites upstream sglang 0.5.14's file" in stdout
    )


def test_new_overlay_file_is_committed_separately(capsys, scratch_root, tmp_path):
    new = scratch_root / "python/sglang/srt/wafer_probe.py"
    new.parent.mkdir(parents=True, exist_ok=True)
    new.write_text("VALUE = 1\n")
    work = tmp_path / "work"
    assert run_cli(capsys, "patches", "apply", "--base", "0.5.14", "--work-dir", str(work))[0] == 0
    last = out(work, "show", "--name-only", "--format=%s%n%(trailers:key=Wafer-Overlay,valueonly)", "HEAD").split()
    assert last[:2] == ["overlay:", "add"] and "true" in last and "sglang/srt/wafer_probe.py" in last
    rc, _, _ = run_cli(capsys, "patches", "export", "--base", "0.5.14", "--work-dir", str(work), "--check")
    assert rc == 0  # the overlay commit is never exported as a patch


def test_export_adds_a_new_commit_as_the_next_patch_and_keeps_comments(capsys, scratch_root, tmp_path):
    series = scratch_root / "patches/0.5.14/series"
    series.write_text(series.read_text().replace(GUARD, f"# == ROCm enablement ==\n{GUARD}   # upstream in 0.5.15"))
    next_name = f"{len(parse_series(series.read_text()).entries) + 1:04d}-build-mark-the-version-file.patch"
    work = tmp_path / "work"
    assert run_cli(capsys, "patches", "apply", "--base", "0.5.14", "--work-dir", str(work))[0] == 0
    target = work / "sglang/version.py"
    target.write_text(target.read_text() + "# touched\n")
    message = (
        "build: mark the version file\n\nWhy.\n\nThis patch can be removed once never.\n\n"
        "Upstream-Status: Inappropriate [fork-specific]\nOrigin: vendor\nLast-Update: 2026-11-27\n"
    )
    git(work, "commit", "-qam", message, date="2026-11-27T00:00:00+0000")
    rc, stdout, _ = run_cli(capsys, "patches", "export", "--base", "0.5.14", "--work-dir", str(work), "--check")
    assert rc == 1 and f"would add {next_name}" in stdout and "would change series" in stdout
    assert run_cli(capsys, "patches", "export", "--base", "0.5.14", "--work-dir", str(work))[0] == 0
    lines = series.read_text().splitlines()
    assert lines[lines.index("# == ROCm enablement ==") + 1] == f"{GUARD}   # upstream in 0.5.15"
    assert lines[-1] == next_name
    patch = (scratch_root / "patches/0.5.14" / next_name).read_text()
    assert "diff --git a/python/sglang/version.py b/python/sglang/version.py" in patch
    assert run_cli(capsys, "patches", "export", "--base", "0.5.14", "--work-dir", str(work), "--check")[0] == 0


def test_export_refuses_a_dirty_tree(capsys, tmp_path):
    work = tmp_path / "work"
    assert run_cli(capsys, "patches", "apply", "--base", "0.5.14", "--work-dir", str(work))[0] == 0
    (work / "sglang/version.py").write_text("dirty\n")
    rc, _, err = run_cli(capsys, "patches", "export", "--base", "0.5.14", "--work-dir", str(work), "--check")
    assert rc == 2 and "uncommitted changes" in err


def test_export_check_sees_a_hand_edited_patch(capsys, scratch_root, tmp_path):
    work = tmp_path / "work"
    assert run_cli(capsys, "patches", "apply", "--base", "0.5.14", "--work-dir", str(work))[0] == 0
    patch = scratch_root / "patches/0.5.14" / GUARD
    patch.write_text(patch.read_text().replace("Include <hip/hip_runtime.h>", "Include <hip/hip_runtime.h> (edited)"))
    rc, stdout, _ = run_cli(capsys, "patches", "export", "--base", "0.5.14", "--work-dir", str(work), "--check")
    assert rc == 1 and f"would change {GUARD}" in stdout and "(edited)" in stdout


def test_force_replaces_only_a_work_tree_these_tools_made(capsys, tmp_path, monkeypatch):
    """--force once wiped any folder (a user's files; `--work-dir . --force` the whole checkout)."""
    folder = tmp_path / "mine"
    folder.mkdir()
    (folder / "keep").write_text("x")
    rc, _, err = run_cli(capsys, "patches", "apply", "--base", "0.5.14", "--work-dir", str(folder))
    assert rc == 2 and "--force" in err and (folder / "keep").exists()
    rc, _, err = run_cli(capsys, "patches", "apply", "--base", "0.5.14", "--work-dir", str(folder), "--force")
    assert rc == 2 and "not a work tree made by" in err and (folder / "keep").read_text() == "x"
    # a work tree it made is replaced
    work = tmp_path / "work"
    assert run_cli(capsys, "patches", "apply", "--base", "0.5.14", "--work-dir", str(work))[0] == 0
    (work / "stale").write_text("x")
    git(work, "add", "stale")
    git(work, "commit", "-qm", "stale")
    assert run_cli(capsys, "patches", "apply", "--base", "0.5.14", "--work-dir", str(work), "--force")[0] == 0
    assert not (work / "stale").exists()
    # the checkout, an ancestor of it, the current directory: never, marker or not
    for target in (ROOT, ROOT.parent):
        rc, _, err = run_cli(capsys, "patches", "apply", "--base", "0.5.14", "--work-dir", str(target), "--force")
        assert rc == 2 and "refusing to replace" in err and (ROOT / "patches/bases.toml").is_file()
    monkeypatch.chdir(work)
    rc, _, err = run_cli(capsys, "patches", "apply", "--base", "0.5.14", "--work-dir", ".", "--force")
    assert rc == 2 and "refusing to replace" in err and (work / "sglang").is_dir()


@pytest.mark.parametrize("base", BASES)
def test_each_patch_git_ams_onto_the_upstream_repo_layout(base, tmp_path):
    """Patches are rooted at the upstream git repo: plain `git am` (no -p2) onto python/sglang/."""
    from wafer_sglang.queue.apply import Queue
    from wafer_sglang.queue.worktree import unpack_wheel

    queue = Queue.open(ROOT, base)
    repo = tmp_path / "sglang-clone"
    unpack_wheel(queue.fetch("cp311", quiet=True), repo / "python")
    git(repo, "init", "-q")
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "upstream")
    for entry in queue.series().entries:
        git(repo, "am", "-q", "--keep", str(queue.patch_dir / entry.name))
    subjects = out(repo, "log", "--format=%s", f"HEAD~{len(queue.series().entries)}..HEAD").splitlines()
    assert len(subjects) == len(queue.series().entries) >= 2


def test_export_keeps_file_names_by_identity_not_subject_or_position(capsys, scratch_root, tmp_path):
    """Patch-Filename trailers: a reworded subject renames nothing and a reorder only renumbers (the
    old export matched by subject); the trailer never reaches the exported files."""
    work = tmp_path / "work"
    assert run_cli(capsys, "patches", "apply", "--base", "0.5.14", "--work-dir", str(work))[0] == 0
    before = sorted(p.name for p in (scratch_root / "patches/0.5.14").glob("*.patch"))
    guard, quark, *rest = out(work, "rev-list", "--reverse", "wafer/upstream..HEAD").split()
    git(work, "reset", "-q", "--hard", "wafer/upstream")
    git(work, "cherry-pick", quark)  # 0002 before 0001: they touch different files
    git(work, "cherry-pick", guard)
    reworded = out(work, "log", "-1", "--format=%B").replace(
        "rocm: guard cuda runtime include", "rocm: use the hip runtime header"
    )
    git(work, "commit", "-q", "--amend", "-m", reworded)
    for commit in rest:
        git(work, "cherry-pick", "--allow-empty", commit)
    assert run_cli(capsys, "patches", "export", "--work-dir", str(work))[0] == 0
    folder = scratch_root / "patches/0.5.14"
    # names keep their identity; only the cosmetic number follows the new position
    assert sorted(p.name[5:] for p in folder.glob("*.patch")) == sorted(name[5:] for name in before)
    assert not any("Patch-Filename" in p.read_text() for p in folder.glob("*.patch"))
    entries = [e.name for e in parse_series((folder / "series").read_text()).entries]
    assert entries[0] == "0001-quark-map-mtp-excludes-onto-the-draft-decoder-by-layer-count.patch"
    assert entries[1] == "0002-" + GUARD[5:]
    assert "Subject: rocm: use the hip runtime header" in (folder / entries[1]).read_text()
    assert run_cli(capsys, "patches", "lint", "--base", "0.5.14")[0] == 0


def test_export_refuses_another_bases_tree_and_merge_commits(capsys, scratch_root, tmp_path):
    work = tmp_path / "work"
    assert run_cli(capsys, "patches", "apply", "--base", "0.5.23", "--python", "3.12", "--work-dir", str(work))[0] == 0
    queue_0514 = {p.name: p.read_bytes() for p in (scratch_root / "patches/0.5.14").iterdir()}
    rc, _, err = run_cli(capsys, "patches", "export", "--base", "0.5.14", "--work-dir", str(work))
    assert rc == 2 and "was made from sglang 0.5.23, not 0.5.14" in err
    assert {p.name: p.read_bytes() for p in (scratch_root / "patches/0.5.14").iterdir()} == queue_0514
    rc, stdout, _ = run_cli(capsys, "patches", "export", "--work-dir", str(work), "--check")  # its own base by default
    assert rc == 0 and "patches/0.5.23: up to date" in stdout
    git(work, "checkout", "-q", "-b", "side", "HEAD~1")
    (work / "side.txt").write_text("x")
    git(work, "add", "side.txt")
    git(work, "commit", "-qm", "side")
    git(work, "checkout", "-q", "main")
    git(work, "merge", "-q", "--no-ff", "-m", "merge side", "side")
    rc, _, err = run_cli(capsys, "patches", "export", "--work-dir", str(work))
    assert rc == 2 and "merge commit" in err


def test_rebase_writes_nothing_in_the_checkout_before_it_refuses(capsys, scratch_root, tmp_path):
    folder = tmp_path / "mine"
    folder.mkdir()
    (folder / "keep").write_text("x")
    rc, _, err = run_cli(
        capsys,
        "patches",
        "rebase",
        "--base",
        "0.5.14",
        "--to",
        "0.5.23",
        "--python",
        "3.12",
        "--work-dir",
        str(folder),
        "--force",
    )
    assert rc == 2 and "not a work tree made by" in err
    assert sorted(p.name for p in (scratch_root / "patches/0.5.23").iterdir()) == sorted(
        p.name for p in (ROOT / "patches/0.5.23").iterdir()
    )
