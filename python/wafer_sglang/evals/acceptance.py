"""MTP / speculative-decoding acceptance over an eval, per server: a drop between baseline and
candidate is an early sign of quantization damage (the draft layers and the target disagree more).

Read from the server's Prometheus counters, as a difference over the eval's window:
* sglang (--enable-metrics): generation tokens / verify calls = mean accepted length per step
  (tokens per target forward, the bonus token included — what sglang logs as "accept len");
* vLLM: 1 + accepted draft tokens / drafts, the same quantity.
An sglang server log (--baseline-log/--candidate-log) is the fallback: the mean of the
"accept len: X" values its decode lines print during the window, one per logging interval.
"""

from __future__ import annotations

import re
from pathlib import Path

import requests

from wafer_sglang import metrics
from wafer_sglang.metrics import Acceptance

LOG_LINE = re.compile(r"accept len: ([0-9]+(?:\.[0-9]+)?)")


def scrape(base_url: str, session: requests.Session) -> metrics.Totals | None:
    try:
        response = session.get(base_url.rstrip("/") + "/metrics", timeout=10)
    except requests.RequestException:
        return None
    return metrics.totals(response.text) if response.status_code == 200 else None


from_counters = metrics.acceptance


def from_log(text: str) -> Acceptance | None:
    values = [float(v) for v in LOG_LINE.findall(text)]
    if not values:
        return None
    return Acceptance("log", sum(values) / len(values), f"mean of {len(values)} 'accept len' log lines")


class Window:
    """Counters and log offset at the start of a run; ``close()`` gives the run's acceptance."""

    def __init__(self, base_url: str, log: Path | None, session: requests.Session):
        self.base_url, self.log, self.session = base_url, log, session
        self.counters = scrape(base_url, session)
        self.offset = log.stat().st_size if log and log.is_file() else 0

    def close(self) -> Acceptance | None:
        found = from_counters(self.counters, scrape(self.base_url, self.session))
        if found or not self.log or not self.log.is_file():
            return found
        with self.log.open("rb") as fh:
            fh.seek(self.offset)
            return from_log(fh.read().decode("utf-8", "replace"))
