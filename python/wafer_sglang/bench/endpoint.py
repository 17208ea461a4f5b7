"""The server under test: its base URL (either spelling), the model, how requests are shaped, and
the headers every call carries (credentials among them, never written to any output)."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from wafer_sglang.errors import WaferError

SECRET_FLAGS = ("--api-key", "--header")
REDACTED = "***"
OWN_FIELDS = ("model", "prompt", "messages", "stream", "stream_options")  # what measuring depends on


@dataclass(frozen=True)
class Endpoint:
    url: str  # base URL, e.g. http://127.0.0.1:30000 (no /v1)
    model: str | None  # None until the server's /v1/models says
    api: str = "completions"  # or "chat"
    force_length: str = "both"  # none | ignore_eos | min_tokens | both
    timeout_s: float = 600.0
    headers: Mapping[str, str] = field(default_factory=dict, repr=False, compare=False)
    extra_body: Mapping[str, Any] = field(default_factory=dict)  # --extra-request-body, on every request

    def request(self, text: str, max_tokens: int) -> tuple[str, dict]:
        body: dict = {
            "model": self.model,
            "max_tokens": max_tokens,
            "temperature": 0.0,
            "stream": True,
            "stream_options": {"include_usage": True},
        }
        if self.api == "chat":
            body["messages"] = [{"role": "user", "content": text}]
            path = "/v1/chat/completions"
        else:
            body["prompt"] = text
            path = "/v1/completions"
        if self.force_length in ("ignore_eos", "both"):
            body["ignore_eos"] = True
        if self.force_length in ("min_tokens", "both"):
            body["min_tokens"] = max_tokens
        return self.url + path, {**body, **self.extra_body}

    def public(self) -> dict:
        """What a report may say about the endpoint: no header values."""
        return {
            "url": self.url,
            "model": self.model,
            "api": self.api,
            "force_length": self.force_length,
            "extra_body": dict(self.extra_body),
            "headers": sorted(self.headers),
        }


def base_url(url: str, flag: str = "--url") -> str:
    """``http://host:port``, ``…/`` and ``…/v1`` (the OpenAI SDK's base URL) all mean the server
    (bench and eval alike)."""
    try:
        parts = urlsplit(url.strip())
        parts.port  # noqa: B018 - parses the port: out of range or not a number raises here, not mid-run
    except ValueError as exc:
        raise WaferError(f"{flag} {url!r}: not a URL ({exc}); expected http(s)://host:port") from None
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise WaferError(f"{flag} {url!r}: expected http(s)://host:port")
    path = parts.path.rstrip("/")
    path = path.removesuffix("/v1")
    return f"{parts.scheme}://{parts.netloc}{path}"


def extra_body(text: str | None) -> dict[str, Any]:
    """--extra-request-body: a JSON object merged into every request (vLLM's and sglang's flag)."""
    if not text:
        return {}
    try:
        body = json.loads(text)
    except ValueError as exc:
        raise WaferError(f"--extra-request-body: not JSON ({exc})") from None
    if not isinstance(body, dict):
        raise WaferError(f"--extra-request-body: expected a JSON object, got {type(body).__name__}")
    own = sorted(set(body) & set(OWN_FIELDS))
    if own:
        raise WaferError(f"--extra-request-body: the benchmark sets {', '.join(own)} itself (it measures with them)")
    return body


def headers(api_key: str | None, extra: list[str], env: Mapping[str, str] | None = None) -> dict[str, str]:
    """--header K=V (or "K: V"), and Authorization from --api-key, else OPENAI_API_KEY."""
    env = os.environ if env is None else env
    found: dict[str, str] = {}
    for item in extra:
        key, sep, value = item.partition("=") if "=" in item else item.partition(":")
        if not sep or not key.strip():
            raise WaferError(f"--header expects NAME=VALUE, got {item.split('=')[0].split(':')[0]!r}=...")
        found[key.strip()] = value.strip()
    key = api_key or env.get("OPENAI_API_KEY")
    if key and not any(k.lower() == "authorization" for k in found):
        found["Authorization"] = f"Bearer {key}"
    return found


def redact(argv: list[str]) -> list[str]:
    """``argv`` with the value of every secret-bearing flag replaced (both ``--f v`` and ``--f=v``)."""
    out, hide = [], False
    for arg in argv:
        if hide:
            out.append(REDACTED)
            hide = False
        elif arg in SECRET_FLAGS:
            out.append(arg)
            hide = True
        elif arg.split("=", 1)[0] in SECRET_FLAGS and "=" in arg:
            out.append(arg.split("=", 1)[0] + "=" + REDACTED)
        else:
            out.append(arg)
    return out
