"""The fork's own sglang server, installed as users install it (support/engine_env.py) and
started as they start it (support/served_engine.py), on both bases: it serves the OpenAI and
native APIs behind its API key, its radix cache and metrics say the same thing, it gives
exactly what upstream's wheel gives off ROCm, and it stops cleanly with nothing left behind."""

from __future__ import annotations

import hashlib
import json
import subprocess
import uuid

import pytest
import requests
from support import engine_env, served_engine
from support.common import BASES
from support.engine_harness import variants
from support.served_engine import Server

from wafer_sglang.metrics import totals
from wafer_sglang.queue.series import read_series

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module", params=BASES)
def server(request) -> Server:
    return served_engine.shared(request.param)


def long_prompt(server: Server, tokens: int) -> str:
    """Exactly ``tokens`` tokens of the served tokenizer, opened by a nonce of its own."""
    from support.tiny_llm import WORDS
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_file(f"{server.model}/tokenizer.json")
    words = [uuid.uuid4().hex[:8]] + [WORDS[i % len(WORDS)] for i in range(tokens)]
    ids = tokenizer.encode(" ".join(words)).ids[:tokens]
    return tokenizer.decode(ids)


def complete(server: Server, prompt: str, **body) -> dict:
    response = requests.post(
        server.url + "/v1/completions",
        json={"model": "tiny", "prompt": prompt, "temperature": 0, **body},
        headers=server.headers,
        timeout=120,
    )
    response.raise_for_status()
    return response.json()


def metrics(server: Server) -> dict:
    return totals(requests.get(server.url + "/metrics", timeout=30).text)


def test_the_api_needs_the_key_and_the_probes_do_not(server):
    for path in ("/v1/models", "/model_info"):
        assert requests.get(server.url + path, timeout=30).status_code == 401, path
        assert requests.get(server.url + path, headers={"Authorization": "Bearer wrong"}, timeout=30).status_code == 401
        assert requests.get(server.url + path, headers=server.headers, timeout=30).status_code == 200, path
    for path in ("/health", "/health_generate", "/metrics"):
        assert requests.get(server.url + path, timeout=60).status_code == 200, path


def test_openai_native_and_streaming_answers(server):
    text = complete(server, "the quick brown fox", max_tokens=6)["choices"][0]["text"]
    assert text == served_engine.ANSWER  # six tokens: the tiny model answers ANSWER to anything, greedily
    chat = requests.post(
        server.url + "/v1/chat/completions",
        json={"model": "tiny", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 6, "stream": True},
        headers=server.headers,
        timeout=120,
        stream=True,
    )
    chunks = [json.loads(line[6:]) for line in chat.iter_lines(decode_unicode=True) if line.startswith("data: {")]
    assert "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c["choices"]) == text
    native = requests.post(
        server.url + "/generate",
        json={"text": "over the lazy dog", "sampling_params": {"max_new_tokens": 6, "temperature": 0}},
        headers=server.headers,
        timeout=120,
    ).json()
    assert native["text"] == text and native["meta_info"]["completion_tokens"] == 6


def test_the_radix_cache_serves_a_repeated_prompt_and_every_counter_says_so(server):
    prompt = long_prompt(server, 1690)
    before = metrics(server)
    first = complete(server, prompt, max_tokens=4)["usage"]
    second = complete(server, prompt, max_tokens=4)["usage"]
    native = requests.post(
        server.url + "/generate",
        json={"text": prompt, "sampling_params": {"max_new_tokens": 4, "temperature": 0}},
        headers=server.headers,
        timeout=120,
    ).json()["meta_info"]
    after = metrics(server)
    assert first["prompt_tokens"] == second["prompt_tokens"] == native["prompt_tokens"] == 1690
    # the nonce keeps the first send a miss, but for a shared leading token or two (400-token vocab)
    assert ((first.get("prompt_tokens_details") or {}).get("cached_tokens") or 0) < 8
    # every token but the last is reused: the last one is always computed to get the next token's logits
    assert second["prompt_tokens_details"]["cached_tokens"] == 1689
    assert native["cached_tokens"] == 1689
    grown = after.get("sglang:cached_tokens_total", 0) - before.get("sglang:cached_tokens_total", 0)
    assert grown >= 2 * 1689  # other tests may share this server: at least ours
    assert "sglang:cache_hit_rate" in after


@pytest.fixture(scope="module")
def upstream(server):
    """Upstream's pristine wheel for the same base, in the same environment, on the same model."""
    with served_engine.running(f"upstream-{server.base}", server.base, variant="upstream") as other:
        yield other


PROMPTS = ["the quick brown fox", "a small model counts tokens and", "cache hits in every request " * 20]


def answers(server: Server) -> list:
    """Greedy tokens and their top-5 logprobs for each prompt, plus one chat answer."""
    out = [complete(server, p, max_tokens=12, logprobs=5)["choices"][0]["logprobs"] for p in PROMPTS]
    chat = requests.post(
        server.url + "/v1/chat/completions",
        json={
            "model": "tiny",
            "messages": [{"role": "user", "content": "answer"}],
            "max_tokens": 12,
            "temperature": 0,
            "logprobs": True,
            "top_logprobs": 5,
        },
        headers=server.headers,
        timeout=120,
    ).json()
    return [*out, chat["choices"][0]["logprobs"]]


def test_the_fork_serves_exactly_what_upstream_serves_off_rocm(server, upstream):
    """The patches change nothing on other platforms: a patch that leaks fails this."""
    ours, theirs = answers(server), answers(upstream)
    assert ours == theirs
    digest = hashlib.sha256(json.dumps(ours, sort_keys=True).encode()).hexdigest()[:16]
    print(f"fork == upstream {server.base}: greedy outputs + logprobs sha256 {digest}")


@pytest.mark.parametrize("variant", variants())
def test_the_api_key_never_reaches_the_servers_log(server, upstream, variant):
    """0.5.14/0009, 0.5.23/0004: sglang logs its server args at startup (docker/kubectl logs)."""
    served = upstream if variant == "pristine" else server
    log = served.log.read_text()
    assert "server_args=" in log  # the line that carried the key is there
    assert served.api_key not in log


@pytest.mark.parametrize("variant", variants())
def test_the_server_info_keeps_the_api_key_to_itself(server, upstream, variant):
    """0.5.14/0010, 0.5.23/0005: any key holder may read /server_info (the router polls it);
    with --admin-api-key set, the admin key in it is not theirs."""
    served = upstream if variant == "pristine" else server
    for path in ("/server_info", "/get_server_info"):
        response = requests.get(served.url + path, headers=served.headers, timeout=60)
        assert response.status_code == 200 and response.json()["tp_size"] == 1, path  # the server info
        assert served.api_key not in response.text, f"{path} answers the API key"
    assert requests.get(served.url + "/server_info", timeout=60).status_code == 401  # and it is keyed


def test_the_installed_fork_reports_its_base_and_patches(server):
    python = engine_env.ensure(server.base)
    cli = python.parent / "wafer-sglang"
    version = subprocess.run([cli, "--version"], capture_output=True, text=True, check=True).stdout
    info = subprocess.run([cli, "info"], capture_output=True, text=True, check=True).stdout
    series = read_series(engine_env.ROOT / "patches" / server.base).names
    assert f"sglang {server.base}" in version and "no fork installed" not in version, version
    assert series and all(name.removesuffix(".patch") in info for name in series), info


def test_nothing_stood_in_was_called(server):
    assert server.standin_calls == []
