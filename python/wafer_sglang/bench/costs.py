"""$/GPU-hour from the dated, sourced price table (or the user's own number)."""

from __future__ import annotations

from wafer_sglang import resources
from wafer_sglang.compat import tomllib
from wafer_sglang.errors import WaferError

PRICES = resources.DATA / "gpu_prices.toml"


def price(tier_gpu: str | None, hourly_usd: float | None) -> tuple[float, str] | None:
    """(usd per GPU-hour, where it came from) or None when neither is given."""
    if hourly_usd is not None:
        return hourly_usd, "--gpu-hourly-usd"
    if tier_gpu is None:
        return None
    table = tomllib.loads(PRICES.read_text())
    tier, _, gpu = tier_gpu.partition("/")
    try:
        return float(table["tier"][tier][gpu]), f"{tier}/{gpu}: {table['source']} (as of {table['as_of']})"
    except KeyError:
        known = ", ".join(f"{t}/{g}" for t, gpus in table["tier"].items() for g in gpus)
        raise WaferError(f"unknown price tier {tier_gpu!r}; known: {known}") from None
