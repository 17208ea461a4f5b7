"""``wafer-sglang check-kernels``: the Triton kernels the GLM-5 MXFP4 + MTP serving path launches on
HIP, compiled for an AMD target (gfx950) by sglang's own launchers, without a GPU."""
