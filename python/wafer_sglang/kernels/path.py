"""The GLM-5 MXFP4 + MTP serving path on HIP, as launches of sglang's own Triton kernels.

Each ``Launch`` calls sglang's launcher (or makes the call its launch site makes, with the same
arguments) at GLM-5's shapes under the latency recipe (TP8, fp8_e4m3 KV, page size 64, MTP 5/1/6,
64 running requests); the launcher's Python picks grids, block sizes and constexprs. ``sites``
names the launch sites in sglang, found again in the installed source on every run: the report
says where each launch is reached from, and a site missing from a base is reported, not assumed.

GLM-5's attention (transformers' ``GlmMoeDsaConfig`` defaults, "the GLM-5 (GlmMoeDsa) model"):
kv_lora_rank 512, qk_rope_head_dim 64, index_topk 2048; ``test/kernels`` checks them against it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

GLM5 = {"kv_lora_rank": 512, "qk_rope_head_dim": 64, "index_topk": 2048}
SERVING = {"page_size": 64, "spec_steps": 5, "spec_topk": 1, "spec_draft_tokens": 6, "running": 64, "context": 8192}

# Every module whose @triton.jit kernels the path can launch on HIP (0.5.14's name, then where
# 0.5.23 moved it); a kernel here that no launch below reaches is listed as not compile-checked.
PATH_MODULES = {
    "MLA KV cache store/load (fp8_e4m3 on gfx95)": (
        "sglang.srt.mem_cache.triton_ops.mla_buffer",
        "sglang.kernels.ops.kvcache.mla_buffer",
    ),
    "request-to-token table, last page location": (
        "sglang.srt.mem_cache.triton_ops.common",
        "sglang.kernels.ops.memory.common",
    ),
    "paged KV allocation (page size 64)": (
        "sglang.srt.mem_cache.triton_ops.allocator",
        "sglang.kernels.ops.memory.allocator",
    ),
    "MTP draft/verify cache locations": (
        "sglang.srt.speculative.triton_ops.cache_locs",
        "sglang.kernels.ops.speculative.cache_locs",
    ),
    "MTP accept/bonus bookkeeping": ("sglang.srt.speculative.triton_ops.eagle", "sglang.kernels.ops.speculative.eagle"),
    "multi-layer MTP state (not GLM-5's one MTP layer)": (
        "sglang.srt.speculative.triton_ops.multi_layer_eagle",
        "sglang.kernels.ops.speculative.multi_layer_eagle",
    ),
    "draft KV materialisation (DFlash)": (
        "sglang.srt.speculative.triton_ops.fused_kv_materialize",
        "sglang.kernels.ops.speculative.fused_kv_materialize",
    ),
    "DSA sparse attention indices and activation quant": (
        "sglang.srt.layers.attention.dsa.triton_kernel",
        "sglang.kernels.ops.attention.dsa.triton_kernel",
    ),
    "DSA indexer K cache": ("sglang.srt.layers.attention.dsa.index_buf_accessor",),
    "DSA fp8 K cache quant (CUDA FlashMLA layout)": ("sglang.srt.layers.attention.dsa.quant_k_cache",),
    "DSA sequence-length expansion and draft padding": (
        "sglang.srt.layers.attention.triton_ops.pad",
        "sglang.kernels.ops.attention.pad",
    ),
    "Triton sparse MLA decode (SGLANG_HACK_FLASHMLA_BACKEND=triton)": (
        "sglang.srt.layers.attention.nsa.triton_decode.triton_mla_kernels_decode_fused",
        "sglang.kernels.ops.attention.dsv4.triton_sparse_decode.triton_mla_kernels_decode_fused",
    ),
    "MXFP4/FP8 upscale for ROCm expert parallelism": ("sglang.srt.layers.moe.rocm_moe_utils",),
}
KVCACHE = PATH_MODULES["MLA KV cache store/load (fp8_e4m3 on gfx95)"]
MEMORY = PATH_MODULES["request-to-token table, last page location"]
ALLOCATOR = PATH_MODULES["paged KV allocation (page size 64)"]
CACHE_LOCS = PATH_MODULES["MTP draft/verify cache locations"]
EAGLE = PATH_MODULES["MTP accept/bonus bookkeeping"]
DSA = PATH_MODULES["DSA sparse attention indices and activation quant"]


def load(name: str, *modules: str):
    """``name`` from the first of ``modules`` this sglang has (0.5.23 moved the kernels), or None."""
    import importlib

    for module in modules:
        try:
            found = importlib.import_module(module)
        except ModuleNotFoundError:
            continue
        if hasattr(found, name):
            return getattr(found, name)
    return None


def need(name: str, *modules: str):
    found = load(name, *modules)
    if found is None:
        raise LookupError(f"{name} is in none of {', '.join(modules)}")
    return found


@dataclass(frozen=True)
class Launch:
    name: str
    sites: tuple[tuple[str, str], ...]  # (file under sglang/, text of the launch), found at run time
    run: Callable[[str], None]  # the launch, given the fp8 dtype name of the KV cache
    hot: bool = False  # in the decode step of every request (its spills are listed)


LAUNCHES: list[Launch] = []


def launch(name: str, *sites: tuple[str, str], hot: bool = False):
    def register(fn: Callable[[str], None]) -> Callable[[str], None]:
        LAUNCHES.append(Launch(name, sites, fn, hot))
        return fn

    return register


def _torch():
    import torch

    return torch


def _ints(*shape, high: int = 1 << 20, dtype: str = "int64"):
    torch = _torch()
    return torch.randint(0, high, shape, dtype=getattr(torch, dtype))


def _bf16(*shape):
    torch = _torch()
    return torch.randn(*shape, dtype=torch.bfloat16)


def _pool():
    """(req_to_token, req_pool_indices, seq_lens) for the running requests."""
    running, context = SERVING["running"], SERVING["context"]
    return _ints(running + 1, context, dtype="int32"), _ints(running, high=running), _ints(running, high=context)


MEMORY_POOL = "srt/mem_cache/memory_pool.py"


@launch(
    "MLA KV store, fp8 quantised (DSA on HIP)",
    (MEMORY_POOL, "set_mla_kv_buffer_triton_fp8_quant("),
    hot=True,
)
def _kv_store_fp8(fp8: str) -> None:
    torch, n = _torch(), SERVING["running"] * SERVING["spec_draft_tokens"]
    width = GLM5["kv_lora_rank"] + GLM5["qk_rope_head_dim"]
    kv = torch.zeros(SERVING["running"] * SERVING["context"], 1, width, dtype=torch.uint8)
    nope, rope = _bf16(n, 1, GLM5["kv_lora_rank"]), _bf16(n, 1, GLM5["qk_rope_head_dim"])
    need("set_mla_kv_buffer_triton_fp8_quant", *KVCACHE)(
        kv, _ints(n, high=kv.shape[0]), nope, rope, getattr(torch, fp8)
    )


@launch("MLA KV load, fp8 -> bf16", (MEMORY_POOL, "get_mla_kv_buffer_triton("))
def _kv_load_fp8(fp8: str) -> None:
    torch, n = _torch(), SERVING["running"]
    width = GLM5["kv_lora_rank"] + GLM5["qk_rope_head_dim"]
    kv = torch.zeros(SERVING["running"] * SERVING["context"], 1, width, dtype=getattr(torch, fp8))
    nope, rope = _bf16(n, 1, GLM5["kv_lora_rank"]), _bf16(n, 1, GLM5["qk_rope_head_dim"])
    need("get_mla_kv_buffer_triton", *KVCACHE)(kv, _ints(n, high=kv.shape[0]), nope, rope)


@launch("MLA KV store, bf16 KV cache", (MEMORY_POOL, "set_mla_kv_buffer_triton("), hot=True)
def _kv_store_bf16(fp8: str) -> None:
    torch, n = _torch(), SERVING["running"]
    width = GLM5["kv_lora_rank"] + GLM5["qk_rope_head_dim"]
    kv = torch.zeros(SERVING["running"] * SERVING["context"], 1, width, dtype=torch.bfloat16)
    nope, rope = _bf16(n, 1, GLM5["kv_lora_rank"]), _bf16(n, 1, GLM5["qk_rope_head_dim"])
    need("set_mla_kv_buffer_triton", *KVCACHE)(kv, _ints(n, high=kv.shape[0]), nope, rope)


@launch(
    "DSA top-k KV indices (aiter sparse MLA decode)",
    ("srt/layers/attention/dsa_backend.py", "get_valid_kv_indices(page_table_1, kv_indptr, kv_indices, bs)"),
    hot=True,
)
def _dsa_valid_indices(fp8: str) -> None:
    torch, bs, topk = _torch(), SERVING["running"], GLM5["index_topk"]
    page_table = _ints(bs, topk, dtype="int32")
    kv_indptr, kv_indices = torch.zeros(bs + 1, dtype=torch.int32), torch.empty(bs * topk, dtype=torch.int32)
    need("get_valid_kv_indices", *DSA)(page_table, kv_indptr, kv_indices, bs)


@launch(
    "last page location (HIP's int32-safe variant)",
    ("srt/mem_cache/common.py", "get_last_loc_triton_safe("),
    ("srt/mem_cache/allocation.py", "get_last_loc_triton_safe("),
)
def _last_loc(fp8: str) -> None:
    req_to_token, indices, seq_lens = _pool()
    need("get_last_loc_triton_safe", *MEMORY)(req_to_token, indices, seq_lens)


def _next_power_of_2(n: int) -> int:
    return 1 << (n - 1).bit_length()  # sglang's next_power_of_2, which its call sites pass


@launch(
    "paged allocation, decode (page size 64)",
    ("srt/mem_cache/allocator/paged.py", "alloc_decode_kernel[(bs,)]("),
    hot=True,
)
def _alloc_decode(fp8: str) -> None:
    torch, bs = _torch(), SERVING["running"]
    out = torch.empty(bs, dtype=torch.int64)
    kernel = need("alloc_decode_kernel", *ALLOCATOR)
    kernel[(bs,)](_ints(bs), _ints(bs), _ints(4096), out, _next_power_of_2(bs), SERVING["page_size"])


@launch("paged allocation, extend (page size 64)", ("srt/mem_cache/allocator/paged.py", "alloc_extend_kernel[(bs,)]("))
def _alloc_extend(fp8: str) -> None:
    torch, bs = _torch(), SERVING["running"]
    out = torch.empty(bs * SERVING["spec_draft_tokens"], dtype=torch.int64)
    kernel = need("alloc_extend_kernel", *ALLOCATOR)
    kernel[(bs,)](_ints(bs), _ints(bs), _ints(bs), _ints(4096), out, _next_power_of_2(bs), SERVING["page_size"])


@launch(
    "MTP draft cache locations (steps 5, topk 1)",
    ("srt/speculative/base_spec_worker.py", "assign_draft_cache_locs_contiguous[(bs,)]("),
    ("srt/speculative/eagle_worker_common.py", "assign_draft_cache_locs_contiguous_func("),
    hot=True,
)
def _draft_cache_locs(fp8: str) -> None:
    torch, (req_to_token, indices, seq_lens) = _torch(), _pool()
    steps, topk, bs = SERVING["spec_steps"], SERVING["spec_topk"], SERVING["running"]
    out = torch.empty(bs * topk * steps, dtype=torch.int64)
    launcher = load("assign_draft_cache_locs_contiguous_func", *CACHE_LOCS)  # 0.5.23's
    if launcher is not None:
        launcher(indices, req_to_token, seq_lens, out, topk, steps)
        return
    kernel = need("assign_draft_cache_locs_contiguous", *CACHE_LOCS)
    kernel[(bs,)](indices, req_to_token, seq_lens, out, req_to_token.shape[1], topk, steps)


@launch(
    "MTP verify: request-to-token rows (6 draft tokens)",
    ("srt/speculative/eagle_info_v2.py", "assign_req_to_token_pool_func("),
    ("srt/mem_cache/allocation.py", "assign_req_to_token_pool_func("),
    hot=True,
)
def _verify_req_to_token(fp8: str) -> None:
    req_to_token, indices, seq_lens = _pool()
    bs, draft = SERVING["running"], SERVING["spec_draft_tokens"]
    launcher = need("assign_req_to_token_pool_func", *CACHE_LOCS, "sglang.srt.mem_cache.allocation")
    launcher(indices, req_to_token, seq_lens, seq_lens + draft, _ints(bs * draft), bs)


@launch("MTP verify: extend cache locations", ("srt/speculative/eagle_utils.py", "assign_extend_cache_locs_func("))
def _verify_extend_locs(fp8: str) -> None:
    req_to_token, indices, seq_lens = _pool()
    draft, bs = SERVING["spec_draft_tokens"], SERVING["running"]
    need("assign_extend_cache_locs_func", *CACHE_LOCS)(
        indices, req_to_token, seq_lens, seq_lens + draft, bs, draft, "cpu"
    )


@launch(
    "MTP accept: accepted KV slots",
    ("srt/speculative/spec_utils.py", "fill_accept_out_cache_loc[(size,)]("),
    ("srt/speculative/spec_utils.py", "fill_accept_out_cache_loc_func("),
    hot=True,
)
def _accept_slots(fp8: str) -> None:
    torch, size = _torch(), SERVING["running"] * SERVING["spec_draft_tokens"]
    args = (_ints(size), _ints(size), torch.zeros(size, dtype=torch.int64))
    launcher = load("fill_accept_out_cache_loc_func", *EAGLE)  # 0.5.23's
    if launcher is not None:
        launcher(*args, size)
        return
    need("fill_accept_out_cache_loc", *EAGLE)[(size,)](*args, _next_power_of_2(size))


@launch(
    "MTP accept: bonus tokens (stride steps + 1)",
    ("srt/speculative/eagle_worker_v2.py", "fill_bonus_tokens[(bs,)]("),
    ("srt/speculative/eagle_worker_common.py", "fill_bonus_tokens_func("),
    hot=True,
)
def _bonus_tokens(fp8: str) -> None:
    torch, bs, stride = _torch(), SERVING["running"], SERVING["spec_steps"] + 1
    args = (_ints(bs, stride, dtype="int32"), _ints(bs, high=stride, dtype="int32"), torch.empty(bs, dtype=torch.int32))
    launcher = load("fill_bonus_tokens_func", *EAGLE)  # 0.5.23's
    if launcher is not None:
        launcher(*args, stride, bs)
        return
    need("fill_bonus_tokens", *EAGLE)[(bs,)](*args, stride)
