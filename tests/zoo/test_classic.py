"""The classic teaching examples: Inception modules and 3x3 stacks against one 7x7."""

from archcalc import analyze, load
from archcalc.expr import symbol


def test_inception_naive():
    r = analyze(load("inception-naive"))
    assert r.output == (672, 28, 28)  # 128 + 192 + 96 + 256 (the pool passes all channels)
    s = 28 * 28
    assert r.totals["macs"] == s * 128 * 256 + s * 192 * 256 * 9 + s * 96 * 256 * 25 == 854_196_224


def test_inception_bottleneck_and_the_358m_figure():
    r = analyze(load("inception-bottleneck"))
    assert r.output == (480, 28, 28)  # 128 + 192 + 96 + 64
    s = 28 * 28
    one = s * 128 * 256
    reduce = 2 * s * 64 * 256
    three = s * 192 * 64 * 9
    five = s * 96 * 64 * 25
    proj = s * 64 * 256
    assert r.totals["macs"] == one + reduce + three + five + proj == 271_351_808
    # CS231n's slide prints "358M ops": the true total plus the 3x3 term a second time
    assert r.totals["macs"] + three == 358_055_936


def test_compare_inception(cli):
    code, out, _ = cli("compare", "inception-naive", "inception-bottleneck")
    assert code == 0
    assert "854,196,224" in out and "271,351,808" in out
    assert "0.318x" in out  # 271,351,808 / 854,196,224 = 0.3177
    assert "672x28x28" in out and "480x28x28" in out


def test_stack3x3_against_conv7x7_symbolic():
    C, H, W = symbol("C"), symbol("H"), symbol("W")
    a = analyze(load("stack3x3"))
    b = analyze(load("conv7x7"))
    assert a.totals["params"] == 27 * C**2  # 3 x (3*3*C*C)
    assert b.totals["params"] == 49 * C**2  # 7*7*C*C
    assert a.totals["macs"] == 27 * C**2 * H * W
    assert b.totals["macs"] == 49 * C**2 * H * W
    assert a.rows[-1].rf[0].size == b.rows[-1].rf[0].size == 7
    assert a.output == (C, H, W)


def test_stack3x3_concrete(cli):
    import json

    code, out, _ = cli("summary", "stack3x3", "--set", "C=64,H=56,W=56", "-f", "json")
    assert code == 0
    t = json.loads(out)["totals"]
    assert t["params"] == 27 * 64 * 64 == 110_592
    assert t["macs"] == 27 * 64 * 64 * 56 * 56 == 346_816_512


def test_compare_symbolic_ratio(cli):
    code, out, _ = cli("compare", "stack3x3", "conv7x7")
    assert code == 0
    assert "27*C**2" in out and "49*C**2" in out and "49/27 = 1.81x" in out


def test_inception_naive_saved_for_backward():
    # the convs keep the module input X (256*28*28, once); each in-place ReLU keeps its conv's
    # output; the max-pool reads X, which needs no gradient, so autograd records nothing for it
    r = analyze(load("inception-naive"))
    s = 28 * 28
    assert r.totals["train_saved_bytes"] == 4 * (256 * s + 128 * s + 192 * s + 96 * s) == 2_107_392
