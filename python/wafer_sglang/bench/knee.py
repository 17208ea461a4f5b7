"""The knee: the highest load at which that step and every lower one were sustained by the server.

A step is sustained when, judged on what the **server** did (never on how many arrivals the
client's own random draw released — a Poisson draw at 0.5 rps over a 270 s window can come out
15 % short, and a rule on that fails a perfect server by chance):

1. it ran to the end: not interrupted, not aborted (N connection failures in a row);
2. success ≥ 99 % of the measured requests, a request unfinished after the drain a failure
   (the server did not keep up with the offered load within the drain);
3. TTFT p95 ≤ the SLO (5 s, the seed's knee definition);
4. no queue building (open loop only): the TTFT p50 of the step's last third of arrivals is not
   more than 2x that of its first third *and* 0.5 s above it (judged with ≥ 5 requests per third).
   A closed loop's users each wait for their answer, so its queue is bounded and cannot build;
   a TTFT trend there is the machine slowing (a CI neighbour), not the load.

5. with ``--goodput`` (vLLM's meaning: per-request SLOs in ms on ttft, tpot, e2el): at least 90 %
   of the step's measured requests meet every one (DistServe's attainment target).

Loads are reported as offered: the rate the step actually released (open loop), or the users
(closed loop). The first failing step is named with every rule it broke. A step that measured no
request (its window too short for its rate) is not judged either way, and said so.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

RULES = (
    "ran to the end (not interrupted or aborted)",
    "success >= {success_rate:.0%} of measured requests (unfinished after the drain = failed)",
    "TTFT p95 <= {ttft_p95_s:g} s",
    "no queue building (open loop): late-third TTFT p50 <= {ttft_growth:g}x early-third p50 or within "
    "{ttft_growth_floor_s:g} s of it",
)


GOODPUT_RULE = "goodput: >= {goodput_attainment:.0%} of measured requests within {goodput_slos}"


@dataclass(frozen=True)
class Slo:
    ttft_p95_s: float = 5.0
    success_rate: float = 0.99
    ttft_growth: float = 2.0
    ttft_growth_floor_s: float = 0.5
    goodput: dict[str, float] | None = None  # ms per metric: ttft, tpot, e2el (vLLM's --goodput)
    goodput_attainment: float = 0.9

    def goodput_slos(self) -> str:
        return ", ".join(f"{name} <= {ms:g} ms" for name, ms in (self.goodput or {}).items())

    def failures(self, step: dict) -> list[str]:
        """Every rule ``step`` breaks, in words with its figures."""
        if step.get("interrupted"):
            return ["interrupted"]
        reasons = [f"aborted: {step['aborted']}"] if step.get("aborted") else []
        success = step.get("success_rate")
        if success is None or success < self.success_rate:
            failed = ", ".join(f"{n} {kind}" for kind, n in sorted((step.get("failures") or {}).items()))
            reasons.append(
                f"success {0 if success is None else success:.1%} < {self.success_rate:.0%}"
                + (f" ({failed})" if failed else "")
            )
        ttft = step.get("ttft_p95_s")
        if ttft is not None and ttft > self.ttft_p95_s:
            reasons.append(f"TTFT p95 {ttft:.2f} s > {self.ttft_p95_s:g} s")
        trend = step.get("ttft_trend") if step.get("mode") != "concurrency" else None
        if trend and trend["late_p50_s"] > max(
            self.ttft_growth * trend["early_p50_s"], trend["early_p50_s"] + self.ttft_growth_floor_s
        ):
            reasons.append(
                f"queue building: TTFT p50 {trend['early_p50_s']:.2f} s -> {trend['late_p50_s']:.2f} s "
                "from the first to the last third of the step"
            )
        attained = step.get("goodput_attainment")
        if self.goodput and attained is not None and attained < self.goodput_attainment:
            reasons.append(
                f"goodput: {attained:.1%} of requests within {self.goodput_slos()} < {self.goodput_attainment:.0%}"
            )
        return reasons

    def rules(self) -> list[str]:
        rules = [rule.format(**asdict(self)) for rule in RULES]
        if self.goodput:
            rules.append(
                GOODPUT_RULE.format(goodput_attainment=self.goodput_attainment, goodput_slos=self.goodput_slos())
            )
        return rules


def load_of(step: dict) -> tuple[str, float]:
    return (
        ("concurrency", step["concurrency"])
        if step.get("mode") == "concurrency"
        else ("target_rps", step["target_rps"])
    )


def judged(step: dict) -> bool:
    return bool(step.get("requests")) or bool(step.get("interrupted") or step.get("aborted"))


def knee(steps: list[dict], slo: Slo) -> dict:
    best, failed, unjudged = None, None, []
    for step in sorted(steps, key=lambda s: load_of(s)[1]):
        if not judged(step):
            unjudged.append(load_of(step)[1])
            continue
        reasons = slo.failures(step)
        if reasons:
            failed = {load_of(step)[0]: load_of(step)[1], "offered_rps": step.get("offered_rps"), "reasons": reasons}
            break
        best = step
    key = load_of(steps[0])[0] if steps else "target_rps"
    return {
        key: load_of(best)[1] if best else None,
        "offered_rps": best.get("offered_rps") if best else None,
        "output_tok_s": best.get("output_tok_s") if best else None,
        "failed_step": failed,
        "not_judged": unjudged,
        "rules": slo.rules(),
        "slo": asdict(slo),
    }


def describe(result: dict) -> str:
    """One line: "knee 2 rps (offered 1.98 rps); 2.4 rps failed: TTFT p95 6.10 s > 5 s"."""
    unit = "users" if "concurrency" in result else "rps"
    value = result.get("concurrency", result.get("target_rps"))
    head = (
        f"knee {value:g} {unit}" + (f" (offered {result['offered_rps']:.2f} rps)" if result.get("offered_rps") else "")
        if value is not None
        else "knee: none"
    )
    failed = result.get("failed_step")
    if failed:
        load = failed.get("concurrency", failed.get("target_rps"))
        head += f"; {load:g} {unit} failed: " + "; ".join(failed["reasons"])
    return head
