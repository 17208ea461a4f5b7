"""A tiny model made here — a byte-level BPE trained in well under a second and a random 2-layer
Llama — written twice from the same tensors: GGUF for llama.cpp (PyPI xllamacpp, the second engine
and the fault tests) and Hugging Face safetensors for the fork's own sglang server
(support/served_engine.py). Both files describe one model (GGUF keeps q/k in llama.cpp's rope
order, HF in rotate-half order, exactly as llama.cpp's converter permutes them).

``make_model(folder, answer=...)`` makes a model that knows one answer instead: its layers add
almost nothing to the residual stream (outputs scaled 1e-3), so the greedy next token depends on
the last one only (a bigram table), and the table cycles through ``answer``'s tokens — any prompt
gets "answer answer ...", even at temperature 1.0. An eval can then know exactly what it should
score, while every logprob still depends on the whole forward pass (attention included).
``seed`` draws other random layers (another model with the same tokenizer).

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


N_EMBD, N_LAYER, N_HEAD, N_FF, CONTEXT = 64, 2, 4, 128, 8192
# The HF tokenizer's chat template: each message's text on a line of its own.
CHAT_TEMPLATE = "{% for m in messages %}{{ m['content'] }}\n{% endfor %}"


def make_model(folder: Path, answer: str | None = None, seed: int = 1) -> Path:
    """tokenizer.json + tiny.gguf (llama.cpp) + config.json/model.safetensors (HF) in ``folder``
    (idempotent)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    if (folder / "model.safetensors").is_file():
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
    tensors = _tensors(tokenizer, chain, seed)
    _write_gguf(folder / "tiny.gguf", tokenizer, tensors)
    _write_hf(folder, tokenizer, tensors)
    return folder


def _tensors(tokenizer, chain: list[int], seed: int) -> dict[str, np.ndarray]:
    """The model's weights by GGUF name (q/k in llama.cpp's rope order)."""
    vocab = tokenizer.get_vocab()
    weights = np.random.default_rng(seed)

    def random(*shape, scale=0.02):
        return (weights.standard_normal(shape) * scale).astype(np.float32)

    tensors = {}
    if chain:
        tensors["token_embd.weight"], tensors["output.weight"] = _bigram(chain, len(vocab), N_EMBD)
    else:
        tensors["token_embd.weight"] = random(len(vocab), N_EMBD)
        output = random(len(vocab), N_EMBD)
        # tokens without printable text (<s>, </s>, lone bytes of a multi-byte character) score 0
        # and so never win greedy decoding: llama.cpp streams no text for them, and a random
        # head that kept picking one made a request with 24 tokens and no text at all
        silent = [i for t, i in vocab.items() if not _printable(tokenizer.decode([i], skip_special_tokens=False), t)]
        output[silent] = 0
        tensors["output.weight"] = output
    tensors["output_norm.weight"] = np.ones(N_EMBD, np.float32)
    # with a chain the layers' outputs are tiny: the final hidden state is (almost) the last token's embedding
    out_scale = 1e-3 if chain else 0.02
    for i in range(N_LAYER):
        tensors[f"blk.{i}.attn_norm.weight"] = np.ones(N_EMBD, np.float32)
        tensors[f"blk.{i}.ffn_norm.weight"] = np.ones(N_EMBD, np.float32)
        for name in ("attn_q", "attn_k", "attn_v"):
            tensors[f"blk.{i}.{name}.weight"] = random(N_EMBD, N_EMBD)
        tensors[f"blk.{i}.attn_output.weight"] = random(N_EMBD, N_EMBD, scale=out_scale)
        tensors[f"blk.{i}.ffn_gate.weight"] = random(N_FF, N_EMBD)
        tensors[f"blk.{i}.ffn_up.weight"] = random(N_FF, N_EMBD)
        tensors[f"blk.{i}.ffn_down.weight"] = random(N_EMBD, N_FF, scale=out_scale)
    return tensors


def _write_gguf(path: Path, tokenizer, tensors: dict[str, np.ndarray]) -> None:
    import gguf

    vocab = tokenizer.get_vocab()
    tokens = sorted(vocab, key=vocab.get)
    merges = [" ".join(m) if isinstance(m, list) else m for m in json.loads(tokenizer.to_str())["model"]["merges"]]
    writer = gguf.GGUFWriter(str(path), "llama")
    writer.add_name("wafer-tiny-test-llama")
    writer.add_context_length(CONTEXT)
    writer.add_embedding_length(N_EMBD)
    writer.add_block_count(N_LAYER)
    writer.add_feed_forward_length(N_FF)
    writer.add_head_count(N_HEAD)
    writer.add_head_count_kv(N_HEAD)
    writer.add_rope_dimension_count(N_EMBD // N_HEAD)
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
    for name, value in tensors.items():
        writer.add_tensor(name, value)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()


HF_NAMES = {
    "token_embd": "model.embed_tokens",
    "output": "lm_head",
    "output_norm": "model.norm",
    "attn_norm": "input_layernorm",
    "ffn_norm": "post_attention_layernorm",
    "attn_q": "self_attn.q_proj",
    "attn_k": "self_attn.k_proj",
    "attn_v": "self_attn.v_proj",
    "attn_output": "self_attn.o_proj",
    "ffn_gate": "mlp.gate_proj",
    "ffn_up": "mlp.up_proj",
    "ffn_down": "mlp.down_proj",
}


def _hf_name(name: str) -> str:
    stem = name.removesuffix(".weight")
    if stem.startswith("blk."):
        _, layer, part = stem.split(".")
        return f"model.layers.{layer}.{HF_NAMES[part]}.weight"
    return f"{HF_NAMES[stem]}.weight"


def _rotate_half_order(w: np.ndarray) -> np.ndarray:
    """llama.cpp's rope order back to HF's (the inverse of convert_hf_to_gguf's permute)."""
    return w.reshape(N_HEAD, -1, 2, w.shape[1]).swapaxes(1, 2).reshape(w.shape)


def _write_hf(folder: Path, tokenizer, tensors: dict[str, np.ndarray]) -> None:
    from safetensors.numpy import save_file

    vocab = tokenizer.get_vocab()
    hf = {
        _hf_name(n): _rotate_half_order(w) if n.endswith(("attn_q.weight", "attn_k.weight")) else w
        for n, w in tensors.items()
    }
    save_file(hf, str(folder / "model.safetensors"), metadata={"format": "pt"})
    config = {
        "architectures": ["LlamaForCausalLM"],
        "model_type": "llama",
        "hidden_size": N_EMBD,
        "intermediate_size": N_FF,
        "num_hidden_layers": N_LAYER,
        "num_attention_heads": N_HEAD,
        "num_key_value_heads": N_HEAD,
        "max_position_embeddings": CONTEXT,
        "rms_norm_eps": 1e-5,
        "rope_theta": 10000.0,
        "hidden_act": "silu",
        "vocab_size": len(vocab),
        "bos_token_id": vocab["<s>"],
        "eos_token_id": vocab["</s>"],
        "tie_word_embeddings": False,
        "torch_dtype": "float32",
    }
    (folder / "config.json").write_text(json.dumps(config, indent=2))
    tokenizer_config = {
        "tokenizer_class": "PreTrainedTokenizerFast",
        "bos_token": "<s>",
        "eos_token": "</s>",
        "add_bos_token": False,
        "model_max_length": CONTEXT,
        "chat_template": CHAT_TEMPLATE,
    }
    (folder / "tokenizer_config.json").write_text(json.dumps(tokenizer_config, indent=2))


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
if sys.argv[4] != "default":
    # the host prompt cache's size: 0 = none, a prefix is cached only while a slot holds it
    p.cache_ram_mib = int(sys.argv[4])
server = xllamacpp.Server(p)
print("ready", flush=True)
while True:
    time.sleep(3600)
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_ok(url: str, seconds: float, exited, interval: float = 1.0, request_timeout: float = 1.0) -> bool:
    """Poll ``url`` until it answers 200 (True) or ``seconds`` pass (False); RuntimeError as
    soon as ``exited()`` says the server process is gone."""
    import urllib.error
    import urllib.request

    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if exited():
            raise RuntimeError(f"the server behind {url} exited at start")
        try:
            with urllib.request.urlopen(url, timeout=request_timeout) as response:
                if response.status == 200:
                    return True
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(interval)
    return False


class LlamaServer:
    """llama.cpp on loopback in a child process; ``kill()`` takes it down mid-test."""

    def __init__(
        self,
        model: Path,
        slots: int = 1,
        port: int | None = None,
        cache_ram_mib: int | None = None,
    ):
        """``cache_ram_mib`` sizes llama.cpp's host prompt cache (None: its default; 0: none, a
        prefix stays cached only while a slot holds it)."""
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.model, self.slots, self.cache_ram_mib = model, slots, cache_ram_mib
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-c",
                SERVER,
                str(model / "tiny.gguf"),
                str(self.port),
                str(slots),
                "default" if self.cache_ram_mib is None else str(self.cache_ram_mib),
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            env=dict(os.environ),
        )
        self._wait()

    def _wait(self) -> None:
        if not wait_ok(self.url + "/health", 60, lambda: self.process.poll() is not None, interval=0.2):
            raise RuntimeError("llama.cpp server did not become healthy in 60 s")

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=10)

    def restart(self) -> LlamaServer:
        """The same server again, on the same port (a worker coming back)."""
        self.kill()
        return LlamaServer(self.model, self.slots, port=self.port, cache_ram_mib=self.cache_ram_mib)
