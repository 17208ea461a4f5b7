"""The serving benchmark against a real llama.cpp server (xllamacpp) the tests start, plus the
pieces that need no server (SSE parsing, stats, knee, costs)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from conftest import ROOT, run_cli
from tiny_llm import LlamaServer, make_model
from wafer_sglang.bench import sse
from wafer_sglang.bench.stats import Slo, add_costs, knee

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def model(tmp_path_factory) -> Path:
    return make_model(tmp_path_factory.mktemp("tiny-llm"))


@pytest.fixture(scope="module")
def server(model):
    """One slot: every request after the primer reuses the cached prefix."""
    srv = LlamaServer(model, slots=1)
    yield srv
    srv.kill()


def sweep(capsys, url, model, out, *extra):
    return run_cli(capsys, "bench", "sweep", "--url", url, "--tokenizer", str(model), "--input-len", "300",
                   "--output-len", "24", "--cache-hit", "0.6", "--prefix-groups", "1", "--out", str(out), *extra)


def test_sweep_counts_tokens_exactly_and_measures_the_hit_rate(capsys, server, model, tmp_path):
    rc, out, _ = sweep(capsys, server.url, model, tmp_path, "--rates", "1,3", "--step-seconds", "8", "--warmup-seconds", "1",
                       "--drain-seconds", "30", "--price-tier", "rental/MI355X", "--gpus", "8")
    assert rc == 0, out
    summary = json.loads((tmp_path / "summary.json").read_text())
    records = [json.loads(line) for line in (tmp_path / "requests.jsonl").read_text().splitlines()]
    measured = [r for r in records if r["phase"] == "measure"]
    assert measured and all(r["ok"] for r in measured)
    assert all(r["prompt_tokens"] == r["expected_prompt_tokens"] == 300 for r in measured)  # client tokenizer == server usage
    assert all(r["completion_tokens"] == 24 for r in measured)
    for step in summary["steps"]:
        assert abs(step["cache_hit_server"] - 0.6) <= 0.05, step
        assert abs(step["cache_hit_client"] - 0.6) <= 0.05, step
        assert step["success_rate"] == 1.0 and step["checks"] == []
        assert step["usd_per_m_output_tokens"] == pytest.approx(2.90 * 8 / 3600 * 1e6 / step["output_tok_s"])
    assert [s["target_rps"] for s in summary["steps"]] == [1.0, 3.0]
    assert summary["run"]["server"]["info"] and summary["run"]["tokenizer"]["sha256_16"]
    assert "output (completion) tokens per second" in summary["definitions"]["aggregate_tok_s_node"]
    table = (tmp_path / "table.md").read_text()
    assert table.startswith("| Sustained RPS | Aggregate tok/s/node | TTFT p50 / p95 | Success |")
    for png in ("throughput.png", "ttft.png"):
        assert (tmp_path / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_killed_server_mid_step_is_counted_not_fatal(capsys, model, tmp_path):
    victim = LlamaServer(model, slots=2)
    threading.Timer(3.0, victim.kill).start()
    rc, out, _ = sweep(capsys, victim.url, model, tmp_path, "--rates", "4,6", "--step-seconds", "6", "--warmup-seconds", "0",
                       "--drain-seconds", "5")
    summary = json.loads((tmp_path / "summary.json").read_text())
    first, second = summary["steps"]
    assert rc == 0 and len(summary["steps"]) == 2  # the sweep went on to the next rate
    assert 0 < first["success_rate"] < 1 and first["failures"]
    assert second["success_rate"] == 0 and second["requests"] > 0 and set(second["failures"]) <= {"connection", "broken"}
    assert summary["knee"]["target_rps"] is None


def test_single_stream_uses_unique_prompts(capsys, server, model, tmp_path):
    rc, out, _ = run_cli(capsys, "bench", "single", "--url", server.url, "--tokenizer", str(model), "--input-len", "200",
                         "--output-len", "32", "--runs", "3", "--out", str(tmp_path))
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert rc == 0 and len(summary["runs"]) == 3 and summary["median_output_speed_tok_s"] > 0
    records = [json.loads(line) for line in (tmp_path / "requests.jsonl").read_text().splitlines()]
    assert all(r["prompt_tokens"] == 200 and r["cached_tokens"] == 0 for r in records)  # the nonce opens every prompt
    assert "| 200 / 32 | 3 |" in (tmp_path / "table.md").read_text()


def test_ctrl_c_writes_what_was_measured(model, server, tmp_path):
    env = {**os.environ, "PYTHONPATH": str(ROOT / "build/devpath")}
    proc = subprocess.Popen([sys.executable, "-m", "wafer_sglang", "bench", "sweep", "--url", server.url, "--tokenizer", str(model),
                             "--input-len", "300", "--output-len", "24", "--prefix-groups", "1", "--rates", "2,3",
                             "--step-seconds", "6", "--warmup-seconds", "1", "--out", str(tmp_path)],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    time.sleep(9)  # into the second step
    proc.send_signal(signal.SIGINT)
    proc.wait(timeout=60)
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert proc.returncode == 130
    assert summary["steps"][0]["interrupted"] is False and summary["steps"][-1]["interrupted"] is True
    assert (tmp_path / "requests.jsonl").stat().st_size > 0


# -- no server needed ----------------------------------------------------------------------

def _collect(lines, split_at: int = 7):
    """Events from the lines, fed as bytes cut at arbitrary points (network reads)."""
    data = "\n".join(lines).encode()
    parser = sse.Parser()
    events = []
    for i in range(0, len(data), split_at):
        events += parser.feed(data[i:i + split_at])
    return events + parser.close()


def test_sse_usage_in_separate_chunk_role_chunk_and_reasoning():
    lines = [
        'data: {"choices":[{"delta":{"role":"assistant"},"index":0}]}', "",
        ": keep-alive", "",
        'data: {"choices":[{"delta":{"reasoning_content":"think"},"index":0}]}\r', "",
        'data: {"choices":[{"delta":{"content":"hi"},"finish_reason":"length","index":0}]}', "",
        'data: {"choices":[],"usage":{"prompt_tokens":5,"completion_tokens":2,"prompt_tokens_details":{"cached_tokens":3}}}', "",
        "data: [DONE]", "",
    ]
    events = (_collect(lines))
    assert [sse.delta_text(e) for e in events] == ["", "think", "hi", ""]
    assert sse.finish_reason(events[2]) == "length"
    assert sse.cached_tokens(events[3]["usage"], events[3]) == 3


def test_sse_multiline_data_and_llama_cpp_timings():
    events = (_collect(['data: {"choices":[{"text":"a"}],', 'data: "timings":{"cache_n":7}}', ""]))
    assert sse.delta_text(events[0]) == "a" and sse.cached_tokens({}, events[0]) == 7


@pytest.mark.parametrize("line, message", [('data: {"error":{"message":"overloaded"}}', "server error in stream"),
                                           ("data: {not json", "malformed event")])
def test_sse_errors(line, message):
    with pytest.raises(sse.StreamError, match=message):
        (_collect([line, ""]))


def _step(rate, ttft95, success=1.0, achieved=None, tok=100.0):
    return {"target_rps": rate, "ttft_p95_s": ttft95, "success_rate": success,
            "achieved_rps": rate if achieved is None else achieved, "output_tok_s": tok}


def test_knee_is_monotone():
    steps = [_step(1, 1.0), _step(2, 6.0), _step(3, 1.0), _step(0.5, 0.5)]
    assert knee(steps, Slo())["target_rps"] == 1
    assert knee([_step(1, 1.0, success=0.98)], Slo())["target_rps"] is None
    assert knee([_step(1, 1.0, achieved=0.9), _step(2, 1.0)], Slo())["target_rps"] is None
    assert knee([_step(1, 4.0), _step(2, 4.9)], Slo(ttft_p95_s=4.5))["target_rps"] == 1


def test_cost_per_million_tokens():
    step = {"output_tok_s": 2626.0, "total_tok_s": 50400.0}
    add_costs(step, 2.90, 8)
    assert step["usd_per_m_output_tokens"] == pytest.approx(2.90 * 8 * 1e6 / (3600 * 2626))
    assert step["usd_per_m_total_tokens"] == pytest.approx(2.90 * 8 * 1e6 / (3600 * 50400))


def test_unknown_price_tier(capsys, tmp_path):
    rc, _, err = run_cli(capsys, "bench", "sweep", "--url", "http://127.0.0.1:9", "--tokenizer", "x", "--out", str(tmp_path),
                         "--price-tier", "cheap/MI355X")
    assert rc == 2 and "unknown price tier 'cheap/MI355X'" in err and "rental/MI355X" in err
