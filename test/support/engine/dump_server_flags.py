"""Print the CLI of upstream sglang's real ServerArgs (PYTHONPATH=<tree>:test/support/engine) as JSON:
option string -> {"dest", "takes_value"[, "choices"]}. The recipes and cluster plans are checked
against it."""

from __future__ import annotations

import argparse
import json
import sys

import cpu_sglang


def main() -> None:
    cpu_sglang.install(sgl_kernel="--sgl-kernel-stub" in sys.argv)
    from sglang.srt.server_args import ServerArgs

    parser = argparse.ArgumentParser()
    ServerArgs.add_cli_args(parser)
    flags = {}
    for action in parser._actions:
        for option in action.option_strings:
            if option in ("-h", "--help"):
                continue
            flags[option] = {"dest": action.dest, "takes_value": action.nargs != 0}
            if action.choices is not None:
                # Some choices are sets (hash order varies between runs): keep lists as written.
                choices = action.choices
                if isinstance(choices, (set, frozenset)):
                    choices = sorted(choices, key=str)
                flags[option]["choices"] = [str(c) for c in choices]
    print("PROBE-RESULT " + json.dumps(flags, sort_keys=True))


if __name__ == "__main__":
    main()
