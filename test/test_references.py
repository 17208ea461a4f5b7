"""Every repository path and patch the prose names exists: the README, the Dockerfile's comments,
the patch headers and the test docstrings are read by people who then open what they cite, and a
move or a renumbered series leaves them pointing at nothing (or at another patch)."""

from __future__ import annotations

import re

import pytest
from support.common import BASES, ROOT

from wafer_sglang.queue.series import read_series

# Paths of this repository (upstream's python/sglang/... paths in patch headers are not ours).
OWN_PATH = re.compile(
    r"(?<![\w./-])((?:test|docker|patches|benchmark|scripts|requirements|\.ci|python/wafer_sglang)"
    r"/[\w./<>*-]*[\w*>])"
)
# "0.5.14/0009", "0.5.14 patch 0008", "(0.5.14: 0008)": a patch of a base by number
NUMBERED = re.compile(r"(0\.5\.\d+)(?:/| patch |: )(\d{4})(?!\d)")
NAMED = re.compile(r"\b(\d{4}-[a-z0-9][\w.-]*[a-z0-9_])(?:\.patch)?\b")


def prose() -> dict[str, str]:
    texts = {"README.md": (ROOT / "README.md").read_text()}
    dockerfile = ROOT / "docker" / "Dockerfile.mi355x"
    texts[str(dockerfile.relative_to(ROOT))] = "\n".join(
        line for line in dockerfile.read_text().splitlines() if line.lstrip().startswith("#")
    )
    for patch in sorted((ROOT / "patches").glob("*/*.patch")):
        texts[str(patch.relative_to(ROOT))] = patch.read_text().split("\ndiff --git ", 1)[0]
    for test in sorted((ROOT / "test").rglob("test_*.py")):
        texts[str(test.relative_to(ROOT))] = test.read_text().split('"""', 2)[1] if '"""' in test.read_text() else ""
    return texts


def patch_names() -> dict[str, list[str]]:
    return {base: read_series(ROOT / "patches" / base).names for base in BASES}


def _exists(path: str) -> bool:
    if re.search(r"[<*]|NNNN", path):  # a pattern (test/engine/test_engine_<base>.py): some file matches
        pattern = re.sub(r"<[^>]*>|NNNN", "*", path)
        return any(ROOT.glob(pattern))
    return (ROOT / path.rstrip(".")).exists()


@pytest.mark.parametrize("source", sorted(prose()))
def test_every_cited_path_exists(source):
    missing = sorted({p for p in OWN_PATH.findall(prose()[source]) if not _exists(p)})
    assert missing == [], f"{source} cites paths that do not exist: {missing}"


@pytest.mark.parametrize("source", sorted(prose()))
def test_every_cited_patch_is_in_its_series(source):
    text, names = prose()[source], patch_names()
    numbered = sorted(
        f"{base}/{number}"
        for base, number in NUMBERED.findall(text)
        if base in names and not any(name.startswith(number + "-") for name in names[base])
    )
    every = {name.removesuffix(".patch") for series in names.values() for name in series}
    cited = set() if source.startswith("test/") else set(NAMED.findall(text))  # tests' docstrings show examples
    named = sorted({n for n in cited if n.removesuffix(".patch") not in every and _looks_like_ours(n)})
    assert numbered == [] and named == [], f"{source} cites patches not in the series: {numbered + named}"


def _looks_like_ours(name: str) -> bool:
    """A slug after four digits: 0007-defaults-..., not a date or a port."""
    return bool(re.match(r"\d{4}-[a-z]+-[a-z]", name))
