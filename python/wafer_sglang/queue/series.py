"""``patches/<base>/series``: the authority for patch order, in quilt syntax.

One file name a line, ``#`` comment lines, `` # `` inline comments, blank lines. The comment
block at the top, up to its first blank line, is the file's header; other comment and blank
lines belong to the entry that follows them (a group header stays with its group when export
renames or drops entries); lines after the last entry are the trailer.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from wafer_sglang.errors import WaferError

NUMBERED = re.compile(r"^(\d{4})-(.+\.patch)$")


@dataclass
class SeriesEntry:
    name: str
    leading: list[str] = field(default_factory=list)  # comment/blank lines above it
    inline: str = ""  # text after " # " on the same line, without the marker
    line: int = 0

    @property
    def slug(self) -> str:
        """The name without its cosmetic number: ``rocm-guard-....patch``."""
        m = NUMBERED.match(self.name)
        return m.group(2) if m else self.name


@dataclass
class Series:
    entries: list[SeriesEntry]
    trailer: list[str] = field(default_factory=list)
    header: list[str] = field(default_factory=list)  # file comment block, up to its blank line

    @property
    def names(self) -> list[str]:
        return [e.name for e in self.entries]

    def render(self) -> str:
        lines: list[str] = list(self.header)
        for e in self.entries:
            lines.extend(e.leading)
            lines.append(f"{e.name}   # {e.inline}" if e.inline else e.name)
        lines.extend(self.trailer)
        return "\n".join(lines) + "\n"


def parse_series(text: str, source: str = "series") -> Series:
    entries: list[SeriesEntry] = []
    pending: list[str] = []
    for number, raw in enumerate(text.splitlines(), start=1):
        stripped = raw.strip()
        if not stripped or stripped.startswith("#"):
            pending.append(raw.rstrip())
            continue
        name, _, comment = raw.partition(" #")
        name = name.strip()
        if " " in name or "\t" in name or "/" in name:
            raise WaferError(f"{source}:{number}: expected one patch file name, got {raw!r}")
        if name.startswith("-"):
            raise WaferError(f"{source}:{number}: quilt options ({name}) are not supported")
        entries.append(SeriesEntry(name=name, leading=pending, inline=comment.strip(), line=number))
        pending = []
    if not entries:
        return Series(entries=[], header=pending)
    first = entries[0].leading
    if "" in first:  # the comment block before the first blank line describes the file
        cut = first.index("") + 1
        header, entries[0].leading = first[:cut], first[cut:]
    else:
        header = []
    return Series(entries=entries, trailer=pending, header=header)


def read_series(patch_dir: Path) -> Series:
    path = patch_dir / "series"
    if not path.is_file():
        raise WaferError(f"{path} is missing: every base needs a series file (it may be empty)")
    return parse_series(path.read_text(), source=str(path))
