"""Receptive fields of some channels of a map (issue 21's differential: classes 'rf over/channel
slice' and 'rf over/padding beside a global value', docs/conventions.md 'Channels' and 'A global
value'): a slice keeps the field of the channels it keeps, a pixel shuffle's position reads one
phase's channels, and a global value's padding reads nothing.

Every expected field is measured in torch on the network written here with torch's own
functionals (never archcalc's builder): weights one, biases zero, input ones, so the input rows an
output row depends on are exactly those with a nonzero gradient. Hand-worked values beside them.
"""

from __future__ import annotations

import pytest

from archcalc import analyze
from archcalc.spec.load import loads

torch = pytest.importorskip("torch")
F = torch.nn.functional


def conv(x, cout, k, pad=0):
    """A conv with weights one and no bias (k: int or (kh, kw); pad likewise)."""
    k = (k, k) if isinstance(k, int) else k
    pad = (pad, pad) if isinstance(pad, int) else pad
    return F.conv2d(x, torch.ones(cout, x.shape[1], *k, dtype=x.dtype), padding=pad)


def measured(f, shape, axis=0):
    """Per output position on ``axis`` (0: rows, 1: columns), the (first, last) input position
    whose gradient is nonzero (None: none is)."""
    x = torch.ones(1, *shape, dtype=torch.float64, requires_grad=True)
    y = f(x)
    spans = []
    for o in range(y.shape[2 + axis]):
        (g,) = torch.autograd.grad(y.select(2 + axis, o).sum(), x, retain_graph=True)
        rows = torch.nonzero(g.abs().sum(dim=(0, 1, 3 - axis))).flatten().tolist()
        spans.append((rows[0], rows[-1]) if rows else None)
    return spans


def claimed(field, n):
    """archcalc's (first, last) per position; None where the position reads no input."""
    out = []
    for o in range(n):
        first, last = field.at(o)
        out.append((first, last) if first <= last else None)
    return out


def clipped(spans, n):
    """A claim as torch measures it: padding positions read nothing (the claim's ends in the
    padding bound the rows read: docs/conventions.md, 'Padding of hidden layers')."""
    return [None if s is None or s[1] < 0 or s[0] > n - 1 else (max(s[0], 0), min(s[1], n - 1)) for s in spans]


def fields(text, free=()):
    return analyze(loads("name: t\n" + text, free=free)).rows


# three 6-channel branches (3x3, 5x5, 1x1 convs), then the third's channels
SLICE = """input: [3, 9, 9]
layers:
  - concat:
    - [{conv: {out: 6, kernel: 3, padding: 1}}]
    - [{conv: {out: 6, kernel: 5, padding: 2}}]
    - [{conv: {out: 6, kernel: 1}}]
  - channels: {start: 12, stop: 15}
"""


def test_a_slice_of_a_concat_reads_its_branches_alone():
    """Channels 12..14 of three 6-channel branches are the third branch's, a 1x1 conv: row o reads
    row o alone, not the 5x5 branch's rows o - 2 .. o + 2 (the map's union)."""
    rows = fields(SLICE)
    rf = rows[-1].rf
    assert (rf[0].size, rf[0].stride, rf[0].padding) == (1, 1, 0)
    assert (rows[-2].rf[0].size, rows[-2].rf[0].padding) == (5, 2)  # the concat itself: the union

    def net(x):
        return torch.cat([conv(x, 6, 3, 1), conv(x, 6, 5, 2), conv(x, 6, 1)], 1)[:, 12:15]

    for axis in (0, 1):
        assert claimed(rf[axis], 9) == measured(net, (3, 9, 9), axis) == [(o, o) for o in range(9)]


def test_a_slice_of_a_pixel_unshuffle_reads_its_phase():
    """Channel 2 of a 2x unshuffle of one channel is block phase (row 1, column 0): output row o
    reads input row 2o + 1, column o reads column 2o (size 1, stride 2; padding -1 on rows)."""
    rows = fields("""input: [1, 8, 8]
layers:
  - pixel_unshuffle: {factor: 2}
  - channels: {start: 2, stop: 3}
""")
    h, w = rows[-1].rf
    assert (h.size, h.stride, h.padding, w.size, w.stride, w.padding) == (1, 2, -1, 1, 2, 0)

    def net(x):
        return F.pixel_unshuffle(x, 2)[:, 2:3]

    assert claimed(h, 4) == measured(net, (1, 8, 8), 0) == [(2 * o + 1, 2 * o + 1) for o in range(4)]
    assert claimed(w, 4) == measured(net, (1, 8, 8), 1) == [(2 * o, 2 * o) for o in range(4)]


def test_a_pixel_shuffle_of_an_unshuffle_reads_one_position():
    """Unshuffle then shuffle by the same factor puts every value back: each position reads itself
    (the map-level union would give every position its whole 2x2 block)."""
    rows = fields("""input: [1, 8, 6]
layers:
  - pixel_unshuffle: {factor: 2}
  - pixel_shuffle: {factor: 2}
""")
    h, w = rows[-1].rf

    def net(x):
        return F.pixel_shuffle(F.pixel_unshuffle(x, 2), 2)

    assert claimed(h, 8) == measured(net, (1, 8, 6), 0) == [(o, o) for o in range(8)]
    assert claimed(w, 6) == measured(net, (1, 8, 6), 1) == [(o, o) for o in range(6)]
    assert (h.size, h.stride, h.padding) == (1, 1, 0)


def test_pad_channels_zeros_read_nothing():
    """pad_channels from 2 to 6 channels adds 2 zero channels before and 2 after: a slice of the
    first two reads no input at any position."""
    rows = fields("""input: [2, 6, 6]
layers:
  - pad_channels: {out: 6}
  - channels: {start: 0, stop: 2}
""")
    h, w = rows[-1].rf

    def net(x):
        return F.pad(x, (0, 0, 0, 0, 2, 2))[:, 0:2]

    assert claimed(h, 6) == measured(net, (2, 6, 6), 0) == [None] * 6
    assert claimed(w, 6) == [None] * 6


def test_radix_softmax_channel_order():
    """radix 2, groups 2 on 4 channels (C' = 1): timm views (groups, radix, C') and transposes,
    so output channel 2 (radix 1, group 0) is input channel 1 = group 0 * radix 2 + radix 1, here
    the 1x1 branch's, not the 3x3 branch's that channel 2 holds before the shuffle (the softmax
    across the radix is a statistic: not counted, as a norm's)."""
    rows = fields("""input: [1, 7, 7]
layers:
  - concat:
    - [{conv: {out: 2, kernel: 1}}]
    - [{conv: {out: 2, kernel: 3, padding: 1}}]
  - radix_softmax: {radix: 2, groups: 2}
  - channels: {start: 2, stop: 3}
""")
    h, _ = rows[-1].rf

    def net(x):  # timm's RadixSoftmax's view and transpose, without the softmax
        y = torch.cat([conv(x, 2, 1), conv(x, 2, 3, 1)], 1)
        return y.reshape(1, 2, 2, -1).transpose(1, 2).reshape(y.shape)[:, 2:3]

    assert claimed(h, 7) == measured(net, (1, 7, 7), 0) == [(o, o) for o in range(7)]
    assert (h.size, h.padding) == (1, 0)


def test_pixel_shuffle_phases_separable_and_not():
    """A pixel shuffle of four channels with kernels 1x1, 1x3, 3x1, 3x3 (phase (qh, qw): rows read
    through kh(qh), columns through kw(qw)): each axis's field depends on that axis's phase alone,
    so it is exact per position (row 2i reads row i, row 2i + 1 rows i - 1 .. i + 1). With kernels
    1x1, 3x3, 1x1, 3x3 the column field of phase (0, 0) and (1, 0) differ: a later stride could
    read one phase and not the other, so the field is unknown rather than the union."""
    rows = fields("""input: [1, 6, 6]
layers:
  - concat:
    - [{conv: {out: 1, kernel: 1}}]
    - [{conv: {out: 1, kernel: [1, 3], padding: [0, 1]}}]
    - [{conv: {out: 1, kernel: [3, 1], padding: [1, 0]}}]
    - [{conv: {out: 1, kernel: 3, padding: 1}}]
  - pixel_shuffle: {factor: 2}
""")
    h, w = rows[-1].rf

    def net(x):
        return F.pixel_shuffle(torch.cat([conv(x, 1, 1), conv(x, 1, (1, 3), (0, 1)), conv(x, 1, (3, 1), (1, 0)),
                                          conv(x, 1, 3, 1)], 1), 2)

    want = [(o // 2, o // 2) if o % 2 == 0 else (o // 2 - 1, o // 2 + 1) for o in range(12)]
    assert claimed(h, 12) == claimed(w, 12) == want
    assert measured(net, (1, 6, 6), 0) == measured(net, (1, 6, 6), 1) == clipped(want, 6)
    mixed = fields("""input: [1, 6, 6]
layers:
  - concat:
    - [{conv: {out: 1, kernel: 1}}]
    - [{conv: {out: 1, kernel: 3, padding: 1}}]
    - [{conv: {out: 1, kernel: 1}}]
    - [{conv: {out: 1, kernel: 3, padding: 1}}]
  - pixel_shuffle: {factor: 2}
""")
    assert mixed[-1].rf is None


def test_a_global_value_s_padding_reads_nothing():
    """A pooled value spread over 3 x 3 by an upsample, then a 1x1 conv with padding 1: the border
    positions read only padding, and torch's output there is the bias alone (no input); the inner
    positions read the whole 6 x 6 input. At symbolic sizes that conv's field has no closed form."""
    text = """input: [1, {h}, {w}]
layers:
  - adaptive_avgpool: {{size: 1}}
  - upsample: {{scale: 3}}
  - conv: {{out: 1, kernel: 1, padding: 1}}
"""
    rows = fields(text.format(h=6, w=6))
    h, w = rows[-1].rf

    def net(x):
        return conv(F.interpolate(F.adaptive_avg_pool2d(x, 1), scale_factor=3.0), 1, 1, 1)

    want = [None, (0, 5), (0, 5), (0, 5), None]
    assert claimed(h, 5) == measured(net, (1, 6, 6), 0) == want
    assert claimed(w, 5) == measured(net, (1, 6, 6), 1) == want
    sym = fields(text.format(h="H", w="W"), free=("H", "W"))
    assert sym[-2].rf is not None and sym[-1].rf is None


def test_explain_names_the_kept_channels_field(cli, tmp_path):
    """`archcalc explain` says where a slice's field comes from and prints it (1/1/0: the third
    branch's 1x1 conv, not the concat's 5/1/2); zeros that padding added read no input (0/1/0)."""
    spec = tmp_path / "slice.yaml"
    spec.write_text("name: slice\n" + SLICE + "  - pad_channels: {out: 7}\n  - channels: {start: 0, stop: 2}\n")
    code, out, err = cli("explain", str(spec), "channels1")
    assert code == 0, err
    assert "receptive field of the channels each output position reads (docs/conventions.md, 'Channels'): 1/1/0" in out
    code, out, err = cli("explain", str(spec), "channels2")
    assert code == 0, err
    assert "none, these channels read no input (zeros that padding added), 0/1/0" in out


@pytest.mark.parametrize("depth, known", [(250, True), (300, False)])
def test_the_walk_back_is_bounded(depth, known):
    """A slice's field is worked out back through at most MAX_CHANNEL_DEPTH (256) layers: after
    250 relus it is the 1x1 branch's own (size 1, hand-worked as in the first test), after 300
    unknown (never the concat's 5/1/2 guessed, never a RecursionError)."""
    from archcalc.limits import MAX_CHANNEL_DEPTH

    assert MAX_CHANNEL_DEPTH == 256
    rows = fields(f"""input: [3, 9, 9]
layers:
  - concat:
    - [{{conv: {{out: 6, kernel: 5, padding: 2}}}}]
    - [{{conv: {{out: 6, kernel: 1}}}}]
  - repeat: {depth}
    layers: [relu]
  - channels: {{start: 6, stop: 12}}
""")
    rf = rows[-1].rf
    assert (rf is not None) == known
    if known:
        assert (rf[0].size, rf[0].stride, rf[0].padding) == (1, 1, 0)


def test_a_window_over_padding_alone_on_one_axis_reads_nothing_on_any():
    """A 1x1 conv at stride 3 with padding 1 on a 2-column map reads columns -1 and 2: padding at
    both positions, so no output position reads any input, whatever its row (torch's output is
    the bias alone). Each axis alone would extend into the padding (rows 2, 5, ... are map rows):
    the row field must be empty too. At symbolic sizes the field is unknown (it is empty at some)."""
    text = """input: [1, {h}, {w}]
layers:
  - conv: {{out: 1, kernel: 3}}
  - conv: {{out: 1, kernel: 1, stride: 3, padding: 1}}
"""
    rows = fields(text.format(h=12, w=4))
    h, w = rows[-1].rf

    def net(x):
        return conv(conv(x, 1, 3), 1, 1, 1)[:, :, ::3, ::3]  # stride 3: every third of the padded positions

    assert claimed(h, 4) == measured(net, (1, 12, 4), 0) == [None] * 4
    assert claimed(w, 2) == measured(net, (1, 12, 4), 1) == [None, None]
    sym = fields(text.format(h="H", w="W"), free=("H", "W"))
    assert sym[-2].rf is not None and sym[-1].rf is None


def test_align_corners_to_one_position_has_stride_zero_at_every_size():
    """A pooled value upsampled with align_corners to the input's size: torch's scale is
    (1 - 1)/(O - 1) = 0, and 0 for a single output (area_pixel_compute_scale), so every output
    reads input 0 and the stride is 0 at every size, H = 1 included (where the output keeps one
    position: before, a copy of stride 1 at that size only, against the closed form's 0)."""
    text = """input: [1, {h}, {w}]
layers:
  - global_avgpool: {{}}
  - upsample: {{like: input, mode: bilinear, align_corners: true}}
"""
    sym = fields(text.format(h="H", w="W"), free=("H", "W"))[-1].rf
    for h in (1, 2, 5):
        conc = fields(text.format(h=h, w=h))[-1].rf
        assert conc[0].stride == 0 == sym[0].stride

        def net(x):
            return F.interpolate(F.adaptive_avg_pool2d(x, 1), size=(h, h), mode="bilinear", align_corners=True)

        assert claimed(conc[0], h) == measured(net, (1, h, h), 0) == [(0, h - 1)] * h


def test_a_walk_over_millions_of_channels_is_refused_before_the_work():
    """A pixel shuffle reads one part per input channel: each of the 4,000,000 is a step of the
    network's 1,000,000 receptive-field steps, taken before its work (a spec is untrusted input):
    a clean error naming the layer once the budget is spent (about 2.5 s here)."""
    import time

    from archcalc.errors import SpecError

    start = time.process_time()
    with pytest.raises(SpecError) as err:
        fields("input: [3, 8, 8]\nlayers:\n  - conv: {out: 4000000, kernel: 1}\n  - pixel_shuffle: {factor: 2}\n")
    assert "'pixel_shuffle1'" in str(err.value) and "after 1,000,000 already taken" in str(err.value)
    assert "above the limit of 1,000,000" in str(err.value)
    assert time.process_time() - start < 30  # a hang detector: bounded by the budget, not the channels
