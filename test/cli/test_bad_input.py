"""Bad input, for every command: a one-line error naming the file or field, the documented exit
code, no traceback, and nothing changed — in the checkout (a scratch copy) or beside the input.
A command added later gets a row here (test_every_command_has_a_row checks the table covers the CLI).

Each row: (name, argv with {tmp} / {root} placeholders, setup, exit code, message fragment).
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path

import pytest
from support.common import CLI, ROOT, cli_env, run_cli


def _files(*roots: Path) -> dict[str, bytes]:
    found = {}
    for root in roots:
        for path in sorted(root.rglob("*")) if root.exists() else []:
            if path.is_file() and "__pycache__" not in path.parts:
                found[str(path)] = path.read_bytes()
    return found


def write(rel: str, data: str | bytes):
    def setup(tmp: Path, root: Path) -> None:
        path = (tmp / rel) if not rel.startswith("{root}/") else root / rel.removeprefix("{root}/")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data if isinstance(data, bytes) else data.encode())

    return setup


def both(*setups):
    def setup(tmp: Path, root: Path) -> None:
        for s in setups:
            s(tmp, root)

    return setup


def dead_port() -> str:
    from support.tiny_llm import free_port

    return f"http://127.0.0.1:{free_port()}"


GLM5 = json.dumps(
    {
        "architectures": ["GlmMoeDsaForCausalLM"],
        "num_hidden_layers": 3,
        "hidden_size": 64,
        "moe_intermediate_size": 32,
        "n_routed_experts": 8,
        "num_experts_per_tok": 2,
        "n_shared_experts": 1,
        "quantization_config": {"quant_method": "quark", "exclude": []},
    }
)
PIN = "{root}/patches/bases.toml"

ROWS = [
    # patches
    ("patches fetch: unsupported base", ["patches", "fetch", "--base", "9.9.9"], None, 2, "unsupported base '9.9.9'"),
    ("patches fetch: bad --python", ["patches", "fetch", "--python", "three"], None, 2, "--python expects a version"),
    (
        "patches fetch: malformed pin file",
        ["patches", "fetch"],
        write(PIN, "[upstream\nbroken"),
        2,
        "cannot read the pin file",
    ),
    ("patches fetch: pin with a bad sha256", ["patches", "status"], None, 0, ""),  # (sanity row: status works)
    (
        "patches apply: work dir is a file",
        ["patches", "apply", "--work-dir", "{tmp}/afile"],
        write("afile", "x"),
        2,
        "is a file",
    ),
    (
        "patches apply: non-empty dir",
        ["patches", "apply", "--work-dir", "{tmp}/d"],
        write("d/keep", "x"),
        2,
        "pass --force",
    ),
    (
        "patches apply: --force on a user folder",
        ["patches", "apply", "--work-dir", "{tmp}/d", "--force"],
        write("d/keep", "x"),
        2,
        "not a work tree made by",
    ),
    (
        "patches apply: series names a missing file",
        ["patches", "apply", "--work-dir", "{tmp}/w"],
        write("{root}/patches/0.5.14/series", "0009-missing.patch\n"),
        2,
        "0009-missing.patch",
    ),
    (
        "patches apply: patch bytes that do not apply",
        ["patches", "apply", "--work-dir", "{tmp}/w"],
        write(
            "{root}/patches/0.5.14/0001-rocm-guard-cuda-runtime-include-in-fused-metadata-copy.patch",
            b"From 0 Mon Sep 17 00:00:00 2001\nSubject: x\n\n\xff\xfe garbage\n",
        ),
        2,
        "0001-rocm-guard",
    ),
    (
        "patches export: not a work tree",
        ["patches", "export", "--work-dir", "{tmp}"],
        None,
        2,
        "is not a work tree made by",
    ),
    ("patches lint: unknown base", ["patches", "lint", "--base", "1.0"], None, 2, "unsupported base '1.0'"),
    (
        "patches check-upstream: unpinned release",
        ["patches", "check-upstream", "--against", "0.0.1"],
        None,
        2,
        "is not pinned",
    ),
    (
        "patches rebase: unpinned target",
        ["patches", "rebase", "--to", "0.0.1", "--work-dir", "{tmp}/w"],
        None,
        2,
        "0.0.1",
    ),
    (
        "patches backport: missing patch file",
        ["patches", "backport", "--patch", "{tmp}/none.patch", "--work-dir", "{tmp}/w"],
        None,
        2,
        "cannot read",
    ),
    (
        "patches backport: a file with no diff",
        ["patches", "backport", "--patch", "{tmp}/x.patch", "--url", "https://x/pull/1", "--work-dir", "{tmp}"],
        write("x.patch", "hello\n"),
        2,
        "holds no git diff",
    ),
    (
        "patches backport: --commit without --repo",
        ["patches", "backport", "--commit", "HEAD", "--work-dir", "{tmp}"],
        None,
        2,
        "--commit needs --repo",
    ),
    ("patches pin: unreachable index", ["patches", "pin", "0.5.99"], None, 2, "cannot read the package index"),
    ("patches pin: not a version", ["patches", "pin", "nan"], None, 2, "'nan' is not a release version"),
    (
        "patches backport: an empty --pr",
        ["patches", "backport", "--work-dir", "{tmp}/w", "--pr", ""],
        None,
        2,
        "--pr '': give a PR number",
    ),
    ("build: an empty --base", ["build", "--base", ""], None, 2, "'' is not a release version"),
    ("build: an empty --out", ["build", "--out", " "], None, 2, "an empty path (an unset variable?)"),
    (
        "image build: --aiter-src is no aiter clone (refused before any wheel is built)",
        ["image", "build", "--aiter-src", "{tmp}"],
        None,
        2,
        "is not a clone of ROCm/aiter holding commit",
    ),
    ("eval prepare: an empty --data-dir", ["eval", "prepare", "--data-dir", ""], None, 2, "an empty path"),
    (
        "cluster plan: an --out the file system cannot name",
        ["cluster", "plan", "--topology", "dp", "--model", "/m", "--nodes", "10.0.0.1", "--out", "{tmp}/" + "x" * 300],
        None,
        2,
        "File name too long",
    ),
    ("patches status: unknown base", ["patches", "status", "--base", "2.0"], None, 2, "unsupported base '2.0'"),
    ("build: unsupported base", ["build", "--base", "7.7"], None, 2, "unsupported base '7.7'"),
    ("build: out dir is a file", ["build", "-o", "{tmp}/afile"], write("afile", "x"), 2, "afile"),
    # checks of inputs
    ("check-jit-rocm: no tree", ["check-jit-rocm", "--tree", "{tmp}/none"], None, 2, "none"),
    (
        "check-jit-rocm: malformed ledger",
        ["check-jit-rocm", "--tree", "{tmp}/t", "--ledger", "{tmp}/l.toml"],
        both(write("t/sglang/version.py", "__version__ = '0.5.14'\n"), write("l.toml", "units = [")),
        2,
        "l.toml",
    ),
    ("checkpoint check: no folder", ["checkpoint", "check", "{tmp}/none"], None, 2, "is not a folder"),
    (
        "checkpoint check: not JSON",
        ["checkpoint", "check", "{tmp}/c"],
        write("c/config.json", "{nope"),
        2,
        "not valid JSON",
    ),
    (
        "checkpoint check: layers = true",
        ["checkpoint", "check", "{tmp}/c"],
        write("c/config.json", GLM5.replace('"num_hidden_layers": 3', '"num_hidden_layers": true')),
        2,
        "num_hidden_layers",
    ),
    (
        "checkpoint fix: no safetensors",
        ["checkpoint", "fix", "{tmp}/c", "--write"],
        write("c/config.json", GLM5),
        2,
        "has neither",
    ),
    (
        "checkpoint check: unknown base",
        ["checkpoint", "check", "{tmp}/c", "--base", "0.4"],
        write("c/config.json", GLM5),
        2,
        "0.4",
    ),
    (
        "serve: mistyped path",
        ["serve", "--recipe", "glm5-mxfp4-latency", "--model", "/models/nope", "--dry-run"],
        None,
        2,
        "no such folder",
    ),
    ("serve: unknown recipe", ["serve", "--recipe", "nope", "--model", "org/m", "--dry-run"], None, 2, "nope"),
    (
        "serve: unknown sglang flag",
        ["serve", "--recipe", "glm5-mxfp4-latency", "--model", "org/m", "--base", "0.5.14", "--dry-run", "--bogus"],
        None,
        2,
        "--bogus is not a flag",
    ),
    (
        "moe shapes: no model",
        ["moe", "shapes", "--model", "{tmp}/none", "--tp", "8"],
        None,
        2,
        "config.json is missing",
    ),
    (
        "moe shapes: tp not a divisor",
        ["moe", "shapes", "--model", "{tmp}/c", "--tp", "3"],
        write("c/config.json", GLM5),
        2,
        "do not split",
    ),
    (
        "moe coverage: malformed fork rows",
        [
            "moe",
            "coverage",
            "--model",
            "{tmp}/c",
            "--tp",
            "8",
            "--aiter-root",
            "{tmp}/a",
            "--aiter-version",
            "0.1.18",
            "--fork-rows",
            "{tmp}/rows",
        ],
        both(
            write("c/config.json", GLM5.replace('"moe_intermediate_size": 32', '"moe_intermediate_size": 64')),
            write(
                "a/aiter/configs/tuned_fmoe.csv",
                "cu_num,token,model_dim,inter_dim,expert,topk,act_type,dtype,q_dtype_a,"
                "q_dtype_w,q_type,use_g1u1,doweight_stage1\n",
            ),
            write("rows/x_tuned_fmoe.csv", "token,model_dim\n1,2\n"),
        ),
        2,
        "missing columns",
    ),
    ("moe config-path: unresolved image", ["moe", "config-path", "--image", "0.5.23"], None, 2, "aiter unknown"),
    (
        "moe rows: not a clone",
        ["moe", "rows", "--image", "0.5.14", "--aiter-src", "{tmp}"],
        None,
        2,
        "not a clone of ROCm/aiter",
    ),
    (
        "moe tune: missing verify file",
        ["moe", "tune", "--verify", "{tmp}/none.csv", "--aiter-root", "{tmp}/a", "--dry-run"],
        write("a/aiter/configs/tuned_fmoe.csv", "token\n"),
        2,
        "none.csv",
    ),
    ("doctor: root is a file", ["doctor", "--root", "{tmp}/afile"], write("afile", "x"), 1, "no AMD GPU visible"),
    ("doctor: --json on an empty root", ["doctor", "--json", "--root", "{tmp}"], None, 1, '"severity": "error"'),
    ("check-kernels: no sglang here", ["check-kernels", "--arch", "gfx950"], None, 2, "runs where sglang runs"),
    (
        "doctor: --kernels without sglang",
        ["doctor", "--kernels", "--root", "{tmp}"],
        None,
        2,
        "check-kernels runs where sglang runs",
    ),
    (
        "bench sweep: dead server",
        ["bench", "sweep", "--url", "{dead}", "--tokenizer", "x", "--out", "{tmp}/o"],
        None,
        2,
        "is unreachable",
    ),
    (
        "bench sweep: nan rate",
        ["bench", "sweep", "--url", "{dead}", "--out", "{tmp}/o", "--rates", "nan"],
        None,
        2,
        "finite number",
    ),
    (
        "bench sweep: a FIFO as the dataset (blocked forever, deaf to Ctrl-C)",
        ["bench", "sweep", "--url", "{dead}", "--out", "{tmp}/o", "--dataset", "sharegpt", "{tmp}/fifo"],
        lambda tmp, root: os.mkfifo(tmp / "fifo"),
        2,
        "not a regular file",
    ),
    ("bench single: bad url", ["bench", "single", "--url", "ftp://x", "--out", "{tmp}/o"], None, 2, "expected http(s)"),
    (
        "bench sweep: unclosed IPv6 URL",
        ["bench", "sweep", "--url", "http://[::1", "--out", "{tmp}/o"],
        None,
        2,
        "not a URL",
    ),
    (
        "bench sweep: port out of range",
        ["bench", "sweep", "--url", "http://h:99999", "--out", "{tmp}/o"],
        None,
        2,
        "not a URL",
    ),
    (
        "bench compare: neither sglang's nor vLLM's results",
        ["bench", "compare", "{tmp}/r.json"],
        write("r.json", '{"duration": 1}'),
        2,
        "neither sglang bench_serving's fields",
    ),
    ("bench compare: not a run", ["bench", "compare", "{tmp}"], None, 2, "not a bench sweep output"),
    (
        "bench compare: malformed summary",
        ["bench", "compare", "{tmp}/r"],
        write("r/summary.json", "[1,"),
        2,
        "not a bench sweep output",
    ),
    (
        "eval run: dead endpoints (the older `eval --baseline` spelling)",
        ["eval", "--baseline", "{dead}", "--candidate", "{dead}", "--out", "{tmp}/o", "--data-dir", "{tmp}"],
        None,
        2,
        "is unreachable",
    ),
    (
        "eval run: unknown task",
        ["eval", "run", "--baseline", "{dead}", "--candidate", "{dead}", "--out", "{tmp}/o", "--tasks", "mmlu"],
        None,
        2,
        "mmlu",
    ),
    (
        "eval prepare: unknown task (the older `eval-prepare` spelling)",
        ["eval-prepare", "--tasks", "nope", "--data-dir", "{tmp}/d"],
        None,
        2,
        "nope",
    ),
    (
        "image build: unresolved base",
        ["image", "build", "--base", "0.5.23", "--print"],
        None,
        2,
        "no resolved tag and digest",
    ),
    ("image resolve: unknown base", ["image", "resolve", "0.9.9", "t"], None, 2, "0.9.9"),
    (
        "image setup: bad build arg",
        [
            "image",
            "setup",
            "--constraints",
            "{tmp}/c",
            "--manifest",
            "{tmp}/m",
            "--fork-fmoe",
            "{tmp}",
            "--build-arg",
            "novalue",
        ],
        None,
        2,
        "expects KEY=VALUE",
    ),
    # cluster
    (
        "cluster plan: unknown topology",
        ["cluster", "plan", "--topology", "ring", "--model", "/m", "--base", "0.5.14", "--nodes", "a"],
        None,
        2,
        "unknown topology 'ring'",
    ),
    (
        "cluster plan: pd without decode nodes",
        ["cluster", "plan", "--topology", "pd", "--model", "/m", "--base", "0.5.14", "--prefill-nodes", "a"],
        None,
        2,
        "needs --prefill-nodes and --decode-nodes",
    ),
    (
        "cluster plan: --out is a file",
        ["cluster", "plan", "--topology", "dp", "--model", "/m", "--nodes", "a,b", "--out", "{tmp}/afile"],
        write("afile", "x"),
        2,
        "is a file",
    ),
    (
        "cluster k8s: image by tag only",
        ["cluster", "k8s", "--topology", "dp", "--model", "/m", "--image", "wafer/sglang:mi355x"],
        None,
        2,
        "is not pinned by digest",
    ),
    (
        "cluster k8s: zero replicas",
        [
            "cluster",
            "k8s",
            "--topology",
            "dp",
            "--model",
            "/m",
            "--replicas",
            "0",
            "--image",
            "wafer/sglang:mi355x@sha256:" + "a" * 64,
        ],
        None,
        2,
        "expected 1 or more",
    ),
    ("cluster topologies: unknown option", ["cluster", "topologies", "--bogus"], None, 2, "unrecognized arguments"),
    ("info: no fork installed", ["info", "--json"], None, 0, ""),
    ("bases: malformed record", ["bases"], write(PIN, "[upstream\nbroken"), 2, "cannot read the pin file"),
    (
        "bases: --builds with a base lacking its Pythons' wheels",
        ["bases", "--builds"],
        write(
            PIN,
            'default-base = "0.5.14"\n[upstream."0.5.14"]\nrole = "base"\npythons = ["3.9"]\n'
            '[upstream."0.5.14".wheels.cp311]\nfilename = "sglang-0.5.14-cp311-cp311-manylinux_2_34_x86_64.whl"\n'
            'sha256 = "'
            + "a" * 64
            + '"\nsize = 1\nurl = "https://x/sglang-0.5.14-cp311-cp311-manylinux_2_34_x86_64.whl"\n',
        ),
        2,
        "pythons must name versions with a pinned or derived wheel",
    ),
    ("completion: unknown shell", ["completion", "fish"], None, 2, "invalid choice: 'fish'"),
    ("release: not a git checkout", ["release"], None, 2, "is not a git checkout"),
    ("release: --out is a file", ["release", "--out", "{tmp}/afile"], write("afile", "x"), 2, "is a file"),
    ("canary: unpinned release", ["canary", "--against", "0.5.99"], None, 2, "patches pin 0.5.99"),
    ("rocm-constraints: not a ROCm host", ["rocm-constraints"], None, 2, "is not a ROCm build"),
]


@pytest.fixture
def checkout(scratch_root, monkeypatch):
    import shutil

    shutil.copytree(ROOT / "docker", scratch_root / "docker")
    monkeypatch.setenv("WAFER_SGLANG_INDEX_URL", dead_port())
    return scratch_root


@pytest.mark.parametrize("name, argv, setup, code, message", ROWS, ids=[r[0] for r in ROWS])
def test_bad_input(capsys, checkout, tmp_path, name, argv, setup, code, message):
    work = tmp_path / "in"
    work.mkdir()
    if setup:
        setup(work, checkout)
    argv = [a.replace("{tmp}", str(work)).replace("{root}", str(checkout)).replace("{dead}", dead_port()) for a in argv]
    before = _files(checkout, work)
    try:
        rc, out, err = run_cli(capsys, *argv)
    except SystemExit as exc:  # argparse's own usage errors exit 2
        rc, out, err = exc.code, "", capsys.readouterr().err
    assert rc == code and message in out + err, err
    assert "Traceback" not in err
    after = _files(checkout, work)
    assert {k: v for k, v in after.items() if before.get(k) != v} == {} or code == 0
    assert not [p for p in work.parent.iterdir() if p.name.startswith(".")], "a temp tree was left behind"


def test_every_command_has_a_row():
    from wafer_sglang.cli.main import parser

    commands = set()
    for action in parser()._subparsers._group_actions[0].choices.items():
        name, sub = action
        nested = [a for a in sub._actions if hasattr(a, "choices") and isinstance(a.choices, dict)]
        commands |= {f"{name} {child}" for child in nested[0].choices} if nested else {name}
    covered = {row[0].split(":")[0] for row in ROWS}
    assert commands <= covered, sorted(commands - covered)


def test_closed_stdout_exits_quietly():
    env = cli_env()
    proc = subprocess.Popen(
        [*CLI, "patches", "status"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env={**env, "WAFER_SGLANG_ROOT": str(ROOT)},
    )
    proc.stdout.close()  # `| head` that read nothing
    err = proc.stderr.read().decode()
    proc.wait(timeout=60)
    assert proc.returncode == 141 and "Traceback" not in err and "BrokenPipe" not in err


def test_sigterm_during_apply_leaves_no_temp_tree(tmp_path):
    """An 18 MB hidden temp dir once stayed behind."""
    env = cli_env(WAFER_SGLANG_ROOT=str(ROOT), WAFER_SGLANG_CACHE_DIR=str(ROOT / "build/cache/wheels"))
    proc = subprocess.Popen(
        [
            *CLI,
            "patches",
            "apply",
            "--base",
            "0.5.23",
            "--python",
            "3.12",
            "--work-dir",
            str(tmp_path / "w"),
        ],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not [p for p in tmp_path.iterdir() if p.name.startswith(".w.")]:
        time.sleep(0.05)
    proc.terminate()
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 143 and b"terminated" in err and b"Traceback" not in err
    assert list(tmp_path.iterdir()) == []
