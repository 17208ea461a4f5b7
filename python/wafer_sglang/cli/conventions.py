"""What every command shares: defaults shown in --help, exit codes and examples in the epilog,
the fork-aware --version, and shell completion. Applied once to the whole parser tree."""

from __future__ import annotations

import argparse
import re

EXIT_CODES = """\
exit codes: 0 ok; 1 the check or gate failed (problems found); 2 unusable input (named in the
message; nothing was changed); 3 internal error (a bug: --debug shows the traceback);
130 interrupted; 141 output closed early (| head); 143 terminated (SIGTERM)."""

# One or two lines a user can paste, per command (its words as typed after `wafer-sglang`).
EXAMPLES = {
    "serve": "wafer-sglang serve --recipe glm5-mxfp4-latency --model /models/GLM-5.2-MXFP4",
    "bench sweep": "wafer-sglang bench sweep --url http://127.0.0.1:30000 --out runs/glm5",
    "bench single": "wafer-sglang bench single --url http://127.0.0.1:30000 --out runs/glm5-single",
    "bench compare": "wafer-sglang bench compare runs/before runs/after --out runs/compare",
    "eval run": "wafer-sglang eval run --baseline http://a:30000 --candidate http://b:30000 --out runs/eval",
    "eval prepare": "wafer-sglang eval prepare --data-dir evals/   # on a connected machine",
    "checkpoint check": "wafer-sglang checkpoint check /models/GLM-5.2-MXFP4",
    "checkpoint fix": "wafer-sglang checkpoint fix /models/GLM-5.2-MXFP4 --write",
    "doctor": "wafer-sglang doctor --json",
    "moe coverage": "wafer-sglang moe coverage --image 0.5.14 --model /models/GLM-5.2-MXFP4 --tp 8",
    "cluster plan": "wafer-sglang cluster plan --topology dp --model /models/GLM-5.2 --nodes 10.0.0.1,10.0.0.2",
    "patches apply": "wafer-sglang patches apply --base 0.5.23 --work-dir build/work/0.5.23",
    "build": "wafer-sglang build --base 0.5.14 --python 3.10 --out dist/",
    "bases": "wafer-sglang bases --json",
    "completion": "wafer-sglang completion bash > /etc/bash_completion.d/wafer-sglang",
    "release": "git tag -a v2026.12.1 -m ... && wafer-sglang release   # -> build/release/v2026.12.1/",
    "canary": "wafer-sglang canary --latest --out canary.md",
}


class HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Epilogs as written; every option's default said unless its help already says it."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        default = action.default
        if (
            not action.option_strings
            or "default" in text
            or default in (None, False, argparse.SUPPRESS)
            or (isinstance(default, (list, tuple)) and not default)
        ):
            return text
        return f"{text} (default: %(default)s)".lstrip()


def leaves(parser: argparse.ArgumentParser, path: tuple[str, ...] = ()):
    """(words, parser) for every command that runs something."""
    subs = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    if not subs:
        yield path, parser
        return
    seen = set()
    for name, child in subs[0].choices.items():
        if id(child) not in seen:  # an alias maps to the same parser
            seen.add(id(child))
            yield from leaves(child, (*path, name))


def apply(parser: argparse.ArgumentParser) -> None:
    for path, leaf in leaves(parser):
        _finish(leaf, " ".join(path))
    _finish(parser, "")


def _finish(parser: argparse.ArgumentParser, words: str) -> None:
    parser.formatter_class = HelpFormatter
    parts = [parser.epilog] if parser.epilog else []
    if words in EXAMPLES:
        parts.append(f"example:\n  {EXAMPLES[words]}")
    if not re.search(r"^exit( codes)?:", parser.epilog or "", re.M):
        parts.append(EXIT_CODES)
    parser.epilog = "\n\n".join(parts)


class VersionAction(argparse.Action):
    """--version: the fork (version, base, patch count) and the tooling, worked out when asked."""

    def __init__(self, option_strings, dest=argparse.SUPPRESS, default=argparse.SUPPRESS, help=None):
        super().__init__(option_strings, dest=dest, default=default, nargs=0, help=help)

    def __call__(self, parser, namespace, values, option_string=None):
        from wafer_sglang.errors import WaferError

        try:  # argparse runs this before main()'s error handling
            text = version_text()
        except WaferError as exc:
            parser.exit(2, f"wafer-sglang: error: {exc}\n")
        print(text)
        parser.exit()


def version_text() -> str:
    from wafer_sglang import __version__
    from wafer_sglang.manifest import installed_manifest

    manifest = installed_manifest()
    if manifest is not None:
        base = manifest["base"]["version"]
        return (
            f"wafer-sglang-rocm {manifest['version']} (sglang {base} + {len(manifest['patches'])} patches; "
            f"tooling {__version__})"
        )
    try:
        from wafer_sglang import bases
        from wafer_sglang.queue.apply import Queue
        from wafer_sglang.repo import find_repo_root

        root = find_repo_root()
        pins = bases.pins(root)
        bases = ", ".join(
            f"sglang {b}{' (LTS)' if b == pins.default_base else ''} + "
            f"{len(Queue.open(root, b).series().entries)} patches"
            for b in pins.bases
        )
        return f"wafer-sglang tooling {__version__} from a source checkout (no fork installed): {bases}"
    except Exception as exc:
        return f"wafer-sglang tooling {__version__} (no fork installed; {exc})"


def completion_script(parser: argparse.ArgumentParser, shell: str) -> str:
    import shtab

    return shtab.complete(parser, shell=shell)
