"""A serving engine's Prometheus /metrics as counter totals, and what two scrapes say about the
window between them: the prefix-cache hit rate and the speculative-decoding acceptance. Used by
``bench`` (per step) and ``eval`` (per run); each does its own HTTP.

Counters per engine family (totals summed over label sets such as DP ranks and model names):
* hit rate — sglang ``cached_tokens`` / ``prompt_tokens`` (all prompt tokens); vLLM
  ``prefix_cache_hits`` / ``prefix_cache_queries``; llama.cpp ``prompt_tokens_cached`` /
  (that + ``prompt_tokens``, which counts only the tokens it evaluated);
* acceptance (mean tokens per target forward, bonus token included: sglang's "accept len") —
  sglang ``generation_tokens`` / ``spec_verify_calls``; vLLM 1 + ``spec_decode_num_accepted_tokens``
  / ``spec_decode_num_drafts``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

HIT_RATE = {  # family: (cached, prompt, prompt counts only evaluated tokens)
    "sglang": ("sglang:cached_tokens_total", "sglang:prompt_tokens_total", False),
    "vllm": ("vllm:prefix_cache_hits_total", "vllm:prefix_cache_queries_total", False),
    "llama.cpp": ("llamacpp:prompt_tokens_cached_total", "llamacpp:prompt_tokens_total", True),
}
ACCEPTANCE = {  # family: (numerator, denominator, offset)
    "sglang": ("sglang:generation_tokens_total", "sglang:spec_verify_calls_total", 0.0),
    "vllm": ("vllm:spec_decode_num_accepted_tokens_total", "vllm:spec_decode_num_drafts_total", 1.0),
}

# Per-server load: prompt tokens it saw (evaluated + cached for llama.cpp) and tokens it generated.
PROMPT_TOKENS = (
    "sglang:prompt_tokens_total",
    "vllm:prompt_tokens_total",
    "llamacpp:prompt_tokens_total",
    "llamacpp:prompt_tokens_cached_total",
)
REQUESTS = ("sglang:num_requests_total", "vllm:request_success_total")  # finished requests
GENERATED_TOKENS = ("sglang:generation_tokens_total", "vllm:generation_tokens_total", "llamacpp:tokens_predicted_total")

Totals = dict[str, float]


def delta(before: Totals | None, after: Totals | None, names: tuple[str, ...]) -> float | None:
    """The growth of the named counters (summed) over the window; None without them."""
    if not before or not after or not any(n in after for n in names):
        return None
    return sum(after.get(n, 0.0) - before.get(n, 0.0) for n in names)


def totals(text: str) -> Totals | None:
    """Every sample's value by name, summed over label sets; None when ``text`` is not the
    Prometheus text format (an HTML page, JSON, a truncated body)."""
    from prometheus_client.parser import text_string_to_metric_families

    sums: Totals = {}
    try:
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                sums[sample.name] = sums.get(sample.name, 0.0) + float(sample.value)
    except (ValueError, TypeError, IndexError, KeyError):
        return None
    return sums


def merge(parts: list[Totals | None]) -> Totals | None:
    """Several servers' totals (a fleet behind a router) as one; None if any is missing."""
    if not parts or any(p is None for p in parts):
        return None
    merged: Totals = {}
    for part in parts:
        for name, value in part.items():
            merged[name] = merged.get(name, 0.0) + value
    return merged


def hit_rate(before: Totals | None, after: Totals | None) -> tuple[str, float] | None:
    """(family, cached / prompt tokens over the window), or None without known counters."""
    if not before or not after:
        return None
    for family, (cached, prompt, evaluated_only) in HIT_RATE.items():
        if cached in after and prompt in after:
            d_cached = after[cached] - before.get(cached, 0.0)
            d_prompt = after[prompt] - before.get(prompt, 0.0) + (d_cached if evaluated_only else 0.0)
            return (family, d_cached / d_prompt) if d_prompt > 0 else None
    return None


@dataclass(frozen=True)
class Acceptance:
    source: str  # metrics:sglang, metrics:vllm or log
    accept_length: float
    basis: str  # what it was computed from, for the report

    def to_json(self) -> dict:
        return asdict(self)


def acceptance(before: Totals | None, after: Totals | None) -> Acceptance | None:
    if not before or not after:
        return None
    for family, (num, den, offset) in ACCEPTANCE.items():
        if den in after:
            d_num, d_den = after.get(num, 0.0) - before.get(num, 0.0), after[den] - before.get(den, 0.0)
            if d_den > 0:
                return Acceptance(f"metrics:{family}", offset + d_num / d_den, f"{num} +{d_num:g} / {den} +{d_den:g}")
    return None
