"""``python -m wafer_sglang.evals.lm_eval_cli run ...``: lm-eval's own command line, as every eval
run starts it, with two differences from ``python -m lm_eval``:

* Only the ``--include_path`` tasks are indexed. Ours are YAMLs that include lm-eval's own by
  path (lmeval.write_task_yaml), so lm-eval's 14k built-in task files need no index; building it
  took ~6 s of every run's ~12 s here (lm-eval 0.4.13, measured on the test machine).
* The request headers of ``eval run --header`` are added to its ``--model_args``. lm-eval's API
  backends take extra headers only as ``model_args["header"]``, and a command line is both
  recorded (command.json) and readable by every user of the host (/proc/PID/cmdline). So the
  headers travel in the environment (``HEADERS_ENV``, JSON) and join the arguments only in this
  process: lm-eval merges a second ``--model_args`` JSON object into the first.
"""

from __future__ import annotations

import json
import os
import sys

HEADERS_ENV = "WAFER_EVAL_HEADERS"


def main() -> None:
    headers = json.loads(os.environ.pop(HEADERS_ENV, "{}"))
    if headers:
        sys.argv += ["--model_args", json.dumps({"header": headers})]
    import lm_eval.tasks
    from lm_eval.__main__ import cli_evaluate

    class IncludedTasksOnly(lm_eval.tasks.TaskManager):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **{**kwargs, "include_defaults": False})

    lm_eval.tasks.TaskManager = IncludedTasksOnly  # the CLI's config makes its manager from here
    cli_evaluate()


if __name__ == "__main__":
    main()
