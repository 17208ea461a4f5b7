"""The weekly canary's table step, here against a pinned reference release (the workflow runs the
same command with --latest, then posts the table to its tracking issue)."""

from __future__ import annotations

import json

import pytest
from support.common import BASES, ROOT, run_cli

from wafer_sglang.queue.series import read_series

pytestmark = [pytest.mark.network, pytest.mark.slow]
STATUSES = {"applies", "already-upstream", "upstream-per-trailer", "conflicts"}


def test_every_patch_of_every_base_gets_a_verdict_against_the_reference(capsys, tmp_path):
    rc, out, err = run_cli(capsys, "canary", "--against", "0.5.16", "--json")
    assert rc == 0, err
    result = json.loads(out)
    assert result["against"] == "0.5.16" and list(result["bases"]) == BASES
    for base in BASES:
        names = [e.name for e in read_series(ROOT / "patches" / base).entries]
        assert [v["patch"] for v in result["bases"][base]] == names
        assert {v["status"] for v in result["bases"][base]} <= STATUSES
    guard = next(v for v in result["bases"]["0.5.14"] if v["patch"].startswith("0001-rocm-guard"))
    assert guard["status"] == "already-upstream"  # upstream took it in 0.5.15

    rc, _, _ = run_cli(capsys, "canary", "--against", "0.5.16", "--out", str(tmp_path / "canary.md"))
    table = (tmp_path / "canary.md").read_text()
    assert rc == 0 and table.startswith("# Upstream canary: sglang 0.5.16 (released 2026-07-25)")
    assert f"| 0.5.14 | `{guard['patch']}` | already-upstream |" in table
    assert all(f"- **{base}**:" in table for base in BASES)


def test_an_unpinned_release_is_refused_before_anything_is_downloaded(capsys):
    rc, _, err = run_cli(capsys, "canary", "--against", "0.5.99")
    assert rc == 2 and "patches pin 0.5.99" in err
