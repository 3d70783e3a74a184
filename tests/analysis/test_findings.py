"""Findings are data (issue 20): each code from a small spec, with its numbers worked by hand; and
with every message rewritten to noise, lints, --tiling and depth's start still work (no code reads
a message)."""

from __future__ import annotations

import itertools

import pytest

from archcalc.analysis.depth import analyze_depth
from archcalc.analysis.engine import analyze
from archcalc.analysis.solve import tiling_sizes
from archcalc.ci import checks
from archcalc.findings import CODES, Finding, declare, is_a
from archcalc.spec.load import loads

TILING = "input: [3, 12, 13]\nlayers:\n  - {conv: {out: 4, kernel: 5, stride: 3}, name: c}\n"
ALEXNET_CONV1 = "input: [3, 224, 224]\nlayers:\n  - {conv: {out: 96, kernel: 11, stride: 4}, name: conv1}\n"
CENTRES = ("input: [4, 8, 8]\nlayers:\n  - concat: [[{conv: {out: 4, kernel: 3, padding: [0, 2, 0, 2]}, name: a}], "
           "[{conv: {out: 4, kernel: 3, padding: 1}, name: b}]]\n    name: cat\n")
# branch a: a 9x9 window padded 4 before and 0 after at stride 1: 8 + 4 - 9 + 1 = 4 rows, first
# window centred on row (9 - 1) / 2 - 4 = 0; branch b: 1x1 at stride 2: 4 rows, centred on row 0.
# Same centres, strides 1 and 2.
STRIDES = ("input: [4, 8, 8]\nlayers:\n  - concat: [[{conv: {out: 4, kernel: 9, padding: [4, 0, 4, 0]}, name: a}], "
           "[{conv: {out: 4, kernel: 1, stride: 2}, name: b}]]\n    name: cat\n")
UPSAMPLE = "input: [3, 4, 4]\nlayers:\n  - {adaptive_avgpool: {size: 7}, name: pool}\n"
# a repeat of 2n - 5 convs: n = 1 and n = 2 give no network (a count below 0), n = 3 is the first
DEPTH = ("input: [3, 8, 8]\nsymbols: {n: 4}\nlayers:\n  - {conv: {out: 4, kernel: 3, padding: 1}, name: stem}\n"
         "  - repeat: 2 * n - 5\n    layers:\n      - {conv: {out: 4, kernel: 3, padding: 1}, name: \"c{$i}\"}\n")


def report(text, **kw):
    return analyze(loads(text, "case.yaml", **kw))


def only(r, code):
    found = [w for row in r.rows for w in row.warnings]
    assert [w.code for w in found] == [code], found
    assert code in CODES
    return found[0]


def test_tiling_numbers():
    # rows: 12 - 5 = 7 = 3 * 2 + 1 -> 1 row never read; columns: 13 - 5 = 8 = 3 * 2 + 2 -> 2 columns
    w = only(report(TILING), "tiling")
    assert (w.layer, w.get("lost_rows"), w.get("lost_columns")) == ("c", 1, 2)
    assert [w.get(k) for k in ("kernel_h", "kernel_w", "stride_h", "stride_w", "input_h", "input_w")] == [5, 5, 3, 3, 12, 13]
    assert [w.get(k) for k in ("pad_top", "pad_bottom", "pad_left", "pad_right")] == [0, 0, 0, 0]
    # AlexNet's 11x11/4 conv on 224: 224 - 11 = 213 = 4 * 53 + 1 -> 1 row and 1 column
    w = only(report(ALEXNET_CONV1), "tiling")
    assert (w.get("lost_rows"), w.get("lost_columns")) == (213 - 4 * 53, 213 - 4 * 53) == (1, 1)
    assert w.get("absent") is None and w.get("absent", 7) == 7


def test_padding_that_covers_the_remainder_is_no_finding():
    # 3x3/2 with padding 1 on 10: 10 + 2 - 3 = 9 = 2 * 4 + 1, and that one row is the padding after
    r = report("input: [3, 10, 10]\nlayers:\n  - {conv: {out: 4, kernel: 3, stride: 2, padding: 1}}\n")
    assert r.warnings == [] and all(row.warnings == [] for row in r.rows)


def test_alignment_centres_numbers():
    # branch a: 3x3 padded 0 before and 2 after: output o reads rows o .. o + 2, centred on o + 1;
    # branch b: 3x3 padded 1 and 1: rows o - 1 .. o + 1, centred on o. b's centre minus a's is -1
    # row at every position, on both axes; a's window is the one centred off its position (+1)
    w = only(report(CENTRES), "alignment.centres")
    assert w.is_a("alignment") and not w.is_a("tiling")
    assert (w.layer, w.get("offset_h"), w.get("offset_w")) == ("cat", -1, -1)
    assert w.get("branches_h") == w.get("branches_w") == ("cat.b1.a", "cat.b2.b")
    assert w.get("layers") == ("cat.b1.a",)


def test_different_strides_are_no_constant_offset():
    # a: 9x9 padded 4 before at stride 1, centred on row o; b: 1x1 at stride 2, centred on row 2o:
    # the centres are o apart, a different amount at each position: not an alignment finding
    # (an offset that varies is not one a padding or stride change removes)
    r = report(STRIDES)
    assert [w.code for row in r.rows for w in row.warnings] == []


def test_layer_type_code_numbers():
    w = only(report(UPSAMPLE), "layer.adaptive-upsample")
    assert w.is_a("layer") and CODES[w.code].parent == "layer"
    assert [w.get(k) for k in ("input_h", "input_w", "output_h", "output_w")] == [4, 4, 7, 7]


def test_report_level_findings_keep_code_and_numbers():
    r = report(TILING)
    (w,) = r.warnings
    assert (w.code, w.layer, w.get("lost_columns")) == ("tiling", "c", 2)
    assert str(w) == w.message and w.message.startswith("c: ")


def _depth(text):
    return analyze_depth(lambda values, free: loads(text, "case.yaml", values, None, free), (), ("n",))


def test_depth_start_is_a_number():
    r = _depth(DEPTH)
    w = r.warnings[0]
    assert (w.code, w.get("symbol"), w.get("start")) == ("depth-start", "n", 3)
    # the rows are those at n = 3: the stem and 2 * 3 - 5 = 1 repeated conv
    assert [row.name for row in r.rows] == ["stem", "c1"]


def test_codes_are_declared_once_with_help():
    assert all(c.help and (c.parent is None or c.parent in CODES) for c in CODES.values())
    assert is_a("alignment.centres", "alignment") and not is_a("alignment", "alignment.centres")
    assert declare("layer.adaptive-upsample", CODES["layer.adaptive-upsample"].help) == "layer.adaptive-upsample"
    with pytest.raises(ValueError):
        declare("layer.adaptive-upsample", "something else")
    with pytest.raises(ValueError):
        declare("x.y", "help", parent="no-such-family")
    assert "x.y" not in CODES


# --------------------------------------------------------------------------- no code reads a message


@pytest.fixture
def noise(monkeypatch):
    """Every Finding made from now on carries noise for a message (no ' = ', no word of the old
    text), so any consumer that reads the text instead of the code and numbers breaks."""
    counter = itertools.count()
    original = Finding.__init__

    def init(self, code, message, layer=None, numbers=()):
        original(self, code, f"zq{next(counter):x}qz", layer, numbers)

    monkeypatch.setattr(Finding, "__init__", init)
    yield


def _lint_ids(text, tmp_path):
    net = loads(text, "case.yaml")
    return [f.key for f in checks.lints(net, analyze(net), "case.yaml")]


def test_lints_select_by_code_not_text(noise, tmp_path):
    assert only(report(TILING), "tiling").message.startswith("zq")
    assert "tiling" in _lint_ids(TILING, tmp_path)
    assert _lint_ids(CENTRES, tmp_path) == ["alignment"]
    assert _lint_ids(STRIDES, tmp_path) == []
    assert "layer" in _lint_ids(UPSAMPLE, tmp_path)


def test_tiling_sizes_select_by_code_not_text(noise):
    # a 3x3/2 window without padding tiles S when (S - 3) is even: the odd sizes
    net = loads("input: [3, 10, 10]\nlayers:\n  - {conv: {out: 4, kernel: 3, stride: 2}}\n", "case.yaml")
    assert tiling_sizes(net, 10, 16) == [11, 13, 15]


def test_cli_takes_depth_start_from_the_number(noise, tmp_path):
    from archcalc.cli.common import net_and_report

    spec = tmp_path / "deep.yaml"
    spec.write_text(DEPTH)
    net, r = net_and_report(str(spec), free="n")
    assert r.warnings[0].get("start") == 3 and r.warnings[0].message.startswith("zq")
    assert [node.name for node in net.nodes] == ["stem", "c1"]


def test_a_finding_pickles_and_compares_as_data():
    import copy
    import pickle

    w = only(report(TILING), "tiling")
    for twin in (pickle.loads(pickle.dumps(w)), copy.deepcopy(w)):
        assert twin == w and twin.numbers == w.numbers and str(twin) == str(w)
    with pytest.raises(AttributeError):
        w.code = "other"  # frozen
