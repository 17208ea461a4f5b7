"""``eval prepare``: on a connected machine, write the eval datasets as the JSONL folder
``eval --data-dir`` reads offline (copy the folder to the serving host)."""

from __future__ import annotations

import json
from pathlib import Path

from wafer_sglang.errors import WaferError
from wafer_sglang.evals.tasks import Task, check_dataset, split_file
from wafer_sglang.fsutil import atomic_write_text


def prepare(task: Task, data_dir: Path) -> dict[str, Path]:
    import datasets

    path, name = task.hub
    for split in task.splits:
        try:
            rows = datasets.load_dataset(path, name, split=split)
        except Exception as exc:  # datasets raises many types: network, gated repo, offline mode
            raise WaferError(
                f"{task.name}: could not load {path}/{name} split {split} from the Hugging Face hub: {exc}. "
                "Run this on a machine with hub access; gated datasets (gpqa) need their terms accepted "
                "on huggingface.co and HF_TOKEN set."
            ) from None
        write_jsonl(split_file(data_dir, task, split), rows)
    return check_dataset(data_dir, task)


def write_jsonl(path: Path, rows) -> None:
    atomic_write_text(path, "".join(json.dumps(dict(row), ensure_ascii=False) + "\n" for row in rows))
