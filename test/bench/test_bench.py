"""The serving benchmark end to end. The happy paths run against the fork's own sglang server
(support/served_engine.py; a server of this module's own, so its counters move only with the
benchmark's traffic): token-exact prompts, the hit rate from sglang's radix cache and its
counters, the knee on a server that keeps up (every seed), closed loop, exports, compare and the
plots, the API key, Ctrl-C. Driving a server past capacity and killing one mid-step use llama.cpp
(xllamacpp): one slot makes capacity predictable, and a kill needs no engine's shutdown."""

from __future__ import annotations

import json
import signal
import subprocess
import threading
import time
from pathlib import Path

import pytest
from support import served_engine
from support.common import CLI, LTS, ROOT, cli_env, run_cli
from support.tiny_llm import LlamaServer, make_model

from wafer_sglang.bench.prompts import NONCE_TOKENS

pytestmark = pytest.mark.slow
PNG = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def server():
    with served_engine.running("bench", LTS) as srv:
        yield srv


@pytest.fixture(scope="module")
def model(server) -> Path:
    """The served model's folder: its tokenizer.json is the server's tokenizer."""
    return Path(server.model)


@pytest.fixture(scope="module")
def llama_model(tmp_path_factory) -> Path:
    return make_model(tmp_path_factory.mktemp("tiny-llm"))


@pytest.fixture(autouse=True)
def _api_key(monkeypatch, server):
    """bench reads OPENAI_API_KEY when --api-key is not given (llama.cpp ignores it)."""
    monkeypatch.setenv("OPENAI_API_KEY", server.api_key)


def sweep(capsys, url, model, out, *extra):
    return run_cli(
        capsys,
        "bench",
        "sweep",
        "--url",
        url,
        "--tokenizer",
        str(model),
        "--input-len",
        "300",
        "--output-len",
        "24",
        "--cache-hit",
        "0.6",
        "--prefix-groups",
        "1",
        "--out",
        str(out),
        *extra,
    )


@pytest.mark.parametrize(
    "lengths, message",
    [
        (("--input-len", "9000"), "The input (9000 tokens) is longer than the model's context length (8192 tokens)"),
        (("--output-len", "9000"), "Requested token count exceeds the model's maximum context length of 8192"),
    ],
    ids=["prompt", "prompt+output"],
)
def test_a_workload_the_server_refuses_ends_before_the_first_step(capsys, server, model, tmp_path, lengths, message):
    """sglang's own 400 (8k context), quoted with the flags to change; nothing measured."""
    rc, _, err = sweep(capsys, server.url, model, tmp_path / "sweep", *lengths, "--rates", "1,2", "--step-seconds", "5")
    assert rc == 2 and message in err and "--input-len / --output-len" in err and "Traceback" not in err
    assert not (tmp_path / "sweep" / "summary.json").exists()
    rc, _, err = run_cli(
        capsys, "bench", "single", "--url", server.url, "--tokenizer", str(model), "--input-len", "300",
        "--output-len", "24", *lengths, "--runs", "3", "--out", str(tmp_path / "single"),
    )  # fmt: skip
    assert rc == 2 and message in err and not (tmp_path / "single" / "summary.json").exists()


def test_sweep_counts_tokens_exactly_and_measures_the_hit_rate(capsys, server, model, tmp_path):
    rc, out, err = sweep(
        capsys,
        server.url + "/v1",
        model,
        tmp_path,
        "--rates",
        "1,3",
        "--step-seconds",
        "8",
        "--warmup-seconds",
        "1",
        "--drain-seconds",
        "30",
        "--price-tier",
        "rental/MI355X",
        "--gpus",
        "8",
    )
    assert rc == 0, out + err
    summary = json.loads((tmp_path / "summary.json").read_text())
    records = [json.loads(line) for line in (tmp_path / "requests.jsonl").read_text().splitlines()]
    measured = [r for r in records if r["phase"] == "measure"]
    assert measured and all(r["ok"] for r in measured)
    assert all(
        r["prompt_tokens"] == r["expected_prompt_tokens"] == 300 for r in measured
    )  # client tokenizer == server usage
    assert all(r["completion_tokens"] == 24 for r in measured)
    for step in summary["steps"]:
        # the radix cache is exact: sglang's own counters, and the usage it reports, say the target
        assert abs(step["cache_hit_server"] - 0.6) <= 0.02, step
        assert abs(step["cache_hit_client"] - step["cache_hit_server"]) <= 0.01, step
        assert step["success_rate"] == 1.0 and step["checks"] == [] and step["metrics_family"] == "sglang"
        assert step["usd_per_m_output_tokens"] == pytest.approx(2.90 * 8 / 3600 * 1e6 / step["output_tok_s"])
        assert step["offered_rps"] == step["requests"] / 7.0
    assert [s["target_rps"] for s in summary["steps"]] == [1.0, 3.0]
    assert summary["run"]["server"]["info"] and summary["run"]["tokenizer"]["sha256_16"]
    assert summary["run"]["server"]["url"] == server.url  # the /v1 spelling means the server
    table = (tmp_path / "table.md").read_text()
    assert table.startswith("| Target RPS (offered) | Aggregate tok/s/node | TTFT p50 / p95 | Success |")
    assert "| knee |" in table and "Knee rules:" in table
    for png in ("throughput.png", "ttft.png", "pareto.png"):
        assert (tmp_path / png).read_bytes()[:8] == PNG
    assert "step 1/2 (1 rps): " in err and "sustained" in err and "2 step(s) x 8 s" in err  # plan and per-step lines
    exported = [json.loads(line) for line in (tmp_path / "bench_serving.jsonl").read_text().splitlines()]
    assert [e["request_rate"] for e in exported] == [1.0, 3.0]
    assert [e["completed"] for e in exported] == [s["succeeded"] for s in summary["steps"]]


@pytest.mark.parametrize("seed", range(5))
def test_a_server_that_keeps_up_has_its_knee_at_the_top_rate_for_every_seed(capsys, server, model, tmp_path, seed):
    rc, out, _ = sweep(
        capsys,
        server.url,
        model,
        tmp_path,
        "--rates",
        "0.5,1",  # 1 rps: TTFT p95 1.7 s beside 6 test workers on 2 cores; 2 rps once took 6.0 s > 5 s
        "--step-seconds",
        "6",
        "--warmup-seconds",
        "1",
        "--drain-seconds",
        "20",
        "--seed",
        str(seed),
        "--fail-on-no-knee",
    )
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert rc == 0 and summary["knee"]["target_rps"] == 1.0, out
    assert summary["knee"]["failed_step"] is None


def test_a_server_past_capacity_gets_a_knee_below_the_top_rate_and_the_rule_named(capsys, llama_model, tmp_path):
    """One slot, 600 tokens per answer (~3 s alone; 1500 once took over the step and its drain
    beside a CPU burner, failing the 0.2 rps step). At 4 rps the queue builds."""
    model = llama_model
    slow = LlamaServer(model, slots=1)
    try:
        rc, out, err = run_cli(
            capsys,
            "bench",
            "sweep",
            "--url",
            slow.url,
            "--tokenizer",
            str(model),
            "--input-len",
            "200",
            "--output-len",
            "600",
            "--cache-hit",
            "0",
            "--prefix-groups",
            "1",
            "--rates",
            "0.2,4",
            "--step-seconds",
            "10",
            "--warmup-seconds",
            "0",
            "--drain-seconds",
            "10",
            "--out",
            str(tmp_path),
        )
    finally:
        slow.kill()
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["knee"]["target_rps"] == 0.2, out
    reasons = summary["knee"]["failed_step"]["reasons"]
    assert any(r.startswith("success") and "unfinished" in r for r in reasons) or any(
        r.startswith("queue building") for r in reasons
    )
    assert "knee 0.2 rps" in out and "4 rps failed: " in out


def test_closed_loop_compare_and_pareto(capsys, server, model, tmp_path):
    rc, out, _ = sweep(
        capsys,
        server.url,
        model,
        tmp_path / "closed",
        "--max-concurrency",
        "1,4",
        "--step-seconds",
        "10",  # 4 s measured no request at 4 users beside two CPU burners: all still in flight from warm-up
        "--warmup-seconds",
        "0.5",
        "--drain-seconds",
        "20",
    )
    summary = json.loads((tmp_path / "closed/summary.json").read_text())
    assert rc == 0 and [s["concurrency"] for s in summary["steps"]] == [1, 4]
    assert summary["knee"]["concurrency"] == 4, summary["knee"]
    # no --gpus: sglang's server info says tp 1 x dp 1; its api_key (in that answer) is never kept
    assert summary["workload"]["gpus"] == 1 and summary["workload"]["gpus_from"] == "the server's /get_server_info"
    assert summary["run"]["server"]["info"]["/get_server_info"]["tp_size"] == 1
    assert not [p.name for p in (tmp_path / "closed").iterdir() if server.api_key.encode() in p.read_bytes()]
    exported = [json.loads(line) for line in (tmp_path / "closed/bench_serving.jsonl").read_text().splitlines()]
    assert [e["max_concurrency"] for e in exported] == [1, 4] and exported[1]["concurrency"] > 0
    # never more than 4 in flight (bench_serving's figures cannot say: its mean users busy counts
    # whole latencies of requests that finish in the drain, its peak counts per-second buckets)
    records = [json.loads(line) for line in (tmp_path / "closed/requests.jsonl").read_text().splitlines()]
    assert max_in_flight([r for r in records if r["step"] == 4 and r["ok"] and r["phase"] != "prime"]) == 4
    assert summary["steps"][1]["inferencex"]["interactivity_tok_s_user"] > 0
    rc, out, _ = run_cli(
        capsys,
        "bench",
        "compare",
        str(tmp_path / "closed"),
        str(tmp_path / "closed/bench_serving.jsonl"),  # the same run, as sglang bench_serving writes it
        str(ROOT / "test/fixtures/bench/vllm-bench-serve.json"),
        "--gpus",
        "8",
        "--reference",
        "seed-mi355x",
        "--reference",
        "seed-b200",
        "--out",
        str(tmp_path / "cmp"),
    )
    assert rc == 0
    table = (tmp_path / "cmp/comparison.md").read_text()
    assert "| 4 users |" in table and "| 2.4 rps | 2626 |" in table and "| 4 rps | 3100 | 388 |" in table
    series = json.loads((tmp_path / "cmp/comparison.json").read_text())["series"]
    ours, exported = series[0], series[1]  # the run, and its bench_serving.jsonl read back: the same figures
    assert [p["load"] for p in exported["points"]] == [1, 4] and "(1 GPUs)" in exported["source"]
    for a, b in zip(ours["points"], exported["points"]):
        assert b["output_tok_s"] == pytest.approx(a["output_tok_s"], rel=0.02) and b["ttft_p50_s"] == pytest.approx(
            a["ttft_p50_s"], rel=0.02
        )
    assert "input_len differs" in table  # 300-token prompts against the seed's 20k
    for png in ("compare_throughput.png", "compare_ttft.png", "compare_pareto.png"):
        assert (tmp_path / "cmp" / png).read_bytes()[:8] == PNG


def max_in_flight(records: list[dict]) -> int:
    events = sorted([(r["sent_s"], 1) for r in records] + [(r["sent_s"] + r["e2e_s"], -1) for r in records])
    busy = peak = 0
    for _, change in events:  # an end sorts before a start at the same instant
        busy += change
        peak = max(peak, busy)
    return peak


def test_sharegpt_prompts_ask_for_the_replys_length(capsys, server, model, tmp_path):
    words = "the quick brown fox jumps over the lazy dog while a small model counts tokens"
    data = [
        {"conversations": [{"from": "human", "value": words}, {"from": "gpt", "value": " ".join(words.split()[:n])}]}
        for n in (5, 8, 11)
    ]
    (tmp_path / "sg.json").write_text(json.dumps(data))
    rc, _, err = sweep(
        capsys,
        server.url,
        model,
        tmp_path / "out",
        "--dataset",
        "sharegpt",
        str(tmp_path / "sg.json"),
        "--rates",
        "2",
        "--step-seconds",
        "4",
        "--warmup-seconds",
        "0",
        "--drain-seconds",
        "20",
    )
    records = [json.loads(line) for line in (tmp_path / "out/requests.jsonl").read_text().splitlines()]
    assert rc == 0 and records and all(r["ok"] for r in records)
    assert {r["requested_output"] for r in records} <= {5, 8, 11} and all(
        r["completion_tokens"] == r["requested_output"] for r in records
    )
    # three conversations replayed: said per step, since the repeats are cache hits
    (step,) = json.loads((tmp_path / "out/summary.json").read_text())["steps"]
    reuse = f"dataset reused: {len(records)} requests so far drew on 3 conversations"
    assert len(records) > 3 and any(c.startswith(reuse) for c in step["checks"]) and f"warning: {reuse}" in err


def test_killed_server_mid_step_ends_the_step_fast_and_fails_the_run(capsys, llama_model, tmp_path):
    model = llama_model
    victim = LlamaServer(model, slots=2)
    threading.Timer(3.0, victim.kill).start()
    started = time.monotonic()
    rc, out, err = sweep(
        capsys,
        victim.url,
        model,
        tmp_path,
        "--rates",
        "4,6",
        "--step-seconds",
        "30",
        "--warmup-seconds",
        "0",
        "--drain-seconds",
        "5",
        "--fail-after",
        "5",
    )
    summary = json.loads((tmp_path / "summary.json").read_text())
    first, second = summary["steps"]
    assert time.monotonic() - started < 30  # not 2 x 30 s of connection errors
    assert rc == 1 and "had no successful request" in err
    assert first["aborted"].startswith("5 connection failures in a row") and 0 < first["success_rate"] < 1
    assert second["success_rate"] == 0 and second["aborted"]
    assert summary["knee"]["target_rps"] is None and summary["knee"]["failed_step"]["reasons"][0].startswith("aborted")


def test_single_stream_uses_unique_prompts(capsys, server, model, tmp_path):
    rc, out, _ = run_cli(
        capsys,
        "bench",
        "single",
        "--url",
        server.url,
        "--tokenizer",
        str(model),
        "--input-len",
        "200",
        "--output-len",
        "32",
        "--runs",
        "3",
        "--out",
        str(tmp_path),
    )
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert rc == 0 and len(summary["runs"]) == 3 and summary["median_output_speed_tok_s"] > 0
    records = [json.loads(line) for line in (tmp_path / "requests.jsonl").read_text().splitlines()]
    # the nonce opens every prompt, so the radix cache cannot reach past it. It may still match its
    # first token or two: this tiny tokenizer has few word tokens and the server is shared.
    assert all(r["prompt_tokens"] == 200 and (r["cached_tokens"] or 0) < NONCE_TOKENS for r in records)
    assert "| 200 / 32 | 3 |" in (tmp_path / "table.md").read_text()


def test_ctrl_c_writes_what_was_measured_at_once(model, server, tmp_path):
    env = cli_env()  # OPENAI_API_KEY: the server's key
    proc = subprocess.Popen(
        [
            *CLI,
            "bench",
            "sweep",
            "--url",
            server.url,
            "--tokenizer",
            str(model),
            "--input-len",
            "300",
            "--output-len",
            "24",
            "--prefix-groups",
            "1",
            "--rates",
            "2,3",
            "--step-seconds",
            "6",
            "--warmup-seconds",
            "1",
            "--out",
            str(tmp_path),
        ],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    for line in iter(proc.stderr.readline, b""):  # until the first step's summary: the second has begun
        if line.decode().startswith("step 1/2 (") and "): " in line.decode():
            break
    time.sleep(2)
    proc.send_signal(signal.SIGINT)
    proc.wait(timeout=60)
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert proc.returncode == 130
    assert summary["steps"][0]["interrupted"] is False and summary["steps"][-1]["interrupted"] is True
    assert (tmp_path / "requests.jsonl").stat().st_size > 0


def test_a_server_that_wants_a_key_is_refused_before_any_step(capsys, server, model, tmp_path, monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY")
    rc, out, err = sweep(capsys, server.url, model, tmp_path / "nokey", "--rates", "1", "--step-seconds", "2")
    assert rc != 0 and "HTTP 401" in err and "--api-key" in err, out + err
    assert not (tmp_path / "nokey" / "summary.json").exists()
    rc, out, err = sweep(
        capsys, server.url, model, tmp_path / "wrong", "--rates", "1", "--step-seconds", "2", "--api-key", "not-the-key"
    )
    assert rc != 0 and "HTTP 401" in err and "not-the-key" not in out + err
