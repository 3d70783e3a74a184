"""Issue 23's layer types against torch. Each case is one new type after a conv (so it has a
gradient and a receptive field) and the torch module (or function) it equals, built here directly
from torch.nn / torch.nn.functional: the built layer computes the reference's values, has its
parameter and buffer counts, and the whole net verifies (shapes, params, buffers, FlopCounterMode
MACs, new values), its receptive field equals the input gradients', and the bytes its backward
keeps equal autograd's."""

from __future__ import annotations

import pytest

import torch  # noqa: E402  (a test extra: missing torch must fail, not skip)
import torch.nn.functional as F
from torch import nn

from archcalc import analyze
from archcalc.spec.load import loads
from archcalc.torchside.build import build
from archcalc.torchside.verify import memory, receptive_fields, verify

C, H, W = 8, 9, 9  # the input of every case: 8 x 9 x 9, a 3x3 conv (padding 1) before the layer


class Fn(nn.Module):
    """A reference written as a function of the input."""

    def __init__(self, fn):
        super().__init__()
        self.fn = fn

    def forward(self, x):
        return self.fn(x)


# name: (the layer's YAML, the reference torch module for a C x H x W input)
CASES = {
    "mish": ("mish", lambda: nn.Mish()),
    "mish_inplace": ("{mish: {inplace: true}}", lambda: nn.Mish()),
    "softplus": ("{softplus: {beta: 2, threshold: 10}}", lambda: nn.Softplus(beta=2, threshold=10)),
    "selu": ("selu", lambda: nn.SELU()),
    "selu_inplace": ("{selu: {inplace: true}}", lambda: nn.SELU()),
    "celu": ("{celu: {alpha: 0.5}}", lambda: nn.CELU(alpha=0.5)),
    "celu_inplace": ("{celu: {alpha: 0.5, inplace: true}}", lambda: nn.CELU(alpha=0.5)),
    "softsign": ("softsign", lambda: nn.Softsign()),
    "tanhshrink": ("tanhshrink", lambda: nn.Tanhshrink()),
    "hardtanh": ("{hardtanh: {min_val: -0.5, max_val: 2}}", lambda: nn.Hardtanh(-0.5, 2.0)),
    "hardtanh_inplace": ("{hardtanh: {inplace: true}}", lambda: nn.Hardtanh()),
    "logsigmoid": ("logsigmoid", lambda: nn.LogSigmoid()),
    "threshold": ("{threshold: {threshold: 0.1, value: -2}}", lambda: nn.Threshold(0.1, -2.0)),
    "threshold_inplace": ("{threshold: {threshold: 0.1, value: -2, inplace: true}}", lambda: nn.Threshold(0.1, -2.0)),
    "hardshrink": ("{hardshrink: {lambd: 0.3}}", lambda: nn.Hardshrink(0.3)),
    "softshrink": ("softshrink", lambda: nn.Softshrink()),
    "rrelu": ("rrelu", lambda: nn.RReLU()),  # compared at inference: a leaky ReLU of the mean slope
    "rrelu_inplace": ("{rrelu: {inplace: true, lower: 0.1, upper: 0.2}}", lambda: nn.RReLU(0.1, 0.2)),
    "gelu_tanh": ("{gelu: {approximate: tanh}}", lambda: nn.GELU(approximate="tanh")),
    "prelu": ("prelu", lambda: nn.PReLU()),
    "prelu_channel": ("{prelu: {per_channel: true, init: 0.1}}", lambda: nn.PReLU(C, init=0.1)),
    # timm's RadixSoftmax (timm/layers/split_attn.py), written out: view, transpose, softmax, reshape
    "radix_softmax": ("{radix_softmax: {radix: 2, groups: 2}}",
                      lambda: Fn(lambda x: F.softmax(x.view(x.size(0), 2, 2, -1).transpose(1, 2), dim=1).reshape(x.shape))),
    "radix_softmax4": ("{radix_softmax: {radix: 4}}",
                       lambda: Fn(lambda x: F.softmax(x.view(x.size(0), 1, 4, -1).transpose(1, 2), dim=1).reshape(x.shape))),
    "radix_softmax1": ("{radix_softmax: {radix: 1}}", lambda: nn.Sigmoid()),
    # --- norms
    "groupnorm": ("{groupnorm: {groups: 4, eps: 1.0e-3}}", lambda: nn.GroupNorm(4, C, eps=1e-3)),
    "groupnorm_plain": ("{groupnorm: {groups: 1, affine: false}}", lambda: nn.GroupNorm(1, C, affine=False)),
    "instancenorm": ("instancenorm", lambda: nn.InstanceNorm2d(C)),
    "instancenorm_affine": ("{instancenorm: {affine: true}}", lambda: nn.InstanceNorm2d(C, affine=True)),
    "instancenorm_stats": ("{instancenorm: {affine: true, track_running_stats: true}}",
                           lambda: nn.InstanceNorm2d(C, affine=True, track_running_stats=True)),
    "grn": ("{grn: {eps: 1.0e-6}}", lambda: GRNRef(C)),
    # x / max(||x||_2, eps), the norm over the channels at each position (SSD's L2Norm without its scale)
    "l2norm": ("l2norm", lambda: Fn(lambda x: x / x.pow(2).sum(dim=1, keepdim=True).sqrt().clamp_min(1e-12))),
    "l2norm_eps": ("{l2norm: {eps: 0.5}}", lambda: Fn(lambda x: F.normalize(x, p=2.0, dim=1, eps=0.5))),
    # --- convolutions: weight standardisation, padding modes; explicit padding; the fixed-filter blur pool
    "std_conv": ("{std_conv: {out: 6, kernel: 3, padding: 1, eps: 1.0e-5}}", lambda: StdConvRef(C, 6, 3, 1, eps=1e-5)),
    "std_conv_gain": ("{std_conv: {out: 6, kernel: 3, stride: 2, padding: 1, gain: true, gamma: 1.7, bias: false}}",
                      lambda: StdConvRef(C, 6, 3, 1, stride=2, bias=False, gain=True, gamma=1.7)),
    "std_conv_dw": ("{std_conv: {kernel: 3, padding: 1, groups: depthwise, gain: true}}",
                    lambda: StdConvRef(C, C, 3, 1, groups=C, gain=True)),
    "conv_reflect": ("{conv: {out: 6, kernel: 3, padding: 1, padding_mode: reflect}}",
                     lambda: nn.Conv2d(C, 6, 3, padding=1, padding_mode="reflect")),
    "conv_replicate": ("{conv: {out: 6, kernel: 3, padding: [2, 1], padding_mode: replicate, groups: 2}}",
                       lambda: nn.Conv2d(C, 6, 3, padding=(2, 1), padding_mode="replicate", groups=2)),
    "conv_circular": ("{conv: {out: 6, kernel: 3, padding: [0, 2, 1, 1], padding_mode: circular}}",
                      lambda: nn.Sequential(Fn(lambda x: F.pad(x, (1, 1, 0, 2), mode="circular")), nn.Conv2d(C, 6, 3))),
    "pad": ("{pad: {padding: [1, 2, 0, 3]}}", lambda: nn.ZeroPad2d((0, 3, 1, 2))),
    "pad_value": ("{pad: {padding: 1, value: 1.5}}", lambda: nn.ConstantPad2d(1, 1.5)),
    "pad_reflect": ("{pad: {padding: [2, 1], mode: reflect}}", lambda: nn.ReflectionPad2d((1, 1, 2, 2))),
    "pad_replicate": ("{pad: {padding: 3, mode: replicate}}", lambda: nn.ReplicationPad2d(3)),
    "pad_circular": ("{pad: {padding: [1, 0, 2, 2], mode: circular}}", lambda: nn.CircularPad2d((2, 2, 1, 0))),
    "blur_pool": ("blur_pool", lambda: BlurRef(C, [1, 2, 1], 2, 1, "reflect")),
    "blur_pool4": ("{blur_pool: {filter: 4, per_channel: false, pad_mode: constant}}", lambda: BlurRef(None, [1, 3, 3, 1], 2, 2, "constant")),
    "blur_pool5": ("{blur_pool: {filter: 5, stride: 1, pad_mode: replicate}}", lambda: BlurRef(C, [1, 4, 6, 4, 1], 1, 2, "replicate")),
    # --- space to depth and back
    "pixel_shuffle": ("{pixel_shuffle: {factor: 2}}", lambda: nn.PixelShuffle(2)),
    "pixel_unshuffle": ("{pixel_unshuffle: {factor: 3}}", lambda: nn.PixelUnshuffle(3)),
    # TResNet's (and TensorFlow's) order: the block position ahead of the channel
    "space_to_depth": ("{space_to_depth: {factor: 3, order: blocks}}", lambda: Fn(
        lambda x: x.view(2, C, 3, 3, 3, 3).permute(0, 3, 5, 1, 2, 4).reshape(2, 9 * C, 3, 3))),
    # --- pools
    "adaptive_maxpool": ("{adaptive_maxpool: {size: [4, 5]}}", lambda: nn.AdaptiveMaxPool2d((4, 5))),
    "adaptive_maxpool1": ("{adaptive_maxpool: {size: 1}}", lambda: nn.AdaptiveMaxPool2d(1)),
    "global_maxpool": ("global_maxpool", lambda: Fn(lambda x: x.amax(dim=(2, 3), keepdim=True))),
    "avgpool_divisor": ("{avgpool: {kernel: 3, stride: 2, padding: 1, divisor_override: 4}}",
                        lambda: nn.AvgPool2d(3, 2, 1, divisor_override=4)),
    # --- learnable scalars (timm HGNetV2's LearnableAffineBlock, MetaFormer's StarReLU) and the square
    "learnable_affine": ("{learnable_affine: {scale: 0.5, bias: 0.25}}", lambda: ScalarsRef(lambda x, s, b: s * x + b)),
    "star_relu": ("{star_relu: {scale: 0.8944, bias: -0.4472}}", lambda: ScalarsRef(lambda x, s, b: s * torch.relu(x) ** 2 + b)),
    "square": ("square", lambda: Fn(lambda x: x * x)),
    # --- joins
    "sub": ("sub: [identity, [{avgpool: {kernel: 3, stride: 1, padding: 1}}]]", lambda: Fn(lambda x: x - F.avg_pool2d(x, 3, 1, 1))),
    "maximum": ("maximum: [identity, [tanh], [sigmoid]]",
                lambda: Fn(lambda x: torch.maximum(torch.maximum(x, torch.tanh(x)), torch.sigmoid(x)))),
    "concat_h": ("{concat: [identity, [{maxpool: {kernel: [2, 1]}}]], dim: 2}",
                 lambda: Fn(lambda x: torch.cat([x, F.max_pool2d(x, (2, 1))], dim=2))),
    "concat_w": ("{concat: [[tanh], identity, [{avgpool: {kernel: [1, 3]}}]], dim: 3}",
                 lambda: Fn(lambda x: torch.cat([torch.tanh(x), x, F.avg_pool2d(x, (1, 3))], dim=3))),
    # --- interpolation modes
    "nearest_exact": ("{upsample: {scale: 2, mode: nearest-exact}}", lambda: Fn(lambda x: F.interpolate(x, scale_factor=2.0, mode="nearest-exact"))),
    "nearest_exact_size": ("{upsample: {size: [13, 7], mode: nearest-exact}}", lambda: Fn(lambda x: F.interpolate(x, size=(13, 7), mode="nearest-exact"))),
    "bicubic": ("{upsample: {scale: 2, mode: bicubic}}", lambda: Fn(lambda x: F.interpolate(x, scale_factor=2.0, mode="bicubic"))),
    "bicubic_corners": ("{upsample: {size: [17, 12], mode: bicubic, align_corners: true}}",
                        lambda: Fn(lambda x: F.interpolate(x, size=(17, 12), mode="bicubic", align_corners=True))),
    "area": ("{upsample: {size: [4, 7], mode: area}}", lambda: Fn(lambda x: F.interpolate(x, size=(4, 7), mode="area"))),
    "area_scale": ("{upsample: {scale: 0.5, mode: area}}", lambda: Fn(lambda x: F.interpolate(x, scale_factor=0.5, mode="area"))),
    "scale_per_axis": ("{upsample: {scale: [2, 3]}}", lambda: Fn(lambda x: F.interpolate(x, scale_factor=(2.0, 3.0)))),
    "scale_per_axis_bilinear": ("{upsample: {scale: [1.5, 0.5], mode: bilinear}}",
                                lambda: Fn(lambda x: F.interpolate(x, scale_factor=(1.5, 0.5), mode="bilinear"))),
    "scale_per_axis_area": ("{upsample: {scale: [0.5, 1.5], mode: area}}",
                            lambda: Fn(lambda x: F.interpolate(x, scale_factor=(0.5, 1.5), mode="area"))),
    "area_up": ("{upsample: {size: [13, 11], mode: area}}", lambda: Fn(lambda x: F.interpolate(x, size=(13, 11), mode="area"))),
}


class StdConvRef(nn.Conv2d):
    """Weight standardisation written out (Qiao et al. 2019; NF-Nets' scaled form, Brock et al. 2021):
    each output filter minus its mean, over sqrt(its biased variance + eps); with a gain, times the
    gain and gamma / sqrt(fan-in). Parameters registered in nn.Conv2d's order, then the gain."""

    def __init__(self, cin, cout, k, p, stride=1, groups=1, bias=True, eps=1e-6, gain=False, gamma=1.0):
        super().__init__(cin, cout, k, stride=stride, padding=p, groups=groups, bias=bias)
        self.eps, self.gamma = eps, gamma
        self.gain = nn.Parameter(torch.ones(cout, 1, 1, 1)) if gain else None

    def forward(self, x):
        w = self.weight.reshape(self.out_channels, -1)
        w = (w - w.mean(1, keepdim=True)) / torch.sqrt(w.var(1, unbiased=False, keepdim=True) + self.eps)
        w = w.reshape_as(self.weight)
        if self.gain is not None:
            w = w * self.gain * self.gamma / (self.weight[0].numel() ** 0.5)
        return F.conv2d(x, w, self.bias, self.stride, self.padding, 1, self.groups)


class BlurRef(nn.Module):
    """Anti-aliased downsampling (Zhang 2019) written out: the binomial row (hand-written, e.g.
    [1, 2, 1]) normalised, its outer product as a C x 1 x f x f (or 1 x 1 x f x f) buffer, a pad of
    p on every side, a depthwise conv at the stride."""

    def __init__(self, channels, row, stride, p, mode):
        super().__init__()
        r = torch.tensor(row, dtype=torch.float32) / sum(row)
        filt = (r[:, None] * r[None, :])[None, None]
        self.register_buffer("filt", filt.repeat(channels, 1, 1, 1) if channels else filt)
        self.stride, self.p, self.mode = stride, p, mode

    def forward(self, x):
        x = F.pad(x, [self.p] * 4, mode=self.mode)
        w = self.filt.expand(x.shape[1], 1, *self.filt.shape[2:])
        return F.conv2d(x, w, stride=self.stride, groups=x.shape[1])


class ScalarsRef(nn.Module):
    """``fn(x, scale, bias)`` with a learnable scale and bias of shape (1,) each, in that order."""

    def __init__(self, fn):
        super().__init__()
        self.fn = fn
        self.scale = nn.Parameter(torch.ones(1))
        self.bias = nn.Parameter(torch.zeros(1))

    def forward(self, x):
        return self.fn(x, self.scale, self.bias)


class GRNRef(nn.Module):
    """ConvNeXt-V2's GRN as its paper writes it (Woo et al. 2023, Algorithm 1), on N x C x H x W:
    gx = ||X||_2 over (H, W); nx = gx / (mean_C(gx) + 1e-6); gamma * (X * nx) + beta + X."""

    def __init__(self, c):
        super().__init__()
        self.weight = nn.Parameter(torch.zeros(c))
        self.bias = nn.Parameter(torch.zeros(c))

    def forward(self, x):
        gx = torch.sqrt((x * x).sum(dim=(2, 3), keepdim=True))
        nx = gx / (gx.mean(dim=1, keepdim=True) + 1e-6)
        return self.weight.view(1, -1, 1, 1) * (x * nx) + self.bias.view(1, -1, 1, 1) + x


# the extra layers a case needs around it (default: a 3x3 conv, padding 1, before it)
BEFORE = {}
NO_RF = {"concat_h", "concat_w"}  # concat along H or W: the engine unions the branches' fields (see Concat.window)


def net_of(case):
    item = CASES[case][0]
    before = BEFORE.get(case, "{conv: {out: 8, kernel: 3, padding: 1}}")
    return loads(f"input: [{C}, {H}, {W}]\nlayers:\n  - {before}\n  - {item}\n", "case.yaml")


def alone(case):
    """The layer alone on the input, and its reference module."""
    item, ref = CASES[case]
    return loads(f"input: [{C}, {H}, {W}]\nlayers:\n  - {item}\n", "case.yaml"), ref()


@pytest.mark.parametrize("case", sorted(CASES))
def test_the_layer_computes_the_reference(case):
    net, ref = alone(case)
    model = build(net).eval()
    ref.eval()
    built = list(model.parameters())
    theirs = list(ref.parameters())
    assert [tuple(p.shape) for p in built] == [tuple(p.shape) for p in theirs]
    assert sum(p.numel() for p in built) == sum(p.numel() for p in theirs) == analyze(net).totals["params"]
    buffers = [b for n, b in ref.named_buffers() if not n.endswith("num_batches_tracked")]
    assert sum(b.numel() for b in buffers) == analyze(net).totals["buffers"]
    torch.manual_seed(0)
    with torch.no_grad():
        for p, q in zip(built, theirs):
            q.copy_(torch.randn_like(q))
            p.copy_(q)
        x = torch.randn(2, C, H, W)
        want = ref(x.clone())
        got = model(x.clone())
    assert got.shape == want.shape
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("case", sorted(CASES))
def test_verifies_against_torch(case):
    result = verify(net_of(case), device="cpu")
    bad = [(r["name"], k, c) for r in result["layers"] for k, c in r["checks"].items() if c["status"] != "ok"]
    assert not bad and result["ok"], bad or result["totals"]


@pytest.mark.parametrize("case", sorted(set(CASES) - NO_RF))
def test_receptive_field_equals_input_gradients(case):
    net = net_of(case)
    report = analyze(net)
    names = [r.name for r in report.rows if r.rf is not None and len(r.shape) == 3]
    res = receptive_fields(net, names, report)
    assert res and all(r["status"] == "ok" for r in res), [r for r in res if r["status"] != "ok"]


@pytest.mark.parametrize("case", sorted(CASES))
def test_saved_and_live_bytes_equal_torch(case):
    net = net_of(case)
    report = analyze(net)
    torch.manual_seed(0)
    m = memory(net, report, device="cpu")
    s = m["saved_bytes"]
    assert s["torch"] == s["engine"] == report.totals["train_saved_bytes"]
    live = m["live"]["inference_live_bytes"]
    assert live["torch"] == live["engine"], live


# the importer (torch.fx): the reference after a conv comes back as the type, with its weights
IMPORTS = {
    "mish": "mish", "softplus": "softplus", "selu": "selu", "celu": "celu", "softsign": "softsign",
    "tanhshrink": "tanhshrink", "hardtanh": "hardtanh", "logsigmoid": "logsigmoid", "threshold": "threshold",
    "hardshrink": "hardshrink", "softshrink": "softshrink", "gelu_tanh": "gelu", "prelu": "prelu",
    "prelu_channel": "prelu", "groupnorm": "groupnorm", "instancenorm_stats": "instancenorm",
    "conv_reflect": "padding_mode: reflect", "conv_replicate": "padding_mode: replicate", "pad": "pad",
    "pad_value": "pad", "pad_reflect": "mode: reflect", "pixel_shuffle": "pixel_shuffle", "pixel_unshuffle": "pixel_unshuffle",
    "adaptive_maxpool": "adaptive_maxpool", "l2norm_eps": "l2norm: {eps: 0.5}", "avgpool_divisor": "divisor_override: 4", "pad_replicate": "mode: replicate", "pad_circular": "mode: circular",
}


@pytest.mark.parametrize("case", sorted(IMPORTS))
def test_the_importer_reads_the_torch_module(case):
    from archcalc.importer import import_target
    from archcalc.importer.roundtrip import check

    model = nn.Sequential(nn.Conv2d(C, 8, 3, padding=1), CASES[case][1]())
    text, _, _ = import_target("tests:model", None, (C, H, W), model=model)
    assert f"{IMPORTS[case]}" in text, text
    r = check(text, model, (C, H, W))
    assert r["ok"] and r["outputs"]["ok"], r


ONNX = ["mish", "softplus", "selu", "celu_inplace", "softsign", "tanhshrink", "hardtanh", "logsigmoid", "threshold",
        "hardshrink", "softshrink", "gelu_tanh", "prelu_channel", "radix_softmax", "groupnorm", "instancenorm_affine", "grn",
        "pixel_shuffle", "std_conv_gain", "conv_reflect", "conv_circular", "pad_reflect", "pad_replicate", "pad_value",
        "sub", "maximum", "concat_w", "bicubic", "nearest_exact", "scale_per_axis_bilinear", "blur_pool", "{adaptive_maxpool: {size: [1, 2]}}", "{upsample: {size: [9, 9]}}", "pixel_unshuffle", "space_to_depth",
        "global_maxpool", "mul: {trunk: identity, gate: [global_avgpool, {eca_conv: {kernel: 3}}, sigmoid]}",
        "learnable_affine", "star_relu", "square", "l2norm"]  # case names, or YAML
# not in ONNX: avgpool's divisor_override (torch.onnx.export drops it: the file divides by the window),
# adaptive_maxpool to a size that does not divide the input (the exporter refuses it)


def test_onnx_export_runs_like_the_builder(tmp_path):
    """One net of every case in ONNX (one export: each takes seconds), run by onnx's reference
    evaluator, gives the builder's output."""
    pytest.importorskip("onnx")
    import onnx
    from onnx.reference import ReferenceEvaluator

    from archcalc.torchside.build import export_onnx

    items = "".join(f"  - {CASES[c][0] if c in CASES else c}\n" for c in ONNX)
    net = loads(f"input: [{C}, {H}, {W}]\nlayers:\n  - {{conv: {{out: 8, kernel: 3, padding: 1}}}}\n{items}", "all.yaml")
    path = tmp_path / "m.onnx"
    torch.manual_seed(0)
    export_onnx(net, path)
    torch.manual_seed(0)  # the same initial weights
    model = build(net).eval()
    x = torch.randn(1, C, H, W)
    (got,) = ReferenceEvaluator(onnx.load(str(path))).run(None, {"input": x.numpy()})
    with torch.no_grad():
        want = model(x).numpy()
    assert got.shape == want.shape and abs(got - want).max() < 1e-4


def test_timm_grn_imports_and_loads():
    """timm's GlobalResponseNorm (ConvNeXt-V2), channels-first and channels-last: the importer reads it
    as grn, its weight and bias (shape C) load into the built model, the outputs agree."""
    timm_layers = pytest.importorskip("timm.layers.grn")
    from archcalc.importer import import_target
    from archcalc.importer.roundtrip import check

    class Last(nn.Module):  # ConvNeXt-V2's MLP runs GRN on the channels-last tensor
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(C, 8, 3, padding=1)
            self.grn = timm_layers.GlobalResponseNorm(8, channels_last=True)

        def forward(self, x):
            return self.grn(self.conv(x).permute(0, 2, 3, 1)).permute(0, 3, 1, 2)

    first = nn.Sequential(nn.Conv2d(C, 8, 3, padding=1), timm_layers.GlobalResponseNorm(8, channels_last=False))
    for model in (first, Last()):
        with torch.no_grad():
            for p in model.parameters():
                p.copy_(torch.randn_like(p))
        text, _, _ = import_target("tests:model", None, (C, H, W), model=model)
        assert "grn" in text, text
        r = check(text, model, (C, H, W))
        assert r["ok"] and r["outputs"]["ok"], r


def test_timm_std_conv_blur_pool_space_to_depth_load_and_agree():
    """timm's StdConv2d, ScaledStdConv2d, BlurPool2d and SpaceToDepth (TResNet's) against the built
    layers: the state_dict loads both ways, same params and buffers, the outputs agree."""
    std = pytest.importorskip("timm.layers.std_conv")
    s2d = pytest.importorskip("timm.layers.space_to_depth")
    blur = pytest.importorskip("timm.layers.blur_pool")
    pairs = [
        ("{std_conv: {out: 6, kernel: 3, padding: 1, bias: false}}", std.StdConv2d(C, 6, 3, padding=1)),
        ("{std_conv: {out: 6, kernel: 3, stride: 2, padding: 1, gain: true, gamma: 1.7, eps: 1.0e-5}}",
         std.ScaledStdConv2d(C, 6, 3, stride=2, padding=1, gamma=1.7, eps=1e-5)),
        ("{blur_pool: {filter: 3, stride: 2}}", blur.BlurPool2d(C, filt_size=3, stride=2)),
        ("{blur_pool: {filter: 5, per_channel: false, pad_mode: constant}}", blur.BlurPool2d(None, filt_size=5, stride=2, pad_mode="constant")),
        ("{space_to_depth: {factor: 4, order: blocks}}", s2d.SpaceToDepth(4)),  # timm's takes 4 only
    ]
    for item, theirs in pairs:
        side = 8 if "space_to_depth" in item else H
        net = loads(f"input: [{C}, {side}, {side}]\nlayers:\n  - {{{item[1:-1]}, name: m}}\n", "case.yaml")
        model = build(net).eval()
        with torch.no_grad():
            for p in theirs.parameters():
                p.copy_(torch.rand_like(p) + 0.5)
        state = {f"m.{k}": v for k, v in theirs.state_dict().items()}
        model.load_state_dict(state, strict=True)
        n = analyze(net).totals
        assert n["params"] == sum(p.numel() for p in theirs.parameters()), item
        assert n["buffers"] == sum(b.numel() for b in theirs.buffers()), item
        x = torch.randn(2, C, side, side)
        with torch.no_grad():
            torch.testing.assert_close(model(x), theirs.eval()(x), rtol=1e-5, atol=1e-5)


def test_joins_import_from_torch_calls():
    """x - y, torch.maximum(x, y) and torch.cat(..., dim=2 / dim=-1) in a traced model come back as sub,
    maximum and concat with dim, and the spec's outputs are the model's."""
    from archcalc.importer import import_target
    from archcalc.importer.roundtrip import check

    class Joins(nn.Module):
        def __init__(self):
            super().__init__()
            self.a = nn.Conv2d(C, 4, 3, padding=1)
            self.b = nn.Conv2d(C, 4, 1)

        def forward(self, x):
            a, b = self.a(x), self.b(x)
            d = torch.maximum(a - b, b)
            return torch.cat([torch.cat([d, a], dim=2), torch.cat([b, d], dim=2)], dim=-1)

    model = Joins()
    text, _, _ = import_target("tests:joins", None, (C, H, W), model=model)
    assert "sub:" in text and "maximum:" in text and "dim: 2" in text and "dim: 3" in text, text
    r = check(text, model, (C, H, W))
    assert r["ok"] and r["outputs"]["ok"], r
    assert analyze(loads(text)).output == (4, 2 * H, 2 * W)


@pytest.mark.parametrize("item, message", [
    ("sub: [identity, [tanh], [sigmoid]]", "sub takes exactly two branches (the first minus the second), got 3"),
    ("{concat: [identity, [tanh]], dim: 4}", "concat: dim 4 is not an axis of a 8x9x9 input"),
    ("{concat: [identity, [{maxpool: {kernel: 2}}]], dim: 2}", "branch 'b1' gives 8x9x9 but branch 'b2' gives 8x4x4"),
    ("{add: [identity, [tanh]], dim: 2}", "one layer per list item: found 'add', 'dim'"),
])
def test_join_errors_are_one_line(item, message):
    from archcalc.errors import SpecError

    with pytest.raises(SpecError, match=message.replace("(", r"\(").replace(")", r"\)")):
        analyze(loads(f"input: [{C}, {H}, {W}]\nlayers:\n  - {item}\n", "case.yaml"))


@pytest.mark.parametrize("text, value", [
    ("sqrt(64)", 8), ("sqrt(9/4) * 2", 3), ("floor(sqrt(10))", 3), ("ceil(sqrt(10))", 4),
    # isqrt(10**20 - 1) = 9999999999: the root is just below 10**10
    ("floor(sqrt(10**20 - 1))", 9_999_999_999), ("ceil(sqrt(10**20 + 1))", 10_000_000_001),
])
def test_sqrt_in_size_expressions(text, value):
    net = loads(f"input: [3, 4, 4]\nlayers:\n  - {{conv: {{out: {text}, kernel: 1}}}}\n", "case.yaml") if value < 10**6 else None
    if net is not None:
        assert net.nodes[0].args["out"] == value
    from archcalc.expr import evaluate, parse

    assert evaluate(parse(text), {}) == value


def test_sqrt_in_number_keys_and_its_errors():
    from archcalc.errors import SpecError

    net = loads("input: [3, 4, 4]\nlayers:\n  - {scale: {factor: 1 / sqrt(2)}}\n", "case.yaml")
    assert net.nodes[0].args["factor"] == 2 ** -0.5  # 0.7071067811865476, correctly rounded
    with pytest.raises(SpecError, match="expected an integer"):
        loads("input: [3, 4, 4]\nlayers:\n  - {conv: {out: sqrt(10), kernel: 1}}\n", "case.yaml")
    with pytest.raises(SpecError, match="sqrt of a negative number"):
        loads("input: [3, 4, 4]\nlayers:\n  - {conv: {out: sqrt(-4), kernel: 1}}\n", "case.yaml")
    with pytest.raises(SpecError, match=r"sqrt\(\) needs a concrete value"):
        analyze(loads("input: [3, H, 4]\nlayers:\n  - {conv: {out: 'sqrt(H)', kernel: 1}}\n", "case.yaml"))


def test_layer_scale_weight_has_the_shape_torch_models_use():
    """layer_scale's gamma is C (timm's LayerScale2d: init * torch.ones(C)); a state_dict of that shape
    loads, and the layer multiplies channel c by gamma[c]."""
    net = loads(f"input: [{C}, {H}, {W}]\nlayers:\n  - {{layer_scale: {{init: 0.5}}, name: ls}}\n", "case.yaml")
    model = build(net).eval()
    gamma = torch.arange(1.0, C + 1)
    model.load_state_dict({"ls.gamma": gamma}, strict=True)
    x = torch.randn(2, C, H, W)
    with torch.no_grad():
        torch.testing.assert_close(model(x), x * gamma.view(1, C, 1, 1))
    timm_ls = pytest.importorskip("timm.layers.layer_scale")
    theirs = timm_ls.LayerScale2d(C, 0.5)
    model.load_state_dict({f"ls.{k}": v for k, v in theirs.state_dict().items()}, strict=True)
    with torch.no_grad():
        torch.testing.assert_close(model(x), theirs(x))
    from archcalc.importer import import_target

    text, _, _ = import_target("tests:ls", None, (C, H, W), model=nn.Sequential(nn.Conv2d(C, C, 1), theirs))
    assert "layer_scale: {init: 0.5}" in text, text


class SSDNorm(nn.Module):
    """SSD's L2Norm as torchvision's SSDFeatureExtractorVGG writes it (torchvision/models/detection/
    ssd.py): ``self.scale_weight.view(1, -1, 1, 1) * F.normalize(x)``, scale_weight of shape C (init 20)."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(C, 8, 3, padding=1)
        self.scale_weight = nn.Parameter(torch.ones(8) * 20)

    def forward(self, x):
        x = self.conv(x)
        return self.scale_weight.view(1, -1, 1, 1) * F.normalize(x)


def test_ssd_l2norm_imports_as_l2norm_and_a_bare_scale_whose_state_dict_loads():
    """The importer reads F.normalize as l2norm and the product with the viewed C-vector as a bare
    layer_scale named scale_weight: the spec's params are torch's (conv 8*8*9 + 8 = 584, scale 8:
    592), MACs FlopCounterMode's (8*9*9*8*9 = 46,656; normalize counts 0), the state_dict loads
    (key scale_weight, shape (8,)) and the outputs agree."""
    from archcalc.importer import import_target
    from archcalc.importer.roundtrip import check

    model = SSDNorm()
    with torch.no_grad():
        model.scale_weight.copy_(torch.arange(1.0, 9.0))  # distinct scales: a wrong channel order shows
    text, _, _ = import_target("tests:ssd", None, (C, H, W), model=model)
    assert "{l2norm: {}, name: l2norm}" in text, text
    assert "layer_scale: {bare: true, vector: true}, name: scale_weight}" in text, text
    r = check(text, model, (C, H, W))
    assert r["ok"] and r["outputs"]["ok"], r
    assert r["original"]["params"] == r["engine"]["params"] == 592 == sum(p.numel() for p in model.parameters())
    assert r["original"]["macs"] == r["engine"]["macs"] == 46_656
    built = build(loads(text, "ssd.yaml")).eval()
    built.load_state_dict(model.state_dict(), strict=True)
    assert tuple(built.state_dict()["scale_weight"].shape) == (8,)
    x = torch.randn(2, C, H, W)
    with torch.no_grad():
        y = model.conv(x)
        want = torch.arange(1.0, 9.0).view(1, 8, 1, 1) * y / y.pow(2).sum(dim=1, keepdim=True).sqrt().clamp_min(1e-12)
        torch.testing.assert_close(built(x), want, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("shape,before", [((12,), "{linear: {out: 12}}"), ((4, 7), "{conv: {out: 4, kernel: 3, padding: 1}}"),
                                           ((4, 3, 5, 5), "{conv: {out: 4, kernel: 3, padding: 1}}")])
def test_l2norm_on_every_rank(shape, before):
    """l2norm on a flat vector, a 1-D and a 3-D map (F.normalize's dim 1 is the channels at any
    rank): the built layer computes x / max(||x||_2, eps) written out, the net verifies against torch,
    and the bytes backward keeps and the live bytes at inference equal torch's."""
    inp = list(shape)
    net = loads(f"input: {inp}\nlayers:\n  - {before}\n  - {{l2norm: {{eps: 0.01}}, name: n}}\n", "case.yaml")
    report = analyze(net)
    result = verify(net, device="cpu")
    assert result["ok"], result["totals"]
    m = memory(net, report, device="cpu")
    assert m["saved_bytes"]["torch"] == m["saved_bytes"]["engine"] == report.totals["train_saved_bytes"]
    live = m["live"]["inference_live_bytes"]
    assert live["torch"] == live["engine"], live
    alone = build(loads(f"input: {inp}\nlayers:\n  - {{l2norm: {{eps: 0.01}}}}\n", "case.yaml")).eval()
    x = torch.randn(2, *shape)
    x[0, :, ...] *= 1e-3  # the first image's norms fall below eps: the clamp acts
    with torch.no_grad():
        want = x / x.pow(2).sum(dim=1, keepdim=True).sqrt().clamp_min(0.01)
        torch.testing.assert_close(alone(x), want, rtol=1e-6, atol=1e-6)


def test_onnx_import_reads_the_new_ops(tmp_path):
    """An exported net of Mish, Sub, Max, a concat along the width, PRelu, Pad (reflect), DepthToSpace
    (CRD) and a global max pool (ReduceMax) comes back from the ONNX file as those layers, with the
    spec's numbers. (A conv with padding_mode exports as Pad + Conv in one scope: the importer refuses
    the two names; not covered.) (torch's exporter writes
    softsign and softplus as elementwise ops, which stay unknown.)"""
    pytest.importorskip("onnx")
    from archcalc.importer import import_target
    from archcalc.torchside.build import export_onnx

    text = (f"input: [{C}, {H}, {W}]\nlayers:\n  - {{conv: {{out: 8, kernel: 3, padding: 1}}, name: c}}\n  - mish\n"
            "  - sub: [identity, [{conv: {out: 8, kernel: 1}, name: d}]]\n"
            "  - maximum: [identity, [{conv: {out: 8, kernel: 1}, name: e}]]\n  - {concat: [identity, {from: c}], dim: 3}\n"
            "  - {prelu: {per_channel: true}}\n  - {pad: {padding: [1, 0, 2, 1], mode: reflect}}\n"
            "  - {conv: {out: 8, kernel: 3}}\n  - {pixel_shuffle: {factor: 2}}\n"
            "  - global_maxpool\n")
    net = loads(text, "n.yaml")
    path = tmp_path / "m.onnx"
    export_onnx(net, path)
    back, _, _ = import_target(str(path))
    for word in ("mish", "sub:", "maximum:", "dim: 3", "global_maxpool", "prelu: {per_channel: true}",
                 "pad: {padding: [1, 0, 2, 1], mode: reflect}", "pixel_shuffle: {factor: 2}"):
        assert word in back, (word, back)
    want, got = analyze(net).totals, analyze(loads(back, "b.yaml", {"H": H, "W": W})).totals
    assert (got["params"], got["macs"]) == (want["params"], want["macs"]) and analyze(net).output == (2, 1, 1)


def test_export_to_torch_source_carries_the_new_modules(tmp_path):
    """`archcalc export --to torch`: the file holds each new module's own class (no archcalc import)
    and computes what the builder computes, with the same weights."""
    from archcalc.torchside.build import CUSTOM, export_source

    items = ["{std_conv: {out: 8, kernel: 3, padding: 1, gain: true}}", "{std_conv: {out: 8, kernel: 1}}",
             "{radix_softmax: {radix: 2, groups: 2}}", "grn", "{pad: {padding: 1, mode: reflect}}", "blur_pool",
             "sub: [identity, [tanh]]", "maximum: [identity, [sigmoid]]", "{concat: [identity, [tanh]], dim: 3}",
             "{pixel_unshuffle: {factor: 2, order: blocks}}", "global_maxpool",
             "mul: {trunk: identity, gate: [global_avgpool, {eca_conv: {kernel: 3}}, sigmoid]}",
             "{learnable_affine: {scale: 0.5}}", "star_relu", "square"]
    net = loads(f"input: [{C}, 13, 13]\nlayers:\n" + "".join(f"  - {i}\n" for i in items), "e.yaml")
    source = export_source(net)
    assert "archcalc" not in "".join(line for line in source.splitlines() if line.startswith(("import", "from")))
    space: dict = {"__name__": "exported"}
    exec(compile(source, str(tmp_path / "m.py"), "exec"), space)
    cls = next(v for k, v in space.items() if isinstance(v, type) and issubclass(v, nn.Module) and k not in CUSTOM)
    exported, model = cls(), build(net)
    exported.load_state_dict(model.state_dict())
    x = torch.randn(2, C, 13, 13)
    model.eval(), exported.eval()
    with torch.no_grad():
        assert torch.equal(model(x), exported(x))


def test_timm_tresnet_style_stem_imports():
    """timm's SpaceToDepth, StdConv2d and BlurPool2d in a traced model come back as pixel_unshuffle
    (order: blocks), std_conv and blur_pool, with equal outputs; timm's ScaledStdConv2d too (it keeps
    gamma / sqrt(fan-in), not gamma: the importer writes the gamma that gives that scale)."""
    pytest.importorskip("timm")
    from timm.layers.blur_pool import BlurPool2d
    from timm.layers.space_to_depth import SpaceToDepth
    from timm.layers.std_conv import ScaledStdConv2d, StdConv2d

    from archcalc.importer import import_target
    from archcalc.importer.roundtrip import check

    model = nn.Sequential(SpaceToDepth(4), StdConv2d(48, 8, 3, padding=1), BlurPool2d(8, 3, 2))
    text, _, _ = import_target("tests:stem", None, (3, 16, 16), model=model)
    for item in ("pixel_unshuffle: {factor: 4, order: blocks}", "std_conv: {out: 8, kernel: 3, padding: 1, bias: false}",
                 "blur_pool: {}"):
        assert item in text, text
    r = check(text, model, (3, 16, 16))
    assert r["ok"] and r["outputs"]["ok"], r
    # ScaledStdConv2d keeps gamma / sqrt(fan-in) only: the importer writes the gamma that gives that
    # scale again (fan-in 3*3*3 = 27), and the outputs agree
    scaled = nn.Sequential(ScaledStdConv2d(3, 8, 3, padding=1, gamma=1.7))
    text, _, _ = import_target("tests:scaled", None, (3, 16, 16), model=scaled)
    assert "gain: true, gamma: 1.7}" in text and 1.7 * 27 ** -0.5 == scaled[0].scale
    r = check(text, scaled, (3, 16, 16))
    assert r["ok"] and r["outputs"]["ok"], r


def test_aliases_name_their_own_type():
    """std_conv subclasses conv: it must not take over conv's alias conv2d (register refuses an alias
    given twice)."""
    from archcalc import layers as L

    assert L.ALIASES == {"conv2d": "conv", "conv_transpose2d": "conv_transpose", "deconv": "conv_transpose", "fc": "linear",
                         "bn": "batchnorm", "subtract": "sub", "space_to_depth": "pixel_unshuffle"}
    net = loads("input: [3, 8, 8]\nlayers:\n  - {conv2d: {out: 4, kernel: 3}}\n", "case.yaml")
    assert net.nodes[0].type == "conv"


def test_timm_learnable_scalars_and_squares_import():
    """timm HGNetV2's LearnableAffineBlock and MetaFormer's StarReLU come back as learnable_affine and
    star_relu (their scale and bias, shape (1,), load under their own keys), MetaFormer's SquaredReLU
    as relu, then square (torch.square), and ``x ** 2`` as square; the outputs agree."""
    pytest.importorskip("timm")
    from timm.models.hgnet import LearnableAffineBlock
    from timm.models.metaformer import SquaredReLU, StarReLU

    from archcalc.importer import import_target
    from archcalc.importer.roundtrip import check

    class Pow(nn.Module):
        def forward(self, x):
            return x ** 2

    model = nn.Sequential(nn.Conv2d(C, 8, 3, padding=1), LearnableAffineBlock(0.5, 0.25), StarReLU(), SquaredReLU(), Pow())
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn_like(p) * 0.5)
    text, _, _ = import_target("tests:scalars", None, (C, H, W), model=model)
    for item in ("{learnable_affine: {}, name: \"1\"}", "{star_relu: {}, name: \"2\"}", "{relu: {inplace: false}, name: relu}",
                 "{square: {}, name: square}", "{pow: {}, name: \"4\"}"):
        assert item in text, text
    assert text.count("{square: {}, name: square}") == 2, text  # torch.square in SquaredReLU, x ** 2 in Pow
    r = check(text, model, (C, H, W))
    assert r["ok"] and r["outputs"]["ok"], r
    # by hand: conv C*8*9 + 8 = 584, then 2 + 2 scalars: 588 (the original's own count)
    assert r["engine"]["params"] == sum(p.numel() for p in model.parameters()) == 588
