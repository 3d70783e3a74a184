"""Issue 19 items 4 and 6 (engine): receptive fields, symbolic closed forms, sweeps, graphs, input
scans and depth symbols are bounded by an operation budget checked before the work; each hostile
spec (inline YAML written to a temporary folder) runs through the CLI in-process with
test_hostile's harness: its exit code, one line on stderr, no traceback, within 5 s and 500 MB.
"""

from __future__ import annotations

import json
import math
from fractions import Fraction

import pytest

from test_hostile import MEMORY_LIMIT, TIME_LIMIT, run


def _spec(tmp_path, text, name="spec.yaml"):
    path = tmp_path / name
    path.write_text(text)
    return path


def _case(tmp_path, args, expect, *stderr_has):
    before = sorted(p.name for p in tmp_path.iterdir())
    code, out, err, seconds, peak = run(args, tmp_path)
    assert code == expect, (code, out[-500:], err[-500:])
    assert "Traceback" not in out + err
    assert seconds < TIME_LIMIT, f"{seconds:.1f} s"
    assert peak < MEMORY_LIMIT, f"{peak / 2**20:.0f} MiB"
    if expect == 2:
        assert out == ""
        lines = err.splitlines()
        assert len(lines) == 1 and lines[0].startswith("archcalc: error: "), err
    for text in stderr_has:
        assert text in err, err
    assert sorted(p.name for p in tmp_path.iterdir()) == before  # nothing written beside the spec
    return out, err


# --------------------------------------------------------------------------- receptive fields

CONV_THEN_POOL = """\
name: bigpool
input: [3, 8, 8]
layers:
  - {conv: {out: 4, kernel: 3}}
  - {adaptive_avgpool: {size: %s}}
"""


def test_adaptive_pool_to_a_billion_is_closed_form(tmp_path):
    # 6x6 -> 10^9 x 10^9: position by position this hung; the closed form is O(1)
    path = _spec(tmp_path, CONV_THEN_POOL % 1_000_000_000)
    out, _ = _case(tmp_path, ["summary", str(path), "-f", "json"], 0)
    row = json.loads(out)["layers"][-1]
    # windows of 6 inputs spread over 10^9 outputs read 1 or 2 inputs (gcd 2: (10^9 - 2 + 6) / 10^9
    # rounds up to 2) of a 3x3 conv's field: (2 - 1) * 1 + 3 = 4, stride 6/10^9, padding 0 (a
    # rational stride is an exact "p/q" string in JSON, docs/json.md)
    assert row["output"][1:] == [1_000_000_000, 1_000_000_000]
    assert row["rf"]["h"] == {"size": 4, "stride": "3/500000000", "padding": 0}


def test_adaptive_pool_to_a_billion_is_refused_by_verify_and_export(tmp_path):
    """4 x 10^9 x 10^9 = 4e18 elements: 3.2e19 bytes in float64, above torch's int64 storage size
    (torch raised 'Storage size calculation overflowed'): refused before anything is built."""
    path = _spec(tmp_path, CONV_THEN_POOL % 1_000_000_000)
    assert 4 * 10**18 * 8 > 2**62
    for args in (["verify", str(path)], ["export", str(path), "--to", "torch", "-o", str(tmp_path / "x.py")]):
        _case(tmp_path, args, 2, "4.000e+18 elements per image", "beyond what torch can allocate (2**62 bytes)")


def test_adaptive_pool_to_a_billion_then_conv_is_refused(tmp_path):
    # a layer after it steps through its 10^9 positions: refused before the work, by the budget
    path = _spec(tmp_path, CONV_THEN_POOL % 1_000_000_000 + "  - {conv: {out: 4, kernel: 3, padding: 1}}\n")
    _case(tmp_path, ["summary", str(path)], 2, "1,000,000,000 position steps", "limit of 1,000,000", "spec.yaml:6")


def test_upsample_fields_share_one_budget(tmp_path):
    path = _spec(tmp_path, """\
name: bigup
input: [1, 300000, 300000]
layers:
  - {conv: {out: 1, kernel: 3, padding: 1}}
  - {upsample: {scale: 2}}
  - {conv: {out: 1, kernel: 3, padding: 1}}
""")
    _case(tmp_path, ["summary", str(path)], 2, "600,000 position steps after 600,000 already taken", "limit of 1,000,000")


def _reference_field(size_in, size_out, r, j, p):
    """Adaptive pooling from I to O positions over a field (size r, stride j, padding p), by hand:
    window o covers input positions [floor(o I / O), ceil((o + 1) I / O)); each input position x
    reads x j - p .. x j - p + r - 1 of the image. The project's convention: the field's size is the
    largest span over the positions, its stride j I / O, its padding minus the first position read."""
    firsts, lasts = [], []
    for o in range(size_out):
        lo = (o * size_in) // size_out
        hi_excl = -((-(o + 1) * size_in) // size_out)
        firsts.append(lo * j - p)
        lasts.append((hi_excl - 1) * j - p + r - 1)
    size = max(b - a + 1 for a, b in zip(firsts, lasts))
    return size, Fraction(j * size_in, size_out), -firsts[0], firsts, lasts


@pytest.mark.parametrize("size_in,size_out,k,s,pad", [
    (6, 4, 3, 1, 0), (7, 3, 3, 1, 1), (13, 5, 5, 2, 2), (10, 4, 1, 1, 0), (9, 7, 3, 2, 1),
    (5, 8, 3, 1, 1), (7, 20, 3, 1, 0), (11, 6, 7, 1, 3), (50, 7, 3, 1, 1), (3, 1000, 3, 1, 1),
])
def test_adaptive_pool_field_matches_hand_arithmetic(tmp_path, size_in, size_out, k, s, pad):
    from archcalc import load
    from archcalc.analysis.engine import analyze

    # a conv (kernel k, stride s, padding pad) whose output is size_in, then the adaptive pool
    image = (size_in - 1) * s + k - 2 * pad
    path = _spec(tmp_path, f"""\
name: ap
input: [2, {image}, {image}]
layers:
  - {{conv: {{out: 2, kernel: {k}, stride: {s}, padding: {pad}}}}}
  - {{adaptive_avgpool: {{size: {size_out}}}}}
""")
    report = analyze(load(str(path)))
    assert report.rows[0].shape[1] == size_in
    field = report.rows[1].rf[0]
    size, stride, padding, firsts, lasts = _reference_field(size_in, size_out, k, s, pad)
    assert (field.size, Fraction(field.stride), field.padding) == (size, stride, padding)
    assert [field.at(o) for o in range(size_out)] == list(zip(firsts, lasts))


def test_adaptive_pool_closed_form_agrees_with_stepping():
    """The closed form against the engine's own position-by-position step on many sizes."""
    import random

    from archcalc.analysis import engine as E
    from archcalc.layers import Resample

    rng = random.Random(19)
    for _ in range(300):
        size_in, size_out = rng.randint(2, 40), rng.randint(2, 60)
        if size_in % size_out == 0:
            continue
        a = E.RF(rng.randint(1, 30), rng.randint(1, 6), rng.randint(-3, 12))
        q = Fraction(size_in, size_out)
        closed = E._rf_adaptive(a, Resample(q, 0, q - 1, b_up=True), size_out, size_in)
        size, stride, padding, firsts, lasts = _reference_field(size_in, size_out, a.size, a.stride, a.padding)
        assert (closed.size, Fraction(closed.stride), closed.padding) == (size, stride, padding)
        assert list(closed.first) == firsts and list(closed.last) == lasts
    assert math.gcd(6, 10**9) == 2


# --------------------------------------------------------------------------- symbolic closed forms


def test_power_forty_of_three_symbols_is_shown_unexpanded(tmp_path):
    path = _spec(tmp_path, """\
name: pow40
input: [3, H, W]
symbols: {H: 32, W: 32, K: 3}
layers:
  - {conv: {out: "(H+W+K+1)**40", kernel: 3, padding: 1}}
""")
    out, _ = _case(tmp_path, ["summary", str(path), "--symbolic", "H,W,K"], 0)
    assert "(H + K + W + 1)**40" in out  # 12,341 terms expanded: shown as computed


def test_power_sixty_is_shown_unexpanded(tmp_path):
    path = _spec(tmp_path, """\
name: pow60
input: [3, H, W]
symbols: {H: 32, W: 32}
layers:
  - {conv: {out: "(H+W+1)**60", kernel: 1}}
""")
    out, _ = _case(tmp_path, ["summary", str(path), "--symbolic", "H,W", "-f", "json"], 0)
    assert "(H + W + 1)**60" in out


def _widths(n):
    return ("name: widths\ninput: [3, 16, 16]\nsymbols: {" + ", ".join(f"w{i}: null" for i in range(n)) + "}\nlayers:\n"
            + "".join(f"  - {{conv: {{out: w{i}, kernel: 3, padding: 1}}}}\n" for i in range(n)))


def test_a_thousand_free_widths_are_refused(tmp_path):
    path = _spec(tmp_path, _widths(1000))
    _case(tmp_path, ["summary", str(path)], 2, "1,000 symbols are free", "limit of 32")


def test_a_closed_form_of_two_hundred_thousand_layers_is_refused_before_the_walk(tmp_path):
    # found by test_fuzz: stack3x3 (input [C, H, W], no values) with `repeat: 99999` is 2 x 99,999 =
    # 199,998 layers, legal to load (MAX_NODES 200,000) but minutes of sympy; refused before the walk
    path = _spec(tmp_path, "input: [C, H, W]\nlayers:\n  - repeat: 99999\n    layers:\n"
                           "      - {conv: {kernel: 3, padding: 1, bias: false}}\n      - relu\n")
    _case(tmp_path, ["summary", str(path)], 2, "199,998 layers with free symbols (C, H, W)", "limit of 10,000 layers")
    # a network under the limit keeps its closed forms (500 layers, C, H and W free)
    small = _spec(tmp_path, "input: [C, H, W]\nlayers:\n  - repeat: 250\n    layers:\n"
                            "      - {conv: {kernel: 3, padding: 1, bias: false}}\n      - relu\n")
    out, _ = _case(tmp_path, ["summary", str(small), "--format", "json"], 0)
    assert json.loads(out)["totals"]["params"] == "2250*C**2"  # 250 x 9 C^2 (3x3, C to C, no bias)


def test_twenty_free_widths_are_not_factored(tmp_path):
    # multivariate factoring of 20 symbols took 37 s; the polynomial is shown expanded
    path = _spec(tmp_path, _widths(20))
    out, _ = _case(tmp_path, ["summary", str(path)], 0)
    assert "params: 9*w0*w1 + 28*w0 + " in out  # conv w0 -> w1, 3x3: 9*w0*w1 weights (+ w1 bias)


def test_bounded_expansion_estimate():
    from archcalc.expr import expansion_terms, symbol

    h, w, k = symbol("H"), symbol("W"), symbol("K")
    assert expansion_terms((h + w + k + 1) ** 40, 10**6) == math.comb(43, 3)  # 12,341
    assert expansion_terms((h + w + 1) ** 60, 10**6) == math.comb(62, 2)  # 1,891
    assert expansion_terms((h + w + 1) ** 60, 100) == 101  # capped: stops early


# --------------------------------------------------------------------------- sweeps, graphs, scans


def test_sweep_points_times_forms_is_bounded(tmp_path):
    layers = "".join("  - {conv: {out: 2, kernel: 1, padding: 1}}\n" for _ in range(300))
    path = _spec(tmp_path, "name: grow\ninput: [2, H, W]\nsymbols: {H: 8, W: 8}\nlayers:\n" + layers)
    _case(tmp_path, ["sweep", str(path), "--set", "H,W=1:10000"], 2, "10,000 points x", "limit of 5,000,000")


def test_sweep_within_the_budget_runs(tmp_path):
    layers = "".join("  - {conv: {out: 2, kernel: 1, padding: 1}}\n" for _ in range(30))
    path = _spec(tmp_path, "name: grow\ninput: [2, H, W]\nsymbols: {H: 8, W: 8}\nlayers:\n" + layers)
    out, _ = _case(tmp_path, ["sweep", str(path), "--set", "H,W=1:200", "-f", "json"], 0)
    assert len(json.loads(out)["points"]) == 200


def _blocks(n):
    return ("name: g\ninput: [3, 8, 8]\nblocks:\n  b: {layers: [{relu: {}, name: r}]}\nlayers:\n"
            + "".join(f"  - {{b: {{}}, name: s{i}}}\n" for i in range(n)))


def test_graph_of_many_blocks_is_linear(tmp_path):
    # each block looked up its children among all blocks: 8,000 blocks took minutes
    path = _spec(tmp_path, _blocks(8000))
    out, _ = _case(tmp_path, ["graph", str(path), "-f", "dot"], 0)
    assert out.count("subgraph cluster_") == 8000


def test_graph_fold_search_is_bounded(tmp_path, monkeypatch):
    import archcalc.output.graph as G

    monkeypatch.setattr(G, "MAX_GRAPH_WORK", 1_000)  # the real limit needs 2,000,000 layer renders
    path = _spec(tmp_path, _blocks(600))
    _case(tmp_path, ["graph", str(path)], 2, "fitting 600 layers named 2 parts deep", "limit of 1,000", "spec.yaml")


def test_tiling_range_times_layers_is_bounded(tmp_path):
    layers = "".join("  - {relu: {}}\n" for _ in range(2000))
    path = _spec(tmp_path, "name: deep\ninput: [3, 64, 64]\nlayers:\n" + layers)
    _case(tmp_path, ["summary", str(path), "--tiling", "1:10000"], 2, "10,000 analyses of 2,000 layers", "limit of 2,000,000")


# --------------------------------------------------------------------------- depth symbols


DEPTH2 = """\
name: depth2
input: [3, 16, 16]
symbols: {n: 2, m: 3}
layers:
  - {conv: {out: 8, kernel: 3, padding: 1}}
  - repeat: n
    layers:
      - {conv: {out: 8, kernel: 3, padding: 1}}
  - repeat: m
    layers:
      - {conv: {out: 8, kernel: 3, padding: 1}}
"""


def test_two_depth_symbols_are_refused_as_such(tmp_path):
    path = _spec(tmp_path, DEPTH2)
    _, err = _case(tmp_path, ["summary", str(path), "--symbolic", "n,m"], 2,
                   "repeat counts in n, m are all kept symbolic", "more than one depth symbol are not supported")
    assert "no value of" not in err


def test_one_depth_symbol_of_two_is_solved(tmp_path):
    path = _spec(tmp_path, DEPTH2)
    out, _ = _case(tmp_path, ["summary", str(path), "--symbolic", "m"], 0)
    assert "params: 584*m + 1392" in out  # 1,392 + 584 m: 2 + m convs of 584 after the 224-param stem
