"""Server-sent events from an OpenAI-compatible streaming response, parsed defensively.

Handles: ``data:`` lines split across network chunks, CRLF, comment/keep-alive lines, events
spread over several ``data:`` lines, ``[DONE]``, and JSON error events mid-stream.
"""

from __future__ import annotations

import codecs
import json


class StreamError(Exception):
    """The stream broke or carried an error event."""


class Parser:
    """Incremental SSE parser: ``feed`` bytes as they arrive, get the complete events back.

    Synchronous and per network read (not per line), so a stream costs one await per read:
    the event loop stays free to release requests on time at tens of thousands of tokens/s.
    """

    def __init__(self):
        self.decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")  # UTF-8 split across reads
        self.buffer = ""
        self.data: list[str] = []
        self.done = False

    def feed(self, chunk: bytes) -> list[dict]:
        *lines, self.buffer = (self.buffer + self.decoder.decode(chunk)).split("\n")
        return self._lines(lines)

    def close(self) -> list[dict]:
        """Whatever a stream that ended without a final blank line still holds."""
        lines, self.buffer = [self.buffer + self.decoder.decode(b"", final=True), ""], ""
        return self._lines(lines)

    def _lines(self, lines: list[str]) -> list[dict]:
        out = []
        data = self.data
        for line in lines:
            if line.endswith("\r"):
                line = line[:-1]
            if line.startswith("data:"):
                data.append(line[6:] if line.startswith("data: ") else line[5:])
            elif line:
                continue  # ":" comment / keep-alive, or a field we do not use (event:, id:)
            elif data:
                event = _decode(data[0] if len(data) == 1 else "\n".join(data))
                data.clear()
                if event is None:
                    self.done = True
                    break
                out.append(event)
        return out


def _decode(payload: str) -> dict | None:
    if payload.strip() == "[DONE]":
        return None
    try:
        event = json.loads(payload)
    except json.JSONDecodeError as exc:
        raise StreamError(f"malformed event: {payload[:200]!r} ({exc})") from None
    if isinstance(event, dict) and "error" in event and not event.get("choices"):
        raise StreamError(f"server error in stream: {event['error']}")
    return event


def delta_text(event: dict) -> str:
    """Text a chunk carries: completion text, chat content or reasoning content."""
    parts = []
    for choice in event.get("choices") or []:
        if "text" in choice:
            parts.append(choice.get("text") or "")
        delta = choice.get("delta") or {}
        parts.append(delta.get("content") or "")
        parts.append(delta.get("reasoning_content") or delta.get("reasoning") or "")
    return "".join(parts)


def finish_reason(event: dict) -> str | None:
    for choice in event.get("choices") or []:
        if choice.get("finish_reason"):
            return choice["finish_reason"]
    return None


def cached_tokens(usage: dict, event: dict) -> int | None:
    details = usage.get("prompt_tokens_details") or {}
    if details.get("cached_tokens") is not None:
        return int(details["cached_tokens"])
    timings = event.get("timings") or {}  # llama.cpp
    return int(timings["cache_n"]) if "cache_n" in timings else None
