"""Open-loop load: arrivals on absolute timestamps, warm-up by start time, drain with a timeout.

Requests are launched at ``t0 + offset`` whatever the server does (open loop): a slow server
gets a growing queue, not fewer requests. Sleeping until an absolute time keeps scheduling
error from accumulating (relative sleeps drifted 183 vs 200 QPS in one tool).
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Callable
from dataclasses import dataclass

from wafer_sglang.bench.client import Endpoint, Record, stream


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


@dataclass
class Step:
    rate: float
    duration_s: float
    warmup_s: float
    drain_s: float
    pattern: str
    seed: int


async def run_step(client, endpoint: Endpoint, step: Step, make_request: Callable[[int, str, float], tuple[Record, str]],
                   stop: asyncio.Event, progress: Callable[[list[Record], list[asyncio.Task]], None] | None = None,
                   on_window_start: Callable[[], None] | None = None) -> tuple[list[Record], float]:
    """Release the step's arrivals on the loop's timer wheel, then drain. Returns the records
    and the step's start time (perf_counter).

    Each arrival is a ``call_at`` timer: the loop runs due timers in the same iteration it
    finds them due, so a loop busy with streams delays a release by little; the release time
    is the request's ``sent_s`` and the origin of its TTFT and end-to-end latency.
    """
    loop = asyncio.get_running_loop()
    offsets = arrivals(step.rate, step.duration_s, step.pattern, step.seed)
    # Prompts are built before the clock starts: tokenizing 20k tokens at release time would
    # make every request late.
    prepared = [make_request(i, "warmup" if offset < step.warmup_s else "measure", offset) for i, offset in enumerate(offsets)]
    t0, loop_t0 = time.perf_counter(), loop.time()
    records: list[Record] = []
    tasks: list[asyncio.Task] = []

    def release(record: Record, text: str) -> None:
        if stop.is_set():
            return
        record.sent_s = time.perf_counter() - t0
        records.append(record)
        tasks.append(asyncio.create_task(stream(client, endpoint, record, text, t0)))

    timers = [loop.call_at(loop_t0 + offset, release, *prepared[i]) for i, offset in enumerate(offsets)]
    if on_window_start:
        timers.append(loop.call_at(loop_t0 + step.warmup_s, on_window_start))
    end = t0 + step.duration_s
    while time.perf_counter() < end and not stop.is_set():
        try:
            await asyncio.wait_for(stop.wait(), timeout=min(0.5, max(0.0, end - time.perf_counter())))
        except TimeoutError:
            pass
        if progress:
            progress(records, tasks)
    for timer in timers:
        timer.cancel()
    pending = {t for t in tasks if not t.done()}
    deadline = end + step.drain_s
    while pending and not stop.is_set() and time.perf_counter() < deadline:
        _, pending = await asyncio.wait(pending, timeout=max(0.0, min(0.5, deadline - time.perf_counter())))
        if progress:
            progress(records, tasks)
    for record, task in zip(records, tasks):
        if not task.done():
            task.cancel()
            record.error = "interrupted" if stop.is_set() else f"unfinished after the {step.drain_s:.0f} s drain"
    await asyncio.gather(*tasks, return_exceptions=True)
    return records, t0
