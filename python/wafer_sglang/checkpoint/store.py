"""A checkpoint's config and tensor headers: names, dtypes and shapes, never data."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from wafer_sglang.errors import WaferError

INDEX = "model.safetensors.index.json"
SINGLE = "model.safetensors"


class UnusableCheckpoint(WaferError):
    """Input the check cannot judge (exit 2)."""


@dataclass(frozen=True)
class Tensor:
    name: str
    dtype: str  # safetensors names: BF16, F16, F32, U8, F8_E4M3, ...
    shape: tuple[int, ...]
    file: str


@dataclass
class Checkpoint:
    path: Path
    config: dict
    tensors: dict[str, Tensor]

    @property
    def quantization(self) -> dict:
        return self.config.get("quantization_config") or {}


def load_config(path: Path) -> dict:
    """A checkpoint folder's config.json (or ``path`` itself when it is a JSON file)."""
    config_file = path if path.is_file() else path / "config.json"
    if not config_file.is_file():
        raise UnusableCheckpoint(f"{config_file} is missing: is {path} a Hugging Face checkpoint folder?")
    try:
        config = json.loads(config_file.read_text())
    except (OSError, UnicodeDecodeError) as exc:
        raise UnusableCheckpoint(f"cannot read {config_file}: {exc}") from None
    except json.JSONDecodeError as exc:
        raise UnusableCheckpoint(f"{config_file} is not valid JSON: {exc}") from None
    if not isinstance(config, dict):
        raise UnusableCheckpoint(f"{config_file} is not a JSON object")
    return config


def shard_files(path: Path) -> list[str]:
    index = path / INDEX
    if index.is_file():
        try:
            weight_map = json.loads(index.read_text())["weight_map"]
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise UnusableCheckpoint(f"{index} has no readable weight_map: {exc}") from None
        return sorted(set(weight_map.values()))
    if (path / SINGLE).is_file():
        return [SINGLE]
    raise UnusableCheckpoint(f"{path} has neither {INDEX} nor {SINGLE}")


def read_headers(path: Path, files: list[str]) -> dict[str, Tensor]:
    from safetensors import SafetensorError, safe_open

    tensors: dict[str, Tensor] = {}
    for name in files:
        shard = path / name
        if not shard.exists():
            raise UnusableCheckpoint(f"{INDEX} names {name}, which is missing")
        if not shard.is_file():
            raise UnusableCheckpoint(f"{shard} is not a regular file")
        try:
            with safe_open(shard, framework="numpy") as handle:
                for key in handle.keys():
                    view = handle.get_slice(key)
                    tensors[key] = Tensor(key, view.get_dtype(), tuple(view.get_shape()), name)
        except (SafetensorError, OSError) as exc:
            raise UnusableCheckpoint(f"{shard}: unreadable safetensors header ({exc})") from None
    return tensors


def load(path: Path) -> Checkpoint:
    path = Path(path)
    if not path.is_dir():
        raise UnusableCheckpoint(f"{path} is not a folder")
    config = load_config(path)
    return Checkpoint(path=path, config=config, tensors=read_headers(path, shard_files(path)))
