"""Everything `explain` and the summary show about a layer comes from its type's declarations
(LayerType.details, formula, size_formula): the named factors evaluate to the engine's own counts
for every registered type (concrete and symbolic) and every layer of every zoo network, and the
numbers they give are the hand-written ones of test_layers.CASES."""

import subprocess
import sys

import pytest

from archcalc import analyze, layers
from archcalc.output.explain import explain_layer
from archcalc.output.report import details
from archcalc.spec import zoo
from archcalc.spec.load import loads
from conftest import ROOT
from test_layers import CASES


def _net(inp, item):
    return loads(f"input: {inp}\nlayers:\n  - {item}\n", "case.yaml")


def _agree(net, report):
    """Each layer's declared factors against the engine's row; returns the evaluated sums."""
    shapes = {-1: tuple(net.input)}
    shapes.update({i: r.shape for i, r in enumerate(report.rows)})
    sums = [0, 0, 0]
    for node, row in zip(net.nodes, report.rows):
        f = layers.lookup(node.type).formula(node.args, [shapes[j] for j in node.inputs], row.shape)
        got = (f.params.value, f.buffers.value, f.macs.value)
        assert got == (row.params, row.buffers, row.macs), (node.name, got)
        sums = [s + g for s, g in zip(sums, got)]
    return tuple(sums)


@pytest.mark.parametrize("case", sorted(CASES))
def test_the_factors_give_the_hand_checked_numbers(case):
    inp, item, shape, params, buffers, macs = CASES[case]
    net = _net(inp, item)
    assert _agree(net, analyze(net)) == (params, buffers, macs)


def test_linear_factors():
    # 36*10 + 10 params, 36*10 MACs; without bias 360 and 360
    net = _net([4, 3, 3], "flatten\n  - linear: {out: 10}")
    assert _agree(net, analyze(net)) == (370, 0, 360)
    net = _net([36], "fc: {out: 10, bias: false}")
    assert _agree(net, analyze(net)) == (360, 0, 360)


SYMBOLIC = {
    # (params, MACs) of C x H x W: C_out*(C_in/groups)*K_h*K_w + C_out; C_out*H*W*C*9 with padding 1
    "conv": ("conv: {out: 8, kernel: 3, padding: 1}", lambda c, h, w: (8 * 9 * c + 8, 72 * c * h * w)),
    "conv_transpose": ("conv_transpose: {out: 4, kernel: 2, stride: 2}", lambda c, h, w: (16 * c + 4, 16 * c * h * w)),
    "channel_linear": ("channel_linear: {out: 6}", lambda c, h, w: (6 * c + 6, 6 * c * h * w)),
    "batchnorm": ("batchnorm", lambda c, h, w: (2 * c, 0)),
    "layernorm": ("layernorm", lambda c, h, w: (2 * c, 0)),
    "layer_scale": ("layer_scale", lambda c, h, w: (c, 0)),
    # issue 23: conv's numbers plus C_out gains; 2C for the norms; a shared or per-channel PReLU slope
    "std_conv": ("std_conv: {out: 8, kernel: 3, padding: 1, gain: true}", lambda c, h, w: (8 * 9 * c + 8 + 8, 72 * c * h * w)),
    "groupnorm": ("groupnorm: {groups: 1}", lambda c, h, w: (2 * c, 0)),
    "grn": ("grn", lambda c, h, w: (2 * c, 0)),
    "prelu": ("prelu: {per_channel: true}", lambda c, h, w: (c, 0)),
}


@pytest.mark.parametrize("case", sorted(SYMBOLIC))
def test_the_factors_stay_symbolic(case):
    from archcalc.expr import is_symbolic

    item, hand = SYMBOLIC[case]
    net = _net("[C, H, W]", item)
    p, _, m = _agree(net, analyze(net))
    assert is_symbolic(p)
    at = {s: v for s in p.free_symbols | getattr(m, "free_symbols", set()) for v in [{"C": 5, "H": 7, "W": 9}[s.name]]}
    assert (int(p.subs(at)), int(m.subs(at)) if is_symbolic(m) else m) == hand(5, 7, 9)


def test_every_zoo_layer_s_factors_equal_the_engine():
    n = 0
    for name in zoo.names():
        from archcalc import load

        net = load(name)
        _agree(net, analyze(net))
        n += len(net.nodes)
    assert n > 5000


DETAILS = [
    # the summary's settings text, as each type declares it
    ([3, 224, 224], "conv: {out: 64, kernel: 7, stride: 2, padding: 3, bias: false}", "7x7/2 p3 nobias"),
    ([64, 56, 56], "conv: {out: 64, kernel: 3, padding: 1, groups: 32}", "3x3 p1 g=32"),
    ([64, 56, 56], "conv: {kernel: 3, padding: [0, 1, 2, 3], groups: depthwise, dilation: 2}", "3x3 p0,1,2,3 d2 dw"),
    ([64, 56, 56], "conv: {out: 8, kernel: [1, 7], padding: [0, 3]}", "1x7 p0,3"),
    ([64, 56, 56], "conv: {out: 8, kernel: 3, stride: [1, 2], padding: same}", "3x3/1,2 same"),
    ([4, 112, 112], "maxpool: {kernel: 3, stride: 2, ceil_mode: true}", "3x3/2 ceil"),
    ([4, 8, 8], "avgpool: {kernel: 2}", "2x2/2"),
    ([4, 13, 13], "adaptive_avgpool: {size: [6, 6]}", "6x6"),
    ([10], "dropout: {p: 0.5}", "p=0.5"),
    ([16, 4, 4], "bn: {affine: false}", "no affine"),
    ([16, 4, 4], "batchnorm", ""),
    ([16, 4, 4], "lrn: {size: 5}", "size 5"),
    ([4, 9, 9], "pad_channels: {out: 8, stride: 2}", "/2"),
    ([4, 9, 9], "pad_channels: {out: 8}", ""),
    ([16, 4, 4], "scale: {factor: 0.17}", "x0.17"),
    ([16, 4, 4], "relu", ""),
]


@pytest.mark.parametrize("inp, item, text", DETAILS)
def test_details_text(inp, item, text):
    net = _net(inp, item)
    assert details(net.nodes[-1]) == text


@pytest.mark.parametrize("case", sorted(CASES))
def test_explain_works_every_registered_type_through(case):
    """explain is one generic printer: every type's every layer is explained, and the factors it
    works through agree with the engine (a disagreement prints '! ...')."""
    inp, item, *_ = CASES[case]
    net = _net(inp, item)
    report = analyze(net)
    for i in range(len(net.nodes)):
        text = "\n".join(explain_layer(net, report, i))
        assert "! " not in text, text


def test_explain_working_of_a_transposed_conv(cli):
    """4 -> 2 channels, 2x2 kernel, stride 2 on 5x5: params 4*(2/1)*2*2 + 2 = 34, MACs over the input
    positions 4*5*5*(2/1)*2*2 = 800 (FlopCounterMode's convention)."""
    net = _net([4, 5, 5], "conv_transpose: {out: 2, kernel: 2, stride: 2}")
    lines = explain_layer(net, analyze(net), 0)
    assert "params: C_in * (C_out/groups) * K_h * K_w + C_out (bias)" in lines
    assert "  4 * (2/1) * 2 * 2 + 2 = 32 + 2 = 34" in lines and 4 * 2 * 2 * 2 + 2 == 34
    assert "MACs: C_in * H_in * W_in * (C_out/groups) * K_h * K_w" in lines
    assert "  4 * 5 * 5 * (2/1) * 2 * 2 = 800" in lines and 4 * 25 * 2 * 4 == 800


def test_the_registry_imports_no_torch():
    """The types' own nn.Module classes live beside them (archcalc/layers/*_torch.py) and are imported
    only by the builder: the registry, every declaration above included, runs without torch."""
    code = ("import sys; sys.modules['torch'] = None\n"
            "from archcalc import analyze, layers\n"
            "from archcalc.spec.load import loads\n"
            "from archcalc.output.explain import explain_layer\n"
            "net = loads('input: [3, 8, 8]\\nlayers:\\n  - {conv: {out: 4, kernel: 3}}\\n  - add: [identity, [bn]]\\n', 'x.yaml')\n"
            "r = analyze(net)\n"
            "[explain_layer(net, r, i) for i in range(len(net.nodes))]\n"
            "[t.torch_module for t in layers.REGISTRY.values()]\n"
            "print('ok')\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT,
                         env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"})
    assert out.stdout.strip() == "ok", out.stderr


def test_the_builder_finds_each_type_s_own_modules():
    pytest.importorskip("torch")
    from archcalc.torchside.build import CUSTOM

    names = {"Concat", "Add", "Mean", "Mul", "NegInfPad2d", "Crop2d", "ProbeSumPool", "ChannelBias", "LayerNorm2d",
             "LayerScale", "ChannelScale", "Scale", "StochasticDepth", "PadChannels", "ResizeLike", "CentreCrop", "ChannelSlice",
             "ChannelShuffle", "ChannelLinear", "ProbeSpatialConv", "ProbeSpatialConvTranspose",
             "RadixSoftmax", "GlobalResponseNorm", "StdConv2d", "ScaledStdConv2d", "Pad", "BlurPool2d", "ProbeDepthwise", "SpaceToDepth", "GlobalMaxPool", "Sub", "Maximum", "EcaConv", "ContextPool", "LearnableAffine", "StarReLU", "Square", "L2Norm",
             "GlobalMaxPoolNd", "ConstantPadNd", "CropNd", "PixelShuffleNd", "PixelUnshuffleNd", "CentreCropNd"}  # 1-D and 3-D maps
    assert set(CUSTOM) == names
    assert all(c.__module__.startswith("archcalc.layers.") and c.__module__.endswith("_torch") for c in CUSTOM.values())
