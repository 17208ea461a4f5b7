"""Results in the shapes users already compare against.

* ``bench_serving.jsonl``: one line per step with exactly the ``result`` fields of sglang's
  ``bench_serving`` (``sglang/bench_serving.py``, 0.5.14; ``sglang/benchmark/serving.py``, 0.5.23
  — the same 49 names), computed its way over the step's measured requests: ms percentiles with
  numpy, TPOT = (latency - TTFT) / (output - 1), concurrency = sum of latencies / duration, peak
  output tok/s and concurrent requests from per-second buckets. ``duration`` is the measured
  window; ``total_output_tokens_retokenized`` is the server's count (we do not retokenize).
* ``vllm_bench_serve.jsonl``: one line per step with exactly the keys ``vllm bench serve
  --save-result --append-result`` writes (``vllm/benchmarks/serve.py``, vllm-project/vllm
  009e6d4a; default ``--metric-percentiles 99``), so vLLM users' scripts read our steps as theirs.
  Its percentiles are the bench_serving line's (the same definitions); ``queue_times`` are 0 (no
  client-side queue: closed-loop users wait for their own answer).
  Its percentile metrics are ``ttft,tpot,itl,e2el``: InferenceX runs it so
  (``benchmarks/benchmark_lib.sh``), vLLM's default leaves e2el out.
* ``inferencex_agg.jsonl``: one line per step with exactly the keys of the ``agg_*.json`` that
  InferenceX's ``utils/process_result.py`` (SemiAnalysisAI/InferenceX 77f3e680, single node)
  makes of such a result: tok/s per GPU, every ``*_ms`` in seconds without the suffix, and
  ``*_intvty`` = 1000 / TPOT ms (tok/s per user). What it reads from its environment comes from
  the server's info where sglang says it (tp, ep, dp_attention, spec_decoding, precision) and is
  null where nothing here knows it (hw, image, infmax_model_prefix).
* ``inferencex`` in each summary step (our own names, read by the plots and compare): output and
  total tok/s per GPU, interactivity = 1000 / TPOT p50 in ms, ``*_ms`` percentiles.
"""

from __future__ import annotations

import numpy as np

from wafer_sglang.bench.client import Record
from wafer_sglang.bench.results import StepResult


def _ms(values: list[float]) -> dict[str, float]:
    data = np.asarray(values or [0.0], dtype=float) * 1000
    return {
        "mean": float(np.mean(data)),
        "median": float(np.median(data)),
        "std": float(np.std(data)),
        "p90": float(np.percentile(data, 90)),
        "p95": float(np.percentile(data, 95)),
        "p99": float(np.percentile(data, 99)),
    }


def _peaks(ok: list[Record]) -> tuple[float, int]:
    """bench_serving's peak output tok/s and concurrent requests (1 s buckets)."""
    if not ok:
        return 0.0, 0
    start = min(r.sent_s for r in ok)
    seconds = int(np.ceil(max(r.sent_s + r.e2e_s for r in ok) - start)) + 1
    tokens, concurrent = np.zeros(seconds), np.zeros(seconds)
    for r in ok:
        times = r.sent_s + r.ttft_s + np.concatenate([[0.0], np.cumsum(r.chunk_gaps_s)])
        np.add.at(tokens, np.clip((times - start).astype(int), 0, seconds - 1), 1)
        first, last = int(r.sent_s - start), int(r.sent_s + r.e2e_s - start)
        concurrent[first : min(last + 1, seconds)] += 1
    return float(tokens.max()), int(concurrent.max())


def bench_serving_result(step: StepResult, records: list[Record], run: dict, workload: dict, duration_s: float) -> dict:
    measured = [r for r in records if r.phase == "measure"]
    ok = [r for r in measured if r.ok]
    tpots = [r.tpot_s for r in ok if r.tpot_s is not None]
    total_in = sum(r.prompt_tokens or 0 for r in ok)
    total_out = sum(r.completion_tokens or 0 for r in ok)
    peak_tok_s, peak_concurrent = _peaks(ok)
    closed = step.closed
    result = {
        "tag": run.get("tag"),
        "backend": "sglang-oai-chat" if run["server"]["api"] == "chat" else "sglang-oai",
        "dataset_name": workload.get("dataset") or "generated-shared-prefix",
        "request_rate": float("inf") if closed else step.load,
        "max_concurrency": int(step.load) if closed else None,
        "sharegpt_output_len": None,
        "random_input_len": workload.get("input_len"),
        "random_output_len": workload.get("output_len"),
        "random_range_ratio": 0.0,
        "server_info": run["server"].get("info"),
        "duration": duration_s,
        "completed": len(ok),
        "total_input_tokens": total_in,
        "total_input_text_tokens": total_in,
        "total_input_vision_tokens": 0,
        "total_output_tokens": total_out,
        "total_output_tokens_retokenized": total_out,
        "request_throughput": len(ok) / duration_s,
        "input_throughput": total_in / duration_s,
        "output_throughput": total_out / duration_s,
        "total_throughput": (total_in + total_out) / duration_s,
    }
    for name, values in (
        ("e2e_latency", [r.e2e_s for r in ok]),
        ("ttft", [r.ttft_s for r in ok]),
        ("tpot", tpots),
        ("itl", [g for r in ok for g in r.chunk_gaps_s]),
    ):
        for stat, value in _ms(values).items():
            result[f"{stat}_{name}_ms"] = value
    result.update(
        {
            "concurrency": sum(r.e2e_s for r in ok) / duration_s,
            "accept_length": step.accept_length,
            "max_output_tokens_per_s": peak_tok_s,
            "max_concurrent_requests": peak_concurrent,
        }
    )
    return result


def inferencex(step: StepResult, gpus: int) -> dict:
    tpot = step.tpot_p50_s
    out = {
        "gpus": gpus,
        "output_tok_s_per_gpu": step.output_tok_s / gpus if step.output_tok_s is not None else None,
        "total_tok_s_per_gpu": step.total_tok_s / gpus if step.total_tok_s is not None else None,
        "interactivity_tok_s_user": 1000 / (tpot * 1000) if tpot else None,
    }
    for key in (
        "ttft_p50_s",
        "ttft_p95_s",
        "ttft_p99_s",
        "tpot_p50_s",
        "tpot_p95_s",
        "itl_p50_s",
        "itl_p95_s",
        "itl_p99_s",
        "e2e_p50_s",
        "e2e_p95_s",
    ):
        value = getattr(step, key)
        out[key.removesuffix("_s") + "_ms"] = value * 1000 if value is not None else None
    return out


# vllm bench serve --percentile-metrics: InferenceX's choice, its name -> bench_serving's
VLLM_PERCENTILE_METRICS = {"ttft": "ttft", "tpot": "tpot", "itl": "itl", "e2el": "e2e_latency"}


def vllm_result(row: dict, step: StepResult, records: list[Record], run: dict, started: str) -> dict:
    """The step as ``vllm bench serve`` writes a result, from its bench_serving line ``row``."""
    ok = [r for r in records if r.phase == "measure" and r.ok]
    measured = [r for r in records if r.phase == "measure"]
    backend = "openai-chat" if run["server"]["api"] == "chat" else "openai"
    closed = step.closed
    result = {
        "date": started,
        "endpoint_type": backend,
        "backend": backend,
        "label": run.get("tag"),
        "model_id": run["server"]["model"],
        "tokenizer_id": run.get("tokenizer"),
        "num_prompts": len(measured),
        "request_rate": "inf" if closed else step.load,
        "burstiness": 1.0 if run.get("arrival") == "poisson" and not closed else None,
        "max_concurrency": int(step.load) if closed else None,
        "duration": row["duration"],
        "completed": len(ok),
        "failed": len(measured) - len(ok),
        "total_input_tokens": row["total_input_tokens"],
        "total_output_tokens": row["total_output_tokens"],
        "request_throughput": row["request_throughput"],
        "request_goodput": step.request_goodput,
        "output_throughput": row["output_throughput"],
        "total_token_throughput": row["total_throughput"],
        "latencies": [r.e2e_s for r in ok],
        "queue_times": [0.0 for _ in ok],
        "max_output_tokens_per_s": row["max_output_tokens_per_s"],
        "max_concurrent_requests": row["max_concurrent_requests"],
        "rtfx": 0.0,
    }
    for name, ours in VLLM_PERCENTILE_METRICS.items():
        for stat in ("mean", "median", "std", "p99"):
            result[f"{stat}_{name}_ms"] = row[f"{stat}_{ours}_ms"]
    return result


def inferencex_agg(vllm: dict, info: dict, workload: dict, gpus: int) -> dict:
    """The step's vLLM-shaped result as InferenceX's process_result.py aggregates one (single node)."""
    args = info.get("/get_server_info") or {}
    total, output = vllm["total_token_throughput"], vllm["output_throughput"]
    spec = args.get("speculative_algorithm")
    data = {
        "hw": None,
        "conc": vllm["max_concurrency"],  # null for an open-loop step (InferenceX runs closed loops only)
        "image": None,
        "model": vllm["model_id"],
        "infmax_model_prefix": None,
        "framework": "sglang" if args else None,
        "precision": args.get("quantization"),
        "spec_decoding": (str(spec).lower() if spec else "none") if args else None,
        "disagg": False,
        "isl": workload.get("input_len"),
        "osl": workload.get("output_len"),
        "is_multinode": False,
        "tp": args.get("tp_size"),
        "ep": args.get("ep_size"),
        "dp_attention": str(bool(args.get("enable_dp_attention"))).lower() if args else None,  # its env's spelling
        "tput_per_gpu": total / gpus,
        "output_tput_per_gpu": output / gpus,
        "input_tput_per_gpu": (total - output) / gpus,
    }
    for key, value in vllm.items():  # its loop, its names
        if key.endswith("ms"):
            data[key.replace("_ms", "")] = value / 1000.0
        if "tpot" in key:
            data[key.replace("_ms", "").replace("tpot", "intvty")] = 1000.0 / value if value else None
    return data
