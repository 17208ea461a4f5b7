"""Checkpoint check/fix: what the engine will build for each weight vs what the checkpoint stores.

Reads only config.json and safetensors headers (never tensor data).
"""
