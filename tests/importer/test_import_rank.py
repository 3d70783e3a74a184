"""archcalc import of 1-D ([C, L]) and 3-D ([C, D, H, W]) models: Conv1d/3d, ConvTranspose1d/3d,
BatchNorm1d/3d, InstanceNorm1d/3d, Max/AvgPool1d/3d, AdaptiveAvg/MaxPool1d/3d and their
functional forms map through the layer types' own ``torch_ops`` (archcalc/layers/base.py
``rank_ops``). References: torch itself (the round trip's FlopCounterMode MACs, numel, outputs of
the original module with its weights), params written out by hand, and torchvision's published
figures for the video models (ARCHCALC_DEEP=1)."""

from __future__ import annotations

import os

import pytest

torch = pytest.importorskip("torch")

from archcalc.cli.main import main  # noqa: E402
from archcalc.importer import import_target, model_of  # noqa: E402
from archcalc.importer.roundtrip import check  # noqa: E402
from conftest import randomise  # noqa: E402

DEEP = os.environ.get("ARCHCALC_DEEP") == "1"

NETS = 'import torch\nfrom torch import nn\nimport torch.nn.functional as F\n\n\nclass FConv(nn.Module):\n    def __init__(self):\n        super().__init__()\n        self.weight = nn.Parameter(torch.randn(6, 4, 3) * 0.1)\n\n    def forward(self, x):\n        return F.conv1d(x, self.weight, padding=1)\n\n\nclass Net1d(nn.Module):\n    def __init__(self):\n        super().__init__()\n        self.conv = nn.Conv1d(2, 8, 5, stride=2, padding=2)\n        self.bn = nn.BatchNorm1d(8)\n        self.pool = nn.MaxPool1d(3, stride=2, padding=1)\n        self.inorm = nn.InstanceNorm1d(8, affine=True)\n        self.up = nn.ConvTranspose1d(8, 4, 4, stride=2, padding=1)\n        self.avg = nn.AvgPool1d(2)\n        self.amax = nn.AdaptiveMaxPool1d(5)\n        self.aavg = nn.AdaptiveAvgPool1d(1)\n        self.fconv = FConv()\n        self.fc = nn.Linear(6, 3)\n\n    def forward(self, x):\n        x = self.pool(torch.relu(self.bn(self.conv(x))))\n        x = self.avg(self.up(self.inorm(x)))\n        x = F.max_pool1d(x, 2)\n        x = self.fconv(x)\n        x = self.amax(x)\n        x = F.avg_pool1d(x, 1)\n        x = self.aavg(x)\n        return self.fc(x.flatten(1))\n\n\nclass Net3d(nn.Module):\n    def __init__(self):\n        super().__init__()\n        self.conv = nn.Conv3d(3, 8, (3, 5, 5), stride=(1, 2, 2), padding=(1, 2, 2), bias=False)\n        self.bn = nn.BatchNorm3d(8)\n        self.pool = nn.MaxPool3d((1, 3, 3), stride=(1, 2, 2), padding=(0, 1, 1))\n        self.inorm = nn.InstanceNorm3d(8)\n        self.up = nn.ConvTranspose3d(8, 4, 2, stride=2)\n        self.avg = nn.AvgPool3d(2, ceil_mode=True)\n        self.amax = nn.AdaptiveMaxPool3d((2, 3, 3))\n        self.aavg = nn.AdaptiveAvgPool3d(1)\n        self.fc = nn.Linear(4, 5)\n\n    def forward(self, x):\n        x = self.pool(torch.relu(self.bn(self.conv(x))))\n        x = self.avg(self.up(self.inorm(x)))\n        x = F.max_pool3d(x, (1, 2, 2))\n        x = F.adaptive_avg_pool3d(self.amax(x), 2)\n        y = x.mean((2, 3, 4))\n        x = self.aavg(x)\n        return self.fc(x.flatten(1) + y)\n'


@pytest.fixture
def netfile(tmp_path):
    path = tmp_path / "ndnets.py"
    path.write_text(NETS)
    return path


def _round_trip(netfile, cls, shape):
    model = model_of(f"{netfile}:{cls}", None, None)
    randomise(model)
    text, _, _ = import_target(f"{netfile}:{cls}", None, shape, model=model)
    r = check(text, model, shape)
    assert r["ok"], {k: r[k] for k in r if k != "state_dict"}
    torch_params = sum(p.numel() for p in model.parameters())
    assert r["original"]["params"] == r["built"]["params"] == r["engine"]["params"] == torch_params
    assert r["original"]["macs"] == r["built"]["macs"] == r["engine"]["macs"]
    assert r["outputs"]["ok"] and r["outputs"]["max_abs_diff"] <= 1e-5 * max(1.0, r["outputs"]["max_abs"])
    return text, r


def test_1d_model_round_trips(netfile):
    text, r = _round_trip(netfile, "Net1d", (2, 64))
    # by hand: conv 2*8*5 + 8 = 88, bn 2*8 = 16, instance norm (affine) 16, ConvTranspose1d(8, 4, 4)
    # 8*4*4 + 4 = 132, F.conv1d weight 6*4*3 = 72, fc 6*3 + 3 = 21: 345
    assert r["engine"]["params"] == 88 + 16 + 16 + 132 + 72 + 21 == 345
    # MACs as torch's FlopCounterMode counts them (FLOPs / 2) at L = 64
    assert r["original"]["macs"] == 5202
    assert "input: [2, L]\nsymbols: {L: 64}\n" in text
    for line in ("{conv: {out: 8, kernel: 5, stride: 2, padding: 2}, name: conv}",
                 "{maxpool: {kernel: 3, stride: 2, padding: 1}, name: pool}",
                 "{instancenorm: {affine: true}, name: inorm}",
                 "{conv_transpose: {out: 4, kernel: 4, stride: 2, padding: 1}, name: up}",
                 "{conv: {out: 6, kernel: 3, padding: 1, bias: false}, name: fconv}",
                 "{adaptive_maxpool: {size: 5}, name: amax}", "{adaptive_avgpool: {size: 1}, name: aavg}"):
        assert line in text, line


def test_3d_model_round_trips(netfile):
    text, r = _round_trip(netfile, "Net3d", (3, 8, 32, 32))
    # by hand: conv 3*8*3*5*5 = 1800 (no bias), bn 16, instance norm 0, ConvTranspose3d(8, 4, 2)
    # 8*4*2*2*2 + 4 = 260, fc 4*5 + 5 = 25: 2101
    assert r["engine"]["params"] == 1800 + 16 + 260 + 25 == 2101
    assert r["original"]["macs"] == 3817492
    assert "input: [3, D, H, W]\nsymbols: {D: 8, H: 32, W: 32}\n" in text
    for line in ("{conv: {out: 8, kernel: [3, 5, 5], stride: [1, 2, 2], padding: [1, 2, 2], bias: false}, name: conv}",
                 "{maxpool: {kernel: [1, 3, 3], stride: [1, 2, 2], padding: [0, 1, 1]}, name: pool}",
                 "{avgpool: {kernel: 2, stride: 2, ceil_mode: true}, name: avg}",
                 "{maxpool: {kernel: [1, 2, 2], stride: [1, 2, 2]}, name: maxpool}",
                 "{adaptive_maxpool: {size: [2, 3, 3]}, name: amax}",
                 "{global_avgpool: {}, name: global_avgpool}"):
        assert line in text, line


def test_cli_import_3d_check_and_input_forms(netfile, capsys):
    assert main(["import", f"{netfile}:Net3d", "--input", "3x8x32x32", "--check"]) == 0
    err = capsys.readouterr().err
    assert "params: original 2,101, built 2,101, engine 2,101: ok" in err and "MISMATCH" not in err
    assert main(["import", f"{netfile}:Net3d", "--input", "3x8x32x32x2"]) == 2
    err = capsys.readouterr().err
    assert "expected CxL, CxHxW or CxDxHxW" in err and "Traceback" not in err


# torchvision's published figures (torchvision.models.video docs: num_params, GFLOPS) at 3x16x112x112
# (s3d: 3x16x224x224; its last AvgPool3d (2, 7, 7) needs 224); MACs as FlopCounterMode counts them
VIDEO = {
    "r3d_18": ((3, 16, 112, 112), 33371472, 40696553472),
    "mc3_18": ((3, 16, 112, 112), 11695440, 43342635008),
    "r2plus1d_18": ((3, 16, 112, 112), 31505325, 40519080960),
    "s3d": ((3, 16, 224, 224), 8320048, 17978771456),
}
WEIGHTS = {"r3d_18": "R3D_18_Weights", "mc3_18": "MC3_18_Weights", "r2plus1d_18": "R2Plus1D_18_Weights", "s3d": "S3D_Weights"}
GFLOPS = {"r3d_18": 40.697, "mc3_18": 43.343, "r2plus1d_18": 40.519, "s3d": 17.979}


@pytest.mark.skipif(not DEEP, reason="ARCHCALC_DEEP=1: imports and runs the torchvision video models on CPU")
@pytest.mark.parametrize("name", sorted(VIDEO))
def test_torchvision_video_models_import(name):
    pytest.importorskip("torchvision")
    shape, params, macs = VIDEO[name]
    target = f"torchvision.models.video:{name}"
    model = model_of(target, {"weights": None}, None)
    randomise(model)
    text, _, _ = import_target(target, None, shape, model=model)
    r = check(text, model, shape)
    assert r["ok"], {k: r[k] for k in r if k != "state_dict"}
    assert r["original"]["params"] == r["engine"]["params"] == params
    assert r["original"]["macs"] == r["engine"]["macs"] == macs and round(macs / 1e9, 3) == GFLOPS[name]
    import torchvision.models.video as video

    meta = getattr(video, WEIGHTS[name]).DEFAULT.meta  # torchvision's own figures
    assert meta["num_params"] == params and round(meta["_ops"], 3) == GFLOPS[name]
    assert r["outputs"]["ok"]
