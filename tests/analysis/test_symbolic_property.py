"""Symbolic == concrete, per layer type, on random sizes and keys (issue 10), with torch's own output
shapes as the independent reference for the windowed layers (ceil mode, padding, dilation).

Seeded (derandomized) by default; ARCHCALC_FUZZ=deep runs a randomized profile ten times larger.
"""

from __future__ import annotations

import os

import torch
import torch.nn.functional as F
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from archcalc.expr import substitute, symbol
from archcalc.layers import REGISTRY

DEEP = os.environ.get("ARCHCALC_FUZZ") == "deep"
H, W = symbol("H"), symbol("W")


def profile(n):
    return settings(max_examples=n * (10 if DEEP else 1), derandomize=not DEEP, deadline=None, database=None,
                    suppress_health_check=list(HealthCheck))


@st.composite
def windows(draw, dilation=True):
    k = draw(st.integers(1, 7))
    s = draw(st.integers(1, 4))
    d = draw(st.integers(1, 3)) if dilation else 1
    p = draw(st.integers(0, k // 2))  # torch's pools take at most half the kernel
    eff = d * (k - 1) + 1
    h = draw(st.integers(max(1, eff - 2 * p), 64))
    w = draw(st.integers(max(1, eff - 2 * p), 64))
    return k, s, p, d, h, w, draw(st.booleans())


def same_everywhere(ltype, args, c, h, w):
    """The engine's concrete output and its symbolic output with H, W substituted."""
    conc = ltype.out(args, [(c, h, w)])
    sym = ltype.out(args, [(c, H, W)])
    sub = tuple(substitute(d, {"H": h, "W": w}) for d in sym)
    assert sub == tuple(conc), (args, h, w, conc, sym)
    for f in ("count", "macs"):
        got = getattr(ltype, f)(args, [(c, h, w)], conc)
        sgot = getattr(ltype, f)(args, [(c, H, W)], sym)
        sgot = tuple(substitute(v, {"H": h, "W": w}) for v in sgot) if isinstance(sgot, tuple) else substitute(sgot, {"H": h, "W": w})
        assert sgot == got, (f, args, h, w)
    return conc


@profile(300)
@given(windows())
def test_maxpool_matches_torch(win):
    k, s, p, d, h, w, ceil = win
    args = {"kernel": (k, k), "stride": (s, s), "padding": (p, p, p, p), "dilation": (d, d), "ceil_mode": ceil}
    y = F.max_pool2d(torch.zeros(1, 2, h, w), k, s, p, d, ceil_mode=ceil)
    if not torch.isfinite(y).all():  # a window whose taps all miss the input: torch's -inf, refused
        import pytest

        from archcalc.layers.base import ShapeError

        with pytest.raises(ShapeError, match="covers only padding"):
            REGISTRY["maxpool"].out(args, [(2, h, w)])
        return
    conc = same_everywhere(REGISTRY["maxpool"], args, 2, h, w)
    assert tuple(y.shape[1:]) == conc, (win, conc, tuple(y.shape))


@profile(200)
@given(windows(dilation=False))
def test_avgpool_matches_torch(win):
    k, s, p, _, h, w, ceil = win
    args = {"kernel": (k, k), "stride": (s, s), "padding": (p, p, p, p), "ceil_mode": ceil, "count_include_pad": True}
    conc = same_everywhere(REGISTRY["avgpool"], args, 2, h, w)
    y = F.avg_pool2d(torch.empty(1, 2, h, w, device="meta"), k, s, p, ceil_mode=ceil)
    assert tuple(y.shape[1:]) == conc, (win, conc, tuple(y.shape))


@profile(200)
@given(windows(), st.integers(1, 3))
def test_conv_matches_torch(win, groups):
    k, s, p, d, h, w, _ = win
    c = 2 * groups
    args = {"out": 2 * groups, "kernel": (k, k), "stride": (s, s), "padding": (p, p, p, p), "dilation": (d, d),
            "groups": groups, "bias": True}
    conc = same_everywhere(REGISTRY["conv"], args, c, h, w)
    y = F.conv2d(torch.empty(1, c, h, w, device="meta"), torch.empty(2 * groups, 2, k, k, device="meta"),
                 None, s, p, d, groups)
    assert tuple(y.shape[1:]) == conc


@profile(100)
@given(st.integers(1, 64), st.integers(1, 64), st.integers(1, 4), st.integers(1, 7))
def test_same_padding_is_ceil(h, w, s, k):
    """'same' padding: ceil(I / S) on each axis, for any kernel (TensorFlow's rule)."""
    args = {"out": 4, "kernel": (k, k), "stride": (s, s), "padding": "same", "dilation": (1, 1), "groups": 1, "bias": False}
    conc = same_everywhere(REGISTRY["conv"], args, 3, h, w)
    assert conc == (4, -(-h // s), -(-w // s))


def test_the_issue_example():
    """maxpool {kernel: 2, stride: 2, padding: 1, ceil_mode: true} on H = 5: 3, concretely and
    symbolically (it was 4 symbolically: the last-window rule was skipped)."""
    args = {"kernel": (2, 2), "stride": (2, 2), "padding": (1, 1, 1, 1), "dilation": (1, 1), "ceil_mode": True}
    assert same_everywhere(REGISTRY["maxpool"], args, 1, 5, 5) == (1, 3, 3)


# --------------------------------------------------------------------------- every layer type, through the loader

# per type, the keys drawn from (one mapping each); types not listed take their defaults. A test
# below fails when a registered type is missing here and needs keys, so a new type is covered.
KEYS = {
    "adaptive_avgpool": [{"size": 1}, {"size": [3, 2]}],
    "avgpool": [{"kernel": 3, "stride": 2, "padding": 1, "ceil_mode": True}, {"kernel": 2}, {"kernel": [3, 1], "stride": [1, 2]}],
    "maxpool": [{"kernel": 3, "stride": 2, "padding": 1, "ceil_mode": True}, {"kernel": 2, "dilation": 2}, {"kernel": 3, "padding": "same", "stride": 2}],
    "conv": [{"out": 6, "kernel": 3, "stride": 2, "padding": 1}, {"kernel": 5, "padding": "same", "stride": 3},
             {"kernel": 3, "dilation": 2, "groups": "depthwise", "padding": [1, 2, 0, 3]}],
    "conv_transpose": [{"out": 4, "kernel": 2, "stride": 2}, {"kernel": 3, "stride": 2, "padding": 1, "output_padding": 1},
                       {"kernel": 4, "stride": 3, "dilation": 2, "groups": 2}],
    "channel_shuffle": [{"groups": 2}],
    "channels": [{"start": 1, "stop": 3}],
    "crop": [{"size": 1}, {"like": "input"}],
    "linear": [{"out": 7}],
    "channel_linear": [{"out": 7}, {"bias": False}],
    "layer_scale": [{}, {"bare": True}],
    "pad_channels": [{"out": 8, "stride": 2}],
    "scale": [{"factor": 0.5}],
    "stochastic_depth": [{"p": 0.1}],
    "upsample": [{"scale": 2}, {"size": [5, 7]}, {"scale": 3, "mode": "bilinear"},
                 {"scale": [2, 1.5], "mode": "nearest-exact"}, {"scale": 2, "mode": "bicubic", "align_corners": True},
                 {"scale": 0.5, "mode": "area"}],
    # issue 23's types (every one with a required key, and the new keys of older types)
    "adaptive_maxpool": [{"size": 1}, {"size": [3, 2]}],
    "groupnorm": [{"groups": 2}, {"groups": 4, "affine": False}],
    "pixel_shuffle": [{"factor": 2}],
    "pixel_unshuffle": [{"factor": 2}, {"factor": 2, "order": "blocks"}],
    "radix_softmax": [{"radix": 2}, {"radix": 2, "groups": 2}, {"radix": 1}],
    "std_conv": [{"out": 6, "kernel": 3, "stride": 2, "padding": 1}, {"kernel": 3, "padding": "same", "gain": True},
                 {"kernel": [3, 1], "padding": [1, 0], "padding_mode": "reflect"}],
    "threshold": [{"threshold": 0.1, "value": -2.0}],
    "pad": [{"padding": 1}, {"padding": [1, 2, 0, 3], "mode": "replicate"}, {"padding": [0, 1], "mode": "circular"}],
    "blur_pool": [{}, {"filter": 4, "stride": 1, "pad_mode": "constant"}, {"filter": 2, "per_channel": False}],
    "instancenorm": [{}, {"affine": True, "track_running_stats": True}],
    "prelu": [{}, {"per_channel": True}],
    "gelu": [{}, {"approximate": "tanh"}],
    "eca_conv": [{"kernel": 3}, {"kernel": 1}],
    "context_pool": [{}, {"bias": False}],
}
KEYS["avgpool"].append({"kernel": 3, "padding": 1, "divisor_override": 2})
KEYS["conv"].append({"kernel": 3, "padding": [1, 2], "padding_mode": "circular"})
PREFIX = {"linear": ["flatten"], "eca_conv": ["global_avgpool"]}  # what a type needs before it


def _layer_spec(name, keys, h, w):
    import yaml

    from archcalc.layers import REGISTRY as R

    item = {name: keys} if not R[name].joins else {name: [["identity"], [{"conv": {"kernel": 1}}]]}
    return yaml.safe_dump({"input": [4, "H", "W"], "symbols": {"H": h, "W": w},
                           "layers": PREFIX.get(name, []) + [item]})


@profile(400)
@given(st.sampled_from(sorted(REGISTRY)), st.data(), st.integers(1, 48), st.integers(1, 48))
def test_every_layer_type_symbolic_equals_concrete(name, data, h, w):
    """Each registered type, through the loader and the engine: with H and W symbolic and then
    substituted, every row (shape, params, buffers, MACs, new values) equals the concrete run."""
    from archcalc.analysis.engine import analyze
    from archcalc.errors import ArchcalcError
    from archcalc.spec.load import loads

    keys = data.draw(st.sampled_from(KEYS.get(name, [{}])))
    text = _layer_spec(name, keys, h, w)
    try:
        conc = analyze(loads(text, "t.yaml"))
    except ArchcalcError:
        return  # this size does not fit the layer: nothing to compare
    sym = analyze(loads(text, "t.yaml", free=("H", "W")))
    env = {"H": h, "W": w}
    for s, c in zip(sym.rows, conc.rows):
        assert tuple(substitute(d, env) for d in s.shape) == tuple(c.shape), (name, keys, h, w)
        for key in ("params", "buffers", "macs", "values"):
            assert substitute(getattr(s, key), env) == getattr(c, key), (name, keys, h, w, key)


def test_every_type_that_needs_keys_has_samples():
    from archcalc.layers import REQUIRED

    for name, ltype in REGISTRY.items():
        needs = [k.name for k in ltype.keys if k.default is REQUIRED]
        assert not needs or name in KEYS, f"{name} needs {needs}: add samples to KEYS"
