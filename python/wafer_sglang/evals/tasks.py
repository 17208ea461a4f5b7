"""The evals the gate runs, with the reference run's settings, and their local datasets.

Each task wraps one of lm-eval's own task YAMLs (``include:``) so prompts, filters and metrics are
lm-eval's; only the dataset source is ours: JSONL files in a data folder, or the offline HF cache.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from wafer_sglang.errors import WaferError


@dataclass(frozen=True)
class Task:
    name: str
    title: str  # as the report names it
    builtin: str  # lm-eval's YAML, relative to lm_eval/tasks
    hub: tuple[str, str]  # (dataset_path, dataset_name) on the Hugging Face hub
    splits: tuple[str, ...]  # the splits lm-eval reads; one JSONL file each
    fields: tuple[str, ...]  # what every row needs
    num_fewshot: int
    temperature: float
    seeds: tuple[int, ...]
    limit: int | None  # the reference run's question count (None: all)
    filter: str  # the headline filter of exact_match
    max_gen_toks: int
    label: str  # how the reference table names the setting
    marker: tuple[str, str] | None = None  # (field, text) every row's field must contain

    @property
    def lm_eval_name(self) -> str:
        return f"wafer_{self.name}"


TASKS = {
    t.name: t
    for t in (
        Task(
            "gsm8k",
            "GSM8K",
            "gsm8k/gsm8k.yaml",
            ("openai/gsm8k", "main"),
            ("train", "test"),
            ("question", "answer"),
            num_fewshot=5,
            temperature=0.0,
            seeds=(0,),
            limit=200,
            filter="strict-match",
            max_gen_toks=256,
            label="5-shot, greedy",
            marker=("answer", "####"),
        ),
        # lm-eval shuffles the choices with Python's random, seeded by --seed: each seed is a new order too.
        Task(
            "gpqa_diamond",
            "GPQA-Diamond",
            "gpqa/cot_zeroshot/gpqa_diamond_cot_zeroshot.yaml",
            ("Idavidrein/gpqa", "gpqa_diamond"),
            ("train",),
            ("Question", "Correct Answer", "Incorrect Answer 1", "Incorrect Answer 2", "Incorrect Answer 3"),
            num_fewshot=0,
            temperature=1.0,
            seeds=(0, 1),
            limit=None,
            filter="flexible-extract",
            max_gen_toks=16384,
            label="CoT 0-shot, temp 1.0",
        ),
    )
}


def parse_tasks(text: str) -> list[Task]:
    names = [n.strip() for n in text.split(",") if n.strip()]
    unknown = [n for n in names if n not in TASKS]
    if unknown or not names:
        raise WaferError(f"unknown eval task(s) {', '.join(unknown) or '(none)'}; known: {', '.join(TASKS)}")
    return [TASKS[n] for n in dict.fromkeys(names)]


def split_file(data_dir: Path, task: Task, split: str) -> Path:
    return data_dir / task.name / f"{split}.jsonl"


def check_dataset(data_dir: Path, task: Task) -> dict[str, Path]:
    """The task's split files, each checked row by row before lm-eval is started."""
    files = {}
    for split in task.splits:
        path = split_file(data_dir, task, split)
        if not path.is_file():
            raise WaferError(
                f"{task.name}: missing {path} (one JSON object per line with {', '.join(task.fields)}); "
                "prepare it with `wafer-sglang eval prepare` on a connected machine"
            )
        rows = 0
        for lineno, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if line.strip():
                _check_row(task, path, lineno, line)
                rows += 1
        if not rows:
            raise WaferError(f"{task.name}: {path} has no rows")
        files[split] = path.resolve()
    return files


def _check_row(task: Task, path: Path, lineno: int, line: str) -> None:
    where = f"{task.name}: {path} line {lineno}"
    try:
        row = json.loads(line)
    except json.JSONDecodeError as exc:
        raise WaferError(f"{where}: not JSON ({exc.msg})") from None
    if not isinstance(row, dict):
        raise WaferError(f"{where}: expected a JSON object, got {type(row).__name__}")
    missing = [f for f in task.fields if not isinstance(row.get(f), str)]
    if missing:
        raise WaferError(
            f"{where}: missing or non-string field(s) {', '.join(missing)} (needs {', '.join(task.fields)})"
        )
    if task.marker and task.marker[1] not in row[task.marker[0]]:
        field, text = task.marker
        raise WaferError(f"{where}: {field} has no {text!r}, which lm-eval's {task.name} extracts the answer after")
