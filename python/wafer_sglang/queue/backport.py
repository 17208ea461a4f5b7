"""``patches backport``: an upstream change made a patch of a base's queue.

The change comes from a PR (its ``.patch`` from GitHub), a local ``.patch``/``.diff`` file or a
commit of a local sglang clone; paths are rooted at the upstream repo (``python/sglang/...``), as
our patches are. Only the ``python/sglang/`` part exists in the wheel; the rest (tests, docs,
sgl-kernel) is left out and named. It is applied to the base's work tree strictly (``git apply``:
no fuzz, no 3-way), in a scratch worktree first, so a change that does not apply writes nothing
and names each rejected hunk. The commit gets the project's trailers, with ``Applied-Upstream``
found by reverse-applying the change to each pinned release after the base (as check-upstream
does); ``patches export`` then writes it into the series.
"""

from __future__ import annotations

import datetime as dt
import re
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from packaging.version import Version

from wafer_sglang import bases
from wafer_sglang.errors import WaferError
from wafer_sglang.fsutil import scratch_dir, signals_deferred
from wafer_sglang.gitrun import git, out
from wafer_sglang.queue import download
from wafer_sglang.queue.apply import Queue
from wafer_sglang.queue.export import work_tree_base
from wafer_sglang.queue.worktree import STRIP, UPSTREAM_TAG, filename_of, is_overlay_commit

REPO_URL = "https://github.com/sgl-project/sglang"
PR_SPEC = re.compile(r"^(?:https://github\.com/sgl-project/sglang/pull/)?(\d+)(?:/.*)?$")
PR_IN_TITLE = re.compile(r"\(#(\d+)\)\s*$")
DIFF_HEADER = re.compile(r"^diff --git a/(\S+) b/(\S+)$", re.M)
WHEEL_PREFIX = "python/"


@dataclass
class Change:
    """An upstream change: its URL for the trailers, title, description and diffs (one per commit)."""

    url: str
    title: str
    description: str
    diffs: list[str]
    left_out: list[str] = field(default_factory=list)  # paths outside python/sglang/


@dataclass
class Outcome:
    status: str  # "added" | "already-in-base"
    subject: str = ""
    applied_upstream: str | None = None
    commit: str = ""
    left_out: list[str] = field(default_factory=list)


# -- where the change comes from ----------------------------------------------------------------


def pr_url(spec: str) -> str:
    match = PR_SPEC.match(spec.strip())
    if not match:
        raise WaferError(f"--pr {spec!r}: give a PR number or {REPO_URL}/pull/N")
    return f"{REPO_URL}/pull/{match.group(1)}"


def from_pr(spec: str) -> Change:
    import requests

    url = pr_url(spec)
    try:
        response = requests.get(url + ".patch", timeout=60)
        response.raise_for_status()
    except requests.RequestException as exc:
        raise WaferError(
            f"cannot download {url}.patch ({exc.__class__.__name__}). Where GitHub is reachable: "
            f"curl -LO {url}.patch, then --patch FILE --url {url}"
        ) from None
    return parse_mbox(response.content, url)


def from_file(path: Path, url: str | None) -> Change:
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise WaferError(f"cannot read {path}: {exc.strerror}") from None
    return parse_mbox(data, url)


def from_commit(repo: Path, rev: str, url: str | None) -> Change:
    if not (repo / ".git").exists():
        raise WaferError(f"--repo {repo} is not a git clone of sglang")
    found = git(repo, "rev-parse", "--verify", "--quiet", f"{rev}^{{commit}}", check=False)
    if found.returncode != 0:
        raise WaferError(f"--commit {rev!r} is not a commit of {repo}")
    sha = found.stdout.decode().strip()
    data = git(repo, "format-patch", "-1", "--stdout", "--no-signature", sha).stdout
    return parse_mbox(data, url, fallback_url=f"{REPO_URL}/commit/{sha}")


def parse_mbox(data: bytes, url: str | None, fallback_url: str | None = None) -> Change:
    """A format-patch mbox (one or several commits: a PR's .patch) or a plain diff."""
    with scratch_dir(prefix="wafer-backport-") as tmp:
        folder = Path(tmp)
        (folder / "in").write_bytes(data)
        git(folder, "mailsplit", "-b", "-o" + str(folder), str(folder / "in"))
        titles, descriptions, diffs = [], [], []
        for mail in sorted(folder.glob("[0-9]*")):
            info = git(folder, "mailinfo", "-b", "msg", "patch", input=mail.read_bytes()).stdout.decode()
            title = next((line[9:] for line in info.splitlines() if line.startswith("Subject: ")), "")
            titles.append(title.strip())
            descriptions.append((folder / "msg").read_text(errors="replace").strip())
            diffs.append((folder / "patch").read_text(errors="replace"))
    if not any(DIFF_HEADER.search(d) for d in diffs):
        raise WaferError("the change holds no git diff (diff --git a/... b/...)")
    title = titles[0] if titles and titles[0] else ""
    url = url or _url_from_title(title) or fallback_url  # a squash-merge's "(#N)" names its PR
    if not url:
        raise WaferError("say where the change comes from: --url (a PR or commit URL) for the trailers")
    kept, left_out = [], []
    for diff in diffs:
        sglang_part, outside = split_diff(diff)
        left_out += outside
        if sglang_part:
            kept.append(sglang_part)
    if not kept:
        raise WaferError("the change touches nothing under python/sglang/ (nothing of it is in the wheel)")
    return Change(url, title, descriptions[0] if descriptions else "", kept, sorted(set(left_out)))


def _url_from_title(title: str) -> str | None:
    match = PR_IN_TITLE.search(title)
    return f"{REPO_URL}/pull/{match.group(1)}" if match else None


def split_diff(diff: str) -> tuple[str, list[str]]:
    """The file sections under python/sglang/, and the paths of the others."""
    starts = [m.start() for m in DIFF_HEADER.finditer(diff)]
    kept, outside = [], []
    for begin, end in zip(starts, starts[1:] + [len(diff)]):
        section = diff[begin:end]
        path = DIFF_HEADER.match(section).group(2)
        if path.startswith(WHEEL_PREFIX + "sglang/"):
            kept.append(section)
        else:
            outside.append(path)
    return "".join(kept), outside


# -- applying it ----------------------------------------------------------------------------------


def backport(queue: Queue, work: Path, change: Change, *, after: str | None, subject: str | None) -> Outcome:
    """Commit ``change`` into ``work`` after patch ``after`` (default: the queue's last)."""
    if work_tree_base(work) != queue.base.version:
        raise WaferError(f"{work} was not made from sglang {queue.base.version} (use its own --base)")
    if out(work, "status", "--porcelain").strip():
        raise WaferError(f"{work} has uncommitted changes; commit or stash them first")
    subject = subject or default_subject(change)
    point = _insertion_point(work, after)
    with _scratch(work, point) as scratch:
        if _reverse_applies(scratch, change.diffs):
            return Outcome("already-in-base", left_out=change.left_out)
        _apply_strictly(scratch, change.diffs, queue.base.version)
        landed = first_release_with(queue, change.diffs)
        message = commit_message(change, subject, landed)
        git(scratch, "add", "-A")
        git(scratch, "commit", "-q", "--no-verify", "-F", "-", input=message.encode(), date=_today())
        commit = out(scratch, "rev-parse", "HEAD").strip()
    _splice(work, point, commit)
    return Outcome("added", message.splitlines()[0], landed, commit, change.left_out)


def _insertion_point(work: Path, after: str | None) -> str:
    commits = out(work, "rev-list", "--reverse", f"{UPSTREAM_TAG}..HEAD").split()
    patches = [c for c in commits if not is_overlay_commit(work, c)]
    if after is None:
        return patches[-1] if patches else out(work, "rev-parse", UPSTREAM_TAG).strip()
    for commit in patches:
        if filename_of(work, commit) == after:
            return commit
    names = [filename_of(work, c) or c[:12] for c in patches]
    raise WaferError(f"--after {after!r}: no such patch in {work} (patches: {', '.join(names)})")


@contextmanager
def _scratch(work: Path, point: str) -> Iterator[Path]:
    """A detached worktree at ``point``; removed on exit, so the work tree is untouched on failure."""
    with scratch_dir(prefix="wafer-backport-") as tmp:
        path = Path(tmp) / "tree"
        git(work, "worktree", "add", "-q", "--detach", str(path), point)
        try:
            yield path
        finally:
            with signals_deferred():
                git(work, "worktree", "remove", "--force", str(path), check=False)
                git(work, "worktree", "prune", check=False)


def _reverse_applies(tree: Path, diffs: list[str]) -> bool:
    combined = "".join(diffs)
    return git(tree, "apply", "--check", "-R", STRIP, "-", input=combined.encode(), check=False).returncode == 0


def _apply_strictly(tree: Path, diffs: list[str], base: str) -> None:
    for index, diff in enumerate(diffs, 1):
        check = git(tree, "apply", "--check", STRIP, "-", input=diff.encode(), check=False)
        if check.returncode != 0:
            raise WaferError(
                f"the change does not apply exactly (no fuzz, no 3-way) to sglang {base} plus the queue"
                + (f" (commit {index} of {len(diffs)})" if len(diffs) > 1 else "")
                + ":\n  "
                + "\n  ".join(rejected_hunks(tree, diff))
                + "\nNothing was written. Port it by hand in the work tree (one commit), then export."
            )
        git(tree, "apply", STRIP, "-", input=diff.encode())


def rejected_hunks(tree: Path, diff: str) -> list[str]:
    """Each hunk that does not apply, as ``file: hunk #N @@ ... @@``; the scratch tree is thrown away."""
    headers = _hunk_headers(diff)
    result = git(tree, "apply", "--reject", "--verbose", STRIP, "-", input=diff.encode(), check=False)
    report = result.stderr.decode(errors="replace")
    hunks, current = [], ""
    for line in report.splitlines():
        if line.startswith(("Checking patch ", "Applying patch ")):
            current = line.split(" ", 2)[2].split(" with ")[0].rstrip(".")
        elif match := re.match(r"Rejected hunk #(\d+)", line):
            number = int(match.group(1))
            hunks.append(f"{current}: hunk #{number} {headers.get(current, [''] * number)[number - 1]}".rstrip())
        elif line.startswith("error: ") and ("No such file" in line or "does not exist" in line):
            hunks.append(line.removeprefix("error: "))
    return hunks or [report.strip().splitlines()[0] if report.strip() else "does not apply"]


def _hunk_headers(diff: str) -> dict[str, list[str]]:
    """Per file (as the work tree names it), the ``@@ ... @@`` line of each hunk."""
    headers: dict[str, list[str]] = {}
    current = None
    for line in diff.splitlines():
        if match := DIFF_HEADER.match(line):
            current = headers.setdefault(match.group(2).removeprefix(WHEEL_PREFIX), [])
        elif line.startswith("@@ ") and current is not None:
            current.append(line)
    return headers


def first_release_with(queue: Queue, diffs: list[str]) -> str | None:
    """The first pinned release after the base that already contains the change."""
    pins = bases.pins(queue.root)
    base = Version(queue.base.version)
    later = sorted((v for v in pins.upstream if Version(v) > base), key=Version)
    for version in later:
        pin = pins.get(version)
        wheel = download.fetch(pin.any_wheel("cp311"), queue.cache_dir, quiet=True)
        if _contained_in(wheel, diffs):
            return version
    return None


def _contained_in(wheel: Path, diffs: list[str]) -> bool:
    """Whether the change reverse-applies to the wheel's files (one line of context may differ)."""
    paths = {b.removeprefix(WHEEL_PREFIX) for d in diffs for _, b in DIFF_HEADER.findall(d)}
    with scratch_dir(prefix="wafer-release-") as tmp:
        tree = Path(tmp)
        git(tree, "init", "-q")
        with zipfile.ZipFile(wheel) as zf:
            names = set(zf.namelist())
            for path in paths & names:
                zf.extract(path, tree)
        combined = "".join(diffs).encode()
        return any(
            git(tree, "apply", "--check", "-R", *context, STRIP, "-", input=combined, check=False).returncode == 0
            for context in ((), ("-C1",))
        )


def default_subject(change: Change) -> str:
    title = _clean_title(change.title)
    if not title:
        raise WaferError("the change has no title (a plain diff): give the patch a --subject")
    return f"backport: {title}"


def commit_message(change: Change, subject: str, landed: str | None) -> str:
    body = [f'Backport of {change.url}: "{change.title or subject}".']
    description = _first_paragraph(change.description)
    if description:
        body.append(description)
    if change.left_out:
        body.append("Left out, not in the wheel: " + ", ".join(change.left_out) + ".")
    body.append(
        f"This patch can be removed once the base is sglang {landed} or newer."
        if landed
        else "No pinned release contains it yet: this patch can be removed once the base's release does."
    )
    trailers = [f"Upstream-Status: Backport [{change.url}]", f"Origin: backport, {change.url}"]
    if landed:
        trailers.append(f"Applied-Upstream: {landed}, {change.url}")
    trailers.append(f"Last-Update: {_today()[:10]}")
    return subject + "\n\n" + "\n\n".join(body) + "\n\n" + "\n".join(trailers) + "\n"


def _clean_title(title: str) -> str:
    """``[AMD] Fix the guard (#123)`` -> ``fix the guard``: the queue's subject style."""
    title = PR_IN_TITLE.sub("", title)
    title = re.sub(r"^(\s*\[[^\]]*\]\s*)+", "", title).strip().rstrip(".")
    return title[:1].lower() + title[1:]


def _first_paragraph(text: str) -> str:
    paragraph = text.strip().split("\n\n", 1)[0].strip()
    return paragraph if len(paragraph) <= 600 else paragraph[:600].rsplit(" ", 1)[0] + " ..."


def _today() -> str:
    return dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT00:00:00+0000")


def _splice(work: Path, point: str, commit: str) -> None:
    """Put ``commit`` (made on ``point``) into the work tree's line; later commits follow it."""
    head = out(work, "rev-parse", "HEAD").strip()
    if head == point:
        git(work, "merge", "-q", "--ff-only", commit)
        return
    rebase = git(work, "rebase", "-q", "--onto", commit, point, check=False)
    if rebase.returncode != 0:
        git(work, "rebase", "--abort", check=False)
        git(work, "reset", "-q", "--hard", head)
        raise WaferError(
            "the backport applies, but a later patch of the queue does not apply on top of it; nothing "
            "was changed. Put it later in the queue (--after) or port the later patch."
        )
