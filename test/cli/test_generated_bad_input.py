"""Every option of every command, given what a script or a typo hands it: never exit 3 ("internal
error", a bug by the tool's own help) and never a traceback. The cases come from the parser, so an
option is covered the day it is added.

A full run (every option x all of VALUES, 5,664 cases) found 4 kinds of exit 3 / traceback:
`patches pin` with a non-version, `patches backport --pr ''`, and an `--out` too long for the file
system (a traceback out of argparse); and an empty path or base (`--base "$UNSET"`) read as "the
default", which built wheels or ran `patches apply`. Here each option gets PER_OPTION of the values,
rotated so that every value is used across the options.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import signal
import urllib.request
from pathlib import Path

import pytest
from support.common import ROOT

from wafer_sglang.cli.main import main, parser

PER_OPTION = 4
TIMEOUT_S = 5  # a case still running then has passed every check and does real work: not a failure
VALUES = [
    "",
    " ",
    "-1",
    "0",
    "nan",
    "1e400",
    "x" * 300,
    "../../x",
    "/",
    "/dev/null",
    "{tmp}/missing/deeper",
    "{tmp}/dir",
    "{tmp}/binary",
    "{tmp}/empty",
    "{tmp}/bad.json",
    "{tmp}/list.json",
    "{tmp}/bad.toml",
    "{tmp}/ro/x",
    "http://",
    "http://[::1",
    "ftp://x",
    "localhost:99999",
    "a,b,,",
    "=",
    "é☃",
    ":",
]


def _leaves(p: argparse.ArgumentParser, path: tuple[str, ...] = ()):
    subs = [a for a in p._actions if isinstance(a, argparse._SubParsersAction)]
    if not subs:
        yield path, p
        return
    for name, child in subs[0].choices.items():
        yield from _leaves(child, (*path, name))


def _cases() -> dict[str, list[list[str]]]:
    """Per command: argv lists with one option given a bad value and the required ones given "x"."""
    by_command, seen, turn = {}, set(), 0
    for path, p in _leaves(parser()):
        if id(p) in seen:  # an alias of a command already listed
            continue
        seen.add(id(p))
        valued = [a for a in p._actions if a.nargs != 0 and not a.choices and a.dest != "help"]
        required = [a for a in valued if a.required or not a.option_strings]
        for action in valued:
            for _ in range(PER_OPTION):
                value, turn = VALUES[turn % len(VALUES)], turn + 1
                argv = list(path)
                for other in (r for r in required if r is not action):
                    argv += [other.option_strings[0], "x"] if other.option_strings else ["x"]
                argv += [f"{action.option_strings[-1]}={value}"] if action.option_strings else ["--", value]
                by_command.setdefault(" ".join(path), []).append(argv)
    return by_command


CASES = _cases()
pytestmark = pytest.mark.slow  # ~1 min of CPU across the workers


@pytest.fixture
def bad_files(tmp_path) -> Path:
    (tmp_path / "dir").mkdir()
    (tmp_path / "binary").write_bytes(bytes(range(256)) * 4)
    (tmp_path / "empty").write_bytes(b"")
    (tmp_path / "bad.json").write_text("{")
    (tmp_path / "list.json").write_text("[1, 2]")
    (tmp_path / "bad.toml").write_text("[[[")
    (tmp_path / "ro").mkdir(mode=0o500)
    yield tmp_path
    (tmp_path / "ro").chmod(0o700)


class _Timeout(BaseException):
    pass


def _importing(frame) -> bool:
    while frame:
        if frame.f_code.co_filename.startswith("<frozen importlib._bootstrap"):
            return True
        frame = frame.f_back
    return False


def _run(argv: list[str]) -> tuple[int | str, str]:
    def expire(_signum, frame):
        # A timeout inside an import leaves a half-built module (datasets, asyncio) that the next
        # case of this process then trips over as an internal error: it did in CI, 'datasets' has
        # no attribute 'utils'. Let the import finish first.
        if _importing(frame):
            signal.setitimer(signal.ITIMER_REAL, 0.05)
            return
        raise _Timeout

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, TIMEOUT_S)
    err = io.StringIO()
    try:
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
            rc = main(argv)
    except SystemExit as exc:  # argparse's usage errors
        rc = exc.code
    except _Timeout:
        rc = "timeout"
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
    return rc, err.getvalue()


@pytest.mark.parametrize("command", sorted(CASES))
def test_no_bad_value_is_an_internal_error(command, scratch_root, bad_files, monkeypatch):
    import shutil

    shutil.copytree(ROOT / "docker", scratch_root / "docker")
    for name, value in {
        "HOME": str(bad_files),
        "HF_HUB_OFFLINE": "1",
        "HF_DATASETS_OFFLINE": "1",
        "WAFER_SGLANG_INDEX_URL": "http://127.0.0.1:9",
        # no download reaches the network: a value taken as good fails there at once (exit 2)
        "WAFER_SGLANG_CACHE_DIR": str(bad_files / "cache"),
        **dict.fromkeys(("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy"), "http://127.0.0.1:9"),
        "NO_PROXY": "",
    }.items():
        monkeypatch.setenv(name, value)
    # urlopen builds urllib's global opener once, with the proxies of that moment: one built here
    # would send every later request of this worker to the dead proxy (it did: test_download
    # after this file, in one xdist worker). Restored to what it was after the test.
    monkeypatch.setattr(urllib.request, "_opener", None)
    monkeypatch.chdir(bad_files / "dir")
    bugs = []
    for argv in CASES[command]:
        argv = [a.replace("{tmp}", str(bad_files)) for a in argv]
        rc, err = _run(argv)
        if rc == 3 or "Traceback" in err:
            bugs.append(f"{argv[len(command.split()) :]} -> {rc}: {err.strip()[-300:]}")
    assert bugs == []


def test_the_cases_cover_every_command_and_option():
    options = sum(len(v) for v in CASES.values()) // PER_OPTION
    assert len(CASES) >= 30 and options >= 150, (len(CASES), options)
    assert {"patches pin", "bench sweep", "cluster plan", "serve"} <= set(CASES)
