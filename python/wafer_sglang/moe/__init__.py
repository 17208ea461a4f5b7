"""aiter fp4 fused-MoE configs: lookup keys, coverage, the fork's rows, tuning."""
