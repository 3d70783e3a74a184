"""torchvision's video CNNs in the zoo (issue 23): r3d_18, mc3_18, r2plus1d_18 and s3d, exact to
torchvision 0.29.1 at their weights' clip size (16 frames of 112 x 112; s3d 224 x 224, which its
final 2x7x7 average pool needs).

The reference numbers are torchvision's own: parameters as its weights' meta publishes them
(``num_params``), buffers the BatchNorm3d running statistics, MACs FlopCounterMode's FLOPs / 2,
which equal the meta's ``_ops`` (GFLOPS as torchvision counts them, i.e. GMACs) to its three
decimals. Each is also measured from the torchvision model in the test (meta device, no weights),
and the built spec loads torchvision's state_dict with equal outputs.
"""

from __future__ import annotations

import os

import pytest

import archcalc

DEEP = os.environ.get("ARCHCALC_DEEP") == "1"

# name: (input C, T, H, W; params = meta num_params; buffers; MACs; meta _ops in GMACs)
REFERENCE = {
    "r3d_18": ((3, 16, 112, 112), 33_371_472, 9_600, 40_696_553_472, 40.697),
    "mc3_18": ((3, 16, 112, 112), 11_695_440, 9_600, 43_342_635_008, 43.343),
    "r2plus1d_18": ((3, 16, 112, 112), 31_505_325, 25_350, 40_519_080_960, 40.519),
    "s3d": ((3, 16, 224, 224), 8_320_048, 21_216, 17_978_771_456, 17.979),
}


@pytest.mark.parametrize("name", sorted(REFERENCE))
def test_video_spec_equals_the_cited_numbers(name):
    shape, params, buffers, macs, gops = REFERENCE[name]
    r = archcalc.analyze(archcalc.load(name))
    assert tuple(r.input) == shape
    assert (r.totals["params"], r.totals["buffers"], r.totals["macs"]) == (params, buffers, macs)
    assert round(macs / 1e9, 3) == gops  # the meta's figure, rounded as it prints it
    assert r.output == (400,)


def _torchvision(name, device):
    tvv = pytest.importorskip("torchvision.models.video")
    import torch

    with torch.device(device):
        return getattr(tvv, name)(weights=None).eval()


@pytest.mark.parametrize("name", sorted(REFERENCE))
def test_video_spec_equals_torchvision_measured(name):
    """params, buffers and MACs measured on torchvision's model itself (meta device)."""
    torch = pytest.importorskip("torch")
    from torch.utils.flop_counter import FlopCounterMode

    shape, params, buffers, macs, _ = REFERENCE[name]
    tv = _torchvision(name, "meta")
    assert sum(p.numel() for p in tv.parameters()) == params
    assert sum(b.numel() for k, b in tv.state_dict().items() if "running_" in k) == buffers
    with FlopCounterMode(display=False) as fc:
        tv(torch.empty(1, *shape, device="meta"))
    assert fc.get_total_flops() // 2 == macs


# tests/torchside/test_verify.py verifies one zoo name per family by default (mc3_18, r2plus1d_18, s3d
# here); this runs all four with ARCHCALC_DEEP=1 and r3d_18, the one that leaves out, by default
@pytest.mark.parametrize("name", sorted(REFERENCE) if DEEP else ["r3d_18"])
def test_video_spec_verifies(name):
    """`archcalc verify`: the built model's shapes, params, buffers and MACs per layer equal the engine's."""
    pytest.importorskip("torch")
    result = archcalc.verify(name, device="meta")
    assert result.ok and result.mismatches == 0, result.to_dict()["totals"]
    checks = result.to_dict()["totals"]
    assert all(checks[k]["status"] == "ok" for k in ("params", "macs")), checks


# the clip for comparing outputs: small where the net allows it (s3d's 2x7x7 pool needs 14 x 224 x 224)
SMALL = {"r3d_18": (3, 8, 32, 32), "mc3_18": (3, 2, 16, 16), "r2plus1d_18": (3, 8, 32, 32), "s3d": (3, 14, 224, 224)}


# outputs on CPU cost seconds each: one network by default (mc3_18, the smallest), all four with ARCHCALC_DEEP=1
@pytest.mark.parametrize("name", sorted(REFERENCE) if DEEP else ["mc3_18"])
def test_torchvision_weights_load_with_equal_outputs(name):
    torch = pytest.importorskip("torch")
    from archcalc.torchside.build import build

    torch.manual_seed(0)
    tv = _torchvision(name, "cpu")
    with torch.no_grad():  # BN statistics away from their init, so that a misplaced BN would show
        for k, v in tv.state_dict().items():
            if k.endswith("running_var"):
                v.uniform_(0.5, 2.0)
            elif k.endswith("running_mean"):
                v.uniform_(-0.5, 0.5)
    model = build(archcalc.load(name))
    model.load_state_dict(tv.state_dict())  # strict: every key and shape torchvision's
    model.eval()
    x = torch.randn(1, *SMALL[name])
    with torch.no_grad():
        want, got = tv(x), model(x)
    assert got.shape == want.shape == (1, 400)
    assert torch.allclose(got, want, rtol=1e-4, atol=1e-5), (got - want).abs().max()


KEYS = {  # a few of torchvision's state_dict keys with their shapes, written out
    "r3d_18": {"stem.0.weight": (64, 3, 3, 7, 7), "layer2.0.downsample.0.weight": (128, 64, 1, 1, 1)},
    "mc3_18": {"layer2.0.conv1.0.weight": (128, 64, 1, 3, 3), "layer4.1.conv2.1.running_var": (512,)},
    # M = floor(64 * 128 * 27 / (9 * 64 + 3 * 128)) = floor(221184 / 960) = 230
    "r2plus1d_18": {"stem.3.weight": (64, 45, 3, 1, 1), "layer2.0.conv1.0.0.weight": (230, 64, 1, 3, 3),
                    "layer2.0.conv1.0.3.weight": (128, 230, 3, 1, 1), "layer2.0.conv1.0.1.running_mean": (230,)},
    "s3d": {"features.5.branch1.1.0.0.weight": (128, 96, 1, 3, 3), "features.5.branch1.1.1.0.weight": (128, 128, 3, 1, 1),
            "classifier.1.bias": (400,)},
}


@pytest.mark.parametrize("name", sorted(REFERENCE))
def test_state_dict_names_and_shapes_are_torchvision_s(name):
    """Every key and shape of torchvision's state_dict (meta device: no weights made)."""
    pytest.importorskip("torch")
    from archcalc.torchside.build import build

    tv = _torchvision(name, "meta").state_dict()
    built = build(archcalc.load(name), device="meta").state_dict()
    assert sorted(built) == sorted(tv)
    assert all(tuple(built[k].shape) == tuple(tv[k].shape) for k in tv)
    for key, shape in KEYS[name].items():
        assert tuple(built[key].shape) == shape, key
