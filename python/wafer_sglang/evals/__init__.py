"""``wafer-sglang eval``: the quality gate — lm-evaluation-harness against a baseline and a candidate
endpoint, side by side, with MTP acceptance read from each server."""
