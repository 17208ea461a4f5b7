"""Which tuned fused-MoE CSVs an aiter reads: on this host, or in the fork's image.

aiter's ``AITER_CONFIG.get_config_file``: without ``AITER_CONFIG_FMOE`` it merges
``configs/tuned_fmoe.csv`` with every ``configs/model_configs/*tuned_fmoe*.csv`` (not "untuned");
**with it set, only the listed files are read** — so the fork lists aiter's own files first, then
its own, never its own alone.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

from wafer_sglang.errors import WaferError
from wafer_sglang.repo import build_dir

FORK_FMOE_IN_IMAGE = "/opt/wafer/fmoe"  # the fork's rows in the image (a fixed path: ENV names it)


def aiter_configs_dir(explicit: Path | None = None) -> Path | None:
    """aiter's ``configs/`` folder: ``explicit`` (an aiter checkout or package), else the installed
    aiter's, found without importing it."""
    if explicit is not None:
        for candidate in (explicit / "aiter" / "configs", explicit / "configs"):
            if (candidate / "tuned_fmoe.csv").is_file():
                return candidate
        raise WaferError(f"{explicit} holds no aiter configs (aiter/configs/tuned_fmoe.csv)")
    spec = importlib.util.find_spec("aiter")
    if spec is None or not spec.submodule_search_locations:
        return None
    configs = Path(next(iter(spec.submodule_search_locations))) / "configs"
    return configs if configs.is_dir() else None


def aiter_tuned_files(configs: Path | None) -> list[Path]:
    """The files aiter merges when AITER_CONFIG_FMOE is unset (get_config_file)."""
    if configs is None:
        return []
    model_configs = sorted(
        p for p in (configs / "model_configs").glob("*tuned_fmoe*.csv") if p.is_file() and "untuned" not in p.name
    )
    default = configs / "tuned_fmoe.csv"
    return ([default] if default.is_file() else []) + model_configs


def fork_rows_dir(root: Path, base: str) -> Path:
    """Where `moe rows` writes the fork's rows for a base's image (ignored build folder)."""
    return build_dir(root) / "fmoe" / base


def fork_tuned_files(folder: Path | None) -> list[Path]:
    if folder is None or not folder.is_dir():
        return []
    return sorted(p for p in folder.glob("*tuned_fmoe*.csv") if "untuned" not in p.name)


def config_fmoe_value(files: list[Path | str]) -> str:
    """The AITER_CONFIG_FMOE value: aiter's own files first, then the fork's, ':'-joined."""
    return ":".join(str(f) for f in files)


def host_config_fmoe(configs: Path, fork_dir: Path | None, listed: str) -> str:
    """The value this host should have: aiter's own files, then ``fork_dir``'s rows, else the
    non-aiter files ``listed`` (AITER_CONFIG_FMOE now) names — a user's own rows are kept."""
    own = aiter_tuned_files(configs)
    if fork_dir is not None:
        ours = fork_tuned_files(fork_dir)
    else:
        own_set = {p.resolve() for p in own}
        ours = [Path(p) for p in listed.split(":") if p and Path(p).resolve() not in own_set]
    return config_fmoe_value(own + ours)
