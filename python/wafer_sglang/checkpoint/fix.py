"""`checkpoint fix`: add the exclude entries the engine needs, as a reviewed, reversible edit."""

from __future__ import annotations

import difflib
import json
import os
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from wafer_sglang.checkpoint.json_edit import append_strings
from wafer_sglang.checkpoint.plan import Report
from wafer_sglang.errors import WaferError
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
        return "".join(
            difflib.unified_diff(
                self.old_text.splitlines(keepends=True),
                self.new_text.splitlines(keepends=True),
                f"a/{self.config_file.name}",
                f"b/{self.config_file.name}",
            )
        )


def plan_edit(path: Path, report: Report) -> Edit:
    config_file = path / "config.json"
    old_text = config_file.read_text()
    excludes = json.loads(old_text)["quantization_config"].get("exclude") or []
    added = []
    for finding in report.findings:
        for entry in finding.exclude_entries:
            if entry not in excludes and entry not in added:
                added.append(entry)
    flags = sorted({f.needs_flag for f in report.findings if f.needs_flag})
    new_text = append_strings(old_text, ("quantization_config", "exclude"), added)
    return Edit(config_file, added, flags, old_text, new_text)


def write(edit: Edit, now: datetime | None = None) -> Path | None:
    """Back up config.json to a new file of its own (never an existing name or a link planted at
    it), check the backup, then replace config.json atomically — if it is still what was read.
    None when unchanged. Any failure removes the partial backup and leaves config.json as it was."""
    if edit.new_text == edit.old_text:
        return None
    config = edit.config_file
    if not config.stat().st_mode & 0o200 or not os.access(config, os.W_OK):  # 0444 holds for root too
        raise WaferError(
            f"{config} is read-only (mode {config.stat().st_mode & 0o777:o}): nothing was changed; "
            "make it writable (chmod u+w) to let fix edit it"
        )
    original = edit.old_text.encode()
    backup = _exclusive_backup(config, original, now or datetime.now(timezone.utc))
    try:
        if config.read_bytes() != original:
            raise WaferError(
                f"{config} changed while fix was working (another fix or an editor?); nothing was changed: run it again"
            )
        atomic_write_text(config, edit.new_text)
    except OSError as exc:
        backup.unlink(missing_ok=True)
        raise WaferError(f"cannot replace {config}: {exc.strerror or exc}; it is unchanged") from None
    except BaseException:
        backup.unlink(missing_ok=True)
        raise
    return backup


def _exclusive_backup(config: Path, data: bytes, now: datetime) -> Path:
    stamp = now.strftime("%Y%m%dT%H%M%SZ")
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0)
    for attempt in range(100):
        backup = config.with_name(f"config.json.bak-{stamp}" + (f"-{attempt}" if attempt else ""))
        try:
            fd = os.open(backup, flags, 0o644)
        except FileExistsError:
            continue  # a backup of this second (or something planted at its name): the next name
        except OSError as exc:
            raise WaferError(
                f"cannot create a backup beside {config}: {exc.strerror or exc}; nothing was changed"
            ) from None
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
                fh.flush()
                os.fsync(fh.fileno())
            if backup.read_bytes() != data:
                raise OSError("the backup does not read back as written")
        except OSError as exc:
            backup.unlink(missing_ok=True)
            raise WaferError(
                f"cannot write the backup {backup.name}: {exc.strerror or exc}; nothing was changed"
            ) from None
        return backup
    raise WaferError(f"100 backups of {config} this second already exist; nothing was changed")
