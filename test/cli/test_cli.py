"""The command line's conventions, for every command: help for every option, defaults shown,
examples and exit codes, one output-flag spelling, --version, completion, the older spellings."""

from __future__ import annotations

import argparse
import subprocess

import pytest
from support.common import BASES, CLI, ROOT, cli_env, run_cli

from wafer_sglang.cli import conventions
from wafer_sglang.cli.main import normalize, parser

LEAVES = list(conventions.leaves(parser()))
IDS = [" ".join(words) for words, _ in LEAVES]


@pytest.mark.parametrize("words, leaf", LEAVES, ids=IDS)
def test_every_option_has_help_and_says_its_default(words, leaf):
    text = leaf.format_help()
    for action in leaf._actions:
        if action.help == argparse.SUPPRESS or action.dest == "help":
            continue
        assert action.help, f"{' '.join(words)}: {action.option_strings or action.dest} has no help"
        if action.option_strings and action.default not in (None, False, [], (), argparse.SUPPRESS):
            rendered = " ".join(leaf._get_formatter()._format_action(action).split())
            assert "default" in rendered, f"{' '.join(words)}: {rendered}"
    assert "exit codes:" in text or "\nexit:" in text


def test_the_main_commands_show_an_example():
    for words in ("serve", "bench sweep", "eval run", "checkpoint check", "doctor", "build"):
        leaf = dict(zip(IDS, (p for _, p in LEAVES)))[words]
        assert f"wafer-sglang {words}" in leaf.format_help()


def test_one_output_flag_spelling():
    for words, leaf in LEAVES:
        outputs = [a for a in leaf._actions if {"--out-dir", "--output", "-o"} & set(a.option_strings)]
        for action in outputs:
            assert "--out" in action.option_strings, f"{' '.join(words)}: {action.option_strings}"


def test_version_names_the_bases_their_patches_and_the_tooling(capsys):
    from wafer_sglang import __version__

    with pytest.raises(SystemExit) as exc:
        parser().parse_args(["--version"])
    out = capsys.readouterr().out
    assert exc.value.code == 0 and f"tooling {__version__}" in out
    for base in BASES:
        patches = len(
            [
                line
                for line in (ROOT / "patches" / base / "series").read_text().splitlines()
                if line.strip() and not line.startswith("#")
            ]
        )
        assert f"sglang {base}" in out and f"+ {patches} patches" in out


def test_version_of_an_installed_fork(monkeypatch):
    from wafer_sglang import manifest

    monkeypatch.setattr(
        manifest,
        "installed_manifest",
        lambda: {"version": "0.5.14.post1", "base": {"version": "0.5.14"}, "patches": [{}] * 5},
    )
    assert conventions.version_text().startswith("wafer-sglang-rocm 0.5.14.post1 (sglang 0.5.14 + 5 patches; tooling ")


@pytest.mark.parametrize(
    "text, says",
    [
        ("{not json", "not JSON"),
        ('{"version": "1"}', "missing distribution"),
        ("[]", "not an object"),
        (None, "no fork_manifest.json"),
    ],
)
def test_a_damaged_manifest_is_an_error_for_version_and_info_not_a_traceback(capsys, monkeypatch, text, says):
    import importlib.metadata

    from wafer_sglang import manifest

    class Installed:  # the engine's installed .dist-info, with a damaged manifest in it
        def read_text(self, name):
            return {manifest.MANIFEST_NAME: text, "RECORD": ""}.get(name)

    real = importlib.metadata.distribution
    monkeypatch.setattr(
        importlib.metadata, "distribution", lambda name: Installed() if name == manifest.ENGINE_DIST else real(name)
    )
    with pytest.raises(SystemExit) as exit_:
        run_cli(capsys, "--version")
    err = capsys.readouterr().err
    assert exit_.value.code == 2 and "manifest" in err and says in err and "reinstall" in err
    assert "Traceback" not in err
    rc, _, err = run_cli(capsys, "info")
    assert rc == 2 and says in err and "internal error" not in err


def test_a_checkouts_egg_info_is_no_installed_fork(monkeypatch):
    """`setup.py egg_info` leaves wafer_sglang_rocm.egg-info in a checkout (no RECORD, no
    manifest), and the current folder is on sys.path: that is no engine, not a damaged one."""
    import importlib.metadata

    from wafer_sglang import manifest

    egg_info = type("EggInfo", (), {"read_text": lambda self, name: None})()
    monkeypatch.setattr(importlib.metadata, "distribution", lambda name: egg_info)
    assert manifest.installed_manifest() is None


@pytest.mark.parametrize("shell", ["bash", "zsh"])
def test_completion_covers_every_command(capsys, shell):
    rc, out, _ = run_cli(capsys, "completion", shell)
    assert rc == 0
    for words in IDS:
        assert words.split()[-1] in out


def test_older_spellings_still_work():
    assert normalize(["eval-prepare", "--data-dir", "d"]) == ["eval", "prepare", "--data-dir", "d"]
    assert normalize(["eval", "--baseline", "u"]) == ["eval", "run", "--baseline", "u"]
    assert normalize(["eval", "run", "--baseline", "u"]) == ["eval", "run", "--baseline", "u"]
    args = parser().parse_args(normalize(["serve", "--recipe", "r", "--model", "m", "--force"]))
    assert args.ignore_check
    args = parser().parse_args(["build", "--out-dir", "d"])
    assert str(args.out_dir) == "d" and str(parser().parse_args(["build", "-o", "d"]).out_dir) == "d"


def test_help_of_every_command_runs_as_users_type_it():
    env = cli_env(WAFER_SGLANG_ROOT=str(ROOT))
    proc = subprocess.run([*CLI, "eval", "--help"], capture_output=True, text=True, env=env, timeout=60)
    assert proc.returncode == 0 and "run" in proc.stdout and "prepare" in proc.stdout
