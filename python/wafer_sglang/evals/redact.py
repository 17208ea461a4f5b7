"""Keeping credentials out of what an eval writes.

lm-eval logs aiohttp's exception repr when a server answers an HTTP error, and that repr holds
the request headers, ``Authorization: Bearer <key>`` included. Its output is therefore written
through ``RedactingSink`` (the key never reaches the disk, not even for a moment), and every file
of a run is checked afterwards (``scrub_tree``) for what a third party might have written itself.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import BinaryIO

from wafer_sglang.fsutil import atomic_write_bytes

MASK = b"***"
CREDENTIAL_NAME = re.compile(r"auth|key|token|secret|cookie|password|signature", re.IGNORECASE)
PLAIN_VALUE_MAX = 7  # a value this short in a header not named as a credential (a tenant, a flag) stays
VALUE_MIN = 4  # nor is anything shorter masked, credential or not


def header_secrets(headers: Mapping[str, str]) -> list[str]:
    """What to mask of the request headers: every credential-named header's value (and a bearer's
    token alone), and any value long enough to be one. Masking "1" or "true" would rewrite the
    scores in lm-eval's files, and no credential is that short."""
    found = []
    for name, value in headers.items():
        if CREDENTIAL_NAME.search(name) or len(value) > PLAIN_VALUE_MAX:
            found += [value, *value.split()[1:]]  # "Bearer KEY": KEY is also masked where it stands alone
    return [s for s in found if len(s) >= VALUE_MIN]


def redact(data: bytes, secrets: list[bytes]) -> bytes:
    for secret in secrets:
        data = data.replace(secret, MASK)
    return data


class RedactingSink:
    """Writes to ``sink`` with every secret masked, also across chunk boundaries: the last
    ``len(longest secret) - 1`` bytes wait for the next chunk, which may complete a secret."""

    def __init__(self, sink: BinaryIO, secrets: list[str]):
        self.sink = sink
        self.secrets = sorted({s.encode() for s in secrets if s}, key=len, reverse=True)
        self.hold = max((len(s) for s in self.secrets), default=1) - 1
        self.pending = b""

    def write(self, data: bytes) -> None:
        self.pending = redact(self.pending + data, self.secrets)
        cut = len(self.pending) - self.hold
        if cut > 0:
            self.sink.write(self.pending[:cut])
            self.sink.flush()
            self.pending = self.pending[cut:]

    def close(self) -> None:
        self.sink.write(redact(self.pending, self.secrets))
        self.sink.flush()
        self.pending = b""


def pump(fd: int, sink: RedactingSink) -> None:
    """Copy a pipe into ``sink`` until its writer closes it (lm-eval's progress bars use \\r, so
    chunks, not lines)."""
    while chunk := os.read(fd, 65536):
        sink.write(chunk)
    sink.close()


def scrub_tree(root: Path, secrets: list[str]) -> list[Path]:
    """Mask every secret in every file under ``root``; the files that held one."""
    encoded = [s.encode() for s in secrets if s]
    scrubbed = []
    for path in sorted(p for p in root.rglob("*") if p.is_file() and not p.is_symlink()):
        data = path.read_bytes()
        if any(s in data for s in encoded):
            atomic_write_bytes(path, redact(data, encoded))
            scrubbed.append(path)
    return scrubbed
