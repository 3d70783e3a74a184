"""Each output's own counts in a spec with several outputs (archcalc.analysis.outputs): the layers
it depends on, worked out by hand below; shown in the summary's JSON and text."""

from __future__ import annotations

import json

from archcalc.analysis.engine import analyze
from archcalc.analysis.outputs import per_output
from archcalc.cli.main import main
from archcalc.spec.load import loads

# trunk: 3*4*9 + 4 = 112 params, 4*8*8*27 = 6,912 MACs; bn: 8 params, 8 buffers, 0 MACs
# a: 4*2 + 2 = 10 params, 2*64*4 = 512 MACs (from bn)
# b: 4*5*9 + 5 = 185 params, 5*64*36 = 11,520 MACs (from bn)
# c: 3*6 + 6 = 24 params, 6*64*3 = 1,152 MACs (from the input: its own branch)
# dead: 4*7 + 7 = 35 params, 7*64*4 = 1,792 MACs (from bn, read by nothing, no output)
SPEC = """name: heads
input: [3, 8, 8]
layers:
  - {conv: {out: 4, kernel: 3, padding: 1}, name: trunk}
  - {batchnorm: {}, name: bn}
  - {conv: {out: 7, kernel: 1}, name: dead}
  - {conv: {out: 2, kernel: 1}, name: a, from: bn}
  - {conv: {out: 6, kernel: 1}, name: c, from: input}
  - {conv: {out: 5, kernel: 3, padding: 1}, name: b, from: bn}
outputs: [a, c]
"""


def test_per_output_by_hand():
    report = analyze(loads(SPEC))
    assert report.outputs == ("b", "a", "c")  # the last layer first, then those listed
    got = [(o.name, o.shape, o.params, o.buffers, o.macs, o.layers) for o in per_output(report)]
    assert got == [
        ("b", (5, 8, 8), 112 + 8 + 185, 8, 6912 + 11520, 3),
        ("a", (2, 8, 8), 112 + 8 + 10, 8, 6912 + 512, 3),
        ("c", (6, 8, 8), 24, 0, 1152, 1),
    ]
    # the totals hold every layer, the dead one too: 112 + 8 + 35 + 10 + 24 + 185 params
    assert report.totals["params"] == 374 and report.totals["macs"] == 6912 + 1792 + 512 + 1152 + 11520


def test_one_output_has_no_per_output_counts(capsys):
    plain = SPEC.replace("outputs: [a, c]\n", "")
    report = analyze(loads(plain))
    assert report.outputs == () and per_output(report) == []
    path_doc = json.loads(_summary(plain, capsys, "json"))
    assert "outputs" not in path_doc
    assert "outputs:" not in _summary(plain, capsys, "table")


def test_ensemble_and_crops_scale_each_output_as_the_totals():
    report = analyze(loads(SPEC), ensemble=2, crops=3)
    b = per_output(report)[0]
    assert (b.params, b.buffers, b.macs) == (2 * 305, 2 * 8, 2 * 3 * 18432)


def test_symbolic_sizes_give_closed_forms():
    report = analyze(loads(SPEC.replace("input: [3, 8, 8]", "input: [3, H, W]\nsymbols: {H: null, W: null}")))
    b = per_output(report)[0]
    syms = {s.name: s for s in b.macs.free_symbols}
    assert sorted(syms) == ["H", "W"] and b.params == 305
    # trunk 4*27*H*W and b 5*36*H*W (both 3x3, padding 1: the size stays H x W)
    for h, w in ((8, 8), (13, 7)):
        assert b.macs.subs({syms["H"]: h, syms["W"]: w}) == (4 * 27 + 5 * 36) * h * w


def _summary(text, capsys, fmt):
    import tempfile
    from pathlib import Path

    d = Path(tempfile.mkdtemp())
    p = d / "heads.yaml"
    p.write_text(text)
    capsys.readouterr()
    assert main(["summary", str(p), "--format", fmt]) == 0
    return capsys.readouterr().out


def test_summary_shows_each_output(capsys):
    doc = json.loads(_summary(SPEC, capsys, "json"))
    assert doc["outputs"] == [
        {"name": "b", "output": [5, 8, 8], "params": 305, "buffers": 8, "macs": 18432, "layers": 3},
        {"name": "a", "output": [2, 8, 8], "params": 130, "buffers": 8, "macs": 7424, "layers": 3},
        {"name": "c", "output": [6, 8, 8], "params": 24, "buffers": 0, "macs": 1152, "layers": 1},
    ]
    text = _summary(SPEC, capsys, "table")
    assert "outputs: 3, each counting the layers it depends on (shared ones in each)" in text
    assert "    b: 5x8x8; params 305; MACs 18,432\n" in text and "    c: 6x8x8; params 24; MACs 1,152\n" in text
    assert max(len(line) for line in text.split("outputs: 3", 1)[1].splitlines()[:4]) <= 80
