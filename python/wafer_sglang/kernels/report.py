"""The check's report as people read it: one row per compiled kernel, then what was not checked,
and the fp8 KV contrast between two archs."""

from __future__ import annotations

from wafer_sglang.kernels.resources import LDS_PER_CU

COLUMNS = ("kernel", "reached from", "compiled", "VGPR", "SGPR", "AGPR", "spills", "scratch", "LDS", "waves/SIMD")


def failures(report: dict) -> list[str]:
    """What makes the check fail: a launch whose kernel did not compile, and a kernel needing more
    LDS than a CU has (Triton compiles it; the first launch on the GPU would refuse it)."""
    limit = LDS_PER_CU.get(report["arch"])
    found = [f"{r['name']}: {r['error'].splitlines()[-1]}" for r in report["launches"] if r["error"]]
    found += [
        f"{k['kernel']} ({r['name']}): LDS {k['lds_bytes']} bytes > the CU's {limit}"
        for r in report["launches"]
        for k in r["kernels"]
        if limit and k["lds_bytes"] > limit
    ]
    return found


def hot_spills(report: dict) -> list[str]:
    return [
        f"{k['kernel']} ({r['name']}): {k['vgpr_spill']} VGPR + {k['sgpr_spill']} SGPR spills, {k['constexprs']}"
        for r in report["launches"]
        if r["hot"]
        for k in r["kernels"]
        if k["spills"]
    ]


def markdown(report: dict) -> str:
    lines = [
        f"sglang {report['sglang']}, triton {report['triton']}, target {report['arch']}"
        + (f" (this host's GPU: {report['host_gpu']})" if report.get("host_gpu") else " (compiled here, no GPU)"),
        "",
        "| " + " | ".join(COLUMNS) + " |",
        "|" + "---|" * len(COLUMNS),
    ]
    for launch in report["launches"]:
        site = ", ".join(launch["reached_from"]) or "site not found in this sglang"
        for k in launch["kernels"]:
            lines.append(
                f"| `{k['kernel']}` ({launch['name']}) | {site} | yes | {k['vgpr']} | {k['sgpr']} | {k['agpr']} | "
                f"{k['spills']} | {k['scratch_bytes']} | {k['lds_bytes']} | {k['waves_per_simd']} |"
            )
        if launch["error"]:
            last = launch["error"].splitlines()[-1].replace("|", "\\|")
            lines.append(f"| ({launch['name']}) | {site} | **no**: {last} | | | | | | | |")
    skipped = [f"{launch['name']}: {launch['not_on_path']}" for launch in report["launches"] if launch["not_on_path"]]
    if skipped:
        lines += ["", "Not launched by this sglang (no launch site found):"] + [f"- {s}" for s in skipped]
    here = [
        f"{launch['name']}: {launch['not_checked_here']}" for launch in report["launches"] if launch["not_checked_here"]
    ]
    if here:
        lines += ["", "On the path, not compile-checked on this host:"] + [f"- {s}" for s in here]
    lines += ["", f"Path kernels not compile-checked ({len(report['not_compile_checked'])}: no launch reaches them):"]
    lines += [f"- `{name}`: {why}" for name, why in sorted(report["not_compile_checked"].items())]
    return "\n".join(lines) + "\n"


def fp8_contrast(target: dict, other: dict) -> str:
    """The fp8_e4m3 (OCP) KV kernels on two archs: instructions and the hardware fp8 casts used."""
    rows = ["| kernel | " + " | ".join(f"{r['arch']}: instructions, fp8 casts" for r in (target, other)) + " |"]
    rows.append("|---|---|---|")
    for launch, theirs in zip(target["launches"], other["launches"]):
        if "fp8" not in launch["name"]:
            continue
        for ours, them in zip(launch["kernels"], theirs["kernels"]):
            cells = [
                f"{k['instructions']}, {', '.join(k['fp8_conversions']) or 'none (emulated)'}" for k in (ours, them)
            ]
            rows.append(f"| `{ours['kernel']}` | " + " | ".join(cells) + " |")
    return "\n".join(rows) + "\n"
