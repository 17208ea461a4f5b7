"""Everything checked before a benchmark measures anything, so a wrong URL, model, key, output
folder or missing extra costs seconds, not a 30–60 minute sweep that then exits 0."""

from __future__ import annotations

import asyncio
import importlib.util
import json
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

from wafer_sglang import metrics
from wafer_sglang.bench.endpoint import Endpoint
from wafer_sglang.errors import WaferError

if TYPE_CHECKING:  # imported when used: check_extras must be able to say it is missing
    import aiohttp

EXTRA_MODULES = {
    "numpy": "numpy",
    "matplotlib": "matplotlib",
    "prometheus_client": "prometheus-client",
    "tokenizers": "tokenizers",
    "aiohttp": "aiohttp",
}


def check_extras() -> None:
    missing = [dist for module, dist in EXTRA_MODULES.items() if importlib.util.find_spec(module) is None]
    if missing:
        raise WaferError(f"bench needs {', '.join(missing)} (the [bench] extra): pip install 'wafer-sglang[bench]'")


RUN_FILES = ("summary.json", "requests.jsonl")


def check_out(out: Path, force: bool = False) -> None:
    """The output folder holds no earlier run (unless ``force``), exists or can be made, and takes
    a file — before measuring."""
    earlier = [name for name in RUN_FILES if (out / name).exists()]
    if earlier and not force:
        raise WaferError(
            f"--out {out} holds a run already ({', '.join(earlier)}): choose a new folder, or --force to write over it"
        )
    try:
        out.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=out, prefix=".wafer-write-check-"):
            pass
    except OSError as exc:
        raise WaferError(f"--out {out}: cannot write there ({exc.strerror or exc})") from None


async def served_models(client: aiohttp.ClientSession, endpoint: Endpoint) -> list[str]:
    import aiohttp

    url = endpoint.url + "/v1/models"
    try:
        async with client.get(url, headers=dict(endpoint.headers), timeout=aiohttp.ClientTimeout(total=30)) as response:
            body = await response.text(errors="replace")
            status = response.status
    except (aiohttp.ClientError, TimeoutError, OSError) as exc:
        raise WaferError(
            f"{endpoint.url} is unreachable ({type(exc).__name__}: {exc}); is the server up, and is "
            "--url its base (http://host:port or http://host:port/v1)?"
        ) from None
    if status in (401, 403):
        raise WaferError(f"{url}: HTTP {status}: the server wants a key: --api-key KEY, OPENAI_API_KEY, or --header")
    if status != 200:
        raise WaferError(f"{url}: HTTP {status}: {body[:200]}")
    try:
        return [str(m["id"]) for m in json.loads(body)["data"]]
    except (ValueError, KeyError, TypeError):
        raise WaferError(f"{url} did not answer an OpenAI model list: {body[:200]!r}") from None


async def check_largest(client: aiohttp.ClientSession, endpoint: Endpoint, prompt, output_len: int) -> None:
    """Send the run's largest request and hang up once the server answers its status: one that
    refuses it (context overflow, a parameter it rejects) would refuse every step of the run.
    sglang and vLLM validate a request before they start its stream; an accepted one is then
    aborted by the hang-up (``settle`` waits for the server to be done with it)."""
    import aiohttp

    url, body = endpoint.request(prompt.text, output_len)
    asked = f"the run's largest request ({prompt.tokens} prompt + {output_len} output tokens)"
    try:
        async with asyncio.timeout(endpoint.timeout_s):
            async with client.post(url, json=body, headers=dict(endpoint.headers)) as response:
                if response.status < 400:
                    return
                status, detail = response.status, _server_message((await response.read()).decode(errors="replace"))
    except (aiohttp.ClientError, TimeoutError, OSError) as exc:
        raise WaferError(f"{url}: {asked} failed before anything was measured ({type(exc).__name__}: {exc})") from None
    raise WaferError(
        f"the server {'refuses' if status < 500 else 'fails'} {asked} before anything is measured: "
        f"HTTP {status}: {detail}. Shorten the requests (--input-len / --output-len, or a dataset of "
        "shorter conversations) or serve a longer context (sglang --context-length)"
    )


# Live gauges of requests a server still holds (vLLM, llama.cpp read them at scrape time).
BUSY = (
    "vllm:num_requests_running",
    "vllm:num_requests_waiting",
    "llamacpp:requests_processing",
    "llamacpp:requests_deferred",
)
# sglang's gauges are not live (0.5.14 scheduler_components/metrics_reporter.py:781 sets them every
# decode_log_interval steps, or after 30 s idle), so sglang is waited for on its finished-request
# counter instead, which grows when the request's tokens are counted (tokenizer_manager.py:2415).
SGLANG_FINISHED = "sglang:num_requests_total"


def done_with_preflight(before: metrics.Totals | None, now: metrics.Totals | None) -> bool:
    """Whether a server (a fleet: merged totals) is done with the preflight request. One that
    cannot say (no metrics, no known gauge) is not waited for."""
    if now is None:
        return True
    if any(name.startswith("sglang:") for name in now):
        return now.get(SGLANG_FINISHED, 0.0) > (before or {}).get(SGLANG_FINISHED, 0.0)
    return not any(now.get(name) for name in BUSY)


async def settle(
    client: aiohttp.ClientSession, endpoint: Endpoint, urls: list[str], before, stop, limit_s=30.0
) -> bool:
    """Wait (at most ``limit_s``, or until stopped) for the servers to be done with the preflight
    request: hung up on, it is still finished by the server (sglang aborts a disconnected stream
    2 s later: tokenizer_manager.py create_abort_task), and its uncached prompt would count in the
    first step's window (sglang: hit rate 0.54 for 0.60 on a loaded machine). ``before``: the
    servers' scrape from before the preflight. False when the limit was reached."""
    from wafer_sglang.bench import prom

    deadline, before = asyncio.get_running_loop().time() + limit_s, metrics.merge(list(before.values()))
    while not stop.is_set():
        now = metrics.merge(list((await prom.scrape(client, urls, endpoint.headers)).values()))
        if done_with_preflight(before, now):
            return True
        if asyncio.get_running_loop().time() >= deadline:
            return False
        await asyncio.sleep(0.2)
    return True


def _server_message(body: str) -> str:
    """An OpenAI error body's message (sglang, vLLM: {"message": ...} or {"error": {"message": ...}})."""
    try:
        data = json.loads(body)
        error = data.get("error", data) if isinstance(data, dict) else None
        message = error.get("message") if isinstance(error, dict) else None
    except ValueError:
        message = None
    return str(message or body.strip())[:500]


def choose_model(requested: str | None, served: list[str], url: str) -> str:
    if not served:
        raise WaferError(f"{url}/v1/models lists no model")
    if requested is None:
        return served[0]
    if requested not in served:
        raise WaferError(f"--model {requested!r} is not served by {url}; it serves: {', '.join(served)}")
    return requested


def describe_plan(steps_s: list[float | None], drain_s: float, count: int | None = None) -> str:
    """The run's shortest and longest duration (every drain used in full); a step of unknown
    length (closed loop with --num-prompts) is said so."""
    known = [s for s in steps_s if s is not None]
    low, high = sum(known), sum(known) + len(steps_s) * drain_s
    each = f"{count} requests" if count else f"{steps_s[0]:g} s" if steps_s else "0 s"
    span = f"{_minutes(low)}-{_minutes(high)}" + (" + as long as the users take" if len(known) < len(steps_s) else "")
    return f"{len(steps_s)} step(s) x {each} (+ up to {drain_s:g} s drain each): {span}"


def _minutes(seconds: float) -> str:
    return f"{seconds / 60:.0f} min" if seconds >= 120 else f"{seconds:.0f} s"
