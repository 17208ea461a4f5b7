"""One streamed request: timings from the client's clock, token counts from the server's usage."""

from __future__ import annotations

import asyncio
import time
from dataclasses import asdict, dataclass, field

import aiohttp

from wafer_sglang.bench import sse
from wafer_sglang.bench.endpoint import Endpoint

CANCELLED = "cancelled"


@dataclass
class Record:
    index: int
    step: float  # target rps of the step (0 for single-stream runs)
    phase: str  # prime | warmup | measure
    intended_s: float  # scheduled send time, seconds from the step start
    sent_s: float = 0.0  # actual send time, same clock
    ttft_s: float | None = None
    e2e_s: float | None = None
    chunk_gaps_s: list[float] = field(default_factory=list)  # inter-chunk latencies after the first
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    cached_tokens: int | None = None
    expected_prompt_tokens: int = 0
    requested_output: int = 0
    group: int = -1  # the shared-prefix group (-1: none)
    finish_reason: str | None = None
    status: int | None = None
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None

    @property
    def tpot_s(self) -> float | None:
        """Time per output token after the first, as bench_serving and vLLM define it:
        (latency - TTFT) / (output tokens - 1); None below two tokens or without timings."""
        n = self.completion_tokens or 0
        if n < 2 or self.e2e_s is None or self.ttft_s is None:
            return None
        return (self.e2e_s - self.ttft_s) / (n - 1)

    def as_dict(self) -> dict:
        data = asdict(self)
        data["chunk_gaps_s"] = [round(g, 6) for g in self.chunk_gaps_s]
        data["ok"] = self.ok
        return data


def make_client(keepalive: bool = False) -> aiohttp.ClientSession:
    # A fresh connection per request by default: llama.cpp fails every other request on reused
    # keep-alive connections, and a connect on the serving network costs far less than a prefill.
    # aiohttp: its C HTTP parser keeps the client at ~2% of a core per 1k streamed tok/s.
    connector = aiohttp.TCPConnector(limit=0, force_close=not keepalive)
    return aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=None))


async def stream(client: aiohttp.ClientSession, endpoint: Endpoint, record: Record, text: str, t0: float) -> Record:
    """Send and read one request. Every outcome ends on the record — tokens, or the reason it
    failed — and nothing is raised but cancellation (recorded first). One coroutine on purpose:
    a helper coroutine per request doubled the p99 release lateness at 26k tok/s
    (benchmark/bench_client.py)."""
    if not record.sent_s:  # an open-loop scheduler sets it when it releases the request
        record.sent_s = time.perf_counter() - t0
    start = t0 + record.sent_s  # latencies count from the release, client delays included
    url, body = endpoint.request(text, record.requested_output)
    last = None
    usage_event: dict = {}
    try:
        async with asyncio.timeout(endpoint.timeout_s):
            async with client.post(url, json=body, headers=dict(endpoint.headers)) as response:
                record.status = response.status
                if response.status >= 400:
                    detail = (await response.read()).decode(errors="replace")[:300]
                    record.error = f"http {response.status}: {detail}"
                    return record
                parser = sse.Parser()
                async for data in response.content.iter_any():
                    now = time.perf_counter()
                    for event in parser.feed(data):
                        usage_event, last = _take(record, event, now, start, last, usage_event)
                for event in parser.close():
                    usage_event, last = _take(record, event, time.perf_counter(), start, last, usage_event)
        record.e2e_s = time.perf_counter() - start
        _account(record, usage_event, endpoint)
    except asyncio.CancelledError:
        record.error = record.error or CANCELLED
        raise
    except TimeoutError:
        record.error = f"timeout after {endpoint.timeout_s:g} s"
    except sse.StreamError as exc:
        record.error = f"stream: {exc}"
    except (aiohttp.ClientError, OSError) as exc:
        broken = record.ttft_s is not None or record.status is not None
        record.error = f"{'broken stream' if broken else 'connection'}: {type(exc).__name__}: {exc}"
    except (TypeError, AttributeError, KeyError, ValueError) as exc:  # valid JSON of the wrong shape
        record.error = f"malformed response: {type(exc).__name__}: {exc}"
    return record


def _account(record: Record, usage_event: dict, endpoint: Endpoint) -> None:
    usage = usage_event.get("usage") or {}
    if not usage:
        record.error = "no usage in the stream (the server ignored stream_options.include_usage)"
        return
    if not isinstance(usage, dict) or not all(
        isinstance(usage.get(k), int) for k in ("prompt_tokens", "completion_tokens")
    ):
        raise ValueError(f"usage is not token counts: {str(usage)[:200]}")
    record.prompt_tokens = usage["prompt_tokens"]
    record.completion_tokens = usage["completion_tokens"]
    record.cached_tokens = sse.cached_tokens(usage, usage_event)
    if record.ttft_s is None:
        record.error = "no output tokens"
    elif endpoint.force_length != "none" and record.completion_tokens < record.requested_output:
        record.error = (
            f"truncated: {record.completion_tokens} of {record.requested_output} output tokens ({record.finish_reason})"
        )


def _take(record: Record, event: dict, now: float, start: float, last: float | None, usage_event: dict):
    """Fold one event into the record: TTFT at the first chunk with text, gaps after it."""
    if not isinstance(event, dict):
        raise TypeError(f"event is a {type(event).__name__}, not an object: {str(event)[:200]}")
    if event.get("usage"):
        usage_event = event
    record.finish_reason = sse.finish_reason(event) or record.finish_reason
    if sse.delta_text(event):  # not a role-only, usage-only or empty finish chunk
        if last is None:
            record.ttft_s = now - start
        elif now > last:  # events of one network read arrived together: one gap
            record.chunk_gaps_s.append(now - last)
        last = now
    return usage_event, last
