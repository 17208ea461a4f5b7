"""The patch queue of one base: fetch its verified wheel, apply its series into a work tree."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from wafer_sglang import bases
from wafer_sglang.bases import UpstreamPin, WheelPin
from wafer_sglang.queue import download
from wafer_sglang.queue.headers import PatchHeader, read_header
from wafer_sglang.queue.series import Series, read_series
from wafer_sglang.queue.worktree import (
    AppliedPatch,
    add_overlay,
    apply_series,
    head_date,
    import_upstream,
    overlay_files,
    staged_dir,
    write_marker,
)
from wafer_sglang.repo import wheel_cache_dir


@dataclass(frozen=True)
class Applied:
    """What one apply made: everything a build needs, so nothing is read twice."""

    base: UpstreamPin
    python_tag: str
    wheel: WheelPin  # the upstream wheel the tree was made from (a derived tag's source)
    work_dir: Path
    patches: list[AppliedPatch]
    headers: list[PatchHeader]  # one per patch, in series order
    overlay: list[str]  # the overlay's files, relative to the sglang package

    def __len__(self) -> int:
        return len(self.patches)

    def __iter__(self):
        return iter(self.patches)


@dataclass
class Queue:
    """One base's queue inside a checkout."""

    root: Path
    base: UpstreamPin

    @classmethod
    def open(cls, root: Path, base: str | None = None) -> Queue:
        pins = bases.pins(root)
        return cls(root=root, base=pins.base(base or pins.default_base))

    @property
    def patch_dir(self) -> Path:
        return self.root / "patches" / self.base.version

    @property
    def overlay_root(self) -> Path:
        return self.root / "python" / "sglang"

    @property
    def cache_dir(self) -> Path:
        return wheel_cache_dir(self.root)

    def series(self) -> Series:
        return read_series(self.patch_dir)

    def fetch(self, python_tag: str, *, refresh: bool = False, quiet: bool = False) -> Path:
        return download.fetch(self.base.wheel(python_tag), self.cache_dir, refresh=refresh, quiet=quiet)

    def apply(self, python_tag: str, work_dir: Path, *, force: bool = False, quiet: bool = False) -> Applied:
        """Fetch, import, apply the series, add the overlay; ``work_dir`` appears only on success."""
        wheel = self.fetch(python_tag, quiet=quiet)
        series = self.series()
        with staged_dir(work_dir, force=force, protected=[self.root]) as tmp:
            import_upstream(tmp, wheel, self.base, self.base.wheel(python_tag))
            write_marker(tmp, self.base.version, python_tag)
            patches = apply_series(tmp, self.patch_dir, series, self.base.version)
            add_overlay(tmp, self.overlay_root, head_date(tmp))
        headers = [read_header(self.patch_dir / p.name) for p in patches]
        overlay = [str(p) for p in overlay_files(self.overlay_root)]
        return Applied(self.base, python_tag, self.base.wheel(python_tag), work_dir, patches, headers, overlay)
