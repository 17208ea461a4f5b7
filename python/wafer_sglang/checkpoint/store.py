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


# Integer fields the checks read: (minimum, required). A bool is not an integer here.
INT_FIELDS = {
    "num_hidden_layers": (1, True),
    "hidden_size": (1, False),
    "moe_intermediate_size": (1, False),
    "n_routed_experts": (1, False),
    "n_shared_experts": (0, False),
    "num_experts_per_tok": (1, False),
    "first_k_dense_replace": (0, False),
    "num_nextn_predict_layers": (0, False),
}


def validate(config: dict) -> None:
    """The shape of what the checks read, before anything is judged: a wrong type or range is
    unusable input naming the field, never a "clean" verdict on nonsense."""
    for name, (low, required) in INT_FIELDS.items():
        if name not in config:
            if required:
                raise UnusableCheckpoint(f"config.json has no {name}")
            continue
        value = config[name]
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            raise UnusableCheckpoint(f"config.json: {name} = {json.dumps(value)} must be an integer >= {low}")
    if config.get("num_experts_per_tok", 0) > config.get("n_routed_experts", float("inf")):
        raise UnusableCheckpoint("config.json: num_experts_per_tok is larger than n_routed_experts")
    if config.get("first_k_dense_replace", 0) > config["num_hidden_layers"]:
        raise UnusableCheckpoint("config.json: first_k_dense_replace is larger than num_hidden_layers")
    architectures = config.get("architectures", [])
    if not isinstance(architectures, list) or not all(isinstance(a, str) for a in architectures):
        raise UnusableCheckpoint("config.json: architectures must be a list of strings")
    quant = config.get("quantization_config", {})
    if not isinstance(quant, dict):
        raise UnusableCheckpoint("config.json: quantization_config must be an object")
    excludes = quant.get("exclude", [])
    if excludes is not None and (not isinstance(excludes, list) or not all(isinstance(e, str) for e in excludes)):
        raise UnusableCheckpoint("config.json: quantization_config.exclude must be a list of strings")


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
                for key in handle.keys():  # noqa: SIM118 - a safetensors handle, not a dict
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
    validate(config)  # before the shards: nonsense is named as such, not as a missing file
    return Checkpoint(path=path, config=config, tensors=read_headers(path, shard_files(path)))
