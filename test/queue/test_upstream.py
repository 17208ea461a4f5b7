"""check-upstream and rebase against real upstream releases (network)."""

from __future__ import annotations

import json

import pytest
from support.common import run_cli

pytestmark = pytest.mark.network
GUARD = "0001-rocm-guard-cuda-runtime-include-in-fused-metadata-copy.patch"


def verdicts(capsys, base, against):
    rc, stdout, err = run_cli(capsys, "patches", "check-upstream", "--base", base, "--against", against, "--json")
    assert rc == 0, err
    report = json.loads(stdout)
    assert (report["base"], report["against"]) == (base, against)
    return {v["patch"]: v for v in report["patches"]}


def test_guard_still_applies_to_its_own_base(capsys):
    assert verdicts(capsys, "0.5.14", "0.5.14")[GUARD]["status"] == "applies"


@pytest.mark.parametrize("release", ["0.5.15", "0.5.16"])
def test_guard_is_already_upstream_in_later_releases(capsys, release):
    verdict = verdicts(capsys, "0.5.14", release)[GUARD]
    assert verdict["status"] == "already-upstream" and verdict["moved"] is None


def test_guard_is_found_upstream_after_the_017_file_move(capsys):
    verdict = verdicts(capsys, "0.5.14", "0.5.23")[GUARD]
    assert verdict["status"] == "already-upstream"
    assert verdict["moved"] == {
        "sglang/jit_kernel/csrc/elementwise/fused_metadata_copy.cuh": (
            "sglang/kernels/jit/csrc/elementwise/fused_metadata_copy.cuh"
        )
    }


def test_table_output(capsys):
    rc, stdout, _ = run_cli(capsys, "patches", "check-upstream", "--base", "0.5.14", "--against", "0.5.16")
    assert rc == 0
    assert stdout.splitlines()[0] == "patches of 0.5.14 against sglang 0.5.16:"
    assert any(line.startswith(GUARD) and "already-upstream" in line for line in stdout.splitlines())


def test_unpinned_target_fails_closed(capsys):
    rc, _, err = run_cli(capsys, "patches", "check-upstream", "--base", "0.5.14", "--against", "0.5.13")
    assert rc == 2 and "patches pin 0.5.13" in err


def test_rebase_drops_what_upstream_has_and_lists_what_to_port(capsys, scratch_root, tmp_path):
    work = tmp_path / "rebased"
    rc, stdout, _ = run_cli(capsys, "patches", "rebase", "--base", "0.5.14", "--to", "0.5.23", "--work-dir", str(work))
    assert rc == 1  # the quark mapping and the server-args defaults conflict: 0.5.2x restructured them
    assert "0 patch(es) carried to 0.5.23" in stdout and "dropped: 6" in stdout  # guard + five backports
    to_port = stdout.split("port by hand")[1]
    assert "0002-quark-map-mtp-excludes" in to_port and "0008-defaults-mi355x-defaults-for-glm-5.patch" in to_port
    assert (work / "sglang/kernels/jit/csrc/elementwise/fused_metadata_copy.cuh").is_file()
