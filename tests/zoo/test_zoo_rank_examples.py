"""The zoo's 1-D and 3-D examples (issue 23): M5 on raw audio and the 3D U-Net, each against its
paper, with the arithmetic written out here."""

from __future__ import annotations

import archcalc


def test_m5_by_hand():
    """Dai et al. 2017, Table 1, M5: output sizes 8000, 2000, 2000, 500, 500, 125, 125, 31; 0.5M params."""
    r = archcalc.analyze(archcalc.load("m5"))
    shapes = {row.name: tuple(row.shape) for row in r.rows}
    # 'same' convs: ceil(32000 / 4) = 8000; pools of 4 floor: 2000, 500, 125, floor(125 / 4) = 31
    assert [shapes[n] for n in ("conv1.relu", "pool1", "conv2.relu", "pool2", "conv3.relu", "pool3", "conv4.relu", "pool4")] == [
        (128, 8000), (128, 2000), (128, 2000), (128, 500), (256, 500), (256, 125), (512, 125), (512, 31)]
    assert r.output == (10,)
    conv = 128 * 1 * 80 + 128 + 128 * 128 * 3 + 128 + 256 * 128 * 3 + 256 + 512 * 256 * 3 + 512  # 551,936
    bn = 2 * (128 + 128 + 256 + 512)  # 2,048 (scale and shift)
    fc = 512 * 10 + 10  # 5,130
    assert r.totals["params"] == conv + bn + fc == 559_114  # "0.5M"
    assert r.totals["buffers"] == 2 * (128 + 128 + 256 + 512)
    # MACs: C_out * L_out * C_in * K per conv, and the fc
    macs = 128 * 8000 * 1 * 80 + 128 * 2000 * 128 * 3 + 256 * 500 * 128 * 3 + 512 * 125 * 256 * 3 + 512 * 10
    assert r.totals["macs"] == macs == 278_533_120
    # receptive field (r, j, p) along the one axis: conv1 80, 4, 38 ('same': total max(7999*4 + 80 - 32000, 0)
    # = 76, 38 before); pool1 r = 80 + 3*4 = 92, j = 16; conv2 r = 92 + 2*16 = 124, p = 38 + 1*16 = 54;
    # pool2 r = 124 + 3*16 = 172, j = 64; conv3 r = 172 + 2*64 = 300, p = 54 + 64 = 118; pool3 r = 300 + 3*64
    # = 492, j = 256; conv4 r = 492 + 2*256 = 1004, p = 118 + 256 = 374; pool4 r = 1004 + 3*256 = 1772, j = 1024
    assert [(a.size, a.stride, a.padding) for a in r.row("pool4").rf] == [(1772, 1024, 374)]


def test_unet3d_by_hand():
    """Çiçek et al. 2016, Figure 1: 132x132x116 x 3 channels in, 44x44x28 x 3 labels out, 19,069,955 parameters."""
    r = archcalc.analyze(archcalc.load("unet3d"))
    assert tuple(r.input) == (3, 116, 132, 132)
    assert r.output == (3, 28, 44, 44)
    # D: 116 -2-2 112 /2 56 -4 52 /2 26 -4 22 /2 11 -4 7 x2 14 -4 10 x2 20 -4 16 x2 32 -4 28
    # H, W: 132 128 64 60 30 26 13 9 18 14 28 24 48 44
    shapes = {row.name: tuple(row.shape) for row in r.rows}
    assert shapes["down1.b.relu"] == (64, 112, 128, 128)
    assert shapes["bottom.b.relu"] == (512, 7, 9, 9)
    assert shapes["up3.skip.crop"] == (256, 14, 18, 18)  # 22x26x26 cropped to the up-conv's 14x18x18
    assert shapes["up3.cat"] == (768, 14, 18, 18)
    assert shapes["up1.cat"] == (192, 32, 48, 48)

    def conv(cin, cout, k=27, bias=True):
        return cout * cin * k + (cout if bias else 0)

    params = (conv(3, 32) + conv(32, 64) + conv(64, 64) + conv(64, 128) + conv(128, 128) + conv(128, 256)
              + conv(256, 256) + conv(256, 512)
              + conv(512, 512, 8, False) + conv(768, 256) + conv(256, 256)
              + conv(256, 256, 8, False) + conv(384, 128) + conv(128, 128)
              + conv(128, 128, 8, False) + conv(192, 64) + conv(64, 64)
              + conv(64, 3, 1))
    assert r.totals["params"] == params == 19_069_955  # the paper's figure
    # BN: Caffe's, no scale or shift; running mean and variance of every 3x3x3 conv's channels
    assert r.totals["buffers"] == 2 * (32 + 64 + 64 + 128 + 128 + 256 + 256 + 512 + 256 + 256 + 128 + 128 + 64 + 64)

    def macs(cin, cout, out, k=27):
        d, h, w = out
        return cout * d * h * w * cin * k

    total = (macs(3, 32, (114, 130, 130)) + macs(32, 64, (112, 128, 128))
             + macs(64, 64, (54, 62, 62)) + macs(64, 128, (52, 60, 60))
             + macs(128, 128, (24, 28, 28)) + macs(128, 256, (22, 26, 26))
             + macs(256, 256, (9, 11, 11)) + macs(256, 512, (7, 9, 9))
             + macs(512, 512, (7, 9, 9), 8)  # transposed: over its input positions (FlopCounterMode's rule)
             + macs(768, 256, (12, 16, 16)) + macs(256, 256, (10, 14, 14))
             + macs(256, 256, (10, 14, 14), 8)
             + macs(384, 128, (18, 26, 26)) + macs(128, 128, (16, 24, 24))
             + macs(128, 128, (16, 24, 24), 8)
             + macs(192, 64, (30, 46, 46)) + macs(64, 64, (28, 44, 44))
             + macs(64, 3, (28, 44, 44), 1))
    assert r.totals["macs"] == total
