"""Rank-generic layers (issue 23 item 1): 1-D ([C, L]) and 3-D ([C, D, H, W]) inputs.

Every number is torch's: each one-layer spec is compared with the torch.nn module a user would
write for it (Conv1d/3d, MaxPool1d/3d, ..., F.interpolate), its output shape, its parameter and
running-statistics counts and FlopCounterMode's FLOPs / 2; the receptive fields per axis with the
input gradient of one output position of a chain of positive weights; the errors with the file,
line and layer they name.
"""

from __future__ import annotations

import pytest

import archcalc
from archcalc.errors import SpecError
from archcalc.spec.load import loads

torch = pytest.importorskip("torch")
nn = torch.nn
F = torch.nn.functional


def _one(inp, layer):
    return archcalc.analyze(loads(f"input: {list(inp)}\nlayers:\n  - {layer}\n"))


class _Interp(nn.Module):
    def __init__(self, **kw):
        super().__init__()
        self.kw = kw

    def forward(self, x):
        return F.interpolate(x, **self.kw)


# (input C x spatial, the layer as a spec writes it, the torch module)
CASES = [
    # 1-D
    ((4, 50), "{conv: {out: 6, kernel: 5, stride: 2, padding: 1}}", lambda: nn.Conv1d(4, 6, 5, 2, 1)),
    ((4, 50), "{conv: {out: 8, kernel: 3, dilation: 2, groups: 2, bias: false}}",
     lambda: nn.Conv1d(4, 8, 3, dilation=2, groups=2, bias=False)),
    ((4, 50), "{conv: {out: 4, kernel: 4, padding: same}}", lambda: nn.Conv1d(4, 4, 4, padding="same")),
    ((4, 50), "{conv: {out: 6, kernel: 3, padding: [2, 0]}}", lambda: nn.Sequential(nn.ZeroPad1d((2, 0)), nn.Conv1d(4, 6, 3))),
    ((4, 50), "{conv: {out: 6, kernel: 3, padding: 1, padding_mode: reflect}}",
     lambda: nn.Conv1d(4, 6, 3, padding=1, padding_mode="reflect")),
    ((4, 25), "{conv_transpose: {out: 3, kernel: 4, stride: 2, padding: 1, output_padding: 1}}",
     lambda: nn.ConvTranspose1d(4, 3, 4, 2, 1, output_padding=1)),
    ((4, 50), "{maxpool: {kernel: 3, stride: 2, padding: 1, ceil_mode: true}}", lambda: nn.MaxPool1d(3, 2, 1, ceil_mode=True)),
    ((4, 50), "{avgpool: {kernel: 4, stride: 3}}", lambda: nn.AvgPool1d(4, 3)),
    ((4, 50), "{adaptive_avgpool: {size: 7}}", lambda: nn.AdaptiveAvgPool1d(7)),
    ((4, 50), "{adaptive_maxpool: {size: 6}}", lambda: nn.AdaptiveMaxPool1d(6)),
    ((4, 50), "global_avgpool", lambda: nn.AdaptiveAvgPool1d(1)),
    ((4, 50), "global_maxpool", lambda: nn.AdaptiveMaxPool1d(1)),
    ((4, 50), "bn", lambda: nn.BatchNorm1d(4)),
    ((4, 50), "{groupnorm: {groups: 2}}", lambda: nn.GroupNorm(2, 4)),
    ((4, 50), "{instancenorm: {affine: true, track_running_stats: true}}",
     lambda: nn.InstanceNorm1d(4, affine=True, track_running_stats=True)),
    ((4, 50), "{upsample: {scale: 2.5, mode: linear}}", lambda: _Interp(scale_factor=2.5, mode="linear")),
    ((4, 50), "{upsample: {size: 64, mode: nearest}}", lambda: _Interp(size=64, mode="nearest")),
    ((4, 50), "{pad: {padding: [1, 3], mode: replicate}}", lambda: nn.ReplicationPad1d((1, 3))),
    ((6, 50), "{pixel_shuffle: {factor: 3}}", None),
    ((4, 48), "{pixel_unshuffle: {factor: 4}}", None),
    # 3-D
    ((3, 8, 20, 22), "{conv: {out: 5, kernel: [3, 5, 5], stride: [1, 2, 2], padding: [1, 2, 2]}}",
     lambda: nn.Conv3d(3, 5, (3, 5, 5), (1, 2, 2), (1, 2, 2))),
    ((3, 8, 20, 22), "{conv: {out: 6, kernel: [1, 3, 3], dilation: [1, 2, 1], groups: 3, bias: false}}",
     lambda: nn.Conv3d(3, 6, (1, 3, 3), dilation=(1, 2, 1), groups=3, bias=False)),
    ((3, 8, 20, 22), "{conv: {out: 4, kernel: 3, stride: 2, padding: same}}", None),  # TF same at stride 2: no torch module
    ((3, 8, 20, 22), "{conv: {out: 4, kernel: 2, padding: [0, 1, 1, 0, 1, 1]}}",
     lambda: nn.Sequential(nn.ZeroPad3d((1, 1, 1, 0, 0, 1)), nn.Conv3d(3, 4, 2))),
    ((3, 4, 5, 6), "{conv_transpose: {out: 2, kernel: [2, 3, 3], stride: [2, 2, 1], padding: [0, 1, 1]}}",
     lambda: nn.ConvTranspose3d(3, 2, (2, 3, 3), (2, 2, 1), (0, 1, 1))),
    ((3, 8, 20, 22), "{maxpool: {kernel: [1, 3, 3], stride: [1, 2, 2], padding: [0, 1, 1]}}",
     lambda: nn.MaxPool3d((1, 3, 3), (1, 2, 2), (0, 1, 1))),
    ((3, 8, 20, 22), "{maxpool: {kernel: 3, stride: 2, dilation: 2}}", lambda: nn.MaxPool3d(3, 2, dilation=2)),
    ((3, 8, 20, 22), "{avgpool: {kernel: [2, 7, 7], stride: 1}}", lambda: nn.AvgPool3d((2, 7, 7), 1)),
    ((3, 8, 20, 22), "{avgpool: {kernel: 3, stride: 2, padding: 1, count_include_pad: false}}",
     lambda: nn.AvgPool3d(3, 2, 1, count_include_pad=False)),
    ((3, 8, 20, 22), "{adaptive_avgpool: {size: [2, 3, 5]}}", lambda: nn.AdaptiveAvgPool3d((2, 3, 5))),
    ((3, 8, 20, 22), "{adaptive_maxpool: {size: 3}}", lambda: nn.AdaptiveMaxPool3d(3)),
    ((3, 8, 20, 22), "global_avgpool", lambda: nn.AdaptiveAvgPool3d(1)),
    ((3, 8, 20, 22), "bn", lambda: nn.BatchNorm3d(3)),
    ((4, 8, 20, 22), "{groupnorm: {groups: 2}}", lambda: nn.GroupNorm(2, 4)),
    ((3, 8, 20, 22), "instancenorm", lambda: nn.InstanceNorm3d(3)),
    ((3, 4, 5, 6), "{upsample: {scale: [2, 1.5, 3], mode: trilinear}}",
     lambda: _Interp(scale_factor=(2.0, 1.5, 3.0), mode="trilinear")),
    ((3, 4, 5, 6), "{upsample: {scale: 2, mode: nearest}}", lambda: _Interp(scale_factor=2.0, mode="nearest")),
    ((3, 4, 5, 6), "{upsample: {size: [3, 9, 7], mode: trilinear, align_corners: true}}",
     lambda: _Interp(size=(3, 9, 7), mode="trilinear", align_corners=True)),
    ((3, 4, 5, 6), "{pad: {padding: [1, 0, 2, 2, 0, 3], mode: reflect}}", lambda: nn.ReflectionPad3d((0, 3, 2, 2, 1, 0))),
    ((16, 2, 3, 4), "{pixel_shuffle: {factor: 2}}", None),
    ((2, 4, 6, 8), "{pixel_unshuffle: {factor: 2}}", None),
]


def _torch_numbers(mod, shape):
    from torch.utils.flop_counter import FlopCounterMode

    mod.eval()
    x = torch.randn(1, *shape)
    with FlopCounterMode(display=False) as fc, torch.no_grad():
        y = mod(x)
    params = sum(p.numel() for p in mod.parameters())
    buffers = sum(b.numel() for k, b in mod.state_dict().items() if "running_" in k)
    return tuple(y.shape[1:]), params, buffers, fc.get_total_flops() // 2


@pytest.mark.parametrize("shape,layer,make", CASES, ids=[f"{len(c[0]) - 1}d-{c[1][:40]}" for c in CASES])
def test_layer_on_1d_and_3d_maps_equals_torch(shape, layer, make):
    r = _one(shape, layer)
    row = r.rows[0]
    if make is None:  # pixel (un)shuffle and TF 'same': the built module, checked as torch runs it
        from archcalc.torchside.build import build

        net = loads(f"input: {list(shape)}\nlayers:\n  - {layer}\n")
        got = _torch_numbers(build(net), shape)
    else:
        torch.manual_seed(0)
        got = _torch_numbers(make(), shape)
    assert (tuple(row.shape), row.params, row.buffers, row.macs) == got


def test_pixel_shuffle_nd_generalises_torch_order():
    """In 2-D archcalc's own n-D module is torch's PixelShuffle; its 1-D and 3-D forms invert each other."""
    from archcalc.layers.channel_torch import PixelShuffleNd, PixelUnshuffleNd

    x = torch.randn(2, 18, 5, 6)
    assert torch.equal(PixelShuffleNd(3)(x), F.pixel_shuffle(x, 3))
    assert torch.equal(PixelUnshuffleNd(3)(x[:, :, :3, :3]), F.pixel_unshuffle(x[:, :, :3, :3], 3))
    for y in (torch.randn(1, 6, 7), torch.randn(2, 16, 3, 4, 5)):
        r = 3 if y.dim() == 3 else 2
        assert torch.equal(PixelUnshuffleNd(r)(PixelShuffleNd(r)(y)), y)
    # 1-D by hand: channels (c*r + i) go to position l*r + i
    z = torch.arange(12.0).reshape(1, 4, 3)  # C=4, L=3, r=2 -> C=2, L=6
    assert PixelShuffleNd(2)(z)[0, 0].tolist() == [0.0, 3.0, 1.0, 4.0, 2.0, 5.0]


# --------------------------------------------------------------------------- nets, by hand


M5 = """
input: [1, 8000]
layers:
  - {conv: {out: 32, kernel: 80, stride: 16}}
  - bn
  - relu
  - {maxpool: {kernel: 4}}
  - {conv: {out: 64, kernel: 3, padding: [1, 2]}}
  - global_avgpool
  - flatten
  - {linear: {out: 10}}
"""


def test_1d_net_by_hand():
    r = archcalc.analyze(loads(M5))
    # conv1: L = floor((8000 - 80) / 16) + 1 = 496; params 32*1*80 + 32 = 2,592; MACs 32*496*80 = 1,269,760
    # maxpool 4: 496 / 4 = 124; conv2 padding 1 before, 2 after: L = 124 + 3 - 3 + 1 = 125
    # conv2: params 64*32*3 + 64 = 6,208, MACs 64*125*32*3 = 768,000; linear 64*10 + 10 = 650 params, 640 MACs
    assert [tuple(row.shape) for row in r.rows] == [(32, 496), (32, 496), (32, 496), (32, 124), (64, 125), (64, 1), (64,), (10,)]
    assert r.totals["params"] == 2_592 + 64 + 6_208 + 650
    assert r.totals["macs"] == 1_269_760 + 768_000 + 640
    # fields: conv1 80/16/0; maxpool r = 80 + 3*16 = 128, j = 64; conv2 r = 128 + 2*64 = 256, p = 1*64
    assert [(a.size, a.stride, a.padding) for a in r.rows[4].rf] == [(256, 64, 64)]


def test_summary_table_shapes_and_fields_per_axis(tmp_path):
    """The text table writes 1-D / 3-D shapes as CxL / CxDxHxW and a field per axis where they differ."""
    from archcalc.output.report import rf_text, shape_text

    spec = tmp_path / "c3.yaml"
    spec.write_text("input: [3, 16, 112, 112]\nlayers:\n  - {conv: {out: 64, kernel: [3, 7, 7], stride: [1, 2, 2], "
                    "padding: [1, 3, 3], bias: false}}\n  - {adaptive_avgpool: {size: 1}}\n  - flatten\n"
                    "  - {linear: {out: 1000}}\n")
    r = archcalc.analyze(archcalc.load(str(spec)))
    assert shape_text(r.rows[0].shape) == "64x16x56x56"
    # D: 3/1/1; H and W: 7/2/3
    assert rf_text(r.rows[0].rf) == "3x7x7/1x2x2/1x3x3"
    assert archcalc.summary(str(spec)).rows[0].rf.d.size == 3
    from archcalc.output.report import rf_dict

    assert rf_dict(r.rows[0].rf) == {"d": {"size": 3, "stride": 1, "padding": 1}, "h": {"size": 7, "stride": 2, "padding": 3},
                                     "w": {"size": 7, "stride": 2, "padding": 3}}


# --------------------------------------------------------------------------- receptive fields vs gradients


def _grad_extent(model, shape, pos):
    """Per axis, the first and last input position with a nonzero gradient of output ``pos`` (summed over channels)."""
    x = torch.zeros(1, *shape, dtype=torch.float64, requires_grad=True)
    y = model(x)
    y[(0, slice(None)) + tuple(pos)].sum().backward()
    nz = x.grad[0].abs().sum(0).nonzero()
    return [(int(nz[:, a].min()), int(nz[:, a].max())) for a in range(len(shape) - 1)]


def _positive(model):
    for p in model.parameters():
        torch.nn.init.constant_(p, 0.1) if p.dim() > 1 else torch.nn.init.zeros_(p)
    return model.double()


CHAINS = [
    ((2, 300), [("{conv: {out: 3, kernel: 7, stride: 2, padding: 3}}", lambda: nn.Conv1d(2, 3, 7, 2, 3)),
                ("{avgpool: {kernel: 3, stride: 2, padding: 1}}", lambda: nn.AvgPool1d(3, 2, 1)),
                ("{conv: {out: 3, kernel: 3, dilation: 4, padding: [2, 6]}}",
                 lambda: nn.Sequential(nn.ZeroPad1d((2, 6)), nn.Conv1d(3, 3, 3, dilation=4))),
                ("{conv: {out: 2, kernel: 5, stride: 3}}", lambda: nn.Conv1d(3, 2, 5, 3))], (7,)),
    ((2, 20, 40, 40), [("{conv: {out: 3, kernel: [3, 7, 7], stride: [1, 2, 2], padding: [1, 3, 3]}}",
                        lambda: nn.Conv3d(2, 3, (3, 7, 7), (1, 2, 2), (1, 3, 3))),
                       ("{avgpool: {kernel: [1, 3, 3], stride: [1, 2, 2], padding: [0, 1, 1]}}",
                        lambda: nn.AvgPool3d((1, 3, 3), (1, 2, 2), (0, 1, 1))),
                       ("{conv: {out: 2, kernel: [3, 1, 1], stride: [2, 1, 1], padding: [1, 0, 0]}}",
                        lambda: nn.Conv3d(3, 2, (3, 1, 1), (2, 1, 1), (1, 0, 0))),
                       ("{conv: {out: 2, kernel: 3, padding: 1}}", lambda: nn.Conv3d(2, 2, 3, padding=1))], (5, 5, 5)),
]


@pytest.mark.parametrize("shape,chain,pos", CHAINS, ids=["1d", "3d"])
def test_receptive_field_per_axis_equals_input_gradients(shape, chain, pos):
    spec = f"input: {list(shape)}\nlayers:\n" + "".join(f"  - {layer}\n" for layer, _ in chain)
    rf = archcalc.analyze(loads(spec)).rows[-1].rf
    model = _positive(nn.Sequential(*[make() for _, make in chain]))
    got = _grad_extent(model, shape, pos)
    assert len(rf) == len(shape) - 1
    for (first, last), a, o in zip(got, rf, pos):
        # output o reads o*j - p .. o*j - p + r - 1 (inside the input here: no clipping)
        assert (first, last) == (o * a.stride - a.padding, o * a.stride - a.padding + a.size - 1)


# --------------------------------------------------------------------------- errors


@pytest.mark.parametrize("inp,layer,fact", [
    ([3, 8, 16, 16], "lrn", "lrn works on 2-D maps (C x H x W) only, got a 3-D map 3x8x16x16"),
    ([3, 64], "{channel_linear: {out: 4}}", "channel_linear works on 2-D maps (C x H x W) only, got a 1-D map 3x64"),
    ([3, 8, 16, 16], "{conv: {out: 4, kernel: [3, 3]}}", "kernel: expected integer or [d, h, w], got a list of 2"),
    ([3, 64], "{maxpool: {kernel: 2, padding: [1, 1, 1, 1]}}", "padding: expected integer, [l], [before, after] or 'same', got a list of 4"),
    ([3, 8, 16, 16], "{upsample: {scale: 2, mode: bilinear}}", "upsample: mode bilinear is for 2-D maps"),
    ([3, 64], "{upsample: {scale: 2, mode: trilinear}}", "upsample: mode trilinear is for 3-D maps"),
    ([3, 8, 16, 16], "{pixel_unshuffle: {factor: 2, order: blocks}}", "works on 2-D maps"),
])
def test_other_ranks_are_refused_with_file_line_and_layer(inp, layer, fact):
    with pytest.raises(SpecError) as e:
        archcalc.analyze(loads(f"input: {inp}\nlayers:\n  - {layer}\n", file="net.yaml"))
    text = str(e.value)
    assert fact in text and "net.yaml:3" in text, text


def test_cli_refusal_exits_2_without_traceback(tmp_path, cli):
    spec = tmp_path / "bad.yaml"
    spec.write_text("input: [3, 8, 16, 16]\nlayers:\n  - {conv: {out: 4, kernel: 3}}\n  - lrn\n")
    code, out, err = cli("summary", str(spec))
    assert code == 2 and "Traceback" not in err
    assert "bad.yaml:4" in err and "lrn" in err and "2-D maps" in err


# --------------------------------------------------------------------------- the builder: archcalc verify


MIXED = {
    "3d": """
input: [4, 9, 17, 18]
layers:
  - {conv: {out: 8, kernel: 3, stride: 2, padding: same}}
  - {maxpool: {kernel: 2, stride: 2, padding: [0, 1, 1, 0, 1, 1], ceil_mode: true}}
  - {avgpool: {kernel: 3, stride: 1, padding: [1, 1, 0, 2, 1, 1]}}
  - {groupnorm: {groups: 4}}
  - {pixel_shuffle: {factor: 2}}
  - {conv_transpose: {out: 4, kernel: 2, stride: 2}}
  - {upsample: {scale: [1, 0.5, 0.5], mode: trilinear}}
  - {pad: {padding: 1, mode: circular}}
  - {pixel_unshuffle: {factor: 2}}
  - global_maxpool
  - flatten
  - {linear: {out: 3}}
""",
    "3d-gate": """
input: [8, 4, 10, 10]
layers:
  - {conv: {out: 8, kernel: 3, padding: 1}, name: c}
  - mul:
      - identity
      - [global_avgpool, {conv: {out: 2, kernel: 1}}, relu, {conv: {out: 8, kernel: 1}}, sigmoid]
""",
    "1d": """
input: [4, 61]
layers:
  - {conv: {out: 8, kernel: 4, stride: 2, padding: same}}
  - {maxpool: {kernel: 3, stride: 2, padding: [0, 2], ceil_mode: true}}
  - {avgpool: {kernel: 3, stride: 1, padding: [0, 2]}}
  - instancenorm
  - {pixel_shuffle: {factor: 2}}
  - {upsample: {scale: 1.5, mode: linear, align_corners: true}}
  - {adaptive_maxpool: {size: 5}}
  - {conv: {out: 4, kernel: 3, padding: 1, padding_mode: circular}}
  - global_avgpool
  - flatten
""",
}


@pytest.mark.parametrize("rank", sorted(MIXED))
def test_verify_builds_1d_and_3d_nets_as_the_engine_counts_them(rank, tmp_path):
    """Explicit asymmetric pads before a pool (-inf for max), ceil-mode crops, TF 'same', per-axis
    scales, pixel (un)shuffle, circular padding: every layer's shape, params, MACs and values on CPU."""
    spec = tmp_path / f"mixed{rank}.yaml"
    spec.write_text(MIXED[rank])
    result = archcalc.verify(str(spec), device="cpu")
    assert result.ok and result.mismatches == 0, result.to_dict()["totals"]


def test_spec_format_doc_quotes_the_refusal():
    """docs/spec-format.md's rank section quotes the error a 2-D-only layer gives on a 3-D map."""
    from conftest import ROOT

    doc = (ROOT / "docs" / "spec-format.md").read_text()
    with pytest.raises(SpecError) as e:
        archcalc.analyze(loads("input: [3, 8, 16, 16]\nlayers:\n  - {conv: {out: 4, kernel: 3}}\n  - lrn\n", file="net.yaml"))
    first = str(e.value).split(";")[0]
    assert first == "net.yaml:4: layers[1] 'lrn1' (lrn): lrn works on 2-D maps (C x H x W) only, got a 3-D map 4x6x14x14"
    assert " ".join(("archcalc: error: " + first).split()) in " ".join(doc.split())


def test_symbols_in_any_axis():
    """A free frame count (3-D) or length (1-D): the closed forms give the cited numbers at the cited sizes
    (r3d_18 at 16 frames: torchvision's 40,696,553,472 MACs; M5 at 32,000 samples: 278,533,120 by hand,
    tests/zoo/test_zoo_rank_examples.py)."""
    r = archcalc.analyze(archcalc.load("r3d_18", free=("T",)))
    macs = r.totals["macs"]
    assert {s.name for s in macs.free_symbols} == {"T"}
    assert int(macs.subs({s: 16 for s in macs.free_symbols})) == 40_696_553_472
    assert str(r.rows[0].shape[1]) == "T" and tuple(r.rows[0].shape[2:]) == (56, 56)  # the stem keeps the frames
    m = archcalc.analyze(archcalc.load("m5", free=("L",))).totals["macs"]
    assert int(m.subs({s: 32000 for s in m.free_symbols})) == 278_533_120
