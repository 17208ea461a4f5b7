"""The fork's METADATA, rewritten from upstream's through the ``email`` parser.

What changes: the name and version (Requires-Python stays upstream's: the tools run on 3.10+); requirements
that would pull CUDA builds onto a ROCm host are dropped (ROCm torch, triton, aiter and
sgl-kernel come from the ROCm environment — the image or the user's ROCm install — and
``wafer-sglang doctor`` checks them); self-referencing extras (``sglang[x]``) point at us, or
installing an extra would pull upstream sglang over our files; the tools are a requirement:
exactly the ``wafer-sglang`` release built with it (its extras through ours), and the router
extra per base.
"""

from __future__ import annotations

import email.parser
import email.policy
import io
from email.generator import Generator
from email.message import Message
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name, parse_wheel_filename

from wafer_sglang import __version__ as tooling_version
from wafer_sglang.errors import WaferError
from wafer_sglang.manifest import ENGINE_DIST

DIST_NAME = ENGINE_DIST
TOOLS_DIST = "wafer-sglang"  # the tools alone (build/tools_wheel.py); the engine requires exactly its release

_ROCM_ENV = "provided by the ROCm environment; the PyPI build is CUDA and would replace the ROCm one"
_CUDA_ONLY = "CUDA-only binary; not used on ROCm"
DROPPED_REQUIREMENTS: dict[str, str] = {
    "torch": _ROCM_ENV,
    "torchaudio": _ROCM_ENV,
    "torchvision": _ROCM_ENV,
    "torchcodec": _ROCM_ENV,
    "torchao": _ROCM_ENV,
    "triton": _ROCM_ENV,
    "sglang-kernel": "ROCm sgl-kernel is built from source for gfx950 (see sgl-kernel/); the PyPI wheel is CUDA",
    "sgl-kernel": "ROCm sgl-kernel is built from source for gfx950 (see sgl-kernel/); the PyPI wheel is CUDA",
    "cuda-python": _CUDA_ONLY,
    "flash-attn-4": _CUDA_ONLY,
    "flashinfer-cubin": _CUDA_ONLY,
    "flashinfer-python": _CUDA_ONLY,
    "humming-kernels": _CUDA_ONLY,
    "nvidia-cutlass-dsl": _CUDA_ONLY,
    "nvidia-mathdx": _CUDA_ONLY,
    "nvidia-ml-py": _CUDA_ONLY,
    "nvidia-modelopt": _CUDA_ONLY,
    "nvshmem4py-cu13": _CUDA_ONLY,
    "quack-kernels": _CUDA_ONLY,
    "sgl-deep-ep": _CUDA_ONLY,
    "sgl-deep-gemm": _CUDA_ONLY,
    "sgl-flash-mla": _CUDA_ONLY,
    "st-attn": _CUDA_ONLY,
    "tilelang": _CUDA_ONLY,
    "tokenspeed-mla": _CUDA_ONLY,
    "torch-memory-saver": _CUDA_ONLY,
    "vsa": _CUDA_ONLY,
}

# Our tooling's own needs (packaging is already an upstream requirement).
TOOLING_REQUIREMENTS = ["rich>=13", "tomlkit>=0.12", "shtab>=1.7", 'tomli>=2; python_version < "3.11"']
TOOLING_EXTRAS = {
    "bench": ["aiohttp>=3.9", "numpy", "matplotlib>=3.8", "tokenizers>=0.20", "prometheus-client>=0.20"],
    # lm-eval's `run` subcommand and task layout (gsm8k, gpqa cot_zeroshot) as of 0.4.13
    "eval": ["lm-eval[api]>=0.4.13,<0.5", "numpy", "prometheus-client>=0.20", "requests>=2.31"],
    # per base: router_requirements() (data/topologies.toml [router]); the image installs it
    "router": [],
    # `cluster k8s`: YAML out, and the manifests checked against the Kubernetes schemas
    "k8s": ["kubernetes-validate==1.37.0", "PyYAML>=6"],
}

# pypa/wheel's way: parse with compat32 (header values kept verbatim, continuation lines
# included), serialise as UTF-8 with no From-mangling and no re-folding.
_SERIALIZE = email.policy.EmailPolicy(utf8=True, mangle_from_=False, max_line_length=0)


def rewrite_requirement(requirement: str) -> str | None:
    """The requirement as the fork declares it, or None to drop it."""
    req = Requirement(requirement)
    name = canonicalize_name(req.name)
    if name in DROPPED_REQUIREMENTS:
        return None
    if name == "sglang":
        req.name = DIST_NAME
    return str(req)


def parse(raw: bytes) -> Message:
    return email.parser.Parser(policy=email.policy.compat32).parsestr(raw.decode("utf-8"))


def fork_requirements(raw: bytes) -> tuple[list[str], dict[str, str]]:
    """The fork's Requires-Dist (upstream's rewritten, plus ours) and what was dropped, why."""
    kept, dropped = [], {}
    for requirement in parse(raw).get_all("Requires-Dist") or []:
        rewritten = rewrite_requirement(requirement)
        if rewritten is None:
            dropped[requirement] = DROPPED_REQUIREMENTS[canonicalize_name(Requirement(requirement).name)]
        else:
            kept.append(rewritten)
    for extra, requirements in tooling_extras(parse(raw)["Version"]).items():
        kept += [f'{r}; extra == "{extra}"' if extra else r for r in requirements]
    return kept, dropped


def tooling_extras(base: str) -> dict[str, list[str]]:
    """What the engine wheel of a base adds, by extra ("" for always): exactly its tools release,
    each tools extra through it, and the base's own router (the tools wheel's is the LTS's)."""
    tools = f"{TOOLS_DIST}=={tooling_version}"
    return {
        "": [tools],
        **{extra: [f"{TOOLS_DIST}[{extra}]=={tooling_version}"] for extra in TOOLING_EXTRAS if extra != "router"},
        "router": router_requirements(base),
    }


def router_requirements(base: str) -> list[str]:
    """The [router] extra of a base's wheel: the router its cluster plans are checked with, and
    what `serve` co-launches on one node on every base (data/topologies.toml [router], [colauncher])."""
    from wafer_sglang.serve.router import colauncher, release

    return list(dict.fromkeys([release(base).pin, colauncher().pin]))


def dist_info_file(wheel: Path, name: str) -> bytes:
    """A file of a built wheel's ``.dist-info`` (METADATA, the engine's fork_manifest.json, ...)."""
    import zipfile

    with zipfile.ZipFile(wheel) as zf:
        return zf.read(next(n for n in zf.namelist() if n.endswith(f".dist-info/{name}")))


def check_tools_wheel(engine: Path, tools: Path) -> None:
    """``tools`` is the wafer-sglang release the engine wheel requires (both go in together)."""
    pins = [
        Requirement(r)
        for r in parse(dist_info_file(engine, "METADATA")).get_all("Requires-Dist") or []
        if canonicalize_name(Requirement(r).name) == TOOLS_DIST and not Requirement(r).marker
    ]
    version = parse_wheel_filename(tools.name)[1]
    if len(pins) != 1 or not pins[0].specifier.contains(version, prereleases=True):
        wanted = str(pins[0].specifier) if pins else "no wafer-sglang requirement"
        raise WaferError(f"{engine.name} requires wafer-sglang {wanted}, but the tools wheel is {tools.name}")


def split_extras(requirements: list[str]) -> tuple[list[str], dict[str, list[str]]]:
    """Requires-Dist lines as setuptools wants them: plain requirements, and per extra its own
    (each keeping any other environment marker), so `pip install '.[bench]'` from a checkout
    gets what the built wheel declares."""
    import re

    plain, extras = [], {}
    for line in requirements:
        found = re.search(r"""extra\s*==\s*["']([^"']+)["']""", line)
        if not found:
            plain.append(line)
            continue
        requirement, _, marker = line.partition(";")
        rest = re.sub(r"""extra\s*==\s*["'][^"']+["']""", "", marker)
        rest = re.sub(r"\(\s*\)", "", rest)
        rest = re.sub(r"^\s*and\s+|\s+and\s*$", "", rest.strip()).strip()
        extras.setdefault(found[1], []).append(f"{requirement.strip()}; {rest}" if rest else requirement.strip())
    return plain, extras


def requires_python(raw: bytes) -> str | None:
    """Upstream's Requires-Python (0.5.14 declares >=3.10: the ROCm images run 3.10)."""
    return parse(raw).get("Requires-Python")


def rewrite_metadata(raw: bytes, *, version: str, summary: str, preamble: str) -> bytes:
    upstream = parse(raw)
    fork = Message(policy=email.policy.compat32)
    extras: list[str] = []
    for key, value in upstream.items():
        if key == "Name":
            value = DIST_NAME
        elif key == "Version":
            value = version
        elif key == "Summary":
            value = summary
        elif key == "Requires-Dist":
            value = rewrite_requirement(value)
        elif key == "Provides-Extra":
            extras.append(value)
        if value is not None:
            fork[key] = value
    for extra, requirements in tooling_extras(upstream["Version"]).items():
        if extra and extra not in extras:
            fork["Provides-Extra"] = extra
        for requirement in requirements:
            fork["Requires-Dist"] = f'{requirement}; extra == "{extra}"' if extra else requirement
    fork.set_payload(preamble + "\n\n" + (upstream.get_payload() or ""))
    buffer = io.StringIO()
    Generator(buffer, policy=_SERIALIZE).flatten(fork)
    return buffer.getvalue().encode("utf-8")
