"""One record per base: patches/bases.toml says everything, and every other place that is keyed by
a base (patch folder, flag tables, image records, the Makefile's builds) agrees with it."""

from __future__ import annotations

import json
import subprocess

import pytest
from support.common import BASES, LTS, ROOT, run_cli

from wafer_sglang import bases
from wafer_sglang.checkpoint.rules import rules_for
from wafer_sglang.compat import tomllib
from wafer_sglang.errors import WaferError
from wafer_sglang.resources import DATA


@pytest.mark.parametrize("base", BASES)
def test_each_base_has_everything_the_tools_read(base):
    record = bases.record(base)
    assert (ROOT / "patches" / base / "series").is_file()
    assert (DATA / "server_flags" / f"{base}.json").is_file()
    assert record.pythons and record.kernel["sglang-tag"] == f"v{base}" and "gfx950" in record.kernel["archs"]
    for upstream in (True, False):
        assert rules_for(base, upstream).label.endswith(base)


def test_nothing_is_keyed_by_a_base_the_record_does_not_have():
    flag_tables = {p.stem for p in (DATA / "server_flags").glob("*.json")}
    images = set(tomllib.loads((ROOT / "docker/base-images.toml").read_text())["images"])
    folders = {p.name for p in (ROOT / "patches").iterdir() if p.is_dir()}
    assert flag_tables == images == folders == set(BASES)


def test_make_builds_what_the_record_lists():
    builds = bases.builds()
    assert ("0.5.14", "3.10") in builds and all(b in BASES for b, _ in builds)
    dry = subprocess.run(["make", "-n", "wheels"], cwd=ROOT, capture_output=True, text=True).stdout
    assert "bases --builds" in dry and "0.5.14:3.10" not in (ROOT / "Makefile").read_text()


def test_the_cli_lists_the_records(capsys):
    rc, out, _ = run_cli(capsys, "bases", "--json")
    records = json.loads(out)
    assert rc == 0 and [r["version"] for r in records] == BASES
    assert [r["version"] for r in records if r["lts"]] == [LTS]
    lts = next(r for r in records if r["lts"])
    assert lts["image"]["aiter"] and lts["wheel-tags"][0] == "cp310"
    rc, out, _ = run_cli(capsys, "bases", "--builds")
    assert out.splitlines() == [f"{b} {p}" for b, p in bases.builds()]


def test_an_installed_fork_reads_the_record_its_wheel_ships(monkeypatch, tmp_path):
    """Outside a checkout, the copy at wafer_sglang/data/bases.toml (build puts it there)."""
    monkeypatch.delenv("WAFER_SGLANG_ROOT")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(bases, "find_repo_root", lambda: (_ for _ in ()).throw(WaferError("no checkout")))
    packaged = tmp_path / "data"
    packaged.mkdir()
    (packaged / "bases.toml").write_text(
        (ROOT / "patches/bases.toml")
        .read_text()
        .replace(
            "fusion-respects-draft-excludes = false, fusion-respects-target-excludes = false }",
            "fusion-respects-draft-excludes = true, fusion-respects-target-excludes = false }",
        )
    )
    monkeypatch.setattr(bases, "DATA", packaged)
    assert rules_for("0.5.14", upstream=True).fusion_respects_draft_excludes  # read from the copy
    (packaged / "bases.toml").unlink()
    with pytest.raises(WaferError, match="no checkout"):
        bases.supported()


def test_a_base_without_engine_facts_is_said_by_name(scratch_root):
    pin_file = scratch_root / "patches/bases.toml"
    text = pin_file.read_text()
    start = text.index('[upstream."0.5.23".engine]')
    pin_file.write_text(text[:start] + text[text.index("\n\n", start) + 2 :])
    with pytest.raises(WaferError, match=r"base 0\.5\.23 has no engine\.fork facts"):
        rules_for("0.5.23", upstream=False)
    pin_file.write_text(
        text.replace('draft-mapping = "by-layer", coarse', 'draft-mapping = "by-layer", colour = 1, coarse', 1)
    )
    with pytest.raises(WaferError, match="needs exactly draft-mapping"):
        bases.supported()


def test_the_routers_and_jit_ledgers_are_keyed_by_the_record():
    """Each base's router release and JIT review ledger; the test venv pins exactly those routers."""
    from wafer_sglang.serve.router import colauncher, release

    routers = tomllib.loads((DATA / "topologies.toml").read_text())["router"]
    ledgers = {p.stem for p in (DATA / "jit_rocm_reviewed").glob("*.toml")}
    assert set(routers) == ledgers == set(BASES)
    pinned = {line.split("#")[0].strip() for line in (ROOT / "requirements/test.txt").read_text().splitlines()}
    assert {release(base).pin for base in BASES} | {colauncher().pin} <= pinned
