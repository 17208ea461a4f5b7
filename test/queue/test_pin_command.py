"""`patches pin`, the only writer of hashes, against a local PEP 691 index: what it records, what it
never changes, and what it refuses."""

from __future__ import annotations

import http.server
import json
import threading

import pytest
from support.common import run_cli

from wafer_sglang import bases

TAGS = ("cp311", "cp312", "cp313")


def wheel_file(version: str, tag: str, platform: str = "manylinux_2_34_x86_64", **extra) -> dict:
    name = f"sglang-{version}-{tag}-{tag}-{platform}.whl"
    digest = f"{version}{tag}{platform}".encode().hex().ljust(64, "0")[:64]
    return {
        "filename": name,
        "url": f"https://files.example/{name}",
        "hashes": {"sha256": digest},
        "size": 1000 + len(name),
        "upload-time": "2026-11-20T10:00:00Z",
        **extra,
    }


@pytest.fixture
def index(monkeypatch):
    """A PEP 691 JSON index on loopback; tests set ``index.files``."""

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            body = json.dumps({"files": Handler.files}).encode()
            self.send_response(200 if self.path == "/simple/sglang/" else 404)
            self.send_header("Content-Type", "application/vnd.pypi.simple.v1+json")
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    Handler.files = []
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    monkeypatch.setenv("WAFER_SGLANG_INDEX_URL", f"http://127.0.0.1:{server.server_port}/simple")
    yield Handler
    server.shutdown()


def test_a_new_release_is_pinned_exactly_and_nothing_else_changes(capsys, scratch_root, index):
    wanted = [wheel_file("0.5.24", tag) for tag in TAGS]
    index.files = [
        *wanted,
        wheel_file("0.5.24", "cp312", "manylinux_2_34_aarch64"),
        wheel_file("0.5.24", "cp310", yanked=True),
        wheel_file("0.5.23", "cp311"),
        {"filename": "sglang-0.5.24.tar.gz", "url": "x", "hashes": {}},
    ]
    pin_file = scratch_root / "patches/bases.toml"
    before = pin_file.read_text()
    rc, out, err = run_cli(capsys, "patches", "pin", "0.5.24")
    assert rc == 0 and "sglang 0.5.24: pinned (cp311, cp312, cp313)" in out, err
    after = pin_file.read_text()
    assert after.startswith(before.rstrip("\n"))  # comments, records and order kept; the release appended
    pin = bases.pins(scratch_root).get("0.5.24")
    assert pin.role == "reference" and pin.released == "2026-11-20"
    for f in wanted:
        tag = f["filename"].split("-")[2]
        assert (pin.wheels[tag].sha256, pin.wheels[tag].size, pin.wheels[tag].url) == (
            f["hashes"]["sha256"],
            f["size"],
            f["url"],
        )
    rc, out, _ = run_cli(capsys, "patches", "pin", "0.5.24")
    assert rc == 0 and "already pinned" in out and pin_file.read_text() == after


def test_an_index_whose_hash_differs_from_the_pin_is_refused(capsys, scratch_root, index):
    pins = bases.pins(scratch_root).get("0.5.14")
    index.files = [
        {**wheel_file("0.5.14", tag), "filename": pins.wheels[tag].filename, "size": pins.wheels[tag].size}
        for tag in TAGS
    ]  # same files, other bytes
    before = (scratch_root / "patches/bases.toml").read_bytes()
    rc, _, err = run_cli(capsys, "patches", "pin", "0.5.14")
    assert rc == 2 and "index hashes differ from the pin" in err and "refusing" in err
    assert (scratch_root / "patches/bases.toml").read_bytes() == before


def test_refreshing_a_base_keeps_its_record(capsys, scratch_root, index):
    """A base's pythons, engine facts, kernel and derived tags are not the index's to change."""
    pin_file = scratch_root / "patches/bases.toml"
    record = bases.pins(scratch_root).base("0.5.14")
    text = pin_file.read_text()
    start = text.index('[upstream."0.5.14".wheels.cp313]')
    pin_file.write_text(text[:start] + text[text.index("\n\n", start) + 2 :])  # cp313 not pinned yet
    index.files = [
        {
            "filename": w.filename,
            "url": w.url,
            "hashes": {"sha256": w.sha256},
            "size": w.size,
            "upload-time": "2026-06-26T00:00:00Z",
        }
        for w in record.wheels.values()
    ]
    rc, out, err = run_cli(capsys, "patches", "pin", "0.5.14", "--role", "base")
    assert rc == 0 and "pinned" in out, err
    assert bases.pins(scratch_root).base("0.5.14") == record  # every field, the engine facts and kernel too


@pytest.mark.parametrize(
    "bad, message",
    [
        ({"hashes": {"sha256": "abc"}}, "sha256"),
        ({"size": -1}, "size"),
        ({"url": "ftp://files.example/x.whl"}, "url"),
    ],
)
def test_a_malformed_index_record_writes_nothing(capsys, scratch_root, index, bad, message):
    index.files = [{**wheel_file("0.5.24", "cp311"), **bad}]
    before = (scratch_root / "patches/bases.toml").read_bytes()
    rc, _, err = run_cli(capsys, "patches", "pin", "0.5.24")
    assert rc == 2 and message in err and "Traceback" not in err
    assert (scratch_root / "patches/bases.toml").read_bytes() == before


def test_the_latest_release_is_the_newest_final_one_with_a_wheel_we_pin(index):
    from wafer_sglang.queue.index import latest_release

    index.files = [
        wheel_file("0.5.23", "cp311"),
        wheel_file("0.5.30", "cp312"),
        wheel_file("0.5.31rc1", "cp311"),
        wheel_file("0.5.32", "cp311", yanked=True),
        wheel_file("0.5.33", "cp311", "manylinux_2_34_aarch64"),
    ]
    assert latest_release() == "0.5.30"
