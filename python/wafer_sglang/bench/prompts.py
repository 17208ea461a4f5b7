"""Prompts built at token level with the server's tokenizer.

A prompt is a sequence of *word tokens*: vocabulary entries that start a word (byte-level
"Ġword" / sentencepiece "▁word") and that the tokenizer maps back to themselves, alone. Word
boundaries are where every pre-tokenizer splits, so any sequence of them decodes to text that
encodes back to exactly those ids; ``build`` still verifies, and repairs the rare merge.

Layouts:
* sweep: [shared prefix of the group][nonce][unique filler]; the prefix is the part meant to
  hit the cache, its end a word boundary, so it tokenizes identically in every request;
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
    except Exception as exc:  # noqa: BLE001 - the hub client raises many kinds
        raise WaferError(f"cannot load tokenizer {spec!r} from the hub: {exc}") from None


def tokenizer_hash(tokenizer) -> str:
    return hashlib.sha256(tokenizer.to_str().encode()).hexdigest()[:16]


class PromptBuilder:
    def __init__(self, tokenizer, seed: int):
        self.tokenizer = tokenizer
        self.rng = random.Random(seed)
        self.words = self._word_tokens()
        if len(self.words) < 16:
            raise WaferError(f"the tokenizer has only {len(self.words)} word tokens: cannot build prompts at token level")

    def _word_tokens(self) -> list[int]:
        words = []
        for token, token_id in sorted(self.tokenizer.get_vocab().items(), key=lambda kv: kv[1]):
            if not token[:1] in ("Ġ", "▁") or not token[1:].isalpha() or not token[1:].isascii():
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


class SweepPrompts:
    """Shared-prefix prompts: ``cache_hit`` of each prompt is the group's prefix."""

    def __init__(self, builder: PromptBuilder, input_len: int, cache_hit: float, groups: int, run_nonce: str):
        if not 0 <= cache_hit < 1:
            raise WaferError("--cache-hit must be in [0, 1)")
        self.builder, self.input_len, self.run_nonce = builder, input_len, run_nonce
        prefix_len = round(input_len * cache_hit)
        if input_len - prefix_len < NONCE_TOKENS + 1:
            raise WaferError(f"--input-len {input_len} leaves no room for a unique suffix at --cache-hit {cache_hit}")
        self.prefixes = [builder.random_ids(prefix_len, random.Random(f"{run_nonce}/prefix/{g}")) for g in range(groups)]

    def make(self, index: int, group: int | None = None) -> Prompt:
        group = index % len(self.prefixes) if group is None else group
        prefix = self.prefixes[group]
        rng = random.Random(f"{self.run_nonce}/request/{index}")
        suffix = self.builder.nonce(f"{self.run_nonce}/{index}") + self.builder.random_ids(self.input_len - len(prefix) - NONCE_TOKENS, rng)
        text, tokens = self.builder.build(prefix + suffix)
        return Prompt(text, tokens, len(prefix), group)

    def primer(self, group: int) -> Prompt:
        """The group's prefix plus a nonce: sent before measuring so the prefix is cached."""
        ids = self.prefixes[group] + self.builder.nonce(f"{self.run_nonce}/primer/{group}")
        text, tokens = self.builder.build(ids)
        return Prompt(text, tokens, len(self.prefixes[group]), group)


def unique_prompt(builder: PromptBuilder, input_len: int, key: str) -> Prompt:
    ids = builder.nonce(key) + builder.random_ids(input_len - NONCE_TOKENS, random.Random(key))
    text, tokens = builder.build(ids)
    return Prompt(text, tokens, 0, -1)
