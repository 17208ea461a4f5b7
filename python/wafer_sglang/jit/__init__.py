"""JIT kernel sources versus ROCm: which include CUDA-only headers and whether sglang reaches them."""
