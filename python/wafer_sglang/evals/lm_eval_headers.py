"""``python -m wafer_sglang.evals.lm_eval_headers run ...``: lm-eval's own command line, with the
request headers of ``eval run --header`` added to its ``--model_args``.

lm-eval's API backends take extra headers only as ``model_args["header"]``, and a command line is
both recorded (command.json) and readable by every user of the host (/proc/PID/cmdline). So the
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
    from lm_eval.__main__ import cli_evaluate

    cli_evaluate()


if __name__ == "__main__":
    main()
