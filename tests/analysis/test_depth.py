"""Symbolic depth and width (issue 10 item 3): totals as closed forms in a repeat count."""

from __future__ import annotations

import pytest

from archcalc import analyze, load
from archcalc.analysis.depth import analyze_depth
from archcalc.errors import SpecError
from archcalc.expr import substitute, text
from archcalc.spec.load import SymbolicRepeat

KEYS = ("params", "buffers", "macs", "activations", "train_saved_bytes", "layers")


def depth(name, free_other, sym):
    return analyze_depth(lambda values, free: load(name, values, None, free), free_other, (sym,))


def test_resnet_cifar_is_one_formula_in_n():
    r = depth("resnet20", (), "n")
    # He et al. 2015, Table 6: 0.27M, 0.85M and 1.7M params for n = 3, 9, 18
    assert text(r.totals["params"]) == "97216*n - 21926"
    # spec nodes, not weighted layers: a basic block is conv, bn, relu, conv, bn, add, relu (7), three
    # stages of n blocks; the stem (conv, bn, relu), the two option-A shortcuts and the head add 8
    assert text(r.totals["layers"]) == "21*n + 8"
    for n, spec in ((3, "resnet20"), (9, "resnet56"), (18, "resnet110")):
        zoo = analyze(load(spec)).totals
        for key in KEYS:
            assert substitute(r.totals[key], {"n": n}) == zoo[key], (spec, key)
    # the per-block cost, by hand: a basic block of two 3x3 convs at width w (no bias) and two BNs
    # is 2 * (9 w^2 + 2 w); over the three stages (16, 32, 64) that is 97,216 per unit of n
    assert sum(2 * (9 * w * w + 2 * w) for w in (16, 32, 64)) == 97_216


def test_wide_resnet_is_one_formula_in_k_and_n():
    r = depth("wrn-28-10", ("k",), "N")
    p = r.totals["params"]
    assert text(p) == "96768*N*k**2 + 448*N*k - 22784*k**2 + 3200*k + 474"
    # Zagoruyko & Komodakis 2016, Table 1: WRN-28-10 36.5M, WRN-40-4 8.9M params
    assert substitute(p, {"N": 4, "k": 10}) == analyze(load("wrn-28-10")).totals["params"] == 36_479_194
    assert substitute(p, {"N": 6, "k": 4}) == analyze(load("wrn-40-4")).totals["params"] == 8_949_210


def test_depth_symbol_is_reported():
    with pytest.raises(SymbolicRepeat) as err:
        load("resnet20", free=("n",))
    assert err.value.symbols == ["n"]
    r = depth("resnet20", (), "n")
    assert "totals are closed forms in n" in r.warnings[0].message
    assert r.warnings[0].code == "depth-start" and r.warnings[0].get("start") == 1


def test_not_a_polynomial_is_an_error():
    # 2**n layers: no polynomial of degree <= 3 fits, and the check says so instead of guessing
    from archcalc.spec.load import loads

    text_ = "input: [3, 8, 8]\nsymbols: {n: 1}\nlayers:\n  - repeat: 2**n\n    layers: [{conv: {out: 3, kernel: 1}}]\n"
    with pytest.raises(SpecError, match="total 'params' is not a polynomial of degree <= 3 in n"):
        analyze_depth(lambda values, free: loads(text_, "t.yaml", values, None, free), (), ("n",))


def test_mobilenet_width_multiplier_is_one_formula_in_alpha():
    """Howard et al. 2017, Table 6: alpha = 1, 0.75, 0.5, 0.25 give 569M, 325M, 149M, 41M mult-adds
    and 4.2M, 2.6M, 1.3M, 0.5M params at 224x224 (the paper counts conv and FC weights; ours add
    batch norm's 2C, within its rounding)."""
    r = analyze(load("mobilenet-v1", free=("alpha",)))
    params, macs = r.totals["params"], r.totals["macs"]
    # pointwise convs are quadratic in alpha, depthwise convs and the FC layer linear, the FC bias constant
    assert text(params) == "3139584*alpha**2 + 1091392*alpha + 1000"
    paper = {1: (569, 4.2), 0.75: (325, 2.6), 0.5: (149, 1.3), 0.25: (41, 0.5)}
    from fractions import Fraction

    for alpha, (mmacs, mparams) in paper.items():
        a = Fraction(str(alpha))
        p = substitute(params, {"alpha": a})
        m = substitute(macs, {"alpha": a})
        assert round(m / 1e6) == mmacs and round(p / 1e6, 1) == mparams, alpha
        member = "mobilenet-v1" if alpha == 1 else f"mobilenet-v1-{alpha}"
        t = analyze(load(member)).totals
        assert (t["params"], t["macs"]) == (p, m)
