"""Runs in the upstream image before anything is changed (standard library only): is there a fork
wheel for this Python, and is the image's sglang the fork's base release?"""

import argparse
import importlib.metadata
import re
import sys
from pathlib import Path


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--wheel", type=Path, required=True)
    p.add_argument("--base", required=True)
    args = p.parse_args()
    tag = f"cp{sys.version_info.major}{sys.version_info.minor}"
    if f"-{tag}-{tag}-" not in args.wheel.name:
        return fail(
            f"the base image runs Python {sys.version.split()[0]} ({tag}) but the wheel is {args.wheel.name}: "
            "docker/build picks the wheel from the python recorded in docker/base-images.toml; re-resolve the base"
        )
    try:
        upstream = importlib.metadata.version("sglang")
    except importlib.metadata.PackageNotFoundError:
        return fail("the base image has no sglang distribution: it is not an upstream sglang ROCm image")
    release = re.match(r"\d+(\.\d+)*", upstream).group(0).split(".")[:3]
    if release != args.base.split(".")[:3]:
        return fail(
            f"the base image ships sglang {upstream}; the fork's base is {args.base}: "
            "use the upstream image of the same release"
        )
    print(f"preflight: Python {sys.version.split()[0]}, upstream sglang {upstream}, wheel {args.wheel.name}")
    return 0


def fail(message: str) -> int:
    print(f"wafer image preflight: {message}", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
