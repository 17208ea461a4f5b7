"""Driving lm-evaluation-harness: the task YAMLs, the exact command line, and reading what it wrote.

lm-eval runs as its own process (``python -m wafer_sglang.evals.lm_eval_cli run``: lm-eval's CLI)
with the hub switched off, so what we record is a command anyone can rerun, and its samples file is
where every score here comes from.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from wafer_sglang.errors import WaferError
from wafer_sglang.evals import redact
from wafer_sglang.evals.lm_eval_cli import HEADERS_ENV
from wafer_sglang.evals.tasks import Task

OFFLINE = {"HF_DATASETS_OFFLINE": "1", "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
API_PATHS = {
    "completions": ("local-completions", "/v1/completions"),
    "chat": ("local-chat-completions", "/v1/chat/completions"),
}


def version() -> str:
    try:
        return importlib.metadata.version("lm_eval")
    except importlib.metadata.PackageNotFoundError:
        raise WaferError("lm-eval is not installed: pip install 'wafer-sglang[eval]' (lm-eval[api])") from None


def builtin_tasks_dir() -> Path:
    spec = importlib.util.find_spec("lm_eval")
    if spec is None or not spec.submodule_search_locations:
        version()  # raises the install hint
    return Path(next(iter(spec.submodule_search_locations))) / "tasks"


def write_task_yaml(task: Task, folder: Path, data_files: dict[str, Path] | None) -> Path:
    """A task named wafer_<name>: lm-eval's own YAML, reading our JSONL files when given."""
    import yaml

    base = builtin_tasks_dir() / task.builtin
    if not base.is_file():
        raise WaferError(f"lm-eval {version()} has no {task.builtin}; this tool is pinned to lm-eval's task layout")
    spec: dict = {"include": str(base), "task": task.lm_eval_name}
    if data_files:
        spec |= {
            "dataset_path": "json",
            "dataset_name": None,
            "dataset_kwargs": {"data_files": {split: str(path) for split, path in data_files.items()}},
        }
    path = folder / f"{task.lm_eval_name}.yaml"
    folder.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    return path


@dataclass(frozen=True)
class Settings:
    api: str = "completions"
    concurrency: int = 32
    timeout_s: int = 3600
    limit: int | None = None  # overrides each task's reference limit
    max_gen_toks: int | None = None  # overrides each task's default


def credentials(headers: Mapping[str, str]) -> dict[str, str]:
    """lm-eval's environment for the request headers: a bearer token alone is OPENAI_API_KEY, which
    its local backends send; any other header set goes whole through lm_eval_cli."""
    auth = headers.get("Authorization", "")
    if not headers:
        return {}
    if set(headers) == {"Authorization"} and auth.startswith("Bearer "):
        return {"OPENAI_API_KEY": auth.removeprefix("Bearer ")}
    return {HEADERS_ENV: json.dumps(dict(headers))}


def command(
    task: Task,
    seed: int,
    *,
    url: str,
    model: str,
    settings: Settings,
    task_dir: Path,
    out: Path,
    env: Mapping[str, str] | None = None,
) -> list[str]:
    """lm-eval's command line; ``env`` is what ``credentials`` gave (it chooses the entry point)."""
    backend, path = API_PATHS[settings.api]
    if any(c in model for c in ",="):
        raise WaferError(f"model name {model!r} contains ',' or '=', which lm-eval's --model_args cannot carry")
    model_args = ",".join(
        f"{k}={v}"
        for k, v in {
            "model": model,
            "base_url": url.rstrip("/") + path,
            "tokenizer_backend": "None",
            "tokenized_requests": "False",
            "num_concurrent": settings.concurrency,
            "max_retries": 3,
            "timeout": settings.timeout_s,
            "seed": seed,  # the request's sampling seed; --seed below seeds lm-eval (choice order, few-shot picks)
        }.items()
    )
    gen = {
        "do_sample": task.temperature > 0,
        "temperature": task.temperature,
        "max_gen_toks": settings.max_gen_toks or task.max_gen_toks,
    }
    cmd = [
        sys.executable,
        "-m",
        "wafer_sglang.evals.lm_eval_cli",  # lm-eval's CLI, our tasks alone indexed (its docstring)
        "run",
        "--model",
        backend,
        "--model_args",
        model_args,
        "--tasks",
        task.lm_eval_name,
        "--include_path",
        str(task_dir),
        "--num_fewshot",
        str(task.num_fewshot),
        "--gen_kwargs",
        ",".join(f"{k}={v}" for k, v in gen.items()),
        "--seed",
        str(seed),
        "--output_path",
        str(out),
        "--log_samples",
    ]
    limit = settings.limit if settings.limit is not None else task.limit
    if limit is not None:
        cmd += ["--limit", str(limit)]
    if settings.api == "chat":
        cmd += ["--apply_chat_template"]
    return cmd


class Stopped(WaferError):
    """lm-eval was terminated because the eval as a whole is stopping."""


@dataclass(frozen=True)
class RunOutput:
    samples: list[dict]  # lm-eval's per-sample rows, every filter
    results: dict  # lm-eval's results.json


PROGRESS = re.compile(rb"Requesting API:\s+\d+%\|[^|]*\|\s*(\d+)/(\d+)")


def progress(log: Path) -> tuple[int, int] | None:
    """(done, total) from the last "Requesting API: ... 90/200" progress bar lm-eval wrote."""
    try:
        with log.open("rb") as fh:
            fh.seek(max(0, log.stat().st_size - 4096))
            found = PROGRESS.findall(fh.read())
    except OSError:
        return None
    return (int(found[-1][0]), int(found[-1][1])) if found else None


def run(
    cmd: list[str],
    out: Path,
    stop: threading.Event,
    env: dict[str, str] | None = None,
    report: Callable[[tuple[int, int]], None] | None = None,
    secrets: list[str] = (),
) -> RunOutput:
    """Run lm-eval into a fresh ``out``; its log is kept there; a failure quotes the log's end.
    Setting ``stop`` (the other endpoint failed, Ctrl-C, SIGTERM) terminates it. ``env`` adds to
    its environment (credentials: never on the command line, which is recorded, and masked in
    everything the run writes, with ``secrets``); ``report`` hears its progress."""
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    (out / "command.json").write_text(json.dumps(cmd, indent=1) + "\n")
    log = out / "lm_eval.log"
    secrets = [*secrets, *(env or {}).values()]
    try:
        returncode = _supervise(cmd, log, stop, env, secrets, report)
    finally:
        redact.scrub_tree(out, secrets)
    if returncode != 0:
        lines = log.read_text(errors="replace").splitlines()
        answer = next(
            (line.split("API request failed! ", 1)[1] for line in reversed(lines) if "API request failed! " in line),
            None,
        )
        said = f"\nthe server's last answer: {answer[:300]}" if answer else ""
        tail = "\n".join(lines[-25:])
        raise WaferError(f"lm-eval failed (exit {returncode}); its log is {log}{said}\nlast lines:\n{tail}")
    return read_output(out)


def _supervise(cmd, log: Path, stop: threading.Event, env, secrets: list[str], report) -> int:
    """lm-eval's output goes to ``log`` through a redacting pump; its exit code."""
    shown = None
    with log.open("wb") as fh:
        proc = subprocess.Popen(
            cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env={**os.environ, **OFFLINE, **(env or {})}
        )
        pump = threading.Thread(
            target=redact.pump, args=(proc.stdout.fileno(), redact.RedactingSink(fh, secrets)), daemon=True
        )
        pump.start()
        try:
            while proc.poll() is None:
                if stop.wait(0.5):
                    proc.terminate()
                    try:
                        proc.wait(timeout=10)
                    except subprocess.TimeoutExpired:
                        proc.kill()
                        proc.wait()
                    raise Stopped(f"lm-eval stopped before it finished; its log is {log}")
                now = progress(log)
                if report and now and now != shown:
                    shown = now
                    report(now)
        finally:
            pump.join(timeout=30)  # the pipe closes with lm-eval (and any child holding it)
            proc.stdout.close()
    return proc.returncode


def read_output(out: Path) -> RunOutput:
    results = sorted(out.rglob("results_*.json"))
    samples = sorted(out.rglob("samples_*.jsonl"))
    if len(results) != 1 or len(samples) != 1:
        raise WaferError(
            f"expected one results and one samples file from lm-eval under {out}, found "
            f"{len(results)} and {len(samples)}"
        )
    rows = [json.loads(line) for line in samples[0].read_text().splitlines() if line.strip()]
    return RunOutput(rows, json.loads(results[0].read_text()))


def metric_values(output: RunOutput, filter_name: str, metric: str = "exact_match") -> list[float]:
    values = [float(row[metric]) for row in output.samples if row.get("filter") == filter_name]
    if not values:
        filters = sorted({row.get("filter") for row in output.samples})
        raise WaferError(f"lm-eval wrote no {metric} samples for filter {filter_name!r} (it has {filters})")
    return values


CACHE_PROBE = "import sys, datasets; datasets.load_dataset(sys.argv[1], sys.argv[2], split=sys.argv[3])"


def check_cached(task: Task) -> None:
    """Without --data-dir, lm-eval reads the HF datasets cache; find out now, not an hour in."""
    path, name = task.hub
    for split in task.splits:
        proc = subprocess.run(
            [sys.executable, "-c", CACHE_PROBE, path, name, split],
            capture_output=True,
            text=True,
            env={**os.environ, **OFFLINE},
        )
        if proc.returncode != 0:
            last = (proc.stderr.strip().splitlines() or ["(no output)"])[-1]
            raise WaferError(
                f"{task.name}: {path}/{name} split {split} is not in the offline Hugging Face cache "
                f"({last}). On a connected machine run `wafer-sglang eval prepare --data-dir DIR`, copy DIR "
                "here and pass --data-dir DIR (or fill the cache HF_HOME points at)."
            )
