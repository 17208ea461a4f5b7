"""A CycloneDX 1.6 SBOM per fork wheel: the wheel, the upstream wheel it was made from and every
patch applied to it, each with its sha256 — what a user needs to trace a build back to its inputs."""

from __future__ import annotations

import hashlib
import json
import uuid
import zipfile
from datetime import datetime, timezone
from pathlib import Path

from wafer_sglang.errors import WaferError

NAMESPACE = uuid.UUID("6f1c1f0e-5a57-4b55-9d8c-3a1e3f6c5b10")  # serial numbers derive from the wheel's hash


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def wheel_manifest(wheel: Path) -> dict:
    from wafer_sglang.manifest import MANIFEST_NAME
    from wafer_sglang.wheels.metadata import dist_info_file

    return json.loads(dist_info_file(wheel, MANIFEST_NAME))


def build_sbom(wheel: Path, patch_dir: Path) -> str:
    """The SBOM of ``wheel`` (a fork wheel) as CycloneDX JSON; ``patch_dir`` holds its patch files."""
    from cyclonedx.model import HashAlgorithm, HashType, Property
    from cyclonedx.model.bom import Bom
    from cyclonedx.model.component import Component, ComponentType
    from cyclonedx.output.json import JsonV1Dot6
    from packageurl import PackageURL

    manifest = wheel_manifest(wheel)
    wheel_sha = sha256_file(wheel)
    base = manifest["base"]

    def sha(value: str) -> list:
        return [HashType(alg=HashAlgorithm.SHA_256, content=value)]

    fork = Component(
        type=ComponentType.LIBRARY,
        name="wafer-sglang-rocm",
        version=manifest["version"],
        bom_ref="fork",
        purl=PackageURL("pypi", None, "wafer-sglang-rocm", manifest["version"], {"file_name": wheel.name}),
        hashes=sha(wheel_sha),
    )
    upstream = Component(
        type=ComponentType.LIBRARY,
        name="sglang",
        version=base["version"],
        bom_ref="upstream-wheel",
        purl=PackageURL("pypi", None, "sglang", base["version"], {"file_name": base["wheel"]}),
        hashes=sha(base["sha256"]),
        description="the upstream wheel the fork is made from (sha256-pinned in patches/bases.toml)",
    )
    patches = []
    for record in manifest["patches"]:
        path = patch_dir / record["file"]
        if not path.is_file():
            raise WaferError(f"{wheel.name} applies {record['file']}, which is not in {patch_dir}")
        patches.append(
            Component(
                type=ComponentType.FILE,
                name=record["file"],
                bom_ref=f"patch:{record['file']}",
                hashes=sha(sha256_file(path)),
                description=record["subject"],
                properties=[Property(name="wafer:upstream-status", value=record["upstream_status"] or "-")],
            )
        )
    bom = Bom(serial_number=uuid.uuid5(NAMESPACE, wheel_sha))
    bom.metadata.component = fork
    bom.metadata.timestamp = datetime.fromtimestamp(manifest["source_date_epoch"], tz=timezone.utc)
    for component in (upstream, *patches):
        bom.components.add(component)
    bom.register_dependency(fork, [upstream, *patches])
    return JsonV1Dot6(bom).output_as_string(indent=2) + "\n"


def tools_sbom(wheel: Path) -> str:
    """The tools wheel's SBOM: the wheel itself (it is made from the checkout alone), dated by
    its entries' date (SOURCE_DATE_EPOCH or the commit)."""
    from cyclonedx.model import HashAlgorithm, HashType
    from cyclonedx.model.bom import Bom
    from cyclonedx.model.component import Component, ComponentType
    from cyclonedx.output.json import JsonV1Dot6
    from packageurl import PackageURL

    name, version = wheel.name.split("-")[:2]
    wheel_sha = sha256_file(wheel)
    with zipfile.ZipFile(wheel) as zf:
        stamp = datetime(*zf.infolist()[0].date_time, tzinfo=timezone.utc)
    bom = Bom(serial_number=uuid.uuid5(NAMESPACE, wheel_sha))
    bom.metadata.component = Component(
        type=ComponentType.APPLICATION,
        name=name.replace("_", "-"),
        version=version,
        bom_ref="tools",
        purl=PackageURL("pypi", None, name.replace("_", "-"), version, {"file_name": wheel.name}),
        hashes=[HashType(alg=HashAlgorithm.SHA_256, content=wheel_sha)],
    )
    bom.metadata.timestamp = stamp
    return JsonV1Dot6(bom).output_as_string(indent=2) + "\n"


def validate(text: str) -> None:
    from cyclonedx.schema import SchemaVersion
    from cyclonedx.validation.json import JsonStrictValidator

    error = JsonStrictValidator(SchemaVersion.V1_6).validate_str(text)
    if error is not None:
        raise WaferError(f"the SBOM does not validate against CycloneDX 1.6: {error}")
