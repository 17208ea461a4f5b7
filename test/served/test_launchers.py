"""What users type to start the fork, starting the fork's real server: `wafer-sglang serve` from
the installed wheel, and the image's entrypoint and healthcheck (outside a container: the
entrypoint script as the image runs it, on the engine environment's PATH)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import requests
from support import served_engine
from support.common import LTS, ROOT

pytestmark = pytest.mark.slow
IMAGE = ROOT / "docker" / "image"


def serve_command(python, server):
    cli = python.parent / "wafer-sglang"
    return [str(cli), "serve", "--recipe", "cpu-smoke", "--model", server.model, "--host", "127.0.0.1"] + [
        "--port",
        str(server.port),
        "--enable-metrics",
    ]


def entrypoint_command(python, server):
    return [str(IMAGE / "entrypoint"), "--model", server.model]


def assert_serves_behind_its_key(server):
    body = {"model": "tiny", "prompt": "the quick brown fox", "max_tokens": 6, "temperature": 0}
    assert requests.post(server.url + "/v1/completions", json=body, timeout=60).status_code == 401
    answer = requests.post(server.url + "/v1/completions", json=body, headers=server.headers, timeout=120)
    assert answer.json()["choices"][0]["text"] == served_engine.ANSWER
    assert server.api_key not in server.log.read_text()  # neither our launchers nor sglang print it


def test_serve_launches_the_recipe_on_the_real_server_with_the_key_from_the_environment():
    with served_engine.running("serve-cpu-smoke", LTS, launch=serve_command, env=_key_env()) as server:
        assert_serves_behind_its_key(server)
        head = server.log.read_text()
        assert "# recipe cpu-smoke@1 on sglang 0.5.14" in head and "--api-key '***'" in head
        assert "export SGLANG_USE_CPU_ENGINE=1" not in head  # already set by the caller: not overridden


def test_image_entrypoint_and_healthcheck_on_the_real_server():
    """The entrypoint runs doctor (no GPU here: errors, overridden by WAFER_SKIP_DOCTOR=1), then
    serve with the recipe WAFER_RECIPE names, on WAFER_PORT, the key from WAFER_API_KEY."""
    healthcheck = [sys.executable, str(IMAGE / "healthcheck")]
    python = served_engine.engine_env.ensure(LTS)
    port = served_engine._port()
    env = {
        **_key_env(),
        "PATH": f"{python.parent}{os.pathsep}{os.environ['PATH']}",
        "WAFER_RECIPE": "cpu-smoke",
        "WAFER_PORT": str(port),
        "WAFER_SKIP_DOCTOR": "1",
    }
    with served_engine.running("image-entrypoint", LTS, launch=entrypoint_command, env=env, port=port) as server:
        assert_serves_behind_its_key(server)
        log = server.log.read_text()
        assert "WAFER_SKIP_DOCTOR=1: starting despite doctor's errors" in log
        assert "--host 0.0.0.0 --port" in log and "--api-key '***'" in log
        assert subprocess.run(healthcheck, env={**os.environ, "WAFER_PORT": str(port)}).returncode == 0
    assert subprocess.run(healthcheck, env={**os.environ, "WAFER_PORT": str(port)}).returncode == 1


def _key_env() -> dict:
    return {"WAFER_API_KEY": served_engine.run_key()}


def test_cluster_commands_run_from_the_installed_wheel_and_its_extras(tmp_path):
    """The wheel alone names the extra to install; with the [router] and [k8s] extras it declares
    (installed by pip from PyPI) plan and k8s run, without importing sglang: in the engine
    environment torchvision is broken (support/engine/standins.py is not loaded here), so an
    import of sglang would fail the command."""
    python = served_engine.engine_env.ensure(LTS)
    image = "wafer/sglang:t@sha256:" + "a" * 64
    k8s = [str(python), "-m", "wafer_sglang", "cluster", "k8s", "--topology", "dp", "--model", "/models/m"]
    k8s += ["--image", image, "--out", str(tmp_path / "k8s")]
    plan = [str(python), "-m", "wafer_sglang", "cluster", "plan", "--topology", "dp", "--model", "/m", "--nodes", "a,b"]
    env = {k: v for k, v in {**os.environ, **_key_env()}.items() if k != "PYTHONPATH"}
    bare = subprocess.run(k8s, capture_output=True, text=True, env=env)
    assert bare.returncode == 2 and "pip install sglang-router==0.3.2" in bare.stderr, bare.stderr
    declared = subprocess.run(
        [str(python), "-c", "import importlib.metadata as m; print('\\n'.join(m.requires('wafer-sglang-rocm')))"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.splitlines()
    extras = [r.split(";")[0].strip() for r in declared if 'extra == "router"' in r or 'extra == "k8s"' in r]
    assert extras, declared
    target = tmp_path / "extras"
    pip = [
        str(python),
        "-m",
        "pip",
        "install",
        "-q",
        "--disable-pip-version-check",
        "--no-compile",
        "--target",
        str(target),
    ]
    tools = served_engine.engine_env.tools_wheel().parent  # [k8s] is wafer-sglang[k8s]==V: not on the index yet
    subprocess.run([*pip, "--find-links", str(tools), *extras], check=True, capture_output=True)
    env["PYTHONPATH"] = str(target)
    for argv in (plan, k8s):
        proc = subprocess.run(argv, capture_output=True, text=True, env=env)
        assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "k8s" / "glm5-dp.yaml").is_file()
