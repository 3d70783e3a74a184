"""Explicit padding (constant, reflect, replicate, circular) and the fixed-filter blur pool whose
filter is a buffer (anti-aliased downsampling)."""

from __future__ import annotations

import math

from ..expr import as_int, is_symbolic
from .base import (same_channels, REQUIRED, Axis, Count, Counts, Factor, Key, LayerType, PadCopy, ShapeError, SizeOf, Term, hw, prod, register,
                   spatial, torch_pad, window_out)

MODES = ("constant", "reflect", "replicate", "circular")


def check_mode(layer, mode, pad, x):
    """torch's limits on a padding mode: reflect pads less than the size, circular at most the size."""
    words = {1: ("positions",), 2: ("rows", "columns"), 3: ("frames", "rows", "columns")}[len(x) - 1]
    sides = [(pad[2 * i + j], x[1 + i], words[i]) for i in range(len(x) - 1) for j in (0, 1)]
    for p, size, axis in sides:
        if is_symbolic(p) or is_symbolic(size):
            continue
        if mode == "reflect" and p >= size:
            raise ShapeError(f"{layer}: reflect padding of {p} {axis} needs more than {p} input {axis}, got {size}",
                             hint="pad less, or use mode: replicate")
        if mode == "circular" and p > size:
            raise ShapeError(f"{layer}: circular padding of {p} {axis} needs at least {p} input {axis}, got {size}")


@register
class Pad(LayerType):
    torch_module = "pad_torch"  # its own nn.Module classes
    channel_reads = same_channels  # each channel its own
    name = "pad"
    doc = (
        "Explicit padding of the spatial axes, of a map of any rank (torch.nn.functional.pad; nn.ZeroPad2d, ConstantPad2d, "
        "ReflectionPad2d, ReplicationPad2d, CircularPad2d): `constant` with `value`, `reflect` (the "
        "border mirrored, not repeated), `replicate` (the border repeated) or `circular` (wrapped "
        "around). A new tensor."
    )
    keys = (
        Key("padding", "padding", REQUIRED, "rows and columns added: all sides, [h, w] or [top, bottom, left, right] "
            "(1-D, 3-D: one per axis or before, after per axis)"),
        Key("mode", "choice", "constant", "constant, reflect, replicate or circular", choices=MODES),
        Key("value", "float", 0.0, "constant mode: the value padded with"),
    )
    formulas = {"shape": "C x (H + P_top + P_bottom) x (W + P_left + P_right)", "params": "0", "macs": "0"}

    def _pad(self, a):
        if a["padding"] == "same":
            raise ShapeError("pad: padding is a number of rows and columns, not 'same'", hint="pad: {padding: [1, 2]}")
        return a["padding"]

    def out(self, a, xs):
        x = spatial(xs[0], self.name)
        p = self._pad(a)
        if len(p) != 2 * (len(x) - 1):
            raise ShapeError(f"pad: padding has {len(p)} values but its input is a {len(x) - 1}-D map",
                             hint="give one value per spatial axis, or (before, after) per axis")
        check_mode(self.name, a["mode"], p, x)
        return (x[0],) + tuple(as_int(size + p[2 * i] + p[2 * i + 1]) for i, size in enumerate(x[1:]))

    def details(self, a, xs, y):
        if len(a["padding"]) != 4:
            p = a["padding"]
            text = f"p{p[0]}" if len(set(p)) == 1 else "p" + ",".join(map(str, p[0::2] if p[0::2] == p[1::2] else p))
            return text + ("" if a.get("mode", "constant") == "constant" else " " + a["mode"])
        t, b, l, r = a["padding"]
        text = f"p{t}" if t == b == l == r else f"p{t},{l}" if t == b and l == r else f"p{t},{b},{l},{r}"
        return text + ("" if a.get("mode", "constant") == "constant" else " " + a["mode"])

    def window(self, a, xs, y):
        # output o reads input o - before; a padding position reads nothing (constant) or the input
        # position its mode copies (reflect, replicate, circular: PadCopy)
        p = self._pad(a)
        mode = a["mode"]
        if mode != "constant":  # reflect, replicate, circular: the padding copies input positions
            return tuple(Axis(1, 1, p[2 * i], p[2 * i + 1], False) if (p[2 * i], p[2 * i + 1]) == (0, 0)
                         else PadCopy(1, 1, p[2 * i], p[2 * i + 1], False, mode=mode, n=xs[0][1 + i])
                         for i in range(len(p) // 2))
        return tuple(Axis(1, 1, p[2 * i], p[2 * i + 1], False) for i in range(len(p) // 2))

    def saves(self, a, training):
        return ("input",) if a["mode"] in ("reflect", "replicate") else ()  # their backward reads the input

    def torch(self, a, xs, y):
        return [("Pad", {"padding": torch_pad(self._pad(a)), "mode": a["mode"], "value": a["value"]})]

    def probe(self, a, xs, y, collapse):
        t, b, l, r = self._pad(a)
        if a["mode"] != "constant":  # reflect, replicate, circular: the positions copied are read
            return [("Pad", {"padding": (l, r, t, b), "mode": a["mode"]})]
        return [("ZeroPad2d", {"padding": (l, r, t, b)})]  # the padding's geometry

    torch_ops = ("pad", "ZeroPad2d", "ConstantPad2d", "ReflectionPad2d", "ReplicationPad2d", "CircularPad2d", "Pad")

    def from_torch(self, op, kw, xs, y):
        if len(xs[0]) != 3:
            return None
        mode = {"ZeroPad2d": "constant", "ConstantPad2d": "constant", "ReflectionPad2d": "reflect",
                "ReplicationPad2d": "replicate", "CircularPad2d": "circular"}.get(op, kw.get("mode", "constant"))
        pad = kw.get("padding", kw.get("pad"))
        if mode not in MODES or pad is None:
            return None
        pad = tuple(int(p) for p in (pad if isinstance(pad, (tuple, list)) else (pad,) * 4))
        if len(pad) != 4:
            return None
        l, r, t, b = pad
        if min(pad) < 0:
            # nn.ZeroPad2d((-1, 1, -1, 1)) (NASNet's shifted path): a shift by one row and column, as
            # padding twice on the bottom and right and a centre crop back to the input's size
            if mode != "constant" or kw.get("value", 0.0) not in (None, 0, 0.0) or not (t == -b and b >= 0 and l == -r and r >= 0):
                return None
            return [("pad", {"padding": [0, 2 * b, 0, 2 * r]}), ("crop", {"like": SizeOf(0)})]
        out = {"padding": [t, b, l, r], "mode": mode}
        value = kw.get("value", 0.0)
        if mode == "constant" and value is not None and not math.isfinite(value):
            return None  # -inf before a max pool (timm's MaxPool2dSame): the maxpool's own padding, not a pad
        if mode == "constant" and value not in (None, 0, 0.0):
            out["value"] = float(value)
        return out


def blur_padding(f, s):
    """timm's get_padding(filt_size, stride): ((s - 1) + (f - 1)) // 2 on every side."""
    return ((s - 1) + (f - 1)) // 2


@register
class BlurPool(LayerType):
    torch_module = "pad_torch"  # its own nn.Module classes
    channel_reads = same_channels  # each channel its own
    name = "blur_pool"
    doc = (
        "Anti-aliased downsampling (timm's BlurPool2d; Zhang 2019): pad by ((stride - 1) + (filter - 1)) // 2 "
        "on every side (reflect by default), then a depthwise convolution with a fixed binomial filter "
        "(filter 3: [1, 2, 1]/4 outer itself) at the stride. The filter is a buffer, not a parameter: "
        "C x 1 x f x f values (timm's BlurPool2d(channels)), or one f x f filter shared by all channels "
        "(`per_channel: false`, timm's BlurPool2d without channels); timm registers it non-persistent (not in the "
        "state_dict). MACs as the depthwise conv's (FlopCounterMode counts it)."
    )
    keys = (
        Key("filter", "size", 3, "binomial filter size (> 1)"),
        Key("stride", "size", 2, "stride"),
        Key("pad_mode", "choice", "reflect", "padding: reflect (timm's default), constant (zeros), replicate, circular",
            choices=MODES),
        Key("per_channel", "bool", True, "the buffer holds one filter per channel (C x 1 x f x f); false: one (1 x 1 x f x f)"),
    )
    formulas = {
        "shape": "H' = floor((H + 2P - f) / S) + 1, P = ((S - 1) + (f - 1)) // 2, likewise W'",
        "params": "0",
        "buffers": "C * f * f (per_channel) or f * f",
        "macs": "C * H' * W' * f * f (a depthwise conv)",
    }

    def out(self, a, xs):
        x = hw(xs[0], self.name)
        f, s = a["filter"], a["stride"]
        if f < 2:
            raise ShapeError(f"blur_pool: filter {f} must be at least 2")
        p = blur_padding(f, s)
        check_mode(self.name, a["pad_mode"], (p, p, p, p), x)
        return (x[0], window_out(x[1], f, s, p, p), window_out(x[2], f, s, p, p))

    def details(self, a, xs, y):
        return f"{a['filter']}x{a['filter']}/{a['stride']}" + ("" if a.get("pad_mode") == "reflect" else f" {a['pad_mode']}")

    def count(self, a, xs, y):
        f = a["filter"]
        return 0, as_int((xs[0][0] if a["per_channel"] else 1) * f * f)

    def macs(self, a, xs, y):
        return as_int(y[0] * y[1] * y[2] * a["filter"] * a["filter"])

    def formula(self, a, xs, y):
        f = a["filter"]
        k = (Factor("f", f), Factor("f", f))
        buffers = Count((Term(((Factor("C", xs[0][0]),) if a["per_channel"] else ()) + k),), "the fixed filter")
        return Counts(Count(), buffers, Count((Term((Factor("C", y[0]), Factor("H_out", y[1]), Factor("W_out", y[2])) + k),)))

    def window(self, a, xs, y):
        f, s = a["filter"], a["stride"]
        p = blur_padding(f, s)
        mode = a["pad_mode"]
        if mode != "constant" and p:  # the padding copies input positions (reflect by default)
            return PadCopy(f, s, p, p, mode=mode, n=xs[0][1]), PadCopy(f, s, p, p, mode=mode, n=xs[0][2])
        return Axis(f, s, p, p), Axis(f, s, p, p)

    def saves(self, a, training):
        # the conv keeps the padded copy (workspace); reflect and replicate padding's backward the input
        return ("input",) if a["pad_mode"] in ("reflect", "replicate") else ()

    def workspace(self, a, xs, y):
        x = xs[0]
        p = blur_padding(a["filter"], a["stride"])
        return as_int(x[0] * (x[1] + 2 * p) * (x[2] + 2 * p))

    def scratch(self, a, xs, y, itemsize, training):
        return 0 if training else as_int(self.workspace(a, xs, y) * itemsize)  # the padded copy

    def backward_macs(self, a, xs, y, grad_input, grad_weight):
        return self.macs(a, xs, y) if grad_input else 0  # the filter is a buffer: no weight gradient

    def torch(self, a, xs, y):
        return [("BlurPool2d", {"channels": xs[0][0] if a["per_channel"] else None, "filt_size": a["filter"],
                                "stride": a["stride"], "pad_mode": a["pad_mode"]})]

    def probe(self, a, xs, y, collapse):
        f, s = a["filter"], a["stride"]
        p = blur_padding(f, s)
        geometry = {"kernel_size": (f, f), "stride": (s, s), "padding": (p, p), "dilation": (1, 1)}
        pad = []
        if a["pad_mode"] != "constant" and p:  # the padding copies input positions: pad as torch does
            pad = [("Pad", {"padding": (p, p, p, p), "mode": a["pad_mode"]})]
            geometry["padding"] = (0, 0)
        return pad + ([("ProbeSpatialConv", geometry)] if collapse else [("ProbeDepthwise", {**geometry, "channels": xs[0][0]})])

    torch_ops = ("BlurPool2d", "timm.layers.blur_pool.BlurPool2d")

    def from_torch(self, op, kw, xs, y):
        if len(xs[0]) != 3 or kw.get("pad_mode") not in MODES or kw.get("channels") not in (None, xs[0][0]):
            return None
        return {"filter": kw["filt_size"], "stride": kw["stride"], "pad_mode": kw["pad_mode"],
                "per_channel": kw.get("channels") is not None}
