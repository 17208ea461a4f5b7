"""The serving benchmark: open-loop sweeps and single-stream runs against OpenAI-compatible servers."""
