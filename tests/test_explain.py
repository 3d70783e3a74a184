"""archcalc explain: the worked arithmetic, every number checked by hand here."""

from archcalc import analyze, load
from archcalc.explain import ERRATA, explain_layer, explain_network


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
    assert "  271,351,808 + 86,704,128 (b3x3.conv2, the 3x3 conv) = 358,055,936, which is the printed 358M:" in lines


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
    assert "  25088 * 4096 + 4096 = 102,764,544" in out.splitlines() and 25088 * 4096 + 4096 == 102_764_544
    code, out, _ = cli("explain", "resnet18", "bn1")
    assert "params: 2 * C (scale and shift) = 2 * 64 = 128" in out
    assert "buffers: 2 * C (running mean and variance) = 2 * 64 = 128; not params" in out
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


def test_every_layer_of_the_zoo_explains_without_disagreement():
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
    """Each erratum's numbers, checked against the figures written out in docs/zoo.md."""
    def text(name):
        net = load(name)
        return "\n".join(explain_network(net, analyze(net)))

    assert set(ERRATA) >= {"inception-bottleneck", "inception-naive", "alexnet-paper", "googlenet-paper",
                           "resnet50-v1", "preact-resnet1001", "fractalnet", "squeezenet1_0", "vgg16"}
    assert "854,196,224: 854M, as printed" in text("inception-naive")
    assert "(227 - 11)/4 + 1 = 55" in text("alexnet-paper") and (227 - 11) // 4 + 1 == 55
    # GoogLeNet conv1: 7*7*3*64 = 9,408 weights, x 112*112 = 118,013,952 MACs; with 34M instead:
    g = text("googlenet-paper")
    assert "7*7*3*64 = 9,408 weights" in g and 9408 * 112 * 112 == 118_013_952
    assert "= 1,498,657,920" in g and 1_582_671_872 - 118_013_952 + 34_000_000 == 1_498_657_920
    assert "3,857,973,248 multiply-adds = 3.858 x 10^9" in text("resnet50-v1")
    p = text("preact-resnet1001")
    assert "10,327,706 - 149,216 = 10,178,490" in p and 10_327_706 - 10_178_490 == 149_216
    assert "38,600,000 - 33,724,618 = 4,875,382" in text("fractalnet")
    # CS231n's VGG-16 rows: 150,528 + 2 x 3,211,264 + ... = 15,237,608
    v = text("vgg16")
    rows = [150_528, 3_211_264, 3_211_264, 802_816, 1_605_632, 1_605_632, 401_408, 802_816, 802_816, 802_816,
            200_704, 401_408, 401_408, 401_408, 100_352, 100_352, 100_352, 100_352, 25_088, 4096, 4096, 1000]
    assert sum(rows) == 15_237_608 and "= 15,237,608" in v and "15.2M values, not 24M" in v
    assert "60,950,432 bytes (61 MB, 58.1 MiB)" in v and 15_237_608 * 4 == 60_950_432
