"""The aiter a question is about, with what answers it: the fork's image of a base (its aiter
commit, read from a clone of ROCm/aiter) or this host's installed aiter."""

from __future__ import annotations

import importlib.metadata
import os
from dataclasses import dataclass
from pathlib import Path

from wafer_sglang.errors import WaferError
from wafer_sglang.moe import lookup
from wafer_sglang.moe.aiter_tree import AiterTree
from wafer_sglang.moe.coverage import TunedFile, fork_file
from wafer_sglang.moe.files import FORK_FMOE_IN_IMAGE, aiter_configs_dir, aiter_tuned_files, fork_tuned_files
from wafer_sglang.moe.kernel_names import KernelNames, kernel_names


@dataclass
class Target:
    label: str
    commit: str | None
    tree: AiterTree
    files: list[TunedFile]  # what AITER_CONFIG_FMOE lists (in order)

    @property
    def model(self) -> lookup.AiterLookup | None:
        return lookup.lookup_for(self.commit) if self.commit else None

    def names(self) -> KernelNames:
        return kernel_names(self.tree)

    @property
    def config_fmoe(self) -> str:
        return ":".join(f.name for f in self.files)


def image_target(root: Path, base: str, clone: Path, fork_dir: Path | None) -> Target:
    """The image of ``base``: aiter at the commit its record names, aiter's files as listed
    there, then the fork's rows (``fork_dir``) as the image ships them."""
    from wafer_sglang.bases import base_image

    image = base_image(root, base, require_aiter=True)
    tree = AiterTree.at(clone, image.aiter_commit)
    files = []
    for name in image.aiter_fmoe:
        text = tree.read(f"aiter/configs/{name}")
        if text is None:
            raise WaferError(
                f"docker/base-images.toml lists {name} for the {base} image, but aiter "
                f"{image.aiter_commit[:12]} has no aiter/configs/{name}"
            )
        files.append(TunedFile(f"{image.aiter_configs}/{name}", text))
    files += [fork_file(p, f"{FORK_FMOE_IN_IMAGE}/{p.name}") for p in fork_tuned_files(fork_dir)]
    return Target(
        f"aiter {image.aiter_version} ({image.aiter_commit[:9]}, the {base} image)", image.aiter_commit, tree, files
    )


def host_target(
    aiter_root: Path | None, fork_dir: Path | None, env: dict[str, str] | None = None, version: str | None = None
) -> Target:
    """This host's aiter (or the one at ``aiter_root``; ``version`` says which when its metadata is
    not installed) with the files it reads now: AITER_CONFIG_FMOE when set, else aiter's own —
    plus ``fork_dir``'s rows when given."""
    env = os.environ if env is None else env
    configs = aiter_configs_dir(aiter_root)
    if configs is None:
        raise WaferError(
            "aiter is not installed here; pass --aiter-root DIR (an aiter package or checkout), "
            "or --image BASE --aiter-src CLONE for the fork's image"
        )
    tree = AiterTree.installed(configs.parent)
    listed = [p for p in env.get("AITER_CONFIG_FMOE", "").split(os.pathsep) if p]
    if listed:
        ours = {p.resolve() for p in fork_tuned_files(fork_dir)} if fork_dir else set()
        files = [
            _host_file(Path(p), Path(p).resolve() in ours or configs not in Path(p).resolve().parents) for p in listed
        ]
    else:
        files = [TunedFile(str(p), p.read_text()) for p in aiter_tuned_files(configs)]
        files += [fork_file(p) for p in fork_tuned_files(fork_dir)]
    version = version or _installed_version()
    return Target(f"aiter {version or 'at ' + str(configs.parent)} (this host)", _commit_of(version), tree, files)


def _host_file(path: Path, ours: bool) -> TunedFile:
    try:
        return fork_file(path) if ours else TunedFile(str(path), path.read_text())
    except OSError as exc:
        raise WaferError(
            f"AITER_CONFIG_FMOE lists {path}, which cannot be read ({exc.strerror}); aiter skips missing files silently"
        ) from None


def _installed_version() -> str | None:
    for dist in ("amd-aiter", "aiter"):
        try:
            return importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            continue
    return None


def _commit_of(version: str | None) -> str | None:
    model = lookup.lookup_for(version) if version else None
    return model.commit if model else None


def glm5_coverage(target: Target):
    """GLM-5's fp4 keys (TP4/TP8, fused and unfused) on ``target``, with aiter's own code when it
    can run here, else the model."""
    from wafer_sglang.moe.aiter_exec import runnable
    from wafer_sglang.moe.coverage import coverage
    from wafer_sglang.moe.shapes import glm5_keys

    tree = target.tree if runnable(target.tree) else None
    return coverage(glm5_keys(), target.files, target.model, target.names(), tree, target.label)
