"""``wafer-sglang eval``: the same lm-eval tasks against a baseline and a candidate endpoint, both at
once (they are separate servers), then the side-by-side comparison and the release gate."""

from __future__ import annotations

import hashlib
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path

import requests

from wafer_sglang.errors import WaferError
from wafer_sglang.evals import lmeval, redact
from wafer_sglang.evals.acceptance import Acceptance, Window
from wafer_sglang.evals.stats import Gate, Score, score
from wafer_sglang.evals.tasks import Task, check_dataset

ROLES = ("baseline", "candidate")


@dataclass(frozen=True)
class Endpoint:
    role: str
    url: str
    model: str
    log: Path | None = None
    headers: dict[str, str] = field(default_factory=dict, repr=False)  # to lm-eval by environment, never argv


@dataclass
class Options:
    endpoints: dict[str, Endpoint]
    tasks: list[Task]
    out: Path
    settings: lmeval.Settings = field(default_factory=lmeval.Settings)
    seeds: tuple[int, ...] | None = None  # overrides each task's
    data_dir: Path | None = None  # None: the offline HF cache
    z: float = 1.96
    gate: Gate | None = None
    sequential: bool = False


@dataclass
class TaskRun:
    """One task on one endpoint, all seeds."""

    score: Score
    per_seed: list[dict]  # lm-eval's own figures, to cross-check ours
    acceptance: Acceptance | None
    commands: list[list[str]]


def model_name(url: str, session: requests.Session, role: str, headers: dict[str, str] | None = None) -> str:
    """Ask the endpoint what it serves; failing here is the clear error, not an hour of retries later."""
    models_url = url.rstrip("/") + "/v1/models"
    try:
        response = session.get(models_url, timeout=15, headers=headers)
    except requests.RequestException as exc:
        raise WaferError(
            f"{role} endpoint {url} is unreachable ({type(exc).__name__}: {exc}); is the server up "
            "and the URL its base (http://host:port or http://host:port/v1)?"
        ) from None
    if response.status_code in (401, 403):
        raise WaferError(
            f"{role} endpoint {url}: GET /v1/models returned HTTP {response.status_code}: it wants a key "
            "(--api-key KEY or OPENAI_API_KEY)"
        )
    if response.status_code != 200:
        raise WaferError(
            f"{role} endpoint {url}: GET /v1/models returned HTTP {response.status_code}: {response.text[:200]}"
        )
    try:
        return response.json()["data"][0]["id"]
    except (ValueError, KeyError, IndexError, TypeError):
        raise WaferError(f"{role} endpoint {url}: /v1/models lists no model; pass --{role}-model") from None


def seeds_for(task: Task, opts: Options) -> tuple[int, ...]:
    return opts.seeds or task.seeds


def prepare_tasks(opts: Options) -> tuple[Path, dict[str, dict]]:
    """The wrapper YAMLs lm-eval loads and what each reads: every dataset is checked before
    anything is written or any server is asked."""
    files, data = {}, {}
    for task in opts.tasks:
        if opts.data_dir:
            files[task.name] = check_dataset(opts.data_dir, task)
            data[task.name] = {
                split: {"path": str(p), "sha256": hashlib.sha256(p.read_bytes()).hexdigest()}
                for split, p in files[task.name].items()
            }
        else:
            lmeval.check_cached(task)
            data[task.name] = {"hf_cache": "/".join(task.hub)}
    task_dir = opts.out / "lm_eval_tasks"
    for task in opts.tasks:
        lmeval.write_task_yaml(task, task_dir, files.get(task.name))
    return task_dir, data


def run_endpoint(endpoint: Endpoint, opts: Options, task_dir: Path, stop: threading.Event) -> dict[str, TaskRun]:
    runs = {}
    with requests.Session() as session:
        session.headers.update(endpoint.headers)  # the /metrics scrapes too
        env = lmeval.credentials(endpoint.headers)
        for task in opts.tasks:
            window = Window(endpoint.url, endpoint.log, session)
            values, per_seed, commands = [], [], []
            for seed in seeds_for(task, opts):
                out = opts.out / "runs" / endpoint.role / task.name / f"seed{seed}"
                cmd = lmeval.command(
                    task,
                    seed,
                    url=endpoint.url,
                    model=endpoint.model,
                    settings=opts.settings,
                    task_dir=task_dir,
                    out=out,
                    env=env,
                )
                started = time.monotonic()
                label = f"{endpoint.role}: {task.name} seed {seed}"
                print(f"{label}: lm-eval running; log {out / 'lm_eval.log'}", file=sys.stderr, flush=True)
                output = lmeval.run(
                    cmd,
                    out,
                    stop,
                    env=env,
                    secrets=redact.header_secrets(endpoint.headers),
                    report=lambda p, label=label: print(
                        f"{label}: {p[0]}/{p[1]} requests done", file=sys.stderr, flush=True
                    ),
                )
                seed_values = lmeval.metric_values(output, task.filter)
                reported = output.results["results"][task.lm_eval_name]
                per_seed.append(
                    {
                        "seed": seed,
                        "n": len(seed_values),
                        "exact_match": reported[f"exact_match,{task.filter}"],
                        "exact_match_stderr": reported[f"exact_match_stderr,{task.filter}"],
                        "seconds": round(time.monotonic() - started, 1),
                        "output": str(out),
                    }
                )
                values += seed_values
                commands.append(cmd)
                print(
                    f"{endpoint.role}: {task.name} seed {seed}: exact_match "
                    f"{reported[f'exact_match,{task.filter}']:.4f} "
                    f"({len(seed_values)} samples, {per_seed[-1]['seconds']:.0f} s)",
                    file=sys.stderr,
                )
            runs[task.name] = TaskRun(score(values), per_seed, window.close(), commands)
    return runs


def evaluate(opts: Options) -> tuple[dict[str, dict[str, TaskRun]], dict[str, dict]]:
    """Every task on both endpoints; the first failure stops the other endpoint's lm-eval too."""
    task_dir, data = prepare_tasks(opts)
    stop = threading.Event()
    parallel = not opts.sequential and opts.endpoints["baseline"].url != opts.endpoints["candidate"].url
    with ThreadPoolExecutor(max_workers=2 if parallel else 1) as pool:
        futures = {role: pool.submit(_guarded, opts.endpoints[role], opts, task_dir, stop) for role in ROLES}
        try:
            wait(futures.values())
        except BaseException:  # Ctrl-C: terminate both lm-evals
            stop.set()
            raise
    errors = [f.exception() for f in futures.values() if f.exception()]
    if errors:  # the failure itself, not the other side's "stopped"
        raise next((e for e in errors if not isinstance(e, lmeval.Stopped)), errors[0])
    return {role: f.result() for role, f in futures.items()}, data


def _guarded(endpoint: Endpoint, opts: Options, task_dir: Path, stop: threading.Event) -> dict[str, TaskRun]:
    if stop.is_set():
        raise lmeval.Stopped("stopped: the other endpoint's eval failed")
    try:
        return run_endpoint(endpoint, opts, task_dir, stop)
    except BaseException:
        stop.set()
        raise
