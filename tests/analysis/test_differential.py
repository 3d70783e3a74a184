"""Differential test: random valid specs, the engine against PyTorch's own layers, layer by layer.

Hypothesis generates chains and branches of conv (random kernel, stride, padding as int / pair /
four sides / 'same' at stride 1, dilation, groups), max/avg pooling (ceil_mode included),
channel_linear (nn.Linear over the channels at each position), concat, add and a linear head
after flatten. The reference is built HERE from the generated YAML document with torch's native
modules and functions (nn.Conv2d with torch's own padding='same', nn.MaxPool2d / nn.AvgPool2d with
torch's own ceil_mode rule, F.pad for four-sided padding, torch.cat, +): it never sees archcalc's
shapes, so nothing is cropped or resized to the engine's answer. For every spec each node's output
shape, parameter count and MACs (FlopCounterMode / 2) must equal torch's, and so must the output.
"""

from __future__ import annotations

import os

import pytest

import torch
import torch.nn.functional as F
import yaml  # noqa: E402
from hypothesis import HealthCheck, assume, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from archcalc import SpecError, analyze  # noqa: E402
from archcalc.spec.load import loads  # noqa: E402
from archcalc.torchside.verify import check  # noqa: E402
from torch.utils.flop_counter import FlopCounterMode  # noqa: E402


def _divisors(n):
    return [d for d in range(1, n + 1) if n % d == 0]


@st.composite
def conv_layer(draw, cin, same_size=False):
    """A conv mapping; with same_size the spatial size is kept (stride 1, 'same'-like padding)."""
    k = draw(st.integers(1, 4)) if not same_size else draw(st.sampled_from([1, 3, 5]))
    kernel = k if draw(st.booleans()) or same_size else [k, draw(st.integers(1, 4))]
    args = {"kernel": kernel}
    if same_size:
        args["padding"] = draw(st.sampled_from(["same", k // 2]))
        out = draw(st.integers(1, 6))
    else:
        stride = draw(st.integers(1, 3))
        dil = draw(st.integers(1, 2))
        if stride != 1:
            args["stride"] = stride if draw(st.booleans()) else [stride, draw(st.integers(1, 3))]
        if dil != 1:
            args["dilation"] = dil
        pad_kind = draw(st.sampled_from(["none", "int", "pair", "four"] + (["same"] if stride == 1 else [])))
        if pad_kind == "int":
            args["padding"] = draw(st.integers(0, 3))
        elif pad_kind == "pair":
            args["padding"] = [draw(st.integers(0, 3)), draw(st.integers(0, 3))]
        elif pad_kind == "four":
            args["padding"] = [draw(st.integers(0, 3)) for _ in range(4)]
        elif pad_kind == "same":
            args["padding"] = "same"
        g = draw(st.sampled_from(["1", "div", "depthwise"]))
        if g == "depthwise":
            args["groups"] = "depthwise"
            out = cin * draw(st.integers(1, 2))
        elif g == "div":
            groups = draw(st.sampled_from(_divisors(cin)))
            args["groups"] = groups
            out = groups * draw(st.integers(1, 3))
        else:
            out = draw(st.integers(1, 6))
    args["out"] = out
    if draw(st.booleans()):
        args["bias"] = False
    return {"conv": args}, out


@st.composite
def pool_layer(draw):
    kind = draw(st.sampled_from(["maxpool", "avgpool"]))
    k = draw(st.integers(1, 3))
    args = {"kernel": k if draw(st.booleans()) else [k, draw(st.integers(1, 3))]}
    kh, kw = (args["kernel"], args["kernel"]) if isinstance(args["kernel"], int) else args["kernel"]
    if draw(st.booleans()):
        args["stride"] = draw(st.integers(1, 3))
    dil = 1
    if kind == "maxpool" and draw(st.booleans()):
        dil = 2
        args["dilation"] = dil
    pad = draw(st.sampled_from(["none", "int", "four"]))
    if pad == "int":
        # torch: implicit padding at most half the effective kernel
        args["padding"] = draw(st.integers(0, (dil * (min(kh, kw) - 1) + 1) // 2))
    elif pad == "four":
        args["padding"] = [draw(st.integers(0, 2)) for _ in range(4)]
    if draw(st.booleans()):
        args["ceil_mode"] = True
        # ceil_mode with explicit (asymmetric, or over half the kernel) padding has no native torch
        # form, so torch could not be the reference: keep the padding torch's implicit kind (equal
        # sides, at most half the kernel), so that torch's own ceil rule decides the size
        if pad == "int":
            args["padding"] = min(args["padding"], kh // 2, kw // 2)
        elif pad == "four":
            t, l_ = min(args["padding"][0], kh // 2), min(args["padding"][2], kw // 2)
            args["padding"] = [t, t, l_, l_]
    if kind == "avgpool" and draw(st.booleans()):
        args["count_include_pad"] = False
        if pad == "four":
            args["padding"] = [min(p, (kh // 2, kh // 2, kw // 2, kw // 2)[i]) for i, p in enumerate(args["padding"])]
            if args["padding"][0] != args["padding"][1] or args["padding"][2] != args["padding"][3]:
                del args["padding"]  # explicit zero padding would be counted: no torch equivalent
    return {kind: args}


@st.composite
def spec_text(draw):
    doc = draw(_spec_with_input())
    return yaml.safe_dump(doc, sort_keys=False)


@st.composite
def _spec_with_input(draw):
    c0 = draw(st.integers(1, 4))
    h = draw(st.integers(12, 28))
    w = draw(st.integers(12, 28))
    c = c0
    layers = []
    for _ in range(draw(st.integers(1, 5))):
        what = draw(st.sampled_from(["conv", "conv", "pool", "relu", "bn", "concat", "add", "add_strided", "channel_linear"]))
        if what == "conv":
            layer, c = draw(conv_layer(c))
            layers.append(layer)
        elif what == "channel_linear":
            args = {"out": draw(st.integers(1, 6))}
            if draw(st.booleans()):
                args["bias"] = False
            layers.append({"channel_linear": args})
            c = args["out"]
        elif what == "pool":
            layers.append(draw(pool_layer()))
        elif what == "relu":
            layers.append("relu")
        elif what == "bn":
            layers.append("bn")
        elif what == "concat":
            branches, total = [], 0
            for _ in range(draw(st.integers(2, 3))):
                if draw(st.integers(0, 3)) == 0:
                    branches.append([{"maxpool": {"kernel": 3, "stride": 1, "padding": 1}}])
                    total += c
                    continue
                cc, branch = c, []
                for _ in range(draw(st.integers(1, 2))):
                    layer, cc = draw(conv_layer(cc, same_size=True))
                    branch.append(layer)
                branches.append(branch)
                total += cc
            layers.append({"concat": branches})
            c = total
        elif what == "add":
            first, _ = draw(conv_layer(c, same_size=True))
            first["conv"]["out"] = c
            second, _ = draw(conv_layer(c, same_size=True))
            second["conv"]["out"] = c
            layers.append({"add": [[first, "relu", second], "identity"]})
            layers.append("relu")
        else:  # residual block with a strided projection shortcut
            out = draw(st.integers(1, 6))
            s = draw(st.integers(2, 3))
            layers.append({"add": [
                [{"conv": {"out": out, "kernel": 3, "stride": s, "padding": 1}}, "bn", "relu",
                 {"conv": {"out": out, "kernel": 3, "padding": 1}}],
                [{"conv": {"out": out, "kernel": 1, "stride": s}}, "bn"],
            ]})
            c = out
    if draw(st.booleans()):
        layers += ["flatten", {"linear": {"out": draw(st.integers(1, 10))}}]
    return {"input": [c0, h, w], "layers": layers}


# --------------------------------------------------------------------------- torch's own reference


def _pair(v):
    return tuple(v) if isinstance(v, (list, tuple)) else (v, v)


def _sides(pad):
    """(top, bottom, left, right) of a spec's int / [h, w] / four-sided padding."""
    if isinstance(pad, int):
        return pad, pad, pad, pad
    if len(pad) == 2:
        return pad[0], pad[0], pad[1], pad[1]
    return tuple(pad)


def _conv(args, c):
    """nn.Conv2d from the spec's own keys; four-sided padding through F.pad, 'same' as torch's own."""
    groups = args.get("groups", 1)
    groups = c if groups == "depthwise" else groups
    pad = args.get("padding", 0)
    explicit = None
    if pad != "same":
        t, b, l_, r = _sides(pad)
        if (t, l_) == (b, r):
            pad = (t, l_)
        else:
            explicit, pad = (l_, r, t, b), 0
    conv = torch.nn.Conv2d(c, args["out"], _pair(args["kernel"]), stride=_pair(args.get("stride", 1)), padding=pad,
                           dilation=_pair(args.get("dilation", 1)), groups=groups, bias=args.get("bias", True))
    return (lambda x: conv(F.pad(x, explicit))) if explicit else conv, conv


def _pool(kind, args):
    k = _pair(args["kernel"])
    t, b, l_, r = _sides(args.get("padding", 0))
    ceil = args.get("ceil_mode", False)
    native = (t, l_) == (b, r) and 2 * t <= k[0] and 2 * l_ <= k[1]
    # torch pools only pad implicitly up to half the kernel; beyond that the padding is explicit,
    # which gives the same size in floor mode only (the generator keeps ceil_mode native)
    assert native or not ceil, args
    pad = (t, l_) if native else 0
    stride = _pair(args.get("stride", args["kernel"]))
    if kind == "maxpool":
        pool = torch.nn.MaxPool2d(k, stride, pad, dilation=_pair(args.get("dilation", 1)), ceil_mode=ceil)
        fill = float("-inf")
    else:
        include = args.get("count_include_pad", True)
        assert native or include, args  # explicit zeros would be counted
        pool = torch.nn.AvgPool2d(k, stride, pad, ceil_mode=ceil, count_include_pad=include)
        fill = 0.0
    return pool if native else (lambda x: pool(F.pad(x, (l_, r, t, b), value=fill)))


def _torch_rows(layers, x, rows, counter):
    """Run ``layers`` on ``x`` with torch, appending (shape, params, MACs) per node in the spec's
    order (a join's branches first, then the join). Returns the output."""

    def record(y, params=0, flops0=None):
        macs = 0 if flops0 is None else (counter.get_total_flops() - flops0) // 2
        rows.append((tuple(y.shape[1:]), params, macs))
        return y

    for layer in layers:
        f0 = counter.get_total_flops()
        if layer == "relu":
            x = record(F.relu(x))
        elif layer == "bn":
            bn = torch.nn.BatchNorm2d(x.shape[1]).eval()
            x = record(bn(x), sum(p.numel() for p in bn.parameters()), f0)
        elif layer == "flatten":
            x = record(torch.flatten(x, 1))
        else:
            (kind, args), = layer.items()
            if kind == "conv":
                fn, mod = _conv(args, x.shape[1])
                x = record(fn(x), sum(p.numel() for p in mod.parameters()), f0)
            elif kind in ("maxpool", "avgpool"):
                x = record(_pool(kind, args)(x), 0, f0)
            elif kind in ("linear", "channel_linear"):
                lin = torch.nn.Linear(x.shape[1], args["out"], bias=args.get("bias", True))
                y = lin(x) if kind == "linear" else lin(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)
                x = record(y, sum(p.numel() for p in lin.parameters()), f0)
            elif kind == "concat":
                outs = [_torch_rows(branch, x, rows, counter) for branch in args]
                x = record(torch.cat(outs, dim=1))
            elif kind == "add":
                outs = [x if branch == "identity" else _torch_rows(branch, x, rows, counter) for branch in args]
                x = record(sum(outs[1:], outs[0]))
            else:
                raise AssertionError(f"the reference has no torch form for {kind}")
    return x


def _reference(doc):
    """Per node (shape, params, MACs) and the output shape, all from torch's native layers."""
    rows = []
    counter = FlopCounterMode(display=False)
    with torch.no_grad(), counter:
        out = _torch_rows(doc["layers"], torch.zeros(1, *doc["input"]), rows, counter)
    return rows, tuple(out.shape[1:])


DEEP = os.environ.get("ARCHCALC_FUZZ") == "deep"  # a randomized profile ten times larger


@settings(max_examples=1500 if DEEP else 150, derandomize=not DEEP, database=None, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
@given(_spec_with_input())
def test_engine_equals_torch(doc):
    text = yaml.safe_dump(doc, sort_keys=False)
    try:
        net = loads(text, "<hypothesis>")
        report = analyze(net)
    except SpecError:
        assume(False)  # the window does not fit the input: not a valid spec
        return
    want, output = _reference(doc)  # a spec the engine accepts, torch runs too
    assert len(want) == len(report.rows), f"{len(report.rows)} engine rows, {len(want)} torch nodes\n{text}"
    for node, row, (shape, params, macs) in zip(net.nodes, report.rows, want):
        got = (tuple(row.shape), row.params, row.macs)
        assert got == (shape, params, macs), f"{node.name}: engine {got} torch {(shape, params, macs)}\n{text}"
    assert tuple(report.output) == output, f"output: engine {report.output} torch {output}\n{text}"
    assert report.totals["params"] == sum(p for _, p, _ in want)
    assert report.totals["macs"] == sum(m for _, _, m in want)


def test_generated_specs_are_diverse():
    """The generator reaches every construct it claims to (a sanity check on the strategy), in the
    first 300 seeded examples (generation only: nothing to shrink)."""
    from hypothesis import Phase

    needles = ("same", "ceil_mode", "dilation", "groups", "depthwise", "concat", "add", "- linear:", "avgpool", "channel_linear")
    seen = set()

    @settings(max_examples=300, derandomize=True, database=None, deadline=None, phases=[Phase.generate],
              suppress_health_check=list(HealthCheck))
    @given(spec_text())
    def collect(text):
        seen.update(n for n in needles if n in text)

    collect()
    assert seen == set(needles), set(needles) - seen


@pytest.mark.parametrize("kind", ["maxpool", "avgpool"])
def test_asymmetric_padding_ceil_mode_drops_a_window_that_starts_in_the_padding(kind):
    """No native torch layer pads one side only with ceil_mode, so the reference is hand arithmetic:
    12 rows, kernel 1, stride 1: 12 windows; 12 columns plus 1 on the right: ceil((12 + 1 - 1) / 1)
    + 1 = 13 windows, and the 13th starts at column 12, in the trailing padding: PyTorch's rule
    drops it, leaving 12. The built model (explicit padding, pooling, a crop) runs."""
    text = f"input: [1, 12, 12]\nlayers:\n  - {kind}: {{kernel: 1, padding: [0, 0, 0, 1], ceil_mode: true}}\n"
    net = loads(text)
    report = analyze(net)
    assert tuple(report.rows[0].shape) == (1, 12, 12)
    result = check(net, report, device="cpu")
    assert result["layers"][0]["checks"]["shape"]["status"] == "ok"  # (its crop is sized by the engine: no proof)
