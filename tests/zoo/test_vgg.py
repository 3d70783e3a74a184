"""VGG: every number from the layers, by hand arithmetic, and torchvision's published figures."""

import pytest

from archcalc import analyze, load
from conftest import REFERENCE

# conv params = C_out * C_in * 3 * 3 + C_out (bias); MACs = C_out * H * W * C_in * 9
VGG16_CONVS = [  # name, C_in, C_out, output side
    ("conv1_1", 3, 64, 224), ("conv1_2", 64, 64, 224),
    ("conv2_1", 64, 128, 112), ("conv2_2", 128, 128, 112),
    ("conv3_1", 128, 256, 56), ("conv3_2", 256, 256, 56), ("conv3_3", 256, 256, 56),
    ("conv4_1", 256, 512, 28), ("conv4_2", 512, 512, 28), ("conv4_3", 512, 512, 28),
    ("conv5_1", 512, 512, 14), ("conv5_2", 512, 512, 14), ("conv5_3", 512, 512, 14),
]


@pytest.fixture(scope="module")
def vgg16():
    return analyze(load("vgg16"))


@pytest.mark.parametrize("name,cin,cout,side", VGG16_CONVS)
def test_vgg16_conv_rows(vgg16, name, cin, cout, side):
    row = vgg16.row(name)
    assert row.shape == (cout, side, side)
    assert row.params == cout * cin * 9 + cout
    assert row.macs == cout * side * side * cin * 9
    assert row.values == cout * side * side


def test_vgg16_hand_totals(vgg16):
    conv_params = sum(co * ci * 9 + co for _, ci, co, _ in VGG16_CONVS)
    fc_params = (25088 * 4096 + 4096) + (4096 * 4096 + 4096) + (4096 * 1000 + 1000)
    assert conv_params == 14_714_688
    assert vgg16.totals["params"] == conv_params + fc_params == 138_357_544
    conv_macs = sum(co * s * s * ci * 9 for _, ci, co, s in VGG16_CONVS)
    fc_macs = 25088 * 4096 + 4096 * 4096 + 4096 * 1000
    assert vgg16.totals["macs"] == conv_macs + fc_macs == 15_470_264_320
    # torchvision.models.VGG16_Weights.IMAGENET1K_V1.meta: num_params 138357544, _ops 15.47 (GMACs)
    assert REFERENCE["vgg16"]["meta_num_params"] == 138_357_544
    assert round(vgg16.totals["macs"] / 1e9, 3) == REFERENCE["vgg16"]["meta_gmacs"] == 15.47


def test_vgg16_receptive_fields(vgg16):
    # r' = r + (k-1) j; j' = j s; p' = p + pad j.  conv5_3: 13 3x3 convs and 4 pools in
    # r = 1 + 2*(2*1 + 2*2 + 3*4 + 3*8 + 3*16) + 1*(1 + 2 + 4 + 8) = 1 + 180 + 15 = 196
    rf = vgg16.row("conv5_3").rf[0]
    assert (rf.size, rf.stride, rf.padding) == (196, 16, 90)
    # pool5 adds (2-1)*16; effective padding 1*(2*1 + 2*2 + 3*4 + 3*8 + 3*16) = 90
    rf = vgg16.row("pool5").rf[0]
    assert (rf.size, rf.stride, rf.padding) == (212, 32, 90)
    assert vgg16.row("pool5").rf[1] == vgg16.row("pool5").rf[0]
    # fc6 sees the whole 7x7 map: 212 + 6*32
    assert vgg16.row("fc6").rf[0].size == 404


def test_vgg16_activations(vgg16):
    # input + each conv output + each pool output + the three fc outputs; in-place ReLUs,
    # the identity adaptive pool (7x7 -> 7x7), flatten (a view) and eval dropout add nothing
    convs = sum(co * s * s for _, _, co, s in VGG16_CONVS)
    pools = 64 * 112**2 + 128 * 56**2 + 256 * 28**2 + 512 * 14**2 + 512 * 7**2
    total = 3 * 224 * 224 + convs + pools + 4096 + 4096 + 1000
    assert vgg16.totals["activations"] == total == 15_237_608
    assert vgg16.totals["activation_bytes"] == 4 * total == 60_950_432
    assert vgg16.row("relu1_1").values == 0
    assert vgg16.row("adaptive_avgpool1").values == 0


def test_vgg16_dtype_and_batch():
    r = analyze(load("vgg16"), dtype="fp16", batch=8)
    assert r.totals["activation_bytes"] == 2 * 15_237_608
    assert r.totals["batch_activation_bytes"] == 8 * 2 * 15_237_608


@pytest.mark.parametrize("name", ["vgg11", "vgg11_bn", "vgg13", "vgg13_bn", "vgg16", "vgg16_bn", "vgg19", "vgg19_bn"])
def test_vgg_family_matches_torchvision(name):
    ref = REFERENCE[name]
    t = analyze(load(name)).totals
    assert t["params"] == ref["params"] == ref["meta_num_params"]
    assert t["macs"] == ref["macs"]
    assert round(t["macs"] / 1e9, 3) == ref["meta_gmacs"]
    assert t["buffers"] == ref["buffers"]


def test_vgg_bn_adds_two_params_and_two_buffers_per_channel():
    plain = analyze(load("vgg11")).totals
    bn = analyze(load("vgg11_bn")).totals
    channels = 64 + 128 + 256 * 2 + 512 * 2 + 512 * 2  # configuration A: 8 convs
    assert bn["params"] - plain["params"] == 2 * channels == 5504
    assert bn["buffers"] == 2 * channels
