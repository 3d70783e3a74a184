"""docs/cookbook.md (issue 23 item 3): every spec on the page, read from the page itself, against
a PyTorch module built independently here (torch.nn layers written out, or timm's own modules):
parameters, buffers (BN running statistics; torch's num_batches_tracked counters are not counted
by archcalc), MACs (FlopCounterMode's FLOPs / 2) and output shapes."""

from __future__ import annotations

import re

import pytest

import torch  # noqa: E402  (a test extra: missing torch must fail, not skip)
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from archcalc import analyze
from archcalc.spec.load import loads
from conftest import ROOT

PAGE = ROOT / "docs" / "cookbook.md"
SPECS = dict(re.findall(r"```yaml\n# file: (\S+)\n(.*?)```", PAGE.read_text(), re.S))


def test_the_page_holds_the_recipes():
    assert sorted(SPECS) == ["hrnet-fusion.yaml", "resnest-block.yaml", "se-resnet50.yaml", "unet-bn.yaml"]


def counts(module, *inputs):
    """(params, buffers without num_batches_tracked, MACs, outputs) of a module in eval mode. Built
    on the meta device (no memory, no initialisation): counts and shapes need no values."""
    module.eval()
    params = sum(p.numel() for p in module.parameters())
    buffers = sum(b.numel() for name, b in module.named_buffers() if not name.endswith("num_batches_tracked"))
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        out = module(*inputs)
    flops = counter.get_total_flops()
    assert flops % 2 == 0
    return params, buffers, flops // 2, out


def report(name, **values):
    return analyze(loads(SPECS[name], name, values=values or None))


# ---------------------------------------------------------------- U-Net


class DoubleConv(nn.Sequential):
    def __init__(self, cin, cout):
        super().__init__(nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True),
                         nn.Conv2d(cout, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True))


class Up(nn.Module):
    def __init__(self, cin, cout):
        super().__init__()
        self.up = nn.ConvTranspose2d(cin, cin // 2, 2, stride=2)
        self.conv = DoubleConv(cin, cout)

    def forward(self, x, skip):
        return self.conv(torch.cat([skip, self.up(x)], dim=1))


class UNet(nn.Module):
    """The padded U-Net with batch norm as milesial/Pytorch-UNet writes it (bilinear=False)."""

    def __init__(self, classes=2):
        super().__init__()
        self.inc = DoubleConv(3, 64)
        self.downs = nn.ModuleList(nn.Sequential(nn.MaxPool2d(2), DoubleConv(c, 2 * c)) for c in (64, 128, 256, 512))
        self.ups = nn.ModuleList(Up(2 * c, c) for c in (512, 256, 128, 64))
        self.outc = nn.Conv2d(64, classes, 1)

    def forward(self, x):
        skips = [self.inc(x)]
        for down in self.downs:
            skips.append(down(skips[-1]))
        x = skips.pop()
        for up in self.ups:
            x = up(x, skips.pop())
        return self.outc(x)


def test_unet():
    r = report("unet-bn.yaml", h=2, w=3)  # 32 x 48: every level's size stays whole
    with torch.device("meta"):
        params, buffers, macs, out = counts(UNet(), torch.zeros(1, 3, 32, 48))
    assert (r.totals["params"], r.totals["buffers"], r.totals["macs"]) == (params, buffers, macs)
    assert r.rows[-1].shape == tuple(out.shape[1:]) == (2, 32, 48)
    assert params == 31_037_698  # milesial/Pytorch-UNet's README: 31.04M (bilinear=False)


def test_unet_takes_every_multiple_of_16_and_says_why_not_others():
    from archcalc.errors import SpecError

    for h, w in ((1, 1), (5, 2)):
        assert report("unet-bn.yaml", h=h, w=w).rows[-1].shape == (2, 16 * h, 16 * w)
    text = SPECS["unet-bn.yaml"].replace("input: [3, 16*h, 16*w]", "input: [3, 100, 100]")
    with pytest.raises(SpecError, match=r"multiples of 16 .* write input: \[3, 16\*h, 16\*w\]"):
        analyze(loads(text, "unet-bn.yaml"))


# ---------------------------------------------------------------- SE-ResNet-50


def test_se_resnet50_is_timms():
    import timm

    r = report("se-resnet50.yaml", H=64, W=96)
    with torch.device("meta"):
        model = timm.create_model("seresnet50", pretrained=False)
        params, buffers, macs, out = counts(model, torch.zeros(1, 3, 64, 96))
    assert (r.totals["params"], r.totals["buffers"], r.totals["macs"]) == (params, buffers, macs)
    assert r.rows[-1].shape == tuple(out.shape[1:]) == (1000,)
    assert params == 28_088_024
    # the gate: 2048 channels squeezed to 2048 / 16 = 128, as timm's SEModule (rd_ratio 1/16)
    assert model.layer4[0].se.fc1.out_channels == 128
    gates = [row for row in r.rows if row.name.endswith("gate.conv1")]
    assert len(gates) == 16 and gates[-1].shape == (128, 1, 1)


# ---------------------------------------------------------------- HRNet fusion


class Streams(nn.Module):
    """HRNet's transitions to three streams, then timm's HighResolutionModule (one basic block per
    branch, SUM fusion): the stage the cookbook spec writes."""

    def __init__(self):
        from timm.models.hrnet import HighResolutionModule
        from timm.models.resnet import BasicBlock

        super().__init__()

        def transition(cin, cout):
            return nn.Sequential(nn.Conv2d(cin, cout, 3, 2, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU())

        self.t2, self.t3 = transition(18, 36), transition(36, 72)
        self.stage = HighResolutionModule(3, BasicBlock, (1, 1, 1), [18, 36, 72], (18, 36, 72), "SUM")

    def forward(self, x):
        x2 = self.t2(x)
        return self.stage([x, x2, self.t3(x2)])


def test_hrnet_fusion_is_timms_stage():
    r = report("hrnet-fusion.yaml", h=6, w=5)  # 24 x 20
    params, buffers, macs, outs = counts(Streams(), torch.zeros(1, 18, 24, 20))
    assert (r.totals["params"], r.totals["buffers"], r.totals["macs"]) == (params, buffers, macs)
    assert [r.row(n).shape for n in ("y1", "y2", "y3")] == [tuple(o.shape[1:]) for o in outs] == \
        [(18, 24, 20), (36, 12, 10), (72, 6, 5)]


# ---------------------------------------------------------------- ResNeSt block


def test_resnest_block_is_timms():
    """Counts against timm's ResNestBottleneck; then timm's weights (BN statistics made non-trivial)
    load into archcalc's torch model of the spec, parameter for parameter in order, and the outputs
    are equal: the radix softmax and the branch sums compute what timm's SplitAttn computes."""
    from timm.models.resnest import ResNestBottleneck

    from archcalc.torchside.build import build

    r = report("resnest-block.yaml", H=12, W=10)
    with torch.device("meta"):
        params, buffers, macs, out = counts(ResNestBottleneck(256, 64, radix=2), torch.zeros(1, 256, 12, 10))
    # by hand: conv1 256*64, BN 2*64, the 3x3 conv 128 * (64/2) * 9, BN 2*128, fc1 64*32 + 32, BN 2*32,
    # fc2 32*128 + 128, conv3 64*256, BN 2*256; MACs over 12*10 positions, the MLP at 1x1
    hand_params = 256 * 64 + 128 + 128 * 32 * 9 + 256 + 64 * 32 + 32 + 64 + 32 * 128 + 128 + 64 * 256 + 512
    hand_macs = (256 * 64 + 128 * 32 * 9 + 64 * 256) * 120 + 64 * 32 + 32 * 128
    assert (r.totals["params"], r.totals["buffers"], r.totals["macs"]) == (params, buffers, macs) == \
        (hand_params, 2 * (64 + 128 + 32 + 256), hand_macs) == (76_896, 960, 8_361_984)
    assert r.rows[-1].shape == tuple(out.shape[1:]) == (256, 12, 10)

    torch.manual_seed(0)
    ref = ResNestBottleneck(256, 64, radix=2).eval()
    for m in ref.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.uniform_(-1, 1)
            m.running_var.uniform_(0.5, 2)
            m.weight.data.uniform_(0.5, 1.5)
            m.bias.data.uniform_(-0.5, 0.5)
    ours = build(loads(SPECS["resnest-block.yaml"], "resnest-block.yaml", values={"H": 12, "W": 10})).eval()
    theirs, mine = list(ref.state_dict().items()), list(ours.state_dict().keys())
    assert len(theirs) == len(mine) == 27
    ours.load_state_dict({k: v for k, (_, v) in zip(mine, theirs)})
    x = torch.randn(2, 256, 12, 10)
    with torch.no_grad():
        assert torch.allclose(ours(x), ref(x), rtol=0, atol=1e-5)
