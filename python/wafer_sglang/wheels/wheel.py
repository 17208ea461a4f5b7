"""``wafer-sglang build``: the patched tree of a base -> the ``wafer-sglang-rocm`` wheel.

The wheel keeps upstream's tags (it ships upstream's compiled ``grpc/_core`` extension), gets a
fresh ``.dist-info`` (PEP 427 escaping), a regenerated RECORD, and is byte-reproducible: entries
sorted, fixed permissions and compression, timestamps from ``SOURCE_DATE_EPOCH`` (default: the
newest commit in the patched tree, itself fixed by the patches' dates). It holds ``sglang/`` and its
``.dist-info`` only, the fork manifest among them; the tools (``wafer_sglang/``, the command) are
the ``wafer-sglang`` wheel, which it requires at exactly this build's release.
"""

from __future__ import annotations

import base64
import csv
import hashlib
import io
import os
import time
import zipfile
from dataclasses import asdict
from pathlib import Path

from packaging.utils import canonicalize_name
from packaging.version import Version

from wafer_sglang import __version__ as tooling_version
from wafer_sglang import manifest as fork_manifest
from wafer_sglang.bases import UpstreamPin
from wafer_sglang.errors import WaferError
from wafer_sglang.fsutil import atomic_write_bytes, scratch_dir
from wafer_sglang.gitrun import out
from wafer_sglang.queue.apply import Applied, Queue
from wafer_sglang.queue.worktree import overlay_files as fork_overlay_files
from wafer_sglang.repo import PIN_FILE, build_dir, source_files
from wafer_sglang.wheels.metadata import DIST_NAME, fork_requirements, rewrite_metadata

ZIP_EPOCH_MIN = 315532800  # 1980-01-01, the earliest date a zip entry can hold
TOOLING_PACKAGE = "wafer_sglang"


def fork_version(base: UpstreamPin) -> str:
    """``<base>.post<respin>``: public, PyPI-accepted, respins order after each other."""
    v = Version(base.version)
    if v.pre or v.post is not None or v.dev is not None or v.local:
        raise WaferError(f"base {base.version} is not a final release; pin a final release as a base")
    if base.respin < 1:
        raise WaferError(f"base {base.version}: respin must be >= 1 in patches/bases.toml")
    return f"{v.public}.post{base.respin}"


def build_if_changed(
    root: Path, base: str | None, python_tag: str, out_dir: Path, *, quiet: bool = False
) -> tuple[Path, bool]:
    """``build`` unless ``out_dir`` holds the wheel built from the same inputs (the stamp beside
    it): (the wheel, whether it was built). The build is reproducible, so equal inputs mean an
    equal wheel; ``make`` relies on this to be incremental."""
    queue = Queue.open(root, base)
    target = out_dir / wheel_name(queue.base, python_tag)
    stamp = target.with_name(target.name + ".inputs")
    key = inputs_key(root, queue, python_tag)
    if target.is_file() and stamp.is_file() and stamp.read_text().strip() == key:
        return target, False
    path = build(root, base, python_tag, out_dir, quiet=quiet)
    atomic_write_bytes(stamp, (key + "\n").encode())
    return path, True


def inputs_key(root: Path, queue: Queue, python_tag: str) -> str:
    """sha256 over everything a build reads: the upstream wheel (its pinned sha256), the base
    record, the base's patch folder, the overlay, the tooling, the tag and SOURCE_DATE_EPOCH."""
    digest = hashlib.sha256()
    pin = queue.base.wheel(python_tag)
    digest.update(f"{pin.filename} {pin.sha256} {python_tag} {os.environ.get('SOURCE_DATE_EPOCH', '')}\n".encode())
    files = [root / PIN_FILE, *sorted(p for p in queue.patch_dir.rglob("*") if p.is_file())]
    files += [queue.root / "python" / path for path in fork_overlay_files(queue.overlay_root)]
    files += source_files(root, root / "python" / TOOLING_PACKAGE)[0]
    for path in files:
        digest.update(f"{path.relative_to(root).as_posix()}\0".encode() + hashlib.sha256(path.read_bytes()).digest())
    return digest.hexdigest()


def wheel_name(base: UpstreamPin, python_tag: str) -> str:
    triple = _tag_triple(base, python_tag, base.wheel(python_tag).tag_triple)
    return f"{canonicalize_name(DIST_NAME).replace('-', '_')}-{fork_version(base)}-{triple}.whl"


def _tag_triple(base: UpstreamPin, python_tag: str, source_triple: str) -> str:
    derived = base.derived.get(python_tag)
    if derived is None:
        return source_triple
    return source_triple.replace(f"{derived.source}-{derived.source}", f"{python_tag}-{python_tag}", 1)


def build(root: Path, base: str | None, python_tag: str, out_dir: Path, *, quiet: bool = False) -> Path:
    queue = Queue.open(root, base)
    scratch = build_dir(root) / "tmp"
    scratch.mkdir(parents=True, exist_ok=True)
    with scratch_dir(prefix="build-", dir=scratch) as tmp:
        work = Path(tmp) / "tree"
        applied = queue.apply(python_tag, work, quiet=quiet)
        headers = applied.headers
        epoch = source_date_epoch(work)
        version = fork_version(applied.base)
        dist_info = f"{canonicalize_name(DIST_NAME).replace('-', '_')}-{version}.dist-info"
        upstream_info = f"sglang-{applied.base.version}.dist-info"
        files = _tree_files(work, exclude_prefix=upstream_info + "/")
        tag_triple = _derive(files, applied.base, python_tag, applied.wheel.tag_triple)
        meta, dropped = _dist_info(work / upstream_info, version, applied.base.version, tag_triple, headers)
        meta[fork_manifest.MANIFEST_NAME] = fork_manifest.render(_manifest(applied, version, dropped, epoch))
        name = wheel_name(applied.base, python_tag)  # the name build_if_changed looks for
        data = _zip(files, {f"{dist_info}/{k}": v for k, v in meta.items()}, f"{dist_info}/RECORD", epoch)
    target = out_dir / name
    atomic_write_bytes(target, data)
    return target


def _derive(files: dict[str, tuple[bytes, int]], base: UpstreamPin, python_tag: str, source_triple: str) -> str:
    """For a derived tag, drop what only the source Python loads; the wheel's tag triple."""
    derived = base.derived.get(python_tag)
    if derived is None:
        return source_triple
    for path in derived.drop:
        if files.pop(path, None) is None:
            raise WaferError(
                f"sglang {base.version} {derived.source} wheel has no {path}: update its derived "
                f"{python_tag} entry in patches/bases.toml"
            )
    marker = f".cpython-{derived.source[2:]}-"
    compiled = sorted(p for p in files if marker in p)
    if compiled:
        raise WaferError(
            f"cannot build {python_tag} from the {derived.source} wheel: {', '.join(compiled)} "
            f"only loads on {derived.source}; list it under drop only if sglang never imports it"
        )
    return _tag_triple(base, python_tag, source_triple)


def source_date_epoch(work: Path) -> int:
    """SOURCE_DATE_EPOCH, else the newest commit of the git tree ``work``."""
    env = os.environ.get("SOURCE_DATE_EPOCH")
    if env:
        if not env.isdigit():
            raise WaferError(f"SOURCE_DATE_EPOCH must be an integer, got {env!r}")
        return max(int(env), ZIP_EPOCH_MIN)
    return max(int(out(work, "log", "-1", "--format=%ct", "HEAD").strip()), ZIP_EPOCH_MIN)


def _tree_files(work: Path, exclude_prefix: str) -> dict[str, tuple[bytes, int]]:
    files = {}
    for line in out(work, "ls-files", "-s", "-z").split("\0"):
        if not line:
            continue
        meta, path = line.split("\t", 1)
        if path.startswith(exclude_prefix):
            continue
        mode = 0o755 if meta.split()[0] == "100755" else 0o644
        files[path] = ((work / path).read_bytes(), mode)
    return files


def _manifest(applied: Applied, version: str, dropped: dict, epoch: int) -> dict:
    return {
        "distribution": DIST_NAME,
        "version": version,
        "python_tag": applied.python_tag,
        "tooling_version": tooling_version,
        "base": {
            "version": applied.base.version,
            "wheel": applied.wheel.filename,
            "sha256": applied.wheel.sha256,
            **_derived_record(applied.base, applied.python_tag),
        },
        "patches": [
            asdict(
                fork_manifest.PatchRecord(
                    file=h.file,
                    subject=h.subject,
                    upstream_status=h.upstream_status,
                    origin=h.get("Origin") or "",
                    applied_upstream=h.get("Applied-Upstream") or "",
                )
            )
            for h in applied.headers
        ],
        "overlay": applied.overlay,
        "dropped_requirements": dropped,
        "source_date_epoch": epoch,
    }


def _derived_record(base: UpstreamPin, python_tag: str) -> dict:
    derived = base.derived.get(python_tag)
    return (
        {"derived": {"from": derived.source, "dropped": list(derived.drop), "reason": derived.reason}}
        if derived
        else {}
    )


def _dist_info(
    upstream: Path, version: str, base_version: str, tag: str, headers: list
) -> tuple[dict[str, bytes], dict]:
    raw = (upstream / "METADATA").read_bytes()
    _, dropped = fork_requirements(raw)
    patch_lines = "\n".join(f"- `{h.subject}` ({h.upstream_status})" for h in headers) or "- (none)"
    preamble = (
        f"# wafer-sglang-rocm {version}\n\n"
        f"SGLang {base_version} patched for AMD Instinct MI355X (ROCm, gfx950). This distribution "
        f"installs the `sglang` package (upstream {base_version} with the patches below) and requires "
        f"the `wafer-sglang` tools of its release ({tooling_version}). Do not install it beside "
        "upstream `sglang`: both own `sglang/`.\n\n"
        f"Patches:\n\n{patch_lines}\n\n"
        "Requirements left to the ROCm environment (not declared here):\n\n"
        + "\n".join(f"- `{d}`: {why}" for d, why in sorted(dropped.items()))
        + "\n\n---\n"
    )
    metadata = rewrite_metadata(
        raw,
        version=version,
        summary=f"SGLang {base_version} patched for AMD Instinct MI355X (ROCm)",
        preamble=preamble,
    )
    files = {
        "METADATA": metadata,
        "WHEEL": (
            "Wheel-Version: 1.0\n"
            f"Generator: wafer-sglang-rocm ({tooling_version})\n"
            "Root-Is-Purelib: false\n"
            f"Tag: {tag}\n"
        ).encode(),
        "entry_points.txt": (upstream / "entry_points.txt").read_bytes(),  # the command is the tools wheel's
        "top_level.txt": (upstream / "top_level.txt").read_bytes(),
    }
    licenses = upstream / "licenses"
    for license_file in sorted(licenses.rglob("*")) if licenses.is_dir() else []:
        if license_file.is_file():
            files[f"licenses/{license_file.relative_to(licenses).as_posix()}"] = license_file.read_bytes()
    return files, dropped


def _record_hash(data: bytes) -> str:
    return "sha256=" + base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()


def _zip(files: dict[str, tuple[bytes, int]], dist_info: dict[str, bytes], record_name: str, epoch: int) -> bytes:
    date_time = time.gmtime(epoch)[:6]
    buffer = io.BytesIO()
    record = io.StringIO()
    rows = csv.writer(record, lineterminator="\n")  # upstream file names contain commas
    with zipfile.ZipFile(buffer, "w") as zf:
        entries = [(p, *files[p]) for p in sorted(files)] + [(p, dist_info[p], 0o644) for p in sorted(dist_info)]
        for path, data, mode in entries:
            _write_entry(zf, path, data, mode, date_time)
            rows.writerow([path, _record_hash(data), len(data)])
        rows.writerow([record_name, "", ""])
        _write_entry(zf, record_name, record.getvalue().encode(), 0o644, date_time)
    return buffer.getvalue()


def _write_entry(zf: zipfile.ZipFile, path: str, data: bytes, mode: int, date_time: tuple) -> None:
    info = zipfile.ZipInfo(path, date_time=date_time)
    info.create_system = 3
    info.external_attr = (0o100000 | mode) << 16
    info.compress_type = zipfile.ZIP_DEFLATED
    zf.writestr(info, data, compresslevel=6)
