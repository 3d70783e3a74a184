"""Issue 8's zoo: torchvision's modern CNN classifiers, its segmentation nets, U-Net and LeNet-5.

Every zoo spec named like a model in tests/reference/torchvision.json is asserted equal to it,
to the unit: parameters, BN/LN buffers (running statistics; num_batches_tracked excluded) and
MACs, measured by tools/torchvision_reference.py on torchvision 0.29.1 (FlopCounterMode FLOPs /
2, eval mode, one image at the weights' crop size; 520x520 for segmentation, default heads).
The tests are parametrised over the zoo itself (plain files and family members), so a new spec
named like a reference model is covered without touching this file. ``test_verify.py`` runs
``verify`` (meta device) on every zoo name, these included.
"""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path

import pytest

from archcalc import analyze, load
from archcalc.spec import zoo

REFERENCE = json.loads((Path(__file__).parents[1] / "reference" / "torchvision.json").read_text())["models"]

# issue 8, "Zoo, exact to torchvision 0.29.1"
CLASSIFIERS = (
    ["convnext_tiny", "convnext_small", "convnext_base", "convnext_large"]
    + [f"efficientnet_b{i}" for i in range(8)]
    + ["efficientnet_v2_s", "efficientnet_v2_m", "efficientnet_v2_l"]
    + ["mnasnet0_5", "mnasnet0_75", "mnasnet1_0", "mnasnet1_3", "mobilenet_v3_small", "mobilenet_v3_large"]
    + [f"regnet_x_{s}" for s in ("400mf", "800mf", "1_6gf", "3_2gf", "8gf", "16gf", "32gf")]
    + [f"regnet_y_{s}" for s in ("400mf", "800mf", "1_6gf", "3_2gf", "8gf", "16gf", "32gf", "128gf")]
    + ["shufflenet_v2_x0_5", "shufflenet_v2_x1_0", "shufflenet_v2_x1_5", "shufflenet_v2_x2_0", "squeezenet1_1"]
)
SEGMENTATION = [
    "fcn_resnet50", "fcn_resnet101", "deeplabv3_resnet50", "deeplabv3_resnet101",
    "deeplabv3_mobilenet_v3_large", "lraspp_mobilenet_v3_large",
]  # fmt: skip

# The reference table written out (params, buffers, MACs), so that a regenerated reference file
# cannot move silently.
SPELLED_OUT = {
    "convnext_base": (88_591_464, 0, 15_354_729_472),
    "convnext_large": (197_767_336, 0, 34_361_433_600),
    "convnext_small": (50_223_688, 0, 8_683_712_256),
    "convnext_tiny": (28_589_128, 0, 4_455_531_264),
    "deeplabv3_mobilenet_v3_large": (11_025_477, 27_984, 10_436_350_688),
    "deeplabv3_resnet101": (58_630_997, 108_928, 248_752_300_288),
    "deeplabv3_resnet50": (39_638_869, 56_704, 168_731_205_888),
    "efficientnet_b0": (5_288_548, 42_016, 385_814_752),
    "efficientnet_b1": (7_794_184, 62_048, 686_802_832),
    "efficientnet_b2": (9_109_994, 67_568, 1_087_529_456),
    "efficientnet_b3": (12_233_232, 87_296, 1_827_141_392),
    "efficientnet_b4": (19_341_616, 125_200, 4_393_771_024),
    "efficientnet_b5": (30_389_784, 172_736, 10_266_384_752),
    "efficientnet_b6": (43_040_704, 224_432, 19_067_593_536),
    "efficientnet_b7": (66_347_960, 310_720, 37_745_884_192),
    "efficientnet_v2_l": (118_515_272, 512_576, 56_079_699_008),
    "efficientnet_v2_m": (54_139_356, 292_032, 24_582_460_384),
    "efficientnet_v2_s": (21_458_488, 153_872, 8_365_617_152),
    "fcn_resnet101": (51_949_141, 106_368, 222_746_867_200),
    "fcn_resnet50": (32_957_013, 54_144, 142_725_772_800),
    "lraspp_mobilenet_v3_large": (3_221_538, 24_656, 2_086_219_688),
    "mnasnet0_5": (2_218_512, 20_624, 104_455_968),
    "mnasnet0_75": (3_170_208, 29_808, 215_493_104),
    "mnasnet1_0": (4_383_312, 37_920, 314_415_872),
    "mnasnet1_3": (6_282_256, 48_816, 526_362_432),
    "mobilenet_v3_large": (5_483_032, 24_400, 216_589_760),
    "mobilenet_v3_small": (2_542_856, 12_112, 56_510_400),
    "regnet_x_16gf": (54_278_536, 111_168, 15_940_755_456),
    "regnet_x_1_6gf": (9_190_136, 43_504, 1_602_849_792),
    "regnet_x_32gf": (107_811_560, 162_016, 31_735_929_792),
    "regnet_x_3_2gf": (15_296_552, 62_560, 3_176_621_952),
    "regnet_x_400mf": (5_495_976, 37_856, 413_812_608),
    "regnet_x_800mf": (7_259_656, 37_312, 799_699_712),
    "regnet_x_8gf": (39_572_648, 90_464, 7_995_132_416),
    "regnet_y_128gf": (644_812_894, 415_072, 374_570_006_400),
    "regnet_y_16gf": (83_590_140, 122_816, 15_911_510_272),
    "regnet_y_1_6gf": (11_202_430, 52_672, 1_612_076_160),
    "regnet_y_32gf": (145_046_770, 158_288, 32_279_552_832),
    "regnet_y_3_2gf": (19_436_338, 66_160, 3_176_482_752),
    "regnet_y_400mf": (4_344_144, 27_152, 401_842_848),
    "regnet_y_800mf": (6_432_512, 30_432, 833_856_256),
    "regnet_y_8gf": (39_381_472, 86_528, 8_473_070_592),
    "shufflenet_v2_x0_5": (1_366_792, 7_952, 40_476_448),
    "shufflenet_v2_x1_0": (2_278_604, 16_180, 144_907_992),
    "shufflenet_v2_x1_5": (3_503_624, 23_440, 295_759_392),
    "shufflenet_v2_x2_0": (7_393_996, 33_716, 583_253_464),
    "squeezenet1_1": (1_235_496, 0, 349_151_936),
}

IN_ZOO = sorted(set(zoo.names()) & set(REFERENCE))


@lru_cache(maxsize=None)
def report(name):
    return analyze(load(name))


# --------------------------------------------------------------------------- the reference itself


def test_reference_covers_issue_8():
    assert sorted(SPELLED_OUT) == sorted(CLASSIFIERS + SEGMENTATION)
    for name, (params, buffers, macs) in SPELLED_OUT.items():
        ref = REFERENCE[name]
        assert (ref["params"], ref["buffers"], ref["macs"]) == (params, buffers, macs), name


def test_issue_8_models_are_in_the_zoo():
    missing = [n for n in CLASSIFIERS + SEGMENTATION + ["unet", "lenet5"] if n not in zoo.names()]
    assert not missing


@pytest.mark.parametrize("name", CLASSIFIERS)
def test_reference_agrees_with_published_metadata(name):
    # what tools/torchvision_reference.py measured against what torchvision publishes
    ref = REFERENCE[name]
    assert ref["params"] == ref["meta_num_params"]
    assert round(ref["macs"] / 1e9, 3) == ref["meta_gmacs"]


def fcn_head(c_in, classes=21):
    # torchvision FCNHead(c_in, classes): 3x3 conv c_in -> c_in/4 (no bias), BN, ReLU, dropout,
    # 1x1 conv c_in/4 -> classes (with bias)
    mid = c_in // 4
    return c_in * mid * 9 + 2 * mid + mid * classes + classes


@pytest.mark.parametrize(
    "name, aux_in",
    # the auxiliary classifier taps layer3 of a ResNet (1024 channels) and the last stride-8
    # block of MobileNetV3-Large (40 channels); LR-ASPP has none
    [("fcn_resnet50", 1024), ("fcn_resnet101", 1024), ("deeplabv3_resnet50", 1024),
     ("deeplabv3_resnet101", 1024), ("deeplabv3_mobilenet_v3_large", 40)],
)  # fmt: skip
def test_segmentation_published_params_include_the_aux_head(name, aux_in):
    # torchvision's published num_params is the pretrained model's, with its aux classifier;
    # the default model (aux_loss unset) has none: the difference is exactly one FCNHead
    ref = REFERENCE[name]
    assert ref["params_with_aux"] == ref["meta_num_params"]
    assert ref["meta_num_params"] - ref["params"] == fcn_head(aux_in)
    assert fcn_head(1024) == 2_365_205 and fcn_head(40) == 3_851


# --------------------------------------------------------------------------- every spec, exactly


@pytest.mark.parametrize("name", IN_ZOO)
def test_spec_equals_torchvision(name):
    ref = REFERENCE[name]
    r = report(name)
    assert tuple(r.input) == tuple(ref["input"])
    assert r.totals["params"] == ref["params"]
    assert r.totals["buffers"] == ref["buffers"]
    assert r.totals["macs"] == ref["macs"]
    if name in SEGMENTATION:
        assert r.output == (21, 520, 520)  # per-pixel logits, upsampled to the input
    else:
        assert r.output == (1000,)


@pytest.mark.parametrize("name", sorted(set(IN_ZOO) & set(CLASSIFIERS)))
def test_spec_rounds_to_published_metadata(name):
    ref = REFERENCE[name]
    t = report(name).totals
    assert t["params"] == ref["meta_num_params"]
    assert round(t["macs"] / 1e9, 3) == ref["meta_gmacs"]


# --------------------------------------------------------------------------- families


FAMILIES = {
    # family file -> its members (issue 8: one spec per architecture, `variants:`)
    "convnext": ["convnext_base", "convnext_large", "convnext_small", "convnext_tiny"],
    "efficientnet": [f"efficientnet_b{i}" for i in range(8)],
    "efficientnet_v2": ["efficientnet_v2_l", "efficientnet_v2_m"],
    "mnasnet": ["mnasnet0_5", "mnasnet0_75", "mnasnet1_0", "mnasnet1_3"],
    "regnet_x": sorted(f"regnet_x_{s}" for s in ("400mf", "800mf", "1_6gf", "3_2gf", "8gf", "16gf", "32gf")),
    "regnet_y": sorted(f"regnet_y_{s}" for s in ("400mf", "800mf", "1_6gf", "3_2gf", "8gf", "16gf", "32gf", "128gf")),
    "shufflenet_v2": [f"shufflenet_v2_x{w}" for w in ("0_5", "1_0", "1_5", "2_0")],
    "fcn_resnet": ["fcn_resnet101", "fcn_resnet50"],
    "deeplabv3_resnet": ["deeplabv3_resnet101", "deeplabv3_resnet50"],
}


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_family_members(family):
    assert zoo.families()[family] == FAMILIES[family]
    for member in FAMILIES[family]:
        assert member in zoo.names()
        assert zoo.resolve(member).stem == family
        assert report(member).name == member


def test_efficientnet_b3_from_the_family(cli):
    code, out, err = cli("summary", "efficientnet_b3")
    assert code == 0, err
    assert "efficientnet_b3" in out and "EfficientNet-B3" in out
    assert "12,233,232" in out and "1,827,141,392" in out and "input 3x300x300" in out


def test_family_member_json(cli):
    # a member's symbols are exact rationals (width 1.2 is 6/5); the JSON must still be written
    code, out, err = cli("summary", "efficientnet_b3", "-f", "json")
    assert code == 0, err
    data = json.loads(out)
    assert data["totals"]["params"] == 12_233_232
    assert data["totals"]["macs"] == 1_827_141_392
    assert data["input"] == [3, 300, 300]


def test_list_shows_every_member(cli):
    code, out, err = cli("list")
    assert code == 0, err
    for members in FAMILIES.values():
        for member in members:
            assert f" {member} " in out, member
    # each member with its own numbers, not the family's defaults
    row = next(line for line in out.splitlines() if " efficientnet_b7 " in line)
    assert "66,347,960" in row and "3x600x600" in row


# --------------------------------------------------------------------------- the rounding rules


def make_divisible(v, d=8):
    # torchvision's _make_divisible / _round_to_multiple_of, with the same float arithmetic
    new = max(d, int(v + d / 2) // d * d)
    return new + d if new < 0.9 * v else new


@pytest.mark.parametrize("alpha, name", [(0.5, "mnasnet0_5"), (0.75, "mnasnet0_75"), (1.0, "mnasnet1_0"), (1.3, "mnasnet1_3")])
def test_mnasnet_depths(alpha, name):
    depths = [make_divisible(c * alpha) for c in (32, 16, 24, 40, 80, 96, 192, 320)]
    assert depths == {
        0.5: [16, 8, 16, 24, 40, 48, 96, 160],
        0.75: [24, 16, 24, 32, 64, 72, 144, 240],  # 24 * 0.75 = 18 -> 16 is below 90%: 24
        1.0: [32, 16, 24, 40, 80, 96, 192, 320],
        1.3: [40, 24, 32, 56, 104, 128, 248, 416],
    }[alpha]
    r = report(name)
    assert r.row("stem_conv").shape[0] == depths[0]
    assert r.row("sep_pw").shape[0] == depths[1]
    for i in range(1, 7):
        assert r.row(f"stack{i}.0.conv3").shape[0] == depths[i + 1]


def test_efficientnet_b3_widths_and_depths():
    r = report("efficientnet_b3")  # width 1.2, depth 1.4, 300x300
    assert make_divisible(32 * 1.2) == 40 and make_divisible(16 * 1.2) == 24  # 19.2 -> 16 < 17.28 -> 24
    assert r.row("features.0.0").shape == (40, 150, 150)
    assert r.row("features.1.0.block.2.0").shape == (24, 150, 150)
    assert r.row("features.8.0").shape == (4 * 384, 10, 10)  # 320 * 1.2 = 384
    # stage depths ceil(n * 1.4) for n = 1, 2, 2, 3, 3, 4, 1: 2, 3, 3, 5, 5, 6, 2 (26 blocks)
    names = {row.name for row in r.rows}
    for stage, blocks in enumerate([2, 3, 3, 5, 5, 6, 2], start=1):
        assert f"features.{stage}.{blocks - 1}.add" in names
        assert f"features.{stage}.{blocks}.add" not in names
    # stochastic depth 0.2 * index / 26: features.1.1 is block 1, features.7.1 block 25
    assert r.row("features.1.1.block.stochastic_depth").params == 0
    net = load("efficientnet_b3")
    p = {n.name: n.args["p"] for n in net.nodes if n.type == "stochastic_depth"}
    assert p["features.1.1.block.stochastic_depth"] == pytest.approx(0.2 * 1 / 26)
    assert p["features.7.1.block.stochastic_depth"] == pytest.approx(0.2 * 25 / 26)


def test_regnet_groups_and_se():
    r = report("regnet_x_8gf")  # stage 1: width 80, group width 80 (one group); stage 2: 240 / 120
    assert r.row("block1.block1-0.f.b.0").params == 80 * 80 * 9
    assert r.row("block2.block2-0.f.b.0").params == 240 * 120 * 9
    y = report("regnet_y_400mf")  # SE to round(w_in / 4): the stem's 32 -> 8, then 48 -> 12
    assert y.row("block1.block1-0.f.scale.fc1").shape == (8, 1, 1)
    assert y.row("block2.block2-1.f.scale.fc1").shape == (26, 1, 1)  # round(104 / 4)
    assert y.row("block1.block1-0.f.se").shape == (48, 56, 56)
    assert report("regnet_y_128gf").input == (3, 384, 384)


def test_shufflenet_split_and_shuffle():
    r = report("shufflenet_v2_x1_0")
    assert r.row("stage2.1.x1.chunk").shape == (58, 28, 28)
    assert r.row("stage2.1.branch2.chunk").shape == (58, 28, 28)
    assert r.row("stage2.1.branch2.0").params == 58 * 58  # 1x1 on half the channels
    assert r.row("stage2.1.shuffle").shape == (116, 28, 28)
    assert r.row("stage2.0.branch1.0").params == 24 * 9  # depthwise 3x3 on the 24 input channels


def test_convnext_block_counts():
    r = report("convnext_tiny")
    assert r.row("features.1.0.block.2").params == 2 * 96  # LayerNorm: weight and bias, no buffers
    assert r.row("features.1.0.block.layer_scale").params == 96
    assert r.row("features.1.0.block.3").params == 96 * 384 + 384  # Linear(96, 384)
    assert r.row("features.1.0.block.3").macs == 56 * 56 * 96 * 384
    assert r.totals["buffers"] == 0


def test_mobilenet_v3_se():
    r = report("mobilenet_v3_large")
    assert make_divisible(72 // 4) == 24  # 18 -> 16 is below 90%: 24
    assert r.row("features.4.block.scale.fc1").params == 72 * 24 + 24
    assert r.row("features.4.block.se").shape == (72, 28, 28)
    assert r.row("features.4.block.se").macs == 0  # the gate's product is not a MAC


# --------------------------------------------------------------------------- segmentation


@pytest.mark.parametrize("name, features", [
    ("fcn_resnet50", "backbone.layer4.2.relu"), ("deeplabv3_resnet101", "backbone.layer4.2.relu"),
    ("deeplabv3_mobilenet_v3_large", "backbone.16.2"), ("lraspp_mobilenet_v3_large", "backbone.16.2"),
])  # fmt: skip
def test_segmentation_output_stride(name, features):
    r = report(name)
    # ResNet backbones, dilated in layer3 and layer4: stride 8 (ceil(520 / 8) = 65);
    # MobileNetV3, dilated in its last stage: stride 16 (33)
    size = 33 if "mobilenet" in name else 65
    assert r.row(features).shape[1:] == (size, size)
    assert r.row("interpolate").shape == (21, 520, 520)
    assert r.row("interpolate").macs == 0 and r.row("interpolate").params == 0


def test_dilated_resnet_convs():
    r = report("fcn_resnet50")
    # layer3: dilation 1 in its first block, then 2; layer4: 2, then 4 (padding = dilation)
    assert r.row("backbone.layer3.0.residual.conv2").rf[0].size < r.row("backbone.layer3.1.residual.conv2").rf[0].size
    assert r.row("backbone.layer4.0.residual.conv2").shape == (512, 65, 65)
    assert r.row("classifier.0").params == 2048 * 512 * 9
    assert r.row("classifier.4").params == 512 * 21 + 21


def test_lraspp_head():
    r = report("lraspp_mobilenet_v3_large")
    assert r.row("classifier.mul").shape == (128, 33, 33)
    assert r.row("classifier.interpolate").shape == (128, 65, 65)  # to the low features' size
    assert r.row("classifier.low_classifier.conv").params == 40 * 21 + 21
    assert r.row("classifier.high_classifier.conv").params == 128 * 21 + 21


# --------------------------------------------------------------------------- U-Net


def test_unet_as_published():
    # Ronneberger et al. 2015, Figure 1: 572x572 -> 388x388, 2 classes; 31,030,658 params
    r = report("unet")
    assert r.input == (1, 572, 572)
    assert r.output == (2, 388, 388)

    def conv(cin, cout, k=3):
        return cin * cout * k * k + cout

    down = conv(1, 64) + conv(64, 64) + conv(64, 128) + conv(128, 128) + conv(128, 256) + conv(256, 256)
    down += conv(256, 512) + conv(512, 512) + conv(512, 1024) + conv(1024, 1024)
    up = 0
    for c in (512, 256, 128, 64):  # 2x2 up-conv 2c -> c, then 3x3 convs on 2c (concat) and c
        up += conv(2 * c, c, 2) + conv(2 * c, c) + conv(c, c)
    assert r.totals["params"] == down + up + conv(64, 2, 1) == 31_030_658
    assert r.totals["buffers"] == 0

    # MACs: every 3x3 conv at its (valid) output size; each up-conv as FlopCounterMode counts a
    # transposed conv: C_in x C_out x 2 x 2 per *input* position
    def c3(cin, cout, s):
        return cin * cout * 9 * s * s

    macs = c3(1, 64, 570) + c3(64, 64, 568) + c3(64, 128, 282) + c3(128, 128, 280) + c3(128, 256, 138)
    macs += c3(256, 256, 136) + c3(256, 512, 66) + c3(512, 512, 64) + c3(512, 1024, 30) + c3(1024, 1024, 28)
    for c, s_in, s1, s2 in ((512, 28, 54, 52), (256, 52, 102, 100), (128, 100, 198, 196), (64, 196, 390, 388)):
        macs += 2 * c * c * 4 * s_in * s_in + c3(2 * c, c, s1) + c3(c, c, s2)
    macs += 64 * 2 * 388 * 388
    assert r.totals["macs"] == macs == 150_428_424_448


def test_unet_crops():
    r = report("unet")
    for level, skip, size in ((4, 64, 56), (3, 136, 104), (2, 280, 200), (1, 568, 392)):
        assert r.row(f"down{level}.relu2").shape[1:] == (skip, skip)
        assert r.row(f"up{level}.upconv").shape[1:] == (size, size)  # (I - 1) * 2 + 2 = 2 I
        assert r.row(f"up{level}.skip.crop").shape[1:] == (size, size)
        assert r.row(f"up{level}.cat").shape[0] == 2 * r.row(f"up{level}.upconv").shape[0]


# --------------------------------------------------------------------------- LeNet-5


def test_lenet5_paper_figures():
    # LeCun et al. 1998, section II-B: trainable parameters and connections per layer
    r = report("lenet5")
    rows = r.rows

    def params(prefix):
        return sum(x.params for x in rows if x.name == prefix or x.name.startswith(prefix))

    assert params("C1") == 156 and r.row("C1").shape == (6, 28, 28)
    assert params("S2") == 12  # a coefficient and a bias per map (S2_sum has none)
    assert params("C3_map") == 1_516 and r.row("C3").shape == (16, 10, 10)
    assert params("S4") == 32
    assert params("C5") == 48_120 and r.row("C5").shape == (120, 1, 1)
    assert params("F6") == 10_164
    trainable = r.totals["params"] - r.row("output").params
    assert r.row("output").params == 840  # the RBF units' fixed codes: 10 x 84
    assert trainable == 156 + 12 + 1_516 + 32 + 48_120 + 10_164 == 60_000
    # connections = MACs + one bias term per output value
    assert r.row("C1").macs + 6 * 28 * 28 == 122_304
    c3_macs = sum(x.macs for x in rows if x.name.startswith("C3_map"))
    assert c3_macs + 16 * 10 * 10 == 151_600
    assert c3_macs == 10 * 10 * 25 * (6 * 3 + 6 * 4 + 3 * 4 + 6)  # Table I: 60 map connections
