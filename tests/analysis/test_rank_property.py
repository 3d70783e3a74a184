"""Property test over random 1-D and 3-D chains (issue 23), as test_differential.py does in 2-D.

Hypothesis draws an input of rank 1 or 3 ([C, L] or [C, D, H, W]) and a chain of conv (kernel,
stride, dilation as an int or one value per axis; padding as an int, per axis, (before, after) per
axis or 'same' at stride 1; groups), transposed conv, max/avg pooling (ceil_mode, dilation),
batch/group norm, ReLU, nearest/linear upsampling by integer scales and adaptive average pooling.
The reference is built HERE from the generated YAML document with torch's own modules
(nn.Conv1d/3d, nn.MaxPool1d/3d, F.pad, F.interpolate, ...): it never sees archcalc's shapes. Each
layer's output shape, parameter count and MACs (FlopCounterMode / 2) must equal torch's. Seeded
(derandomized) and small by default (25 chains); ARCHCALC_FUZZ=deep draws 400, randomized.
"""

from __future__ import annotations

import os

import pytest

torch = pytest.importorskip("torch")
yaml = pytest.importorskip("yaml")
from hypothesis import HealthCheck, assume, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402
from torch import nn  # noqa: E402
from torch.nn import functional as F  # noqa: E402
from torch.utils.flop_counter import FlopCounterMode  # noqa: E402

from archcalc import SpecError, analyze  # noqa: E402
from archcalc.spec.load import loads  # noqa: E402

DEEP = os.environ.get("ARCHCALC_FUZZ") == "deep"


def _per_axis(draw, n, lo, hi):
    """An int, or one value per axis."""
    if draw(st.booleans()):
        return draw(st.integers(lo, hi))
    return [draw(st.integers(lo, hi)) for _ in range(n)]


@st.composite
def layer(draw, n, cin):
    kind = draw(st.sampled_from(["conv", "conv", "conv_transpose", "maxpool", "avgpool", "bn", "groupnorm", "relu",
                                 "upsample", "adaptive_avgpool"]))
    if kind == "conv":
        k = _per_axis(draw, n, 1, 4)
        stride = 1 if draw(st.booleans()) else _per_axis(draw, n, 1, 3)
        args = {"out": draw(st.integers(1, 6)), "kernel": k}
        if stride != 1:
            args["stride"] = stride
        ones = stride == 1 or stride == [1] * n
        pad = draw(st.sampled_from(["none", "int", "axis", "sides"] + (["same"] if ones else [])))
        if pad == "int":
            args["padding"] = draw(st.integers(0, 3))
        elif pad == "axis":
            args["padding"] = [draw(st.integers(0, 3)) for _ in range(n)]
        elif pad == "sides":
            args["padding"] = [draw(st.integers(0, 3)) for _ in range(2 * n)]
        elif pad == "same":
            args["padding"] = "same"
        if draw(st.booleans()):
            args["dilation"] = _per_axis(draw, n, 1, 2)
        g = draw(st.sampled_from([1, 1, "depthwise", 2]))
        if g == "depthwise":
            args["groups"], args["out"] = "depthwise", cin * draw(st.integers(1, 2))
        elif g == 2 and cin % 2 == 0:
            args["groups"], args["out"] = 2, 2 * draw(st.integers(1, 3))
        if draw(st.booleans()):
            args["bias"] = False
        return {"conv": args}, args["out"]
    if kind == "conv_transpose":
        s = _per_axis(draw, n, 1, 2)
        args = {"out": draw(st.integers(1, 5)), "kernel": _per_axis(draw, n, 1, 3), "stride": s}
        return {"conv_transpose": args}, args["out"]
    if kind in ("maxpool", "avgpool"):
        k = draw(st.integers(1, 3))
        args = {"kernel": k, "stride": _per_axis(draw, n, 1, 2), "padding": draw(st.integers(0, k // 2)),
                "ceil_mode": draw(st.booleans())}
        if kind == "maxpool" and draw(st.booleans()):
            args["dilation"] = 2
        return {kind: args}, cin
    if kind == "bn":
        return "bn", cin
    if kind == "groupnorm":
        return ({"groupnorm": {"groups": 1}}, cin)
    if kind == "relu":
        return "relu", cin
    if kind == "upsample":
        mode = draw(st.sampled_from(["nearest", "linear" if n == 1 else "trilinear"]))
        return {"upsample": {"scale": _per_axis(draw, n, 1, 2), "mode": mode}}, cin
    return {"adaptive_avgpool": {"size": _per_axis(draw, n, 1, 3)}}, cin


@st.composite
def spec(draw):
    n = draw(st.sampled_from([1, 3]))
    cin = draw(st.integers(1, 4))
    sizes = [draw(st.integers(4, 40))] if n == 1 else [draw(st.integers(3, 9)) for _ in range(3)]
    layers, c = [], cin
    for _ in range(draw(st.integers(1, 5))):
        item, c = draw(layer(n, c))
        layers.append(item)
    return {"input": [cin, *sizes], "layers": layers}


def _tup(v, n):
    return tuple(v) if isinstance(v, list) else (v,) * n


def _module(item, cin, n):
    """torch's own module for one layer of the document (independent of archcalc)."""
    if isinstance(item, str):
        return {"bn": [nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d][n - 1](cin), "relu": nn.ReLU()}[item]
    (kind, a), = item.items()
    if kind == "conv":
        conv = [nn.Conv1d, nn.Conv2d, nn.Conv3d][n - 1]
        g = cin if a.get("groups") == "depthwise" else a.get("groups", 1)
        p = a.get("padding", 0)
        kw = dict(kernel_size=_tup(a["kernel"], n), stride=_tup(a.get("stride", 1), n),
                  dilation=_tup(a.get("dilation", 1), n), groups=g, bias=a.get("bias", True))
        if isinstance(p, list) and len(p) == 2 * n:  # (before, after) per axis: F.pad takes the last axis first
            pad = tuple(v for i in reversed(range(n)) for v in (p[2 * i], p[2 * i + 1]))
            return nn.Sequential(_Pad(pad), conv(cin, a["out"], **kw))
        return conv(cin, a["out"], padding=p if p == "same" else _tup(p, n), **kw)
    if kind == "conv_transpose":
        ct = [nn.ConvTranspose1d, nn.ConvTranspose2d, nn.ConvTranspose3d][n - 1]
        return ct(cin, a["out"], _tup(a["kernel"], n), _tup(a["stride"], n))
    if kind == "maxpool":
        return [nn.MaxPool1d, nn.MaxPool2d, nn.MaxPool3d][n - 1](a["kernel"], _tup(a["stride"], n), a["padding"],
                                                                   dilation=a.get("dilation", 1), ceil_mode=a["ceil_mode"])
    if kind == "avgpool":
        return [nn.AvgPool1d, nn.AvgPool2d, nn.AvgPool3d][n - 1](a["kernel"], _tup(a["stride"], n), a["padding"],
                                                                   ceil_mode=a["ceil_mode"])
    if kind == "groupnorm":
        return nn.GroupNorm(a["groups"], cin)
    if kind == "upsample":
        return _Interp(tuple(float(v) for v in _tup(a["scale"], n)), a["mode"])
    return [nn.AdaptiveAvgPool1d, nn.AdaptiveAvgPool2d, nn.AdaptiveAvgPool3d][n - 1](_tup(a["size"], n))


class _Pad(nn.Module):
    def __init__(self, pad):
        super().__init__()
        self.pad = pad

    def forward(self, x):
        return F.pad(x, self.pad)


class _Interp(nn.Module):
    def __init__(self, scale, mode):
        super().__init__()
        self.scale, self.mode = scale, mode

    def forward(self, x):
        return F.interpolate(x, scale_factor=self.scale, mode=self.mode)


def _reference(doc):
    """Per layer (shape, params, MACs) from torch's own modules; None where torch refuses the input."""
    n = len(doc["input"]) - 1
    x = torch.zeros(1, *doc["input"])
    rows = []
    for item in doc["layers"]:
        mod = _module(item, x.shape[1], n).eval()
        with FlopCounterMode(display=False) as fc, torch.no_grad():
            try:
                x = mod(x)
            except RuntimeError:
                return None
        if x.numel() == 0:
            return None
        rows.append((tuple(x.shape[1:]), sum(p.numel() for p in mod.parameters()), fc.get_total_flops() // 2))
    return rows


@settings(max_examples=400 if DEEP else 25, derandomize=not DEEP, database=None, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
@given(spec())
def test_random_1d_and_3d_chains_equal_torch(doc):
    text = yaml.safe_dump(doc, sort_keys=False)
    want = _reference(doc)
    try:
        report = analyze(loads(text, "<hypothesis>"))
    except SpecError:
        assert want is None or any(0 in shape for shape, _, _ in want), f"engine refused what torch runs\n{text}"
        assume(False)
        return
    assume(want is not None)  # torch refuses (a window larger than its padded input): the engine must have too
    assert len(want) == len(report.rows), text
    for row, (shape, params, macs) in zip(report.rows, want):
        assert (tuple(row.shape), row.params, row.macs) == (shape, params, macs), f"{row.name}\n{text}"


def test_generated_chains_are_diverse():
    """The generator reaches both ranks and every construct in its first 100 seeded examples."""
    from hypothesis import Phase

    needles = ("same", "ceil_mode", "dilation", "depthwise", "conv_transpose", "maxpool", "avgpool", "trilinear",
               "linear", "adaptive_avgpool", "groupnorm", "- bn")
    seen, ranks = set(), set()

    @settings(max_examples=100, derandomize=True, database=None, deadline=None, phases=[Phase.generate],
              suppress_health_check=list(HealthCheck))
    @given(spec())
    def collect(doc):
        text = yaml.safe_dump(doc, sort_keys=False)
        seen.update(k for k in needles if k in text)
        ranks.add(len(doc["input"]) - 1)

    collect()
    assert seen == set(needles), set(needles) - seen
    assert ranks == {1, 3}
