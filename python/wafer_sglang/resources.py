"""Files shipped inside the tooling package (``data/``)."""

from pathlib import Path

DATA = Path(__file__).resolve().parent / "data"
