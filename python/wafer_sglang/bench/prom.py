"""Prefix-cache counters from the server's Prometheus /metrics, for a window's hit rate.

Per server family (counter totals, summed over label sets such as DP ranks):
* sglang:    sglang:cached_tokens_total / sglang:prompt_tokens_total (all prompt tokens)
* vLLM:      vllm:prefix_cache_hits_total / vllm:prefix_cache_queries_total (tokens)
* llama.cpp: llamacpp:prompt_tokens_cached_total / (that + llamacpp:prompt_tokens_total),
             whose prompt counter only counts the tokens it evaluated
"""

from __future__ import annotations

from dataclasses import dataclass

import aiohttp

FAMILIES = {
    "sglang": ("sglang:cached_tokens", "sglang:prompt_tokens", False),
    "vllm": ("vllm:prefix_cache_hits", "vllm:prefix_cache_queries", False),
    "llama.cpp": ("llamacpp:prompt_tokens_cached", "llamacpp:prompt_tokens", True),
}


@dataclass(frozen=True)
class CacheCounters:
    family: str
    cached: float
    prompt: float  # all prompt tokens the server saw

    def hit_rate_since(self, earlier: "CacheCounters") -> float | None:
        prompt = self.prompt - earlier.prompt
        return (self.cached - earlier.cached) / prompt if prompt > 0 else None


def totals(text: str) -> dict[str, float]:
    """Every sample's value by metric name, summed over label sets (DP ranks, model names)."""
    from prometheus_client.parser import text_string_to_metric_families

    sums: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            sums[sample.name] = sums.get(sample.name, 0.0) + sample.value
    return sums


def parse(text: str) -> CacheCounters | None:
    sums = totals(text)
    for name, (cached, prompt, evaluated_only) in FAMILIES.items():
        cached_total, prompt_total = sums.get(cached + "_total"), sums.get(prompt + "_total")
        if cached_total is not None and prompt_total is not None:
            all_prompt = prompt_total + cached_total if evaluated_only else prompt_total
            return CacheCounters(name, cached_total, all_prompt)
    return None


async def scrape(client: aiohttp.ClientSession, base_url: str) -> CacheCounters | None:
    """The server's counters, or None when it has no (known) metrics endpoint."""
    try:
        async with client.get(base_url.rstrip("/") + "/metrics", timeout=aiohttp.ClientTimeout(total=10)) as response:
            if response.status != 200:
                return None
            return parse(await response.text())
    except (aiohttp.ClientError, TimeoutError, OSError):
        return None
