"""What one aiter will do for each key a model hits: a tuned row it can run, its default
heuristics (the slow fallback), or a row naming a kernel it cannot run (an error at the first MoE
forward). Answered by our model of that aiter (moe/lookup.py) and, where aiter's code is at hand,
by aiter's own merge and lookup (moe/aiter_exec.py) — any disagreement is reported."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from wafer_sglang.errors import WaferError
from wafer_sglang.fsutil import scratch_dir
from wafer_sglang.moe import lookup
from wafer_sglang.moe.aiter_tree import AiterTree
from wafer_sglang.moe.fork_rows import read_provenance
from wafer_sglang.moe.kernel_names import KernelNames
from wafer_sglang.moe.keys import MoeKey


@dataclass(frozen=True)
class TunedFile:
    name: str  # as aiter is given it (a path on the host or in the image)
    text: str
    ours: bool = False  # the fork's (or the user's own tuned) rows, not aiter's
    provenance: dict[int, dict] = field(default_factory=dict)  # line -> the fork's provenance entry


@dataclass
class Verdict:
    key: MoeKey
    status: str  # "tuned" | "fallback" | "unusable"
    row: lookup.Row | None
    detail: str = ""
    provenance: str = ""


@dataclass
class Report:
    aiter: str
    files: list[str]
    verdicts: list[Verdict]
    problems: list[str]  # errors that are not per key (ignored files, duplicates, bad rows)
    disagreements: list[str]  # model vs aiter's own code
    checked_with_aiter_code: bool

    @property
    def ok(self) -> bool:
        return not self.problems and not self.disagreements and all(v.status == "tuned" for v in self.verdicts)

    def counts(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for verdict in self.verdicts:
            label = verdict.status if verdict.status != "tuned" else f"tuned ({verdict.provenance or 'aiter'})"
            counts[label] = counts.get(label, 0) + 1
        return counts


def fork_file(path: Path, name: str | None = None) -> TunedFile:
    return TunedFile(name or str(path), path.read_text(), True, read_provenance(path))


def coverage(
    keys: list[MoeKey],
    files: list[TunedFile],
    model: lookup.AiterLookup | None,
    names: KernelNames | None,
    tree: AiterTree | None,
    label: str,
) -> Report:
    merged = lookup.merge([(f.name, f.text) for f in files])
    problems = _merge_problems(merged, model, label)
    found = lookup.resolve(keys, merged, model) if model else None
    disagreements: list[str] = []
    if tree is not None:
        own = _own_decisions(tree, files, keys)
        if found is None:  # no model of this aiter: its own code is the answer
            found = {k: _row_of(merged, cfg) for k, cfg in own.items()}
        else:
            disagreements = [
                f"{k.short()}: model {_describe(found[k])}, aiter's own code {_describe_cfg(own[k])}"
                for k in keys
                if not _same(found[k], own[k])
            ]
    if found is None:
        raise WaferError(
            f"{label}: aiter unknown — the fork has no model of this aiter and cannot run its own "
            "lookup code here (it needs the aiter source tree, pandas and torch); known: "
            + ", ".join(m.version for m in lookup.LOOKUPS)
        )
    provenance = {(f.name, line): entry["provenance"] for f in files for line, entry in f.provenance.items()}
    verdicts = [_verdict(k, found[k], names, provenance, label) for k in keys]
    if names is not None:
        problems += [
            f"{row.where}: names {', '.join(missing)}, which {label} cannot run"
            for f in files
            if f.ours
            for row in merged.rows
            if row.file == f.name
            if (missing := names.unresolved(row.kernel1, row.kernel2))
        ]
    return Report(label, [f.name for f in files], verdicts, problems, disagreements, tree is not None)


def _merge_problems(merged: lookup.Merged, model: lookup.AiterLookup | None, label: str) -> list[str]:
    problems = [
        f"{len(g)} rows repeat one key (aiter raises at startup): " + ", ".join(r.where for r in g)
        for g in merged.duplicates
    ]
    if model is not None and model.keeps == "empty-tag":
        problems += [
            f"{name} has no _tag column: {label} fills it with 0 when merging and then ignores every "
            "row of the file (add an empty _tag column)"
            for name in merged.untagged_files
        ]
    return problems


def _verdict(key: MoeKey, row: lookup.Row | None, names: KernelNames | None, provenance: dict, label: str) -> Verdict:
    if row is None:
        return Verdict(key, "fallback", None, "aiter's default heuristics (no tuned row)")
    missing = names.unresolved(row.kernel1, row.kernel2) if names else []
    if missing:
        return Verdict(
            key,
            "unusable",
            row,
            f"{row.where} names {', '.join(missing)}, unknown to {label}: aiter fails at the first MoE forward",
        )
    return Verdict(key, "tuned", row, row.where, provenance.get((row.file, row.line), ""))


def _own_decisions(tree: AiterTree, files: list[TunedFile], keys: list[MoeKey]) -> dict:
    from wafer_sglang.moe.aiter_exec import aiter_decisions

    with scratch_dir(prefix="aiter-files-") as tmp:
        paths = []
        for index, f in enumerate(files):
            path = Path(tmp) / f"{index:03d}_{Path(f.name).name}"
            path.write_text(f.text)
            paths.append(path)
        return aiter_decisions(tree, paths, keys)


def _row_of(merged: lookup.Merged, cfg: dict | None) -> lookup.Row | None:
    """The merged row aiter's own code picked (matched on its kernels and key)."""
    if cfg is None:
        return None
    return next(
        (
            r
            for r in merged.rows
            if (r.kernel1, r.kernel2) == _kernels(cfg)
            and (r.key.token, r.key.inter_dim, r.key.expert, r.key.topk)
            == tuple(int(cfg[c]) for c in ("token", "inter_dim", "expert", "topk"))
        ),
        None,
    )


def _kernels(cfg: dict) -> tuple[str, str]:
    return tuple(
        str(cfg.get(c) or "").strip() if str(cfg.get(c)) != "nan" else "" for c in ("kernelName1", "kernelName2")
    )


def _same(row: lookup.Row | None, cfg: dict | None) -> bool:
    if row is None or cfg is None:
        return row is None and cfg is None
    return (row.kernel1, row.kernel2) == _kernels(cfg)


def _describe(row: lookup.Row | None) -> str:
    return "default heuristics" if row is None else f"{row.where} ({row.kernel1}, {row.kernel2})"


def _describe_cfg(cfg: dict | None) -> str:
    return "default heuristics" if cfg is None else "({}, {})".format(*_kernels(cfg))
