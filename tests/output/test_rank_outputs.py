"""Sweeps and CSV of 1-D ([C, L]) and 3-D ([C, D, H, W]) specs: the receptive field per axis.

Expected fields are written out by hand (size r, jump j: r += (k_eff - 1) * j, j *= s per layer);
the 2-D CSV header is the fixed list below (unchanged)."""

from __future__ import annotations

import csv
import io
import json

from archcalc.cli.main import main

SPEC_3D = """name: s3
input: [2, D, H, W]
symbols: {D: 8, H: 32, W: 32}
layers:
  - {conv: {out: 4, kernel: [3, 5, 5], stride: [1, 2, 2], padding: [1, 2, 2]}}
  - {maxpool: {kernel: [2, 3, 3], stride: 2}}
  - {conv: {out: 4, kernel: 3}}
  - {global_avgpool: {}}
"""
SPEC_1D = """name: s1
input: [2, L]
symbols: {L: 64}
layers:
  - {conv: {out: 4, kernel: 5, stride: 2}}
  - {maxpool: {kernel: 3, stride: 2}}
  - {conv: {out: 4, kernel: 3, dilation: 2}}
  - {global_avgpool: {}}
"""
# by hand, at conv2 (the last layer whose map depends on the size):
#   3-D, D axis: conv 3/1 -> r 3, j 1; pool 2/2 -> 3 + 1*1 = 4, j 2; conv 3 -> 4 + 2*2 = 8
#        H, W:   conv 5/2 -> r 5, j 2; pool 3/2 -> 5 + 2*2 = 9, j 4; conv 3 -> 9 + 2*4 = 17
#   1-D, L:      conv 5/2 -> 5, j 2; pool 3/2 -> 9, j 4; conv 3 d2 (5) -> 9 + 4*4 = 25
# the fields do not depend on the size: the same at every point


def _run(capsys, argv):
    assert main(argv) == 0
    return capsys.readouterr().out


def _spec(tmp_path, text, name):
    p = tmp_path / name
    p.write_text(text)
    return str(p)


def test_sweep_rf_per_axis_3d(tmp_path, capsys):
    spec = _spec(tmp_path, SPEC_3D, "s3.yaml")
    doc = json.loads(_run(capsys, ["sweep", spec, "-s", "D=16", "-s", "H,W=32,64", "-m", "rf", "-f", "json"]))
    assert doc["rf_layer"] == "conv2" and doc["rf_axes"] == ["d", "h", "w"]
    for p in doc["points"]:
        assert (p["rf"], p["rf_d"], p["rf_h"], p["rf_w"]) == (17, 8, 17, 17)
    rows = list(csv.reader(io.StringIO(_run(capsys, ["sweep", spec, "-s", "D=16", "-s", "H,W=32", "-f", "csv"]))))
    assert rows[0] == ["H,W", "params", "macs", "activations", "activation_bytes", "train_saved_bytes",
                       "rf", "rf_d", "rf_h", "rf_w", "invalid"]
    assert rows[1][6:10] == ["17", "8", "17", "17"]
    table = _run(capsys, ["sweep", spec, "-s", "D=16", "-s", "H,W=32", "-m", "rf"])
    assert "8x17x17" in table and "(D x H x W; charted: the H axis) at 'conv2'" in table


def test_sweep_rf_1d(tmp_path, capsys):
    spec = _spec(tmp_path, SPEC_1D, "s1.yaml")
    doc = json.loads(_run(capsys, ["sweep", spec, "-s", "L=64,128", "-m", "rf", "-f", "json"]))
    assert doc["rf_layer"] == "conv2" and doc["rf_axes"] == ["l"]
    assert [(p["rf"], p["rf_l"]) for p in doc["points"]] == [(25, 25), (25, 25)]
    assert "(L axis) at 'conv2'" in _run(capsys, ["sweep", spec, "-s", "L=64,128", "-m", "rf"])


def test_csv_names_the_axes_3d_and_1d(tmp_path, capsys):
    rows = list(csv.DictReader(io.StringIO(_run(capsys, ["summary", _spec(tmp_path, SPEC_3D, "s3.yaml"), "-f", "csv"]))))
    head = list(rows[0])
    assert head[8:17] == ["rf_d", "rf_h", "rf_w", "rf_stride_d", "rf_stride_h", "rf_stride_w",
                          "rf_padding_d", "rf_padding_h", "rf_padding_w"]
    # by hand (size, jump, padding per axis): conv1 D 3/1 p1, H/W 5/2 p2; global pool after conv2
    # (4 x 2 x 5 x 5): D 8 + (2-1)*2 = 10, H 17 + (5-1)*4 = 33; jump D 2*2 = 4, H 4*5 = 20
    c1, gp = rows[0], rows[3]
    assert [c1[k] for k in ("rf_d", "rf_h", "rf_w", "rf_stride_d", "rf_stride_h", "rf_padding_d", "rf_padding_w")] == \
        ["3", "5", "5", "1", "2", "1", "2"]
    assert [gp[k] for k in ("rf_d", "rf_h", "rf_w", "rf_stride_d", "rf_stride_h")] == ["10", "33", "33", "4", "20"]
    assert rows[-1]["name"] == "total" and rows[-1]["rf_d"] == ""
    rows = list(csv.DictReader(io.StringIO(_run(capsys, ["summary", _spec(tmp_path, SPEC_1D, "s1.yaml"), "-f", "csv"]))))
    assert list(rows[0])[8:11] == ["rf_l", "rf_stride_l", "rf_padding_l"]
    # global pool after conv2 (4 x 10): 25 + (10-1)*4 = 61, jump 4*10 = 40
    assert [(r["rf_l"], r["rf_stride_l"]) for r in rows[:4]] == [("5", "2"), ("9", "4"), ("25", "4"), ("61", "40")]


def test_csv_2d_header_unchanged(capsys):
    head = _run(capsys, ["summary", "resnet18", "-f", "csv"]).splitlines()[0]
    assert head == ("name,type,inputs,output,params,buffers,macs,activations,rf_h,rf_w,rf_stride_h,rf_stride_w,"
                    "rf_padding_h,rf_padding_w,aux,warnings,trainable,details")
