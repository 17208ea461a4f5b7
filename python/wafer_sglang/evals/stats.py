"""Scores, their standard errors and the baseline-vs-candidate comparison.

The stderr is lm-eval's own for a mean metric — sample standard deviation (ddof=1) over sqrt(n) —
taken over every sample a model answered, all seeds pooled (198 questions x 2 seeds: n = 396).
Baseline and candidate are independent runs, so the stderr of their difference is the root of the
summed squares; "within noise" is |delta| <= z * that, and the release gate fails a task whose
delta is below -(threshold + sigmas * that).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np


@dataclass(frozen=True)
class Score:
    mean: float
    stderr: float
    n: int


def score(values) -> Score:
    arr = np.asarray(values, dtype=float)
    if arr.size == 0:
        raise ValueError("no samples to score")
    stderr = float(arr.std(ddof=1) / math.sqrt(arr.size)) if arr.size > 1 else math.nan
    return Score(float(arr.mean()), stderr, int(arr.size))


@dataclass(frozen=True)
class Gate:
    threshold: float
    sigmas: float
    floor: float = 0.0  # a task where neither side scores above it gives no signal: it fails


@dataclass(frozen=True)
class Comparison:
    baseline: Score
    candidate: Score
    delta: float
    stderr: float
    z: float
    within_noise: bool
    gate_limit: float | None = None  # the lowest delta the gate accepts
    gate_passed: bool | None = None
    no_signal: bool | None = None  # neither side above the gate's floor (both at 0: a broken setup)

    def to_json(self) -> dict:
        return asdict(self)


def compare(baseline: Score, candidate: Score, *, z: float = 1.96, gate: Gate | None = None) -> Comparison:
    delta = candidate.mean - baseline.mean
    stderr = math.hypot(baseline.stderr, candidate.stderr)
    # A tolerance for float noise: 0.955 - 0.965 must not read as beyond a limit of -0.010.
    within = abs(delta) <= z * stderr + 1e-12
    if gate is None:
        return Comparison(baseline, candidate, delta, stderr, z, within)
    limit = -(gate.threshold + gate.sigmas * stderr)
    no_signal = max(baseline.mean, candidate.mean) <= gate.floor
    passed = delta >= limit - 1e-12 and not no_signal
    return Comparison(baseline, candidate, delta, stderr, z, within, limit, passed, no_signal)
