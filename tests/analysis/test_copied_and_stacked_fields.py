"""Receptive fields where padding copies input rows, where branches are stacked along H or W, and
where a bicubic source row is a whole number; and torch's limits on 'same' padding in reflect and
circular modes (issue 21's differential: classes 'rf/reflect, replicate or circular padding',
'rf/concat along H or W', 'rf over/bicubic at whole-number source positions', 'accept/same
padding's reflect or circular limit').

Every expected field is measured in torch on a network written here with torch's own functionals
(never archcalc's builder): weights one, input ones, so the input rows an output row depends on
are exactly those with a nonzero gradient. Hand-worked values are written beside them.
"""

from __future__ import annotations

import pytest

from archcalc import analyze
from archcalc.errors import SpecError
from archcalc.spec.load import loads

torch = pytest.importorskip("torch")
F = torch.nn.functional


def ones(k, d=torch.float64):
    return torch.ones(1, 1, *((k, k) if isinstance(k, int) else k), dtype=d)


def measured(f, h, w, axis=0):
    """Per output position on ``axis`` (0: rows, 1: columns), the (first, last) input position
    whose gradient is nonzero."""
    x = torch.ones(1, 1, h, w, dtype=torch.float64, requires_grad=True)
    y = f(x)
    out = []
    for o in range(y.shape[2 + axis]):
        sel = y[0, 0, o] if axis == 0 else y[0, 0, :, o]
        (g,) = torch.autograd.grad(sel.sum(), x, retain_graph=True)
        nz = torch.nonzero(g[0, 0].abs().sum(1 - axis) > 0).flatten().tolist()
        out.append((nz[0], nz[-1]) if nz else None)
    return out


def fields(text, axis=0, row=-1):
    r = analyze(loads(text, "case.yaml"))
    a = r.rows[row].rf[axis]
    return [a.at(o) for o in range(r.rows[row].shape[1 + axis])]


# --------------------------------------------------------------------------- padding that copies rows

@pytest.mark.parametrize("mode, want", [
    # conv 3x3 padding 1 on 6 rows: row 0 reads padded rows -1, 0, 1, and row -1 holds input row 1
    # (reflect), row 0 (replicate) or row 5 (circular); row 5 likewise at the other end
    ("reflect", [(0, 1), (0, 2), (1, 3), (2, 4), (3, 5), (4, 5)]),
    ("replicate", [(0, 1), (0, 2), (1, 3), (2, 4), (3, 5), (4, 5)]),
    ("circular", [(0, 5), (0, 2), (1, 3), (2, 4), (3, 5), (0, 5)]),
])
def test_a_conv_whose_padding_copies_rows_reads_those_rows(mode, want):
    text = f"input: [1, 6, 5]\nlayers:\n  - {{conv: {{out: 1, kernel: 3, padding: 1, padding_mode: {mode}}}}}\n"
    assert measured(lambda x: F.conv2d(F.pad(x, (1, 1, 1, 1), mode=mode), ones(3)), 6, 5) == want
    assert fields(text) == want
    # the interior rows are zero padding's (o - 1 .. o + 1); zero padding's border rows reach -1 and 6
    zero = fields(text.replace(f", padding_mode: {mode}", ""))
    assert zero[1:5] == want[1:5] and zero[0] == (-1, 1) and zero[5] == (4, 6)


@pytest.mark.parametrize("mode", ["reflect", "replicate", "circular"])
def test_copied_padding_through_a_stack_of_layers(mode):
    """A dilated conv (taps 3 rows apart: circular padding 2 reads rows 3 and 1 at row 0, not the
    hull 3, 4, 0, 1), then a strided conv in the same mode, a pad layer and a blur pool: every
    position's field is torch's, on both axes."""
    text = (f"input: [1, 7, 8]\nlayers:\n"
            f"  - {{conv: {{out: 1, kernel: 2, dilation: 3, padding: 2, padding_mode: {mode}}}}}\n"
            f"  - {{conv: {{out: 1, kernel: 3, stride: 2, padding: [1, 2], padding_mode: {mode}}}}}\n"
            f"  - {{pad: {{padding: [2, 0, 1, 1], mode: {mode}}}}}\n"
            f"  - {{blur_pool: {{filter: 3, stride: 1, pad_mode: {mode}}}}}\n")

    def f(x):
        x = F.conv2d(F.pad(x, (2, 2, 2, 2), mode=mode), ones(2), dilation=3)
        x = F.conv2d(F.pad(x, (2, 2, 1, 1), mode=mode), ones(3), stride=2)
        x = F.pad(x, (1, 1, 2, 0), mode=mode)
        return F.conv2d(F.pad(x, (1, 1, 1, 1), mode=mode), ones(3))

    for axis in (0, 1):
        assert fields(text, axis) == measured(f, 7, 8, axis), axis
    # by hand, circular, the first layer's row 0: padded rows -2 and 1, i.e. input rows 5 and 1
    if mode == "circular":
        assert fields(text, 0, row=0)[0] == (1, 5)


def test_a_dilated_window_over_copied_rows_reads_only_its_taps():
    """pad [0, 3] reflect on 9 rows (pad rows 9, 10, 11 hold input rows 7, 6, 5), then a zero-padded
    4-tap conv, dilation 2, padding 1: output row 7 reads pad rows 6, 8, 10 (and 12, zero padding),
    i.e. input rows 6, 8, 6: 6 .. 8. The extent 6 .. 12 would also name pad row 11 (input row 5),
    which the dilation steps over. Pad row 12 is the conv's zero padding: it extends as zero
    padding's (input row 12, past the image), so the field is 6 .. 12, whose end past the image
    bounds torch's. Inside the image every end is torch's."""
    text = ("input: [1, 9, 9]\nlayers:\n  - {pad: {padding: [0, 3, 0, 0], mode: reflect}}\n"
            "  - {conv: {out: 1, kernel: 4, dilation: 2, padding: 1}}\n")

    def f(x):
        return F.conv2d(F.pad(F.pad(x, (0, 0, 0, 3), mode="reflect"), (1, 1, 1, 1)), ones(4), dilation=2)

    got, want = fields(text), measured(f, 9, 9)
    assert want[7] == (6, 8) and got[7] == (6, 12)
    for (first, last), (lo, hi) in zip(got, want):
        assert first <= lo and hi <= last and (first < 0 or first == lo) and (last > 8 or last == hi)


def test_a_pad_layer_that_reflects_reads_the_mirrored_row():
    """pad [2, 0] reflect: output row 0 is input row 2 (zero padding's geometry would name row -2,
    outside the image, where torch reads row 2)."""
    text = "input: [1, 5, 3]\nlayers:\n  - {pad: {padding: [2, 0, 0, 0], mode: reflect}}\n"
    want = measured(lambda x: F.pad(x, (0, 0, 2, 0), mode="reflect"), 5, 3)
    assert want == [(2, 2), (1, 1), (0, 0), (1, 1), (2, 2), (3, 3), (4, 4)]
    assert fields(text) == want


def test_copied_padding_in_closed_form_is_unknown_not_zero_paddings():
    """Where the sizes are symbols the border positions cannot be listed: the field is unknown
    (None), never zero padding's."""
    text = "input: [1, H, W]\nlayers:\n  - {conv: {out: 1, kernel: 3, padding: 1, padding_mode: reflect}}\n"
    assert analyze(loads(text, "case.yaml", free=("H", "W"))).rows[0].rf is None


# --------------------------------------------------------------------------- concat along H or W

STACKED = """input: [1, 7, 6]
layers:
  - concat:
      - [{conv: {out: 1, kernel: 3, stride: 2, padding: 1}}]
      - [{maxpool: {kernel: [2, 3], stride: [1, 2], padding: [0, 1]}}]
    dim: DIM
  - {conv: {out: 1, kernel: 3, padding: 1}}
"""


def _stacked(x):
    a = F.conv2d(x, ones(3), stride=2, padding=1)
    b = F.avg_pool2d(F.pad(x, (1, 1, 0, 0)), (2, 3), (1, 2))  # the max pool's window, all of it read
    return F.conv2d(torch.cat([a, b], 2), ones(3), padding=1)


def test_concat_along_h_reads_each_branch_at_its_shifted_rows():
    """Rows 0..3 of the concat are the strided conv's (rows 2o-1 .. 2o+1), rows 4..9 the pool's
    (rows o-4 .. o-3); the conv after it reads three of them. A field end inside the image is
    torch's exactly; an end in the padding (before row 0 or past row 6) bounds torch's."""
    text = STACKED.replace("DIM", "2")
    r = analyze(loads(text, "case.yaml"))
    concat = r.rows[2].rf[0]
    assert [concat.at(o) for o in range(10)] == [(-1, 1), (1, 3), (3, 5), (5, 7),
                                                (0, 1), (1, 2), (2, 3), (3, 4), (4, 5), (5, 6)]
    for axis in (0, 1):
        got = fields(text, axis)
        want = measured(_stacked, 7, 6, axis)
        n_in = (7, 6)[axis]
        assert len(got) == len(want)
        for (first, last), (lo, hi) in zip(got, want):
            assert first <= lo and hi <= last
            assert first < 0 or first == lo
            assert last > n_in - 1 or last == hi
    # by hand, row 3 of the last conv reads concat rows 2..4: the conv's rows 3..7 and the pool's 0..1
    assert fields(text)[3] == (0, 7)


def test_concat_along_w_is_the_same_field_on_the_other_axis():
    """dim 3 on the transposed spec: the column fields are the dim-2 row fields."""
    text = STACKED.replace("DIM", "2")
    swapped = (STACKED.replace("DIM", "3").replace("[1, 7, 6]", "[1, 6, 7]").replace("[2, 3]", "[3, 2]")
               .replace("[1, 2]", "[2, 1]").replace("[0, 1]", "[1, 0]"))
    assert fields(swapped, 1) == fields(text, 0) and fields(swapped, 0) == fields(text, 1)


def test_concat_along_h_in_closed_form_is_unknown():
    text = STACKED.replace("DIM", "2").replace("[1, 7, 6]", "[1, H, W]")
    sym = analyze(loads(text, "case.yaml", free=("H", "W")))
    assert sym.rows[2].rf is None and sym.rows[3].rf is None


# --------------------------------------------------------------------------- bicubic


def _bicubic_rows(h, scale, corners):
    """torch's weight of input row i in output row o (absolute: the outer taps are negative);
    weights below 1e-9 of the row's largest are float residue of an exact 0 (torch computes the
    source coordinate in floating point)."""
    up = torch.nn.Upsample(scale_factor=scale, mode="bicubic", align_corners=corners)
    with torch.no_grad():
        m = up(torch.eye(h, dtype=torch.float64).view(h, 1, h, 1).expand(h, 1, h, 5).contiguous())[:, 0, :, 0].T.abs()
    out = []
    for o in range(m.shape[0]):
        nz = torch.nonzero(m[o] > 1e-9 * m[o].max()).flatten().tolist()
        out.append((nz[0], nz[-1]))
    return out


@pytest.mark.parametrize("scale, corners, h, want", [
    # align_corners, 5 -> 10 rows: src = 4o/9, taps floor(src) - 1 .. floor(src) + 2 clamped to 0..4;
    # o = 0 and o = 9 are whole numbers (rows 0 and 4 alone, where four taps were counted)
    (2, True, 5, [(0, 0), (0, 2), (0, 2), (0, 3), (0, 3), (1, 4), (1, 4), (2, 4), (2, 4), (4, 4)]),
    # scale 0.2, 10 -> 2 rows: src = 5o + 2, a whole number at every row: rows 2 and 7 alone
    (0.2, False, 10, [(2, 2), (7, 7)]),
])
def test_bicubic_at_a_whole_number_source_reads_one_row(scale, corners, h, want):
    assert _bicubic_rows(h, scale, corners) == want
    text = (f"input: [1, {h}, 5]\nlayers:\n"
            f"  - {{upsample: {{scale: {scale}, mode: bicubic, align_corners: {str(corners).lower()}}}}}\n")
    assert fields(text) == want


# --------------------------------------------------------------------------- 'same' in reflect or circular mode

def _torch_runs(mode, h):
    conv = torch.nn.Conv2d(1, 1, 5, padding="same", padding_mode=mode)
    try:
        conv(torch.rand(1, 1, h, 6))
        return True
    except RuntimeError:
        return False


@pytest.mark.parametrize("mode, smallest", [("reflect", 3), ("circular", 2), ("replicate", 1)])
def test_same_padding_in_a_copying_mode_is_refused_where_torch_refuses_it(mode, smallest):
    """padding: same with a 5x5 kernel pads 2 rows each side: reflect needs more than 2 rows
    (torch: 'Padding size should be less than the corresponding input dimension'), circular at
    least 2 ('wrapping around more than once'), replicate any. archcalc refuses exactly those
    sizes with one error line, and --min-input gives the smallest torch runs."""
    from archcalc.analysis.solve import min_input

    text = "input: [1, HH, 6]\nlayers:\n  - {conv: {out: 1, kernel: 5, padding: same, padding_mode: MODE}}\n"
    text = text.replace("MODE", mode)
    for h in range(1, 5):
        runs = _torch_runs(mode, h)
        assert runs == (h >= smallest), h
        if runs:
            assert analyze(loads(text.replace("HH", str(h)), "case.yaml")).rows[0].shape == (1, h, 6)
        else:
            with pytest.raises(SpecError, match=f"{mode} padding of 2 rows"):
                analyze(loads(text.replace("HH", str(h)), "case.yaml"))
    assert min_input(loads(text.replace("HH", "9"), "case.yaml")).size == (1, smallest, smallest)
