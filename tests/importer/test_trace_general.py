"""Issue 22: the importer follows what a model computes, not what its classes are called.

Every expected number comes from torch itself (the original module's outputs, its parameter count,
FlopCounterMode) or is worked out by hand in the test; archcalc's output is never the reference.
timm's models: a seeded sample of small members of different families runs by default (3 of 15,
and 3 of the 7 that the layer vocabulary's types made importable; a few seconds); ARCHCALC_TIMM=all (or ARCHCALC_DEEP=1) runs every model of the list. timm is a test extra.
"""

from __future__ import annotations

import os
import random
import textwrap

import pytest

torch = pytest.importorskip("torch")

from archcalc.cli.main import main  # noqa: E402
from archcalc.importer import ImportFailed, import_target, model_of  # noqa: E402
from archcalc.importer.roundtrip import check, output_names  # noqa: E402
from archcalc.spec.load import loads  # noqa: E402
from conftest import randomise  # noqa: E402


def randomise_half(model):
    return randomise(model, scale=0.5)  # larger weights than the torchvision tests' (the small nets here)

NETS = textwrap.dedent('''
    import torch
    from torch import nn
    import torch.nn.functional as F


    class BNReLU(nn.BatchNorm2d):
        """timm's BatchNormAct2d in small: a BatchNorm2d whose forward adds an activation."""

        def __init__(self, c):
            super().__init__(c)
            self.act = nn.ReLU()

        def forward(self, x):
            x = F.batch_norm(x, self.running_mean, self.running_var, self.weight, self.bias, False, 0.1, self.eps)
            return self.act(x)


    class BNOnlyInit(nn.BatchNorm2d):
        """A subclass that only changes construction: still a BatchNorm2d."""

        def reset_parameters(self):
            super().reset_parameters()


    class BNFFT(nn.BatchNorm2d):
        def forward(self, x):
            return torch.fft.fft2(super().forward(x)).real


    class Sub(nn.Module):
        def __init__(self, bn):
            super().__init__()
            self.conv = nn.Conv2d(3, 8, 3, padding=1, bias=False)
            self.bn = bn(8)

        def forward(self, x):
            return self.bn(self.conv(x))


    def withact():
        return Sub(BNReLU)


    def onlyinit():
        return Sub(BNOnlyInit)


    def fft():
        return Sub(BNFFT)


    class Constructs(nn.Module):
        """ghostnet's channel slice, mobileone's `0 + branch`, repvit's `/ 2`, N, C, H, W = x.shape."""

        def __init__(self):
            super().__init__()
            self.a = nn.Conv2d(3, 8, 3, padding=1)
            self.b = nn.Conv2d(3, 8, 1)

        def forward(self, x):
            n, c, h, w = x.shape
            out = 0
            out += self.a(x)
            out = out + self.b(x)
            y = out[:, :6, :, :] / 2
            return y * 1


    class SizeBranch(nn.Module):
        """timm's ConvMlp: a branch on the input's size (torch.fx alone cannot trace it)."""

        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(3, 4, 3, padding=1)

        def forward(self, x):
            x = self.conv(x)
            if x.shape[-2] < 8:
                x = F.adaptive_avg_pool2d(x, 8)
            return x


    class Pyramid(nn.Module):
        """A backbone returning two feature maps (a dict, as torchvision's FPN)."""

        def __init__(self):
            super().__init__()
            self.c1 = nn.Conv2d(3, 4, 3, stride=2, padding=1)
            self.c2 = nn.Conv2d(4, 8, 3, stride=2, padding=1)
            self.lat = nn.Conv2d(4, 6, 1)

        def forward(self, x):
            a = self.c1(x)
            b = self.c2(a)
            return {"p1": self.lat(a), "p2": b}


    class Heads(nn.Module):
        """Two heads on a shared trunk (a detection backbone in small); head a has a 1x1 conv of its own."""

        def __init__(self):
            super().__init__()
            self.trunk = nn.Conv2d(3, 4, 3, padding=1)
            self.bn = nn.BatchNorm2d(4)
            self.mid = nn.Conv2d(4, 4, 1)
            self.a = nn.Conv2d(4, 2, 1)
            self.b = nn.Conv2d(4, 5, 3, padding=1, bias=False)

        def forward(self, x):
            t = torch.relu(self.bn(self.trunk(x)))
            return {"a": self.a(self.mid(t)), "b": self.b(t)}


    class BigWindow(nn.Module):
        """Accepts no input below 70x70 (a 70x70 pooling window)."""

        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(3, 4, 3, padding=1)
            self.pool = nn.AvgPool2d(70)

        def forward(self, x):
            return self.pool(self.conv(x))


    class VectorScale(nn.Module):
        """timm's ConvNeXt gamma and MetaFormer's Scale: a C-vector parameter viewed per channel;
        timm's LayerNorm2dNoBias: a layer norm over the channels without a shift."""

        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(3, 8, 3, padding=1)
            self.gamma = nn.Parameter(torch.full((8,), 0.5))
            self.norm = nn.LayerNorm(8, bias=False)
            self.scale = nn.Parameter(torch.ones(8))

        def forward(self, x):
            x = self.conv(x).mul(self.gamma.reshape(1, -1, 1, 1))
            x = self.norm(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)
            return x * self.scale.view((8, 1, 1))


    class Branches(nn.Module):
        """SKNet's selective kernel in small: two branches stacked on dim 1, a softmax over them
        from a gate, their weighted sum; and NF-Net's skipinit gain (a scalar, multiplied in place)."""

        def __init__(self):
            super().__init__()
            self.a = nn.Conv2d(3, 4, 3, padding=1)
            self.b = nn.Conv2d(3, 4, 5, padding=2)
            self.gate = nn.Conv2d(4, 8, 1)
            self.gain = nn.Parameter(torch.tensor(0.5))

        def forward(self, x):
            x = torch.stack([self.a(x), self.b(x)], dim=1)
            g = self.gate(x.sum(1).mean((2, 3), keepdim=True))
            B, C, H, W = g.shape
            g = torch.softmax(g.view(B, 2, C // 2, H, W), dim=1)
            out = torch.sum(x * g, dim=1)
            out.mul_(self.gain)
            return out


    class Hooked(Sub):
        def __init__(self):
            super().__init__(nn.BatchNorm2d)
            self.conv.register_forward_hook(lambda m, i, o: o * 2)
''')


@pytest.fixture
def nets(tmp_path):
    path = tmp_path / "nets22.py"
    path.write_text(NETS)
    return path


def _round_trip(target, shape):
    model = randomise_half(model_of(target))
    text, g, _ = import_target(target, None, shape, model=model)
    return text, g, model, check(text, model, shape, names=output_names(g))


def test_a_subclass_whose_forward_differs_is_traced_through(nets):
    text, _, model, r = _round_trip(f"{nets}:withact", (3, 16, 16))
    # the ReLU the subclass adds is in the spec: without it outputs would differ, with equal counts
    assert "{relu: {inplace: false}, name: bn_act}" in text and "{batchnorm: {}, name: bn}" in text
    # params by hand: conv 3*8*9 = 216, bn 2*8 = 16; buffers 2*8 (num_batches_tracked left out)
    assert r["original"]["params"] == r["engine"]["params"] == 232 == sum(p.numel() for p in model.parameters())
    assert r["engine"]["buffers"] == 16
    assert r["ok"] and r["outputs"]["max_abs_diff"] == 0


def test_a_subclass_that_only_changes_construction_stays_its_base(nets):
    text, _, _, r = _round_trip(f"{nets}:onlyinit", (3, 16, 16))
    assert "{batchnorm: {}, name: bn}" in text and r["ok"]


def test_a_subclass_whose_forward_cannot_be_followed_is_refused_in_one_line(nets):
    with pytest.raises(ImportFailed) as err:
        import_target(f"{nets}:fft", None, (3, 16, 16))
    msg = str(err.value)
    assert "\n" not in msg and "torch.fft.fft2 at bn" in msg


def test_slices_constants_and_shapes(nets):
    text, _, model, r = _round_trip(f"{nets}:Constructs", (3, 16, 16))
    assert r["ok"] and r["outputs"]["max_abs_diff"] <= 1e-6
    # x[:, :6] is a channel slice and / 2 a scale by 0.5: output 6 x 16 x 16
    assert "channels: {stop: 6}" in text and "factor: 0.5" in text
    # params by hand: a 3*8*9 + 8 = 224, b 3*8 + 8 = 32
    assert r["engine"]["params"] == 256


def test_a_viewed_vector_parameter_is_a_per_channel_scale(nets):
    text, _, model, r = _round_trip(f"{nets}:VectorScale", (3, 8, 8))
    assert r["ok"] and r["outputs"]["max_abs_diff"] <= 1e-6 and not r["state_dict"]["shape"]
    assert "{layer_scale: {bare: true, vector: true}, name: gamma}" in text  # gamma's shape (8,): the state_dict loads
    assert "bias: false" in text
    # params by hand: conv 3*8*9 + 8 = 224, gamma 8, norm weight only 8, scale 8
    assert r["engine"]["params"] == r["original"]["params"] == 248


def test_branches_stacked_on_dim_1_and_a_scalar_gain(nets):
    text, _, model, r = _round_trip(f"{nets}:Branches", (3, 8, 8))
    assert r["ok"] and r["outputs"]["max_abs_diff"] <= 1e-6
    assert "radix_softmax: {radix: 2}" in text and "scalar: true" in text and "concat" in text
    # params by hand: a 3*4*9 + 4 = 112, b 3*4*25 + 4 = 304, gate 4*8 + 8 = 40, gain 1
    assert r["engine"]["params"] == r["original"]["params"] == 457


def test_timm_same_padded_scaled_std_conv():
    pytest.importorskip("timm")
    from timm.layers.std_conv import ScaledStdConv2dSame

    torch.manual_seed(0)
    # stride 2 at 9x9: timm pads at run time, 1 row and column on the bottom and right (TF 'SAME')
    model = torch.nn.Sequential(ScaledStdConv2dSame(3, 4, 3, stride=2))
    assert model[0].same_pad
    text, _, _ = import_target("timm.layers:ScaledStdConv2dSame", None, (3, 9, 9), model=model)
    assert "padding: same" in text
    r = check(text, model, (3, 9, 9))
    assert r["ok"] and not r["state_dict"]["missing"] and r["outputs"]["max_abs_diff"] <= 1e-6


def test_timm_max_pool_same_and_nasnet_shift():
    pytest.importorskip("timm")
    from timm.layers.pool2d_same import MaxPool2dSame

    # timm pads with -inf at run time (at 8x8, window 3, stride 2: (4 - 1) * 2 + 3 - 8 = 1 row and column, at the bottom and right);
    # NASNet's path_2 shifts by one (ZeroPad2d((-1, 1, -1, 1))) before a 1x1 pool of stride 2
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 1), MaxPool2dSame(3, 2), torch.nn.ZeroPad2d((-1, 1, -1, 1)),
                                torch.nn.AvgPool2d(1, stride=2, count_include_pad=False))
    text, g, _ = import_target("timm.layers:MaxPool2dSame", None, (3, 8, 8), model=randomise_half(model))
    assert g.notes and "maxpool: {kernel: 3, stride: 2, padding: [0, 1, 0, 1]}" in text and "crop" in text
    r = check(text, model, (3, 8, 8), output_input=(3, 8, 8))
    assert r["ok"] and r["outputs"]["max_abs_diff"] == 0
    with torch.no_grad():  # 8x8 -> 4x4 (pool) -> 2x2 (the shifted 1x1 pool of stride 2)
        assert tuple(model(torch.zeros(1, 3, 8, 8)).shape) == (1, 4, 2, 2)


def test_timm_scaled_std_conv_reads_gamma_back():
    pytest.importorskip("timm")
    from timm.layers import ScaledStdConv2d

    torch.manual_seed(0)
    # gamma 1.7139588594436646 (timm's ReLU gamma): the module keeps only gamma / sqrt(3*3*3)
    model = torch.nn.Sequential(ScaledStdConv2d(3, 4, 3, padding=1, gamma=1.7139588594436646))
    text, _, _ = import_target("timm.layers:ScaledStdConv2d", None, (3, 8, 8), model=model)
    import re

    gamma = float(re.search(r"gamma: ([0-9.e-]+)", text).group(1))
    # the spec's gamma gives the module's scale bit for bit (a number within an ulp of 1.71395885944366)
    assert "gain: true" in text and gamma * 27 ** -0.5 == model[0].scale and abs(gamma - 1.7139588594436646) < 1e-15
    r = check(text, model, (3, 8, 8))
    # params by hand: 4*3*9 weights + 4 bias + 4 gains
    assert r["ok"] and r["engine"]["params"] == 116 == sum(p.numel() for p in model.parameters())


def test_a_branch_on_the_size_is_traced_at_the_traced_size(nets):
    text, g, model, r = _round_trip(f"{nets}:SizeBranch", (3, 16, 16))
    assert g.notes and "branches on the input's size" in g.notes[0]
    assert r["ok"] and "adaptive_avgpool" not in text  # 16 >= 8: the branch is not taken
    text, g, model, r = _round_trip(f"{nets}:SizeBranch", (3, 4, 4))
    assert "adaptive_avgpool" in text and r["ok"]


def test_several_outputs(nets):
    text, g, model, r = _round_trip(f"{nets}:Pyramid", (3, 32, 32))
    assert "outputs: [c2]" in text  # lat, the last layer torch ran, is the spec's own output
    # shapes by hand at 32x32: c1 -> 4x16x16, lat 6x16x16; c2 -> 8x8x8
    assert [(p["name"], p["shape"], p["engine"]) for p in r["per_output"]] == [
        ("lat", (6, 16, 16), (6, 16, 16)), ("c2", (8, 8, 8), (8, 8, 8))]
    # MACs: c1 4*16*16*27 = 27,648; c2 8*8*8*36 = 18,432; lat 6*16*16*4 = 6,144 (every output counts)
    assert r["original"]["macs"] == r["engine"]["macs"] == 27648 + 18432 + 6144
    assert r["ok"] and len(r["outputs"]["several"]) == 2
    net = loads(text)
    assert [net.nodes[i].name for i in net.outputs] == ["c2"]
    from archcalc.torchside.build import build

    built = build(net).eval()
    outs = built(torch.zeros(1, 3, 32, 32))
    assert [tuple(o.shape[1:]) for o in outs] == [(6, 16, 16), (8, 8, 8)]  # main first, then the listed one


# Heads at 3x8x8, by hand (FlopCounterMode counts convolutions only: batchnorm and relu 0):
#   trunk 3*4*9 + 4 = 112 params, 4*64*27 = 6,912 MACs; bn 2*4 = 8 params, 8 buffers
#   mid 4*4 + 4 = 20 params, 4*64*4 = 1,024 MACs; a 4*2 + 2 = 10 params, 2*64*4 = 512 MACs
#   b 4*5*9 = 180 params (no bias), 5*64*36 = 11,520 MACs
# output a: trunk, bn, mid, a; output b: trunk, bn, b
HEADS_A = {"params": 112 + 8 + 20 + 10, "buffers": 8, "macs": 6912 + 1024 + 512}
HEADS_B = {"params": 112 + 8 + 180, "buffers": 8, "macs": 6912 + 11520}
HEADS_ALL = {"params": 112 + 8 + 20 + 10 + 180, "buffers": 8, "macs": 6912 + 1024 + 512 + 11520}


def test_each_output_counts_what_it_depends_on(nets, capsys):
    from archcalc.importer.roundtrip import output_counts

    text, g, model, r = _round_trip(f"{nets}:Heads", (3, 8, 8))
    assert output_names(g) == ["a", "b"]
    # torch's own graph: each output alone (autograd's gradients, FlopCounterMode per call)
    theirs = output_counts(model, (3, 8, 8))
    assert theirs["outputs"] == [HEADS_A, HEADS_B] and theirs["union"] == HEADS_ALL and theirs["unattributed"] == 0
    assert theirs["flops"] == 2 * HEADS_ALL["macs"]
    assert all(p.grad is None and not p.device.type == "meta" for p in model.parameters())  # the model is left alone
    for p, want in zip(r["per_output"], (HEADS_A, HEADS_B)):
        for key in ("params", "buffers", "macs"):
            assert p[key] == {"original": want[key], "built": want[key], "engine": want[key]}, (p["name"], key)
        assert p["ok"]
    assert r["ok"] and r["per_output_union"]["original"] == r["per_output_union"]["built"] == HEADS_ALL
    assert main(["import", f"{nets}:Heads", "--input", "3x8x8", "--check"]) == 0
    err = capsys.readouterr().err
    assert "output a: params 150; buffers 8; MACs 8,448 (what it depends on; original = built = engine): ok" in err
    assert "output b: params 300; buffers 8; MACs 18,432 (what it depends on; original = built = engine): ok" in err


def test_output_counts_of_a_module_called_twice_and_flops_no_output_holds():
    from archcalc.importer.roundtrip import output_counts

    class Shared(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.c = torch.nn.Conv2d(3, 3, 1)
            self.bn = torch.nn.BatchNorm2d(3)

        def forward(self, x):
            y = self.c(x)
            # a constant 2x2 @ 2x2 (2*2*2*2 = 16 FLOPs) depends on no input and no parameter
            return y, self.c(self.bn(y)) + torch.mm(torch.ones(2, 2), torch.ones(2, 2)).sum()

    r = output_counts(Shared(), (3, 8, 8))
    # c: 3*3 + 3 = 12 params, 3*64*3 = 576 MACs a call; bn: 6 params, 6 buffers
    # y: c's first call; the second: c (once: the same parameters), bn, c's two calls
    assert r["outputs"] == [{"params": 12, "buffers": 0, "macs": 576}, {"params": 18, "buffers": 6, "macs": 1152}]
    assert r["unattributed"] == 16 and r["flops"] == 2 * 1152 + 16


def test_an_output_that_depends_on_other_layers_fails_by_name(nets, capsys):
    text, g, model, _ = _round_trip(f"{nets}:Heads", (3, 8, 8))
    # head a read from relu, past mid: every name, shape and the totals' params stay the same
    broken = text.replace("{conv: {out: 2, kernel: 1}, name: a}", "{conv: {out: 2, kernel: 1}, name: a, from: relu}")
    assert broken != text
    r = check(broken, model, (3, 8, 8), names=output_names(g))
    assert not r["ok"] and r["original"]["params"] == r["engine"]["params"] == HEADS_ALL["params"]
    a, b = r["per_output"]
    assert not a["ok"] and b["ok"]
    # a without mid: 150 - 20 params, 8,448 - 1,024 MACs
    assert a["params"] == {"original": 150, "built": 130, "engine": 130}
    assert a["macs"] == {"original": 8448, "built": 7424, "engine": 7424}
    from archcalc.cli.importer import _check_lines

    line = next(x for x in _check_lines(r) if x.startswith("output a:"))
    assert line.endswith(": MISMATCH") and "params original 150, built 130, engine 130" in line


def test_check_runs_at_a_size_the_network_accepts(nets):
    _, _, _, r = _round_trip(f"{nets}:BigWindow", (3, 96, 96))
    # 64x64 is below the 70x70 window: the outputs are compared at the smallest size that works
    assert r["outputs"]["input"] == (3, 70, 70) and r["ok"]


def test_a_divergence_is_named_and_never_a_traceback(nets, capsys, tmp_path):
    text, _, model, r = _round_trip(f"{nets}:withact", (3, 16, 16))
    broken = text.replace("{relu: {inplace: false}, name: bn_act}", "{sigmoid: {}, name: bn_act}")
    assert broken != text
    r = check(broken, model, (3, 16, 16))
    assert not r["ok"] and not r["outputs"]["ok"]
    # bn_act has no module of its name in the original, and the original's bn (with its act child)
    # is not compared with the batchnorm layer: no layer named
    assert r["outputs"]["first"] is None
    # same shape and params, other values: padding 2 with dilation 2 (16 + 4 - 5 + 1 = 16)
    broken = text.replace("{conv: {out: 8, kernel: 3, padding: 1, bias: false}, name: conv}",
                          "{conv: {out: 8, kernel: 3, padding: 2, dilation: 2, bias: false}, name: conv}")
    assert broken != text
    r = check(broken, model, (3, 16, 16))
    assert r["outputs"]["first"][0] == "conv"
    from archcalc.cli.importer import _check_lines

    lines = _check_lines(r)
    assert lines[-1].startswith("outputs: the first layer whose output differs is conv (max |difference| ")


def test_a_size_the_model_refuses_is_one_line_naming_the_module(nets, capfd):
    with pytest.raises(ImportFailed) as err:
        import_target(f"{nets}:BigWindow", None, (3, 32, 32))  # a 70x70 window on 32x32
    msg = str(err.value)
    assert "\n" not in msg and "input failed at pool: RuntimeError" in msg
    assert "Traceback" not in capfd.readouterr().err  # torch's ShapeProp prints one: not shown


def test_a_forward_hook_is_refused(nets):
    with pytest.raises(ImportFailed, match="module conv .* has a forward hook"):
        import_target(f"{nets}:Hooked", None, (3, 16, 16))


def test_cli_check_of_several_outputs(nets, capsys):
    code = main(["import", f"{nets}:Pyramid", "--input", "3x32x32", "--check"])
    err = capsys.readouterr().err
    assert code == 0, err
    assert "2 outputs, shapes at the traced input (original = engine): lat 6x16x16, c2 8x8x8: ok" in err
    assert "all 2 outputs at 3x32x32" in err and "Traceback" not in err


# --------------------------------------------------------------------------- timm

# small members of different families: each imports and checks at 64x64 in about a second of CPU
# here (timm 1.0.31; mobileone_s0, 4 s, only with ARCHCALC_TIMM=all)
TIMM_SMALL = ["mobilenetv3_small_050", "lcnet_050", "ghostnet_050", "regnetx_002", "tinynet_e", "mnasnet_small",
              "resnet10t", "dla46_c", "hardcorenas_a", "semnasnet_050", "darknet17", "gernet_s", "efficientnet_b0",
              "repghostnet_050", "rexnet_100"]
# families that import since the layer vocabulary's types (a C-vector layer scale, scaled
# weight-standardised and TF-'same' convs, k-branch softmax, blur pool, LayerNorm without bias)
TIMM_VOCAB = ["convnext_atto", "nf_resnet26", "skresnet18", "resnest14d", "tf_mobilenetv3_small_minimal_100",
              "poolformer_s12", "resnetblur18"]
# families that import since ECA's conv over the pooled channels (eca_conv), the learnable scalars
# (learnable_affine, star_relu) and square: the constructs in small run by default
# (tests/layers/test_layers_gate.py, test_layers_vocab.py); the models with ARCHCALC_TIMM=all
TIMM_GATES = ["ecaresnet26t", "eca_resnet33ts", "eca_nfnet_l0", "hgnetv2_b0", "convformer_s18"]
TIMM_ALL = os.environ.get("ARCHCALC_TIMM") == "all" or os.environ.get("ARCHCALC_DEEP") == "1"
TIMM_SEED = int(os.environ.get("ARCHCALC_TIMM_SEED", "22"))
# mobileone_s0 runs its conv_kxk members between adds: the spec enters that scope twice (a block
# call's name given again enters its scope again; docs/spec-format.md)
MOBILEONE = "mobileone_s0"
TIMM_RUN = (TIMM_SMALL + TIMM_VOCAB + [MOBILEONE] + TIMM_GATES if TIMM_ALL else
            sorted(random.Random(TIMM_SEED).sample(TIMM_SMALL, 3)) + sorted(random.Random(TIMM_SEED).sample(TIMM_VOCAB, 3)))


@pytest.mark.parametrize("name", TIMM_RUN)
def test_timm_round_trip(name):
    timm = pytest.importorskip("timm")
    torch.manual_seed(0)
    model = timm.create_model(name, pretrained=False)
    shape = (3, 64, 64)
    text, g, _ = import_target("timm:create_model", {"model_name": name}, shape, model=model)
    r = check(text, model, shape)
    # the original's own numbers: its parameters and torch's FlopCounterMode on its forward
    assert r["engine"]["params"] == sum(p.numel() for p in model.parameters())
    assert r["engine"]["macs"] == r["original"]["macs"]
    assert r["ok"], (r.get("outputs"), r["state_dict"])


def test_the_timm_table_s_result_is_counted_from_its_rows():
    """docs/import.md's timm table: one row per model of the benchmark's sample, and the result line's
    count is the rows whose check is ok (the table is the benchmark's output; the count is not typed)."""
    import importlib.util
    import re
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    spec = importlib.util.spec_from_file_location("timm_table", root / "benchmarks" / "import_timm_table.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    sample = [m for ms in bench.SAMPLE.values() for m in ms]
    section = (root / "docs" / "import.md").read_text().split("## timm's CNNs", 1)[1]
    rows = [[c.strip() for c in line.strip("|").split("|")] for line in section.splitlines()
            if line.startswith("| ") and not line.startswith("| family")]
    assert sorted(r[1] for r in rows) == sorted(sample)
    ok = sum(r[3] == "ok" for r in rows)
    m = re.search(r"\*\*Result: (\d+) of (\d+) \((\d+)%\)", section)
    assert m and (int(m[1]), int(m[2]), int(m[3])) == (ok, len(sample), round(100 * ok / len(sample)))
    assert all(r[7] == "yes" for r in rows if r[3] == "ok")  # archcalc = timm wherever the check passes


# --------------------------------------------------------------------------- detection backbones

DEEP = os.environ.get("ARCHCALC_DEEP") == "1"
DETECTION = {  # factory -> (input, outputs)
    "fasterrcnn_resnet50_fpn": ((3, 224, 224), 5),
    "retinanet_resnet50_fpn": ((3, 224, 224), 5),
    "fcos_resnet50_fpn": ((3, 224, 224), 5),
    "ssdlite320_mobilenet_v3_large": ((3, 320, 320), 6),
    "ssd300_vgg16": ((3, 300, 300), 6),
}


@pytest.mark.skipif(not DEEP, reason="ARCHCALC_DEEP=1 runs the detection backbones (seconds each)")
@pytest.mark.parametrize("factory", sorted(DETECTION))
def test_detection_backbone_with_several_outputs(factory):
    tv = pytest.importorskip("torchvision")
    torch.manual_seed(0)
    model = getattr(tv.models.detection, factory)(weights=None, weights_backbone=None).backbone
    shape, n = DETECTION[factory]
    text, g, _ = import_target(f"torchvision.models.detection:{factory}", None, shape, model=model)
    r = check(text, model, shape, names=output_names(g))
    # the original's own numbers: its parameters, FlopCounterMode on its forward, its outputs' shapes
    assert r["engine"]["params"] == sum(p.numel() for p in model.parameters())
    assert r["engine"]["macs"] == r["original"]["macs"]
    assert len(r["per_output"]) == n and all(p["shape"] == p["engine"] for p in r["per_output"])
    assert r["ok"] and len(r["outputs"]["several"]) == n
    # each output's own params, buffers and MACs: torch's autograd graph of the original (gradients
    # of that output alone, FlopCounterMode per call) = the built spec's = the engine's
    for p in r["per_output"]:
        assert p["ok"] and all(p[k]["original"] == p[k]["built"] == p[k]["engine"] for k in ("params", "buffers", "macs"))
    # the outputs together reach every parameter, buffer and FLOP of the original
    assert r["per_output_union"]["original"] == r["original"] and r["per_output_union"]["unattributed"] == 0
    # and the per-output figures are torch's: params with a gradient from output k alone
    params = [q for q in model.parameters()]
    with torch.enable_grad():
        outs = list(model.eval()(torch.zeros(1, *shape)).values())
    for k, p in enumerate(r["per_output"]):
        grads = torch.autograd.grad(outs[k].sum(), params, allow_unused=True, retain_graph=True)
        assert p["params"]["original"] == sum(q.numel() for q, gr in zip(params, grads) if gr is not None)


def test_outputs_key_of_the_spec_format(tmp_path, capsys):
    """`outputs:` (what the importer writes for several outputs): a listed layer is an output, so
    the unused lint leaves it alone; a name that is no layer is one line, exit 2."""
    body = "input: [3, 8, 8]\nlayers:\n  - {conv: {out: 4, kernel: 1}, name: a}\n  - {conv: {out: 2, kernel: 1}, name: b, from: input}\n"
    plain, listed, bad = tmp_path / "plain.yaml", tmp_path / "listed.yaml", tmp_path / "bad.yaml"
    plain.write_text("name: plain\n" + body)
    listed.write_text("name: listed\n" + body + "outputs: [a]\n")
    bad.write_text("name: bad\n" + body + "outputs: [nope]\n")
    assert main(["check", str(plain)]) == 0 and "lint unused" in capsys.readouterr().out
    assert main(["check", str(listed)]) == 0 and "lint unused" not in capsys.readouterr().out
    assert main(["summary", str(bad)]) == 2
    err = capsys.readouterr().err
    assert "'outputs' names 'nope', which is no layer" in err and "Traceback" not in err
    # the built model returns b (the last layer), then a: 2x8x8 and 4x8x8 (1x1 convs keep 8x8)
    from archcalc.torchside.build import build

    outs = build(loads(listed.read_text())).eval()(torch.zeros(1, 3, 8, 8))
    assert [tuple(o.shape[1:]) for o in outs] == [(2, 8, 8), (4, 8, 8)]


def test_onnx_channel_slice(tmp_path):
    """ONNX Slice on the channel axis (a folded export of x[:, 2:6]) is a channel slice."""
    pytest.importorskip("onnx")
    import contextlib
    import io

    class Net(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = torch.nn.Conv2d(3, 8, 3, padding=1)

        def forward(self, x):
            return self.conv(x)[:, 2:6]

    path = tmp_path / "slice.onnx"
    with contextlib.redirect_stderr(io.StringIO()), contextlib.redirect_stdout(io.StringIO()):
        torch.onnx.export(Net().eval(), (torch.randn(1, 3, 8, 8),), str(path), dynamo=False, do_constant_folding=True)
    text, _, _ = import_target(str(path))
    assert "channels: {start: 2, stop: 6}" in text
    from archcalc.analysis.engine import analyze

    report = analyze(loads(text))
    # conv 3*8*9 + 8 = 224 params; output 4 x 8 x 8 (channels 2..5)
    assert report.totals["params"] == 224 and tuple(report.rows[-1].shape) == (4, 8, 8)
