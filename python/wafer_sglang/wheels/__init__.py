"""The fork wheel: METADATA rewriting, the fork manifest and the reproducible wheel builder."""
