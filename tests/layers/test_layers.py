"""Every registered layer type: one hand-checked case (shape, params, buffers, MACs), run through
the loader and the engine. Adding a layer type without a case here fails the guard test."""

import textwrap

import pytest

from archcalc import analyze, layers
from archcalc.spec.load import loads

# type: (input, layer YAML, output shape, params, buffers, MACs) -- arithmetic in the comments
CASES = {
    # (32 + 1 + 1 - 3) // 2 + 1 = 16; params 16*(8/2)*3*3 + 16 = 592; MACs 16*16*16*4*9
    "conv": ([8, 32, 32], "conv: {out: 16, kernel: 3, stride: 2, padding: 1, groups: 2}", (16, 16, 16), 592, 0, 16 * 256 * 36),
    # dilation 2: k_eff = 5, (32 - 5) + 1 = 28; no bias: 4*8*9
    "conv2": ([8, 32, 32], "conv: {out: 4, kernel: 3, dilation: 2, bias: false}", (4, 28, 28), 288, 0, 4 * 28 * 28 * 72),
    # depthwise: groups = 8, out defaults to 8: 8*1*9 + 8
    "conv3": ([8, 10, 10], "conv: {kernel: 3, padding: 1, groups: depthwise}", (8, 10, 10), 80, 0, 8 * 100 * 9),
    # same, stride 2 (TF): ceil(7/2) = 4, total pad (4-1)*2 + 3 - 7 = 2 -> 1 + 1
    "conv4": ([1, 7, 7], "conv: {out: 1, kernel: 3, stride: 2, padding: same, bias: false}", (1, 4, 4), 9, 0, 16 * 9),
    # asymmetric [top, bottom, left, right]: H (5+0+1-3)+1 = 4, W (5+2+0-3)+1 = 5
    "conv5": ([1, 5, 5], "conv: {out: 2, kernel: 3, padding: [0, 1, 2, 0]}", (2, 4, 5), 20, 0, 2 * 20 * 9),
    # (55 - 3) // 2 + 1 = 27
    "maxpool": ([4, 55, 55], "maxpool: {kernel: 3, stride: 2}", (4, 27, 27), 0, 0, 0),
    # ceil mode: ceil((112 - 3) / 2) + 1 = 56 (GoogLeNet)
    "maxpool2": ([4, 112, 112], "maxpool: {kernel: 3, stride: 2, ceil_mode: true}", (4, 56, 56), 0, 0, 0),
    # ceil mode, last window would start in the padding: ceil((5+1+1-2)/2)+1 = 4, (4-1)*2 = 6 >= 5+1 -> 3
    "maxpool3": ([1, 5, 5], "maxpool: {kernel: 2, stride: 2, padding: 1, ceil_mode: true}", (1, 3, 3), 0, 0, 0),
    "avgpool": ([4, 8, 8], "avgpool: {kernel: 2}", (4, 4, 4), 0, 0, 0),
    "adaptive_avgpool": ([4, 13, 13], "adaptive_avgpool: {size: [6, 6]}", (4, 6, 6), 0, 0, 0),
    "global_avgpool": ([4, 7, 7], "global_avgpool", (4, 1, 1), 0, 0, 0),
    # BN: 2C params (scale, shift) and 2C buffers (running mean, var)
    "batchnorm": ([16, 4, 4], "batchnorm", (16, 4, 4), 32, 32, 0),
    "bn_noaffine": ([16, 4, 4], "bn: {affine: false}", (16, 4, 4), 0, 32, 0),
    "bn_shift": ([16, 4, 4], "bn: {scale: false}", (16, 4, 4), 16, 32, 0),  # beta only, as Keras scale=False
    "lrn": ([16, 4, 4], "lrn: {size: 5}", (16, 4, 4), 0, 0, 0),
    "scale": ([16, 4, 4], "scale: {factor: 0.17}", (16, 4, 4), 0, 0, 0),
    "flatten": ([4, 3, 3], "flatten", (36,), 0, 0, 0),
    "dropout": ([10], "dropout: {p: 0.5}", (10,), 0, 0, 0),
    "identity": ([4, 3, 3], "identity", (4, 3, 3), 0, 0, 0),
    "softmax": ([10], "softmax", (10,), 0, 0, 0),
    # pad_channels: ceil(9/2) = 5; channels 4 -> 8
    "pad_channels": ([4, 9, 9], "pad_channels: {out: 8, stride: 2}", (8, 5, 5), 0, 0, 0),
    "concat": ([4, 6, 6], "concat: [identity, [{conv: {out: 2, kernel: 1}}]]", (6, 6, 6), 10, 0, 2 * 36 * 4),
    "add": ([4, 6, 6], "add: [identity, [{conv: {out: 4, kernel: 3, padding: 1}}]]", (4, 6, 6), 148, 0, 4 * 36 * 36),
    "mean": ([4, 6, 6], "mean: [identity, [relu], [sigmoid]]", (4, 6, 6), 0, 0, 0),
    # --- issue 8
    # (5-1)*2 + (2-1) + 1 = 10; params 4*2*2*2 + 2 = 34; MACs over INPUT positions (FlopCounterMode):
    # C_in*H*W*(C_out/g)*k*k = 4*25*2*4 = 800
    "conv_transpose": ([4, 5, 5], "conv_transpose: {out: 2, kernel: 2, stride: 2}", (2, 10, 10), 34, 0, 800),
    # (5-1)*2 - 2*1 + (3-1) + 1 + 1 = 10; params 4*(4/2)*9 = 72; MACs 4*25*2*9 = 1800
    "conv_transpose2": ([4, 5, 5], "conv_transpose: {out: 4, kernel: 3, stride: 2, padding: 1, output_padding: 1, groups: 2, bias: false}",
                        (4, 10, 10), 72, 0, 1800),
    # SE gate: 1x1 conv 4->4 on the 4x1x1 pool: 16 + 4 params, 16 MACs; the product counts nothing
    "mul": ([4, 6, 6], "mul: {trunk: identity, gate: [global_avgpool, {conv: {out: 4, kernel: 1}}, hardsigmoid]}", (4, 6, 6), 20, 0, 16),
    "layer_scale": ([8, 3, 3], "layer_scale: {init: 1.0e-6}", (8, 3, 3), 8, 0, 0),  # C params, no buffers
    # ECA's 1-D conv over 16 pooled channels, kernel 5: 5 weights; MACs 16 outputs * 5 = 80
    "eca_conv": ([16, 1, 1], "eca_conv: {kernel: 5}", (16, 1, 1), 5, 0, 80),
    # GCNet's context pooling on 16 x 5 x 5: the logits' conv 16 weights + 1 bias; MACs 2 * 16*5*5 = 800
    # (the 1x1 conv to one logit per position, then the weighted sum, a matmul of 16 x 25 by 25 x 1)
    "context_pool": ([16, 5, 5], "context_pool", (16, 1, 1), 17, 0, 800),
    # one learnable scale and one bias for the whole map: 2 params, however many channels
    "learnable_affine": ([8, 3, 3], "learnable_affine: {scale: 0.5}", (8, 3, 3), 2, 0, 0),
    "star_relu": ([8, 3, 3], "star_relu", (8, 3, 3), 2, 0, 0),
    "square": ([8, 3, 3], "square", (8, 3, 3), 0, 0, 0),
    "layer_scale2": ([8, 3, 3], "layer_scale: {bare: true}", (8, 3, 3), 8, 0, 0),  # the same C, as a bare parameter
    # nn.Linear(8, 16) at each of the 5x5 positions: params 8*16 + 16 = 144; MACs 16*5*5*8 = 3200,
    # as a 1x1 conv (16*(8/1)*1*1 + 16 = 144 params, 16*25*8 MACs)
    "channel_linear": ([8, 5, 5], "channel_linear: {out: 16}", (16, 5, 5), 144, 0, 3200),
    "channel_linear2": ([8, 5, 5], "channel_linear: {bias: false}", (8, 5, 5), 64, 0, 1600),  # 8*8; 8*25*8
    "layernorm": ([8, 3, 3], "layernorm: {eps: 1.0e-6}", (8, 3, 3), 16, 0, 0),  # 2C params, no buffers
    "layernorm2": ([10], "layernorm", (10,), 20, 0, 0),
    "layernorm3": ([8, 3, 3], "layernorm: {affine: false}", (8, 3, 3), 0, 0, 0),
    "stochastic_depth": ([4, 3, 3], "stochastic_depth: {p: 0.1}", (4, 3, 3), 0, 0, 0),
    "channels": ([8, 5, 5], "channels: {start: 2, stop: 6}", (4, 5, 5), 0, 0, 0),
    "channels2": ([8, 5, 5], "channels: {start: 4}", (4, 5, 5), 0, 0, 0),  # to the end
    "channel_shuffle": ([8, 5, 5], "channel_shuffle: {groups: 2}", (8, 5, 5), 0, 0, 0),
    "upsample": ([3, 5, 7], "upsample: {scale: 2}", (3, 10, 14), 0, 0, 0),
    "upsample2": ([3, 5, 7], "upsample: {size: [8, 9]}", (3, 8, 9), 0, 0, 0),
    "upsample3": ([3, 5, 7], "upsample: {scale: 1.5}", (3, 7, 10), 0, 0, 0),  # floor(5*1.5), floor(7*1.5)
    # conv 3x3/2: (9-3)//2+1 = 4; params 2*3*9 + 2 = 56, MACs 2*4*4*27 = 864; then back to the input's 9x9
    "upsample4": ([3, 9, 9], "conv: {out: 2, kernel: 3, stride: 2}\n  - upsample: {like: input}", (2, 9, 9), 56, 0, 864),
    "crop": ([3, 9, 9], "crop: {size: [5, 4]}", (3, 5, 4), 0, 0, 0),
    # a: 2x8x8 (56 params, 2*64*27 = 3456 MACs), b: 2x6x6 (2*2*9 + 2 = 38 params, 2*36*18 = 1296 MACs);
    # a cropped to b's 6x6 and joined on channels: 4x6x6
    "crop2": ([3, 10, 10], "{conv: {out: 2, kernel: 3}, name: a}\n  - {conv: {out: 2, kernel: 3}, name: b}\n"
              "  - concat: [identity, {from: a, layers: [{crop: {like: b}}]}]", (4, 6, 6), 94, 0, 4752),
}
for act in ("relu", "relu6", "leaky_relu", "elu", "silu", "hardswish", "hardsigmoid", "sigmoid", "tanh", "gelu",
            "mish", "softplus", "selu", "celu", "softsign", "tanhshrink", "hardtanh", "logsigmoid", "hardshrink",
            "softshrink", "rrelu"):
    CASES[act] = ([3, 5, 5], act, (3, 5, 5), 0, 0, 0)
CASES.update({
    # --- issue 23
    "threshold": ([3, 5, 5], "threshold: {threshold: 0.5, value: 0}", (3, 5, 5), 0, 0, 0),
    "prelu": ([3, 5, 5], "prelu", (3, 5, 5), 1, 0, 0),  # nn.PReLU(): one shared slope
    "prelu2": ([3, 5, 5], "prelu: {per_channel: true}", (3, 5, 5), 3, 0, 0),  # nn.PReLU(3): one per channel
    "groupnorm": ([8, 3, 3], "groupnorm: {groups: 4}", (8, 3, 3), 16, 0, 0),  # 2C params (scale, shift), no buffers
    "groupnorm2": ([8, 3, 3], "groupnorm: {groups: 2, affine: false}", (8, 3, 3), 0, 0, 0),
    "instancenorm": ([8, 3, 3], "instancenorm", (8, 3, 3), 0, 0, 0),  # torch's defaults: no affine, no running stats
    "instancenorm2": ([8, 3, 3], "instancenorm: {affine: true, track_running_stats: true}", (8, 3, 3), 16, 16, 0),  # 2C, 2C
    "grn": ([8, 3, 3], "grn", (8, 3, 3), 16, 0, 0),  # weight and bias of C each
    "l2norm": ([8, 3, 3], "l2norm", (8, 3, 3), 0, 0, 0),  # x / max(||x||, eps) over C: nothing learnable
    # std_conv: conv's 6*8*9 + 6 = 438 params, and with gain + 6 = 444; MACs a conv's: 6*9*9*8*9 = 34,992
    "std_conv": ([8, 9, 9], "std_conv: {out: 6, kernel: 3, padding: 1}", (6, 9, 9), 438, 0, 34_992),
    "std_conv2": ([8, 9, 9], "std_conv: {out: 6, kernel: 3, padding: 1, gain: true}", (6, 9, 9), 444, 0, 34_992),
    # reflect padding does not change the numbers: 6*8*9 + 6; (9 + 2 - 3) + 1 = 9
    "conv6": ([8, 9, 9], "conv: {out: 6, kernel: 3, padding: 1, padding_mode: reflect}", (6, 9, 9), 438, 0, 34_992),
    # pad: 9 + 1 + 2 = 12 rows, 9 + 0 + 3 = 12 columns
    "pad": ([8, 9, 9], "pad: {padding: [1, 2, 0, 3], mode: replicate}", (8, 12, 12), 0, 0, 0),
    # blur pool 3/2: pad ((2-1) + (3-1)) // 2 = 1, (9 + 2 - 3) // 2 + 1 = 5; buffer 8*3*3 = 72; MACs 8*5*5*9 = 1800
    "blur_pool": ([8, 9, 9], "blur_pool", (8, 5, 5), 0, 72, 1800),
    # filter 4: pad (1 + 3) // 2 = 2, (9 + 4 - 4) // 2 + 1 = 5; one shared 4x4 buffer = 16; MACs 8*5*5*16 = 3200
    "blur_pool2": ([8, 9, 9], "blur_pool: {filter: 4, per_channel: false}", (8, 5, 5), 0, 16, 3200),
    # pixel shuffle: 8 / 2^2 = 2 channels, 5*2 x 7*2; unshuffle: 8 * 3^2 = 72 channels, 9/3 x 6/3
    "pixel_shuffle": ([8, 5, 7], "pixel_shuffle: {factor: 2}", (2, 10, 14), 0, 0, 0),
    "pixel_unshuffle": ([8, 9, 6], "pixel_unshuffle: {factor: 3}", (72, 3, 2), 0, 0, 0),
    "pixel_unshuffle2": ([3, 8, 8], "space_to_depth: {factor: 4, order: blocks}", (48, 2, 2), 0, 0, 0),  # TResNet's stem
    "adaptive_maxpool": ([4, 13, 13], "adaptive_maxpool: {size: [6, 5]}", (4, 6, 5), 0, 0, 0),
    "global_maxpool": ([4, 7, 7], "global_maxpool", (4, 1, 1), 0, 0, 0),
    # (8 + 2 - 3) // 2 + 1 = 4; divisor_override changes values only
    "avgpool2": ([4, 8, 8], "avgpool: {kernel: 3, stride: 2, padding: 1, divisor_override: 9}", (4, 4, 4), 0, 0, 0),
    "sub": ([4, 6, 6], "sub: [identity, [tanh]]", (4, 6, 6), 0, 0, 0),
    "maximum": ([4, 6, 6], "maximum: [identity, [tanh], [sigmoid]]", (4, 6, 6), 0, 0, 0),
    # along height: 6 + 3 rows (a 2x1 max pool halves them); along width 6 + 6 columns
    "concat2": ([4, 6, 6], "{concat: [identity, [{maxpool: {kernel: [2, 1]}}]], dim: 2}", (4, 9, 6), 0, 0, 0),
    "concat3": ([4, 6, 6], "{concat: [identity, [tanh]], dim: 3}", (4, 6, 12), 0, 0, 0),
    "upsample5": ([3, 5, 7], "upsample: {scale: 2, mode: bicubic}", (3, 10, 14), 0, 0, 0),
    "upsample6": ([3, 5, 7], "upsample: {scale: 0.5, mode: area}", (3, 2, 3), 0, 0, 0),  # floor(5/2), floor(7/2)
    "upsample7": ([3, 5, 7], "upsample: {size: [8, 9], mode: nearest-exact}", (3, 8, 9), 0, 0, 0),
    "upsample8": ([3, 5, 7], "upsample: {scale: [2, 1.5]}", (3, 10, 10), 0, 0, 0),  # 5*2, floor(7*1.5)
    "radix_softmax": ([12, 1, 1], "radix_softmax: {radix: 3, groups: 2}", (12, 1, 1), 0, 0, 0),  # 12 = 2 * 3 * 2
})


def run(inp, item):
    text = f"input: {inp}\nlayers:\n  - {item}\n"
    return analyze(loads(text, "case.yaml"))


def test_linear():
    # 36*10 + 10 params; 360 MACs
    r = run([4, 3, 3], "flatten\n  - linear: {out: 10}")
    assert (r.output, r.totals["params"], r.totals["macs"]) == ((10,), 370, 360)
    r = run([36], "fc: {out: 10, bias: false}")
    assert (r.totals["params"], r.totals["macs"]) == (360, 360)


@pytest.mark.parametrize("case", sorted(CASES))
def test_layer_case(case):
    inp, item, shape, params, buffers, macs = CASES[case]
    r = run(inp, item)
    assert r.output == shape
    assert (r.totals["params"], r.totals["buffers"], r.totals["macs"]) == (params, buffers, macs)


def test_every_layer_type_has_a_case():
    tested = {c if c in layers.REGISTRY else c.rstrip("0123456789").replace("bn_noaffine", "batchnorm").replace("bn_shift", "batchnorm") for c in CASES}
    tested.add("linear")
    assert set(layers.REGISTRY) <= tested, set(layers.REGISTRY) - tested


def test_receptive_field_composition():
    # conv 3 (s1), conv 3 dilation 2 (k_eff 5), pool 2/2, conv 3:  r = 1+2+4 = 7 -> 8 -> 8 + 2*2 = 12
    r = run([1, 64, 64], textwrap.dedent("""\
        conv: {kernel: 3, padding: 1}
          - conv: {kernel: 3, dilation: 2, padding: 2}
          - maxpool: {kernel: 2}
          - conv: {kernel: 3, padding: 1}"""))
    rf = [row.rf[0] for row in r.rows]
    assert [(x.size, x.stride, x.padding) for x in rf] == [(3, 1, 1), (7, 1, 3), (8, 2, 3), (12, 2, 5)]


def test_misaligned_branches_are_flagged():
    # a 3x3 conv without padding is centred one pixel in; the identity branch is not
    r = run([4, 8, 8], "concat: [[{maxpool: {kernel: 2, stride: 1}}], [{avgpool: {kernel: 2, stride: 1}}]]")
    assert r.warnings == []
    r = run([4, 8, 8], "concat: [[{conv: {out: 4, kernel: 3, padding: [0, 2, 0, 2]}}], [{conv: {out: 4, kernel: 3, padding: 1}}]]")
    # the first branch reads rows o .. o + 2 (centred on o + 1), the second o - 1 .. o + 1: one row
    # apart at every position, on both axes
    assert [(w.code, w.layer, w.get("offset_h"), w.get("offset_w")) for w in r.warnings] == [
        ("alignment.centres", "concat1", -1, -1)]
    assert str(r.warnings[0]).startswith("concat1: branches are not centre-aligned: ")


def test_list_argument_as_kernel():
    text = textwrap.dedent("""\
        input: [4, 17, 17]
        blocks:
          basic:
            args: [out, kernel, padding]
            layers: [{conv: {out: $out, kernel: $kernel, padding: $padding, bias: false}}]
        layers:
          - basic: {out: 8, kernel: [1, 7], padding: [0, 3]}
        """)
    r = analyze(loads(text, "k.yaml"))
    # 8 * 4 * 1 * 7 weights; the 1x7 kernel keeps 17x17 with padding (0, 3)
    assert (r.output, r.totals["params"]) == ((8, 17, 17), 224)


def test_compare_lines_up_layers(cli, tmp_path):
    a = tmp_path / "a.yaml"
    b = tmp_path / "b.yaml"
    a.write_text("input: [3, 16, 16]\nlayers:\n  - {conv: {out: 8, kernel: 3}, name: c1}\n  - relu\n")
    b.write_text("input: [3, 16, 16]\nlayers:\n  - {conv: {out: 16, kernel: 3}, name: c1}\n  - relu\n")
    code, out, _ = cli("compare", str(a), str(b))
    assert code == 0
    assert "layers that differ" in out
    # 8*3*9+8 = 224 vs 16*3*9+16 = 448 params; MACs 8*14*14*27 = 42,336 vs 84,672
    assert "8x14x14 / 224 / 42,336" in out and "16x14x14 / 448 / 84,672" in out
    assert "2x" in out


FROM_SPEC = """\
input: [4, 8, 8]
layers:
  - {identity: {}, name: x}
  - {conv: {out: 4, kernel: 3, padding: 1}, name: c1}
  - mean:
      - [{conv: {out: 4, kernel: 3, padding: 1}, name: c2}]
      - {from: x, layers: [{conv: {out: 4, kernel: 1}, name: c3}]}
      - {from: %s}
    name: j
"""


def test_branch_from_an_earlier_layer():
    r = analyze(loads(FROM_SPEC % "c1", "f.yaml"))
    j = r.row("j")
    assert j.inputs == ["j.b1.c2", "j.b2.c3", "c1"]
    assert r.row("j.b2.c3").inputs == ["x"]
    # 3 convs: 2 x (4*4*9 + 4) + (4*4 + 4)
    assert r.totals["params"] == 2 * 148 + 20
    # largest receptive field over the three paths: c1 then c2 = 5
    assert j.rf[0].size == 5


def test_branch_from_unknown_layer(cli, tmp_path):
    path = tmp_path / "f.yaml"
    path.write_text(FROM_SPEC % "c11")
    code, out, err = cli("summary", str(path))
    assert code == 2
    assert err == f"archcalc: error: {path}:8: layers[2].mean[2] (mean): 'from: c11' names no earlier layer; did you mean 'c1'?\n"


def test_inplace_relu_on_a_shared_tensor_is_a_new_tensor():
    # relu in place on the conv output, which the identity branch also reads: it cannot overwrite
    # it, so it produces 4*6*6 = 144 new values; the relu after the add can (and adds none)
    r = run([4, 6, 6], "conv: {out: 4, kernel: 3, padding: 1}\n  - add: [identity, [relu, {conv: {out: 4, kernel: 1}}]]\n  - relu")
    assert r.row("add1.b2.relu1").values == 144
    assert r.row("relu1").values == 0
    # on the network input, likewise
    assert run([4, 6, 6], "relu").rows[0].values == 144
