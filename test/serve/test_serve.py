"""Launch recipes: expansion per base against the real ServerArgs CLI, overrides, refusal."""

from __future__ import annotations

import json
import sys

import pytest
from support import synthetic_checkpoint as sc
from support.common import BASES, run_cli

from wafer_sglang.serve import recipes

LATENCY = [
    "--speculative-algorithm",
    "EAGLE",
    "--speculative-num-steps",
    "5",
    "--speculative-eagle-topk",
    "1",
    "--speculative-num-draft-tokens",
    "6",
    "--kv-cache-dtype",
    "fp8_e4m3",
    "--max-running-requests",
    "64",
]


def dry_run(capsys, *args):
    rc, out, err = run_cli(capsys, "serve", "--dry-run", *args)
    command = [line for line in out.splitlines() if not line.startswith(("#", "export "))]
    return rc, out, err, (command[0].split() if command else [])


def test_list(capsys):
    rc, out, _ = run_cli(capsys, "serve", "--list")
    assert (
        rc == 0
        and out.splitlines() == [f"{r.name}@{r.version}  {r.purpose}" for r in recipes.load_recipes().values()]
        and len(out.splitlines()) == 3
    )


@pytest.mark.parametrize("base", BASES)
def test_latency_recipe_expands_to_the_exact_command(capsys, base):
    rc, out, _, argv = dry_run(capsys, "--recipe", "glm5-mxfp4-latency", "--model", "zai-org/GLM-5.2", "--base", base)
    assert rc == 0
    assert argv == [
        sys.executable,
        "-m",
        "sglang.launch_server",
        "--model-path",
        "zai-org/GLM-5.2",
        "--tp-size",
        "8",
        *LATENCY,
    ]
    assert "export SGLANG_USE_AITER=1" in out and "caps it at 48" in out


def test_throughput_recipe_co_launches_the_cache_aware_router(capsys):
    rc, _, _, argv = dry_run(capsys, "--recipe", "glm5-mxfp4-throughput@1", "--model", "org/m", "--base", "0.5.14")
    assert argv[1:3] == ["-m", "sglang_router.launch_server"]
    assert argv[3:] == [
        "--model-path",
        "org/m",
        "--tp-size",
        "4",
        "--dp-size",
        "2",
        "--kv-cache-dtype",
        "fp8_e4m3",
        "--router-policy",
        "cache_aware",
    ]
    rc, out, _, argv = dry_run(
        capsys, "--recipe", "glm5-mxfp4-throughput", "--model", "org/m", "--base", "0.5.14", "--no-router"
    )
    assert argv[2] == "sglang.launch_server" and argv[-2:] == ["--load-balance-method", "total_tokens"]
    assert "not cache-aware" in out


def test_extra_args_override_recipe_values(capsys):
    rc, _, _, argv = dry_run(
        capsys,
        "--recipe",
        "glm5-mxfp4-latency",
        "--model",
        "org/m",
        "--base",
        "0.5.14",
        "--tp",
        "4",
        "--kv-cache-dtype=bfloat16",
        "--host",
        "0.0.0.0",
        "--no-enable-aiter-allreduce-fusion",
    )
    tail = argv[5:]
    assert tail.count("--tp-size") == 1 and not [t for t in tail if t == "--kv-cache-dtype"]
    # the user's --flag=value stays one token (sglang parses it as written)
    assert tail[-6:] == [
        "--tp-size",
        "4",
        "--kv-cache-dtype=bfloat16",
        "--host",
        "0.0.0.0",
        "--no-enable-aiter-allreduce-fusion",
    ]


def test_the_users_balancer_wins_without_the_router_too(capsys):
    """--no-router once replaced the user's --load-balance-method with total_tokens."""
    rc, out, _, argv = dry_run(
        capsys,
        "--recipe",
        "glm5-mxfp4-throughput",
        "--model",
        "org/m",
        "--base",
        "0.5.14",
        "--no-router",
        "--load-balance-method",
        "round_robin",
    )
    assert rc == 0 and argv[-2:] == ["--load-balance-method", "round_robin"] and "total_tokens" not in argv


@pytest.mark.parametrize("model", ["/models/GLM-5.2-MXFPP4", "./glm5", "~/models/glm", "models/zai/glm-5"])
def test_a_mistyped_path_is_an_error_not_a_hub_id(capsys, model):
    rc, _, err, _ = dry_run(capsys, "--recipe", "glm5-mxfp4-latency", "--model", model, "--base", "0.5.14")
    assert rc == 2 and "no such folder" in err


def test_flags_a_base_lacks_are_left_out(capsys, monkeypatch, tmp_path):
    data = tmp_path / "data"
    (data / "server_flags").mkdir(parents=True)
    for base in BASES:
        (data / "server_flags" / f"{base}.json").write_text(
            (recipes.DATA / "server_flags" / f"{base}.json").read_text()
        )
    (data / "recipes.toml").write_text(
        '[recipe.fused-indexer]\nversion = 2\npurpose = "p"\nlauncher = "sglang"\n'
        'args = ["--tp-size", "8", "--enable-dsa-fused-indexer"]\n'
    )
    monkeypatch.setattr(recipes, "DATA", data)
    rc, out, _, argv = dry_run(capsys, "--recipe", "fused-indexer@2", "--model", "org/m", "--base", "0.5.14")
    assert (
        argv[-2:] == ["--tp-size", "8"] and "--enable-dsa-fused-indexer is not a flag of sglang 0.5.14: left out" in out
    )
    rc, _, _, argv = dry_run(capsys, "--recipe", "fused-indexer", "--model", "org/m", "--base", "0.5.23")
    assert argv[-1] == "--enable-dsa-fused-indexer"
    rc, _, err, _ = dry_run(capsys, "--recipe", "fused-indexer@1", "--model", "org/m", "--base", "0.5.23")
    assert rc == 2 and "version 1 is not shipped" in err


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--bogus", "1"], "--bogus is not a flag of sglang 0.5.14"),
        (["--tp-size"], "--tp-size needs a value"),
        (["--model-path", "/x"], "pass the model with --model"),
    ],
)
def test_bad_extra_args(capsys, extra, message):
    rc, _, err, _ = dry_run(capsys, "--recipe", "glm5-mxfp4-latency", "--model", "org/m", "--base", "0.5.14", *extra)
    assert rc == 2 and message in err


def test_refuses_a_checkpoint_the_engine_cannot_load(capsys, tmp_path):
    bad = sc.glm5(tmp_path / "bad", layers=5, stored_bf16={"model.layers.5.eh_proj"})
    rc, out, err, _ = dry_run(capsys, "--recipe", "glm5-mxfp4-latency", "--model", str(bad), "--base", "0.5.14")
    assert rc == 1 and "# checkpoint: draft model.layers.5.eh_proj" in out and "refusing to start" in err
    assert "pass --ignore-check" in err  # the documented flag, not --force (its hidden old name)
    for flag in ("--ignore-check", "--force"):
        rc, out, _, argv = dry_run(
            capsys, "--recipe", "glm5-mxfp4-latency", "--model", str(bad), "--base", "0.5.14", flag
        )
        assert rc == 0 and argv[4] == str(bad)
    good = sc.glm5(tmp_path / "good", layers=5)
    assert dry_run(capsys, "--recipe", "glm5-mxfp4-latency", "--model", str(good), "--base", "0.5.14")[0] == 0


@pytest.mark.network
@pytest.mark.slow
@pytest.mark.parametrize("base", BASES)
def test_flag_tables_are_the_patched_bases_real_serverargs(base):
    """data/server_flags/<base>.json must equal what the fork's real ServerArgs CLI accepts."""
    extra = [] if base == "0.5.14" else ["--sgl-kernel-stub"]
    real = run_probe_flags(base, extra)
    assert real == json.loads((recipes.DATA / "server_flags" / f"{base}.json").read_text())
    for recipe in recipes.load_recipes().values():
        for option in [a for a in recipe.args if a.startswith("--")]:
            assert option in real, f"{recipe.name}: {option} unknown to sglang {base}"


def run_probe_flags(base: str, extra: list[str]) -> dict:
    import os
    import subprocess

    from support import engine_env
    from support.engine_harness import ENGINE, tree

    env = {**os.environ, "PYTHONPATH": f"{tree(base, 'patched')}{os.pathsep}{ENGINE}"}
    proc = subprocess.run(
        [str(engine_env.ensure(base)), str(ENGINE / "dump_server_flags.py"), *extra],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )
    line = next(x for x in proc.stdout.splitlines() if x.startswith("PROBE-RESULT "))
    return json.loads(line.removeprefix("PROBE-RESULT "))


def test_the_api_key_from_the_environment_reaches_sglang_and_is_never_printed(capsys, monkeypatch):
    monkeypatch.setenv("WAFER_API_KEY", "sk-serve-test-4e2")
    rc, out, err, argv = dry_run(capsys, "--recipe", "glm5-mxfp4-latency", "--model", "org/m", "--base", "0.5.14")
    assert rc == 0 and argv[-2:] == ["--api-key", "'***'"] and "sk-serve" not in out + err
    expansion = recipes.expand(recipes.select("glm5-mxfp4-latency"), "org/m", "0.5.14", [], api_key="sk-serve-test-4e2")
    assert expansion.argv[-2:] == ["--api-key", "sk-serve-test-4e2"]  # what is exec'd
    rc, out, _, argv = dry_run(
        capsys, "--recipe", "glm5-mxfp4-latency", "--model", "org/m", "--base", "0.5.14", "--api-key=given"
    )
    assert argv[-1] == "'--api-key=***'" and "--api-key" not in argv[:-1]  # the user's own wins, also hidden


def test_a_model_the_checkpoint_rules_do_not_cover_is_served_with_a_note(capsys, tmp_path):
    """The rules are GLM-5 / DeepSeek-V3 MTP rules: a Llama checkpoint has nothing to check (it
    was refused as unusable, so `serve` could start no other model)."""
    (tmp_path / "config.json").write_text('{"architectures": ["LlamaForCausalLM"], "model_type": "llama"}')
    rc, out, err, argv = dry_run(capsys, "--recipe", "cpu-smoke", "--model", str(tmp_path), "--base", "0.5.14")
    assert rc == 0, err
    assert "# note: LlamaForCausalLM: the checkpoint check covers only GlmMoeDsaForCausalLM" in out
    assert argv[argv.index("--device") + 1] == "cpu" and "--sleep-on-idle" in argv


@pytest.mark.parametrize("key", ["--api-key=", "--api-key= ", "--admin-api-key=\t"])
def test_an_empty_api_key_is_refused_not_served_open(capsys, key):
    """sglang adds its auth middleware only for a truthy key: `--api-key="$KEY"` with KEY unset
    would serve the API open while the printed command shows '--api-key=***'."""
    rc, out, err = run_cli(capsys, "serve", "--recipe", "cpu-smoke", "--model", "org/m", "--dry-run", key)
    assert rc == 2 and "is empty: the server would run without authentication" in err and "sglang.launch" not in out


def test_a_whitespace_key_in_the_environment_is_refused(capsys, monkeypatch):
    monkeypatch.setenv("WAFER_API_KEY", "  \n")
    rc, out, err = run_cli(capsys, "serve", "--recipe", "cpu-smoke", "--model", "org/m", "--dry-run")
    assert rc == 2 and "WAFER_API_KEY is only whitespace" in err and not out
