"""``wafer-sglang doctor``: preflight for a serving host. Runs anywhere, imports nothing heavy.

Every check reads the host through a :class:`Host` (filesystem root, environment, installed
distributions), so tests can stage a MI355X host in a folder. GPUs come from the KFD topology
(/sys/class/kfd/kfd/topology/nodes/*/properties, the same source rocminfo uses): no ROCm tools
or torch needed.
"""

from __future__ import annotations

import os
import re
from dataclasses import asdict, dataclass
from pathlib import Path

from wafer_sglang import __version__ as tooling_version
from wafer_sglang.host.system import Host, gpus

SEVERITIES = ("ok", "info", "warning", "error")


@dataclass
class Finding:
    check: str
    severity: str
    summary: str
    fix: str = ""

    def as_dict(self) -> dict:
        return asdict(self)


def check_gpus(host: Host) -> list[Finding]:
    names = gpus(host)
    if not names:
        why = "no /dev/kfd" if not host.path("/dev/kfd").exists() else "the KFD topology lists no GPU"
        return [
            Finding(
                "gpu",
                "error",
                f"no AMD GPU visible ({why})",
                "on the host: check `rocm-smi`; in a container: --device=/dev/kfd --device=/dev/dri --group-add video",
            )
        ]
    arches = sorted(set(names))
    findings = [
        Finding(
            "gpu",
            "ok" if arches == ["gfx950"] else "warning",
            f"{len(names)} GPU(s): {', '.join(arches)}",
            "" if arches == ["gfx950"] else "the fork's defaults and tuned configs target MI355X (gfx950)",
        )
    ]
    if not host.path("/dev/dri").exists():
        findings.append(Finding("gpu", "error", "/dev/dri is missing", "pass --device=/dev/dri to the container"))
    findings += check_visible_devices(host, len(names))
    return findings


def check_visible_devices(host: Host, count: int) -> list[Finding]:
    findings = []
    selections = {
        k: host.env[k]
        for k in ("HIP_VISIBLE_DEVICES", "ROCR_VISIBLE_DEVICES", "CUDA_VISIBLE_DEVICES")
        if host.env.get(k, "").strip()
    }
    uuids = _gpu_uuids(host)
    for key, value in selections.items():
        ids = [v.strip() for v in value.split(",") if v.strip()]
        bad = [i for i in ids if not _valid_device(i, count, uuids)]
        if bad:
            findings.append(
                Finding(
                    "visible-devices",
                    "error",
                    f"{key}={value} names devices {bad} but {count} GPU(s) are visible",
                    f"use indices 0..{count - 1}, or unset {key}",
                )
            )
    distinct = set(selections.values())
    if len(selections) > 1 and len(distinct) > 1:
        findings.append(
            Finding(
                "visible-devices",
                "warning",
                "different device selections: " + ", ".join(f"{k}={v}" for k, v in selections.items()),
                "ROCR_ applies first and HIP_/CUDA_ then index into what it left: set one of them "
                "(HIP_VISIBLE_DEVICES)",
            )
        )
    return findings


UUID = re.compile(r"^GPU-[0-9a-fA-F]{1,32}$")


def _valid_device(token: str, count: int, uuids: set[str]) -> bool:
    """An index below the GPU count, or a ROCm UUID (GPU-<hex>) — one the topology knows, when
    the topology says."""
    if token.isdigit():
        return int(token) < count
    return bool(UUID.match(token)) and (not uuids or token.lower() in uuids)


def _gpu_uuids(host: Host) -> set[str]:
    """``GPU-<unique_id as 16 hex digits>`` of each GPU node (rocm-smi's UUID), when listed."""
    nodes = host.path("/sys/class/kfd/kfd/topology/nodes")
    found = set()
    for properties in sorted(nodes.glob("*/properties")) if nodes.is_dir() else []:
        values = dict(line.split(None, 1) for line in properties.read_text().splitlines() if " " in line)
        unique = values.get("unique_id", "").strip()
        if unique.isdigit() and int(unique) and int(values.get("gfx_target_version", "0")):
            found.add(f"gpu-{int(unique):016x}")
    return found


def check_rocm(host: Host) -> list[Finding]:
    version_file = host.path("/opt/rocm/.info/version")
    if version_file.is_file():
        return [Finding("rocm", "ok", f"ROCm {version_file.read_text().strip()}")]
    return [
        Finding(
            "rocm",
            "warning",
            "ROCm version unknown (/opt/rocm/.info/version missing)",
            "install ROCm or use the wafer/sglang:mi355x image",
        )
    ]


def check_torch(host: Host) -> list[Finding]:
    torch = host.distributions().get("torch")
    if torch is None:
        return [
            Finding(
                "torch",
                "error",
                "torch is not installed",
                "install the ROCm build of torch (the fork never installs torch)",
            )
        ]
    if "rocm" in torch:
        return [Finding("torch", "ok", f"torch {torch} (ROCm build)")]
    kind = "CUDA" if "+cu" in torch else "non-ROCm"
    return [
        Finding(
            "torch",
            "error",
            f"torch {torch} is a {kind} build",
            "reinstall torch from a ROCm index (pip ... --index-url https://download.pytorch.org/whl/rocmX.Y)",
        )
    ]


def check_stack(host: Host, manifest: dict | None) -> list[Finding]:
    dists = host.distributions()
    findings = []
    aiter = dists.get("amd-aiter") or dists.get("aiter")
    if aiter is None:
        findings.append(
            Finding(
                "aiter",
                "error",
                "aiter is not installed",
                "the MXFP4 MoE path needs aiter (ROCm/aiter, as in the ROCm sglang images)",
            )
        )
    else:
        findings.append(Finding("aiter", "ok", f"aiter {aiter}"))
    triton = dists.get("triton") or dists.get("pytorch-triton-rocm")
    findings.append(
        Finding(
            "triton",
            "ok" if triton else "error",
            f"triton {triton}" if triton else "triton is not installed",
            "" if triton else "install the ROCm triton that matches torch",
        )
    )
    kernel = dists.get("sgl-kernel") or dists.get("sglang-kernel")
    expected = _pinned(manifest, ("sglang-kernel", "sgl-kernel"))
    if kernel is None:
        findings.append(
            Finding("sgl-kernel", "error", "sgl-kernel is not installed", "build it for gfx950: sgl-kernel/build.sh")
        )
    elif expected and kernel.split("+")[0] != expected:
        findings.append(
            Finding(
                "sgl-kernel",
                "warning",
                f"sgl-kernel {kernel}, but sglang {manifest['base']['version']} pins {expected}",
                f"build sgl-kernel {expected} for gfx950: sgl-kernel/build.sh",
            )
        )
    else:
        findings.append(Finding("sgl-kernel", "ok", f"sgl-kernel {kernel}"))
    return findings


def check_fork(host: Host, manifest: dict | None) -> list[Finding]:
    dists = host.distributions()
    findings = []
    if "wafer-sglang-rocm" in dists and "sglang" in dists:
        findings.append(
            Finding(
                "install",
                "error",
                f"both sglang {dists['sglang']} and wafer-sglang-rocm {dists['wafer-sglang-rocm']} are installed: "
                "both own sglang/, uninstalling either breaks the other",
                "pip uninstall -y sglang wafer-sglang-rocm && pip install --no-deps wafer-sglang-rocm wafer-sglang",
            )
        )
    elif "sglang" in dists:
        findings.append(
            Finding(
                "install",
                "warning",
                f"upstream sglang {dists['sglang']} without the fork's patches",
                "pip uninstall -y sglang && pip install --no-deps wafer-sglang-rocm wafer-sglang",
            )
        )
    if manifest is None:
        findings.append(
            Finding(
                "fork",
                "warning",
                "no wafer-sglang-rocm build is installed (the tools alone, or a checkout)",
                "pip install --no-deps wafer-sglang-rocm wafer-sglang",
            )
        )
    else:
        findings.append(
            Finding(
                "fork",
                "ok",
                f"wafer-sglang-rocm {manifest['version']}: sglang {manifest['base']['version']} + "
                f"{len(manifest['patches'])} patches",
            )
        )
        built_with = manifest.get("tooling_version")
        if built_with and built_with != tooling_version:  # both went in --no-deps: nothing checked the pin
            findings.append(
                Finding(
                    "install",
                    "warning",
                    f"the tools are wafer-sglang {tooling_version}, but this engine requires {built_with}",
                    f"pip install --no-deps wafer-sglang=={built_with}",
                )
            )
    return findings


def check_env(host: Host) -> list[Finding]:
    findings = []
    if "SGLANG_USE_AITER" not in host.env:
        findings.append(
            Finding(
                "env",
                "warning",
                "SGLANG_USE_AITER is unset: aiter kernels are off (the fork turns them on only for GLM-5 on gfx950)",
                "export SGLANG_USE_AITER=1",
            )
        )
    configured = host.env.get("AITER_CONFIG_FMOE")
    for listed in [p for p in (configured or "").split(os.pathsep) if p]:
        problem = _not_an_fmoe_csv(Path(listed))
        if problem:
            findings.append(
                Finding(
                    "env",
                    "error",
                    f"AITER_CONFIG_FMOE lists {listed}, which {problem} (aiter skips or rejects it)",
                    'export AITER_CONFIG_FMOE="$(wafer-sglang moe config-path)"',
                )
            )
    if configured:
        from wafer_sglang.moe.files import aiter_configs_dir, aiter_tuned_files

        own = aiter_tuned_files(aiter_configs_dir(host.aiter_root))
        listed = {Path(p).resolve() for p in configured.split(os.pathsep) if p}
        missing = [f for f in own if f.resolve() not in listed]
        if missing:
            findings.append(
                Finding(
                    "env",
                    "error",
                    f"AITER_CONFIG_FMOE replaces aiter's own tuned fMoE files; {len(missing)} of them are not listed: "
                    + ", ".join(f.name for f in missing[:3]),
                    'export AITER_CONFIG_FMOE="$(wafer-sglang moe config-path)"',
                )
            )
    return findings


def check_fmoe(host: Host) -> list[Finding]:
    """What this host's aiter does for GLM-5's fp4 MoE keys with the files it reads now."""
    from wafer_sglang.errors import WaferError
    from wafer_sglang.moe.targets import glm5_coverage, host_target

    dists = host.distributions()
    version = dists.get("amd-aiter") or dists.get("aiter")
    if version is None:
        return []  # check_stack says aiter is missing
    fix = "wafer-sglang moe coverage --model CHECKPOINT --tp N (then the fork's image, or moe tune on MI355X)"
    try:
        report = glm5_coverage(host_target(host.aiter_root, None, env=host.env, version=version))
    except WaferError as exc:
        return [Finding("fmoe", "warning", f"GLM-5 fp4 MoE coverage unknown: {exc}", fix)]
    counts = ", ".join(f"{n} {label}" for label, n in sorted(report.counts().items()))
    if report.ok:
        return [Finding("fmoe", "ok", f"GLM-5 fp4 MoE keys at TP4/TP8: {counts}")]
    slow = sum(v.status != "tuned" for v in report.verdicts)
    summary = f"{slow} of {len(report.verdicts)} GLM-5 fp4 MoE keys at TP4/TP8 are not on a usable tuned row ({counts})"
    return [
        Finding(
            "fmoe",
            "error" if report.problems or "unusable" in report.counts() else "warning",
            "; ".join([summary, *report.problems[:3]]),
            fix,
        )
    ]


def _pinned(manifest: dict | None, names: tuple[str, ...]) -> str | None:
    for requirement in (manifest or {}).get("dropped_requirements", {}):
        match = re.match(r"^([A-Za-z0-9_.-]+)==([^;\s]+)", requirement)
        if match and re.sub(r"[-_.]+", "-", match.group(1)).lower() in names:
            return match.group(2)
    return None


def _not_an_fmoe_csv(file: Path) -> str | None:
    """Why aiter cannot use a listed file (paths as aiter opens them, in this filesystem)."""
    if not file.is_file():
        return "does not exist"
    try:
        header = file.read_text(errors="replace").splitlines()[:1]
    except OSError as exc:
        return f"cannot be read ({exc.strerror})"
    columns = set(header[0].split(",")) if header else set()
    missing = {"cu_num", "token", "model_dim", "inter_dim", "expert", "topk"} - columns
    return f"is not an aiter tuned fMoE CSV (no {', '.join(sorted(missing))} column)" if missing else None


def run(host: Host, manifest: dict | None) -> list[Finding]:
    return (
        check_gpus(host)
        + check_rocm(host)
        + check_torch(host)
        + check_stack(host, manifest)
        + check_fork(host, manifest)
        + check_env(host)
        + check_fmoe(host)
    )


def format_report(findings: list[Finding]) -> str:
    marks = {"ok": "ok  ", "info": "info", "warning": "WARN", "error": "FAIL"}
    lines = []
    for f in findings:
        lines.append(f"[{marks[f.severity]}] {f.check:15s} {f.summary}")
        if f.fix and f.severity != "ok":
            lines.append(f"{'':23s}fix: {f.fix}")
    errors = sum(f.severity == "error" for f in findings)
    warnings = sum(f.severity == "warning" for f in findings)
    lines.append(f"\n{errors} error(s), {warnings} warning(s)")
    return "\n".join(lines)
