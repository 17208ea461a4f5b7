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

from wafer_sglang.bench.results import FailedStep, Knee, StepResult

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

    def failures(self, step: StepResult) -> list[str]:
        """Every rule ``step`` breaks, in words with its figures."""
        if step.interrupted:
            return ["interrupted"]
        reasons = [f"aborted: {step.aborted}"] if step.aborted else []
        success = step.success_rate
        if success is None or success < self.success_rate:
            failed = ", ".join(f"{n} {kind}" for kind, n in sorted(step.failures.items()))
            reasons.append(
                f"success {0 if success is None else success:.1%} < {self.success_rate:.0%}"
                + (f" ({failed})" if failed else "")
            )
        if step.ttft_p95_s is not None and step.ttft_p95_s > self.ttft_p95_s:
            reasons.append(f"TTFT p95 {step.ttft_p95_s:.2f} s > {self.ttft_p95_s:g} s")
        trend = step.ttft_trend if not step.closed else None
        if trend and trend["late_p50_s"] > max(
            self.ttft_growth * trend["early_p50_s"], trend["early_p50_s"] + self.ttft_growth_floor_s
        ):
            reasons.append(
                f"queue building: TTFT p50 {trend['early_p50_s']:.2f} s -> {trend['late_p50_s']:.2f} s "
                "from the first to the last third of the step"
            )
        attained = step.goodput_attainment
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


def judged(step: StepResult) -> bool:
    return bool(step.requests) or step.interrupted or bool(step.aborted)


def knee(steps: list[StepResult], slo: Slo) -> Knee:
    best, failed, unjudged = None, None, []
    for step in sorted(steps, key=lambda s: s.load):
        if not judged(step):
            unjudged.append(step.load)
            continue
        reasons = slo.failures(step)
        if reasons:
            failed = FailedStep(step.mode, step.load, step.offered_rps, reasons)
            break
        best = step
    return Knee(
        steps[0].mode if steps else "rate",
        best.load if best else None,
        best.offered_rps if best else None,
        best.output_tok_s if best else None,
        failed,
        unjudged,
        slo.rules(),
        asdict(slo),
    )


def describe(result: Knee) -> str:
    """One line: "knee 2 rps (offered 1.98 rps); 2.4 rps failed: TTFT p95 6.10 s > 5 s"."""
    unit = "users" if result.mode == "concurrency" else "rps"
    head = (
        f"knee {result.load:g} {unit}" + (f" (offered {result.offered_rps:.2f} rps)" if result.offered_rps else "")
        if result.load is not None
        else "knee: none"
    )
    if result.failed_step:
        head += f"; {result.failed_step.load:g} {unit} failed: " + "; ".join(result.failed_step.reasons)
    return head
