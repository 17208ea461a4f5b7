"""Per checkpoint weight: what is stored, what the engine will build, and how to reconcile them."""

from __future__ import annotations

import fnmatch
import re
from dataclasses import dataclass, field

from packaging.version import Version

from wafer_sglang.checkpoint import rules as R
from wafer_sglang.checkpoint.store import Checkpoint, Tensor, UnusableCheckpoint, validate

LINEAR_LEAVES = {
    "q_a_proj",
    "q_b_proj",
    "kv_a_proj_with_mqa",
    "kv_b_proj",
    "o_proj",
    "wq_b",
    "wk",
    "weights_proj",
    "gate_proj",
    "up_proj",
    "down_proj",
    "eh_proj",
}
UNQUANTIZED = {"BF16", "F16", "F32"}
SCHEME_DTYPES = {"fp4": "U8", "fp8_e4m3": "F8_E4M3"}
LAYER = re.compile(r"^model\.layers\.(\d+)\.(.+)$")


@dataclass(frozen=True)
class Options:
    base: str
    upstream: bool = False
    gpu: str = "gfx950"
    disable_shared_experts_fusion: bool = False


@dataclass
class Finding:
    module: str  # checkpoint name
    role: str  # "target" | "draft"
    engine_module: str
    stored: str
    expected: str
    problem: str
    fix: str
    exclude_entries: list[str] = field(default_factory=list)  # what `fix` adds
    needs_flag: str = ""  # a server flag the fix also needs

    def as_dict(self) -> dict:
        return dict(self.__dict__)


@dataclass
class Report:
    rules: R.EngineRules
    modules_checked: int
    findings: list[Finding]
    notes: list[str]
    decisions: dict[str, str] = field(default_factory=dict)  # "role engine_module" -> expected


@dataclass(frozen=True)
class _Module:
    name: str
    role: str
    engine_shard: str  # the name the engine's exclude check sees
    engine_module: str  # the module it builds (fused / MoE name)
    weight: Tensor
    scale: Tensor | None


def _stored(module: _Module) -> str:
    dtype = module.weight.dtype
    if dtype in UNQUANTIZED:
        return "unquantized"
    if dtype == "U8":
        return "mxfp4" if module.scale is not None else "uint8-without-scale"
    if dtype.startswith("F8"):
        return "fp8"
    return dtype


def _describe(module: _Module) -> str:
    shape = "x".join(map(str, module.weight.shape))
    scale = f" + scale {'x'.join(map(str, module.scale.shape))}" if module.scale is not None else ""
    return f"{module.weight.dtype} [{shape}]{scale}"


FP8_BPRESHUFFLE_FIXED = "0.5.15"  # PR 29275, upstream issue 28685


def _fp8_note(architecture: str, quant: dict, base: str) -> str:
    """What a block-FP8 GLM-5 user on the LTS must know (the fork does not carry PR 29275)."""
    if quant.get("quant_method") != "fp8" or architecture != "GlmMoeDsaForCausalLM":
        return ""
    if Version(base) >= Version(FP8_BPRESHUFFLE_FIXED):
        return f". sglang {base} serves block-FP8 GLM-5 on gfx950 with aiter (PR 29275 is in since 0.5.15)"
    return (
        f". Block-FP8 GLM-5 on sglang {base}: with SGLANG_USE_AITER=1 on gfx950 and ROCm >= 7.2 the CK "
        "bpreshuffle FP8 GEMM reads its scales in the wrong layout (upstream issue 28685, fixed in "
        "0.5.15 by PR 29275, which this base does not carry): serve it with SGLANG_USE_AITER unset "
        "(the fork's MI355X defaults leave it unset for FP8 checkpoints) or on the 0.5.23 base"
    )


def check(ckpt: Checkpoint, options: Options) -> Report:
    config = ckpt.config
    validate(config)
    architecture = (config.get("architectures") or ["?"])[0]
    if architecture not in R.SUPPORTED_ARCHITECTURES:
        raise UnusableCheckpoint(
            f"architecture {architecture} is not one these rules cover ({', '.join(R.SUPPORTED_ARCHITECTURES)})"
        )
    quant = ckpt.quantization
    if quant.get("quant_method") != "quark":
        raise UnusableCheckpoint(
            f"quantization_config.quant_method is {quant.get('quant_method')!r}, not 'quark': "
            "this check knows Quark's exclude rules only" + _fp8_note(architecture, quant, options.base)
        )
    excludes = quant.get("exclude") or []
    if not isinstance(excludes, list) or not all(isinstance(e, str) for e in excludes):
        raise UnusableCheckpoint("quantization_config.exclude must be a list of strings")
    try:
        layers = int(config["num_hidden_layers"])
    except (KeyError, TypeError, ValueError):
        raise UnusableCheckpoint("config.json has no integer num_hidden_layers") from None
    rules = R.rules_for(options.base, options.upstream)
    mtp = R.nextn_layer(config)
    modules, notes = _modules(ckpt, layers, mtp)
    try:
        draft_excludes = R.Excludes(R.draft_excludes(excludes, mtp, rules))
        target_excludes = R.Excludes(excludes)
    except re.error as exc:
        raise UnusableCheckpoint(f"quantization_config.exclude has an invalid re: pattern ({exc})") from None
    draft_whole = R.map_for_draft(f"model.layers.{mtp}", mtp, rules) in draft_excludes
    fusion_possible = (
        options.gpu in R.FUSION_GPUS
        and not options.disable_shared_experts_fusion
        and config.get("n_routed_experts") in (256, 384)
        and config.get("n_shared_experts") == 1
    )
    decider = _Decider(quant, target_excludes, draft_excludes, draft_whole, rules, fusion_possible)
    findings, decisions = [], {}
    for group in _fused_groups(modules):
        findings += decider.judge(group)
        decisions[f"{group[0].role} {group[0].engine_module}"] = decider.expected(group[0])
    return Report(rules=rules, modules_checked=len(modules), findings=findings, notes=notes, decisions=decisions)


def _modules(ckpt: Checkpoint, layers: int, mtp: int) -> tuple[list[_Module], list[str]]:
    modules, notes, extra_mtp = [], [], set()
    for name, tensor in ckpt.tensors.items():
        if not name.endswith(".weight"):
            continue
        module = name[: -len(".weight")]
        match = LAYER.match(module)
        if not match or module.rsplit(".", 1)[-1] not in LINEAR_LEAVES:
            continue
        index = int(match.group(1))
        if index == mtp and (layers == 1 or index == layers):
            role, engine = "draft", R.draft_name(module, mtp)
        elif index < layers:
            role, engine = "target", module
        else:
            extra_mtp.add(index)  # sglang loads only the first MTP layer
            continue
        modules.append(
            _Module(module, role, engine, _engine_module(engine), tensor, ckpt.tensors.get(f"{module}.weight_scale"))
        )
    if extra_mtp:
        notes.append(f"layers {sorted(extra_mtp)} are further MTP layers: sglang loads only model.layers.{mtp}")
    return sorted(modules, key=lambda m: m.name), notes


def _engine_module(shard: str) -> str:
    """The module sglang builds for a checkpoint shard (fused projections, the MoE)."""
    experts = re.match(r"^(.*\.mlp\.experts)\.\d+\.", shard)
    if experts:
        return experts.group(1)
    for shard_leaf, fused in (
        ("gate_proj", "gate_up_proj"),
        ("up_proj", "gate_up_proj"),
        ("q_a_proj", "fused_qkv_a_proj_with_mqa"),
        ("kv_a_proj_with_mqa", "fused_qkv_a_proj_with_mqa"),
    ):
        if shard.endswith("." + shard_leaf) and ".indexer." not in shard:
            return shard[: -len(shard_leaf)] + fused
    return shard


def _fused_groups(modules: list[_Module]) -> list[list[_Module]]:
    groups: dict[tuple[str, str], list[_Module]] = {}
    for module in modules:
        groups.setdefault((module.role, module.engine_module), []).append(module)
    return list(groups.values())


class _Decider:
    def __init__(self, quant, excludes, draft_excludes, draft_whole, rules, fusion_possible):
        self.quant, self.rules, self.fusion_possible = quant, rules, fusion_possible
        self.excludes, self.draft_excludes, self.draft_whole = excludes, draft_excludes, draft_whole

    def excluded(self, module: _Module, name: str | None = None) -> bool:
        name = name or module.engine_shard
        if module.role == "draft":
            return self.draft_whole or name in self.draft_excludes
        return name in self.excludes

    def expected(self, module: _Module) -> str:
        """ "unquantized", "mxfp4", "fp8": what the engine allocates for this module."""
        if ".mlp.experts." in module.engine_shard or module.engine_module.endswith(".mlp.experts"):
            return "unquantized" if self.excluded(module, module.engine_module) else self.scheme(module.engine_module)
        if ".shared_experts." in module.engine_shard and self.fused_shared(module):
            experts = module.engine_module.rsplit(".shared_experts.", 1)[0] + ".experts"
            return "unquantized" if self.excluded(module, experts) else self.scheme(experts)
        return "unquantized" if self.excluded(module) else self.scheme(module.engine_module)

    def fused_shared(self, module: _Module) -> bool:
        """Whether this layer's shared expert ends up inside the fused routed-experts MoE."""
        if not self.fusion_possible:
            return False
        if not (self.fix_respected(module) and self.excluded(module)):
            return True
        # a draft whose routed experts are bf16 too fuses its bf16 shared expert into them
        # (one dtype): the fork's draft gate on both bases (test/engine, whole-bf16 MTP MoE)
        experts = module.engine_module.rsplit(".shared_experts.", 1)[0] + ".experts"
        return module.role == "draft" and self.excluded(module, experts)

    def scheme(self, engine_module: str) -> str:
        spec = self.quant.get("global_quant_config") or {}
        for pattern, layer_spec in (self.quant.get("layer_quant_config") or {}).items():
            if fnmatch.fnmatch(engine_module, pattern):
                spec = layer_spec
                break
        dtype = ((spec or {}).get("weight") or {}).get("dtype")
        return {"fp4": "mxfp4", "fp8_e4m3": "fp8"}.get(dtype, f"scheme {dtype}")

    def judge(self, group: list[_Module]) -> list[Finding]:
        verdicts = {m.name: self.excluded(m) for m in group}
        if len(group) > 1 and len(set(verdicts.values())) > 1 and not group[0].engine_module.endswith(".mlp.experts"):
            shards = ", ".join(f"{m.name}={'excluded' if v else 'quantized'}" for m, v in zip(group, verdicts.values()))
            return [
                Finding(
                    module=group[0].name,
                    role=group[0].role,
                    engine_module=group[0].engine_module,
                    stored="-",
                    expected="-",
                    problem=f"the shards of fused {group[0].engine_module} disagree ({shards}); "
                    "sglang raises 'Found a different quantization schemes'",
                    fix="exclude all shards of the fused module or none",
                )
            ]
        return [f for m in group if (f := self.judge_one(m)) is not None]

    def judge_one(self, module: _Module) -> Finding | None:
        stored, expected = _stored(module), self.expected(module)
        if stored == "uint8-without-scale":
            return Finding(
                module.name,
                module.role,
                module.engine_module,
                _describe(module),
                expected,
                "a uint8 (MXFP4) weight without weight_scale",
                "re-export the checkpoint",
            )
        if stored == expected:
            return None
        finding = Finding(
            module.name, module.role, module.engine_module, f"{stored} {_describe(module)}", expected, "", ""
        )
        fused = ".shared_experts." in module.engine_shard and self.fused_shared(module)
        if fused:
            # The shared expert is a slot of the routed experts' MoE and follows its quantization.
            finding.problem = f"stored {stored} but fused into the {expected} routed experts (shared-experts fusion)"
            if stored == "unquantized":
                finding.exclude_entries = self.fix_entries(module)
            if stored != "unquantized" or not self.fix_respected(module):
                finding.needs_flag = "--disable-shared-experts-fusion"
        elif stored == "unquantized":
            finding.problem = (
                f"stored unquantized but the engine builds {module.engine_module} as {expected}: "
                "loading fails on a shape mismatch"
            )
            finding.exclude_entries = self.fix_entries(module)
        else:
            finding.problem = f"stored {stored} but the exclude list makes the engine build it {expected}"
            finding.fix = (
                f"remove the exclude entry matching {module.engine_shard!r} (the weights are stored quantized)"
            )
            return finding
        finding.fix = self.fix_text(finding)
        return finding

    def fix_entries(self, module: _Module) -> list[str]:
        """Exclude entries that make the engine build this module unquantized.

        Draft modules get their draft-side name, which every base matches unchanged; routed
        experts are decided per MoE, so the entry is the coarse ``...mlp.experts``.
        """
        if module.engine_module.endswith(".mlp.experts"):
            return [module.engine_module]
        return [module.engine_shard]

    def fix_respected(self, module: _Module) -> bool:
        return (
            self.rules.fusion_respects_draft_excludes
            if module.role == "draft"
            else self.rules.fusion_respects_target_excludes
        )

    def fix_text(self, finding: Finding) -> str:
        parts = []
        if finding.exclude_entries:
            parts.append("add to quantization_config.exclude: " + ", ".join(finding.exclude_entries))
        if finding.needs_flag:
            parts.append(
                f"serve with {finding.needs_flag} ({self.rules.label} fuses the shared expert whatever the exclude "
                "list says)"
            )
        return "; ".join(parts) + (" (`wafer-sglang checkpoint fix --write`)" if finding.exclude_entries else "")
