"""Patches read like upstream PRs: the lines they add pass upstream's own formatters.

sglang's pre-commit pins isort 5.13.2 (profile black, known_first_party sglang) and black
24.10.0. Upstream's files are not all formatted (contributions skip pre-commit), so the check is
on the lines our patches add: none of them may be among the lines the formatters would change.
"""

from __future__ import annotations

import difflib
import re
import subprocess

import pytest
from support.common import BASES
from support.engine_harness import tree

black = pytest.importorskip("black")
isort = pytest.importorskip("isort")

pytestmark = pytest.mark.network
HUNK = re.compile(r"^@@ -\S+ \+(\d+)(?:,(\d+))? @@")


def added_lines(work, patch_dir) -> dict[str, set[int]]:
    """Python file -> line numbers (in the patched file) that the series adds."""
    paths = sorted(
        {m for p in patch_dir.glob("*.patch") for m in re.findall(r"^\+\+\+ b/python/(\S+\.py)$", p.read_text(), re.M)}
    )
    diff = subprocess.run(
        ["git", "diff", "-U0", "wafer/upstream", "HEAD", "--", *paths],
        cwd=work,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    added: dict[str, set[int]] = {}
    current = None
    for line in diff.splitlines():
        if line.startswith("+++ b/"):
            current = line[len("+++ b/") :]
            added[current] = set()
        elif (m := HUNK.match(line)) and current:
            start, count = int(m.group(1)), int(m.group(2) or 1)
            added[current].update(range(start, start + count))
    return added


def reformatted_lines(text: str) -> set[int]:
    """Lines of ``text`` that isort + black (upstream's settings) would rewrite or remove."""
    formatted = black.format_str(isort.code(text, profile="black", known_first_party=["sglang"]), mode=black.Mode())
    old = text.splitlines()
    touched = set()
    for tag, i1, i2, _, _ in difflib.SequenceMatcher(None, old, formatted.splitlines(), autojunk=False).get_opcodes():
        if tag != "equal":
            touched.update(range(i1 + 1, max(i2, i1 + 1) + 1))
    return touched


@pytest.mark.parametrize("base", BASES)
def test_added_lines_pass_upstreams_black_and_isort(base):
    from support.common import ROOT

    work = tree(base, "patched")
    offenders = {}
    for path, lines in added_lines(work, ROOT / "patches" / base).items():
        hit = sorted(lines & reformatted_lines((work / path).read_text()))
        if hit:
            offenders[path] = hit
    assert offenders == {}, f"black/isort would reformat these added lines: {offenders}"


def test_the_check_sees_an_unformatted_line():
    text = (
        "def f(x):\n    return {f'{x}.{n}': f'model.{n}' for n in ('shared_head', 'eh_proj', 'enorm', 'hnorm', 'x')}\n"
    )
    assert reformatted_lines(text) == {2}
