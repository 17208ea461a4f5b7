from pathlib import Path

import pytest
from support.common import ROOT, run_cli

from wafer_sglang import bases
from wafer_sglang.bases import python_tag
from wafer_sglang.errors import WaferError


def test_pin_file_has_both_bases_for_cp311_and_cp312():
    pins = bases.pins(ROOT)
    assert pins.bases == ["0.5.14", "0.5.23"]
    assert pins.default_base == "0.5.14"
    for base in pins.bases:
        for tag in ("cp311", "cp312"):
            wheel = pins.base(base).wheel(tag)
            assert wheel.filename == f"sglang-{base}-{tag}-{tag}-manylinux_2_34_x86_64.whl"
            assert len(wheel.sha256) == 64 and wheel.size > 1_000_000
            assert wheel.url.startswith("https://files.pythonhosted.org/") and wheel.url.endswith(wheel.filename)


def test_unsupported_base_fails_with_the_supported_list(capsys):
    rc, _, err = run_cli(capsys, "patches", "fetch", "--base", "0.5.99")
    assert rc == 2
    assert "unsupported base '0.5.99'" in err and "0.5.14, 0.5.23" in err


def test_reference_release_is_not_a_base():
    with pytest.raises(WaferError, match="unsupported base '0.5.16'"):
        bases.pins(ROOT).base("0.5.16")


def test_unpinned_release_says_how_to_pin_it():
    with pytest.raises(WaferError, match="patches pin 0.5.99"):
        bases.pins(ROOT).get("0.5.99")


def test_missing_python_tag_names_the_pinned_ones():
    with pytest.raises(
        WaferError, match=r"no pinned wheel for cp39 \(pinned: cp311, cp312, cp313; cp310 derived from cp311\)"
    ):
        bases.pins(ROOT).base("0.5.14").wheel("cp39")


@pytest.mark.parametrize("spec, tag", [("3.12", "cp312"), ("cp311", "cp311"), ("3.13", "cp313")])
def test_python_tag(spec, tag):
    assert python_tag(spec) == tag


def test_python_tag_rejects_nonsense():
    with pytest.raises(WaferError, match="--python expects"):
        python_tag("python3")


@pytest.mark.parametrize(
    "wheel, message",
    [
        ('filename = "sglang-0.5.14-cp312-cp312-manylinux_2_34_x86_64.whl"', "is not sglang 0.5.14 for cp311"),
        ('filename = "sglang-0.5.14-cp311-cp311-manylinux_2_34_x86_64.whl"\nsha256 = "abc"', "not 64 hex digits"),
    ],
)
def test_malformed_pins_are_rejected(tmp_path: Path, wheel, message):
    (tmp_path / "patches").mkdir()
    fields = {"filename": None, "sha256": "a" * 64, "size": 1, "url": "https://example.invalid/x.whl"}
    lines = [wheel] + [
        f'{k} = "{v}"' if isinstance(v, str) else f"{k} = {v}"
        for k, v in fields.items()
        if k not in wheel and v is not None
    ]
    (tmp_path / "patches" / "bases.toml").write_text(
        'default-base = "0.5.14"\n[upstream."0.5.14"]\nrole = "base"\nrespin = 1\n'
        '[upstream."0.5.14".wheels.cp311]\n' + "\n".join(lines) + "\n"
    )
    with pytest.raises(WaferError, match=message):
        bases.pins(tmp_path)
