"""What an eval writes is masked as it is written, also where a key is split across chunks."""

from __future__ import annotations

import io

from wafer_sglang.evals.redact import RedactingSink, scrub_tree

KEY = "sk-abcdef123456"


def test_a_key_split_across_every_chunk_boundary_never_reaches_the_sink():
    text = f"headers={{'Authorization': 'Bearer {KEY}'}} and again {KEY}\r 10/20\n".encode()
    for cut in range(1, len(text)):
        sink = io.BytesIO()
        writer = RedactingSink(sink, [KEY, ""])
        writer.write(text[:cut])
        assert KEY.encode() not in sink.getvalue()
        writer.write(text[cut:])
        writer.close()
        assert sink.getvalue() == text.replace(KEY.encode(), b"***"), cut


def test_without_secrets_everything_passes_at_once():
    sink = io.BytesIO()
    writer = RedactingSink(sink, [])
    writer.write(b"Requesting API: 50%| 1/2")
    assert sink.getvalue() == b"Requesting API: 50%| 1/2"


def test_scrub_tree_masks_third_party_files_in_place(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "a/results.json").write_text(f'{{"key": "{KEY}"}}')
    (tmp_path / "clean.txt").write_text("nothing")
    assert scrub_tree(tmp_path, [KEY]) == [tmp_path / "a/results.json"]
    assert (tmp_path / "a/results.json").read_text() == '{"key": "***"}'
    assert (tmp_path / "clean.txt").read_text() == "nothing"
