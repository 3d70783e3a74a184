"""Training MACs (forward + backward, archcalc/analysis/liveness.py and each type's ``backward_macs``) against
torch's FlopCounterMode over a training step, and the one place where FlopCounterMode is wrong:
a grouped conv's grad-weight, which it counts as if the conv were not grouped (x groups)."""

from __future__ import annotations

import os
import warnings

import pytest

import torch
from torch.utils.flop_counter import FlopCounterMode

import archcalc
from archcalc import analyze, layers as L
from archcalc.spec import zoo
from archcalc.analysis.liveness import totals
from archcalc.spec.load import loads
from archcalc.torchside.build import plan, torch_class

warnings.simplefilter("ignore")

# The default profile checks every zoo spec that is not in a family and one member of each family
# (the members differ in widths and depths only: the same layer types in the same places);
# ARCHCALC_DEEP=1 checks every member too.
SMALL_MEMBER = {"convnext": "convnext_tiny", "efficientnet": "efficientnet_b0", "efficientnet_v2": "efficientnet_v2_m",
                "mnasnet": "mnasnet0_5", "mobilenet-v1": "mobilenet-v1-0.25", "regnet_x": "regnet_x_400mf",
                "regnet_y": "regnet_y_400mf", "shufflenet_v2": "shufflenet_v2_x0_5", "fcn_resnet": "fcn_resnet50",
                "deeplabv3_resnet": "deeplabv3_resnet50"}


def _zoo_names():
    if os.environ.get("ARCHCALC_DEEP") == "1":
        return zoo.names()
    fams = zoo.families()
    members = {m for ms in fams.values() for m in ms}
    picked = {SMALL_MEMBER.get(f, ms[0]) for f, ms in fams.items()}
    return [n for n in zoo.names() if n not in members or n in picked]


def _concrete(name):
    net = archcalc.load(name)
    if net.symbolic:  # generic specs (conv7x7, stack3x3): small values for the free symbols
        net = archcalc.load(name, {s: (3 if s == "C" else 32) for s in net.free_symbols()})
    return net


def _groups(node, x):
    g = node.args.get("groups", 1)
    return x[0] if g == "depthwise" else g


_MEASURED: dict = {}  # one layer's configuration -> FlopCounterMode's MACs per image (the zoo repeats layers)


def _layer_flop_macs(fc, step, xs, needs_grad, weights_grad):
    """FlopCounterMode's (``fc``, entered) MACs per image of one layer run forward and backward on
    the meta device, at batch 2: inputs that need a gradient get one, weights a gradient only when
    trainable."""
    key = (repr(step["ops"]), tuple(map(tuple, xs)), tuple(needs_grad), weights_grad)
    if key in _MEASURED:
        return _MEASURED[key]
    mods = [torch_class(cls)(**kw) for cls, kw in step["ops"]]
    mod = (mods[0] if len(mods) == 1 else torch.nn.Sequential(*mods)).to("meta").train()
    mod.requires_grad_(weights_grad)
    args = []
    for x, g in zip(xs, needs_grad):
        t = torch.empty(2, *x, device="meta", requires_grad=g)
        args.append(t.clone() if g else t)  # not a leaf: in-place layers may write it
    before = fc.get_total_flops()
    out = mod(*args)
    if out.requires_grad:
        out.sum().backward()
    flops = fc.get_total_flops() - before
    assert flops % 4 == 0
    _MEASURED[key] = flops // 4  # 2 FLOPs per MAC, batch 2
    return _MEASURED[key]


@pytest.mark.parametrize("name", _zoo_names())
def test_train_macs_equal_flop_counter(name):
    """Every layer of every zoo spec: the engine's training MACs equal FlopCounterMode's over the
    layer's forward and backward, except a grouped conv's grad-weight: FlopCounterMode counts
    C_in x C_out x K_h x K_w x H' x W' (the conv as if ungrouped), the real count is that / groups,
    so it reports (groups - 1) x the forward MACs more. The whole-network count is the sum of the
    layers' (FlopCounterMode adds op by op); test_mobilenet_v2_whole_step checks one net whole."""
    net = _concrete(name)
    r = analyze(net)
    t = totals(r)  # (runs the liveness pass: each row's train_macs)
    steps = plan(net)
    shapes = {-1: tuple(net.input), **{i: tuple(row.shape) for i, row in enumerate(r.rows)}}
    grad = {-1: False}
    with FlopCounterMode(display=False) as fc:
        measured = _measure_all(fc, net, r, steps, shapes, grad)
    for i, (node, row) in enumerate(zip(net.nodes, r.rows)):
        xs = [shapes[j] for j in node.inputs]
        extra = 0
        if node.type in ("conv", "conv_transpose") and node.trainable and row.params > 0:
            extra = (_groups(node, xs[0]) - 1) * row.macs
        assert measured[i] == row.train_macs + extra, (node.name, measured[i], row.train_macs, extra)
    assert t["train_macs"] == sum(row.train_macs for row in r.rows)


def _measure_all(fc, net, r, steps, shapes, grad):
    out = []
    for i, (node, row, st) in enumerate(zip(net.nodes, r.rows, steps)):
        ltype = L.REGISTRY[node.type]
        data = node.inputs if ltype.joins else node.inputs[:1]
        gw = node.trainable and row.params > 0
        grad[i] = gw or any(grad[j] for j in data)
        xs = [shapes[j] for j in node.inputs]
        needs = [grad[j] if j in data else False for j in node.inputs]
        if any(cls in COUNTED for cls, _ in st["ops"]):
            out.append(_layer_flop_macs(fc, st, xs, needs, gw))
        else:  # no matmul or convolution: FlopCounterMode counts nothing (the whole-step test runs them)
            out.append(0)
    return out


COUNTED = ("Conv1d", "Conv2d", "Conv3d", "ConvTranspose1d", "ConvTranspose2d", "ConvTranspose3d", "Linear", "StdConv2d",
           "ScaledStdConv2d", "BlurPool2d", "EcaConv", "ContextPool")  # the modules whose ops FlopCounterMode
# counts (weight-standardised convs, the blur pool and ECA run a convolution, context pooling a matmul)


def test_depthwise_conv_by_hand():
    # The example: a 32-channel depthwise 3x3 conv on 56x56 (padding 1). Forward: 32 x 56 x
    # 56 x 1 x 9 = 903,168 MACs; grad-input (a transposed conv of the same size) 903,168; grad-
    # weight (each of the 32 x 9 weights sees 56 x 56 positions) 903,168. FlopCounterMode counts
    # the grad-weight as 32 x 32 x 9 x 56 x 56 = 28,901,376: backward 29,804,544 instead of 1,806,336.
    net = loads("name: dw\ninput: [32, 56, 56]\nlayers:\n  - {relu: {inplace: false}, name: pre}\n"
                "  - {conv: {kernel: 3, padding: 1, groups: depthwise, bias: false}, name: dw}\n", "dw.yaml")
    # (the relu makes the conv's input need no gradient either; give it one: a trainable input layer)
    net = loads("name: dw\ninput: [32, 56, 56]\nlayers:\n  - {conv: {kernel: 1, bias: false}, name: pre}\n"
                "  - {conv: {kernel: 3, padding: 1, groups: depthwise, bias: false}, name: dw}\n", "dw.yaml")
    r = analyze(net)
    totals(r)
    row = r.row("dw")
    assert row.macs == 32 * 56 * 56 * 9 == 903_168
    assert row.train_macs == 3 * 903_168
    x = torch.empty(2, 32, 56, 56, device="meta", requires_grad=True).clone()
    conv = torch.nn.Conv2d(32, 32, 3, padding=1, groups=32, bias=False, device="meta")
    with FlopCounterMode(display=False) as fc:
        out = conv(x)
        fwd = fc.get_total_flops()
        out.sum().backward()
    assert fwd // 4 == 903_168
    assert (fc.get_total_flops() - fwd) // 4 == 29_804_544 == 903_168 + 32 * 32 * 9 * 56 * 56
    assert 29_804_544 - 2 * 903_168 == (32 - 1) * 903_168


def test_mobilenet_v2_whole_step():
    # One training step of the whole network under FlopCounterMode (meta device, batch 2): the
    # forward is the engine's 300,774,272 MACs; the backward FlopCounterMode reports is the
    # engine's backward plus (groups - 1) x forward MACs over the 17 depthwise convs.
    net = archcalc.load("mobilenet_v2")
    r = analyze(net)
    from archcalc.torchside.build import build

    model = build(net, device="meta").train()
    x = torch.empty(2, *net.input, device="meta")
    with FlopCounterMode(display=False) as fc:
        out = model(x)
        fwd = fc.get_total_flops() // 4
        out.sum().backward()
    bwd = fc.get_total_flops() // 4 - fwd
    assert fwd == r.totals["macs"] == 300_774_272
    engine_bwd = totals(r)["train_macs"] - r.totals["macs"]
    excess = sum((_groups(n, r.rows[n.inputs[0]].shape) - 1) * row.macs
                 for n, row in zip(net.nodes, r.rows) if n.type == "conv" and n.args.get("groups", 1) != 1)
    assert bwd == engine_bwd + excess
    assert round(bwd / 1e9, 2) == 5.84  # the 5.84G backward MACs for a 0.30G forward
    assert engine_bwd == 2 * 300_774_272 - 10_838_016  # no grad-input for the first conv (32x112x112x27)
