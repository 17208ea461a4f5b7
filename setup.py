"""``pip install .``: build and install wafer-sglang-rocm for this interpreter.

There is no source tree to compile: the "build" is `wafer-sglang build` — download the pinned
upstream sglang wheel (sha256-verified), apply ``patches/<base>/series`` strictly, add the
overlay and our tooling, and write the fork's wheel. The base is ``default-base`` of
``patches/bases.toml`` (0.5.14, the LTS) unless ``WAFER_SGLANG_BASE`` names another.

The tooling package is loaded from ``python/wafer_sglang`` by file location: ``python/`` also
holds the ``sglang`` overlay, which must never be put on ``sys.path``.
"""

import importlib.util
import os
import sys
from pathlib import Path

from setuptools import Command, setup
from setuptools.command.bdist_wheel import bdist_wheel

ROOT = Path(__file__).resolve().parent


def _tooling():
    package = ROOT / "python" / "wafer_sglang"
    spec = importlib.util.spec_from_file_location(
        "wafer_sglang", package / "__init__.py", submodule_search_locations=[str(package)]
    )
    module = importlib.util.module_from_spec(spec)
    sys.modules["wafer_sglang"] = module
    spec.loader.exec_module(module)
    return module


_tooling()
from wafer_sglang.bases import python_tag  # noqa: E402
from wafer_sglang.errors import WaferError  # noqa: E402
from wafer_sglang.queue.apply import Queue  # noqa: E402
from wafer_sglang.wheels.metadata import DIST_NAME, fork_requirements, requires_python, split_extras  # noqa: E402
from wafer_sglang.wheels.wheel import build, fork_version  # noqa: E402

BASE = os.environ.get("WAFER_SGLANG_BASE") or None


def _upstream_metadata(queue):
    import zipfile

    wheel = queue.fetch(python_tag())
    with zipfile.ZipFile(wheel) as zf:
        return zf.read(f"sglang-{queue.base.version}.dist-info/METADATA")


class ForkWheel(bdist_wheel):
    """bdist_wheel whose run() makes the wheel with wafer_sglang.wheels.wheel.build.

    The rest of bdist_wheel stays: setuptools' dist_info (pip's metadata step) uses it.
    """

    description = "build the wafer-sglang-rocm wheel from the pinned base and the patch queue"

    def run(self):
        try:
            path = build(ROOT, BASE, python_tag(), Path(self.dist_dir))
        except WaferError as exc:
            raise SystemExit(f"wafer-sglang-rocm: {exc}") from None
        print(f"built {path}")


class NoEditable(Command):
    description = "editable installs are not supported"
    user_options = [("dist-dir=", "d", ""), ("mode=", None, "")]  # noqa: RUF012 - setuptools' own API

    def initialize_options(self):
        self.dist_dir = self.mode = None

    def finalize_options(self):
        pass

    def run(self):
        raise SystemExit(
            "wafer-sglang-rocm cannot be installed in editable mode: its sglang is a patched copy of "
            "an upstream wheel. Use `pip install .`, or `make test-env` for development."
        )


try:
    _queue = Queue.open(ROOT, BASE)
    _metadata = _upstream_metadata(_queue)
    _requirements, _extras = split_extras(fork_requirements(_metadata)[0])
except WaferError as exc:
    raise SystemExit(f"wafer-sglang-rocm: {exc}") from None

setup(
    name=DIST_NAME,
    version=fork_version(_queue.base),
    python_requires=requires_python(_metadata),  # the base's own (the wheel's METADATA carries it too)
    install_requires=_requirements,
    extras_require=_extras,
    packages=[],
    cmdclass={"bdist_wheel": ForkWheel, "editable_wheel": NoEditable},
)
