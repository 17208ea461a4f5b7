"""A fault-injecting OpenAI-compatible server (aiohttp, in a thread) for the failure paths a real
engine will not produce on demand: wrong-shaped events, errors, streams that never end, a
/metrics that is not Prometheus, a key it insists on. The happy path is tested on the fork's sglang
and llama.cpp.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from aiohttp import web

from support.tiny_llm import free_port


@dataclass
class Faults:
    models: list[str] = field(default_factory=lambda: ["fault-model"])
    events: list[str] | None = None  # SSE data lines for every completion (default: a good 4-token stream)
    status: int = 200  # completions answer this (with an error body when >= 400)
    healthy_first: int = 0  # ...after answering this many normally (the bench's preflight request)
    error_message: str = "injected failure"
    stream_seconds: float = 0.0  # sleep this long before the first event (a request that hangs)
    metrics: str | Callable[[], str] = "# TYPE llamacpp:prompt_tokens_total counter\nllamacpp:prompt_tokens_total 0\n"
    metrics_type: str = "text/plain"
    key: str | None = None  # required as "Authorization: Bearer KEY" on every path
    seen: list[dict] = field(default_factory=list)  # path, headers and time.monotonic() of every call
    bodies: list[dict] = field(default_factory=list)  # every completion request's JSON body


def good_events(tokens: int = 4, prompt: int = 10) -> list[str]:
    chunks = [json.dumps({"choices": [{"text": " x", "index": 0, "finish_reason": None}]}) for _ in range(tokens)]
    usage = {"prompt_tokens": prompt, "completion_tokens": tokens}
    return chunks + [json.dumps({"choices": [], "usage": usage}), "[DONE]"]


class FaultServer:
    def __init__(self, faults: Faults):
        self.faults, self.port, self.completions = faults, free_port(), 0
        self.url = f"http://127.0.0.1:{self.port}"
        self.loop: asyncio.AbstractEventLoop | None = None
        ready = threading.Event()
        threading.Thread(target=self._serve, args=(ready,), daemon=True).start()
        if not ready.wait(10):
            raise RuntimeError("fault server did not start")

    def _serve(self, ready: threading.Event) -> None:
        async def main():
            app = web.Application()
            app.add_routes(
                [
                    web.get("/v1/models", self._models),
                    web.post("/v1/completions", self._complete),
                    web.post("/v1/chat/completions", self._complete),
                    web.get("/metrics", self._metrics),
                ]
            )
            runner = web.AppRunner(app)
            await runner.setup()
            await web.TCPSite(runner, "127.0.0.1", self.port).start()
            self.loop = asyncio.get_running_loop()
            self.stopped = asyncio.Event()
            ready.set()
            await self.stopped.wait()
            await runner.cleanup()

        asyncio.run(main())

    def stop(self) -> None:
        if self.loop:
            self.loop.call_soon_threadsafe(self.stopped.set)

    def _denied(self, request: web.Request) -> web.Response | None:
        self.faults.seen.append({"path": request.path, "headers": dict(request.headers), "at": time.monotonic()})
        if self.faults.key and request.headers.get("Authorization") != f"Bearer {self.faults.key}":
            return web.json_response({"error": "unauthorized"}, status=401)
        return None

    async def _models(self, request: web.Request) -> web.Response:
        return self._denied(request) or web.json_response(
            {"object": "list", "data": [{"id": m} for m in self.faults.models]}
        )

    async def _metrics(self, request: web.Request) -> web.Response:
        text = self.faults.metrics() if callable(self.faults.metrics) else self.faults.metrics
        return self._denied(request) or web.Response(text=text, content_type=self.faults.metrics_type)

    async def _complete(self, request: web.Request) -> web.StreamResponse:
        denied = self._denied(request)
        if denied:
            return denied
        self.completions += 1
        if self.faults.status >= 400 and self.completions > self.faults.healthy_first:
            return web.json_response({"error": {"message": self.faults.error_message}}, status=self.faults.status)
        body = await request.json()
        self.faults.bodies.append(body)
        if not body.get("stream"):  # lm-eval's requests: one JSON answer
            await asyncio.sleep(self.faults.stream_seconds)
            return web.json_response(
                {
                    "choices": [{"index": 0, "text": " x x x x", "finish_reason": "length"}],
                    "usage": {"prompt_tokens": 10, "completion_tokens": 4},
                }
            )
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        await asyncio.sleep(self.faults.stream_seconds)
        for data in self.faults.events or good_events():
            await response.write(f"data: {data}\n\n".encode())
        await response.write_eof()
        return response
