"""Fail-closed downloads against a local HTTP server, and the real pinned cache."""

from __future__ import annotations

import hashlib
import http.server
import shutil
import threading

import pytest
from support.common import CACHE, ROOT, run_cli

from wafer_sglang import bases
from wafer_sglang.bases import WheelPin
from wafer_sglang.errors import WaferError
from wafer_sglang.queue import download

PAYLOAD = b"not really a wheel, but 64 KiB of bytes to hash " * 1400
NAME = "sglang-0.0.1-cp311-cp311-manylinux_2_34_x86_64.whl"


@pytest.fixture
def server(tmp_path):
    """Serves files from tmp_path/www on loopback; tests put whatever bytes they want there."""
    www = tmp_path / "www"
    www.mkdir()

    class Handler(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *a, **kw):
            super().__init__(*a, directory=str(www), **kw)

        def log_message(self, *args):
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield www, f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()


def pin_for(url: str, data: bytes = PAYLOAD) -> WheelPin:
    return WheelPin(filename=NAME, sha256=hashlib.sha256(data).hexdigest(), size=len(data), url=f"{url}/{NAME}")


def test_download_verifies_and_caches(server, tmp_path):
    www, url = server
    (www / NAME).write_bytes(PAYLOAD)
    cache = tmp_path / "cache"
    path = download.fetch(pin_for(url), cache, quiet=True)
    assert path.read_bytes() == PAYLOAD
    (www / NAME).unlink()  # a cache hit must not touch the network
    assert download.fetch(pin_for(url), cache, quiet=True) == path
    assert sorted(p.name for p in cache.iterdir()) == [NAME]


def test_truncated_download_fails_and_leaves_nothing(server, tmp_path):
    www, url = server
    (www / NAME).write_bytes(PAYLOAD[:-100])
    cache = tmp_path / "cache"
    with pytest.raises(WaferError) as err:
        download.fetch(pin_for(url), cache, quiet=True)
    message = str(err.value)
    assert "truncated" in message and NAME in message
    assert hashlib.sha256(PAYLOAD).hexdigest() in message and hashlib.sha256(PAYLOAD[:-100]).hexdigest() in message
    assert list(cache.iterdir()) == []


def test_wrong_bytes_fail_closed(server, tmp_path):
    www, url = server
    evil = bytes(reversed(PAYLOAD))
    (www / NAME).write_bytes(evil)
    cache = tmp_path / "cache"
    with pytest.raises(WaferError, match="sha256 mismatch"):
        download.fetch(pin_for(url), cache, quiet=True)
    assert list(cache.iterdir()) == []


def test_http_error_is_a_clear_message(server, tmp_path):
    _, url = server
    with pytest.raises(WaferError, match=f"download of {NAME} from .* failed"):
        download.fetch(pin_for(url), tmp_path / "cache", quiet=True)


def test_tampered_cache_is_refused_until_refresh(server, tmp_path):
    www, url = server
    (www / NAME).write_bytes(PAYLOAD)
    cache = tmp_path / "cache"
    path = download.fetch(pin_for(url), cache, quiet=True)
    path.write_bytes(PAYLOAD[:10] + b"X" + PAYLOAD[11:])
    with pytest.raises(WaferError, match="(?s)sha256 mismatch.*--refresh"):
        download.fetch(pin_for(url), cache, quiet=True)
    assert download.fetch(pin_for(url), cache, refresh=True, quiet=True).read_bytes() == PAYLOAD


@pytest.mark.network
def test_tampered_real_base_wheel_fails_fetch_and_apply(capsys, tmp_path, monkeypatch):
    """The done-when case: a flipped byte in the cached 0.5.14 wheel stops fetch and apply."""
    pin = bases.pins(ROOT).base("0.5.14").wheel("cp311")
    download.fetch(pin, CACHE, quiet=True)
    cache = tmp_path / "cache"
    cache.mkdir()
    tampered = cache / pin.filename
    shutil.copyfile(CACHE / pin.filename, tampered)
    with tampered.open("r+b") as fh:
        fh.seek(4096)
        byte = fh.read(1)
        fh.seek(4096)
        fh.write(bytes([byte[0] ^ 0xFF]))
    monkeypatch.setenv("WAFER_SGLANG_CACHE_DIR", str(cache))
    rc, _, err = run_cli(capsys, "patches", "fetch", "--base", "0.5.14", "--python", "3.11")
    assert rc == 2
    assert pin.filename in err and f"expected: sha256={pin.sha256}" in err
    assert f"actual:   sha256={download.sha256_of(tampered)}" in err
    work = tmp_path / "work"
    rc, _, err = run_cli(capsys, "patches", "apply", "--base", "0.5.14", "--python", "3.11", "--work-dir", str(work))
    assert rc == 2 and "sha256 mismatch" in err
    assert not work.exists() and [p.name for p in tmp_path.iterdir() if p.name.startswith(".work")] == []


def test_refresh_keeps_the_verified_file_until_a_replacement_verifies(server, tmp_path):
    """--refresh once deleted the good wheel first: offline, the cache was simply gone."""
    www, url = server
    (www / NAME).write_bytes(PAYLOAD)
    cache = tmp_path / "cache"
    good = download.fetch(pin_for(url), cache, quiet=True)
    (www / NAME).unlink()  # offline / gone from the mirror
    with pytest.raises(WaferError, match="(?s)failed.*cached .* was kept"):
        download.fetch(pin_for(url), cache, refresh=True, quiet=True)
    (www / NAME).write_bytes(bytes(reversed(PAYLOAD)))  # a bad mirror
    with pytest.raises(WaferError, match="(?s)sha256 mismatch.*was kept"):
        download.fetch(pin_for(url), cache, refresh=True, quiet=True)
    assert good.read_bytes() == PAYLOAD and sorted(p.name for p in cache.iterdir()) == [NAME]


def test_a_download_stops_at_the_pinned_size(server, tmp_path):
    """A mirror serving 60 MB for a 12 MB pin once filled the disk: reading stops past the pin."""
    www, url = server
    (www / NAME).write_bytes(PAYLOAD * 40)
    written = []
    original = download._download

    def spy(pin, dest, *, quiet):
        try:
            original(pin, dest, quiet=quiet)
        finally:
            written.append(dest.stat().st_size if dest.exists() else 0)

    cache = tmp_path / "cache"
    import unittest.mock

    with unittest.mock.patch.object(download, "_download", spy):
        with pytest.raises(WaferError, match="sent more than the pinned"):
            download.fetch(pin_for(url), cache, quiet=True)
    assert written[0] <= len(PAYLOAD) and list(cache.iterdir()) == []


@pytest.fixture
def index(server, monkeypatch):
    """A PEP 691 JSON index on loopback; tests write its sglang page."""
    www, url = server
    (www / "sglang").mkdir()
    monkeypatch.setenv("WAFER_SGLANG_INDEX_URL", url)

    def page(files):
        import json

        (www / "sglang" / "index.html").write_text(json.dumps({"files": files}))

    return page


def _file(version="0.5.99", tag="cp311", sha=None, size=1234, **extra):
    name = f"sglang-{version}-{tag}-{tag}-manylinux_2_34_x86_64.whl"
    return {
        "filename": name,
        "hashes": {"sha256": sha or "ab" * 32},
        "size": size,
        "url": f"https://files.example/{name}",
        "upload-time": "2026-11-30T00:00:00Z",
        **extra,
    }


@pytest.mark.parametrize(
    "files, message",
    [
        ([_file(sha="not-a-hash")], "sha256 'not-a-hash' is not 64 hex digits"),
        ([_file(size=-5)], "size -5 is not a positive byte count"),
        ([{k: v for k, v in _file().items() if k != "hashes"}], "needs filename, sha256, size, url"),
        ([_file(url="file:///etc/passwd")], "is not http(s)"),
        ([], "has no manylinux_2_34_x86_64 wheel"),
    ],
)
def test_pin_validates_what_the_index_says_before_writing(capsys, scratch_root, index, files, message):
    index(files)
    before = (scratch_root / "patches/bases.toml").read_bytes()
    rc, _, err = run_cli(capsys, "patches", "pin", "0.5.99")
    assert rc == 2 and message in err and "Traceback" not in err
    assert (scratch_root / "patches/bases.toml").read_bytes() == before


def test_pin_records_a_release_and_is_idempotent(capsys, scratch_root, index):
    index(
        [
            _file(tag="cp311"),
            _file(tag="cp312", sha="cd" * 32),
            _file(version="0.5.98"),
            {"filename": "sglang-0.5.99.tar.gz", "hashes": {}, "size": 1, "url": "https://x"},
        ]
    )
    rc, out, _ = run_cli(capsys, "patches", "pin", "0.5.99")
    assert rc == 0 and "pinned (cp311, cp312)" in out
    pins = bases.pins(scratch_root).get("0.5.99")
    assert pins.role == "reference" and pins.wheels["cp312"].sha256 == "cd" * 32 and pins.released == "2026-11-30"
    text = (scratch_root / "patches/bases.toml").read_text()
    rc, out, _ = run_cli(capsys, "patches", "pin", "0.5.99")
    assert rc == 0 and "already pinned" in out and (scratch_root / "patches/bases.toml").read_text() == text
    index([_file(tag="cp311", sha="ef" * 32)])  # a published file never changes
    rc, _, err = run_cli(capsys, "patches", "pin", "0.5.99")
    assert rc == 2 and "index hashes differ from the pin" in err
