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
    conc = same_everywhere(REGISTRY["maxpool"], args, 2, h, w)
    y = F.max_pool2d(torch.empty(1, 2, h, w, device="meta"), k, s, p, d, ceil_mode=ceil)
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
