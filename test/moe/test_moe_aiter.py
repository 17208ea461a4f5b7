"""GLM-5 fp4 MoE on the 0.5.14 image's own aiter (0.1.17.dev110+g9127c94a1), proven with aiter's
own code read from its git history: ``AITER_CONFIG.update_config_files`` + ``get_2stage_cfgs``
(moe/aiter_exec.py) over exactly what ``moe config-path --image 0.5.14`` prints, and the kernel
names its own naming code resolves.

Needs a clone of ROCm/aiter (WAFER_AITER_SRC) holding 9127c94a1, v0.1.18, v0.1.20 and PR #4344
(git clone https://github.com/ROCm/aiter && git -C aiter fetch origin pull/4344/head). The fork
commits none of aiter's code or data, and CI reaches no GitHub: there these are skipped, and
test_moe.py covers the same logic on a stand-in.
"""

from __future__ import annotations

import csv
import io
import json
import os
from pathlib import Path

import pytest
from support.common import ROOT, run_cli

from wafer_sglang.bases import base_image
from wafer_sglang.moe import lookup
from wafer_sglang.moe.aiter_exec import aiter_decisions
from wafer_sglang.moe.aiter_tree import AiterTree
from wafer_sglang.moe.coverage import TunedFile, coverage
from wafer_sglang.moe.fork_rows import MEASURED, ROWS_FILE, TRANSFERRED
from wafer_sglang.moe.kernel_names import kernel_names
from wafer_sglang.moe.keys import model_keys

CLONE = os.environ.get("WAFER_AITER_SRC")
pytestmark = pytest.mark.skipif(
    not CLONE, reason="needs WAFER_AITER_SRC, a clone of ROCm/aiter with pull/4344/head fetched (CI has no GitHub)"
)
GLM5 = {
    "hidden_size": 6144,
    "moe_intermediate_size": 2048,
    "n_routed_experts": 256,
    "num_experts_per_tok": 8,
    "n_shared_experts": 1,
    "num_hidden_layers": 78,
}
KEYS = sorted(
    {k for tp in (4, 8) for fused in (True, False) for k in model_keys(GLM5, tp, fused_shared=fused, max_tokens=32768)}
)
V0120_GLM5 = "aiter/configs/model_configs/glm5_fp4_tuned_fmoe.csv"


@pytest.fixture
def image(tmp_path, monkeypatch):
    build = tmp_path / "build"
    monkeypatch.setenv("WAFER_SGLANG_BUILD_DIR", str(build))
    record = base_image(ROOT, "0.5.14", require_aiter=True)
    return record, AiterTree.at(Path(CLONE), record.aiter_commit), build


def _image_files(image, listed: list[str], tmp: Path) -> list[Path]:
    """The files ``moe config-path`` lists, as the image has them: aiter's at its commit, the fork's
    from the build folder docker/build ships."""
    record, tree, build = image
    files = []
    for index, name in enumerate(listed):
        if name.startswith(record.aiter_configs + "/"):
            path = tmp / f"{index:02d}_{Path(name).name}"
            path.write_text(tree.read("aiter/configs/" + name.removeprefix(record.aiter_configs + "/")))
        else:
            path = build / "fmoe/0.5.14" / Path(name).name
        files.append(path)
    return files


def _config_path(capsys) -> list[str]:
    rc, out, _ = run_cli(capsys, "moe", "config-path", "--image", "0.5.14")
    assert rc == 0
    return out.strip().split(":")


def _coverage_cli(capsys, model_dir: Path, *extra: str) -> tuple[int, dict]:
    rc, out, err = run_cli(
        capsys,
        "moe",
        "coverage",
        "--model",
        str(model_dir),
        "--tp",
        "4",
        "--tp",
        "8",
        "--fused-shared-experts",
        "both",
        "--image",
        "0.5.14",
        "--aiter-src",
        CLONE,
        "--json",
        *extra,
    )
    assert out, err
    return rc, json.loads(out)


@pytest.fixture
def glm5(tmp_path) -> Path:
    (tmp_path / "glm5").mkdir()
    (tmp_path / "glm5/config.json").write_text(json.dumps(GLM5))
    return tmp_path / "glm5"


def test_every_glm5_fp4_key_hits_a_usable_row_with_the_fork_rows_and_none_without(capsys, image, glm5, tmp_path):
    record, tree, build = image
    listed = _config_path(capsys)
    assert listed[-1] == f"/opt/wafer/fmoe/{ROWS_FILE}"
    pristine = listed[:-1]  # the upstream image: aiter's own files only
    before = aiter_decisions(tree, _image_files(image, pristine, tmp_path), KEYS)
    _say(
        capsys,
        f"\naiter {record.aiter_commit[:9]}'s own lookup over the upstream image's {len(pristine)} files: "
        f"{sum(v is not None for v in before.values())}/{len(KEYS)} GLM-5 fp4 keys tuned",
    )
    assert len(KEYS) == 64 and set(before.values()) == {None}
    rc, report = _coverage_cli(capsys, glm5)
    assert (
        rc == 1
        and report["counts"] == {"fallback": 64}
        and report["checked_with_aiter_code"]
        and not report["disagreements"]
    )

    rc, out, _ = run_cli(capsys, "moe", "rows", "--image", "0.5.14", "--aiter-src", CLONE)
    assert rc == 0 and f"88 {MEASURED}" in out and f"40 {TRANSFERRED}" in out and out.count("left out:") == 8
    assert _config_path(capsys) == listed
    after = aiter_decisions(tree, _image_files(image, listed, tmp_path), KEYS)
    names = kernel_names(tree)
    hits = {k: cfg for k, cfg in after.items() if cfg is not None}
    _say(
        capsys,
        f"with the fork's rows: {len(hits)}/{len(KEYS)} tuned; names unresolved at {record.aiter_commit[:9]}: "
        f"{sorted({n for c in hits.values() for n in names.unresolved(c['kernelName1'], c['kernelName2'])})}",
    )
    assert len(hits) == 64
    assert all(names.unresolved(str(c["kernelName1"]), str(c["kernelName2"])) == [] for c in hits.values())

    rc, report = _coverage_cli(capsys, glm5)
    assert rc == 0 and report["ok"] and report["checked_with_aiter_code"] and not report["disagreements"]
    assert {k["status"] for k in report["keys"]} == {"tuned"}
    by_key = {(k["token"], k["inter_dim"], k["expert"], k["topk"]): k["kernels"] for k in report["keys"]}
    assert by_key == {
        (k.token, k.inter_dim, k.expert, k.topk): [after[k]["kernelName1"], after[k]["kernelName2"]] for k in KEYS
    }
    assert report["counts"] == {f"tuned ({MEASURED})": 32 + 24, f"tuned ({TRANSFERRED})": 8}


def test_an_untagged_csv_and_a_v0120_kernel_are_unusable_on_the_image(capsys, image, glm5, tmp_path):
    record, tree, build = image
    run_cli(capsys, "moe", "rows", "--image", "0.5.14", "--aiter-src", CLONE, "--out-dir", str(tmp_path / "rows"))
    table = list(csv.DictReader((tmp_path / "rows" / ROWS_FILE).open()))
    untagged = tmp_path / "untagged"
    untagged.mkdir()
    columns = [c for c in table[0] if c != "_tag"]
    _write(untagged / ROWS_FILE, columns, table)
    rc, report = _coverage_cli(capsys, glm5, "--fork-rows", str(untagged))
    assert (
        rc == 1 and report["counts"] == {"fallback": 64} and not report["disagreements"]
    )  # aiter's own code ignores it too
    assert any("has no _tag column" in p and "ignores every row of the file" in p for p in report["problems"])

    newer = tmp_path / "newer"
    newer.mkdir()
    v0120 = [
        r
        for r in csv.DictReader(io.StringIO(AiterTree.at(Path(CLONE), "v0.1.20").read(V0120_GLM5)))
        if r["kernelName1"].startswith("flydsl_mxmoe_")
    ]
    _write(newer / ROWS_FILE, list(v0120[0]), v0120)
    rc, report = _coverage_cli(capsys, glm5, "--fork-rows", str(newer))
    unusable = [k for k in report["keys"] if k["status"] == "unusable"]
    assert rc == 1 and unusable and not report["disagreements"]  # aiter's own lookup picks these rows
    assert all(
        "unknown to aiter 0.1.17.dev110+g9127c94a1" in k["detail"] and "flydsl_mxmoe_" in k["detail"] for k in unusable
    )


def test_the_model_of_v0118_agrees_with_its_code_on_an_untagged_file(tmp_path):
    tree = AiterTree.at(Path(CLONE), lookup.lookup_for("0.1.18").commit)
    text = tree.read("aiter/configs/model_configs/glm5_fp4_tuned_fmoe.csv")
    reader = csv.DictReader(io.StringIO(text))
    buffer = io.StringIO()
    _write_to(buffer, [c for c in reader.fieldnames if c != "_tag"], list(reader))
    files = [
        TunedFile("tuned_fmoe.csv", tree.read("aiter/configs/tuned_fmoe.csv")),
        TunedFile("glm5.csv", buffer.getvalue(), True),
    ]
    report = coverage(KEYS, files, lookup.lookup_for("0.1.18"), kernel_names(tree), tree, "aiter 0.1.18")
    assert report.checked_with_aiter_code and report.disagreements == []
    assert report.counts() == {"tuned (aiter)": 32, "fallback": 32}  # v0.1.18 keeps untagged rows; it has no 256/8


def _say(capsys, text: str) -> None:
    """The before/after figures, shown with -s (outside what the CLI checks capture)."""
    with capsys.disabled():
        print(text)


def _write(path: Path, columns: list[str], rows: list[dict]) -> None:
    with path.open("w") as f:
        _write_to(f, columns, rows)


def _write_to(stream, columns: list[str], rows: list[dict]) -> None:
    writer = csv.DictWriter(stream, fieldnames=columns, lineterminator="\n", extrasaction="ignore")
    writer.writeheader()
    writer.writerows(rows)
