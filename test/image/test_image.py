"""wafer/sglang:mi355x: the pinned base records and the Dockerfile are consistent (always), hadolint
passes, and the Dockerfile builds with buildah from a stand-in base assembled here (network, slow).

What the buildah build proves: our Dockerfile's own steps run as written against a Python/pip
environment shaped like the upstream image (preflight, uninstalling upstream sglang, installing
the wheel, constraints, the fMoE check, the versions manifest, labels, env, healthcheck,
entrypoint). What it does not prove: anything about the real upstream image (its ROCm, torch,
aiter, Python 3.10) — those are only what docker/base-images.toml records — nor that sglang
serves on a GPU in it.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from packaging.version import Version
from support import aiter_standin
from support.common import CACHE, ROOT, needs_tool, pinned_wheel, run_cli

from wafer_sglang import bases
from wafer_sglang.bases import DIGEST, base_image, image_records
from wafer_sglang.moe.fork_rows import ROWS_FILE
from wafer_sglang.moe.shapes import glm5_keys

DOCKERFILE = (ROOT / "docker" / "Dockerfile.mi355x").read_text()


def test_every_base_has_a_record_and_resolved_ones_are_pinned_consistently():
    pins = bases.pins(ROOT)
    records = image_records(ROOT)
    assert set(records) == set(pins.bases)
    resolved = [base for base, r in records.items() if r.get("digest")]
    assert resolved == ["0.5.14"]  # 0.5.23 is recorded as unresolved (no digest read yet)
    for base in resolved:
        image = base_image(ROOT, base)  # raises on a bad digest, another release or a Python with no wheel
        assert DIGEST.match(image.digest) and image.tag and "@" not in image.tag
        assert Version(image.sglang).release[:3] == Version(base).release[:3]
        assert image.python_tag in {*pins.base(base).wheels, *pins.base(base).derived}
        assert image.aiter_fmoe[0] == "tuned_fmoe.csv" and all("untuned" not in f for f in image.aiter_fmoe)
    assert base_image(ROOT, "0.5.14").python_tag == "cp310"  # served by the derived cp310 wheel


def test_an_unresolved_base_is_refused_with_the_command_that_resolves_it(capsys):
    rc, _, err = run_cli(capsys, "image", "build", "--base", "0.5.23", "--print")
    assert rc == 2 and "docker/build --resolve 0.5.23 TAG" in err


def test_dockerfile_takes_the_pinned_base_and_keeps_its_promises():
    assert re.search(r"^FROM \$\{BASE_IMAGE\}$", DOCKERFILE, re.M) and DOCKERFILE.count("FROM ") == 1
    for label in ("source", "revision", "version", "base.name", "base.digest"):
        assert f"org.opencontainers.image.{label}=" in DOCKERFILE
    assert "pip uninstall -y sglang" in DOCKERFILE and "--no-deps" in DOCKERFILE
    # the constraints file `image setup` writes is the one PIP_CONSTRAINT names, set only after it exists
    setup_at = DOCKERFILE.index("image setup --constraints /etc/wafer/constraints.txt")
    assert DOCKERFILE.index("PIP_CONSTRAINT=/etc/wafer/constraints.txt") > setup_at
    assert 'ENV AITER_CONFIG_FMOE="${AITER_CONFIG_FMOE}"' in DOCKERFILE
    assert re.search(r"^HEALTHCHECK .*CMD \[\"/opt/wafer/healthcheck\"\]$", DOCKERFILE, re.M)
    assert 'ENTRYPOINT ["/opt/wafer/entrypoint"]' in DOCKERFILE


def test_a_pushed_build_carries_provenance_and_sbom_attestations(capsys):
    rc, out, _ = run_cli(capsys, "image", "build", "--print", "--push")
    assert rc == 0 and "docker buildx build --push --provenance=mode=max --sbom=true " in out and "--load" not in out
    rc, _, err = run_cli(capsys, "image", "build", "--print", "--push", "--engine", "buildah")
    assert rc == 2 and "--push builds with docker buildx" in err


def test_print_shows_the_exact_build_without_building(capsys):
    rc, out, _ = run_cli(capsys, "image", "build", "--print")
    assert rc == 0
    record = image_records(ROOT)["0.5.14"]
    assert f"{record['repository']}:{record['tag']}@{record['digest']}" in out
    assert "--build-arg WAFER_VERSION=0.5.14.post1" in out and "--load" in out
    # immutable per respin, and the moving LTS tag (the default base only)
    assert "-t wafer/sglang:mi355x-0.5.14.post1 -t wafer/sglang:mi355x " in out
    fmoe = re.search(r"--build-arg AITER_CONFIG_FMOE=(\S+)", out).group(1).split(":")
    ours = [f"/opt/wafer/fmoe/{ROWS_FILE}"]  # made by `moe rows` (or --aiter-src): the build refuses without it
    assert fmoe == [f"{record['aiter-configs']}/{name}" for name in record["aiter-fmoe"]] + ours  # aiter's first


@needs_tool("hadolint")
def test_hadolint_finds_nothing():
    hadolint = Path(sys.executable).parent / "hadolint"
    result = subprocess.run([str(hadolint), str(ROOT / "docker" / "Dockerfile.mi355x")], capture_output=True, text=True)
    assert result.returncode == 0 and result.stdout == "", result.stdout


# -- the real build, with buildah, from a stand-in base -----------------------------------------

needs_buildah = pytest.mark.skipif(
    shutil.which("buildah") is None or shutil.which("debootstrap") is None or os.geteuid() != 0,
    reason="needs root, buildah and debootstrap (make test-env installs them)",
)


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    from support.standin_image import AITER_FMOE, SITE, build_standin, buildah

    from wafer_sglang.wheels.tools_wheel import build_tools
    from wafer_sglang.wheels.wheel import build

    work = tmp_path_factory.mktemp("image")
    root = work / "checkout"
    for part in ("patches", "python", "docker"):
        shutil.copytree(ROOT / part, root / part, ignore=shutil.ignore_patterns("__pycache__"))
    # the fork's rows (`moe rows` makes them from a clone of aiter): stand-in kernels for every GLM-5 key
    rows = work / "build/fmoe/0.5.14"
    rows.mkdir(parents=True)
    (rows / ROWS_FILE).write_text(
        aiter_standin.tuned_csv([aiter_standin.row(k.token, k.inter_dim, k.expert, k.topk) for k in glm5_keys()])
    )
    os.environ["WAFER_SGLANG_CACHE_DIR"] = str(CACHE)
    wheel = build(root, "0.5.14", "cp311", work / "dist", quiet=True)
    tools = build_tools(ROOT, work / "dist")  # beside the fork wheel, where `image build` looks (root has no git)
    cache = ROOT / "build" / "cache" / "standin"
    wheelhouse = cache / "wheelhouse"
    if not wheelhouse.is_dir():
        subprocess.run(
            [
                sys.executable,
                "-m",
                "pip",
                "download",
                "-q",
                "-d",
                str(wheelhouse),
                "--only-binary=:all:",
                "--python-version",
                "3.11",
                "-r",
                str(ROOT / "requirements/tooling.txt"),
            ],
            check=True,
        )
    upstream = pinned_wheel("0.5.14")
    digest = build_standin(cache, work, upstream, [wheel, tools], wheelhouse, "localhost/wafer-standin:0.5.14")
    pins = root / "docker/base-images.toml"
    text = pins.read_text()
    start, end = text.index('[images."0.5.14"]'), text.index('[images."0.5.23"]')
    pins.write_text(
        text[:start]
        + "\n".join(
            [
                '[images."0.5.14"]',
                'repository = "localhost/wafer-standin"',
                'tag = "0.5.14"',
                f'digest = "{digest}"',
                'python = "3.11.2"',
                'sglang = "0.5.14"',
                f'aiter-configs = "{SITE}/aiter/configs"',
                'aiter = "0.1.17.dev110+g9127c94a1"',
                'aiter-commit = "9127c94a1"',
                f"aiter-fmoe = {json.dumps(AITER_FMOE)}",
                "",
                "",
            ]
        )
        + text[end:]
    )
    env = {
        "WAFER_SGLANG_ROOT": str(root),
        "WAFER_SGLANG_BUILD_DIR": str(work / "build"),
        "STORAGE_DRIVER": "vfs",
        "BUILDAH_ISOLATION": "chroot",
    }
    proc = subprocess.run(
        [sys.executable, "-m", "wafer_sglang", "image", "build", "--engine", "buildah", "--wheel", str(wheel)],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    image = "localhost/wafer/sglang:mi355x-0.5.14.post1"
    ctr = buildah("from", image)
    yield {
        "root": root,
        "digest": digest,
        "log": proc.stdout,
        "ctr": ctr,
        "image": image,
        "inspect": json.loads(buildah("inspect", "--type", "image", image)),
        "buildah": buildah,
    }
    buildah("rm", ctr)


def in_image(built, *command: str, check: bool = True) -> subprocess.CompletedProcess:
    from support.standin_image import ENV

    return subprocess.run(
        ["buildah", "run", built["ctr"], "--", *command], env=ENV, capture_output=True, text=True, check=check
    )


@pytest.mark.network
@pytest.mark.slow
@needs_buildah
def test_image_build_replaces_upstream_sglang_with_the_fork(built):
    assert "preflight: Python 3.11.2, upstream sglang 0.5.14" in built["log"]
    assert "Successfully uninstalled sglang-0.5.14" in built["log"]
    listing = in_image(built, "python3", "-m", "pip", "list", "--format", "json").stdout
    dists = {d["name"].lower(): d["version"] for d in json.loads(listing)}
    assert dists["wafer-sglang-rocm"] == "0.5.14.post1" and "sglang" not in dists
    info = in_image(built, "wafer-sglang", "info").stdout
    assert info.startswith("wafer-sglang-rocm 0.5.14.post1 (cp311)") and "0001-rocm-guard" in info


@pytest.mark.network
@pytest.mark.slow
@needs_buildah
def test_image_metadata_labels_env_healthcheck_entrypoint(built):
    config = built["inspect"]["Docker"]["config"]
    labels = config["Labels"]
    assert labels["org.opencontainers.image.version"] == "0.5.14.post1"
    assert labels["org.opencontainers.image.base.digest"] == built["digest"]
    assert labels["org.opencontainers.image.base.name"] == "localhost/wafer-standin:0.5.14"
    assert labels["ai.wafer.sglang.base"] == "0.5.14" and labels["org.opencontainers.image.revision"]
    env = dict(item.split("=", 1) for item in config["Env"])
    assert env["PIP_CONSTRAINT"] == "/etc/wafer/constraints.txt" and env["SGLANG_USE_AITER"] == "1"
    assert env["AITER_CONFIG_FMOE"].split(":") == [
        "/opt/venv/lib/python3.11/site-packages/aiter/configs/tuned_fmoe.csv",
        "/opt/venv/lib/python3.11/site-packages/aiter/configs/model_configs/glm5_fp4_tuned_fmoe.csv",
        f"/opt/wafer/fmoe/{ROWS_FILE}",
    ]
    assert config["Healthcheck"]["Test"] == ["CMD", "/opt/wafer/healthcheck"]
    assert config["Healthcheck"]["StartPeriod"] == 1800 * 10**9
    assert config["Entrypoint"] == ["/opt/wafer/entrypoint"]


@pytest.mark.network
@pytest.mark.slow
@needs_buildah
def test_image_versions_manifest_and_constraints(built):
    versions = json.loads(in_image(built, "cat", "/etc/wafer/versions.json").stdout)
    assert versions["image"]["base_image"] == f"localhost/wafer-standin:0.5.14@{built['digest']}"
    assert versions["fork"]["version"] == "0.5.14.post1" and versions["python"] == "3.11.2"
    assert versions["rocm_stack"] == {
        "torch": "2.9.1+rocm7.2.0.lw.git7e1940d4",
        "triton": "3.6.0+git42270451",
        "aiter": "0.1.17.dev110+g9127c94a1",
    }
    assert versions["installed_for_the_fork"] == [] and versions["distributions"]["wafer-sglang-rocm"] == "0.5.14.post1"
    # image setup checked the fork's rows against the image's aiter (its naming code, its lookup rules)
    assert versions["fmoe_coverage"] == {
        "aiter": "aiter 0.1.17.dev110+g9127c94a1 (this host)",
        "glm5_fp4_keys": 64,
        "by_status": {"tuned (aiter)": 64},
        "answered_by": "the fork's model of this aiter",
    }
    constraints = in_image(built, "cat", "/etc/wafer/constraints.txt").stdout
    assert "torch==2.9.1+rocm7.2.0.lw.git7e1940d4\n" in constraints
    # PIP_CONSTRAINT is live: pip refuses to replace the ROCm torch with another build
    proc = in_image(built, "python3", "-m", "pip", "install", "--no-index", "torch==2.11.0", check=False)
    assert proc.returncode != 0 and "Cannot install torch==2.11.0" in proc.stdout + proc.stderr


@pytest.mark.network
@pytest.mark.slow
@needs_buildah
def test_entrypoint_runs_doctor_then_serve_and_passes_commands_through(built):
    # a command runs as is
    assert in_image(built, "/opt/wafer/entrypoint", "python3", "-c", "print('as is')").stdout == "as is\n"
    # serve flags: doctor first (no GPU here: it fails and the container stops, saying how to override)
    proc = in_image(
        built, "env", "WAFER_ALLOW_NO_API_KEY=1", "/opt/wafer/entrypoint", "--model", "org/none", check=False
    )
    assert proc.returncode == 1 and "WAFER_SKIP_DOCTOR=1" in proc.stderr and "WITHOUT an API key" in proc.stderr
    # overridden: serve expands the recipe with the image's host/port/metrics and the user's flags
    proc = in_image(
        built,
        "env",
        "WAFER_SKIP_DOCTOR=1",
        "WAFER_API_KEY=sk-image-test-9d1",
        "/opt/wafer/entrypoint",
        "--model",
        "org/none",
        "--dry-run",
        "--context-length",
        "8192",
        check=False,
    )
    assert "# recipe glm5-mxfp4-latency@1" in proc.stdout, proc.stdout + proc.stderr
    assert "--host 0.0.0.0 --port 30000 --enable-metrics" in proc.stdout and "--context-length 8192" in proc.stdout


@pytest.mark.network
@pytest.mark.slow
@needs_buildah
def test_the_image_requires_an_api_key_and_never_prints_it(built):
    """It binds 0.0.0.0: no key is an error unless chosen explicitly; a key from the environment or
    a mounted secret reaches sglang's --api-key and no output; the image itself holds none."""
    proc = in_image(
        built, "env", "WAFER_SKIP_DOCTOR=1", "/opt/wafer/entrypoint", "--model", "org/none", "--dry-run", check=False
    )
    assert proc.returncode == 1 and "error: no API key" in proc.stderr and "/run/secrets/wafer_api_key" in proc.stderr
    in_image(built, "sh", "-c", "printf 'sk-from-file-77\\n' > /tmp/wafer-key")
    for env in ("WAFER_API_KEY=sk-from-env-31", "WAFER_API_KEY_FILE=/tmp/wafer-key"):
        proc = in_image(
            built,
            "env",
            "WAFER_SKIP_DOCTOR=1",
            env,
            "/opt/wafer/entrypoint",
            "--model",
            "org/none",
            "--dry-run",
            check=False,
        )
        assert proc.returncode == 0 and "--api-key '***'" in proc.stdout, proc.stdout + proc.stderr
        assert "sk-from" not in proc.stdout + proc.stderr
    config = built["inspect"]["Docker"]["config"]
    assert not [e for e in config["Env"] if "KEY" in e.split("=", 1)[0] or "TOKEN" in e.split("=", 1)[0]]


@pytest.mark.parametrize(
    "args, message",
    [
        (["--api-key="], "error: --api-key is empty"),
        (["--api-key", " "], "error: --api-key is empty"),
        (["--api-key"], "error: --api-key is empty"),
        # a value that merely contains the flag's name is no key (it once counted as one)
        (["--served-model-name", " --api-key"], "error: no API key"),
    ],
)
def test_the_entrypoint_refuses_a_blank_or_missing_key_before_anything_starts(tmp_path, args, message):
    env = {"PATH": os.environ["PATH"], "WAFER_API_KEY_FILE": str(tmp_path / "none")}
    proc = subprocess.run(
        ["bash", str(ROOT / "docker/image/entrypoint"), "--model", "/m", *args], env=env, capture_output=True, text=True
    )
    assert proc.returncode == 1 and message in proc.stderr and "doctor" not in proc.stdout + proc.stderr


FAKE_WAFER_SGLANG = """#!/usr/bin/env bash
[[ $1 == doctor ]] && exit 0
printf '%s' "$WAFER_API_KEY" > "$RECORD"
"""


@pytest.mark.parametrize(
    "content, env, key, message",
    [
        (" sk-mounted-1 \n", {}, "sk-mounted-1", None),  # surrounding whitespace is no part of a key
        ("sk-mounted-2\r\n\n", {}, "sk-mounted-2", None),
        ("sk-a\nsk-b\n", {}, None, "holds 2 lines: one key, on one line"),  # once concatenated into one
        ("k" * 400_000, {}, None, "holds 400000 bytes: not an API key"),  # once "Argument list too long"
        (" \n\n", {}, None, "is empty"),
        (None, {}, None, "exists but cannot be read"),  # a directory: unreadable as a file, even for root
        (None, {"WAFER_ALLOW_NO_API_KEY": "1"}, None, "exists but cannot be read"),  # never served open
    ],
)
def test_the_entrypoint_reads_a_mounted_key_file_as_one_trimmed_line(tmp_path, content, env, key, message):
    key_file, bin_dir, record = tmp_path / "key", tmp_path / "bin", tmp_path / "record"
    if content is None:
        key_file.mkdir()
    else:
        key_file.write_text(content)
    bin_dir.mkdir()
    (bin_dir / "wafer-sglang").write_text(FAKE_WAFER_SGLANG)
    (bin_dir / "wafer-sglang").chmod(0o755)
    env = {"PATH": f"{bin_dir}:{os.environ['PATH']}", "WAFER_API_KEY_FILE": str(key_file), "RECORD": str(record), **env}
    proc = subprocess.run(
        ["bash", str(ROOT / "docker/image/entrypoint"), "--model", "/m"], env=env, capture_output=True, text=True
    )
    if message is None:
        assert proc.returncode == 0 and record.read_text() == key, proc.stderr
    else:
        assert proc.returncode == 1 and message in proc.stderr and not record.exists(), proc.stderr
    assert "sk-" not in proc.stdout + proc.stderr


@pytest.mark.network
@pytest.mark.slow
@needs_buildah
def test_preflight_refuses_another_python_or_release_before_changing_anything(built):
    from support.standin_image import buildah

    ctr = buildah("from", "localhost/wafer-standin:0.5.14")
    try:

        def preflight(wheel, base):
            return subprocess.run(
                ["buildah", "run", ctr, "--", "python3", "/opt/wafer/preflight.py", "--wheel", wheel, "--base", base],
                env={**os.environ, "STORAGE_DRIVER": "vfs", "BUILDAH_ISOLATION": "chroot"},
                capture_output=True,
                text=True,
            )

        buildah("copy", ctr, str(ROOT / "docker/image/preflight.py"), "/opt/wafer/preflight.py")
        wrong_python = preflight("/w/wafer_sglang_rocm-0.5.14.post1-cp310-cp310-manylinux_2_34_x86_64.whl", "0.5.14")
        assert wrong_python.returncode == 1 and "runs Python 3.11.2 (cp311)" in wrong_python.stderr
        wrong_release = preflight("/w/wafer_sglang_rocm-0.5.23.post1-cp311-cp311-manylinux_2_34_x86_64.whl", "0.5.23")
        assert (
            wrong_release.returncode == 1 and "ships sglang 0.5.14; the fork's base is 0.5.23" in wrong_release.stderr
        )
    finally:
        buildah("rm", ctr)


@pytest.mark.network
@pytest.mark.slow
@needs_buildah
def test_resolve_records_digest_and_contents_read_from_the_image(built, monkeypatch):
    """--resolve's registry and `docker run` calls, answered by buildah for the stand-in base."""
    from support.standin_image import ENV, buildah

    from wafer_sglang.image.builder import resolve

    base_ctr = buildah("from", "localhost/wafer-standin:0.5.14")

    def runner(command):
        if command[:2] == ["docker", "buildx"]:
            return json.dumps({"digest": built["digest"]})
        assert command[:5] == ["docker", "run", "--rm", "--entrypoint", "python3"]
        assert command[5] == f"localhost/wafer-standin@{built['digest']}"
        return subprocess.run(
            ["buildah", "run", base_ctr, "--", "python3", *command[6:]],
            env=ENV,
            capture_output=True,
            text=True,
            check=True,
        ).stdout

    monkeypatch.setattr(shutil, "which", lambda name: None if name == "skopeo" else f"/usr/bin/{name}")
    try:
        resolve(built["root"], "0.5.14", "0.5.14", run_=runner)
    finally:
        buildah("rm", base_ctr)
    record = image_records(built["root"])["0.5.14"]
    assert (record["digest"], record["tag"], record["python"], record["sglang"]) == (
        built["digest"],
        "0.5.14",
        "3.11.2",
        "0.5.14",
    )
    assert record["torch"] == "2.9.1+rocm7.2.0.lw.git7e1940d4" and record["aiter"] == "0.1.17.dev110+g9127c94a1"
    assert record["aiter-commit"] == "9127c94a1"  # no git checkout in the stand-in: the version's +g<sha>
    assert record["aiter-configs"] == "/opt/venv/lib/python3.11/site-packages/aiter/configs"
    assert record["aiter-fmoe"] == ["tuned_fmoe.csv", "model_configs/glm5_fp4_tuned_fmoe.csv"]
