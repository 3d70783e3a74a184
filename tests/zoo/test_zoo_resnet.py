"""Zoo specs of the ResNet family (and DenseNet, WRN, FractalNet) against their references.

torchvision models: the exact params / MACs / buffers measured on torchvision 0.29.1 by
tools/torchvision_reference.py (tests/reference/torchvision.json), and torchvision's published
metadata (``num_params`` exactly, ``_ops`` GMACs to the 3 decimals it prints).
Paper models: the figure the paper prints, to the rounding it prints, plus the exact count.
"""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path

import pytest

from archcalc import SpecError, analyze, load
from archcalc.spec.load import loads

REFERENCE = json.loads((Path(__file__).parents[1] / "reference" / "torchvision.json").read_text())["models"]

TORCHVISION = [
    "resnet18", "resnet34", "resnet50", "resnet101", "resnet152",
    "wide_resnet50_2", "wide_resnet101_2",
    "resnext50_32x4d", "resnext101_32x8d", "resnext101_64x4d",
    "densenet121", "densenet161", "densenet169", "densenet201",
]  # fmt: skip


@lru_cache(maxsize=None)
def report(name):
    return analyze(load(name))


def bn_params(r):
    return sum(row.params for row in r.rows if row.type == "batchnorm")


def spec(text):
    return analyze(loads(text, "test.yaml"))


# --------------------------------------------------------------------------- torchvision


@pytest.mark.parametrize("name", TORCHVISION)
def test_torchvision_exact(name):
    ref = REFERENCE[name]
    r = report(name)
    assert tuple(r.input) == tuple(ref["input"])
    assert r.output == (1000,)
    assert r.totals["params"] == ref["params"]
    assert r.totals["macs"] == ref["macs"]
    assert r.totals["buffers"] == ref["buffers"]  # BN running mean + var


@pytest.mark.parametrize("name", TORCHVISION)
def test_torchvision_published_metadata(name):
    ref = REFERENCE[name]
    t = report(name).totals
    assert t["params"] == ref["meta_num_params"]
    assert round(t["macs"] / 1e9, 3) == ref["meta_gmacs"]


def test_torchvision_numbers_spelled_out():
    # the reference table itself, written out, so a regenerated table cannot drift silently
    assert report("resnet50").totals["params"] == 25_557_032
    assert report("resnet50").totals["macs"] == 4_089_184_256
    assert report("resnet152").totals["params"] == 60_192_808
    assert report("resnext101_32x8d").totals["macs"] == 16_414_015_488
    assert report("densenet121").totals["params"] == 7_978_856
    assert report("densenet121").totals["buffers"] == 83_648


def test_torchvision_layer_names_and_shapes():
    r = report("resnet50")
    assert r.row("layer1.0.shortcut.conv").shape == (256, 56, 56)
    assert r.row("layer2.0.residual.conv2").shape == (128, 28, 28)  # stride on the 3x3 conv
    assert r.row("layer2.0.residual.conv1").shape == (128, 56, 56)
    assert r.row("layer4.2.relu").shape == (2048, 7, 7)
    assert r.row("fc").params == 2048 * 1000 + 1000
    d = report("densenet121")
    assert d.row("denseblock1.denselayer6.concat").shape == (256, 56, 56)  # 64 + 6*32
    assert d.row("transition3.pool").shape == (512, 7, 7)
    assert d.row("norm5").shape == (1024, 7, 7)  # 512 + 16*32
    x = report("resnext50_32x4d").row("layer1.0.residual.conv2")
    assert x.params == 128 * (128 // 32) * 3 * 3  # 32 groups of 4 channels


# --------------------------------------------------------------------------- He et al. 2015, v1


def test_resnet50_v1_macs_and_params():
    # He et al. 2015, Table 1 and section 3.3: ResNet-50 "3.8 x 10^9" FLOPs (multiply-adds).
    # 3.858e9 is 3.8 cut to one decimal (rounding would print 3.9); the paper's other columns
    # (7.6 for 101, 11.3 for 152) are rounded, so this one figure is truncated.
    v1 = report("resnet50-v1").totals
    assert v1["macs"] == 3_857_973_248
    assert int(v1["macs"] / 1e8) / 10 == 3.8
    assert v1["params"] == REFERENCE["resnet50"]["params"]  # moving the stride moves no weight
    assert v1["buffers"] == REFERENCE["resnet50"]["buffers"]


def test_resnet_v1_saves_three_strided_1x1_convs():
    # Only conv1 of the first block of layer2..4 changes: in torchvision it runs at the input
    # resolution, in v1 at the output one.  layer2.0.conv1: 256 -> 128 channels, 1x1.
    tv, v1 = report("resnet50"), report("resnet50-v1")
    assert tv.row("layer2.0.residual.conv1").macs == 256 * 128 * 56 * 56 == 102_760_448
    assert v1.row("layer2.0.residual.conv1").macs == 256 * 128 * 28 * 28 == 25_690_112
    # the 3x3 conv2 runs at 28x28 in both
    assert tv.row("layer2.0.residual.conv2").macs == v1.row("layer2.0.residual.conv2").macs
    saved = 102_760_448 - 25_690_112  # 77,070,336; layer3 (512->256 at 28/14) and layer4 save the same
    assert tv.row("layer3.0.residual.conv1").macs - v1.row("layer3.0.residual.conv1").macs == saved
    assert tv.row("layer4.0.residual.conv1").macs - v1.row("layer4.0.residual.conv1").macs == saved
    assert tv.totals["macs"] - v1.totals["macs"] == 3 * saved == 231_211_008


@pytest.mark.parametrize(
    "depth, macs, printed",
    # He et al. 2015, Table 1 FLOPs row: 101-layer 7.6 x 10^9, 152-layer 11.3 x 10^9
    [(101, 7_570_194_432, 7.6), (152, 11_282_415_616, 11.3)],
)
def test_resnet_v1_deeper(depth, macs, printed):
    t = report(f"resnet{depth}-v1").totals
    assert t["macs"] == macs
    assert round(t["macs"] / 1e9, 1) == printed
    assert t["params"] == REFERENCE[f"resnet{depth}"]["params"]
    assert REFERENCE[f"resnet{depth}"]["macs"] - t["macs"] == 231_211_008


def test_resnet50_receptive_field_v1_vs_torchvision():
    # the last conv of layer4 (conv5_3's 1x1) and the block output before pooling
    v1, tv = report("resnet50-v1"), report("resnet50")
    for name in ("layer4.2.residual.conv3", "layer4.2.relu"):
        assert v1.row(name).rf[0].size == 483
        assert v1.row(name).rf[1].size == 483
        assert tv.row(name).rf[0].size == 427
        assert tv.row(name).rf[1].size == 427
    # both end with an effective stride of 32
    assert v1.row("layer4.2.relu").rf[0].stride == tv.row("layer4.2.relu").rf[0].stride == 32


# --------------------------------------------------------------------------- CIFAR ResNets


@pytest.mark.parametrize(
    "name, params, printed, digits",
    # He et al. 2015, section 4.2, Table 6: ResNet-20 0.27M, ResNet-56 0.85M, ResNet-110 1.7M
    [("resnet20", 269_722, 0.27, 2), ("resnet56", 853_018, 0.85, 2), ("resnet110", 1_727_962, 1.7, 1)],
)
def test_cifar_resnet_table6(name, params, printed, digits):
    r = report(name)
    assert tuple(r.input) == (3, 32, 32)
    assert r.output == (10,)
    assert r.totals["params"] == params
    assert round(r.totals["params"] / 1e6, digits) == printed
    depth = int(name[len("resnet"):])
    assert sum(1 for row in r.rows if row.type in ("conv", "linear")) == depth  # 6n+2 weighted layers


def test_resnet20_hand_count():
    # stem 3*16*9 + BN 2*16; stage 1: 3 blocks of 2*(16*16*9) + 2*(2*16);
    # stage 2: (16*32*9 + 32*32*9 + 4*32) + 2*(2*32*32*9 + 4*32); stage 3 likewise with 64;
    # fc 64*10 + 10.  Option A shortcuts add nothing.
    stem = 432 + 32
    s1 = 3 * (4608 + 64)
    s2 = (4608 + 9216 + 128) + 2 * (18432 + 128)
    s3 = (18432 + 36864 + 256) + 2 * (73728 + 256)
    fc = 650
    assert stem + s1 + s2 + s3 + fc == 269_722 == report("resnet20").totals["params"]
    assert report("resnet20").totals["macs"] == 40_551_040


def test_cifar_depth_symbol():
    assert analyze(load("resnet20", values={"n": 9})).totals["params"] == report("resnet56").totals["params"]
    assert analyze(load("resnet20", values={"n": 18})).totals["macs"] == report("resnet110").totals["macs"]


def test_preact_resnet164():
    # He et al. 2016, "Identity Mappings in Deep Residual Networks", CIFAR-10 comparison table: ResNet-164 1.7M params
    r = report("preact-resnet164")
    assert r.totals["params"] == 1_703_258
    assert round(r.totals["params"] / 1e6, 1) == 1.7
    assert r.totals["macs"] == 244_500_992
    assert r.row("layer3.17.add").shape == (256, 8, 8)
    # 9n+2 = 164 weighted layers, plus the 3 projection shortcuts
    assert sum(1 for row in r.rows if row.type in ("conv", "linear")) == 164 + 3


def test_preact_resnet1001():
    # He et al. 2016, "Identity Mappings in Deep Residual Networks", CIFAR-10 comparison table:
    # ResNet-1001 10.2M params.
    # With BN's scale and shift the count is 10,327,706 (10.3M); the printed 10.2M is the conv and
    # fc weights alone: 10,327,706 - 149,216 BN params = 10,178,490.
    r = report("preact-resnet1001")
    assert r.totals["params"] == 10_327_706
    assert bn_params(r) == 149_216
    assert round((r.totals["params"] - bn_params(r)) / 1e6, 1) == 10.2
    assert round(r.totals["params"] / 1e6, 1) == 10.3
    # per unit: stage 1 (64-16-16-64), stage 2 (128-32-32-128), stage 3 (256-64-64-256), 111 each
    per_n = (1024 + 2304 + 1024 + 192) + (4096 + 9216 + 4096 + 384) + (16384 + 36864 + 16384 + 768)
    assert per_n == 92_736
    # + 3 projections (16*64 + 64*128 + 128*256), the stem 3*16*9, final BN 2*256, fc 256*10+10;
    # the first unit of each stage sees 16, 64, 128 input channels instead of 64, 128, 256: its
    # first BN is 2*(16 + 64 + 128) instead of 2*(64 + 128 + 256) and its conv1 is
    # 16*16 + 64*32 + 128*64 instead of 64*16 + 128*32 + 256*64
    fixed = 41_984 + 432 + 512 + 2570
    fixed += 2 * (16 + 64 + 128) - 2 * (64 + 128 + 256)
    fixed += (256 + 2048 + 8192) - (1024 + 4096 + 16384)
    assert 111 * per_n + fixed == r.totals["params"]


@pytest.mark.parametrize(
    "name, params, printed",
    # Zagoruyko & Komodakis 2016, "Wide Residual Networks", CIFAR results table: WRN-28-10 36.5M, WRN-40-4 8.9M params
    [("wrn-28-10", 36_479_194, 36.5), ("wrn-40-4", 8_949_210, 8.9)],
)
def test_wide_resnets(name, params, printed):
    r = report(name)
    assert r.totals["params"] == params
    assert round(r.totals["params"] / 1e6, 1) == printed
    assert r.output == (10,)


def test_wrn_28_10_shapes_and_macs():
    r = report("wrn-28-10")
    assert r.row("conv2.3.add").shape == (160, 32, 32)
    assert r.row("conv3.0.add").shape == (320, 16, 16)
    assert r.row("conv4.3.add").shape == (640, 8, 8)
    assert r.totals["macs"] == 5_243_328_768
    # depth 6N+4 = 28 conv layers: the stem, 3 groups x N=4 blocks x 2, and 3 projection 1x1 convs
    assert sum(1 for row in r.rows if row.type == "conv") == 1 + 3 * 4 * 2 + 3


# --------------------------------------------------------------------------- FractalNet


def test_fractalnet_hand_count():
    # Larsson et al. 2017 (FractalNet), CIFAR, Table 1's 20-layer network: 5 blocks of C = 3
    # columns with 1, 2 and 4 3x3 convs (7 per block); 3 of them read the block's input.
    r = report("fractalnet")
    assert sum(1 for row in r.rows if row.type == "conv") == 35
    assert sum(1 for row in r.rows if row.type == "mean") == 10  # a 2-way and a 3-way join per block
    assert [len(row.inputs) for row in r.rows if row.type == "mean"][:2] == [2, 3]
    chans = [(3, 64), (64, 128), (128, 256), (256, 512), (512, 512)]
    convs = sum(3 * cin * c * 9 + 4 * c * c * 9 for cin, c in chans)
    assert convs == 33_698_880
    bn = 2 * 7 * (64 + 128 + 256 + 512 + 512)
    fc = 512 * 10 + 10
    assert r.totals["params"] == convs + bn + fc == 33_724_618
    # Table 1 prints 38.6M for this network; the stated layers give 33.7M (see the spec's notes)
    assert round(r.totals["params"] / 1e6, 1) == 33.7
    sizes = [32, 16, 8, 4, 2]
    macs = sum((3 * cin * c * 9 + 4 * c * c * 9) * s * s for (cin, c), s in zip(chans, sizes)) + 5120
    assert r.totals["macs"] == macs
    assert r.row("pool5").shape == (512, 1, 1)
    assert r.output == (10,)
    # deepest path: 4 convs per block; after block 1 the receptive field is 1 + 4 * 2
    assert r.row("block1.join2").rf[0].size == 1 + 4 * 2


# --------------------------------------------------------------------------- hand-worked cases


def test_residual_add_hand_worked():
    r = spec(
        """
input: [4, 8, 8]
layers:
  - add:
      residual:
        - {conv: {out: 4, kernel: 3, padding: 1, bias: false}, name: conv}
        - {bn: {}, name: bn}
      shortcut: identity
    name: sum
  - {add: {main: [{conv: {out: 8, kernel: 3, stride: 2, padding: 1}, name: conv}],
           shortcut: [{conv: {out: 8, kernel: 1, stride: 2, bias: false}, name: proj}]},
     name: down}
"""
    )
    # identity block: conv 4*4*3*3 = 144 weights, BN 2*4 = 8; MACs 144 per output pixel * 8*8
    assert r.row("residual.conv").params == 144
    assert r.row("sum").shape == (4, 8, 8)
    assert r.row("sum").params == 0 and r.row("sum").macs == 0
    assert r.row("sum").inputs == ["residual.bn", "input"]
    # projection block: (8*4*3*3 + 8 bias) + 8*4 weights; output 8 x 4 x 4;
    # MACs (288 + 32) per output pixel * 16 pixels
    assert r.row("down").shape == (8, 4, 4)
    assert r.totals["params"] == 144 + 8 + (288 + 8) + 32 == 480
    assert r.totals["macs"] == 144 * 64 + (288 + 32) * 16 == 14_336
    # receptive field: the add takes the larger branch (3x3 conv: 3; the identity: 1)
    assert r.row("sum").rf[0].size == 3
    # then 3x3/2 on top: 3 + (3 - 1) * 1 = 5
    assert r.row("down").rf[0].size == 5


def test_pad_channels_hand_worked():
    r = spec(
        """
input: [16, 32, 32]
layers:
  - {pad_channels: {out: 32, stride: 2}, name: a}
  - {pad_channels: {out: 64, stride: 2}, name: b}
"""
    )
    # every 2nd row and column: 32 -> 16 -> 8; 16 -> 32 -> 64 channels, no weights, no MACs
    assert r.row("a").shape == (32, 16, 16)
    assert r.row("b").shape == (64, 8, 8)
    assert r.totals["params"] == 0 and r.totals["macs"] == 0
    odd = spec("input: [8, 7, 7]\nlayers:\n  - {pad_channels: {out: 16, stride: 2}, name: p}\n")
    assert odd.row("p").shape == (16, 4, 4)  # rows 0, 2, 4, 6: ceil(7 / 2)


def test_option_a_block_hand_worked():
    # ResNet-20's layer2.0: 16 -> 32 channels, stride 2, 32x32 -> 16x16, option A shortcut.
    # conv1 32*16*3*3 = 4,608 weights at 16*16 = 256 pixels -> 1,179,648 MACs
    # conv2 32*32*3*3 = 9,216 weights at 256 pixels        -> 2,359,296 MACs
    # two BNs 2*32 + 2*32 = 128; the shortcut: 0
    r = report("resnet20")
    rows = [row for row in r.rows if row.name.startswith("layer2.0.")]
    assert sum(row.params for row in rows) == 4608 + 9216 + 128 == 13_952
    assert sum(row.macs for row in rows) == 1_179_648 + 2_359_296
    assert r.row("layer2.0.shortcut.pad").shape == (32, 16, 16)
    assert r.row("layer2.0.shortcut.pad").params == 0
    assert r.row("layer2.0.add").inputs == ["layer2.0.residual.bn2", "layer2.0.shortcut.pad"]


# --------------------------------------------------------------------------- errors


def _add_error(residual):
    text = f"""
input: [4, 8, 8]
layers:
  - add:
      residual: [{residual}]
      shortcut: identity
    name: sum
"""
    with pytest.raises(SpecError) as info:
        spec(text)
    return str(info.value)


def test_add_channel_mismatch_error():
    text = _add_error("{conv: {out: 8, kernel: 3, padding: 1}}")
    assert "'residual'" in text and "'shortcut'" in text  # names both branches
    assert "8x8x8" in text and "4x8x8" in text  # and their shapes
    assert "sum" in text  # and the layer
    assert "1x1 conv" in text  # suggests a projection


def test_add_spatial_mismatch_error():
    text = _add_error("{conv: {out: 4, kernel: 3, stride: 2, padding: 1}}")
    assert "'residual'" in text and "'shortcut'" in text
    assert "4x4x4" in text and "4x8x8" in text
    assert "stride" in text


def test_add_spatial_mismatch_suggests_projection():
    text = _add_error("{conv: {out: 4, kernel: 3, stride: 2, padding: 1}}")
    assert "projection" in text
