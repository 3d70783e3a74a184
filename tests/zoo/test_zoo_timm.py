"""timm networks in the zoo (issue 23): tresnet_m, convnextv2_atto, nf_resnet26 and
resnest50d_4s2x40d, each hand-written in specs/, against timm 1.0.31 itself.

- Counts: params, buffers (BN running statistics and TResNet's blur filters; torch's
  num_batches_tracked counters are not counted by archcalc) and MACs (FlopCounterMode FLOPs / 2)
  of ``timm.create_model(name)`` on the meta device at timm's default input size (its
  ``pretrained_cfg['input_size']``, which is the spec's default input), against the engine; and
  the same numbers written out, as measured on timm 1.0.31.
- Weights: timm's state_dict (random weights, every norm's statistics and affine made
  non-trivial, zero-initialised gains and GRN weights filled) loads strictly into the torch model
  archcalc builds from the spec (same names, same shapes), and in eval mode the logits agree
  within the importer's relative tolerance (max diff <= 1e-4 x max |value| + 1e-7) on a small
  input (64x64), where timm's model takes one.
"""

from __future__ import annotations

import pytest

import torch  # noqa: E402  (a test extra: missing torch must fail, not skip)
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

import timm  # noqa: E402

from archcalc import analyze, load
from archcalc.torchside.build import build

torch.set_num_threads(1)  # small tensors: one thread is faster, and the machine is shared

# timm 1.0.31 at its default input (3x224x224 for all four): params, buffers, MACs
ZOO = {
    "tresnet_m": (31_389_032, 69_632, 5_736_545_792),
    "convnextv2_atto": (3_708_400, 0, 547_332_480),
    "nf_resnet26": (15_995_176, 0, 2_342_256_640),
    "resnest50d_4s2x40d": (30_417_592, 94_784, 4_369_060_736),
}


def timm_counts(name):
    """(input C x H x W, params, buffers, MACs) of timm's model, measured on the meta device."""
    with torch.device("meta"):
        model = timm.create_model(name, pretrained=False).eval()
    size = tuple(model.pretrained_cfg["input_size"])
    params = sum(p.numel() for p in model.parameters())
    buffers = sum(b.numel() for k, b in model.named_buffers() if not k.endswith("num_batches_tracked"))
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        model(torch.empty(1, *size, device="meta"))
    flops = counter.get_total_flops()
    assert flops % 2 == 0
    return size, params, buffers, flops // 2


def randomised(name, seed=0):
    """timm's model with random weights where its initialisation leaves constants: norm
    statistics and affines, zero-initialised last-BN weights, NF gains, GRN weights, biases."""
    torch.manual_seed(seed)
    model = timm.create_model(name, pretrained=False).eval()
    with torch.no_grad():
        for mod in model.modules():
            if isinstance(mod, nn.modules.batchnorm._BatchNorm) and mod.running_mean is not None:
                mod.running_mean.uniform_(-0.5, 0.5)
                mod.running_var.uniform_(0.5, 2.0)
        for pname, p in model.named_parameters():
            if p.dim() <= 1:  # norm affines, gains, layer scales, biases
                if pname.endswith("bias"):
                    p.uniform_(-0.2, 0.2)
                else:
                    p.uniform_(0.5, 1.5)
    return model


def load_and_compare(net, model, size, seed=0):
    """Load ``model``'s state_dict strictly into archcalc's build of ``net``; (max |diff|, max |value|)
    of the eval-mode outputs on a random batch of two."""
    ours = build(net).eval()
    ours.load_state_dict(model.state_dict(), strict=True)
    x = torch.randn(2, *size, generator=torch.Generator().manual_seed(seed))
    with torch.no_grad():
        theirs, mine = model(x), ours(x)
    assert mine.shape == theirs.shape
    return float((mine - theirs).abs().max()), float(theirs.abs().max())


@pytest.mark.parametrize("name", sorted(ZOO))
def test_counts_are_timms(name):
    size, params, buffers, macs = timm_counts(name)
    net = load(name)
    assert tuple(net.input) == size
    t = analyze(net).totals
    assert (t["params"], t["buffers"], t["macs"]) == (params, buffers, macs) == ZOO[name]


def small(path_or_name, side=64):
    """The spec at a side x side input: its H and W, or h and w where the input is written as
    multiples (tresnet_m: [3, 4*h, 4*w])."""
    net = load(path_or_name)
    values = {"H": side, "W": side} if "H" in net.values else {"h": side // 4, "w": side // 4}
    net = load(path_or_name, values=values)
    assert tuple(net.input) == (3, side, side)
    return net


@pytest.mark.parametrize("name", sorted(ZOO))
def test_timms_weights_load_and_the_outputs_agree(name):
    model = randomised(name)
    diff, scale = load_and_compare(small(name), model, (3, 64, 64))
    assert scale > 0.1
    assert diff <= 1e-4 * scale + 1e-7, (diff, scale)


def test_the_radix_is_four():
    """resnest50d_4s2x40d: every split attention makes 4 radix branches in 2 groups (timm's
    SplitAttn radix and cardinality), and the spec's softmax runs across 4."""
    from timm.layers.split_attn import SplitAttn

    with torch.device("meta"):
        model = timm.create_model("resnest50d_4s2x40d")
    splits = [m for m in model.modules() if isinstance(m, SplitAttn)]
    assert len(splits) == 16 and {(m.radix, m.conv.groups) for m in splits} == {(4, 8)}
    net = load("resnest50d_4s2x40d")
    soft = [n for n in net.nodes if n.type == "radix_softmax"]
    assert len(soft) == 16 and {(n.args["radix"], n.args["groups"]) for n in soft} == {(4, 2)}
