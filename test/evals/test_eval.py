"""The quality gate end to end: lm-eval (its local-completions backend) against the fork's own
sglang servers — 0.5.14 as baseline, 0.5.23 as candidate, both serving the suite's tiny model
whose scores are known (support/served_engine.py), and 0.5.23 serving another model as the
candidate that really differs — on a dataset the test writes; plus the stderr math against known
values and lm-eval's own, acceptance parsing, and the errors."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest
from support import served_engine
from support.common import BASES, LTS
from support.eval_data import GSM8K_STDERR, evaluate, write_eval_data
from support.tiny_llm import free_port, make_model

from wafer_sglang.evals import acceptance
from wafer_sglang.evals.stats import Gate, Score, compare, score

CURRENT = BASES[-1]


@pytest.fixture(scope="module")
def servers(tmp_path_factory, monkeypatch_module):
    """(baseline: the LTS fork, candidate: the current fork on the same model)."""
    monkeypatch_module.setenv("OPENAI_API_KEY", served_engine.run_key())  # the run's servers share one key
    return served_engine.shared(LTS), served_engine.shared(CURRENT)


@pytest.fixture(scope="module")
def monkeypatch_module():
    with pytest.MonkeyPatch.context() as mp:
        yield mp


@pytest.fixture(scope="module")
def other_model(tmp_path_factory, servers):
    """The current fork serving another model (random weights, no answer): a real difference."""
    with served_engine.running("eval-other-model", CURRENT, make_model(tmp_path_factory.mktemp("random-llm"))) as s:
        yield s


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory) -> Path:
    return write_eval_data(tmp_path_factory.mktemp("eval-data"))


@pytest.mark.slow
def test_gate_fails_a_worse_candidate_with_known_scores(capsys, servers, other_model, data_dir, tmp_path):
    answer, random_ = servers[0], other_model
    rc, out, err = evaluate(capsys, tmp_path, answer.url, random_.url, data_dir, "--gate-threshold", "0.1")
    assert rc == 1, err
    assert "quality gate FAILED" in err
    report = json.loads((tmp_path / "comparison.json").read_text())
    gsm8k, gpqa = report["tasks"]

    assert gsm8k["baseline"]["score"] == {"mean": 0.75, "stderr": pytest.approx(GSM8K_STDERR), "n": 8}
    assert gsm8k["candidate"]["score"] == {"mean": 0.0, "stderr": 0.0, "n": 8}
    seed0 = gsm8k["baseline"]["per_seed"][0]  # lm-eval's own figures agree with ours
    assert (seed0["exact_match"], seed0["exact_match_stderr"]) == (0.75, pytest.approx(GSM8K_STDERR))
    c = gsm8k["comparison"]
    assert c["delta"] == -0.75 and c["stderr"] == pytest.approx(GSM8K_STDERR)
    assert not c["within_noise"] and not c["gate_passed"]
    assert c["gate_limit"] == pytest.approx(-(0.1 + GSM8K_STDERR))

    # two seeds pooled: 4 questions x 2 = 8 samples; every answer is (A)
    assert gpqa["seeds"] == [0, 1] and gpqa["questions"] == 4
    assert gpqa["baseline"]["score"] == {"mean": 1.0, "stderr": 0.0, "n": 8}
    assert gpqa["candidate"]["score"]["mean"] == 0.0
    assert [s["seed"] for s in gpqa["candidate"]["per_seed"]] == [0, 1]
    assert report["gate"]["passed"] is False
    assert report["versions"]["lm_eval"] == "0.4.13"

    md = (tmp_path / "comparison.md").read_text()
    assert (
        f"| GSM8K (8q, 5-shot, greedy) | 0.7500 \u00b1 {GSM8K_STDERR:.3f} | 0.0000 \u00b1 0.000 | \u22120.750 \u00b1 "
        f"{GSM8K_STDERR:.3f} | "
        f"no (\u00b1{1.96 * GSM8K_STDERR:.3f} = 1.96\u00b7se) | FAIL (limit \u2212{0.1 + GSM8K_STDERR:.3f}) |"
    ) in md
    assert "| GPQA-Diamond (4q \u00d7 2 seeds, CoT 0-shot, temp 1.0) | 1.0000 \u00b1 0.000 | 0.0000" in md
    header = next(line for line in md.splitlines() if line.startswith("| Eval |"))
    assert all(
        line.count("|") == header.count("|") == 7
        for line in md.splitlines()
        if line.startswith(("| GSM8K (", "| GPQA-Diamond ("))
    )
    assert "**Gate: FAILED**" in md and "not reported" in md
    assert md in out

    # the recorded commands are what ran: rerunning one reproduces lm-eval's samples
    commands = report["commands"]["baseline"]
    assert len(commands) == 3 and all(
        f"{sys.executable} -m wafer_sglang.evals.lm_eval_cli run --model local-completions" in c for c in commands
    )
    assert "--seed 1" in commands[2] and "temperature=1.0" in commands[2] and "do_sample=True" in commands[2]
    sample_files = list((tmp_path / "runs" / "baseline" / "gsm8k" / "seed0").rglob("samples_*.jsonl"))
    assert len(sample_files) == 1
    assert report["data"]["gsm8k"]["test"]["sha256"]


@pytest.mark.slow
def test_lts_and_current_fork_answer_alike_and_pass_the_gate(capsys, servers, data_dir, tmp_path):
    lts, current = servers
    rc, out, err = evaluate(
        capsys, tmp_path, lts.url, current.url, data_dir, "--tasks", "gsm8k", "--limit", "4", "--gate-threshold", "0"
    )
    assert rc == 0, err
    # the same greedy answers, sample by sample, from the two bases' servers
    responses = [
        [json.loads(line)["resps"] for line in next((tmp_path / "runs" / side).rglob("samples_*.jsonl")).open()]
        for side in ("baseline", "candidate")
    ]
    assert responses[0] == responses[1] and len(responses[0]) == 4 * 2  # a line per question and filter
    (task,) = json.loads((tmp_path / "comparison.json").read_text())["tasks"]
    assert (
        task["baseline"]["score"] == task["candidate"]["score"] == {"mean": 0.75, "stderr": pytest.approx(0.25), "n": 4}
    )
    assert task["comparison"]["delta"] == 0 and task["comparison"]["within_noise"] and task["comparison"]["gate_passed"]
    assert "**Gate: PASSED**" in out


def test_unreachable_endpoint_is_a_clear_error_before_anything_runs(capsys, data_dir, tmp_path):
    dead = f"http://127.0.0.1:{free_port()}"
    rc, _, err = evaluate(capsys, tmp_path / "out", dead, dead, data_dir)
    assert rc == 2
    assert f"baseline endpoint {dead} is unreachable" in err and "is the server up" in err
    assert not (tmp_path / "out").exists()


@pytest.mark.slow
@pytest.mark.parametrize(
    "broken, message",
    [
        (
            {"gsm8k/test.jsonl": '{"question": "q", "answer": "#### 1"}\n{"question": "q2"\n'},
            "test.jsonl line 2: not JSON",
        ),
        (
            {"gsm8k/test.jsonl": '{"question": "q", "solution": "#### 1"}\n'},
            "line 1: missing or non-string field(s) answer",
        ),
        ({"gsm8k/test.jsonl": '{"question": "q", "answer": "42"}\n'}, "answer has no '####'"),
        ({"gsm8k/test.jsonl": "\n"}, "test.jsonl has no rows"),
        ({"gpqa_diamond/train.jsonl": '["Question", "Correct Answer"]\n'}, "expected a JSON object, got list"),
        ({"gpqa_diamond/train.jsonl": None}, "gpqa_diamond: missing"),
    ],
)
def test_malformed_dataset_is_a_clear_error_and_writes_nothing(capsys, servers, data_dir, tmp_path, broken, message):
    import shutil

    data = tmp_path / "data"
    shutil.copytree(data_dir, data)
    for rel, text in broken.items():
        if text is None:
            (data / rel).unlink()
        else:
            (data / rel).write_text(text)
    rc, _, err = evaluate(capsys, tmp_path / "out", servers[0].url, servers[0].url, data)
    assert rc == 2 and message in err, err
    assert not (tmp_path / "out").exists()


@pytest.mark.slow
def test_server_failing_mid_eval_stops_both_sides_with_lm_evals_error(capsys, servers, data_dir, tmp_path):
    """A server that lists its model but fails every completion: lm-eval retries, gives up, and the
    error names the failing side's log; the healthy side's lm-eval is terminated, not left running."""
    from aiohttp import web

    async def models(request):
        return web.json_response({"object": "list", "data": [{"id": "broken", "object": "model"}]})

    async def completions(request):
        return web.json_response({"error": {"message": "CUDA error: out of memory"}}, status=500)

    app = web.Application()
    app.add_routes([web.get("/v1/models", models), web.post("/v1/completions", completions)])
    port, ready = free_port(), threading.Event()

    def serve():
        import asyncio

        async def main():
            runner = web.AppRunner(app)
            await runner.setup()
            await web.TCPSite(runner, "127.0.0.1", port).start()
            ready.set()
            await asyncio.sleep(600)

        asyncio.run(main())

    threading.Thread(target=serve, daemon=True).start()
    ready.wait(10)
    rc, _, err = evaluate(capsys, tmp_path, servers[0].url, f"http://127.0.0.1:{port}", data_dir, "--tasks", "gsm8k")
    assert rc == 2
    assert "lm-eval failed" in err and str(tmp_path / "runs" / "candidate" / "gsm8k" / "seed0" / "lm_eval.log") in err
    assert "500" in err
    assert not (tmp_path / "comparison.json").exists()


def test_offline_cache_without_the_dataset_says_how_to_prepare_it(tmp_path):
    env = {**os.environ, "HF_HOME": str(tmp_path / "hf"), "HF_DATASETS_OFFLINE": "1", "HF_HUB_OFFLINE": "1"}
    from wafer_sglang.evals import lmeval
    from wafer_sglang.evals.tasks import TASKS

    with pytest.MonkeyPatch.context() as mp:
        for k, v in env.items():
            mp.setenv(k, v)
        with pytest.raises(Exception) as info:
            lmeval.check_cached(TASKS["gsm8k"])
    assert "not in the offline Hugging Face cache" in str(info.value) and "eval prepare" in str(info.value)

    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "wafer_sglang",
            "eval",
            "prepare",
            "--tasks",
            "gsm8k",
            "--data-dir",
            str(tmp_path / "data"),
        ],
        capture_output=True,
        text=True,
        env=env,
    )
    assert proc.returncode == 2 and "could not load openai/gsm8k" in proc.stderr and "hub access" in proc.stderr
    assert not (tmp_path / "data").exists()


def test_prepare_writes_what_eval_reads(tmp_path, data_dir):
    """eval-prepare's conversion, fed from a local dataset folder instead of the hub."""
    from dataclasses import replace

    from wafer_sglang.evals.prepare import prepare
    from wafer_sglang.evals.tasks import TASKS, check_dataset

    source = replace(TASKS["gsm8k"], hub=(str(data_dir / "gsm8k"), None))
    files = prepare(source, tmp_path)
    assert files == check_dataset(tmp_path, TASKS["gsm8k"])
    assert [json.loads(line) for line in files["test"].read_text().splitlines()] == [
        json.loads(line) for line in (data_dir / "gsm8k" / "test.jsonl").read_text().splitlines()
    ]


# -- stderr math ---------------------------------------------------------------------------------


def test_stderr_known_values_and_lm_evals_formula():
    from lm_eval.api.metrics import mean_stderr

    assert score([1, 1, 1, 0]) == Score(0.75, 0.25, 4)
    assert score([1] * 193 + [0] * 7).stderr == pytest.approx(math.sqrt(0.965 * 0.035 * 200 / 199 / 200))
    values = np.random.default_rng(0).integers(0, 2, 396).tolist()
    assert score(values).stderr == pytest.approx(mean_stderr(values))
    assert math.isnan(score([1]).stderr)


def test_comparison_on_the_reference_run():
    """GSM8K 0.965 +- 0.013 vs 0.955 +- 0.014: delta -0.010 +- 0.0191, within noise."""
    fp8, mxfp4 = Score(0.965, 0.013, 200), Score(0.955, 0.014, 200)
    c = compare(fp8, mxfp4)
    assert c.delta == pytest.approx(-0.010) and c.stderr == pytest.approx(math.sqrt(0.013**2 + 0.014**2))
    assert c.within_noise and c.gate_passed is None
    assert compare(fp8, mxfp4, gate=Gate(0.02, 1.0)).gate_passed  # -0.010 >= -(0.02 + 0.0191)
    assert not compare(fp8, mxfp4, gate=Gate(0.0, 0.0)).gate_passed  # any drop fails a zero gate
    assert compare(fp8, mxfp4, gate=Gate(0.0, 0.53)).gate_passed  # 0.53 sigma = 0.0101 of slack
    assert not compare(Score(0.9217, 0.027, 396), Score(0.80, 0.029, 396)).within_noise  # 0.122 > 1.96 * 0.0396


def test_the_gate_fails_where_neither_side_scores_no_signal():
    """Both at 0 (a wrong prompt format, a broken server pair) is no evidence of equal quality."""
    zero = Score(0.0, 0.0, 200)
    c = compare(zero, zero, gate=Gate(0.02, 1.0))
    assert c.no_signal and not c.gate_passed
    assert not compare(Score(0.2, 0.03, 198), Score(0.22, 0.03, 198), gate=Gate(0.02, 1.0, floor=0.25)).gate_passed
    assert compare(zero, Score(0.5, 0.03, 200), gate=Gate(0.02, 1.0)).gate_passed  # the candidate has signal


# -- acceptance ----------------------------------------------------------------------------------


def sglang_metrics(generated: int, verify_calls: dict[str, int]) -> str:
    """/metrics as sglang's collector writes it (same names, one label set per DP rank)."""
    from prometheus_client import CollectorRegistry, Counter, generate_latest

    registry = CollectorRegistry()
    tokens = Counter("sglang:generation_tokens_total", "", ["model_name", "dp_rank"], registry=registry)
    verify = Counter("sglang:spec_verify_calls_total", "", ["model_name", "dp_rank"], registry=registry)
    for rank, calls in verify_calls.items():
        tokens.labels("glm", rank).inc(generated / len(verify_calls))
        verify.labels("glm", rank).inc(calls)
    return generate_latest(registry).decode()


def test_acceptance_from_sglang_and_vllm_counters():
    from wafer_sglang import metrics

    before = metrics.totals(sglang_metrics(1000, {"0": 200, "1": 200}))
    after = metrics.totals(sglang_metrics(4000, {"0": 600, "1": 600}))
    found = acceptance.from_counters(before, after)
    assert (found.source, found.accept_length) == ("metrics:sglang", 3000 / 800)

    vllm_before = {"vllm:spec_decode_num_accepted_tokens_total": 100.0, "vllm:spec_decode_num_drafts_total": 50.0}
    vllm_after = {"vllm:spec_decode_num_accepted_tokens_total": 700.0, "vllm:spec_decode_num_drafts_total": 350.0}
    assert acceptance.from_counters(vllm_before, vllm_after).accept_length == 3.0
    # a server without speculative decoding, or no metrics at all: not reported
    no_spec = {"sglang:generation_tokens_total": 10.0}
    assert acceptance.from_counters(no_spec, {"sglang:generation_tokens_total": 99.0}) is None
    assert acceptance.from_counters(None, after) is None


def test_acceptance_from_an_sglang_log_counts_only_the_eval_window(tmp_path):
    def line(accept):
        return (
            f"[2026-11-27 10:00:00 DP0 TP0] Decode batch, #running-req: 32, #token: 51234, token usage: 0.05, "
            f"accept len: {accept:.2f}, accept rate: 0.71, cuda graph: True, gen throughput (token/s): 2811.40, "
            "#queue-req: 0\n"
        )

    log = tmp_path / "server.log"
    log.write_text(line(1.0) * 3)  # before the eval: not counted
    with __import__("requests").Session() as session:
        window = acceptance.Window(f"http://127.0.0.1:{free_port()}", log, session)
        with log.open("a") as fh:
            fh.write(line(3.25) + "[INFO] Prefill batch, #new-seq: 1\n" + line(3.75))
        found = window.close()
    assert (found.source, found.accept_length) == ("log", 3.5)
    assert "2 'accept len' log lines" in found.basis
