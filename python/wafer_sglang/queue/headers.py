"""Patch headers: subject, body and DEP-3/Yocto-style trailers, parsed with git itself.

``git mailinfo`` splits a format-patch file into author, date, subject and message;
``git interpret-trailers --parse`` reads the trailers. Validation tells a *missing* trailer from a
*malformed* one (Yocto's strict vs loose match), so the fix is obvious from the message.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

from packaging.version import InvalidVersion, Version

from wafer_sglang.fsutil import scratch_dir
from wafer_sglang.gitrun import git

URL = r"https?://\S+"
STATUS_FORMS = {
    "Pending": re.compile(r"^Pending$"),
    "Submitted": re.compile(rf"^Submitted \[({URL})\]$"),
    "Backport": re.compile(rf"^Backport \[({URL}|v?\d[\w.+-]*)\]$"),
    "Denied": re.compile(rf"^Denied \[({URL})\]$"),
    "Inappropriate": re.compile(r"^Inappropriate \[[^\]]+\]$"),
}
ORIGIN_FORM = re.compile(rf"^(vendor|upstream, {URL}|backport, {URL})$")
APPLIED_FORM = re.compile(rf"^(\S+), ({URL})$")
DATE_FORM = re.compile(r"^\d{4}-\d{2}-\d{2}$")
SUBJECT_FORM = re.compile(r"^[a-z][a-z0-9_-]*: [a-z0-9`][^\n]*[^.\s]$")
DROP_RULE = re.compile(r"(can\s+be\s+(removed|dropped)|drop\s+(this|the)\s+patch|remove\s+this\s+patch)", re.I)
REQUIRED = ("Upstream-Status", "Origin", "Last-Update")


def _loose(key: str) -> str:
    return re.sub(r"[-_ ]", "", key).lower()


@dataclass
class PatchHeader:
    file: str
    author: str
    email: str
    date: str
    subject: str
    body: str
    trailers: list[tuple[str, str]] = field(default_factory=list)

    def get(self, key: str) -> str | None:
        for k, v in self.trailers:
            if k == key:
                return v
        return None

    @property
    def upstream_status(self) -> str:
        return self.get("Upstream-Status") or ""

    @property
    def applied_upstream(self) -> tuple[str, str] | None:
        """(first upstream version, URL) from ``Applied-Upstream``, if present and well-formed."""
        m = APPLIED_FORM.match(self.get("Applied-Upstream") or "")
        return (m.group(1), m.group(2)) if m else None

    def problems(self) -> list[str]:
        """Everything lint rejects in this header, one sentence each."""
        found = []
        if not SUBJECT_FORM.match(self.subject):
            found.append(
                f"subject {self.subject!r} is malformed: want '<area>: <lowercase imperative>' with no final period"
            )
        if not self.author or not self.email:
            found.append("missing From: author")
        if not self.body.strip():
            found.append("missing body: say why the patch exists and what breaks without it")
        elif not DROP_RULE.search(self.body):
            found.append("body does not say when the patch can be dropped ('This patch can be removed once ...')")
        found += self._trailer_problems()
        return found

    def _trailer_problems(self) -> list[str]:
        found = []
        by_loose: dict[str, list[tuple[str, str]]] = {}
        for k, v in self.trailers:
            by_loose.setdefault(_loose(k), []).append((k, v))
        for key in (*REQUIRED, "Applied-Upstream"):
            seen = by_loose.get(_loose(key), [])
            if not seen:
                if key in REQUIRED:
                    found.append(f"missing trailer {key}:")
                continue
            if len(seen) > 1:
                found.append(f"malformed: trailer {key} appears {len(seen)} times")
            spelled, value = seen[0]
            if spelled != key:
                found.append(f"malformed trailer {spelled!r}: spell it {key!r}")
            elif (why := _value_problem(key, value)) is not None:
                found.append(f"malformed {key}: {value!r} ({why})")
        return found


def _value_problem(key: str, value: str) -> str | None:
    if key == "Upstream-Status":
        form = STATUS_FORMS.get(value.split(" ", 1)[0])
        if form is None:
            return f"must start with one of {', '.join(STATUS_FORMS)}"
        if not form.match(value):
            return "wrong form; e.g. 'Submitted [<PR URL>]', 'Backport [<version or commit URL>]'"
    elif key == "Origin":
        if not ORIGIN_FORM.match(value):
            return "want 'vendor', 'upstream, <URL>' or 'backport, <URL>'"
    elif key == "Applied-Upstream":
        m = APPLIED_FORM.match(value)
        if not m:
            return "want '<first upstream version>, <PR or commit URL>'"
        try:
            Version(m.group(1))
        except InvalidVersion:
            return f"{m.group(1)!r} is not a version"
    elif key == "Last-Update":
        if not DATE_FORM.match(value):
            return "want YYYY-MM-DD"
        try:
            if date.fromisoformat(value) > date.today():
                return "date is in the future"
        except ValueError:
            return "not a real date"
    return None


def read_header(patch: Path) -> PatchHeader:
    return parse_header(patch.name, patch.read_bytes())


def parse_header(name: str, data: bytes) -> PatchHeader:
    """The header of a patch file's bytes (``name``: its file name), as git mailinfo reads it."""
    with scratch_dir() as tmp:
        msg, diff = Path(tmp) / "msg", Path(tmp) / "diff"
        info = git(Path(tmp), "mailinfo", "-k", str(msg), str(diff), input=data).stdout.decode()
        message = msg.read_text()
        parsed = git(Path(tmp), "interpret-trailers", "--parse", "--no-divider", input=message.encode()).stdout.decode()
    fields = dict(line.split(": ", 1) for line in info.splitlines() if ": " in line)
    trailers = [tuple(line.split(": ", 1)) for line in parsed.splitlines() if ": " in line]
    body = _strip_trailers(message, trailers)
    return PatchHeader(
        file=name,
        author=fields.get("Author", ""),
        email=fields.get("Email", ""),
        date=fields.get("Date", ""),
        subject=fields.get("Subject", ""),
        body=body,
        trailers=trailers,
    )


def _strip_trailers(message: str, trailers: list[tuple[str, str]]) -> str:
    if not trailers:
        return message.strip()
    paragraphs = message.rstrip().split("\n\n")
    return "\n\n".join(paragraphs[:-1]).strip()
