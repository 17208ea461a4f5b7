"""How a given sglang build turns checkpoint names into Quark quantization decisions.

Mirrors the engine code (read from the wheels; test/engine/ checks each decision on the real code):

* exclude matching — ``quark/utils.py`` ``_is_equal_or_regex_match``: an entry matches a module
  name when equal, or, as ``re:<pattern>``, when ``re.match`` (anchored at the start) succeeds;
  fused modules (``gate_up_proj``, ``fused_qkv_a_proj_with_mqa``) are decided per shard and the
  shards must agree.
* the MTP draft — built as ``model.decoder.*`` with ``eh_proj`` under ``model.*``; the exclude
  list reaches it through the NextN class's name mapper:
  - ``deepseek-61``: upstream 0.5.14's ``{"model.layers.61": "model.decoder"}`` substring map;
  - ``by-layer``: ``model.layers.<N>.*`` by the real layer count (the fork's 0.5.14 patch;
    upstream 0.5.16+ for GLM-5), N = 61 keeping the DeepSeek map.
* per-expert MTP excludes (``model.layers.<N>.mlp.experts.<e>.*``): FusedMoE asks with the
  coarse ``model.decoder.mlp.experts``, which upstream 0.5.16+ and the fork's 0.5.14 add when
  any routed expert of the MTP layer is excluded; upstream 0.5.14 never matches them.
* shared-expert fusion (HIP >= gfx942, 256/384 routed experts, one shared expert): the shared
  expert becomes a slot of the routed experts' fused MoE and follows *their* quantization.
  Upstream 0.5.14 fuses whatever the exclude list says. Upstream 0.5.23's gate reads the
  draft's excludes in checkpoint spelling, which it takes for draft-stack entries, so the MTP
  draft still fuses an excluded shared expert; its target respects its own excludes, as the
  fork's 0.5.14 target does (PRs 35200 + 36124, backported). The fork's drafts (both bases) run
  an excluded shared expert unfused.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from wafer_sglang.errors import WaferError

SUPPORTED_ARCHITECTURES = ("GlmMoeDsaForCausalLM", "DeepseekV3ForCausalLM", "DeepseekV32ForCausalLM")
# MTP weights beside the decoder block, under `model.` (DeepseekV2WeightLoaderMixin's split).
DRAFT_SIDE = ("shared_head", "eh_proj", "enorm", "hnorm")
FUSION_GPUS = ("gfx942", "gfx950")


@dataclass(frozen=True)
class EngineRules:
    label: str
    draft_mapping: str  # "by-layer" | "deepseek-61"
    coarse_draft_experts: bool  # any excluded MTP expert excludes model.decoder.mlp.experts
    fusion_respects_draft_excludes: bool
    fusion_respects_target_excludes: bool


def rules_for(base: str, upstream: bool) -> EngineRules:
    """How ``base``'s loader (upstream's, or the fork's) treats a checkpoint: its record's engine facts."""
    from wafer_sglang.bases import record

    side = "upstream" if upstream else "fork"
    facts = record(base).engine.get(side)
    if facts is None:
        raise WaferError(f"the record of base {base} has no engine.{side} facts (patches/bases.toml)")
    label = f"{'upstream sglang' if upstream else 'wafer-sglang-rocm'} {base}"
    return EngineRules(
        label,
        facts["draft-mapping"],
        facts["coarse-draft-experts"],
        facts["fusion-respects-draft-excludes"],
        facts["fusion-respects-target-excludes"],
    )


class Excludes:
    """An exclude list, matched as sglang's check_equal_or_regex_match does: exact entries, and
    ``re:`` entries by ``re.match``. Precompiled and memoised: a checkpoint has ~100k names."""

    def __init__(self, entries: list[str]):
        self.entries = list(entries)
        self.exact = {e for e in entries if not e.startswith("re:")}
        self.patterns = [re.compile(e[3:]) for e in entries if e.startswith("re:")]
        self.cache: dict[str, bool] = {}

    def __contains__(self, name: str) -> bool:
        hit = self.cache.get(name)
        if hit is None:
            hit = self.cache[name] = name in self.exact or any(p.match(name) for p in self.patterns)
        return hit


def matches(name: str, excludes: list[str]) -> bool:
    """sglang's check_equal_or_regex_match, for one-off questions."""
    return name in Excludes(excludes)


def nextn_layer(config: dict) -> int:
    layers = int(config["num_hidden_layers"])
    return 0 if layers == 1 else layers


def draft_name(checkpoint_name: str, layer: int) -> str:
    """The draft module a checkpoint name of the MTP layer becomes."""
    prefix = f"model.layers.{layer}."
    rest = checkpoint_name[len(prefix) :]
    if rest.split(".", 1)[0] in DRAFT_SIDE:
        return f"model.{rest}"
    return f"model.decoder.{rest}"


def map_for_draft(entry: str, layer: int, rules: EngineRules) -> str:
    """One exclude entry as the draft's QuarkConfig holds it after apply_weight_name_mapper."""
    if rules.draft_mapping == "deepseek-61" or layer == 61:
        return entry.replace("model.layers.61", "model.decoder", 1) if "model.layers.61" in entry else entry
    if entry.startswith(f"model.layers.{layer}."):
        return draft_name(entry, layer)
    return entry


def draft_excludes(excludes: list[str], layer: int, rules: EngineRules) -> list[str]:
    mapped = [map_for_draft(e, layer, rules) for e in excludes]
    if rules.coarse_draft_experts and any(e.startswith(f"model.layers.{layer}.mlp.experts.") for e in excludes):
        mapped.append("model.decoder.mlp.experts")
    return mapped
