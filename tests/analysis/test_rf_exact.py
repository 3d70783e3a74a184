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
from archcalc.check import checks
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
    """Per output row o (at the middle output column), the (first, last) input row whose gradient
    is nonzero, or None where the output reads no input."""
    w = w or h
    x = torch.ones(1, 1, h, w, dtype=torch.float64, requires_grad=True)
    y = f(x)
    out = []
    col = y.shape[3] // 2
    for o in range(y.shape[2]):
        (g,) = torch.autograd.grad(y[0, 0, o, col], x, retain_graph=True)
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


def test_no_zoo_spec_ignores_alignment_but_the_keras_xception():
    """The zoo passes --strict (tests/check/test_ci_check.py) with no `ignore` for alignment but
    Keras' Xception, whose block3 really is one map position off: TensorFlow 'same' padding of a
    3x3/2 max-pool on the even 74x74 map pads 0 before and 1 after ((37 - 1) * 2 + 3 - 74 = 1),
    so window o is centred on row 2o + 1 while the 1x1/2 shortcut's is on 2o: at stride 4,
    4 input pixels."""
    specs = sorted((HERE.parent / "specs").glob("*.yaml"))
    ignoring = [p.stem for p in specs if "alignment:" in p.read_text()]
    assert ignoring == ["xception"]
    r = analyze(load("xception"))
    (w,) = [w for w in r.warnings if w.is_a("alignment")]
    assert (w.layer, w.get("offset_h"), w.get("offset_w"), w.get("layers")) == (
        "block3.add", -4, -4, ("block3.main.pool",))
