"""Header lint: subject form, drop condition, and missing vs malformed trailers."""

from pathlib import Path

import pytest

from wafer_sglang.queue.headers import read_header

BODY = """Why it exists and what breaks without it.

This patch can be removed once the base is sglang 0.5.15 or newer.
"""
TRAILERS = {
    "Upstream-Status": "Backport [https://github.com/sgl-project/sglang/pull/29373]",
    "Origin": "backport, https://github.com/sgl-project/sglang/pull/29373",
    "Applied-Upstream": "0.5.15, https://github.com/sgl-project/sglang/pull/29373",
    "Last-Update": "2026-11-27",
}
DIFF = """diff --git a/python/sglang/x.py b/python/sglang/x.py
index 1111111111111111111111111111111111111111..2222222222222222222222222222222222222222 100644
--- a/python/sglang/x.py
+++ b/python/sglang/x.py
@@ -1 +1 @@
-a = 1
+a = 2
"""


def make_patch(tmp_path: Path, subject="rocm: guard the include", body=BODY, trailers=None, raw_trailers=None) -> Path:
    trailers = dict(TRAILERS) if trailers is None else trailers
    lines = raw_trailers if raw_trailers is not None else [f"{k}: {v}" for k, v in trailers.items()]
    text = (
        "From 0000000000000000000000000000000000000000 Mon Sep 17 00:00:00 2001\n"
        "From: Dev <dev@example.com>\nDate: Fri, 27 Nov 2026 00:00:00 +0000\n"
        f"Subject: {subject}\n\n{body}\n" + "\n".join(lines) + "\n---\n" + DIFF
    )
    path = tmp_path / "0001-x.patch"
    path.write_text(text)
    return path


def test_good_header_has_no_problems(tmp_path):
    header = read_header(make_patch(tmp_path))
    assert header.problems() == []
    assert header.subject == "rocm: guard the include"
    assert header.applied_upstream == ("0.5.15", "https://github.com/sgl-project/sglang/pull/29373")
    assert header.upstream_status.startswith("Backport [")
    assert "This patch can be removed once" in header.body and "Upstream-Status" not in header.body


@pytest.mark.parametrize("missing", ["Upstream-Status", "Origin", "Last-Update"])
def test_missing_trailer_is_reported_as_missing(tmp_path, missing):
    trailers = {k: v for k, v in TRAILERS.items() if k != missing}
    assert f"missing trailer {missing}:" in read_header(make_patch(tmp_path, trailers=trailers)).problems()


@pytest.mark.parametrize(
    "key, value, expect",
    [
        ("Upstream-Status", "Submitted", "wrong form"),
        ("Upstream-Status", "Submitted [not-a-url]", "wrong form"),
        ("Upstream-Status", "Merged [https://x.y/1]", "must start with one of"),
        ("Origin", "somewhere", "want 'vendor'"),
        ("Applied-Upstream", "soon, https://x.y/1", "is not a version"),
        ("Applied-Upstream", "0.5.15", "want '<first upstream version>"),
        ("Last-Update", "27/11/2026", "want YYYY-MM-DD"),
        ("Last-Update", "2026-02-30", "not a real date"),
        ("Last-Update", "2999-01-01", "in the future"),
    ],
)
def test_malformed_trailer_values(tmp_path, key, value, expect):
    problems = read_header(make_patch(tmp_path, trailers={**TRAILERS, key: value})).problems()
    assert any(p.startswith(f"malformed {key}") and expect in p for p in problems), problems


def test_misspelled_key_is_malformed_not_missing(tmp_path):
    raw = [f"{k}: {v}" for k, v in TRAILERS.items() if k != "Upstream-Status"] + ["Upstream-status: Pending"]
    problems = read_header(make_patch(tmp_path, raw_trailers=raw)).problems()
    assert "malformed trailer 'Upstream-status': spell it 'Upstream-Status'" in problems
    assert not any(p.startswith("missing trailer Upstream-Status") for p in problems)


@pytest.mark.parametrize(
    "subject", ["Guard the include", "rocm: Guard the include", "rocm: guard the include.", "rocm guard"]
)
def test_malformed_subject(tmp_path, subject):
    assert any("subject" in p for p in read_header(make_patch(tmp_path, subject=subject)).problems())


def test_body_must_say_when_to_drop(tmp_path):
    problems = read_header(make_patch(tmp_path, body="Why it exists.\n")).problems()
    assert any("when the patch can be dropped" in p for p in problems)
