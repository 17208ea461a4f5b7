"""The benchmark's pieces that need no server: SSE parsing, the knee on recorded steps with known
answers, the bench_serving field names, prefix-group draws, URLs, credentials, argument checks."""

from __future__ import annotations

import ast
import json
import zipfile

import pytest
from support.common import ROOT, pinned_wheel, run_cli

from wafer_sglang.bench import endpoint, export, sse
from wafer_sglang.bench.knee import Slo, describe, knee
from wafer_sglang.bench.load import arrivals
from wafer_sglang.bench.prompts import SweepPrompts
from wafer_sglang.bench.results import StepResult, SweepSummary
from wafer_sglang.bench.stats import add_costs


def _collect(lines, split_at: int = 7):
    """Events from the lines, fed as bytes cut at arbitrary points (network reads)."""
    data = "\n".join(lines).encode()
    parser = sse.Parser()
    events = []
    for i in range(0, len(data), split_at):
        events += parser.feed(data[i : i + split_at])
    return events + parser.close()


def test_sse_usage_in_separate_chunk_role_chunk_and_reasoning():
    lines = [
        'data: {"choices":[{"delta":{"role":"assistant"},"index":0}]}',
        "",
        ": keep-alive",
        "",
        'data: {"choices":[{"delta":{"reasoning_content":"think"},"index":0}]}\r',
        "",
        'data: {"choices":[{"delta":{"content":"hi"},"finish_reason":"length","index":0}]}',
        "",
        'data: {"choices":[],"usage":{"prompt_tokens":5,"completion_tokens":2,'
        '"prompt_tokens_details":{"cached_tokens":3}}}',
        "",
        "data: [DONE]",
        "",
    ]
    events = _collect(lines)
    assert [sse.delta_text(e) for e in events] == ["", "think", "hi", ""]
    assert sse.finish_reason(events[2]) == "length"
    assert sse.cached_tokens(events[3]["usage"], events[3]) == 3


def test_sse_multiline_data_and_llama_cpp_timings():
    events = _collect(['data: {"choices":[{"text":"a"}],', 'data: "timings":{"cache_n":7}}', ""])
    assert sse.delta_text(events[0]) == "a" and sse.cached_tokens({}, events[0]) == 7


@pytest.mark.parametrize(
    "line, message",
    [('data: {"error":{"message":"overloaded"}}', "server error in stream"), ("data: {not json", "malformed event")],
)
def test_sse_errors(line, message):
    with pytest.raises(sse.StreamError, match=message):
        _collect([line, ""])


# -- the knee -------------------------------------------------------------------------------------


def _step(
    rate, ttft95=1.0, success=1.0, offered=None, tok=100.0, trend=None, aborted=None, failures=None, requests=50, **more
) -> StepResult:
    return StepResult(
        **{
            "mode": "rate",
            "load": rate,
            "offered_rps": rate if offered is None else offered,
            "requests": requests,
            "ttft_p95_s": ttft95,
            "success_rate": success,
            "output_tok_s": tok,
            "ttft_trend": trend,
            "aborted": aborted,
            "failures": failures or {},
            **more,
        }
    )


def test_the_poisson_shortfall_of_the_clients_own_draw_is_not_a_failure():
    """The defaults (seed 0, 300 s steps, 30 s warm-up) release 0.852 x 0.5 rps in the window; the
    old rule (achieved >= 0.95 x target) called a perfect server unsustained at its first step."""
    offsets = arrivals(0.5, 300, "poisson", 0)
    offered = sum(1 for o in offsets if o >= 30) / 270
    assert offered / 0.5 == pytest.approx(0.852, abs=0.001)
    steps = [_step(0.5, offered=offered), _step(1.0, offered=1.02), _step(2.4, offered=2.31)]
    assert knee(steps, Slo()).load == 2.4
    # by chance alone, over 2000 seeds: how often the old rule failed 0.5 rps — never a verdict now
    short = sum(sum(1 for o in arrivals(0.5, 300, "poisson", s) if o >= 30) / 270 < 0.95 * 0.5 for s in range(2000))
    assert 0.25 < short / 2000 < 0.33


@pytest.mark.parametrize(
    "steps, expected, reasons",
    [
        ([_step(1), _step(2, ttft95=6.1), _step(3)], 1, ["TTFT p95 6.10 s > 5 s"]),  # monotone: 3 never counts
        ([_step(1, success=0.98, failures={"unfinished": 2})], None, ["success 98.0% < 99% (2 unfinished)"]),
        (
            [_step(1), _step(2, trend={"early_p50_s": 0.6, "late_p50_s": 3.4, "per_third": 20})],
            1,
            ["queue building: TTFT p50 0.60 s -> 3.40 s from the first to the last third of the step"],
        ),
        ([_step(1, trend={"early_p50_s": 0.05, "late_p50_s": 0.3, "per_third": 20})], 1, None),  # 6x, but within 0.5 s
        (
            [_step(1), _step(2, aborted="20 connection failures in a row: connection: refused")],
            1,
            ["aborted: 20 connection failures in a row: connection: refused"],
        ),
    ],
)
def test_knee_rules_on_recorded_steps(steps, expected, reasons):
    result = knee(steps, Slo())
    assert result.load == expected
    assert (result.failed_step.reasons if result.failed_step else None) == reasons


def test_a_closed_loop_cannot_build_a_queue():
    slower = {"early_p50_s": 0.6, "late_p50_s": 3.4, "per_third": 20}
    closed = [_step(c, trend=slower, mode="concurrency") for c in (1, 4)]
    assert knee(closed, Slo()).load == 4
    assert knee([_step(1), _step(2, trend=slower)], Slo()).load == 1  # the same trend, open loop


def test_a_step_without_a_measured_request_is_not_judged():
    result = knee([_step(0.5, requests=0, success=None), _step(2.0)], Slo())
    assert result.load == 2.0 and result.not_judged == [0.5]


def test_knee_names_the_failing_rule_in_one_line():
    result = knee([_step(0.5), _step(2.0, offered=1.98), _step(2.4, ttft95=6.1)], Slo())
    assert describe(result) == "knee 2 rps (offered 1.98 rps); 2.4 rps failed: TTFT p95 6.10 s > 5 s"
    closed = knee([_step(4, mode="concurrency")], Slo())
    assert describe(closed).startswith("knee 4 users")


def test_cost_per_million_tokens():
    step = StepResult("rate", 1.0, output_tok_s=2626.0, total_tok_s=50400.0)
    add_costs(step, 2.90, 8)
    assert step.usd_per_m_output_tokens == pytest.approx(2.90 * 8 * 1e6 / (3600 * 2626))
    assert step.usd_per_m_total_tokens == pytest.approx(2.90 * 8 * 1e6 / (3600 * 50400))


# -- exports --------------------------------------------------------------------------------------


def _bench_serving_result_keys(wheel, member: str) -> list[str]:
    with zipfile.ZipFile(wheel) as zf:
        tree = ast.parse(zf.read(member))
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Assign)
            and isinstance(node.value, ast.Dict)
            and any(isinstance(t, ast.Name) and t.id == "result" for t in node.targets)
        ):
            keys = [k.value for k in node.value.keys if isinstance(k, ast.Constant)]
            if "median_ttft_ms" in keys:
                return keys
    raise AssertionError(f"no bench_serving result dict in {member}")


@pytest.mark.network
@pytest.mark.parametrize(
    "version, member", [("0.5.14", "sglang/bench_serving.py"), ("0.5.23", "sglang/benchmark/serving.py")]
)
def test_bench_serving_export_has_exactly_the_bases_fields(version, member):
    from wafer_sglang.bench.client import Record

    wheels = [pinned_wheel(version)]

    record = Record(
        0,
        1.0,
        "measure",
        0.0,
        sent_s=0.1,
        ttft_s=0.2,
        e2e_s=1.0,
        chunk_gaps_s=[0.1, 0.2],
        prompt_tokens=10,
        completion_tokens=3,
    )
    step = StepResult("rate", 1.0)
    ours = export.bench_serving_result(step, [record], {"server": {"api": "completions", "info": {}}}, {}, 10.0)
    assert list(ours) == _bench_serving_result_keys(wheels[0], member)
    assert ours["max_concurrent_requests"] == 1 and ours["max_output_tokens_per_s"] == 3.0
    assert ours["median_tpot_ms"] == pytest.approx(400.0)


def test_inferencex_aggregates_per_gpu_and_interactivity():
    out = export.inferencex(
        StepResult("rate", 1.0, output_tok_s=2626.0, total_tok_s=50400.0, tpot_p50_s=0.02, ttft_p95_s=1.5), 8
    )
    assert out["output_tok_s_per_gpu"] == pytest.approx(328.25) and out["interactivity_tok_s_user"] == pytest.approx(
        50.0
    )
    assert out["ttft_p95_ms"] == 1500.0 and out["ttft_p50_ms"] is None


# -- prompts, URLs, credentials, arguments --------------------------------------------------------


class _Words:
    """A builder stand-in: only the group draw is under test."""

    def random_ids(self, n, rng=None):
        return [1] * n


def test_prefix_groups_are_drawn_at_random_not_round_robin():
    prompts = SweepPrompts(_Words(), 100, 0.6, 6, "nonce", seed=7)
    groups = [prompts.group_of(i) for i in range(600)]
    assert groups != [i % 6 for i in range(600)] and set(groups) == set(range(6))
    # three round-robin workers would each see every group (index % 6 gave each only two)
    assert all(len({g for i, g in enumerate(groups) if i % 3 == w}) == 6 for w in range(3))
    assert groups == [SweepPrompts(_Words(), 100, 0.6, 6, "other", seed=7).group_of(i) for i in range(600)]  # seeded


@pytest.mark.parametrize("url", ["http://h:1", "http://h:1/", "http://h:1/v1", "http://h:1/v1/"])
def test_both_url_spellings_mean_the_server(url):
    assert endpoint.base_url(url) == "http://h:1"


def test_credentials_from_the_environment_and_headers_and_never_in_the_command():
    assert endpoint.headers(None, [], {"OPENAI_API_KEY": "k1"}) == {"Authorization": "Bearer k1"}
    assert endpoint.headers("k2", ["X-Org=acme"], {"OPENAI_API_KEY": "k1"}) == {
        "X-Org": "acme",
        "Authorization": "Bearer k2",
    }
    assert endpoint.redact(["--api-key", "s1", "--header=Authorization=s2", "--header", "X=s3", "--url", "u"]) == [
        "--api-key",
        "***",
        "--header=***",
        "--header",
        "***",
        "--url",
        "u",
    ]


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--rates", "nan"], "finite number > 0"),
        (["--rates", "1,inf"], "finite number > 0"),
        (["--step-seconds", "inf"], "finite number > 0"),
        (["--rates", "-1"], "finite number > 0"),
        (["--max-concurrency", "1.5"], "whole numbers"),
        (["--rates", "1", "--max-concurrency", "2"], "not allowed with"),
        (["--num-prompts", "10", "--step-seconds", "5"], "not allowed with"),
        (["--num-prompts", "1.5"], "whole number"),
        (["--goodput", "ttft=500"], "expected KEY:MS with KEY one of ttft, tpot, e2el"),
        (["--goodput", "ttft:fast"], "ttft: expected milliseconds"),
        (["--goodput", "tpot:-1"], "tpot: expected milliseconds >= 0"),
    ],
)
def test_bad_numbers_are_refused_before_anything_runs(capsys, tmp_path, argv, message):
    with pytest.raises(SystemExit) as exc:
        run_cli(capsys, "bench", "sweep", "--url", "http://127.0.0.1:9", "--out", str(tmp_path / "o"), *argv)
    assert exc.value.code == 2 and message in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


def test_unknown_price_tier(capsys, tmp_path):
    rc, _, err = run_cli(
        capsys,
        "bench",
        "sweep",
        "--url",
        "http://127.0.0.1:9",
        "--tokenizer",
        "x",
        "--out",
        str(tmp_path),
        "--price-tier",
        "cheap/MI355X",
    )
    assert rc == 2 and "unknown price tier 'cheap/MI355X'" in err and "rental/MI355X" in err


def test_seed_reference_is_dated_and_sourced(capsys):
    rc, out, _ = run_cli(capsys, "bench", "compare", "--reference", "seed-mi355x", "--reference", "seed-b200")
    assert rc == 0 and "| 2.4 rps | 2626 | 328 | 0.81s / 2.22s | 100% |" in out and "| 3 rps | 3192 |" in out
    assert "as of 2026-07" in out
    rc, _, err = run_cli(capsys, "bench", "compare", "--reference", "nope")
    assert rc == 2 and "known: seed-mi355x" in err


@pytest.mark.parametrize("command", ["single", "sweep"])
def test_a_missing_bench_extra_is_named_not_an_internal_error(tmp_path, command):
    """bench.run imports aiohttp at module level: the extras check must come first."""
    import subprocess
    import sys

    code = (
        "import sys; sys.modules['aiohttp'] = None\n"  # `import aiohttp` now fails, as without the extra
        "from wafer_sglang.cli.main import main\n"
        f"sys.exit(main(['bench', '{command}', '--url', 'http://127.0.0.1:9', '--tokenizer', 'x', "
        f"'--out', r'{tmp_path / 'out'}']))"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and "the [bench] extra" in proc.stderr and "aiohttp" in proc.stderr, proc.stderr
    assert "internal error" not in proc.stderr and not (tmp_path / "out").exists()


def test_gpus_serving_follows_sglangs_parallelism():
    from wafer_sglang.bench.run import gpus_serving

    def info(**args):
        return {"/get_server_info": args}

    assert gpus_serving(info(tp_size=8, dp_size=1, pp_size=1)) == 8
    assert gpus_serving(info(tp_size=4, dp_size=2, pp_size=2)) == 16
    assert gpus_serving(info(tp_size=8, dp_size=8, enable_dp_attention=True)) == 8  # DP ranks inside the TP group
    assert gpus_serving({"/props": {"n_ctx": 8192}}) is None and gpus_serving(info(tp_size="x")) is None


@pytest.mark.parametrize(
    "before, now, done",
    [
        # sglang: the finished-request counter, never the (stale) running gauge
        ({}, {"sglang:num_running_reqs": 0.0}, False),
        ({"sglang:num_requests_total": 3.0}, {"sglang:num_requests_total": 3.0, "sglang:num_running_reqs": 0.0}, False),
        ({"sglang:num_requests_total": 3.0}, {"sglang:num_requests_total": 4.0, "sglang:num_running_reqs": 1.0}, True),
        ({}, {"sglang:num_requests_total": 1.0}, True),  # the counter appears with its first request
        # vLLM and llama.cpp: their live gauges
        ({}, {"vllm:num_requests_running": 1.0, "vllm:num_requests_waiting": 0.0}, False),
        ({}, {"vllm:num_requests_running": 0.0, "vllm:num_requests_waiting": 0.0}, True),
        ({}, {"llamacpp:requests_processing": 0.0, "llamacpp:requests_deferred": 1.0}, False),
        ({}, {"llamacpp:requests_processing": 0.0, "llamacpp:requests_deferred": 0.0}, True),
        ({}, {"other_total": 1.0}, True),  # nothing to wait on
        (None, None, True),  # no metrics
    ],
)
def test_when_a_server_is_done_with_the_preflight(before, now, done):
    from wafer_sglang.bench.preflight import done_with_preflight

    assert done_with_preflight(before, now) is done


# -- compare and plots ----------------------------------------------------------------------------

VLLM_RESULTS = ROOT / "test/fixtures/bench/vllm-bench-serve.json"


def test_compare_reads_vllm_bench_serve_results_and_names_workload_differences(capsys, tmp_path):
    from wafer_sglang.bench import compare

    (vllm,) = compare.load(VLLM_RESULTS, gpus=8)
    assert vllm.x_key == "target_rps" and [p["load"] for p in vllm.points] == [1.0, 2.0, 4.0]
    assert vllm.points[0]["output_tok_s_per_gpu"] == 980 / 8 and vllm.points[0]["interactivity_tok_s_user"] == 1000 / 21
    assert vllm.points[2]["success_rate"] == 238 / 240 and vllm.points[0]["ttft_p50_s"] == 0.31
    assert vllm.workload == {"input_len": 2000, "output_len": 1000, "cache_hit": None, "dataset": None}
    rc, out, err = run_cli(capsys, "bench", "compare", str(VLLM_RESULTS), "--gpus", "8", "--reference", "seed-mi355x")
    assert rc == 0 and "| vllm-example (vllm bench serve) | 4 rps | 3100 | 388 |" in out
    assert "warning: input_len differs: vllm-example (vllm bench serve) 2000; seed-mi355x" in err
    assert "output_len" not in err  # 1000 both
    assert "**Workloads differ" in out


def test_compare_reads_sglang_bench_serving_lines_with_their_gpus(tmp_path):
    from wafer_sglang.bench import compare
    from wafer_sglang.bench.client import Record

    record = Record(0, 1.0, "measure", 0.0, sent_s=0.1, ttft_s=0.2, e2e_s=1.0, chunk_gaps_s=[0.4], prompt_tokens=10)
    record.completion_tokens = 3
    rows = []
    for users in (4, 1):
        step = StepResult("concurrency", users)
        info = {"/get_server_info": {"tp_size": 4, "dp_size": 2}}
        workload = {"input_len": 300, "output_len": 24, "dataset": None}
        rows.append(
            export.bench_serving_result(step, [record], {"server": {"api": "chat", "info": info}}, workload, 10.0)
        )
    (tmp_path / "bench.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (series,) = compare.load(tmp_path / "bench.jsonl")
    assert series.x_key == "concurrency" and [p["load"] for p in series.points] == [1, 4]
    assert series.points[0]["output_tok_s_per_gpu"] == 0.3 / 8 and "(8 GPUs)" in series.source
    assert series.points[0]["interactivity_tok_s_user"] == pytest.approx(1000 / 400)
    assert series.workload["input_len"] == 300 and series.workload["dataset"] == "generated-shared-prefix"


@pytest.mark.parametrize(
    "text, message",
    [
        ('{"duration": 1.0}', "neither sglang bench_serving's fields"),
        ("not json", "not a bench sweep folder or a JSON results file"),
        ("", "no results in it"),
    ],
)
def test_compare_refuses_what_it_cannot_read(capsys, tmp_path, text, message):
    (tmp_path / "r.json").write_text(text)
    rc, _, err = run_cli(capsys, "bench", "compare", str(tmp_path / "r.json"))
    assert rc == 2 and message in err and "Traceback" not in err


def _summary(steps: list[StepResult]) -> SweepSummary:
    for s in steps:
        s.ttft_p50_s = s.ttft_p95_s / 2
    return SweepSummary(
        run={
            "server": {"model": "m" * 80, "url": "http://h:1"},
            "started": "2026-12-04",
            "client": {"wafer_sglang": "0"},
        },
        workload={"input_len": 300, "output_len": 24, "cache_hit_target": 0.6},
        definitions={},
        steps=steps,
        knee=knee(steps, Slo()),
    )


def test_run_plots_mark_the_knee_and_failures_draw_the_frontier_and_fit():
    from wafer_sglang.bench import plots, report

    steps = [_step(0.5), _step(1.0), _step(2.0), _step(4.0, ttft95=6.0)]
    per_gpu_user = [(100, 50), (90, 40), (180, 45), (200, 20)]  # 1.0 rps is dominated by 2.0 rps
    for s, (gpu, user) in zip(steps, per_gpu_user):
        s.inferencex = {"output_tok_s_per_gpu": gpu, "interactivity_tok_s_user": user}
    figs = report.figures(_summary(steps))
    assert {name: plots.outside(fig) for name, fig in figs.items()} == {name: [] for name in figs}
    (ax,) = figs["throughput.png"].axes
    knee = [c for c in ax.collections if c.get_label() == "knee"]
    assert len(knee) == 1 and list(knee[0].get_offsets()[0]) == [2.0, 100.0]
    assert [list(o) for c in ax.collections if c.get_label() == "failed step" for o in c.get_offsets()] == [
        [4.0, 100.0]
    ]
    (pareto,) = figs["pareto.png"].axes
    (line,) = pareto.lines
    assert list(zip(line.get_xdata(), line.get_ydata())) == [(45, 180), (50, 100)]  # the frontier, by interactivity
    assert {t.get_text() for t in pareto.texts} == {"0.50 rps", "1.00 rps", "2.00 rps", "4.00 rps"}
    legend_texts = [t.get_text() for t in figs["pareto.png"].legends[0].get_texts()]
    assert legend_texts == ["frontier of the sustained steps", "failed step"]


def test_compare_plots_keep_rps_and_users_apart_and_references_on_the_pareto(tmp_path):
    from wafer_sglang.bench import compare, plots

    (vllm,) = compare.load(VLLM_RESULTS, gpus=8)
    closed = compare.Series("closed", "x", "concurrency", [compare._point(4, 100.0, 0.1, 0.2, 1.0, 12.5, 30.0)])
    series = [vllm, closed, compare.load_reference("seed-mi355x"), compare.load_reference("seed-b200")]
    figs = compare.figures(series)
    assert {name: plots.outside(fig) for name, fig in figs.items()} == {name: [] for name in figs}
    rps, users = figs["compare_throughput.png"].axes
    assert "open loop" in rps.get_xlabel() and "closed loop" in users.get_xlabel()
    assert [line.get_label() for line in users.lines] == ["closed"]
    (pareto,) = figs["compare_pareto.png"].axes
    labels = [" ".join(t.get_text().split()) for t in figs["compare_pareto.png"].legends[0].get_texts()]
    assert any(label.startswith("seed-b200") and "399 tok/s/GPU at 3.00 rps" in label for label in labels)
    assert any(label.startswith("seed-mi355x") and "328 tok/s/GPU at 2.40 rps" in label for label in labels)


def test_goodput_counts_requests_as_vllm_does_and_feeds_the_knee():
    from wafer_sglang.bench.client import Record
    from wafer_sglang.bench.stats import within

    fast = Record(0, 1.0, "measure", 0.0, ttft_s=0.2, e2e_s=1.2, completion_tokens=11)  # TPOT 100 ms
    one = Record(1, 1.0, "measure", 0.0, ttft_s=0.2, e2e_s=0.2, completion_tokens=1)  # TPOT 0
    assert within(fast, {"ttft": 200, "tpot": 100}) and not within(fast, {"tpot": 99}) and within(one, {"tpot": 0})
    assert not within(fast, {"e2el": 1000})
    slo = Slo(goodput={"ttft": 500.0, "tpot": 50.0})
    steps = [_step(1, goodput_attainment=0.95), _step(2, goodput_attainment=0.85)]
    result = knee(steps, slo)
    assert result.load == 1
    assert result.failed_step.reasons == ["goodput: 85.0% of requests within ttft <= 500 ms, tpot <= 50 ms < 90%"]
    assert result.rules[-1] == "goodput: >= 90% of measured requests within ttft <= 500 ms, tpot <= 50 ms"
    assert knee(steps, Slo()).load == 2  # without --goodput, attainment is not a rule
    assert Slo(**result.slo) == slo  # summary.json's slo reads back


def test_the_vllm_export_has_exactly_vllm_bench_serves_keys():
    from wafer_sglang.bench.client import Record

    record = Record(0, 1.0, "measure", 0.0, sent_s=0.1, ttft_s=0.2, e2e_s=1.0, chunk_gaps_s=[0.4], prompt_tokens=10)
    record.completion_tokens = 3
    run = {"server": {"api": "chat", "model": "m", "info": {}}, "tag": "t", "tokenizer": "m", "arrival": "poisson"}
    step = StepResult("rate", 1.0, request_goodput=0.1)
    row = export.bench_serving_result(step, [record], run, {}, 10.0)
    ours = export.vllm_result(row, step, [record], run, "20261204-050000")
    (theirs, *_) = [json.loads(line) for line in VLLM_RESULTS.read_text().splitlines()]
    e2el = [f"{stat}_e2el_ms" for stat in ("mean", "median", "std", "p99")]  # --percentile-metrics ...,e2el
    assert list(ours) == list(theirs) + e2el
    assert ours["median_ttft_ms"] == row["median_ttft_ms"] == 200.0 and ours["request_goodput"] == 0.1
    assert ours["completed"] == 1 and ours["failed"] == 0 and ours["total_token_throughput"] == 1.3
    assert ours["median_e2el_ms"] == 1000.0


def test_the_inferencex_export_has_exactly_process_results_keys_and_values():
    from wafer_sglang.bench.client import Record

    record = Record(0, 1.0, "measure", 0.0, sent_s=0.1, ttft_s=0.2, e2e_s=1.0, chunk_gaps_s=[0.4], prompt_tokens=10)
    record.completion_tokens = 3
    run = {"server": {"api": "chat", "model": "m", "info": {}}, "tag": "t", "tokenizer": "m", "arrival": "poisson"}
    step = StepResult("concurrency", 4)
    vllm = export.vllm_result(export.bench_serving_result(step, [record], run, {}, 10.0), step, [record], run, "d")
    info = {"/get_server_info": {"tp_size": 8, "ep_size": 8, "enable_dp_attention": False, "quantization": "quark"}}
    info["/get_server_info"]["speculative_algorithm"] = "EAGLE"
    agg = export.inferencex_agg(vllm, info, {"input_len": 8000, "output_len": 1000}, 8)
    assert list(agg) == json.loads((ROOT / "test/fixtures/bench/inferencex-agg-keys.json").read_text())
    assert agg["tput_per_gpu"] == pytest.approx(1.3 / 8) and agg["output_tput_per_gpu"] == pytest.approx(0.3 / 8)
    assert agg["median_ttft"] == pytest.approx(0.2) and agg["median_intvty"] == pytest.approx(1000 / 400)
    said = (agg["conc"], agg["tp"], agg["dp_attention"], agg["spec_decoding"], agg["isl"])
    assert said == (4, 8, "false", "eagle", 8000)
    unknown = export.inferencex_agg(vllm, {}, {}, 8)  # not sglang: nothing is guessed
    assert unknown["framework"] is unknown["tp"] is unknown["spec_decoding"] is unknown["dp_attention"] is None


def test_num_prompts_draws_the_same_arrivals_ended_by_a_count():
    from wafer_sglang.bench.load import counted_arrivals

    offsets = counted_arrivals(2.0, 3.0, 50, "poisson", 7)
    warm = [o for o in offsets if o < 3.0]
    assert len(offsets) - len(warm) == 50 and warm  # the warm-up's arrivals, then exactly 50
    assert offsets == arrivals(2.0, offsets[-1] + 1e-9, "poisson", 7)  # the same draw
    assert len(counted_arrivals(0.5, 0.0, 3, "constant", 0)) == 3


@pytest.mark.parametrize(
    "summary, message",
    [
        ({"schema_version": 4, "steps": []}, "schema_version 4 is newer than this wafer-sglang reads (<= 3)"),
        ({"schema_version": 2, "kind": "single", "steps": []}, "a bench single result"),
        ({"schema_version": "3", "steps": []}, "not a bench summary (schema_version '3')"),
        ({"schema_version": 3, "run": {}}, "summary.json (schema 3) is damaged (KeyError: 'steps')"),
    ],
)
def test_compare_refuses_a_newer_schema_or_another_kind_by_name(capsys, tmp_path, summary, message):
    (tmp_path / "summary.json").write_text(json.dumps(summary))
    rc, _, err = run_cli(capsys, "bench", "compare", str(tmp_path))
    assert rc == 2 and message in err


def test_compare_reads_an_unversioned_summary_as_schema_1(tmp_path):
    from wafer_sglang.bench import compare

    old = _summary([_step(1.0), _step(2.0, ttft95=6.0)]).to_json()
    # as runs before schema 2 were written: no schema_version or kind, loads under the mode's key only
    old["run"]["tag"] = "old run"
    del old["schema_version"], old["kind"], old["knee"]["load"], old["knee"]["failed_step"]["load"]
    for step in old["steps"]:
        del step["load"]
    (tmp_path / "summary.json").write_text(json.dumps(old))
    series = compare.load_run(tmp_path)
    assert series.label == "old run" and [p["load"] for p in series.points] == [1.0, 2.0]
    assert series.knee == "knee 1 rps (offered 1.00 rps); 2 rps failed: TTFT p95 6.00 s > 5 s"


def test_a_summary_reads_back_as_it_was_written(tmp_path):
    """One writer, one reader: every field of a step, the knee and a single-stream run round-trip."""
    from dataclasses import replace

    from wafer_sglang.bench import results

    steps = [
        replace(_step(1.0, trend={"early_p50_s": 0.1, "late_p50_s": 0.2, "per_third": 5}), accept_length=2.5),
        _step(4.0, ttft95=6.0, mode="concurrency", per_server={"u": {"cache_hit": 0.5}}, checks=["x"]),
    ]
    written = _summary(steps)
    results.write(tmp_path, written)
    data = json.loads((tmp_path / "summary.json").read_text())
    assert data["schema_version"] == results.SCHEMA_VERSION == 3 and data["kind"] == "sweep"
    assert [(s["mode"], s["load"], s.get("target_rps"), s.get("concurrency")) for s in data["steps"]] == [
        ("rate", 1.0, 1.0, None),
        ("concurrency", 4.0, None, 4.0),
    ]
    assert "usd_per_m_output_tokens" not in data["steps"][0]  # written only with --price, as before
    assert results.read(tmp_path) == written
    single = results.SingleSummary({"tag": "t"}, {"runs": 1}, {}, [{"index": 0}], 80.0, 0.5, 1.0, "SIGTERM")
    results.write(tmp_path, single)
    assert results.read(tmp_path) == single and json.loads((tmp_path / "summary.json").read_text())["interrupted"]
