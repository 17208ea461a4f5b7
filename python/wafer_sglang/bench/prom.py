"""Scraping the servers' /metrics around a step (one server, or every worker behind a router),
with the run's headers; what the counters mean is ``wafer_sglang.metrics``."""

from __future__ import annotations

from collections.abc import Mapping

import aiohttp

from wafer_sglang import metrics


async def scrape_one(client: aiohttp.ClientSession, base_url: str, headers: Mapping[str, str]) -> metrics.Totals | None:
    """The server's counter totals, or None (no endpoint, an error, not Prometheus text)."""
    try:
        async with client.get(
            base_url.rstrip("/") + "/metrics", headers=dict(headers), timeout=aiohttp.ClientTimeout(total=10)
        ) as response:
            if response.status != 200:
                return None
            return metrics.totals(await response.text(errors="replace"))
    except (aiohttp.ClientError, TimeoutError, OSError, UnicodeError):
        return None


async def scrape(
    client: aiohttp.ClientSession, urls: list[str], headers: Mapping[str, str]
) -> dict[str, metrics.Totals | None]:
    return {url: await scrape_one(client, url, headers) for url in urls}


def window(before: dict[str, metrics.Totals | None], after: dict[str, metrics.Totals | None]) -> dict:
    """The fleet's hit rate and acceptance over the window, and each server's share."""
    total_before, total_after = metrics.merge(list(before.values())), metrics.merge(list(after.values()))
    hit = metrics.hit_rate(total_before, total_after)
    accepted = metrics.acceptance(total_before, total_after)
    result = {
        "cache_hit_server": hit[1] if hit else None,
        "metrics_family": hit[0] if hit else None,
        "accept_length": accepted.accept_length if accepted else None,
    }
    if len(after) > 1:
        result["per_server"] = {url: _share(before.get(url), after[url]) for url in after}
    return result


def primers_per_server(
    before: dict[str, metrics.Totals | None], after: dict[str, metrics.Totals | None], primer_tokens: list[int | None]
) -> dict[str, int | None]:
    """How many of the primers each server took: its request counter, or (llama.cpp has none)
    its prompt tokens over a primer's mean length; None where neither can be read."""
    sizes = [t for t in primer_tokens if t]
    mean = sum(sizes) / len(sizes) if sizes else None
    counts: dict[str, int | None] = {}
    for url in after:
        requests = metrics.delta(before.get(url), after[url], metrics.REQUESTS)
        tokens = metrics.delta(before.get(url), after[url], metrics.PROMPT_TOKENS)
        if requests is not None:
            counts[url] = round(requests)
        else:
            counts[url] = round(tokens / mean) if tokens is not None and mean else None
    return counts


def _share(before: metrics.Totals | None, after: metrics.Totals | None) -> dict:
    hit = metrics.hit_rate(before, after)
    return {
        "cache_hit": hit[1] if hit else None,
        "prompt_tokens": metrics.delta(before, after, metrics.PROMPT_TOKENS),
        "generated_tokens": metrics.delta(before, after, metrics.GENERATED_TOKENS),
    }
