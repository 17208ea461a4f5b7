"""Lint on the real queue and on broken copies of it."""

from __future__ import annotations

import pytest
from support.common import run_cli

GUARD = "0001-rocm-guard-cuda-runtime-include-in-fused-metadata-copy.patch"


@pytest.mark.network
def test_real_queue_is_clean(capsys):
    rc, stdout, err = run_cli(capsys, "patches", "lint")
    assert rc == 0, stdout
    assert "0 problem(s) in 0.5.14, 0.5.23" in err


def lint(capsys, base="0.5.14"):
    rc, stdout, _ = run_cli(capsys, "patches", "lint", "--base", base)
    return rc, stdout


def test_listed_but_missing_unlisted_and_duplicate(capsys, scratch_root):
    patches = scratch_root / "patches/0.5.14"
    (patches / "0002-stray.patch").write_text("x")
    (patches / "series").write_text(f"{GUARD}\n0002-gone.patch\n{GUARD}\n")
    rc, stdout = lint(capsys)
    assert rc == 1
    assert "lists 0002-gone.patch, which does not exist" in stdout
    assert f"{GUARD} is listed twice" in stdout
    assert "0002-stray.patch: not listed in series" in stdout
    assert f"{GUARD} should be numbered 0003" in stdout


def test_trailing_whitespace_and_paths_outside_the_wheel(capsys, scratch_root):
    patch = scratch_root / "patches/0.5.14" / GUARD
    text = patch.read_text().replace("+#ifndef USE_ROCM\n", "+#ifndef USE_ROCM  \n")
    text = text.replace("a/python/sglang/jit_kernel", "a/docs/jit_kernel", 1)
    patch.write_text(text)
    rc, stdout = lint(capsys)
    assert rc == 1
    assert "trailing whitespace added to python/sglang/jit_kernel/csrc/elementwise/fused_metadata_copy.cuh" in stdout
    assert (
        "touches docs/jit_kernel/csrc/elementwise/fused_metadata_copy.cuh, which is not under python/sglang/" in stdout
    )


def test_header_problems_are_reported_per_patch(capsys, scratch_root):
    patch = scratch_root / "patches/0.5.14" / GUARD
    patch.write_text(
        patch.read_text().replace("Origin: backport, https://github.com/sgl-project/sglang/pull/29373\n", "")
    )
    rc, stdout = lint(capsys)
    assert rc == 1 and f"patches/0.5.14/{GUARD}: missing trailer Origin:" in stdout
