"""Launch recipes for sglang servers."""
