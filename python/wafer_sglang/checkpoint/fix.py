"""`checkpoint fix`: add the exclude entries the engine needs, as a reviewed, reversible edit."""

from __future__ import annotations

import difflib
import json
import shutil
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from wafer_sglang.checkpoint.plan import Report
from wafer_sglang.fsutil import atomic_write_text


@dataclass
class Edit:
    config_file: Path
    added: list[str]
    flags: list[str]
    old_text: str
    new_text: str

    @property
    def diff(self) -> str:
        return "".join(difflib.unified_diff(
            self.old_text.splitlines(keepends=True), self.new_text.splitlines(keepends=True),
            f"a/{self.config_file.name}", f"b/{self.config_file.name}",
        ))


def plan_edit(path: Path, report: Report) -> Edit:
    config_file = path / "config.json"
    old_text = config_file.read_text()
    config = json.loads(old_text)
    excludes = config["quantization_config"].setdefault("exclude", [])
    added = []
    for finding in report.findings:
        for entry in finding.exclude_entries:
            if entry not in excludes and entry not in added:
                added.append(entry)
    excludes.extend(added)
    flags = sorted({f.needs_flag for f in report.findings if f.needs_flag})
    new_text = old_text if not added else _dump_like(config, old_text)
    return Edit(config_file, added, flags, old_text, new_text)


def _dump_like(config: dict, original: str) -> str:
    """JSON with the original's indentation, so the diff shows only what changed."""
    indent = 2
    for line in original.splitlines()[1:]:
        stripped = line.lstrip(" ")
        if stripped and len(stripped) < len(line):
            indent = len(line) - len(stripped)
            break
    text = json.dumps(config, indent=indent, ensure_ascii=False)
    return text + "\n" if original.endswith("\n") else text


def write(edit: Edit, now: datetime | None = None) -> Path | None:
    """Back up config.json (timestamped), then replace it atomically. None when unchanged."""
    if edit.new_text == edit.old_text:
        return None
    stamp = (now or datetime.now(timezone.utc)).strftime("%Y%m%dT%H%M%SZ")
    backup = edit.config_file.with_name(f"config.json.bak-{stamp}")
    shutil.copy2(edit.config_file, backup)
    atomic_write_text(edit.config_file, edit.new_text)
    return backup
