"""A real LLM server for integration tests: llama.cpp (PyPI xllamacpp) serving a tiny model
made here — a byte-level BPE trained in well under a second and a random 2-layer Llama in GGUF.

``make_model(folder, answer=...)`` makes a model that knows one answer instead: its layers add
nothing to the residual stream, so the next token depends on the last one only (a bigram table),
and the table cycles through ``answer``'s tokens — any prompt gets "answer answer ...", even at
temperature 1.0. An eval can then know exactly what it should score.

The tokenizer.json written beside the GGUF is the server's tokenizer: counting with it matches
llama.cpp's usage.prompt_tokens exactly (no BOS is added).
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

WORDS = [
    "the",
    "quick",
    "brown",
    "fox",
    "jumps",
    "over",
    "the",
    "lazy",
    "dog",
    "while",
    "a",
    "small",
    "model",
    "counts",
    "tokens",
    "and",
    "servers",
    "stream",
    "answers",
    "back",
    "to",
    "clients",
    "that",
    "measure",
    "latency",
    "throughput",
    "and",
    "cache",
    "hits",
    "in",
    "every",
    "request",
]


def make_model(folder: Path, answer: str | None = None) -> Path:
    """tokenizer.json + tiny.gguf in ``folder`` (idempotent)."""
    import gguf
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    gguf_path = folder / "tiny.gguf"
    if gguf_path.is_file():
        return folder
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    corpus = [" ".join(rng.choice(WORDS, 40)) for _ in range(2000)] + [answer or ""] * 500
    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    tokenizer.train_from_iterator(
        corpus,
        trainers.BpeTrainer(
            vocab_size=400,
            special_tokens=["<s>", "</s>"],
            initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
            show_progress=False,
        ),
    )
    tokenizer.save(str(folder / "tokenizer.json"))
    chain = tokenizer.encode(answer).ids if answer else []
    assert len(set(chain)) == len(chain), f"{answer!r} has a repeated token; a bigram table cannot cycle through it"
    vocab = tokenizer.get_vocab()
    tokens = sorted(vocab, key=vocab.get)
    merges = [" ".join(m) if isinstance(m, list) else m for m in json.loads(tokenizer.to_str())["model"]["merges"]]
    writer = gguf.GGUFWriter(str(gguf_path), "llama")
    n_embd, n_layer, n_head, n_ff = 64, 2, 4, 128
    writer.add_name("wafer-tiny-test-llama")
    writer.add_context_length(8192)
    writer.add_embedding_length(n_embd)
    writer.add_block_count(n_layer)
    writer.add_feed_forward_length(n_ff)
    writer.add_head_count(n_head)
    writer.add_head_count_kv(n_head)
    writer.add_rope_dimension_count(n_embd // n_head)
    writer.add_layer_norm_rms_eps(1e-5)
    writer.add_file_type(0)
    writer.add_tokenizer_model("gpt2")
    writer.add_tokenizer_pre("default")
    writer.add_token_list(tokens)
    writer.add_token_types([gguf.TokenType.CONTROL if t in ("<s>", "</s>") else gguf.TokenType.NORMAL for t in tokens])
    writer.add_token_merges(merges)
    writer.add_bos_token_id(vocab["<s>"])
    writer.add_eos_token_id(vocab["</s>"])
    writer.add_add_bos_token(False)
    weights = np.random.default_rng(1)

    def tensor(name, *shape, scale=0.02):
        writer.add_tensor(name, (weights.standard_normal(shape) * scale).astype(np.float32))

    if chain:
        embed, output = _bigram(chain, len(tokens), n_embd)
        writer.add_tensor("token_embd.weight", embed)
        writer.add_tensor("output.weight", output)
    else:
        tensor("token_embd.weight", len(tokens), n_embd)
        output = (weights.standard_normal((len(tokens), n_embd)) * 0.02).astype(np.float32)
        # tokens without printable text (<s>, </s>, lone bytes of a multi-byte character) score 0
        # and so never win greedy decoding: llama.cpp streams no text for them, and a random
        # head that kept picking one made a request with 24 tokens and no text at all
        silent = [i for t, i in vocab.items() if not _printable(tokenizer.decode([i], skip_special_tokens=False), t)]
        output[silent] = 0
        writer.add_tensor("output.weight", output)
    writer.add_tensor("output_norm.weight", np.ones(n_embd, np.float32))
    for i in range(n_layer):
        writer.add_tensor(f"blk.{i}.attn_norm.weight", np.ones(n_embd, np.float32))
        writer.add_tensor(f"blk.{i}.ffn_norm.weight", np.ones(n_embd, np.float32))
        # with a chain the layers' outputs are zero: the final hidden state is the last token's embedding
        out_scale = 0.0 if chain else 0.02
        for name in ("attn_q", "attn_k", "attn_v"):
            tensor(f"blk.{i}.{name}.weight", n_embd, n_embd)
        tensor(f"blk.{i}.attn_output.weight", n_embd, n_embd, scale=out_scale)
        tensor(f"blk.{i}.ffn_gate.weight", n_ff, n_embd)
        tensor(f"blk.{i}.ffn_up.weight", n_ff, n_embd)
        tensor(f"blk.{i}.ffn_down.weight", n_embd, n_ff, scale=out_scale)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return folder


def _printable(text: str, token: str) -> bool:
    return token not in ("<s>", "</s>") and bool(text) and text.isascii() and (text.isprintable() or text.isspace())


def _bigram(chain: list[int], vocab: int, n_embd: int) -> tuple[np.ndarray, np.ndarray]:
    """Embeddings one-hot per state (slot 0: any token outside the chain), and an output matrix
    whose logit for the chain's next token is 80 (after RMS norm) and 0 for every other token."""
    embed = np.zeros((vocab, n_embd), np.float32)
    output = np.zeros((vocab, n_embd), np.float32)
    embed[:, 0] = 10
    output[chain[0], 0] = 10
    for slot, token in enumerate(chain, 1):
        embed[token] = 0
        embed[token, slot] = 10
        output[chain[slot % len(chain)], slot] = 10
    return embed, output


SERVER = """
import sys, time, xllamacpp
p = xllamacpp.CommonParams()
p.model.path, p.port, p.hostnames = sys.argv[1], int(sys.argv[2]), ["127.0.0.1"]
p.n_ctx, p.n_parallel, p.endpoint_metrics = 8192 * int(sys.argv[3]), int(sys.argv[3]), True
p.cpuparams.n_threads = 1
if sys.argv[4] == "0":
    p.cache_ram_mib = 0  # no host prompt cache: a prefix is cached only while a slot holds it
server = xllamacpp.Server(p)
print("ready", flush=True)
while True:
    time.sleep(3600)
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class LlamaServer:
    """llama.cpp on loopback in a child process; ``kill()`` takes it down mid-test."""

    def __init__(self, model: Path, slots: int = 1, host_cache: bool = True, port: int | None = None):
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.model, self.slots, self.host_cache = model, slots, host_cache
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-c",
                SERVER,
                str(model / "tiny.gguf"),
                str(self.port),
                str(slots),
                "1" if host_cache else "0",
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            env=dict(os.environ),
        )
        self._wait()

    def _wait(self) -> None:
        import urllib.error
        import urllib.request

        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError("llama.cpp server exited at start")
            try:
                with urllib.request.urlopen(self.url + "/health", timeout=1) as response:
                    if response.status == 200:
                        return
            except (urllib.error.URLError, OSError):
                pass
            time.sleep(0.2)
        raise RuntimeError("llama.cpp server did not become healthy in 60 s")

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=10)

    def restart(self) -> LlamaServer:
        """The same server again, on the same port (a worker coming back)."""
        self.kill()
        return LlamaServer(self.model, self.slots, self.host_cache, port=self.port)
