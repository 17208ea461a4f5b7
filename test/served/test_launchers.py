"""What users type to start the fork, starting the fork's real server: `wafer-sglang serve` from
the installed wheel, and the image's entrypoint and healthcheck (outside a container: the
entrypoint script as the image runs it, on the engine environment's PATH)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import requests
from conftest import LTS, ROOT
from support import served_engine

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
