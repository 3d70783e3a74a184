"""Receptive fields exact at every position (issue 21 items 4, 7, 8, 10) and the alignment lint on
real networks (issue 24).

Every expected field is measured in torch on a network written here with torch's own functionals
(never archcalc's builder): all weights one, inputs one, so the set of input rows an output
depends on is exactly the set with a nonzero gradient (no cancellation); a max-pool is measured as
the average pool of the same geometry (max sends its gradient to one row). Fields at padding
positions, which no gradient shows, are worked out by hand in the tests, interval by interval.
"""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import pytest

from archcalc import analyze, load
from archcalc.ci import checks
from archcalc.spec.load import loads

torch = pytest.importorskip("torch")
F = torch.nn.functional

HERE = Path(__file__).resolve().parents[1]
CORPUS = sorted((HERE / "ci_fixtures" / "corpus").glob("*.yaml"))
FIRE = HERE / "ci_fixtures" / "corpus_fire" / "dla_nf_shortcuts.yaml"


# --------------------------------------------------------------------------- torch, by hand


def conv(x, k, s=1, pad=(0, 0), d=1):
    """A conv with every weight one, padded (before, after) on both axes."""
    x = F.pad(x, (pad[0], pad[1], pad[0], pad[1]))
    return F.conv2d(x, torch.ones(1, 1, k, k, dtype=x.dtype), stride=s, dilation=d)


def pool(x, k, s, pad=(0, 0), ceil=False):
    """A pool measured as the average of the same window (a max-pool's whole window matters)."""
    x = F.pad(x, (pad[0], pad[1], pad[0], pad[1]))
    return F.avg_pool2d(x, k, s, ceil_mode=ceil)


def deconv(x, k, s, p=0, d=1):
    return F.conv_transpose2d(x, torch.ones(1, 1, k, k, dtype=x.dtype), stride=s, padding=p, dilation=d)


def rows(f, h, w=None):
    """Per output row o, the (first, last) input row whose gradient is nonzero (the row's outputs
    summed: a column a transposed conv leaves empty reads nothing), or None where it reads none."""
    w = w or h
    x = torch.ones(1, 1, h, w, dtype=torch.float64, requires_grad=True)
    y = f(x)
    out = []
    for o in range(y.shape[2]):
        (g,) = torch.autograd.grad(y[0, 0, o].sum(), x, retain_graph=True)
        nz = torch.nonzero(g[0, 0].abs().sum(1) > 0).flatten().tolist()
        out.append((nz[0], nz[-1]) if nz else None)
    return out


def centres(f, h):
    """Per output row whose field lies inside the image, first + last (the centre, doubled)."""
    return {o: a + b for o, (a, b) in enumerate(rows(f, h)) if a > 0 and b < h - 1}


def spec(text):
    return analyze(loads(text, "case.yaml"))


def findings(path):
    net = load(str(path))
    return [f for f in checks.lints(net, analyze(net), str(path)) if f.key == "alignment"]


# --------------------------------------------------------------------------- alignment (issue 24)


def test_dla_and_nf_resnet_shortcuts_are_caught_with_their_offset():
    """DLA-34's max-pool shortcut and NF-ResNet-26's avg-pool shortcut: measured, the shortcut's
    centre is half a map position after the 3x3/2 conv path's at every interior position."""
    dla_main = lambda x: conv(conv(x, 3, 2, (1, 1)), 3, 1, (1, 1))  # noqa: E731
    dla_short = lambda x: pool(x, 2, 2)  # noqa: E731 (the 1x1 conv after it reads one position)
    a, b = centres(dla_main, 32), centres(dla_short, 32)
    assert {b[o] - a[o] for o in a.keys() & b.keys()} == {1}  # doubled: 1/2 pixel, every position
    joined = lambda x: dla_main(x) + dla_short(x)  # noqa: E731
    nf_main = lambda x: conv(joined(x), 3, 2, (1, 1))  # noqa: E731
    nf_short = lambda x: pool(joined(x), 2, 2, ceil=True)  # noqa: E731
    a, b = centres(nf_main, 32), centres(nf_short, 32)
    assert a and {b[o] - a[o] for o in a.keys() & b.keys()} == {2}  # 1 input pixel (half of stride 2)

    found = findings(FIRE)
    assert [f.layer for f in found] == ["dla_down", "nf_down"]
    offsets = [(f.data["offset_h"], f.data["offset_w"]) for f in found]
    assert offsets == [("1/2", "1/2"), (1, 1)]
    assert [f.data["layers"] for f in found] == [["dla_down.b2.pool"], ["nf_down.b2.pool"]]
    assert "1/2 pixel" in found[0].message and "dla_down.b2.pool (maxpool 2x2/2" in found[0].message
    run = checks.run([str(FIRE)], checks.Options(strict=True))
    assert run.exit_code == 1


def test_hrnet_basic_blocks_after_the_fusion_are_centred_alike():
    """HRNet: after the nearest-upsampled fusion the basic block's residual and identity are
    centred alike at every position (measured), so no alignment finding there; at the fusion
    itself the offset is 0 and 4 pixels alternately, not a constant offset, so none either."""
    def basic(x):
        return x + conv(conv(x, 3, 1, (1, 1)), 3, 1, (1, 1))

    def high(x):
        return basic(conv(conv(x, 3, 2, (1, 1)), 3, 2, (1, 1)))

    def low(x):
        return basic(conv(high(x), 3, 2, (1, 1)))

    def up(x):
        return F.interpolate(low(x), scale_factor=2, mode="nearest")

    def fused(x):
        return high(x) + up(x)

    a = centres(fused, 96)
    b = centres(lambda x: conv(conv(fused(x), 3, 1, (1, 1)), 3, 1, (1, 1)), 96)
    assert len(a.keys() & b.keys()) >= 4 and all(a[o] == b[o] for o in a.keys() & b.keys())
    a, b = centres(high, 96), centres(up, 96)
    assert {b[o] - a[o] for o in a.keys() & b.keys()} == {0, -8}  # doubled: 0 and 4 pixels, alternately

    path = HERE / "ci_fixtures" / "corpus" / "hrnet_fusion.yaml"
    assert findings(path) == []
    r = analyze(load(str(path)))
    # the engine's fields agree with torch at every position of the first block after the fusion
    row = r.row("high2.add1")
    net_rows = rows(lambda x: basic(fused(x)), 64)
    assert [(max(f, 0), min(last, 63)) for f, last in (row.rf[0].at(o) for o in range(16))] == net_rows


def test_unet_half_pixel_alternation_is_no_finding():
    """A U-Net's skip and up-convolved paths: measured, the centres differ by +1/2 and -1/2 pixel
    alternately; no alignment finding (no padding or stride change removes it)."""
    enc = lambda x: conv(conv(x, 3, 1, (1, 1)), 3, 1, (1, 1))  # noqa: E731
    upc = lambda x: deconv(enc(pool(enc(x), 2, 2)), 2, 2)  # noqa: E731
    a, b = centres(enc, 32), centres(upc, 32)
    diffs = [b[o] - a[o] for o in sorted(a.keys() & b.keys())]
    assert set(diffs) == {1, -1} and all(d != e for d, e in zip(diffs, diffs[1:]))
    assert findings(HERE / "ci_fixtures" / "corpus" / "unet.yaml") == []


def test_a_gate_is_no_spatial_branch_but_its_map_still_is():
    """A squeeze-excitation gate (a 1x1 map multiplied in) is not a branch of its own; the map it
    scales still is: an SE block whose shortcut is a 2x2/2 pool is caught (offset 1/2 pixel)."""
    se = ("input: [4, 16, 16]\nlayers:\n  - add:\n"
          "      - [{conv: {out: 4, kernel: 3, stride: 2, padding: 1}}, {mul: [identity, [global_avgpool, "
          "{conv: {out: 4, kernel: 1}}, sigmoid]]}]\n"
          "      - [%s]\n    name: join\n")
    assert [w.code for w in spec(se % "{conv: {out: 4, kernel: 1, stride: 2}}").warnings] == []
    (w,) = spec(se % "{avgpool: {kernel: 2}}").warnings
    assert (w.code, w.get("offset_h"), w.get("offset_w")) == ("alignment.centres", Fraction(1, 2), Fraction(1, 2))


@pytest.mark.parametrize("path", CORPUS, ids=[p.stem for p in CORPUS])
def test_the_real_network_corpus_passes_strict(path):
    run = checks.run([str(path)], checks.Options(strict=True))
    assert [(f.key, f.message) for f in run.results[0].findings] == []
    assert run.exit_code == 0


def test_no_zoo_spec_ignores_alignment_but_where_the_offset_is_real():
    """The zoo passes --strict (tests/check/test_ci_check.py) with no `ignore` for alignment but
    Keras' Xception, whose block3 really is one map position off: TensorFlow 'same' padding of a
    3x3/2 max-pool on the even 74x74 map pads 0 before and 1 after ((37 - 1) * 2 + 3 - 74 = 1),
    so window o is centred on row 2o + 1 while the 1x1/2 shortcut's is on 2o: at stride 4,
    4 input pixels; and timm's NF-ResNet-26 and ResNeSt-50d, whose stride-2 shortcut averages
    2x2 cells (window o centred on 2o + 1/2) beside a residual path centred on 2o (3x3/2 padding
    1): half a position of the stage's input, whose stride is 4, 8 and 16 in stages 2, 3 and 4,
    so 2, 4 and 8 input pixels, the shortcut's centre the later one."""
    specs = sorted((HERE.parent / "specs").glob("*.yaml"))
    ignoring = [p.stem for p in specs if "alignment:" in p.read_text()]
    assert ignoring == ["nf_resnet26", "resnest50d_4s2x40d", "xception"]
    for name, add, pool in (("nf_resnet26", "stages.{}.0.add", "stages.{}.0.downsample.pool"),
                            ("resnest50d_4s2x40d", "layer{}.0.add", "layer{}.0.downsample.0")):
        first = 1 if name == "nf_resnet26" else 2
        found = [(w.layer, w.get("offset_h"), w.get("offset_w"), w.get("layers"))
                 for w in analyze(load(name)).warnings if w.is_a("alignment")]
        assert found == [(add.format(first + i), px, px, (pool.format(first + i),)) for i, px in enumerate((2, 4, 8))]
    r = analyze(load("xception"))
    (w,) = [w for w in r.warnings if w.is_a("alignment")]
    assert (w.layer, w.get("offset_h"), w.get("offset_w"), w.get("layers")) == (
        "block3.add", -4, -4, ("block3.main.pool",))


# --------------------------------------------------------------------------- issue 21 items 4, 7, 8, 10


ADAPTIVE = "input: [1, H, W]\nsymbols: {H: 5, W: 5}\nlayers:\n  - {adaptive_avgpool: {size: 3}, name: ap}\n"


def test_adaptive_pool_that_does_not_divide_is_exact_or_unknown():
    """issue 21 item 4: adapting 5 to 3, torch's windows are rows 0..1, 1..3 and 3..4 (size 3,
    stride 5/3); the closed form (H free) cannot hold at every size: unknown, not 2 and 1."""
    measured = rows(lambda x: F.adaptive_avg_pool2d(x, 3), 5)
    assert measured == [(0, 1), (1, 3), (3, 4)]
    a = analyze(loads(ADAPTIVE, "case.yaml")).rows[0].rf[0]
    assert [a.at(o) for o in range(3)] == measured and (a.size, a.stride, a.padding) == (3, Fraction(5, 3), 0)
    assert analyze(loads(ADAPTIVE, "case.yaml", free=("H", "W"))).rows[0].rf is None


def test_vgg16_adaptive_pool_at_200_in_closed_form_is_unknown():
    """vgg16 at 200x200: pool5 is 6x6 (stride 32), adapted to 7x7: window o reads pool5 positions
    floor(6o/7) .. ceil(6(o+1)/7) - 1, a stride of 32 * 6/7 = 192/7 (torch: windows 0..0, 0..1).
    The closed form said stride 32 floor(H/224) = 0 at 200; now unknown, the concrete run exact."""
    assert rows(lambda x: F.adaptive_avg_pool2d(x, 7), 6)[:2] == [(0, 0), (0, 1)]
    conc = analyze(load("vgg16", input_override=(3, 200, 200)))
    assert conc.row("adaptive_avgpool1").rf[0].stride == Fraction(192, 7)
    sym = analyze(load("vgg16", free=("H", "W")))
    assert sym.row("adaptive_avgpool1").rf is None and sym.row("fc6").rf is None
    from archcalc.expr import substitute

    pool5 = sym.row("pool5").rf[0]
    assert [substitute(v, {"H": 200, "W": 200}) for v in (pool5.size, pool5.stride, pool5.padding)] == [212, 32, 90]


TRANSPOSED = [(k, s, d, p) for k in (1, 2, 3) for s in (2, 3) for d in (1, 2, 3) for p in (0, 1) if p <= d * (k - 1)]


@pytest.mark.parametrize("k, s, d, p", TRANSPOSED)
def test_transposed_conv_fields_are_exact_at_every_position(k, s, d, p):
    """issue 21 item 7: a transposed conv with stride and dilation reads, at output o, the inputs
    i = (o + P - t D) / S that are whole numbers, not every input of the extent; some rows read
    none (bias only). Every position's field, and a 2x2 conv's after it, as torch's gradient."""
    text = f"input: [1, 6, 6]\nlayers:\n  - {{conv_transpose: {{out: 1, kernel: {k}, stride: {s}, dilation: {d}, padding: {p}}}}}\n"
    for extra, f in (("", lambda x: deconv(x, k, s, p, d)), ("  - {conv: {out: 1, kernel: 2}}\n",
                                                          lambda x: conv(deconv(x, k, s, p, d), 2))):
        r = analyze(loads(text + extra, "case.yaml"))
        a = r.rows[-1].rf[0]
        got = [a.at(o) for o in range(r.rows[-1].shape[1])]
        assert [(first, last) if first <= last else None for first, last in got] == rows(f, 6)


def test_transposed_conv_with_holes_by_hand():
    """k 2, stride 2, dilation 3: output o reads (o - 3t)/2 for t in {0, 1} where whole, one input
    at most (the extent ceil((o - 3)/2) .. floor(o/2) has two): o = 0 reads 0, o = 1 would read
    (1 - 3)/2 = -1, no input (an empty row), o = 2 reads 1, o = 3 reads 0: r = 1, not 2."""
    a = spec("input: [1, 6, 6]\nlayers:\n  - {conv_transpose: {out: 1, kernel: 2, stride: 2, dilation: 3}}\n").rows[0].rf[0]
    assert a.size == 1 and a.at(0) == (0, 0) and a.at(2) == (1, 1) and a.at(3) == (0, 0)
    first, last = a.at(1)
    assert first > last  # reads nothing


@pytest.mark.parametrize("mode, k, d, p, s", [("bilinear", 3, 3, 3, 2), ("bilinear", 3, 2, 1, 1), ("nearest", 3, 2, 2, 1),
                                              ("bilinear", 2, 3, 1, 2)])
def test_decimal_upsample_then_a_padded_dilated_pool(mode, k, d, p, s):
    """issue 21 item 7: a 0.6 upsample then a padded dilated max-pool at 44x36. A padding row of
    the upsampled map reads as the upsample extends to it (row -1: input rows floor(-1/0.6) = -2 ..,
    outside the image), no longer the border row: wherever the engine's field lies inside the
    image it is torch's exactly, and everywhere it holds torch's."""
    text = (f"input: [1, 44, 36]\nlayers:\n  - {{upsample: {{scale: 0.6, mode: {mode}}}}}\n"
            f"  - {{maxpool: {{kernel: {k}, stride: {s}, padding: {p}, dilation: {d}}}}}\n")
    r = analyze(loads(text, "case.yaml"))
    a = r.rows[-1].rf[0]

    def f(x):
        y = F.interpolate(x, scale_factor=0.6, mode=mode, align_corners=False if mode == "bilinear" else None)
        return F.conv2d(F.pad(y, (p, p, p, p)), torch.ones(1, 1, k, k, dtype=y.dtype), stride=s, dilation=d)

    measured = rows(f, 44, 36)
    # the padding rows past the map's end extend to the input's padding (row 44, past the last row
    # the upsample reads, nearest: floor(25/0.6) = 41): a field reaching past the rows read bounds
    # them (docs/conventions.md, 'Padding of hidden layers'); compared exactly up to the last row read
    top = max(m[1] for m in measured)
    inside = 0
    for o, m in enumerate(measured):
        first, last = a.at(o)
        if first >= 0 and last <= top:
            assert (first, last) == m, o
            inside += 1
        else:
            assert first <= m[0] and m[1] <= last, o
    assert inside >= len(measured) // 2


def test_padding_after_an_upsample_reads_the_field_the_upsample_extends(cli, tmp_path):
    """issue 21 item 8: conv 3x3 p1 (c1), nearest 2x upsample, conv 3x3 p1 (c2) on 8 rows. By
    hand: c1(x) = x-1 .. x+1 for any x (padding included); up(o) = c1(floor(o/2)); c2(o) reads up
    o-1 .. o+1, so floor((o-1)/2) - 1 .. floor((o+1)/2) + 1: position 0 reads -2 .. 1 (p = 2), every
    position 4 rows. `explain` prints the p it works out."""
    text = ("input: [1, 8, 8]\nlayers:\n  - {conv: {out: 1, kernel: 3, padding: 1}, name: c1}\n"
            "  - {upsample: {scale: 2}, name: up}\n  - {conv: {out: 1, kernel: 3, padding: 1}, name: c2}\n")
    a = spec(text).row("c2").rf[0]
    hand = [((o - 1) // 2 - 1, (o + 1) // 2 + 1) for o in range(16)]
    assert [a.at(o) for o in range(16)] == hand
    assert (a.size, a.stride, a.padding) == (4, Fraction(1, 2), 2)
    measured = rows(lambda x: conv(F.interpolate(conv(x, 3, 1, (1, 1)), scale_factor=2), 3, 1, (1, 1)), 8)
    assert measured == [(max(f, 0), min(last, 7)) for f, last in hand]
    path = tmp_path / "up.yaml"
    path.write_text(text)
    code, out, _ = cli("explain", str(path), "c2")
    assert code == 0 and "position 0 reads -2 .. 1, so p = 2" in out and "receptive field 4/(1/2)/2" in out


@pytest.mark.parametrize("n", [1, 2, 8])
def test_padding_after_a_squeeze_excitation_gate_counts_on_every_map(n):
    """issue 21 item 10: conv 3x3 p1 (c1), an SE gate (global average, 1x1 conv, sigmoid,
    multiplied in), conv 3x3 p1 (c2) on n rows. By hand: c1(x) = x-1 .. x+1; the pooled gate
    reads c1 at 0 .. n-1: -1 .. n; the gated map at any x reads both: min(x-1, -1) .. max(x+1, n);
    c2(o) reads it at o-1 .. o+1: min(o-2, -1) .. max(o+2, n). Position 0 starts at -2 (p = 2) on
    every map (it was 1 on maps wider than one pixel). torch agrees inside the image."""
    text = (f"input: [1, {n}, {n}]\nlayers:\n  - {{conv: {{out: 2, kernel: 3, padding: 1}}, name: c1}}\n"
            "  - {mul: [identity, [global_avgpool, {conv: {out: 2, kernel: 1}}, sigmoid]], name: se}\n"
            "  - {conv: {out: 2, kernel: 3, padding: 1}, name: c2}\n")
    a = spec(text).row("c2").rf[0]
    hand = [(min(o - 2, -1), max(o + 2, n)) for o in range(n)]
    assert [a.at(o) for o in range(n)] == hand
    assert (a.size, a.padding) == (max(b - f + 1 for f, b in hand), 2)

    def net(x):
        y = conv(x, 3, 1, (1, 1))
        return conv(y * torch.sigmoid(y.mean((2, 3), keepdim=True)), 3, 1, (1, 1))

    assert rows(net, n) == [(max(f, 0), min(b, n - 1)) for f, b in hand]


@pytest.mark.parametrize("body, values", [
    ("  - identity\n  - relu\n", 16),  # relu reads a view of the input: out of place, 16 new values
    ("  - {dropout: {p: 0.5}}\n  - relu\n", 16),  # dropout is a view at inference
    ("  - {conv: {out: 1, kernel: 1}}\n  - identity\n  - relu\n", 0),  # a view of the conv's own tensor: in place
    ("  - {conv: {out: 1, kernel: 1}, name: c}\n  - identity\n  - relu\n  - {add: [identity, {from: c, layers: []}]}\n",
     16),  # the conv's tensor is read again by the add: out of place
])
def test_an_in_place_layer_after_a_view_of_a_read_tensor_runs_out_of_place(body, values):
    """issue 21 item 10, docs/memory.md: an in-place layer whose input is the network input or is
    read by another layer runs out of place; a view (identity, dropout at inference) of such a
    tensor is that tensor. A 1x4x4 input: the relu's new values, 16 or 0 by that rule."""
    r = spec("input: [1, 4, 4]\nlayers:\n" + body)
    relu = next(row for row in r.rows if row.type == "relu")
    assert relu.values == values


@pytest.mark.parametrize("mode, corners", [("nearest", None), ("bilinear", False), ("bilinear", True),
                                           ("bicubic", False), ("nearest-exact", None)])
@pytest.mark.parametrize("h, w", [(2, 25), (5, 10), (1, 3)])
def test_an_upsample_axis_that_keeps_its_size(mode, corners, h, w):
    """Scale 1.16 keeps 1, 2 or 5 rows (floor(5 x 1.16) = 5) while the columns grow. torch's CPU kernels
    copy such an axis for nearest and bilinear (row 1 reads row 1, not floor(1/1.16) = 0) and follow
    the scale for bicubic and nearest-exact: each row's field, measured from torch's gradients, is
    archcalc's at every position."""
    kw = {} if corners is None else {"align_corners": corners}

    def up(x):
        return F.interpolate(x, scale_factor=1.16, mode=mode, **kw)

    want = rows(up, h, w)
    assert len(want) == h  # torch keeps the rows
    extra = "" if corners is None else f", align_corners: {str(corners).lower()}"
    r = spec(f"input: [1, {h}, {w}]\nlayers:\n  - upsample: {{scale: 1.16, mode: {mode}{extra}}}\n")
    assert r.rows[0].shape == (1, h, int(w * 1.16))
    field = r.rows[0].rf[0]
    got = [field.at(o) for o in range(h)]
    got = [(max(a, 0), min(b, h - 1)) for a, b in got]  # a bicubic tap before row 0 is clamped by torch
    assert got == want


GATED_JOIN = """input: [1, H, W]
symbols: {H: 4, W: 4}
layers:
  - mul:
      - - {avgpool: {kernel: 1, stride: 1}, name: a}
      - - {global_avgpool: {}, name: g}
    name: gated
  - add:
      - [{identity: {}, name: i}]
      - [{softmax: {}, name: s}]
    name: both
  - {conv_transpose: {kernel: [1, 4], dilation: 2, out: 1, bias: false}, name: up}
"""
POOLED_JOIN = """input: [1, H, W]
symbols: {H: 4, W: 4}
layers:
  - {global_avgpool: {}, name: g}
  - add:
      - [{global_avgpool: {}, name: g2}]
      - [{avgpool: {kernel: 2, padding: 1}, name: p}]
    name: j
"""
GATED_CEIL = """input: [1, H, W]
symbols: {H: 4, W: 4}
layers:
  - mul:
      - - {identity: {}, name: a}
      - - {global_avgpool: {}, name: g}
    name: gated
  - {maxpool: {kernel: 2, stride: 2, ceil_mode: true}, name: m}
"""


@pytest.mark.parametrize("text", [GATED_JOIN, POOLED_JOIN, GATED_CEIL], ids=["gated-join", "pooled-join", "gated-ceil"])
def test_closed_form_fields_on_small_and_pooled_maps_are_the_concrete_ones(text):
    """A closed-form field substituted at H = W = 1..7 is the concrete run's (size, stride, padding),
    or unknown: a join of branches that share a gate keeps the map's field beside the gate (it lost
    it: a later padded window then counted no padding), a join of affine branches of different
    strides (a global pool beside a padded pool of it) is not the largest branch's guess, and a
    ceil-mode window after a gate may read past the map (the closed form kept the gate's size)."""
    from archcalc.expr import symbol

    sym = analyze(loads(text, "case.yaml", free=("H", "W")))
    known = 0
    for n in range(1, 8):
        conc = analyze(loads(text.replace("{H: 4, W: 4}", f"{{H: {n}, W: {n}}}"), "case.yaml"))
        for srow, crow in zip(sym.rows, conc.rows):
            if srow.rf is None or crow.rf is None:
                continue
            for sf, cf in zip(srow.rf, crow.rf):
                got = []
                for part in ("size", "stride", "padding"):
                    v = getattr(sf, part)
                    v = v.subs({symbol("H"): n, symbol("W"): n}) if hasattr(v, "subs") else v
                    got.append(Fraction(str(v)))
                assert got == [Fraction(getattr(cf, p)) for p in ("size", "stride", "padding")], (srow.name, n)
                known += 1
    assert known


def test_a_pooled_join_reads_the_whole_input_as_torch_does():
    """The pooled join above, by hand in torch at 5x5: its one position depends on every input row
    (gradients), and archcalc's field at 5x5 and its closed form at H = 5 both cover rows 0..4 and
    name no row the output does not read."""
    from archcalc.expr import symbol

    def net(x):
        g = x.mean(dim=(2, 3), keepdim=True)
        return g.mean(dim=(2, 3), keepdim=True) + F.avg_pool2d(g, 2, padding=1)

    assert rows(net, 5) == [(0, 4)]
    conc = analyze(loads(POOLED_JOIN.replace("{H: 4, W: 4}", "{H: 5, W: 5}"), "case.yaml"))
    first, last = conc.rows[-1].rf[0].at(0)
    assert first <= 0 and last >= 4 and (first, last) != (1, 0)
    sym = analyze(loads(POOLED_JOIN, "case.yaml", free=("H", "W")))
    f = sym.rows[-1].rf[0] if sym.rows[-1].rf is not None else None
    if f is not None:  # else unknown (different strides: a global pool's H beside the padded pool's 2H)
        size = f.size.subs({symbol("H"): 5}) if hasattr(f.size, "subs") else f.size
        pad = f.padding.subs({symbol("H"): 5}) if hasattr(f.padding, "subs") else f.padding
        assert -pad <= 0 and size - 1 - pad >= 4


@pytest.mark.parametrize("k, s, d, p, op", [(2, 2, 1, 0, 1), (2, 2, 2, 0, 0), (4, 3, 1, 0, 2), (4, 3, 1, 1, 2),
                                            (3, 2, 2, 1, 1)])
def test_a_transposed_conv_on_one_row_reads_it_only_at_its_taps(k, s, d, p, op):
    """On a 1-row map a transposed conv's output row reads the row only where a tap lands on it:
    rows between the taps (stride, dilation) and the output_padding rows read nothing. archcalc
    took every output row of a 1-row input as reading it (a pooled value's rule). Fields per row
    from torch's gradients, once on a 1x1 input and once after a conv that brings 5 rows to 1."""
    def up(x):
        return F.conv_transpose2d(x, torch.ones(1, 1, k, k, dtype=x.dtype), stride=s, padding=p, dilation=d,
                                  output_padding=op)

    layer = f"conv_transpose: {{kernel: {k}, stride: {s}, dilation: {d}, padding: {p}, output_padding: {op}, out: 1}}"
    for h, before, torch_before in ((1, "", lambda x: x), (5, "  - conv: {kernel: 5, out: 1}\n", lambda x: conv(x, 5))):
        want = rows(lambda x: up(torch_before(x)), h)
        assert None in want  # torch's own answer: some row reads nothing
        r = spec(f"input: [1, {h}, {h}]\nlayers:\n{before}  - {layer}\n")
        field = r.rows[-1].rf[0]
        got = []
        for o in range(len(want)):
            first, last = field.at(o)
            got.append(None if first > last else (max(first, 0), min(last, h - 1)))
        assert got == want


def test_an_area_upsample_in_closed_form_is_unknown_not_a_floor():
    """mode: area is an adaptive average pool from I to floor(1.5 I): its windows depend on the
    position unless O divides I, so the closed form is unknown (it gave size ceil(I/O) = 1 and
    stride floor(I/O) = 0 at 2 rows, where the concrete run and torch give windows of 2 rows at
    stride 2/3). The concrete field against torch's gradients at 2..6 rows."""
    text = "input: [1, H, 4]\nsymbols: {H: 4}\nlayers:\n  - upsample: {scale: 1.5, mode: area}\n"
    sym = analyze(loads(text, "case.yaml", free=("H",)))
    assert sym.rows[0].rf is None
    for h in range(2, 7):
        want = rows(lambda x: F.interpolate(x, scale_factor=1.5, mode="area"), h, 4)
        field = analyze(loads(text.replace("{H: 4}", f"{{H: {h}}}"), "case.yaml")).rows[0].rf[0]
        assert [field.at(o) for o in range(len(want))] == want


def _claim_holds(field, measured, n_in):
    """docs/conventions.md, 'Padding of hidden layers': a field within the rows the layer reads at
    all names its first and last row exactly; one reaching past them bounds the rows read (maybe
    none). Returns the positions where the claim is exact (interior)."""
    read = [m for m in measured if m is not None]
    lo, hi = min(m[0] for m in read), max(m[1] for m in read)
    interior = []
    for o, m in enumerate(measured):
        first, last = field.at(o)
        if lo <= first <= last <= hi:
            assert m == (first, last), (o, (first, last), m)
            interior.append(o)
        else:
            assert m is None or first <= m[0] <= m[1] <= last, (o, (first, last), m)
    return interior


def test_the_padding_of_a_resampled_map_extends_to_its_inputs_padding():
    """A conv 2x2 (c1: 8 rows -> 7), a nearest 1.5x upsample (7 -> 10: row o reads c1 at
    floor(2o/3)), a 1x1 conv with padding 1 (12 rows: row q reads the upsample at q - 1). Its rows 0
    and 11 read only the upsample's padding: torch's output there depends on no input. The upsample's
    padding row 10 extended as the upsample's own rows (floor(20/3) = 6) would read c1's row 6, input
    rows 6..7, rows the layer really reads, so the field would claim them; it extends to c1's
    padding row 7 (input rows 7..8, past the image) instead, as row -1 extends to c1's row -1
    (floor(-2/3) = -1: rows -1..0). Every other row: c1 at floor(2(q-1)/3), rows x..x+1."""
    text = ("input: [1, 8, 8]\nlayers:\n  - {conv: {out: 1, kernel: 2}, name: c1}\n"
            "  - {upsample: {scale: 1.5}, name: up}\n  - {conv: {out: 1, kernel: 1, padding: 1}, name: c2}\n")
    field = spec(text).row("c2").rf[0]
    measured = rows(lambda x: conv(F.interpolate(conv(x, 2), scale_factor=1.5), 1, 1, (1, 1)), 8)
    assert measured[0] is None and measured[11] is None
    assert field.at(0) == (-1, 0) and field.at(11) == (7, 8)
    hand = [(2 * (q - 1) // 3, 2 * (q - 1) // 3 + 1) for q in range(1, 11)]
    assert measured[1:11] == hand and [field.at(q) for q in range(1, 11)] == hand
    assert _claim_holds(field, measured, 8) == list(range(1, 11))


def test_a_transposed_conv_with_empty_rows_after_a_global_value():
    """A global average (every row of 6), upsampled to 4x4, then a transposed conv k 2, stride 2,
    dilation 3: output row o reads (o - 3t)/2 for t in {0, 1} where a whole number in 0..3; row 1
    reads none ((1 - 0)/2 and (1 - 3)/2 = -1), nor row 8 ((8 - 0)/2 = 4 and (8 - 3)/2), every
    other row the global value: input rows 0..5. archcalc gave every row 0..5 (a global value's
    field at every position) where torch's row 1 depends on no input."""
    text = ("input: [1, 6, 5]\nlayers:\n  - global_avgpool\n  - {upsample: {size: 4}}\n"
            "  - {conv_transpose: {out: 1, kernel: 2, stride: 2, dilation: 3}}\n")
    field = spec(text).rows[-1].rf[0]

    def net(x):
        return deconv(F.interpolate(x.mean(dim=(2, 3), keepdim=True), size=(4, 4)), 2, 2, 0, 3)

    measured = rows(net, 6, 5)
    assert measured == [None if o in (1, 8) else (0, 5) for o in range(10)]
    got = [field.at(o) for o in range(10)]
    assert [None if f > last else (f, last) for f, last in got] == measured


def test_a_dilated_window_over_a_transposed_convs_rows_reads_only_its_taps():
    """A transposed conv k 1, stride 3 on 3 rows (7 rows: 0, 3, 6 read inputs 0, 1, 2; the others
    none), then a max pool k 3, dilation 2 (stride 3, ceil mode: 2 rows). Pool row 0 reads rows 0,
    2, 4 (its taps), so input row 0 alone; archcalc read every row of its extent 0..4 and claimed
    rows 0..1 (row 3 reads input 1). Pool row 1 reads rows 3, 5 (7 is past the map): input 1."""
    text = ("input: [1, 3, 1]\nlayers:\n  - {conv_transpose: {out: 1, kernel: 1, stride: 3}}\n"
            "  - {maxpool: {kernel: [3, 1], dilation: 2, ceil_mode: true}}\n")
    field = spec(text).rows[-1].rf[0]

    x = torch.ones(1, 1, 3, 1, dtype=torch.float64, requires_grad=True)
    y = F.conv_transpose2d(x, torch.ones(1, 1, 1, 1, dtype=x.dtype), stride=3)
    assert F.max_pool2d(y, (3, 1), stride=3, dilation=(2, 1), ceil_mode=True).shape[2] == 2
    # the max pool's whole window, measured as a sum over the same taps (ceil mode: row 7 is padding)
    pooled = F.conv2d(F.pad(y, (0, 0, 0, 1)), torch.ones(1, 1, 3, 1, dtype=y.dtype), stride=3, dilation=(2, 1))
    measured = []
    for o in range(2):
        (g,) = torch.autograd.grad(pooled[0, 0, o].sum(), x, retain_graph=True)
        nz = torch.nonzero(g[0, 0].abs().sum(1) > 0).flatten().tolist()
        measured.append((nz[0], nz[-1]) if nz else None)
    assert measured == [(0, 0), (1, 1)]
    assert [field.at(o) for o in range(2)] == measured


def test_a_gated_map_through_a_transposed_convs_empty_rows():
    """A squeeze-excitation style gate (the map times its global average) then a transposed conv
    k 1, stride 2 on 6 rows (11 rows: even rows read input row o/2, odd rows nothing). An even row
    reads its own row and, through the gate, every row: 0..5; an odd row reads no map position,
    so no gate either (archcalc gave it the gate's 0..5; torch's row is 0: no input)."""
    text = ("input: [1, 6, 6]\nlayers:\n  - {mul: [identity, [global_avgpool]]}\n"
            "  - {conv_transpose: {out: 1, kernel: 1, stride: 2}}\n")
    field = spec(text).rows[-1].rf[0]
    measured = rows(lambda x: deconv(x * x.mean(dim=(2, 3), keepdim=True), 1, 2), 6)
    assert measured == [(0, 5) if o % 2 == 0 else None for o in range(11)]
    got = [field.at(o) for o in range(11)]
    assert [None if f > last else (f, last) for f, last in got] == measured
