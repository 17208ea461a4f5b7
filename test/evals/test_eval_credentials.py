"""The eval's credentials and headers against keyed fault servers (no engine): every call lm-eval
makes carries them, and no file, message or command line holds them; SIGTERM stops lm-eval's
children. (A file of its own so that it runs beside test_eval.py's served-engine tests.)"""

from __future__ import annotations

import json
import os
import signal
import subprocess
from pathlib import Path

import pytest
from support.common import CLI, cli_env
from support.eval_data import evaluate, write_eval_data


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory) -> Path:
    return write_eval_data(tmp_path_factory.mktemp("eval-data"))


@pytest.mark.slow
def test_credentials_reach_the_model_check_lm_eval_and_metrics_and_no_output(capsys, data_dir, tmp_path, monkeypatch):
    """A server that insists on a key: without one the pre-check says so; with OPENAI_API_KEY every
    call carries it (lm-eval gets it by environment) and no file the eval writes holds it."""
    from support.fault_server import Faults, FaultServer

    secret = "sk-wafer-eval-51c2"
    server = FaultServer(Faults(key=secret))
    try:
        monkeypatch.delenv("OPENAI_API_KEY", raising=False)
        rc, _, err = evaluate(
            capsys, tmp_path / "nokey", server.url, server.url, data_dir, "--tasks", "gsm8k", "--limit", "2"
        )
        assert rc == 2 and "it wants a key" in err
        server.faults.seen.clear()
        monkeypatch.setenv("OPENAI_API_KEY", secret)
        rc, _, err = evaluate(  # the OpenAI SDK's spelling of the URL, as bench takes it
            capsys, tmp_path / "out", server.url + "/v1", server.url, data_dir, "--tasks", "gsm8k", "--limit", "2"
        )
        assert rc == 0, err
        paths = [call["path"] for call in server.faults.seen]
        assert "/v1/completions" in paths and "/metrics" in paths and not any("/v1/v1" in p for p in paths)
        assert all(call["headers"].get("Authorization") == f"Bearer {secret}" for call in server.faults.seen)
        log = tmp_path / "out/runs/baseline/gsm8k/seed0/lm_eval.log"
        assert f"baseline: gsm8k seed 0: lm-eval running; log {log}" in err and "2/2 requests done" in err
        leaked = [p for p in (tmp_path / "out").rglob("*") if p.is_file() and secret in p.read_text(errors="replace")]
        assert leaked == []
    finally:
        server.stop()


@pytest.mark.slow  # three lm-eval runs, ~50 s: in make test, not the fast suite
@pytest.mark.parametrize("status", [401, 500])
def test_the_key_reaches_no_file_and_no_message_when_the_server_answers_an_error(
    capsys, data_dir, tmp_path, monkeypatch, status
):
    """lm-eval logs aiohttp's exception repr on an HTTP error, request headers and all: the log is
    written redacted, and every file under --out is checked after the run."""
    from support.fault_server import Faults, FaultServer

    secret, gateway = "sk-wafer-eval-9f3e", "gw-0042-7d1c"
    server = FaultServer(Faults(key=secret, status=status))
    try:
        monkeypatch.setenv("OPENAI_API_KEY", secret)
        rc, out, err = evaluate(capsys, tmp_path, server.url, server.url, data_dir, "--tasks", "gsm8k", "--limit", "1")
        assert rc == 2 and "lm-eval failed" in err and str(status) in err
        out2 = err2 = ""
        if status == 500:  # the same through --header (once: each lm-eval run costs ~15 s)
            rc, out2, err2 = evaluate(  # lm-eval gets a header set, not OPENAI_API_KEY
                capsys,
                tmp_path / "headers",
                server.url,
                server.url,
                data_dir,
                *("--tasks", "gsm8k", "--limit", "1", "--header", f"X-Gateway-Token={gateway}"),
            )
            assert rc == 2 and "lm-eval failed" in err2 and str(status) in err2
            assert server.faults.seen[-1]["headers"].get("X-Gateway-Token") == gateway
        files = [p for p in tmp_path.rglob("*") if p.is_file()]
        assert any(p.name == "lm_eval.log" for p in files) and (
            status != 500 or any("headers" in p.parts for p in files)
        )
        for text in (secret, gateway):
            assert text not in out + err + out2 + err2
            assert [p for p in files if text.encode() in p.read_bytes()] == []
    finally:
        server.stop()


@pytest.mark.slow
def test_headers_reach_every_call_lm_eval_makes_and_no_file(capsys, data_dir, tmp_path, monkeypatch):
    """eval takes bench's --header: the model check, lm-eval's requests and the /metrics scrapes all
    carry it with the key, lm-eval gets them off its command line, and no credential is written."""
    from support.fault_server import Faults, FaultServer

    secret, gateway = "sk-wafer-eval-77aa", "gw-token-31f0"
    server = FaultServer(Faults(key=secret))
    try:
        monkeypatch.delenv("OPENAI_API_KEY", raising=False)
        rc, out, err = evaluate(
            capsys,
            tmp_path,
            server.url,
            server.url,
            data_dir,
            *("--tasks", "gsm8k", "--limit", "2", "--api-key", secret),
            *("--header", f"X-Gateway-Token={gateway}", "--header", "X-Tenant: team-7"),
        )
        assert rc == 0, err
        seen = server.faults.seen
        assert {"/v1/models", "/v1/completions", "/metrics"} <= {call["path"] for call in seen}
        for call in seen:
            got = call["headers"]
            assert (got.get("Authorization"), got.get("X-Gateway-Token"), got.get("X-Tenant")) == (
                f"Bearer {secret}",
                gateway,
                "team-7",
            ), call["path"]
        command = json.loads(next(tmp_path.rglob("command.json")).read_text())
        assert command[2] == "wafer_sglang.evals.lm_eval_cli" and gateway not in json.dumps(command)
        files = [p for p in tmp_path.rglob("*") if p.is_file()]
        assert [p for p in files if secret.encode() in p.read_bytes() or gateway.encode() in p.read_bytes()] == []
    finally:
        server.stop()


def test_what_is_masked_of_the_headers():
    from wafer_sglang.evals.redact import header_secrets

    assert header_secrets({"Authorization": "Bearer sk-1234"}) == ["Bearer sk-1234", "sk-1234"]
    assert header_secrets({"X-Api-Key": "abcd", "X-Tenant": "team-7", "X-Priority": "1", "X-Auth": "on"}) == ["abcd"]
    assert header_secrets({"X-Route": "eu-west-1a-pool"}) == ["eu-west-1a-pool"]  # long enough to be one


@pytest.mark.slow
def test_sigterm_stops_the_lm_eval_children(data_dir, tmp_path):
    """A candidate that never answers keeps lm-eval waiting; SIGTERM to eval must not leave it running."""
    import time

    from support.fault_server import Faults, FaultServer

    server = FaultServer(Faults(stream_seconds=600))
    env = cli_env()
    proc = subprocess.Popen(
        [
            *CLI,
            "eval",
            "--baseline",
            server.url,
            "--candidate",
            server.url,
            "--data-dir",
            str(data_dir),
            "--out",
            str(tmp_path),
            "--tasks",
            "gsm8k",
            "--limit",
            "2",
        ],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not _lm_eval_children(proc.pid):
            time.sleep(0.5)
        children = _lm_eval_children(proc.pid)
        assert children, "lm-eval never started"
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)
        time.sleep(1)
        assert [pid for pid in children if _alive(pid)] == []
        assert proc.returncode == 143  # documented: 130 is Ctrl-C
    finally:
        os.killpg(proc.pid, signal.SIGKILL) if proc.poll() is None else None
        server.stop()


def _lm_eval_children(pid: int) -> list[int]:
    out = subprocess.run(["ps", "-o", "pid=,args=", "--ppid", str(pid)], capture_output=True, text=True).stdout
    return [int(line.split()[0]) for line in out.splitlines() if "lm_eval" in line]


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().split()[2] != "Z"
    except OSError:
        return False
