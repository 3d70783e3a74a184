"""Spec-format features: exact rational expressions with floor/ceil/round, comparisons and a
conditional (issue 8 item 9), families from one spec (`variants:`, item 10), `trainable: false`,
and the limits that make expressions safe to evaluate (issue 7)."""

from __future__ import annotations

import textwrap
from fractions import Fraction

import pytest

from archcalc import analyze, load
from archcalc.errors import SpecError
from archcalc.expr import ExprError, evaluate, parse
from archcalc.spec.load import loads


def ev(text, **env):
    return evaluate(parse(text), {k.replace("arg_", "$"): v for k, v in env.items()})


def make_divisible(v, d=8):
    """torchvision's rule, as its docstring states it: the nearest multiple of d (halves up, at
    least d), plus d where that loses more than 10% of v. Written out here as the reference."""
    n = max(d, int(v + d / 2) // d * d)
    return n + d if n < 0.9 * v else n


MAKE_DIVISIBLE = "max(8, floor($v + 4) // 8 * 8) + (8 if max(8, floor($v + 4) // 8 * 8) < 0.9 * $v else 0)"


@pytest.mark.parametrize("v", [12, 16, 20, 35.2, 38.4, 44.8, 51.2, 64, 3.5, 100.8, 179.2, 1280 * 1.2, 24 * 0.75, 96 * 1.4])
def test_make_divisible_written_as_an_expression(v):
    # EfficientNet's stem is 32 x width: b2 (1.1) gives 35.2 -> 32, b3 (1.2) 38.4 -> 40, b4 (1.4) 44.8 -> 48
    # (torchvision's efficientnet_b2/b3/b4 features.0 have 32, 40 and 48 channels)
    assert ev(MAKE_DIVISIBLE, arg_v=Fraction(str(v))) == make_divisible(v)


def test_make_divisible_known_figures():
    assert [ev(MAKE_DIVISIBLE, arg_v=Fraction(32) * Fraction(w)) for w in ("1.1", "1.2", "1.4", "2.0")] == [32, 40, 48, 64]


def test_rationals_are_exact():
    assert ev("1.2 * 30") == 36  # not 35.99999... as in floats
    assert ev("0.1 + 0.2 == 0.3") is True  # exact decimals
    assert ev("7 / 2") == Fraction(7, 2)
    assert ev("ceil(1.4 * 3)") == 5 and ev("floor(1.4 * 3)") == 4  # 4.2
    assert ev("ceil(3.1 * 2)") == 7  # EfficientNet-B7 depth 3.1: a 2-layer stage becomes ceil(6.2) = 7
    assert ev("round(2.5)") == 2 and ev("round(3.5)") == 4  # Python's round: half to even
    assert ev("abs(3 - 5)") == 2
    assert ev("7 // 2") == 3 and ev("-7 // 2") == -4 and ev("7 % 3") == 1
    assert ev("max(1, 2, 3) + min(4, 5)") == 7


def test_conditional_evaluates_only_the_chosen_branch():
    assert ev("1 if 2 > 1 else 1/0") == 1
    assert ev("1/0 if 2 < 1 else 5") == 5
    assert ev("not 1 > 2 and (2 >= 2 or 1/0 > 0)") is True  # short-circuit
    assert ev("1 < 2 < 3") is True and ev("1 < 3 < 2") is False


@pytest.mark.parametrize(
    "text, message",
    [
        ("2 ** 65", "exponent 65 is above the limit of 64"),
        ("2 ** 0.5", "an exponent must be a whole number"),
        ("9 ** 9 ** 9", "exponent 387420489 is above the limit of 64"),
        ("(10 ** 60) ** 5", "exceeds 2**256"),
        ("1 if 3 else 2", "a condition must be a comparison"),
        ("(1 < 2) + 1", "'+' needs numbers, got a comparison"),
        ("x.y", "is not a size expression"),
        ("f(1)", "is not a size expression"),
        ("[1, 2]", "is not a size expression"),
        ("'a'", "only numbers are allowed"),
        ("lambda: 1", "is not a size expression"),
        ("min(1)", "is not a size expression"),
        ("floor(1, 2)", "is not a size expression"),
        ("ℌ + 1", "not printable ASCII"),
        ("1" + " + 1" * 300, "longer than the limit of 1000"),
        ("1" + "+1" * 150, "has more than 200 parts"),
    ],
)
def test_rejected_expressions(text, message):
    with pytest.raises(ExprError) as err:
        ev(text, x=1, H=1)
    assert message in str(err.value)


def test_symbolic_conditions_are_errors():
    from archcalc.expr import symbol

    with pytest.raises(ExprError, match="cannot compare sizes that depend on unresolved symbols"):
        ev("1 if H > 2 else 2", H=symbol("H"))
    assert str(ev("ceil(H / 2)", H=symbol("H"))) == "ceiling(H/2)"


def spec(text, **kw):
    return loads(textwrap.dedent(text), "t.yaml", **kw)


FAMILY = """
    name: toy
    title: Toy family
    input: [3, H, H]
    symbols: {H: 32, width: 1.0, depth: 1.0}
    variants:
      toy_a: {}
      toy_b: {width: 1.25, depth: 1.4, H: 40, title: Toy B}
    blocks:
      dv:
        args: [v]
        layers:
          - conv: {out: "%s", kernel: 3, padding: 1}
    layers:
      - repeat: ceil(2 * depth)
        layers:
          - dv: {v: 32 * width}
      - dropout: {p: "0.2 * width"}
""" % MAKE_DIVISIBLE


def test_family_members_apply_their_values():
    base = spec(FAMILY)
    b = spec(FAMILY, variant="toy_b")
    assert (base.name, base.title, base.variants) == ("toy", "Toy family", ["toy_a", "toy_b"])
    assert (b.name, b.title, b.input) == ("toy_b", "Toy B", (3, 40, 40))
    ra, rb = analyze(spec(FAMILY, variant="toy_a")), analyze(b)
    # toy_a: 2 convs 3->32->32 at width 1; toy_b: ceil(2 * 1.4) = 3 convs of make_divisible(40) = 40
    assert [r.shape for r in ra.rows if r.type == "conv"] == [(32, 32, 32)] * 2
    assert [r.shape for r in rb.rows if r.type == "conv"] == [(40, 40, 40)] * 3
    assert rb.totals["params"] == (40 * 3 * 9 + 40) + 2 * (40 * 40 * 9 + 40)
    assert b.nodes[-1].args["p"] == 0.25  # 0.2 * 1.25, exactly
    # --set still goes on top of the member's values
    assert spec(FAMILY, variant="toy_b", values={"H": 16}).input == (3, 16, 16)


@pytest.mark.parametrize(
    "change, message",
    [
        ("toy_a: {}", "toy_a: {nope: 1}"),
        ("toy_a: {}", "toy_a: {width: -1}"),
        ("toy_a: {}", "'../x': {}"),
        ("toy_a: {}", "toy_a: [1]"),
    ],
)
def test_bad_variants(change, message):
    text = FAMILY.replace(*(change, message))
    with pytest.raises(SpecError) as err:
        spec(text)
    assert str(err.value).startswith("t.yaml:")


def test_unknown_variant():
    with pytest.raises(SpecError, match="the spec declares no variant 'toy_c'; did you mean 'toy_b'"):
        spec(FAMILY, variant="toy_c")


def test_zoo_families_list_members_and_resolve_them():
    from archcalc.spec import zoo

    for family, members in zoo.families().items():
        assert family in members or family not in zoo.names()  # the file itself is no zoo name
        for m in members:
            assert m in zoo.names()
            assert load(m).name == m


def test_trainable_false_is_inherited():
    net = spec("""
        input: [3, 8, 8]
        blocks:
          b:
            layers: [{conv: {out: 4, kernel: 1}}, relu]
        layers:
          - {b: {}, trainable: false}
          - {repeat: 2, layers: [{conv: {out: 4, kernel: 1}}], trainable: false}
          - {conv: {out: 4, kernel: 1}}
    """)
    assert [(n.name, n.trainable) for n in net.nodes] == [
        ("b1.conv1", False), ("b1.relu1", False), ("conv1", False), ("conv2", False), ("conv3", True)]
    with pytest.raises(SpecError, match="'trainable' is true or false, got 'no'"):
        spec("input: [3, 8, 8]\nlayers: [{relu: {}, trainable: 'no'}]\n")


@pytest.mark.parametrize(
    "layers, message",
    [
        ("[{dropout: {p: 2}}]", "p: expected a number >= 0 and <= 1, got 2.0"),
        ("[{dropout: {p: -0.1}}]", "p: expected a number >= 0 and <= 1, got -0.1"),
        ("[{bn: {eps: 0}}]", "eps: expected a number > 0, got 0.0"),
        ("[{bn: {momentum: 1.5}}]", "momentum: expected a number >= 0 and <= 1, got 1.5"),
        ("[{dropout: {p: .inf}}]", "p: expected a finite number, got inf"),
        ("[{dropout: {p: 'x'}}]", "unknown name 'x'"),
        ("[{conv: {out: '1.25 * 30', kernel: 1}}]", "expected an integer, got 75/2"),
        ("[{conv: {out: '2**40 + 1', kernel: 1}}]", "size 1099511627777 is above archcalc's limit of 1,099,511,627,776"),
    ],
)
def test_number_keys_are_checked_where_torch_would_reject_them(layers, message):
    with pytest.raises(SpecError) as err:
        spec(f"input: [3, 8, 8]\nlayers: {layers}\n")
    assert message in str(err.value)


def test_float_keys_take_expressions():
    net = spec("input: [3, 8, 8]\nsymbols: {r: 0.5}\nlayers: [{dropout: {p: 'r / 2'}}]\n")
    assert net.nodes[0].args["p"] == 0.25


def test_zoo_member_scan_equals_the_full_parse():
    """zoo.members() reads a family's member names without parsing YAML; for every zoo file it must
    give exactly what the spec loader reads."""
    from archcalc.spec import zoo
    from archcalc.spec.load import family

    for path in sorted(zoo.specs_dir().glob("*.yaml")):
        text = path.read_text()
        assert zoo.members(text) == list(family(text, str(path))), path.name


def test_input_override_gives_the_symbols_their_values():
    """--input 3x32x32 on vgg16 (input [3, H, W]) uses and reports H = W = 32 (issue 10 item 6)."""
    net = load("vgg16", input_override=(3, 32, 32))
    assert net.values == {"H": 32, "W": 32} and net.input == (3, 32, 32)
    r = analyze(net)
    # conv1_1 at 32x32: 64 * 32 * 32 * 3 * 9 MACs
    assert r.rows[0].macs == 64 * 32 * 32 * 27
    with pytest.raises(SpecError, match="symbol 'H' is given by both --input and --set; give it once"):
        load("vgg16", values={"H": 64}, input_override=(3, 32, 32))
    with pytest.raises(SpecError, match="--input has 1 entries but the spec's input has 3"):
        load("vgg16", input_override=(3,))


def test_c_and_python_yaml_loaders_read_every_zoo_spec_alike(monkeypatch):
    """libyaml's loader (fast) and the pure-Python one (the fallback) give the same documents with
    the same line numbers, and the same limits hold in both (tests/security/test_hostile.py)."""
    import yaml

    from archcalc.spec import yamlio
    from archcalc.spec import zoo

    if not getattr(yaml, "__with_libyaml__", False):
        pytest.skip("PyYAML without libyaml here: only the pure-Python loader exists")

    def lines(node):
        if isinstance(node, dict):
            return [node.line, dict(node.lines)] + [lines(v) for v in node.values()]
        if isinstance(node, list):
            return [node.line, list(node.lines)] + [lines(v) for v in node]
        return node

    for path in sorted(zoo.specs_dir().glob("*.yaml")):
        text = path.read_text()
        fast = yamlio.load_text(text, path.name)
        monkeypatch.setattr(yamlio, "PURE_PYTHON", True)
        slow = yamlio.load_text(text, path.name)
        monkeypatch.setattr(yamlio, "PURE_PYTHON", False)
        assert fast == slow and lines(fast) == lines(slow), path.name


def test_frozen_layers_have_no_gradients_or_optimizer_state():
    net = spec("""
        input: [3, 8, 8]
        layers:
          - {conv: {out: 4, kernel: 1}, trainable: false}
          - {conv: {out: 4, kernel: 1}}
    """)
    t = analyze(net, optimizer="adam").totals
    # 16 params frozen (3*4 + 4), 20 trainable (4*4 + 4); fp32: weights of all 36, plus gradient
    # and Adam's two moments for the 20 trainable ones
    assert t["params"] == 36
    assert t["train_state_bytes"] == 36 * 4 + 20 * 4 * 3
