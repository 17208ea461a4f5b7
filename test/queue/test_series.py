import pytest

from wafer_sglang.errors import WaferError
from wafer_sglang.queue.series import parse_series

TEXT = """# Patch series for sglang 0.5.14.
# Second header line.

# == ROCm enablement ==
0001-rocm-guard.patch
# == GLM-5 MXFP4 + MTP ==
0002-quark-map-excludes.patch   # upstream in 0.5.16

0003-defaults-mi355x.patch
# trailing note
"""


def test_parse_keeps_header_groups_inline_comments_and_trailer():
    series = parse_series(TEXT)
    assert series.names == ["0001-rocm-guard.patch", "0002-quark-map-excludes.patch", "0003-defaults-mi355x.patch"]
    assert series.header == ["# Patch series for sglang 0.5.14.", "# Second header line.", ""]
    assert series.entries[0].leading == ["# == ROCm enablement =="]
    assert series.entries[1].inline == "upstream in 0.5.16"
    assert series.entries[2].leading == [""]
    assert series.trailer == ["# trailing note"]
    assert series.entries[1].slug == "quark-map-excludes.patch"


def test_render_round_trips():
    series = parse_series(TEXT)
    assert parse_series(series.render()).render() == series.render()
    assert series.render() == TEXT


def test_empty_series_is_all_header():
    series = parse_series("# nothing yet\n\n")
    assert series.entries == [] and series.header == ["# nothing yet", ""]


@pytest.mark.parametrize(
    "line, message",
    [
        ("a.patch b.patch", "expected one patch file name"),
        ("-p1 x.patch", "expected one"),
        ("-p1", "quilt options"),
        ("dir/x.patch", "expected one"),
    ],
)
def test_bad_lines_are_rejected_with_their_line_number(line, message):
    with pytest.raises(WaferError, match=f"series:2: {message}"):
        parse_series(f"0001-ok.patch\n{line}\n")
