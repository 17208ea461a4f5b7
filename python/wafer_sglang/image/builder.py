"""wafer/sglang:mi355x: the pinned upstream ROCm base images (docker/base-images.toml) and the
build docker/build runs — a build context (the fork's wheels, its fMoE configs, the image
scripts) and the exact engine command with every build argument.

The Dockerfile changes the base only through steps that check first: the image's Python has a
fork wheel, its sglang is the base's release, aiter's tuned files are what AITER_CONFIG_FMOE lists.
"""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from wafer_sglang.bases import DIGEST, BaseImage, base_image, image_records
from wafer_sglang.bases import IMAGES_FILE as PIN_FILE
from wafer_sglang.bases.images import record_image
from wafer_sglang.errors import WaferError
from wafer_sglang.moe.files import FORK_FMOE_IN_IMAGE, config_fmoe_value, fork_rows_dir, fork_tuned_files
from wafer_sglang.moe.fork_rows import ROWS_FILE

DOCKERFILE = Path("docker/Dockerfile.mi355x")
SCRIPTS = Path("docker/image")
FMOE_DIR = FORK_FMOE_IN_IMAGE
REPOSITORY = "wafer/sglang"


def fork_fmoe(root: Path, base: str) -> list[Path]:
    """The fork's rows for the base's image (`wafer-sglang moe rows`), with their sidecars."""
    if not (fork_rows_dir(root, base) / ROWS_FILE).is_file():
        raise WaferError(
            f"no fork fMoE rows for the {base} image in {fork_rows_dir(root, base)}: make them from a clone "
            f"of ROCm/aiter first: `wafer-sglang moe rows --image {base} --aiter-src CLONE` "
            "(git clone https://github.com/ROCm/aiter && git -C aiter fetch origin pull/4344/head), "
            f"or pass --aiter-src to docker/build"
        )
    return sorted(p for p in fork_rows_dir(root, base).iterdir() if p.is_file())


def aiter_config_fmoe(image: BaseImage, root: Path) -> str:
    """AITER_CONFIG_FMOE in the image: aiter's own tuned files, then the fork's (additive)."""
    aiter = [f"{image.aiter_configs}/{name}" for name in image.aiter_fmoe]
    ours = [p.name for p in fork_tuned_files(fork_rows_dir(root, image.base))] or [ROWS_FILE]  # the build demands it
    return config_fmoe_value(aiter + [f"{FMOE_DIR}/{name}" for name in ours])


@dataclass(frozen=True)
class Plan:
    image: BaseImage
    wheel: Path
    tools_wheel: Path  # the wafer-sglang release the fork wheel requires
    context: Path
    build_args: dict[str, str]
    tags: list[str]
    command: list[str]


def plan(
    root: Path,
    image: BaseImage,
    version: str,
    engine: str,
    wheel: Path,
    tools_wheel: Path,
    context: Path,
    *,
    default_base: bool,
    vcs_ref: str,
    push: bool = False,
) -> Plan:
    """``image`` from base_image(), ``version`` the fork's version for its base."""
    base = image.base
    build_args = {
        "BASE_IMAGE": image.reference,
        "BASE_IMAGE_NAME": f"{image.repository}:{image.tag}",
        "BASE_DIGEST": image.digest,
        "WAFER_BASE": base,
        "WAFER_VERSION": version,
        "WAFER_WHEEL": wheel.name,
        "WAFER_TOOLS_WHEEL": tools_wheel.name,
        "VCS_REF": vcs_ref,
        "SOURCE_URL": source_url(root),
        "AITER_CONFIG_FMOE": aiter_config_fmoe(image, root),
    }
    # mi355x-<version> never moves (one per respin); mi355x follows the LTS base's latest respin.
    tags = [f"{REPOSITORY}:mi355x-{version}"] + ([f"{REPOSITORY}:mi355x"] if default_base else [])
    if engine == "docker":
        # a pushed image carries a SLSA provenance and an SBOM attestation (docker buildx imagetools inspect)
        command = [
            "docker",
            "buildx",
            "build",
            *(["--push", "--provenance=mode=max", "--sbom=true"] if push else ["--load"]),
        ]
    elif push:
        raise WaferError("--push builds with docker buildx (provenance and SBOM attestations); buildah does not")
    elif engine == "buildah":
        command = ["buildah", "build", "--format", "docker"]  # OCI has no HEALTHCHECK
    else:
        raise WaferError(f"unknown engine {engine!r}: docker or buildah")
    command += ["-f", str(context / "Dockerfile.mi355x")]
    for key, value in build_args.items():
        command += ["--build-arg", f"{key}={value}"]
    for tag in tags:
        command += ["-t", tag]
    return Plan(image, wheel, tools_wheel, context, build_args, tags, command + [str(context)])


def prepare(
    root: Path,
    base: str | None,
    *,
    wheel: Path | None,
    aiter_src: Path | None,
    engine: str,
    push: bool,
    build: bool,
) -> Plan:
    """`image build`'s plan: the base (default: the LTS) and its pinned image, checked before
    anything is built; the fork wheel (given, in build/dist/, or built) and the tools wheel it
    requires (beside it, or built). ``build`` False: say where the wheels would come from."""
    from wafer_sglang import bases
    from wafer_sglang.repo import build_dir
    from wafer_sglang.wheels.wheel import fork_version

    pins = bases.pins(root)
    base = base or pins.default_base
    image = base_image(root, base)
    if aiter_src:  # a clone with the image's aiter commit, checked before any wheel is built
        from wafer_sglang.moe.aiter_tree import AiterTree

        AiterTree.at(aiter_src, image.aiter_commit)
    version = fork_version(pins.base(base))
    wheel = wheel or _fork_wheel(root, base, version, image.python_tag, build=build)
    tools = _tools_wheel(root, wheel, build=build)
    vcs_ref = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True)
    return plan(
        root,
        image,
        version,
        engine,
        wheel,
        tools,
        build_dir(root) / "image-context" / base,
        default_base=base == pins.default_base,
        vcs_ref=vcs_ref.stdout.strip() or "unknown",
        push=push,
    )


def _fork_wheel(root: Path, base: str, version: str, python_tag: str, *, build: bool) -> Path:
    from wafer_sglang.repo import build_dir
    from wafer_sglang.wheels.wheel import build as build_wheel

    dist = build_dir(root) / "dist"
    found = sorted(dist.glob(f"wafer_sglang_rocm-{version}-{python_tag}-{python_tag}-*.whl"))
    if found:
        return found[-1]
    if not build:
        return dist / f"wafer_sglang_rocm-{version}-{python_tag}-{python_tag}-(built on demand).whl"
    return build_wheel(root, base, python_tag, dist)


def _tools_wheel(root: Path, wheel: Path, *, build: bool) -> Path:
    """The wafer-sglang wheel the fork wheel requires: beside it, else built from the checkout."""
    from wafer_sglang.repo import build_dir
    from wafer_sglang.wheels.metadata import check_tools_wheel
    from wafer_sglang.wheels.tools_wheel import build_tools, tools_wheel_name

    beside = wheel.parent / tools_wheel_name()
    if not build:
        return beside if beside.is_file() else build_dir(root) / "dist" / tools_wheel_name()
    tools = beside if beside.is_file() else build_tools(root, build_dir(root) / "dist")
    check_tools_wheel(wheel, tools)
    return tools


def assemble_context(root: Path, plan_: Plan) -> None:
    """Only what the Dockerfile copies: the wheels, the fork's fMoE CSVs, the image scripts."""
    shutil.rmtree(plan_.context, ignore_errors=True)
    (plan_.context / "wheels").mkdir(parents=True)
    for wheel in (plan_.wheel, plan_.tools_wheel):
        shutil.copy2(wheel, plan_.context / "wheels" / wheel.name)
    (plan_.context / "fmoe").mkdir()
    for file in fork_fmoe(root, plan_.image.base):
        shutil.copy2(file, plan_.context / "fmoe" / file.name)
    shutil.copytree(root / SCRIPTS, plan_.context / "image")
    shutil.copy2(root / DOCKERFILE, plan_.context / "Dockerfile.mi355x")


def source_url(root: Path) -> str:
    proc = subprocess.run(
        ["git", "-C", str(root), "config", "--get", "remote.origin.url"], capture_output=True, text=True
    )
    return proc.stdout.strip() or "unknown (a checkout without an origin remote)"


def _require(tool: str, where: str) -> None:
    if shutil.which(tool) is None:
        raise WaferError(f"{tool} is not installed here; {where}")


def run(command: list[str], env: dict[str, str] | None = None) -> None:
    _require(command[0], "build on a release machine with docker buildx or buildah")
    proc = subprocess.run(command, env=env)
    if proc.returncode != 0:
        raise WaferError(
            f"the image build failed ({command[0]} exited {proc.returncode}); its output above says at which step"
        )


# -- resolve: record an upstream image (digest from the registry, contents from the image) -----

INVENTORY = """
import importlib.metadata as m, importlib.util, json, platform, subprocess
from pathlib import Path
{aiter_tuned_files}
def version(*names):
    for name in names:
        try:
            return m.version(name)
        except m.PackageNotFoundError:
            pass
    return ""
spec = importlib.util.find_spec("aiter")
locations = spec.submodule_search_locations if spec else None
configs = Path(next(iter(locations))) / "configs" if locations else None
files = aiter_tuned_files(configs) if configs and configs.is_dir() else []
aiter = version("amd-aiter", "aiter")
try:  # an editable checkout (the upstream images') knows its commit; else the version's +g<sha>
    commit = subprocess.run(["git", "-C", str(configs.parent), "rev-parse", "HEAD"], capture_output=True,
                            text=True, check=True).stdout.strip()
except Exception:
    commit = aiter.rsplit("+g", 1)[1] if "+g" in aiter else ""
print(json.dumps({{"python": platform.python_version(), "sglang": version("sglang"), "torch": version("torch"),
                  "triton": version("triton", "pytorch-triton-rocm"), "aiter": aiter, "aiter-commit": commit,
                  "sgl-kernel": version("sgl-kernel", "sglang-kernel"), "aiter-configs": str(configs or ""),
                  "aiter-fmoe": [f.relative_to(configs).as_posix() for f in files]}}))
"""


def inventory_script() -> str:
    """Runs with the image's own Python: versions and aiter's tuned files, found the way
    moe/files.py finds them (its function's source is embedded, not copied)."""
    import inspect

    from wafer_sglang.moe import files

    return INVENTORY.format(aiter_tuned_files=inspect.getsource(files.aiter_tuned_files))


def _capture(command: list[str]) -> str:
    _require(command[0], "resolve on a machine with docker (or skopeo) and registry access")
    return subprocess.run(command, check=True, capture_output=True, text=True).stdout


def resolve(root: Path, base: str, tag: str, run_=_capture) -> dict:
    """Read ``repository:tag``'s digest and contents and record them for ``base``."""
    import datetime
    import json

    record = image_records(root).get(base)
    if record is None:
        raise WaferError(f"{PIN_FILE} has no [images.{base!r}]: add it with the upstream repository first")
    reference = f"{record['repository']}:{tag}"
    if shutil.which("skopeo"):
        digest = run_(["skopeo", "inspect", "--format", "{{.Digest}}", f"docker://{reference}"]).strip()
    else:
        digest = json.loads(
            run_(["docker", "buildx", "imagetools", "inspect", reference, "--format", "{{json .Manifest}}"])
        )["digest"]
    if not DIGEST.match(digest):
        raise WaferError(f"{reference}: the registry returned {digest!r}, not a sha256 digest")
    found = json.loads(
        run_(
            [
                "docker",
                "run",
                "--rm",
                "--entrypoint",
                "python3",
                f"{record['repository']}@{digest}",
                "-c",
                inventory_script(),
            ]
        )
    )
    record_image(
        root,
        base,
        {
            "repository": record["repository"],
            "tag": tag,
            "digest": digest,
            "gpu-arch": record.get("gpu-arch", "gfx950"),
            **{k: v for k, v in found.items() if k != "aiter-fmoe"},
            "recorded": f"{datetime.date.today().isoformat()}: docker/build --resolve (registry digest, image "
            "inventory)",
            "aiter-fmoe": found["aiter-fmoe"],
        },
    )
    return base_image(root, base).__dict__
