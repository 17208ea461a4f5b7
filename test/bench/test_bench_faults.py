"""The benchmark against servers that misbehave (test/support/fault_server.py): every request ends as a
success with tokens or a recorded failure, bad setups fail in seconds with a clear error before
anything is measured, credentials reach every call and no output, Ctrl-C does not wait."""

from __future__ import annotations

import json
import signal
import subprocess
import time
from pathlib import Path

import pytest
from support.common import CLI, cli_env, run_cli
from support.fault_server import Faults, FaultServer, good_events
from support.tiny_llm import make_model

pytestmark = pytest.mark.slow
QUICK = (
    "--input-len",
    "40",
    "--output-len",
    "4",
    "--cache-hit",
    "0.5",
    "--prefix-groups",
    "1",
    "--rates",
    "4",
    "--step-seconds",
    "2",
    "--warmup-seconds",
    "0",
    "--drain-seconds",
    "5",
)


@pytest.fixture(scope="module")
def tokenizer(tmp_path_factory) -> Path:
    return make_model(tmp_path_factory.mktemp("tiny-llm"))


@pytest.fixture
def fault(request):
    servers = []

    def start(**faults) -> FaultServer:
        servers.append(FaultServer(Faults(**faults)))
        return servers[-1]

    yield start
    for server in servers:
        server.stop()


def sweep(capsys, server: FaultServer, tokenizer: Path, out: Path, *args: str):
    """``bench sweep`` against ``server`` with the tiny tokenizer, writing to ``out``."""
    return run_cli(
        capsys, "bench", "sweep", "--url", server.url, "--tokenizer", str(tokenizer), "--out", str(out), *args
    )


def _files(out: Path) -> dict[str, str]:
    return {p.name: p.read_bytes().decode("latin-1") for p in out.iterdir() if p.is_file()}


@pytest.mark.parametrize(
    "events",
    [
        ['{"choices": "not a list"}'],
        ["[1, 2, 3]"],
        ['{"choices": [{"text": " x"}]}', '{"choices": [], "usage": {"prompt_tokens": "ten", "completion_tokens": 4}}'],
        ['{"choices": [{"text": " x"}]}', '{"choices": [], "usage": [4]}'],
    ],
)
def test_wrong_shaped_events_are_recorded_failures_not_success(capsys, fault, tokenizer, tmp_path, events):
    server = fault(events=events + ["[DONE]"])
    rc, out, err = sweep(
        capsys,
        server,
        tokenizer,
        tmp_path / "sweep",
        *QUICK,
    )
    summary = json.loads((tmp_path / "sweep/summary.json").read_text())
    records = [json.loads(line) for line in (tmp_path / "sweep/requests.jsonl").read_text().splitlines()]
    measured = [r for r in records if r["phase"] == "measure"]
    assert rc == 1 and "no successful request" in err
    assert measured and all(r["error"] and r["error"].startswith("malformed response") for r in measured)
    assert summary["steps"][0]["success_rate"] == 0 and summary["knee"]["target_rps"] is None
    rc, _, err = run_cli(
        capsys,
        "bench",
        "single",
        "--url",
        server.url,
        "--tokenizer",
        str(tokenizer),
        "--input-len",
        "40",
        "--output-len",
        "4",
        "--runs",
        "2",
        "--out",
        str(tmp_path / "single"),
    )
    single = json.loads((tmp_path / "single/summary.json").read_text())
    assert (
        rc == 1
        and single["success_rate"] == 0
        and all(r["error"].startswith("malformed response") for r in single["runs"])
    )


def test_every_request_failing_exits_non_zero(capsys, fault, tokenizer, tmp_path):
    server = fault(status=500, healthy_first=1)
    rc, _, err = sweep(capsys, server, tokenizer, tmp_path, *QUICK)
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert rc == 1 and summary["steps"][0]["failures"] == {"http 500": summary["steps"][0]["requests"]}


def test_refusals_mid_run_end_the_step_and_stop_the_sweep(capsys, fault, tokenizer, tmp_path):
    """The preflight request passes, then the server refuses (HTTP 400) everything: the first
    step ends after --fail-after refusals and no later step runs; bench single stops at the
    first refusal instead of repeating it."""
    server = fault(status=400, healthy_first=1, error_message="max_tokens is too large")
    rc, _, err = sweep(capsys, server, tokenizer, tmp_path / "s",
        *QUICK, "--rates", "8,16", "--step-seconds", "30", "--fail-after", "3",
    )  # fmt: skip
    steps = json.loads((tmp_path / "s/summary.json").read_text())["steps"]
    assert rc == 1 and "the sweep stopped: 3 requests refused in a row" in err and "max_tokens is too large" in err
    assert len(steps) == 1 and steps[0]["refused"] and steps[0]["aborted"].startswith("3 requests refused")
    server = fault(status=400, healthy_first=1)
    rc, _, _ = run_cli(
        capsys, "bench", "single", "--url", server.url, "--tokenizer", str(tokenizer), "--input-len", "40",
        "--output-len", "4", "--runs", "5", "--out", str(tmp_path / "one"),
    )  # fmt: skip
    runs = json.loads((tmp_path / "one/summary.json").read_text())["runs"]
    assert rc == 1 and len(runs) == 1 and runs[0]["error"].startswith("http 400")


def test_an_earlier_run_in_out_is_kept_unless_forced(capsys, fault, tokenizer, tmp_path):
    server = fault()
    args = ("bench", "sweep", "--url", server.url, "--tokenizer", str(tokenizer), "--out", str(tmp_path), *QUICK)
    rc, _, err = run_cli(capsys, *args)
    workload = json.loads((tmp_path / "summary.json").read_text())["workload"]
    assert rc == 0 and "per-GPU figures assume 8 (--gpus N)" in err  # a server that does not say
    assert workload["gpus"] == 8 and workload["gpus_from"].startswith("assumed")
    first = _files(tmp_path)
    rc, _, err = run_cli(capsys, *args)
    assert rc == 2 and "holds a run already (summary.json, requests.jsonl)" in err and "--force" in err
    assert _files(tmp_path) == first
    assert run_cli(capsys, *args, "--force")[0] == 0
    assert _files(tmp_path)["summary.json"] != first["summary.json"]


def test_extra_request_body_reaches_every_request_and_the_tag_names_the_run(capsys, fault, tokenizer, tmp_path):
    server = fault()
    extra = ("--extra-request-body", '{"temperature": 0.6, "top_p": 0.9}', "--tag", "mi355x-tp8-mtp")
    base = ("bench", "sweep", "--url", server.url, "--tokenizer", str(tokenizer), *QUICK)
    rc, _, _ = run_cli(capsys, *base, "--out", str(tmp_path / "run"), *extra)
    summary = json.loads((tmp_path / "run/summary.json").read_text())
    assert rc == 0 and summary["run"]["tag"] == "mi355x-tp8-mtp"
    assert summary["run"]["server"]["extra_body"] == {"temperature": 0.6, "top_p": 0.9}
    assert server.faults.bodies and all(
        b["temperature"] == 0.6 and b["top_p"] == 0.9 and b["stream"] is True for b in server.faults.bodies
    )
    rc, out, _ = run_cli(capsys, "bench", "compare", str(tmp_path / "run"))
    assert rc == 0 and "| mi355x-tp8-mtp |" in out
    refused = (('{"stream": false}', "sets stream itself"), ("[1]", "expected a JSON object"), ("{", "not JSON"))
    for body, message in refused:
        rc, _, err = run_cli(capsys, *base, "--out", str(tmp_path / "bad"), "--extra-request-body", body)
        assert rc == 2 and message in err and "Traceback" not in err


def test_no_knee_fails_only_when_asked(capsys, fault, tokenizer, tmp_path):
    server = fault(stream_seconds=0.4)
    args = (
        "bench",
        "sweep",
        "--url",
        server.url,
        "--tokenizer",
        str(tokenizer),
        "--out",
        str(tmp_path),
        *QUICK,
        "--slo-ttft-p95",
        "0.1",
    )
    rc, out, _ = run_cli(capsys, *args)
    assert rc == 0 and "knee: none; 4 rps failed: TTFT p95" in out
    rc, _, _ = run_cli(capsys, *args, "--fail-on-no-knee", "--force")
    assert rc == 1


@pytest.mark.parametrize(
    "setup, argv, message",
    [
        ("dead", (), "is unreachable"),
        ("server", ("--model", "gpt-4"), "--model 'gpt-4' is not served by"),
        ("server", ("--out", "/proc/wafer-cannot-write-here"), "cannot write there"),
        ("keyed", (), "the server wants a key"),
    ],
)
def test_bad_setups_fail_before_measuring(capsys, fault, tokenizer, tmp_path, setup, argv, message):
    """No summary.json: nothing was measured (no wall-clock bound: a quick sweep is as short)."""
    from support.tiny_llm import free_port

    url = f"http://127.0.0.1:{free_port()}" if setup == "dead" else fault(key="k" if setup == "keyed" else None).url
    rc, _, err = run_cli(
        capsys,
        "bench",
        "sweep",
        "--url",
        url,
        "--tokenizer",
        str(tokenizer),
        "--out",
        str(tmp_path / "o"),
        *QUICK,
        *argv,
    )
    assert rc == 2 and message in err and "Traceback" not in err
    assert not (tmp_path / "o" / "summary.json").exists()


def test_the_model_comes_from_the_server_and_is_listed_when_wrong(capsys, fault, tokenizer, tmp_path):
    server = fault(models=["glm-5", "glm-5-draft"])
    rc, _, err = sweep(
        capsys,
        server,
        tokenizer,
        tmp_path,
        *QUICK,
        "--model",
        "default",
    )
    assert rc == 2 and "it serves: glm-5, glm-5-draft" in err
    rc, _, _ = sweep(capsys, server, tokenizer, tmp_path, *QUICK)
    assert rc == 0 and json.loads((tmp_path / "summary.json").read_text())["run"]["server"]["model"] == "glm-5"


def test_credentials_reach_every_call_and_no_output(capsys, fault, tokenizer, tmp_path, monkeypatch):
    secret = "sk-wafer-test-7f3a"
    server = fault(key=secret)
    monkeypatch.setenv("OPENAI_API_KEY", secret)
    rc, _, _ = sweep(
        capsys,
        server,
        tokenizer,
        tmp_path,
        *QUICK,
        "--header",
        "X-Org=acme",
    )
    assert rc == 0
    paths = {call["path"] for call in server.faults.seen}
    assert {"/v1/models", "/v1/completions", "/metrics"} <= paths
    assert all(
        call["headers"].get("Authorization") == f"Bearer {secret}" and call["headers"].get("X-Org") == "acme"
        for call in server.faults.seen
    )
    monkeypatch.delenv("OPENAI_API_KEY")
    rc, _, _ = sweep(
        capsys,
        server,
        tokenizer,
        tmp_path,
        *QUICK,
        "--api-key",
        secret,
        "--force",
    )
    assert rc == 0 and not [name for name, text in _files(tmp_path).items() if secret in text]


@pytest.mark.parametrize(
    "metrics, content_type",
    [
        ("<html><body>metrics are elsewhere</body></html>", "text/html"),
        ('{"cached": 3}', "application/json"),
        ("sglang:cached_tokens_total{a=} nope", "text/plain"),
    ],
)
def test_a_metrics_endpoint_that_is_not_prometheus_does_not_crash_the_sweep(
    capsys, fault, tokenizer, tmp_path, metrics, content_type
):
    server = fault(metrics=metrics, metrics_type=content_type)
    rc, _, _ = sweep(capsys, server, tokenizer, tmp_path, *QUICK)
    step = json.loads((tmp_path / "summary.json").read_text())["steps"][0]
    assert rc == 0 and step["cache_hit_server"] is None and "no server cache counters" in " ".join(step["checks"])


@pytest.mark.parametrize("sig, code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_ctrl_c_cancels_in_flight_requests_and_writes_at_once(fault, tokenizer, tmp_path, sig, code):
    server = fault(stream_seconds=120, events=good_events())
    env = cli_env()
    proc = subprocess.Popen(
        [
            *CLI,
            "bench",
            "sweep",
            "--url",
            server.url,
            "--tokenizer",
            str(tokenizer),
            "--out",
            str(tmp_path),
            "--input-len",
            "40",
            "--output-len",
            "4",
            "--prefix-groups",
            "1",
            "--cache-hit",
            "0",
            "--rates",
            "4",
            "--step-seconds",
            "60",
            "--warmup-seconds",
            "0",
        ],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    time.sleep(6)
    sent = time.monotonic()
    proc.send_signal(sig)
    proc.wait(timeout=60)
    took = time.monotonic() - sent
    records = [json.loads(line) for line in (tmp_path / "requests.jsonl").read_text().splitlines()]
    # the defect waited out the streams (120 s here, 600 s by default): a wide bound, not a timing claim
    assert proc.returncode == code and took < 30, took
    assert json.loads((tmp_path / "summary.json").read_text())["interrupted_by"] == sig.name
    measured = [r for r in records if r["phase"] == "measure"]
    assert measured and all(r["error"] == "cancelled" for r in measured)


def test_a_missing_extra_is_named_before_measuring(capsys, fault, tokenizer, tmp_path, monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "matplotlib" else real(name, *a))
    server = fault()
    rc, _, err = sweep(capsys, server, tokenizer, tmp_path, *QUICK)
    assert rc == 2 and "pip install 'wafer-sglang[bench]'" in err and "matplotlib" in err
    assert not any(call["path"] == "/v1/completions" for call in server.faults.seen)


def test_mtp_acceptance_per_step_from_the_servers_counters(capsys, fault, tokenizer, tmp_path):
    """sglang's counters: generation tokens / verify calls over the window (3 tokens per forward here)."""
    scrapes = iter(range(10**6))

    def sglang_metrics() -> str:
        n = next(scrapes)
        return (
            "# TYPE sglang:generation_tokens_total counter\n"
            f'sglang:generation_tokens_total{{dp_rank="0"}} {300 * n}\n'
            "# TYPE sglang:spec_verify_calls_total counter\n"
            f'sglang:spec_verify_calls_total{{dp_rank="0"}} {100 * n}\n'
            "# TYPE sglang:num_requests_total counter\n"
            f"sglang:num_requests_total {n}\n"
        )

    server = fault(metrics=sglang_metrics)
    rc, out, _ = sweep(
        capsys,
        server,
        tokenizer,
        tmp_path,
        *QUICK,
        "--rates",
        "4,8",
    )
    steps = json.loads((tmp_path / "summary.json").read_text())["steps"]
    assert rc == 0 and [s["accept_length"] for s in steps] == [3.0, 3.0]
    assert "| 3.00 |" in (tmp_path / "table.md").read_text()


def test_the_sweep_measures_only_once_sglang_has_finished_the_preflight(capsys, fault, tokenizer, tmp_path):
    """The preflight request is hung up on but still finished by the server, and its prompt would
    count in the first window. sglang's running gauge is stale (it reads 0 here all along, as it can
    for 40 decode steps), so the sweep waits on its finished-request counter: nothing else is sent
    before that counter has grown (2 s after the preflight, here)."""
    finished_at: list[float] = []

    def sglang_metrics() -> str:
        if server.completions and not finished_at:
            finished_at.append(time.monotonic() + 2.0)
        done = int(bool(finished_at) and time.monotonic() >= finished_at[0]) + max(0, server.completions - 1)
        return (
            "# TYPE sglang:num_running_reqs gauge\nsglang:num_running_reqs 0\n"
            f"# TYPE sglang:num_requests_total counter\nsglang:num_requests_total {done}\n"
        )

    server = fault(metrics=sglang_metrics)
    rc, _, err = sweep(capsys, server, tokenizer, tmp_path, *QUICK)
    completions = [call["at"] for call in server.faults.seen if call["path"] == "/v1/completions"]
    assert rc == 0 and len(completions) > 2, err
    assert min(completions[1:]) >= finished_at[0]


def test_goodput_is_reported_per_step_and_the_vllm_export_reads_back(capsys, fault, tokenizer, tmp_path):
    from wafer_sglang.bench import compare

    server = fault()
    rc, out, err = sweep(
        capsys,
        server,
        tokenizer,
        tmp_path,
        *QUICK,
        "--goodput",
        "ttft:60000",
        "e2el:60000",
    )
    (step,) = json.loads((tmp_path / "summary.json").read_text())["steps"]
    assert rc == 0 and step["goodput_attainment"] == 1.0 and step["request_goodput"] > 0, err
    (line,) = [json.loads(x) for x in (tmp_path / "vllm_bench_serve.jsonl").read_text().splitlines()]
    assert line["request_goodput"] == step["request_goodput"] and line["completed"] == step["succeeded"]
    (agg,) = [json.loads(x) for x in (tmp_path / "inferencex_agg.jsonl").read_text().splitlines()]
    assert agg["output_tput_per_gpu"] == pytest.approx(line["output_throughput"] / step["inferencex"]["gpus"])
    (series,) = compare.load(tmp_path / "vllm_bench_serve.jsonl")
    assert [p["load"] for p in series.points] == [4.0] and series.points[0]["success_rate"] == 1.0


@pytest.mark.parametrize("load", [["--rates", "8"], ["--max-concurrency", "2"]])
def test_num_prompts_sends_that_many_measured_requests_per_step(capsys, fault, tokenizer, tmp_path, load):
    server = fault()
    args = (
        "--input-len",
        "40",
        "--output-len",
        "4",
        "--cache-hit",
        "0",
        "--drain-seconds",
        "5",
        "--warmup-seconds",
        "0.3",
    )
    rc, out, err = sweep(
        capsys,
        server,
        tokenizer,
        tmp_path,
        *args,
        *load,
        "--num-prompts",
        "9",
    )
    summary = json.loads((tmp_path / "summary.json").read_text())
    (step,) = summary["steps"]
    assert rc == 0 and step["requests"] == step["succeeded"] == 9, err
    assert summary["workload"]["num_prompts"] == 9 and summary["workload"]["step_seconds"] is None
    assert "1 step(s) x 9 requests" in err
    (line,) = [json.loads(x) for x in (tmp_path / "vllm_bench_serve.jsonl").read_text().splitlines()]
    assert line["num_prompts"] == 9 and line["completed"] == 9
