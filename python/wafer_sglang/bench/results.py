"""``summary.json``: a sweep's steps and knee, or a single-stream run, as types, with the one
writer and the one reader (``bench compare`` reads through it).

``schema_version`` (users may check it):

1. unversioned: the first sweeps;
2. adds ``schema_version``, ``kind`` (``sweep`` | ``single``), ``workload.num_prompts`` and the
   steps' goodput fields;
3. each step, the knee and its failed step also give their load as ``load`` beside ``mode``
   (``rate`` | ``concurrency``); the per-mode key (``target_rps`` / ``concurrency``) of 1 and 2
   is still written for the scripts that read it.

``read`` takes 1 to 3 and refuses a newer version, or a file that is not a summary, by name.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

from wafer_sglang.errors import WaferError
from wafer_sglang.fsutil import atomic_write_text

SCHEMA_VERSION = 3
LOAD_KEYS = {"rate": "target_rps", "concurrency": "concurrency"}  # mode -> its load's key in 1 and 2


def _mode_of(data: dict) -> str:
    """A step's or knee's mode; a knee of 1/2 says it only by which load key it has."""
    return data.get("mode") or ("concurrency" if "concurrency" in data else "rate")


def _load_in(data: dict, mode: str) -> float | None:
    return data["load"] if "load" in data else data.get(LOAD_KEYS[mode])


def _with_load(mode: str, load: float | None, rest: dict) -> dict:
    return {LOAD_KEYS[mode]: load, "load": load, **rest}


@dataclass
class StepResult:
    """One load step's figures (stats.step_stats, then the server's counters and exports)."""

    mode: str  # "rate" (open loop) | "concurrency" (closed loop)
    load: float  # target requests/s, or users
    offered_rps: float | None = None
    requests: int = 0
    succeeded: int = 0
    success_rate: float | None = None
    failures: dict[str, int] = field(default_factory=dict)
    aborted: str | None = None  # why the step ended early
    refused: bool = False
    drain_s: float = 0.0
    ttft_p50_s: float | None = None
    ttft_p95_s: float | None = None
    ttft_p99_s: float | None = None
    ttft_trend: dict | None = None  # early_p50_s, late_p50_s, per_third
    tpot_mean_s: float | None = None
    tpot_p50_s: float | None = None
    tpot_p95_s: float | None = None
    itl_p50_s: float | None = None
    itl_p95_s: float | None = None
    itl_p99_s: float | None = None
    e2e_p50_s: float | None = None
    e2e_p95_s: float | None = None
    input_tok_s: float | None = None
    output_tok_s: float | None = None
    total_tok_s: float | None = None
    output_tokens_per_request: float | None = None
    output_tokens_requested: int | None = None
    prompt_tokens_server_minus_client: float | None = None
    cache_hit_target: float | None = None
    cache_hit_client: float | None = None
    cache_hit_server: float | None = None
    prefix_group_requests: dict[str, int] = field(default_factory=dict)
    send_lateness_p99_s: float | None = None
    request_goodput: float | None = None  # --goodput only
    goodput_attainment: float | None = None  # --goodput only
    checks: list[str] = field(default_factory=list)
    metrics_family: str | None = None  # the servers' counters over the window (prom.window)
    accept_length: float | None = None
    per_server: dict | None = None  # more than one metrics URL
    primers_per_server: dict | None = None
    inferencex: dict | None = None
    usd_per_m_output_tokens: float | None = None  # --price only
    usd_per_m_total_tokens: float | None = None
    interrupted: bool = False

    # written only when set, as before schema 3
    OPTIONAL = frozenset(
        {
            "request_goodput",
            "goodput_attainment",
            "metrics_family",
            "accept_length",
            "per_server",
            "primers_per_server",
            "usd_per_m_output_tokens",
            "usd_per_m_total_tokens",
        }
    )

    @property
    def closed(self) -> bool:
        return self.mode == "concurrency"

    def to_json(self) -> dict:
        rest = {k: v for k, v in asdict(self).items() if k not in ("mode", "load")}
        rest = {k: v for k, v in rest.items() if v is not None or k not in self.OPTIONAL}
        return {"mode": self.mode, **_with_load(self.mode, self.load, rest)}

    @classmethod
    def from_json(cls, data: dict) -> StepResult:
        mode = _mode_of(data)
        known = {f.name for f in fields(cls)} - {"mode", "load"}
        return cls(mode=mode, load=_load_in(data, mode), **{k: v for k, v in data.items() if k in known})


@dataclass
class FailedStep:
    mode: str
    load: float
    offered_rps: float | None
    reasons: list[str]

    def to_json(self) -> dict:
        return _with_load(self.mode, self.load, {"offered_rps": self.offered_rps, "reasons": self.reasons})

    @classmethod
    def from_json(cls, data: dict) -> FailedStep:
        mode = _mode_of(data)
        return cls(mode, _load_in(data, mode), data.get("offered_rps"), list(data.get("reasons") or []))


@dataclass
class Knee:
    """The highest load sustained with every lower one (knee.knee); ``load`` None: none was."""

    mode: str
    load: float | None
    offered_rps: float | None = None
    output_tok_s: float | None = None
    failed_step: FailedStep | None = None
    not_judged: list[float] = field(default_factory=list)
    rules: list[str] = field(default_factory=list)
    slo: dict = field(default_factory=dict)  # knee.Slo's fields

    def to_json(self) -> dict:
        return _with_load(
            self.mode,
            self.load,
            {
                "offered_rps": self.offered_rps,
                "output_tok_s": self.output_tok_s,
                "failed_step": self.failed_step.to_json() if self.failed_step else None,
                "not_judged": self.not_judged,
                "rules": self.rules,
                "slo": self.slo,
            },
        )

    @classmethod
    def from_json(cls, data: dict) -> Knee:
        mode = _mode_of(data)
        failed = data.get("failed_step")
        return cls(
            mode,
            _load_in(data, mode),
            data.get("offered_rps"),
            data.get("output_tok_s"),
            FailedStep.from_json(failed) if failed else None,
            list(data.get("not_judged") or []),
            list(data.get("rules") or []),
            dict(data.get("slo") or {}),
        )


@dataclass
class SweepSummary:
    run: dict  # server, client, tokenizer, seed, started, command, tag
    workload: dict
    definitions: dict
    steps: list[StepResult]
    knee: Knee
    interrupted_by: str | None = None  # SIGINT / SIGTERM
    cost: dict | None = None  # --price
    kind: str = "sweep"
    schema_version: int = SCHEMA_VERSION

    def to_json(self) -> dict:
        out = {
            "schema_version": self.schema_version,
            "kind": self.kind,
            "run": self.run,
            "workload": self.workload,
            "definitions": self.definitions,
            "steps": [s.to_json() for s in self.steps],
            "knee": self.knee.to_json(),
            "interrupted_by": self.interrupted_by,
        }
        if self.cost is not None:
            out["cost"] = self.cost
        return out

    @classmethod
    def from_json(cls, data: dict) -> SweepSummary:
        steps = [StepResult.from_json(s) for s in data["steps"]]
        knee = Knee.from_json(data.get("knee") or {"mode": steps[0].mode if steps else "rate"})
        return cls(
            data["run"],
            data["workload"],
            data.get("definitions") or {},
            steps,
            knee,
            data.get("interrupted_by"),
            data.get("cost"),
            schema_version=data.get("schema_version", 1),
        )


@dataclass
class SingleSummary:
    """``bench single``: one request at a time, output speed after the first chunk."""

    run: dict
    workload: dict  # input_len, output_len, runs
    definitions: dict
    runs: list[dict]  # index, output_speed_tok_s, ttft_s, e2e_s, completion_tokens, prompt_tokens, error
    median_output_speed_tok_s: float | None
    median_ttft_s: float | None
    success_rate: float | None
    interrupted_by: str | None = None
    kind: str = "single"
    schema_version: int = SCHEMA_VERSION

    @property
    def interrupted(self) -> bool:
        return self.interrupted_by is not None

    def to_json(self) -> dict:
        data = asdict(self)
        head = {"schema_version": data.pop("schema_version"), "kind": data.pop("kind")}
        tail = {"interrupted": self.interrupted, "interrupted_by": data.pop("interrupted_by")}
        return {**head, **data, **tail}

    @classmethod
    def from_json(cls, data: dict) -> SingleSummary:
        known = {f.name for f in fields(cls)} - {"kind"}
        return cls(**{k: v for k, v in data.items() if k in known})


Summary = SweepSummary | SingleSummary


def write(folder: Path, summary: Summary) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    atomic_write_text(folder / "summary.json", json.dumps(summary.to_json(), indent=2) + "\n")


def read(folder: Path, kind: str | None = None) -> Summary:
    """A run folder's summary.json, of any version up to SCHEMA_VERSION (``kind``: only that kind)."""
    path = folder / "summary.json"
    try:
        data = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise WaferError(f"{folder}: not a bench {kind or 'run'} output ({type(exc).__name__}: {exc})") from None
    version = data.get("schema_version", 1) if isinstance(data, dict) else None
    if not isinstance(version, int):
        raise WaferError(f"{path}: not a bench summary (schema_version {version!r})")
    if version > SCHEMA_VERSION:
        raise WaferError(
            f"{folder}: summary.json schema_version {version} is newer than this wafer-sglang reads "
            f"(<= {SCHEMA_VERSION}): upgrade wafer-sglang to read it"
        )
    found = data.get("kind", "sweep")
    if kind and found != kind:
        raise WaferError(f"{folder}: a bench {found} result, where a {kind} is needed")
    try:
        return (SingleSummary if found == "single" else SweepSummary).from_json(data)
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise WaferError(
            f"{folder}: summary.json (schema {version}) is damaged ({type(exc).__name__}: {exc})"
        ) from None
