"""archcalc explain: the worked arithmetic, every number checked by hand here."""

from archcalc import analyze, load
from archcalc.output.explain import explain_layer, explain_network


def test_vgg16_conv1_1(cli):
    code, out, err = cli("explain", "vgg16", "conv1_1")
    assert code == 0 and err == ""
    lines = out.splitlines()
    # the output-size formula with VGG's 3x3, pad 1, stride 1 on 224: (224 + 2 - 2 - 1)/1 + 1 = 224
    assert "  H, W: (224 + 1 + 1 - 1*(3-1) - 1)/1 + 1 = 224" in lines
    # 64 filters of 3x3x3 plus 64 biases: 1,728 + 64 = 1,792
    assert "  64 * (3/1) * 3 * 3 + 64 = 1,728 + 64 = 1,792" in lines
    assert 64 * 3 * 3 * 3 + 64 == 1792
    # MACs: every one of the 64x224x224 outputs takes 3*3*3 = 27
    assert "  64 * 224 * 224 * (3/1) * 3 * 3 = 86,704,128" in lines and 64 * 224 * 224 * 27 == 86_704_128
    # receptive field from the input (1, 1, 0): r = 1 + 2*1 = 3, j = 1, p = 0 + 1 = 1
    assert "  H: r = 1 + (3-1)*1 = 3; j = 1*1 = 1; p = 0 + 1*1 = 1" in lines
    assert "  receptive field 3/1/1 (size/stride/padding)" in lines
    # memory: 64*224*224 = 3,211,264 values, 4 bytes each
    assert "activations: 64 * 224 * 224 = 3,211,264 values x 4 bytes (fp32) = 12,845,056 bytes" in lines
    # its share: 1,792 / 138,357,544 = 0.0013%; 86,704,128 / 15,470,264,320 = 0.56%
    assert "  params 1,792 of 138,357,544 (0.0013%)" in lines
    assert "  MACs 86,704,128 of 15,470,264,320 (0.56%)" in lines
    assert "! " not in out  # no disagreement with the engine


def test_inception_bottleneck_network(cli):
    code, out, _ = cli("explain", "inception-bottleneck")
    assert code == 0
    lines = out.splitlines()
    # CS231n's module: 1x1 128 on 256 channels at 28x28
    assert "  b1x1.conv1: params 128 * (256/1) * 1 * 1 + 128 = 32,896; MACs 128 * 28 * 28 * (256/1) * 1 * 1 = 25,690,112" in lines
    assert 128 * 28 * 28 * 256 == 25_690_112
    assert "  b3x3.conv2: params 192 * (64/1) * 3 * 3 + 192 = 110,784; MACs 192 * 28 * 28 * (64/1) * 3 * 3 = 86,704,128" in lines
    assert 192 * 28 * 28 * 64 * 9 == 86_704_128
    total = 25_690_112 + 3 * 12_845_056 + 86_704_128 + 120_422_400
    assert total == 271_351_808
    assert "  sum: params 346,720, MACs 271,351,808" in lines
    assert "printed: \"358M ops\" (CS231n 2017, lecture 9)" in lines
    # the slide's 358M is the sum with the 3x3 term twice
    assert total + 86_704_128 == 358_055_936
    # 358,000,000 - 271,351,808 = 86,648,192, and 86,648,192 / 271,351,808 = 31.9%
    assert "  the layers: macs = 271,351,808; printed 358M = 358,000,000: differs by 86,648,192: the printed figure is 31.9% more" in lines
    assert '  macs + rows["b3x3.conv2"].macs = 271,351,808 + 86,704,128 = 358,055,936: rounds to the printed 358M' in lines
    assert "  why: the 3x3 conv's term is counted twice" in lines


def test_printed_figure_at_another_input_makes_no_claim(cli):
    """At 14x14 the module's MACs are a quarter: 271,351,808 / 4 = 67,837,952, and with the 3x3 term
    twice 67,837,952 + 86,704,128 / 4 = 89,513,984, nowhere near 358M: no 'why' is shown."""
    code, out, _ = cli("explain", "inception-bottleneck", "--input", "256x14x14")
    assert code == 0
    assert 271_351_808 // 4 == 67_837_952 and 67_837_952 + 86_704_128 // 4 == 89_513_984
    lines = out.splitlines()
    assert "  the layers: macs = 67,837,952; printed 358M = 358,000,000: differs by 290,162,048: the printed figure is 428% more" in lines
    assert '  macs + rows["b3x3.conv2"].macs = 67,837,952 + 21,676,032 = 89,513,984: does not give the printed 358M either' in lines
    assert "why:" not in out and "rounds to" not in out


def test_a_user_spec_named_like_a_zoo_network_gets_the_generic_explanation(cli, tmp_path):
    """Claims are spec data: a user's own spec called inception-bottleneck, with other layers and no
    claims, is explained like any other (1x1 conv 8 -> 4 on 5x5: 4*8 + 4 = 36 params, 4*5*5*8 = 800 MACs)."""
    f = tmp_path / "mine.yaml"
    f.write_text("name: inception-bottleneck\ninput: [8, 5, 5]\nlayers:\n  - conv: {out: 4, kernel: 1}\n")
    code, out, err = cli("explain", str(f))
    assert code == 0 and err == ""
    assert "  sum: params 36, MACs 800" in out.splitlines() and 4 * 8 + 4 == 36 and 4 * 5 * 5 * 8 == 800
    assert "printed" not in out


def test_a_user_spec_states_its_own_printed_figure(cli, tmp_path):
    """1x1 conv 8 -> 4 on 5x5 (no bias): 32 params, 800 MACs. A printed 1K rounds to it (800 is 1K at
    the printed precision), a printed 2K differs by 1,200 (150%), a printed 0.8K equals it; params + 1
    reproduces a printed 33."""
    f = tmp_path / "mine.yaml"
    f.write_text("input: [8, 5, 5]\nlayers:\n  - {conv: {out: 4, kernel: 1, bias: false}, name: c}\n"
                 "claims:\n"
                 "  - {printed: '1K ops', source: my notes, value: 1K, of: macs}\n"
                 "  - {printed: '2K ops', source: my notes, value: 2K, of: macs}\n"
                 "  - {printed: '0.8K ops', source: my notes, value: 0.8K, of: 'rows[\"c\"].macs'}\n"
                 "  - {printed: '33 params', source: my notes, value: 33, of: params, reproduce: params + 1, why: one too many}\n")
    code, out, err = cli("explain", str(f))
    assert code == 0 and err == ""
    lines = out.splitlines()
    assert "  the layers: macs = 800: rounds to the printed 1K" in lines
    assert "  the layers: macs = 800; printed 2K = 2,000: differs by 1,200: the printed figure is 150% more" in lines
    assert '  the layers: rows["c"].macs = 800: equals the printed 0.8K' in lines
    assert "  params + 1 = 32 + 1 = 33: equals the printed 33" in lines and "  why: one too many" in lines


def test_claim_errors_name_the_line_and_the_fix(cli, tmp_path):
    base = "input: [8, 5, 5]\nlayers:\n  - {conv: {out: 4, kernel: 1}, name: c}\nclaims:\n"
    cases = [
        ("  - {printed: x, source: y, value: 1K, of: 'rows[\"cc\"].macs'}\n", "no layer 'cc'", "did you mean 'c'"),
        ("  - {printed: x, source: y, value: 1K, of: 'rows[\"c\"].flops'}\n", "no field 'flops'", None),
        ("  - {printed: x, source: y, value: lots, of: macs}\n", "'value' is the printed number", None),
        ("  - {printed: x, source: y, value: 1K, of: __import__}\n", "unknown name '__import__'", None),
        ("  - {printed: x, source: y, value: 1K, of: macs, sauce: z}\n", "unknown key 'sauce'", "did you mean 'source'"),
        ("  - {printed: x, value: 1K, of: macs}\n", "missing key 'source'", None),
        ("  - {printed: x, source: y, value: 1K, of: 'rows[\"c\"].macs.real'}\n", "may use '.'", None),
    ]
    for i, (text, fact, hint) in enumerate(cases):
        f = tmp_path / f"bad{i}.yaml"
        f.write_text(base + text)
        code, out, err = cli("summary", str(f))
        assert code == 2 and out == "", text
        assert len(err.strip().splitlines()) == 1 and f"bad{i}.yaml:5: claims[0]" in err and fact in err, err
        assert hint is None or hint in err, err


def test_a_window_that_does_not_tile(cli):
    code, out, _ = cli("explain", "alexnet-paper", "conv1", "--input", "3x224x224")
    # (224 - 11)/4 + 1 = 54.25: floor(213/4) + 1 = 54
    assert ("  H, W: floor((224 + 0 + 0 - 1*(11-1) - 1)/4) + 1 = floor(213/4) + 1 = 53 + 1 = 54   "
            "(213/4 = 53.25 is not a whole number)") in out.splitlines()
    assert "warning: 11x11/4 window does not tile its 224x224 input" in out


def test_symbolic_spec_stays_symbolic(cli):
    code, out, _ = cli("explain", "stack3x3", "conv2")
    assert code == 0
    lines = out.splitlines()
    assert "  C * (C/1) * 3 * 3 = 9*C**2" in lines
    assert "  C * H * W * (C/1) * 3 * 3 = 9*C**2*H*W" in lines
    assert "  H: r = 3 + (3-1)*1 = 5; j = 1*1 = 1; p = 1 + 1*1 = 2" in lines
    code, out, _ = cli("explain", "stack3x3")
    assert "  sum: params 27*C**2, MACs 27*C**2*H*W" in out.splitlines()


def test_other_layer_types_are_explained(cli):
    code, out, _ = cli("explain", "vgg16", "fc6")
    # 7*7*512 = 25,088 inputs, 4096 outputs
    assert "  25088 * 4096 + 4096 = 102,760,448 + 4096 = 102,764,544" in out.splitlines()
    assert 25088 * 4096 == 102_760_448 and 25088 * 4096 + 4096 == 102_764_544
    assert "MACs: in * out = 25088 * 4096 = 102,760,448" in out.splitlines()
    code, out, _ = cli("explain", "resnet18", "bn1")
    assert "params: 2 * C (scale and shift) = 2 * 64 = 128" in out
    assert "buffers: 2 * C (running mean and variance) = 2 * 64 = 128; not params" in out
    code, out, _ = cli("explain", "inception_resnet_v2", "Conv2d_1a_3x3.bn")  # Keras' scale=False: a shift per channel
    assert code == 0 and "params: C (shift only) = 32" in out.splitlines() and "! " not in out
    code, out, _ = cli("explain", "inception-bottleneck", "output")
    assert "output channels: the branches' channels added, 128 + 192 + 96 + 64 = 480" in out
    code, out, _ = cli("explain", "resnet18", "maxpool")
    # 3x3/2 pad 1 on 112: (112 + 2 - 2 - 1)/2 = 55.5 -> floor + 1 = 56
    assert "  H, W: floor((112 + 1 + 1 - 1*(3-1) - 1)/2) + 1 = floor(111/2) + 1 = 55 + 1 = 56" in out
    code, out, _ = cli("explain", "resnet18", "layer1.0.residual.conv1")
    assert code == 0 and "! " not in out


def test_unknown_and_ambiguous_layers(cli):
    code, _, err = cli("explain", "vgg16", "conv9_9")
    assert code == 2 and err == "archcalc: error: 'vgg16' has no layer 'conv9_9'; did you mean 'conv5_3'?\n"
    code, _, err = cli("explain", "resnet18", "conv1")  # conv1 exists at the top: exact name wins
    assert code == 0
    code, _, err = cli("explain", "resnet18", "bn2")
    assert code == 2 and "ambiguous" in err and "layer1.0.residual.bn2" in err


def test_every_layer_of_six_zoo_networks_explains_without_disagreement():
    """explain recomputes conv, linear and window arithmetic on its own: any difference from the
    engine would print a '!' line."""
    for name in ("resnet50", "inception_v3", "mobilenet_v2", "alexnet-paper", "densenet121", "squeezenet1_0"):
        net = load(name)
        r = analyze(net)
        for i in range(len(r.rows)):
            text = "\n".join(explain_layer(net, r, i))
            assert "\n  ! " not in text and not text.startswith("!"), (name, r.rows[i].name, text)
        assert not any(x.startswith("  ! ") for x in explain_network(net, r)), name


def test_printed_figures_arithmetic():
    """The zoo's printed figures (claims in their specs), each checked by hand here."""
    def text(name, *args):
        net = load(name)
        return "\n".join(explain_network(net, analyze(net)))

    # 854,196,224 rounds to 854M
    assert "  the layers: macs = 854,196,224: rounds to the printed 854M" in text("inception-naive")
    # AlexNet at its 227 input: (227 - 11)/4 + 1 = 55, as printed; 60,965,224 params cut (not rounded) to 60M
    a = text("alexnet-paper")
    assert (227 - 11) // 4 + 1 == 55 and '  the layers: rows["conv1"].height = 55: equals the printed 55' in a
    assert "  the layers: params = 60,965,224: is the printed 60M cut, not rounded, to its digits" in a
    # GoogLeNet conv1: 7*7*3*64 + 64 = 9,472 params (printed 2.7K); 9,408 x 112*112 = 118,013,952 MACs; with 34M instead:
    g = text("googlenet-paper")
    assert 7 * 7 * 3 * 64 + 64 == 9472 and '  the layers: rows["conv1"].params = 9,472; printed 2.7K = 2,700: differs by 6,772' in g
    assert 9408 * 112 * 112 == 118_013_952 and 1_582_671_872 - 118_013_952 + 34_000_000 == 1_498_657_920
    assert ('  macs - rows["conv1"].macs + 34000000 = 1,582,671,872 - 118,013,952 + 34,000,000 = 1,498,657,920: '
            "rounds to the printed 1.5G") in g
    # ResNet-50 v1: 3,857,973,248 is 3.86 x 10^9, printed 3.8 (cut)
    assert "  the layers: macs = 3,857,973,248: is the printed 3.8G cut, not rounded, to its digits" in text("resnet50-v1")
    p = text("preact-resnet1001")
    assert "  params - layers[\"batchnorm\"].params = 10,327,706 - 149,216 = 10,178,490: rounds to the printed 10.2M" in p
    assert 10_327_706 - 149_216 == 10_178_490
    assert 38_600_000 - 33_724_618 == 4_875_382 and "printed 38.6M = 38,600,000: differs by 4,875,382" in text("fractalnet")
    # SqueezeNet at 224: floor((224 - 7)/2) + 1 = 109, printed 111 (for 227)
    assert (224 - 7) // 2 + 1 == 109 and '  the layers: rows["conv1"].height = 109; printed 111: differs by 2' in text("squeezenet1_0")
    # CS231n's VGG-16 rows: 150,528 + 2 x 3,211,264 + ... = 15,237,608
    v = text("vgg16")
    rows = [150_528, 3_211_264, 3_211_264, 802_816, 1_605_632, 1_605_632, 401_408, 802_816, 802_816, 802_816,
            200_704, 401_408, 401_408, 401_408, 100_352, 100_352, 100_352, 100_352, 25_088, 4096, 4096, 1000]
    assert sum(rows) == 15_237_608 and "  the layers: activations = 15,237,608; printed 24M = 24,000,000: differs by 8,762,392" in v
    assert 24_000_000 - 15_237_608 == 8_762_392


def test_resampling_layers_are_explained(cli):
    """U-Net's 2x2/2 transposed conv: output position o reads inputs ceil((o - 1)/2) .. floor(o/2)
    (o = 2i and o = 2i + 1 both come from input i); it used to end in an AttributeError."""
    code, out, err = cli("explain", "unet", "up4.upconv")
    assert code == 0 and err == ""
    assert "  H: first(o) = ceil(1/2*o - 1/2), last(o) = floor(1/2*o)" in out.splitlines()
    for o in range(8):  # ceil((o - 1)/2) == floor(o/2) == o // 2: one input per output
        assert -((1 - o) // 2) == o // 2
    code, out, err = cli("explain", "fcn_resnet50")
    assert code == 0 and err == ""


def test_explain_every_layer_of_the_segmentation_nets_and_unet():
    from archcalc.spec import zoo

    names = [n for n in zoo.names() if n.startswith(("fcn_", "deeplabv3", "lraspp", "unet"))]
    assert len(names) >= 5, names
    for name in names:
        net = load(name)
        r = analyze(net)
        explain_network(net, r)
        for i in range(len(r.rows)):
            text = "\n".join(explain_layer(net, r, i))
            assert "\n  ! " not in text, (name, r.rows[i].name)


def test_explain_every_zoo_network_exits_0(cli):
    """`archcalc explain NAME` on every zoo spec (issue 20): exit 0, nothing on stderr, and no
    disagreement with the engine ('! ... please report')."""
    from archcalc.spec import zoo

    names = zoo.names()
    assert len(names) > 90
    for name in names:
        code, out, err = cli("explain", name)
        assert code == 0 and err == "", (name, err)
        assert "please report" not in out, name
