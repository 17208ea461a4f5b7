"""The quality gate's test data (lm-eval's gsm8k and gpqa formats, answers the suite's served
model gets right or wrong by design) and the eval command the tests run."""

from __future__ import annotations

import json
import math
from pathlib import Path

from support.common import run_cli

# The served model says "#### 0 (A)" to everything (served_engine.ANSWER): gsm8k strict-match
# extracts 0 and gpqa's flexible-extract (A). The random model never says "#### <number>" or "(X)".
GSM8K_TEST = [0, 0, 5, 0, 0, 0, 5, 0]  # the answer model gets 6 of 8: 0.75
GSM8K_STDERR = math.sqrt(0.75 * 0.25 * 8 / 7) / math.sqrt(8)  # sample std (ddof=1) / sqrt(n)


def write_jsonl(path: Path, rows) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))


def write_eval_data(root: Path) -> Path:
    """gsm8k and gpqa_diamond; gpqa's four choices are the same text, so after lm-eval's shuffle
    the right answer is always (A)."""
    write_jsonl(
        root / "gsm8k" / "train.jsonl",
        [{"question": f"What is {i} plus {i}?", "answer": f"{i} plus {i} is {2 * i}.\n#### {2 * i}"} for i in range(6)],
    )
    write_jsonl(
        root / "gsm8k" / "test.jsonl",
        [{"question": f"Question {i}: how many?", "answer": f"Counting.\n#### {a}"} for i, a in enumerate(GSM8K_TEST)],
    )
    write_jsonl(
        root / "gpqa_diamond" / "train.jsonl",
        [
            {
                "Question": f"Which element is number {i}?",
                "Correct Answer": "Xenon",
                **{f"Incorrect Answer {k}": "Xenon" for k in (1, 2, 3)},
            }
            for i in range(4)
        ],
    )
    return root


def evaluate(capsys, out, baseline, candidate, data, *extra):
    return run_cli(
        capsys, "eval", "--baseline", baseline, "--candidate", candidate, "--data-dir", str(data), "--out", str(out),
        "--max-gen-toks", "24", "--concurrency", "2", *extra,
    )  # fmt: skip
