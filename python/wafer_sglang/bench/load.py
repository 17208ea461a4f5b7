"""Load for one step: open loop (arrivals on absolute timestamps) or closed loop (a fixed number
of users, each sending its next request when the last one ends); warm-up by start time; drain
with a timeout; stop at once on Ctrl-C or after N connection failures in a row.

Open loop: requests are launched at ``t0 + offset`` whatever the server does: a slow server gets
a growing queue, not fewer requests. Sleeping until an absolute time keeps scheduling error from
accumulating (relative sleeps drifted 183 vs 200 QPS in one tool). Closed loop is how InferenceX
and most vendor numbers are made (``--max-concurrency``).
"""

from __future__ import annotations

import asyncio
import math
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from wafer_sglang.bench.client import CANCELLED, Endpoint, Record, stream

MakeRequest = Callable[[int, str, float], tuple[Record, str]]  # (index, phase, offset) -> record, prompt


def arrivals(rate: float, duration_s: float, pattern: str, seed: int) -> list[float]:
    """Send offsets in [0, duration): Poisson (exponential gaps) or constant spacing."""
    if rate <= 0:
        return []
    if pattern == "constant":
        return [i / rate for i in range(int(duration_s * rate))]
    rng, offsets, t = random.Random(seed), [], 0.0
    while True:
        t += rng.expovariate(rate)
        if t >= duration_s:
            return offsets
        offsets.append(t)


def counted_arrivals(rate: float, warmup_s: float, count: int, pattern: str, seed: int) -> list[float]:
    """The warm-up's arrivals, then exactly ``count`` more: the same draw as ``arrivals``,
    ended by a count (``--num-prompts``) instead of a duration."""
    horizon = warmup_s + (count + 10) / rate
    while True:
        offsets = arrivals(rate, horizon, pattern, seed)
        warm = [o for o in offsets if o < warmup_s]
        if len(offsets) - len(warm) >= count:
            return offsets[: len(warm) + count]
        horizon *= 2


@dataclass
class Step:
    load: float  # requests/s (open loop) or concurrent users (closed loop)
    closed: bool
    duration_s: float  # ignored when ``count`` is set
    warmup_s: float
    drain_s: float
    pattern: str = "poisson"
    seed: int = 0
    fail_after: int = 20  # consecutive connection failures, or refusals (HTTP 4xx), that end the step
    count: int | None = None  # measured requests per step (--num-prompts) instead of a duration


@dataclass
class StepRun:
    records: list[Record] = field(default_factory=list)
    aborted: str | None = None  # why the step ended early (not the user)
    refused: bool = False  # ended by refusals: every later step would be refused too
    t0: float = 0.0
    end_s: float = 0.0  # the arrivals' end, from t0
    last_done_s: float | None = None  # when the last request finished, from t0
    timers: list = field(default_factory=list)  # open loop: pending releases
    users: list = field(default_factory=list)  # closed loop: the user tasks


class _Watch:
    """Consecutive connection failures (the server is gone) or refusals (HTTP 4xx: the server
    will not take these requests): the step stops."""

    def __init__(self, run: StepRun, limit: int, abort: asyncio.Event):
        self.run, self.limit, self.abort = run, limit, abort
        self.failed = self.refused = 0

    def done(self, record: Record) -> None:
        now = time.perf_counter() - self.run.t0
        self.run.last_done_s = max(self.run.last_done_s or 0.0, now)
        self.failed = self.failed + 1 if (record.error or "").startswith("connection") else 0
        self.refused = self.refused + 1 if record.status is not None and 400 <= record.status < 500 else 0
        if not self.limit or self.abort.is_set():
            return
        if self.failed >= self.limit:
            self.run.aborted = f"{self.failed} connection failures in a row: {record.error}"
        elif self.refused >= self.limit:
            self.run.aborted = f"{self.refused} requests refused in a row: {record.error}"
            self.run.refused = True
        else:
            return
        self.abort.set()


async def run_step(
    client,
    endpoint: Endpoint,
    step: Step,
    make_request: MakeRequest,
    stop: asyncio.Event,
    progress: Callable[[StepRun], None] | None = None,
    on_window_start: Callable[[], None] | None = None,
) -> StepRun:
    run, abort = StepRun(), asyncio.Event()
    watch = _Watch(run, step.fail_after, abort)
    tasks: list[asyncio.Task] = []
    if step.closed:
        await _closed(client, endpoint, step, make_request, run, watch, tasks, on_window_start)
    else:
        _open(client, endpoint, step, make_request, run, watch, tasks, on_window_start)
    halt = _either(stop, abort)
    try:
        await _until(halt, run, progress)
        _cancel_timers(run)
        await _drain(tasks, run.t0 + run.end_s + step.drain_s, halt, run, progress)
    finally:
        _cancel_timers(run)
        halt.cancel()
    for record, task in zip(run.records, tasks):
        if not task.done():
            task.cancel()
            record.error = (
                CANCELLED
                if stop.is_set()
                else f"aborted: {run.aborted}"
                if run.aborted
                else f"unfinished after the {step.drain_s:g} s drain"
            )
    await asyncio.gather(*tasks, return_exceptions=True)
    for record in run.records:  # a task that died some other way still ends as a failure
        if record.error is None and record.e2e_s is None:
            record.error = "client: the request ended without a result"
    return run


def _open(
    client, endpoint, step: Step, make_request: MakeRequest, run: StepRun, watch: _Watch, tasks: list, on_window_start
) -> None:
    """Each arrival is a ``call_at`` timer: the loop runs due timers in the same iteration it
    finds them due, so a loop busy with streams delays a release by little; the release time
    is the request's ``sent_s`` and the origin of its TTFT and end-to-end latency."""
    loop = asyncio.get_running_loop()
    if step.count is None:
        offsets = arrivals(step.load, step.duration_s, step.pattern, step.seed)
    else:
        offsets = counted_arrivals(step.load, step.warmup_s, step.count, step.pattern, step.seed)
    # Prompts are built before the clock starts: tokenizing 20k tokens at release time would
    # make every request late.
    prepared = [
        make_request(i, "warmup" if offset < step.warmup_s else "measure", offset) for i, offset in enumerate(offsets)
    ]
    run.t0, loop_t0 = time.perf_counter(), loop.time()
    run.end_s = step.duration_s if step.count is None else (offsets[-1] if offsets else 0.0) + 1e-3

    def release(record: Record, text: str) -> None:
        if watch.abort.is_set():
            return
        record.sent_s = time.perf_counter() - run.t0
        run.records.append(record)
        task = asyncio.create_task(stream(client, endpoint, record, text, run.t0))
        task.add_done_callback(lambda _t, r=record: watch.done(r))
        tasks.append(task)

    run.timers = [loop.call_at(loop_t0 + offset, release, *prepared[i]) for i, offset in enumerate(offsets)]
    if on_window_start:
        run.timers.append(loop.call_at(loop_t0 + step.warmup_s, on_window_start))


async def _closed(
    client, endpoint, step: Step, make_request: MakeRequest, run: StepRun, watch: _Watch, tasks: list, on_window_start
) -> None:
    """``load`` users, each with one request in flight; prompts are built off the event loop.
    With a ``count``, the users stop once that many measured requests are sent, and the step's
    end is the last one's send time."""
    run.t0, run.end_s = time.perf_counter(), step.duration_s if step.count is None else math.inf
    counter, measured = iter(range(1 << 62)), iter(range(1 << 62))

    async def user() -> None:
        while not watch.abort.is_set():
            offset = time.perf_counter() - run.t0
            if offset >= step.duration_s and step.count is None:
                return
            phase = "warmup" if offset < step.warmup_s else "measure"
            if phase == "measure" and step.count is not None and next(measured) >= step.count:
                return
            record, text = await asyncio.to_thread(make_request, next(counter), phase, offset)
            record.sent_s = time.perf_counter() - run.t0
            run.records.append(record)
            task = asyncio.create_task(stream(client, endpoint, record, text, run.t0))
            task.add_done_callback(lambda _t, r=record: watch.done(r))
            tasks.append(task)
            try:
                await asyncio.shield(task)  # the step's end stops the user, not its request
            except asyncio.CancelledError:
                return

    run.users = [asyncio.create_task(user()) for _ in range(int(step.load))]
    if on_window_start:
        run.timers.append(asyncio.get_running_loop().call_later(step.warmup_s, on_window_start))


def _cancel_timers(run: StepRun) -> None:
    for timer in run.timers:
        timer.cancel()
    for user in run.users:
        user.cancel()


def _either(*events: asyncio.Event) -> asyncio.Task:
    async def wait_any():
        waits = [asyncio.create_task(e.wait()) for e in events]
        try:
            await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for w in waits:
                w.cancel()

    return asyncio.create_task(wait_any())


async def _until(halt: asyncio.Task, run: StepRun, progress) -> None:
    """The step's sending phase: until ``run.end_s``, or (closed loop with a count) until every
    user is done, then the end is when the last request was sent."""
    while time.perf_counter() < run.t0 + run.end_s and not halt.done():
        if run.users and all(user.done() for user in run.users):
            break
        await asyncio.wait([halt], timeout=min(0.5, max(0.0, run.t0 + run.end_s - time.perf_counter())))
        if progress:
            progress(run)
    if math.isinf(run.end_s):
        run.end_s = max((r.sent_s for r in run.records if r.sent_s is not None), default=0.0)


async def _drain(tasks: list, deadline: float, halt: asyncio.Task, run: StepRun, progress) -> None:
    while not halt.done() and time.perf_counter() < deadline:
        pending = [t for t in tasks if not t.done()]
        if not pending:
            return
        await asyncio.wait(
            [*pending, halt],
            timeout=max(0.0, min(0.5, deadline - time.perf_counter())),
            return_when=asyncio.FIRST_COMPLETED,
        )
        if progress:
            progress(run)
