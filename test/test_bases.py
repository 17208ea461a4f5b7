"""One record per base: patches/bases.toml says everything, and every other place that is keyed by
a base (patch folder, flag tables, image records, the Makefile's builds) agrees with it."""

from __future__ import annotations

import ast
import json
import re
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
    images = set(bases.image_records(ROOT))
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


RECORD_NAMES = re.compile(r"bases\.toml|base-images\.toml|\bPIN_FILE\b|\bIMAGES_FILE\b")
TOML_PARSERS = {"tomllib": {"load", "loads"}, "tomli": {"load", "loads"}, "tomlkit": {"load", "loads", "parse"}}


def _parses_toml(node: ast.AST) -> bool:
    return (
        isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and isinstance(node.func.value, ast.Name)
        and node.func.attr in TOML_PARSERS.get(node.func.value.id, ())
    )


def record_readers() -> set[str]:
    """Every function (or top-level statement) of a tracked file that parses TOML and names one
    of the two record files; a script that embeds a TOML parser and names them counts whole."""
    tracked = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True, text=True)
    readers = set()
    for name in filter(None, tracked.stdout.split("\0")):
        path = ROOT / name
        text = path.read_text(errors="replace") if path.is_file() else ""
        if path.suffix != ".py":
            if re.search(r"\btoml(lib|kit|i)\b", text) and RECORD_NAMES.search(text) and not name.endswith(".md"):
                readers.add(name)
            continue
        tree = ast.parse(text)
        units = [n for n in ast.walk(tree) if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))] + tree.body
        for unit in units:
            if any(_parses_toml(n) for n in ast.walk(unit)) and RECORD_NAMES.search(ast.get_source_segment(text, unit)):
                readers.add(f"{name}::{getattr(unit, 'name', unit.lineno)}")
    return readers


def test_only_the_bases_package_parses_the_records():
    """patches/bases.toml and docker/base-images.toml have one home: three readers through two
    entry points, a shell script's own parser and two test copies read them before."""
    package = "python/wafer_sglang/bases"
    assert record_readers() == {
        f"{package}/record.py::respins",
        f"{package}/record.py::record_pin",
        f"{package}/images.py::load_records",
        f"{package}/images.py::record_image",
    }
    # the parser proper takes a path; only bases.pins() hands it one
    callers = subprocess.run(
        ["git", "grep", "-lE", r"record import .*\bread\b|record\.read\(", "--", ":!test/test_bases.py"],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert callers.stdout.split() == [f"{package}/__init__.py"]


def test_the_kernel_recipe_comes_from_the_record(capsys):
    rc, out, _ = run_cli(capsys, "bases", "--kernel")
    kernel = bases.record(LTS).kernel
    assert rc == 0 and out.split()[:4] == [LTS, kernel["sglang-tag"], kernel["version"], ",".join(kernel["archs"])]
    rc, _, err = run_cli(capsys, "bases", "--kernel", "0.5.99")
    assert rc == 2 and "unsupported base '0.5.99'" in err
