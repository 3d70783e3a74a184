"""AlexNet (torchvision's) and the 2012 paper network, row by row."""

import pytest

from archcalc import analyze, load
from conftest import REFERENCE


@pytest.fixture(scope="module")
def tv():
    return analyze(load("alexnet"))


def test_torchvision_alexnet_rows(tv):
    # side = floor((I + 2P - K) / S) + 1
    rows = {
        "conv1": ((64, 55, 55), 64 * 3 * 11 * 11 + 64, 64 * 55 * 55 * 3 * 121),  # (224+4-11)//4+1 = 55
        "pool1": ((64, 27, 27), 0, 0),  # (55-3)//2+1 = 27
        "conv2": ((192, 27, 27), 192 * 64 * 25 + 192, 192 * 27 * 27 * 64 * 25),
        "pool2": ((192, 13, 13), 0, 0),
        "conv3": ((384, 13, 13), 384 * 192 * 9 + 384, 384 * 169 * 192 * 9),
        "conv4": ((256, 13, 13), 256 * 384 * 9 + 256, 256 * 169 * 384 * 9),
        "conv5": ((256, 13, 13), 256 * 256 * 9 + 256, 256 * 169 * 256 * 9),
        "pool5": ((256, 6, 6), 0, 0),
        "fc6": ((4096,), 9216 * 4096 + 4096, 9216 * 4096),
        "fc7": ((4096,), 4096 * 4096 + 4096, 4096 * 4096),
        "fc8": ((1000,), 4096 * 1000 + 1000, 4096 * 1000),
    }
    for name, (shape, params, macs) in rows.items():
        row = tv.row(name)
        assert (row.shape, row.params, row.macs) == (shape, params, macs), name
    assert tv.totals["params"] == sum(p for _, p, _ in rows.values()) == 61_100_840
    assert tv.totals["macs"] == sum(m for _, _, m in rows.values()) == 714_188_480
    # torchvision AlexNet_Weights.IMAGENET1K_V1.meta: num_params 61100840, _ops 0.714
    assert REFERENCE["alexnet"]["meta_num_params"] == tv.totals["params"]
    assert round(tv.totals["macs"] / 1e9, 3) == REFERENCE["alexnet"]["meta_gmacs"]
    assert tv.totals["macs"] == REFERENCE["alexnet"]["macs"]


def test_torchvision_alexnet_has_no_tiling_warning(tv):
    # (224 + 2 + 2 - 11) % 4 == 1 column unused, but it is padding, not image
    assert tv.warnings == []


def test_alexnet_paper_counts():
    r = analyze(load("alexnet-paper"))
    assert r.input == (3, 227, 227)
    expect = {
        "conv1": ((96, 55, 55), 96 * 3 * 121 + 96),  # (227 - 11) // 4 + 1 = 55
        "conv2": ((256, 27, 27), 256 * 48 * 25 + 256),  # two groups: each filter sees 96/2 channels
        "conv3": ((384, 13, 13), 384 * 256 * 9 + 384),  # across both GPUs
        "conv4": ((384, 13, 13), 384 * 192 * 9 + 384),
        "conv5": ((256, 13, 13), 256 * 192 * 9 + 256),
        "fc6": ((4096,), 6 * 6 * 256 * 4096 + 4096),
        "fc7": ((4096,), 4096 * 4096 + 4096),
        "fc8": ((1000,), 4096 * 1000 + 1000),
    }
    for name, (shape, params) in expect.items():
        assert (r.row(name).shape, r.row(name).params) == (shape, params), name
    assert r.totals["params"] == sum(p for _, p in expect.values()) == 60_965_224
    assert r.row("conv2").macs == 256 * 27 * 27 * 48 * 25
    assert r.warnings == []


def test_alexnet_paper_on_224_warns_about_tiling():
    r = analyze(load("alexnet-paper", input_override=(3, 224, 224)))
    # (224 - 11) = 213 = 4 * 53 + 1: one row and one column of the image are never seen
    assert r.row("conv1").shape == (96, 54, 54)
    assert r.warnings[0].code == "tiling" and r.warnings[0].get("lost_rows") == 1
    assert str(r.warnings[0]) == (
        "conv1: 11x11/4 window does not tile its 224x224 input (padding 0+0, 0+0): "
        "the last 1 row and 1 column of real input are never seen"
    )


def test_alexnet_paper_warning_in_cli(cli):
    code, out, err = cli("summary", "alexnet-paper", "--input", "3x224x224")
    assert code == 0
    assert "warning" in out and "conv1: 11x11/4 window does not tile" in out


def test_zfnet_matches_figure_sizes():
    r = analyze(load("zfnet"))
    sides = [r.row(n).shape[1] for n in ("conv1", "pool1", "conv2", "pool2", "conv3", "conv4", "conv5", "pool5")]
    assert sides == [110, 55, 26, 13, 13, 13, 13, 6]  # Zeiler & Fergus 2013, Figure 3
    # 96*3*49+96 + 256*96*25+256 + 384*256*9+384 + 384*384*9+384 + 256*384*9+256
    # + 9216*4096+4096 + 4096*4096+4096 + 4096*1000+1000
    assert r.totals["params"] == 14_208 + 614_656 + 885_120 + 1_327_488 + 884_992 + 37_752_832 + 16_781_312 + 4_097_000
    assert r.totals["params"] == 62_357_608
