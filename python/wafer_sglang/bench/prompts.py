"""Prompts built at token level with the server's tokenizer.

A prompt is a sequence of *word tokens*: vocabulary entries that start a word (byte-level
"Ġword" / sentencepiece "▁word") and that the tokenizer maps back to themselves, alone. Word
boundaries are where every pre-tokenizer splits, so any sequence of them decodes to text that
encodes back to exactly those ids; ``build`` still verifies, and repairs the rare merge.

Layouts:
* sweep: [shared prefix of the group][nonce][unique filler]; the prefix is the part meant to
  hit the cache, its end a word boundary, so it tokenizes identically in every request. Each
  request's group is drawn at random (seeded): ``index % groups`` lines up with round-robin
  routing over a divisor of the group count and hides cache misses;
* single stream: [nonce][filler] — nothing may hit a cache.
The nonce (per run and request) opens whatever must miss, so a rerun cannot hit the cache a
previous run left behind.
"""

from __future__ import annotations

import hashlib
import random
from dataclasses import dataclass
from pathlib import Path

from wafer_sglang.errors import WaferError

NONCE_TOKENS = 8


def load_tokenizer(spec: str):
    """A ``tokenizers.Tokenizer`` from a tokenizer.json, a folder holding one, or a hub name."""
    from tokenizers import Tokenizer

    path = Path(spec)
    if path.is_dir():
        path = path / "tokenizer.json"
    if path.is_file():
        return Tokenizer.from_file(str(path))
    if path.suffix == ".json" or "/" not in spec:
        raise WaferError(f"tokenizer {spec}: no such tokenizer.json")
    try:
        return Tokenizer.from_pretrained(spec)
    except Exception as exc:
        raise WaferError(f"cannot load tokenizer {spec!r} from the hub: {exc}") from None


def tokenizer_hash(tokenizer) -> str:
    return hashlib.sha256(tokenizer.to_str().encode()).hexdigest()[:16]


class PromptBuilder:
    def __init__(self, tokenizer, seed: int):
        self.tokenizer = tokenizer
        self.rng = random.Random(seed)
        self.words = self._word_tokens()
        if len(self.words) < 16:
            raise WaferError(
                f"the tokenizer has only {len(self.words)} word tokens: cannot build prompts at token level"
            )

    def _word_tokens(self) -> list[int]:
        words = []
        for token, token_id in sorted(self.tokenizer.get_vocab().items(), key=lambda kv: kv[1]):
            if token[:1] not in ("Ġ", "▁") or not token[1:].isalpha() or not token[1:].isascii():
                continue
            text = self.tokenizer.decode([token_id])
            if self.tokenizer.encode(text, add_special_tokens=False).ids == [token_id]:
                words.append(token_id)
        return words

    def count(self, text: str) -> int:
        return len(self.tokenizer.encode(text, add_special_tokens=False).ids)

    def random_ids(self, n: int, rng: random.Random | None = None) -> list[int]:
        rng = rng or self.rng
        return [rng.choice(self.words) for _ in range(n)]

    def nonce(self, key: str) -> list[int]:
        return self.random_ids(NONCE_TOKENS, random.Random(key))

    def build(self, ids: list[int]) -> tuple[str, int]:
        """Text for ``ids`` and its exact token count, repaired until it equals len(ids)."""
        target = len(ids)
        ids = list(ids)
        for _ in range(32):
            text = self.tokenizer.decode(ids)
            n = self.count(text)
            if n == target:
                return text, n
            ids = ids[: target - 1] + self.random_ids(1) if n > target else ids + self.random_ids(target - n)
        raise WaferError("could not build a prompt with an exact token count (unusual tokenizer)")


@dataclass(frozen=True)
class Prompt:
    text: str
    tokens: int  # by our tokenizer; the server's usage is the authority
    prefix_tokens: int  # the part meant to hit the cache
    group: int
    output_len: int | None = None  # None: the run's --output-len


class SweepPrompts:
    """Shared-prefix prompts: ``cache_hit`` of each prompt is the group's prefix."""

    def __init__(
        self, builder: PromptBuilder, input_len: int, cache_hit: float, groups: int, run_nonce: str, seed: int = 0
    ):
        if not 0 <= cache_hit < 1:
            raise WaferError("--cache-hit must be in [0, 1)")
        if groups < 1:
            raise WaferError("--prefix-groups must be at least 1")
        self.builder, self.input_len, self.run_nonce, self.seed = builder, input_len, run_nonce, seed
        self.cache_hit = cache_hit
        prefix_len = round(input_len * cache_hit)
        if input_len - prefix_len < NONCE_TOKENS + 1:
            raise WaferError(f"--input-len {input_len} leaves no room for a unique suffix at --cache-hit {cache_hit}")
        self.prefixes = [
            builder.random_ids(prefix_len, random.Random(f"{run_nonce}/prefix/{g}")) for g in range(groups)
        ]

    def group_of(self, index: int) -> int:
        return random.Random(f"{self.seed}/group/{index}").randrange(len(self.prefixes))

    def make(self, index: int, group: int | None = None) -> Prompt:
        group = self.group_of(index) if group is None else group
        prefix = self.prefixes[group]
        rng = random.Random(f"{self.run_nonce}/request/{index}")
        suffix = self.builder.nonce(f"{self.run_nonce}/{index}") + self.builder.random_ids(
            self.input_len - len(prefix) - NONCE_TOKENS, rng
        )
        text, tokens = self.builder.build(prefix + suffix)
        return Prompt(text, tokens, len(prefix), group)

    def largest(self) -> Prompt:
        """A prompt as long as any the run sends, sharing no prefix with them (the preflight's)."""
        return unique_prompt(self.builder, self.input_len, f"{self.run_nonce}/largest")

    def primer(self, group: int) -> Prompt:
        """The group's prefix plus a nonce: sent before measuring so the prefix is cached."""
        ids = self.prefixes[group] + self.builder.nonce(f"{self.run_nonce}/primer/{group}")
        text, tokens = self.builder.build(ids)
        return Prompt(text, tokens, len(self.prefixes[group]), group)


def unique_prompt(builder: PromptBuilder, input_len: int, key: str) -> Prompt:
    ids = builder.nonce(key) + builder.random_ids(input_len - NONCE_TOKENS, random.Random(key))
    text, tokens = builder.build(ids)
    return Prompt(text, tokens, 0, -1)


class ShareGPTPrompts:
    """Real conversations (ShareGPT JSON, a local file): each request sends a conversation's first
    human turn and asks for as many tokens as its first reply had (sglang bench_serving's
    sharegpt dataset). No shared prefixes: the hit rate is whatever the data has."""

    cache_hit = None
    prefixes: tuple = ()

    def __init__(self, builder: PromptBuilder, path: Path, seed: int, max_input_len: int | None = None):
        self.builder = builder
        self.pairs = _sharegpt_pairs(path, builder, max_input_len)
        random.Random(seed).shuffle(self.pairs)

    def make(self, index: int, group: int | None = None) -> Prompt:
        text, tokens, output_len = self.pairs[index % len(self.pairs)]
        return Prompt(text, tokens, 0, -1, output_len)

    def largest(self) -> Prompt:
        """The conversation that asks for the most tokens in all (prompt + reply)."""
        text, tokens, output_len = max(self.pairs, key=lambda pair: pair[1] + pair[2])
        return Prompt(text, tokens, 0, -1, output_len)

    def primer(self, group: int) -> Prompt:
        raise IndexError(group)


def _sharegpt_pairs(path: Path, builder: PromptBuilder, max_input_len: int | None) -> list[tuple[str, int, int]]:
    import json

    try:
        data = json.loads(Path(path).read_text())
    except (OSError, ValueError) as exc:
        raise WaferError(f"--dataset sharegpt {path}: cannot read it as JSON ({exc})") from None
    pairs = []
    for item in data if isinstance(data, list) else []:
        turns = item.get("conversations") if isinstance(item, dict) else None
        if not isinstance(turns, list) or len(turns) < 2:
            continue
        human, reply = turns[0], turns[1]
        if not all(isinstance(t, dict) and isinstance(t.get("value"), str) for t in (human, reply)):
            continue
        tokens, output_len = builder.count(human["value"]), builder.count(reply["value"])
        if tokens < 4 or output_len < 4 or (max_input_len and tokens > max_input_len):
            continue  # bench_serving's own filter for too-short pairs
        pairs.append((human["value"], tokens, output_len))
    if not pairs:
        raise WaferError(
            f"--dataset sharegpt {path}: no usable conversations (a JSON list of "
            '{"conversations": [{"from": "human", "value": ...}, {"from": "gpt", "value": ...}]})'
        )
    return pairs
