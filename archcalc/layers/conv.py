"""Convolutions (conv, conv_transpose), the fully connected layer and its per-position form
(channel_linear)."""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction

from ..expr import as_int, is_symbolic
from .base import (rank_ops, torch_rank, AXIS_NAMES, REQUIRED, Axis, Count, Counts, Factor, Key, LayerType, PadCopy, Resample, ShapeError, Term, Text, eff,
                   hw, pads, pair_of, prod, register, same_out, shape_text, spatial, torch_nd, torch_pad, window_out,
                   window_sizes)
from .base import EngineWorkspace


def kernel_factors(k) -> tuple:
    """A kernel's sizes as named factors: K_h, K_w (2-D); K_l (1-D); K_d, K_h, K_w (3-D)."""
    return tuple(Factor("K_" + n.lower(), v) for n, v in zip(AXIS_NAMES[len(k)], k))


def _rank_check(layer, a, x):
    """The per-axis keys were read for the spec's input; a map of another rank (after a reshape) is refused."""
    n = len(x) - 1
    for key in ("kernel", "stride", "size"):
        v = a.get(key)
        if isinstance(v, tuple) and len(v) != n:
            raise ShapeError(f"{layer}: {key} has {len(v)} value{'s' if len(v) > 1 else ''} but its input "
                             f"{shape_text(x)} is a {n}-D map", hint=f"give {key} one value per spatial axis")


def padded(x, p):
    """The values of map x with per-axis (before, after) padding p."""
    out = x[0]
    for i, size in enumerate(x[1:]):
        out = out * (size + p[2 * i] + p[2 * i + 1])
    return as_int(out)


@dataclass(frozen=True)
class Taps(Resample):
    """A transposed conv's window on one axis where stride and dilation both exceed 1: output o
    reads input i = (o + P - t D) / S for each tap t in 0 .. K-1 that makes it a whole number, so
    some positions read fewer inputs than the extent (the Resample fields) and some none at all.
    ``span`` is the exact hull (first > last: none); ``taps`` the inputs themselves."""

    stride: int = 2
    kernel: int = 1
    dil: int = 1
    pad: int = 0

    def taps(self, o):
        s, q = self.stride, o + self.pad
        return [(q - t * self.dil) // s for t in range(self.kernel - 1, -1, -1) if (q - t * self.dil) % s == 0]

    def span(self, o):
        read = self.taps(o)
        return (read[0], read[-1]) if read else (1, 0)

    def spans(self):
        return self.span


class _ConvBase(LayerType):
    torch_module = "conv_torch"  # its own nn.Module classes
    def groups(self, a, x):
        return x[0] if a["groups"] == "depthwise" else a["groups"]

    def cout(self, a, x):
        return x[0] if a["out"] is None else a["out"]

    def channel_reads(self, a, xs, y, lo, hi):
        # output group i (cout / g channels) reads input group i (C_in / g channels) alone
        g, cin, cout = self.groups(a, xs[0]), xs[0][0], y[0]
        if not all(isinstance(v, int) for v in (g, cin, cout)):
            return None
        per_out, per_in = cout // g, cin // g
        return [(0, lo // per_out * per_in, ((hi - 1) // per_out + 1) * per_in, None)]

    def check_groups(self, a, x, cout):
        g = self.groups(a, x)
        for what, c in (("input", x[0]), ("output", cout)):
            if not is_symbolic(c) and not is_symbolic(g) and c % g:
                raise ShapeError(f"{what} channels {c} are not divisible by groups={g}")
        return g

    def saves(self, a, training):
        return ("input",)

    def backend_workspace(self, a, xs, y, itemsize, backend):
        return conv_workspace(self, a, xs, y, itemsize, backend)

    def backward_macs(self, a, xs, y, grad_input, grad_weight):
        # grad-input is a transposed conv of the same size, grad-weight a conv of the input with the
        # output's gradient: each the forward's MACs (torch's FlopCounterMode counts a grouped conv's
        # grad-weight as if ungrouped, x groups: docs/memory.md)
        m = self.macs(a, xs, y)
        return as_int(m * ((1 if grad_input else 0) + (1 if grad_weight else 0)))


FILTER_EXTRA = 256  # cuDNN's filter copy is a few bytes above the filter (H100: 1 to 256, docs/memory.md)
POINTWISE_CHANNELS = 1024  # a 1x1 convolution from this many input channels converts both layouts (cuDNN)
SMALL_REDUCTION = 32  # C_in x K_h x K_w below this (an RGB 3x3 stem): cuDNN converts nothing
GROUPED_ENGINE = 16  # a grouped conv's forward: an engine workspace of 1/16 of its converted bytes (docs/memory.md)
# a conv's backward: cuDNN's engines' own workspace, the bytes the backward converts, at least 1 MiB
# (lenet5 at batch 32) and at most 8 MiB (shufflenet_v2_x0_5 at batch 32): docs/memory.md
BACKWARD_ENGINE = EngineWorkspace(2**20, 8 * 2**20)


def conv_workspace(ltype, a, xs, y, itemsize, backend):
    """The backend's working memory of a convolution (docs/memory.md, "The backend's working
    memory"): ``(forward, backward)``, each a tuple of buffers (bytes per image, bytes per batch).
    A depthwise convolution needs none on either backend.

    * ``native`` (CUDA without cuDNN: ``slow_conv2d`` / ``slow_conv_transpose2d``): one image's
      column buffer, (C_in / groups x K_h x K_w) x (H' x W') values (C_out x K_h x K_w x H x W for
      a transposed one), reused for every image of the batch, in forward and in backward; none
      for a 1x1 stride-1 unpadded convolution, which is a matrix product as it lies.
    * ``cudnn``: the input and the output in a second layout (channels last, for the tensor-core
      kernels) and, for a kernel above 1x1, the filter once more (+ :data:`FILTER_EXTRA`): the
      input's and the output's bytes per image, the filter's per batch. Forward converts nothing
      for a 1x1 kernel below :data:`POINTWISE_CHANNELS` input channels, nor where C_in x K_h x K_w
      is below :data:`SMALL_REDUCTION` (a 3x3 RGB stem). Backward converts always, the output's
      gradient twice (for the input's gradient and for the filter's).
    * ``cudnn``, the engines' own workspace (``plan.getWorkspaceSize()``, which PyTorch allocates
      through the caching allocator for each call; cuDNN documents no size): a grouped (not
      depthwise) convolution that converts adds 1/:data:`GROUPED_ENGINE` of its converted bytes per
      image; a backward as many bytes as it converts at the batch, at least 1 MiB and at most 8 MiB
      (:data:`BACKWARD_ENGINE`). An allowance from the H100 table, not a bound (docs/memory.md).
    """
    if backend not in ("cudnn", "native"):
        return ((), ())
    x = xs[0]
    g = ltype.groups(a, x)
    if g != 1 and g == x[0]:
        return ((), ())  # depthwise: its own kernels, no buffer
    k = a["kernel"]
    ones = (1,) * len(k)
    transposed = ltype.name == "conv_transpose"
    if transposed:
        pad = a["padding"]
        pointwise = tuple(k) == ones and tuple(a["stride"]) == ones and (pad == 0 or not any(pad))
        xin = prod(x)
    else:
        p = pads(a, x, eff(a))
        pointwise = tuple(k) == ones and not any(p)
        # an asymmetric pad runs as a padded copy, then the convolution without padding
        xin = padded(x, p) if p[0::2] != p[1::2] else prod(x)
    xb, yb = as_int(xin * itemsize), as_int(prod(y) * itemsize)
    if backend == "native":
        if pointwise and tuple(a["stride"]) == ones:
            return ((), ())
        per = (y[0] * prod(k) * prod(x[1:])) if transposed else (x[0] * prod(k) * prod(y[1:]))
        col = (0, as_int(per // g * itemsize))
        return ((col,), (col,))
    weights = ltype.count(a, xs, y)[0] - (y[0] if a["bias"] else 0)
    layouts = ((xb, 0), (yb, 0))
    filt = ((0, as_int(weights * itemsize) + FILTER_EXTRA),)
    if pointwise:
        fwd = layouts if x[0] >= POINTWISE_CHANNELS else ()
    elif x[0] * prod(k) < SMALL_REDUCTION:
        fwd = ()
    else:
        fwd = layouts + filt
    if fwd and g != 1:  # a grouped conv: the engine cuDNN's heuristics pick varies with the group width
        fwd = fwd + ((as_int((xb + yb) // GROUPED_ENGINE), 0),)
    # backward converts whatever the size: the output's gradient for the input's gradient and again
    # for the filter's, the input (or its gradient), the filter; and its engines' own workspace
    bwd = layouts + ((yb, 0),) + (() if pointwise else filt) + (BACKWARD_ENGINE,)
    return (fwd, bwd)


@register
class Conv(_ConvBase):
    name = "conv"
    aliases = ("conv2d",)
    doc = ("Convolution (torch.nn.Conv2d; Conv1d on a C x L input, Conv3d on C x D x H x W: the spec's input "
           "decides the rank, kernel, stride, padding and dilation give one value per axis).")
    keys = (
        Key("out", "size", None, "output channels (default: the input channels)"),
        Key("kernel", "pair", REQUIRED, "kernel size"),
        Key("stride", "pair", 1, "stride"),
        Key("padding", "padding", 0, "zero padding"),
        Key("dilation", "pair", 1, "dilation"),
        Key("groups", "groups", 1, "groups; 'depthwise' means one group per input channel"),
        Key("bias", "bool", True, "learnable bias"),
        Key("padding_mode", "choice", "zeros", "what the padding holds: zeros, or reflect, replicate, circular "
            "(torch's padding_mode)", choices=("zeros", "reflect", "replicate", "circular")),
    )
    formulas = {
        "shape": "H' = floor((H + P_top + P_bottom - D*(K-1) - 1) / S) + 1, likewise W' (and L' in 1-D, D' in 3-D)",
        "params": "C_out * (C_in / groups) * K_h * K_w  (+ C_out bias); 1-D K_l, 3-D K_d * K_h * K_w",
        "macs": "C_out * H' * W' * (C_in / groups) * K_h * K_w; 1-D L' * K_l, 3-D D' * H' * W' * K_d * K_h * K_w",
    }

    def out(self, a, xs):
        x = spatial(xs[0], self.name)
        _rank_check(self.name, a, x)
        cout = self.cout(a, x)
        self.check_groups(a, x, cout)
        k = eff(a)
        p = pads(a, x, k)
        mode = a.get("padding_mode", "zeros")
        if mode != "zeros":
            # torch's limits on the mode hold for 'same' padding too (reflect pads less than the size)
            from .pad import check_mode

            check_mode(self.name, mode, p, x)
        if a["padding"] == "same":
            return (cout,) + same_out(x, a["stride"])
        return (cout,) + tuple(window_out(size, k[i], a["stride"][i], p[2 * i], p[2 * i + 1]) for i, size in enumerate(x[1:]))

    def count(self, a, xs, y):
        x = xs[0]
        g = self.groups(a, x)
        weights = as_int(y[0] * (x[0] // g) * prod(a["kernel"]))
        return as_int(weights + (y[0] if a["bias"] else 0)), 0

    def macs(self, a, xs, y):
        x = xs[0]
        return as_int(prod(y) * (x[0] // self.groups(a, x)) * prod(a["kernel"]))

    def formula(self, a, xs, y):
        x = xs[0]
        per = (Factor("(C_in/groups)", x[0], self.groups(a, x)),) + kernel_factors(a["kernel"])
        cout = Factor("C_out", y[0])
        params = (Count((Term((cout,) + per), Term((cout,), "bias"))) if a["bias"]
                  else Count((Term((cout,) + per),), "no bias"))
        outs = tuple(Factor(n + "_out", v) for n, v in zip(AXIS_NAMES[len(y) - 1], y[1:]))
        return Counts(params, macs=Count((Term((cout,) + outs + per),)))

    def details(self, a, xs, y):
        mode = a.get("padding_mode", "zeros")
        return super().details(a, xs, y) + ("" if mode == "zeros" else f" {mode}")

    def saves(self, a, training):
        mode = a.get("padding_mode", "zeros")
        if mode == "zeros":
            return ("input",)
        # the conv keeps its padded copy (``workspace``); reflect and replicate padding the input too
        return ("input",) if mode in ("reflect", "replicate") else ()

    def workspace(self, a, xs, y):
        if a.get("padding_mode", "zeros") == "zeros":
            return 0
        x = xs[0]
        return padded(x, pads(a, x, eff(a)))

    def size_formula(self, a, xs, y):
        cout = "out" if a["out"] is not None else "the input's channels"
        return window_sizes(a, xs, y, channels=Text(f"  channels: {cout} = {{}}", (y[0],)))

    def window(self, a, xs, y):
        k = eff(a)
        p = pads(a, xs[0], k)
        d = a["dilation"]
        mode = a.get("padding_mode", "zeros")
        if mode != "zeros":  # the padding copies input positions: the field at the border is theirs
            return tuple(Axis(k[i], a["stride"][i], p[2 * i], p[2 * i + 1], dil=d[i]) if (p[2 * i], p[2 * i + 1]) == (0, 0)
                         else PadCopy(k[i], a["stride"][i], p[2 * i], p[2 * i + 1], dil=d[i], mode=mode, n=xs[0][1 + i])
                         for i in range(len(k)))
        return tuple(Axis(k[i], a["stride"][i], p[2 * i], p[2 * i + 1], dil=d[i]) for i in range(len(k)))

    torch_ops = rank_ops("Conv2d")

    def from_torch(self, op, kw, xs, y):
        mode = kw.get("padding_mode", "zeros")
        if mode not in ("zeros", "reflect", "replicate", "circular") or not torch_rank(op, xs[0]):
            return None
        pad = kw["padding"]
        g = kw["groups"]
        out = {"out": kw["out_channels"], "kernel": pair_of(kw["kernel_size"]), "stride": pair_of(kw["stride"]),
               "padding": "same" if pad == "same" else 0 if pad == "valid" else pair_of(pad),
               "dilation": pair_of(kw["dilation"]), "groups": "depthwise" if 1 < g == kw["in_channels"] else g,
               "bias": bool(kw["bias"])}
        if mode != "zeros":
            out["padding_mode"] = mode
        return out

    def size_dependent(self, a):
        # TF 'same' padding at stride > 1 depends on the input size
        return a["padding"] == "same" and any(s != 1 for s in a["stride"])

    def scratch(self, a, xs, y, itemsize, training):
        x = xs[0]
        p = pads(a, x, eff(a))
        if a.get("padding_mode", "zeros") != "zeros":
            return 0 if not any(p) else as_int(padded(x, p) * itemsize)
        if p[0::2] == p[1::2]:
            return 0
        return as_int(padded(x, p) * itemsize)  # the ZeroPad2d copy the conv reads

    def torch(self, a, xs, y):
        x = xs[0]
        n = len(x) - 1
        if n != 2:
            return self._torch_nd(a, xs, y, n)
        t, b, l, r = pads(a, x, eff(a))
        conv = {
            "in_channels": x[0],
            "out_channels": y[0],
            "kernel_size": tuple(a["kernel"]),
            "stride": tuple(a["stride"]),
            "dilation": tuple(a["dilation"]),
            "groups": self.groups(a, x),
            "bias": a["bias"],
        }
        mode = a.get("padding_mode", "zeros")
        if t == b and l == r:
            return [("Conv2d", {**conv, "padding": (t, l)} if mode == "zeros" else {**conv, "padding": (t, l), "padding_mode": mode})]
        if mode != "zeros":
            return [("Pad", {"padding": (l, r, t, b), "mode": mode}), ("Conv2d", {**conv, "padding": (0, 0)})]
        return [("ZeroPad2d", {"padding": (l, r, t, b)}), ("Conv2d", {**conv, "padding": (0, 0)})]

    def _torch_nd(self, a, xs, y, n):
        """Conv1d / Conv3d: as the 2-D case, an asymmetric padding first as its own pad module."""
        x = xs[0]
        p = pads(a, x, eff(a))
        conv = {"in_channels": x[0], "out_channels": y[0], "kernel_size": tuple(a["kernel"]), "stride": tuple(a["stride"]),
                "dilation": tuple(a["dilation"]), "groups": self.groups(a, x), "bias": a["bias"]}
        cls, mode = f"Conv{n}d", a.get("padding_mode", "zeros")
        if p[0::2] == p[1::2]:
            return [(cls, {**conv, "padding": tuple(p[0::2])} if mode == "zeros"
                     else {**conv, "padding": tuple(p[0::2]), "padding_mode": mode})]
        if mode != "zeros":
            return [("Pad", {"padding": torch_pad(p), "mode": mode}), (cls, {**conv, "padding": (0,) * n})]
        return [(f"ZeroPad{n}d", {"padding": torch_pad(p)}), (cls, {**conv, "padding": (0,) * n})]

    def probe(self, a, xs, y, collapse):
        ops = self.torch(a, xs, y)
        return self._collapse(ops) if collapse else ops

    @staticmethod
    def _collapse(ops):
        """The conv's ops on channel sums (ProbeSpatialConv), its padding as torch pads it."""
        out = []
        for cls, kw in ops:
            if cls == "Conv2d":
                if kw.get("padding_mode", "zeros") != "zeros":  # the padding copies input positions: pad as torch does
                    t, l = kw["padding"]
                    out.append(("Pad", {"padding": (l, l, t, t), "mode": kw["padding_mode"]}))
                    kw = {**kw, "padding": (0, 0)}
                kw = {k: kw[k] for k in ("kernel_size", "stride", "padding", "dilation")}
                cls = "ProbeSpatialConv"
            out.append((cls, kw))
        return out


@register
class StdConv(Conv):
    name = "std_conv"
    aliases = ()  # not conv's conv2d
    doc = (
        "A weight-standardised 2-D convolution (timm's StdConv2d; with `gain: true` its ScaledStdConv2d, "
        "NF-Nets): each output channel's filter is normalised to zero mean and unit variance (plus eps) "
        "before the convolution, as a batch norm of the weight; ScaledStdConv2d then multiplies it by a "
        "learnable gain per output channel and the constant gamma / sqrt(fan-in). The parameters of "
        "conv plus C_out gains; the MACs of conv exactly (the standardisation is per batch, not per "
        "position: FlopCounterMode counts none). Keys as conv's."
    )
    keys = Conv.keys + (
        Key("eps", "float", 1e-6, "epsilon of the standardisation (timm's default 1e-6)", lo=0, lo_open=True),
        Key("gain", "bool", False, "ScaledStdConv2d: a learnable gain per output channel and the scale gamma / sqrt(fan-in)"),
        Key("gamma", "float", 1.0, "with gain: the constant gamma (NF-ResNets: the activation's gamma)"),
    )
    formulas = {
        "shape": "H' = floor((H + P_top + P_bottom - D*(K-1) - 1) / S) + 1, likewise W'",
        "params": "C_out * (C_in / groups) * K_h * K_w  (+ C_out bias)  (+ C_out gain)",
        "macs": "C_out * H' * W' * (C_in / groups) * K_h * K_w",
    }
    workspace_per_batch = True  # the standardised weight and its statistics: one per batch

    def out(self, a, xs):
        hw(xs[0], self.name)  # timm's StdConv2d: 2-D only
        return super().out(a, xs)

    def count(self, a, xs, y):
        p, b = super().count(a, xs, y)
        return as_int(p + (y[0] if a["gain"] else 0)), b

    def formula(self, a, xs, y):
        f = super().formula(a, xs, y)
        if not a["gain"]:
            return f
        return Counts(Count(f.params.terms + (Term((Factor("C_out", y[0]),), "gain"),), f.params.note), f.buffers, f.macs)

    def details(self, a, xs, y):
        return super().details(a, xs, y) + (" ws+gain" if a.get("gain") else " ws")

    def workspace(self, a, xs, y):
        # backward keeps the standardised weight, its mean and 1/std per output channel, and the
        # gain times the scale (ScaledStdConv2d: batch norm's weight)
        x = xs[0]
        w = y[0] * (x[0] // self.groups(a, x)) * a["kernel"][0] * a["kernel"][1]
        return as_int(super().workspace(a, xs, y) + w + 2 * y[0] + (y[0] if a["gain"] else 0))

    def scratch(self, a, xs, y, itemsize, training):
        x = xs[0]
        w = y[0] * (x[0] // self.groups(a, x)) * a["kernel"][0] * a["kernel"][1]
        extra = 0 if training else as_int(w * itemsize)  # the standardised weight, alive while the conv runs
        return as_int(super().scratch(a, xs, y, itemsize, training) + extra)

    def torch(self, a, xs, y):
        out = []
        for cls, kw in super().torch(a, xs, y):
            if cls == "Conv2d" and "padding_mode" in kw:  # timm's F.conv2d pads with zeros: pad first
                mode, (t, l) = kw.pop("padding_mode"), kw["padding"]
                out.append(("Pad", {"padding": (l, l, t, t), "mode": mode}))
                kw["padding"] = (0, 0)
            if cls == "Conv2d":
                cls, kw = ("ScaledStdConv2d", {**kw, "eps": a["eps"], "gamma": a["gamma"]}) if a["gain"] else \
                    ("StdConv2d", {**kw, "eps": a["eps"]})
                if out and out[-1][0] == "ZeroPad2d":  # asymmetric 'same': the module pads (its state_dict keys stay)
                    kw["pad"] = tuple(out.pop()[1]["padding"])
            out.append((cls, kw))
        return out

    def probe(self, a, xs, y, collapse):
        ops = Conv.torch(self, a, xs, y)  # a plain convolution's geometry, its padding as torch pads it
        return self._collapse(ops) if collapse else ops

    torch_ops = ("StdConv2d", "ScaledStdConv2d", "timm.layers.std_conv.StdConv2d", "timm.layers.std_conv.ScaledStdConv2d",
                 "StdConv2dSame", "ScaledStdConv2dSame", "timm.layers.std_conv.StdConv2dSame",
                 "timm.layers.std_conv.ScaledStdConv2dSame")

    def from_torch(self, op, kw, xs, y):
        if len(xs[0]) != 3:
            return None
        pad, g = kw["padding"], kw["groups"]
        if op.endswith("Same"):  # timm's TF-'SAME' variants: pad_same first where the padding is not static
            same = kw.get("attrs", {}).get("same_pad")
            if not isinstance(same, bool):
                return None
            pad = "same" if same else kw["padding"]
            op = op[: -len("Same")]
        if op == "ScaledStdConv2d" and "gamma" not in kw:
            # timm's ScaledStdConv2d keeps only scale = gamma * fan_in ** -0.5: gamma is the shortest
            # number that gives that scale again (as the builder computes it), else refused
            scale = kw.get("attrs", {}).get("scale")
            k = pair_of(kw["kernel_size"])
            fan_in = (xs[0][0] // g) * (k[0] * k[1] if isinstance(k, tuple) else k * k)
            gamma = None
            if isinstance(scale, float):
                import math

                up = down = [scale * fan_in ** 0.5]
                for _ in range(4):  # the product's rounding: a few ulps either side
                    up, down = up + [math.nextafter(up[-1], math.inf)], down + [math.nextafter(down[-1], -math.inf)]
                near = up + down[1:]
                shortest = [float(f"{c:.{d}g}") for d in range(1, 18) for c in near]
                gamma = next((v for v in shortest if v * fan_in ** -0.5 == scale), None)
            if gamma is None:
                return None
            kw = {**kw, "gamma": gamma}
        if isinstance(pad, str) and pad != "same":
            return None
        out = {"out": kw["out_channels"], "kernel": pair_of(kw["kernel_size"]), "stride": pair_of(kw["stride"]),
               "padding": pad if pad == "same" else pair_of(pad), "dilation": pair_of(kw["dilation"]),
               "groups": "depthwise" if 1 < g == xs[0][0] else g, "bias": bool(kw["bias"]), "eps": kw["eps"]}
        if op == "ScaledStdConv2d":
            out.update(gain=True, gamma=kw["gamma"])
        return out


@register
class ConvTranspose(_ConvBase):
    name = "conv_transpose"
    aliases = ("conv_transpose2d", "deconv")
    doc = (
        "Transposed convolution (torch.nn.ConvTranspose2d; ConvTranspose1d / 3d on 1-D / 3-D maps): U-Net's "
        "up-convolution. MACs follow "
        "torch's FlopCounterMode, which counts a transposed conv over its INPUT positions: every input "
        "value is multiplied by the whole (C_out / groups) x K_h x K_w filter, C_in * H * W * "
        "(C_out / groups) * K_h * K_w, whatever the padding crops off the output."
    )
    keys = (
        Key("out", "size", None, "output channels (default: the input channels)"),
        Key("kernel", "pair", REQUIRED, "kernel size"),
        Key("stride", "pair", 1, "stride (the upsampling factor)"),
        Key("padding", "padding", 0, "rows/columns removed from each border of the full output (one per axis; symmetric)"),
        Key("output_padding", "padding", 0, "extra rows/columns at the bottom/right ([h, w]; below stride or dilation)"),
        Key("dilation", "pair", 1, "dilation"),
        Key("groups", "groups", 1, "groups; 'depthwise' means one group per input channel"),
        Key("bias", "bool", True, "learnable bias"),
    )
    formulas = {
        "shape": "H' = (H - 1) * S - 2P + D*(K-1) + output_padding + 1, likewise W' (and L', D')",
        "params": "C_in * (C_out / groups) * K_h * K_w  (+ C_out bias); 1-D K_l, 3-D K_d * K_h * K_w",
        "macs": "C_in * H * W * (C_out / groups) * K_h * K_w  (torch's FlopCounterMode: per input position; "
                "1-D L * K_l, 3-D D * H * W * K_d * K_h * K_w)",
    }

    def _sym(self, a, key):
        p = a[key]
        if isinstance(p, int):
            return p, p
        if p == "same" or p[0::2] != p[1::2]:
            raise ShapeError(f"conv_transpose: {key} is one value per axis, got {p}",
                             hint=f"write {key}: " + ("[h, w]" if len(p) == 4 else f"a list of {len(p) // 2}"))
        return tuple(p[0::2])

    def out(self, a, xs):
        x = spatial(xs[0], "conv_transpose")
        _rank_check(self.name, a, x)
        cout = self.cout(a, x)
        self.check_groups(a, x, cout)
        pad = self._sym(a, "padding")
        opad = self._sym(a, "output_padding")
        dims = []
        for i in range(len(x) - 1):
            s, d, k = a["stride"][i], a["dilation"][i], a["kernel"][i]
            if not is_symbolic(opad[i]) and not is_symbolic(s) and not is_symbolic(d) and opad[i] >= max(s, d):
                raise ShapeError(f"conv_transpose: output_padding {opad[i]} must be below the stride {s} or the dilation {d}")
            dims.append(as_int((x[1 + i] - 1) * s - 2 * pad[i] + d * (k - 1) + opad[i] + 1))
        return (cout,) + tuple(dims)

    def count(self, a, xs, y):
        x = xs[0]
        g = self.groups(a, x)
        weights = as_int(x[0] * (y[0] // g) * prod(a["kernel"]))
        return as_int(weights + (y[0] if a["bias"] else 0)), 0

    def macs(self, a, xs, y):
        x = xs[0]
        return as_int(prod(x) * (y[0] // self.groups(a, x)) * prod(a["kernel"]))

    def formula(self, a, xs, y):
        x = xs[0]
        cin = Factor("C_in", x[0])
        per = (Factor("(C_out/groups)", y[0], self.groups(a, x)),) + kernel_factors(a["kernel"])
        params = (Count((Term((cin,) + per), Term((Factor("C_out", y[0]),), "bias"))) if a["bias"]
                  else Count((Term((cin,) + per),), "no bias"))
        ins = tuple(Factor(n + "_in", v) for n, v in zip(AXIS_NAMES[len(x) - 1], x[1:]))
        return Counts(params, macs=Count((Term((cin,) + ins + per),)))

    def window(self, a, xs, y):
        # output o = i*S - P + t*D for a tap t in [0, K-1]: it reads inputs i in
        # [ceil((o + P - (K-1) D) / S), floor((o + P) / S)] (the extent; with S > 1 and D > 1 some
        # inputs inside it are skipped)
        pad = self._sym(a, "padding")
        axes = []
        for i in range(len(pad)):
            s, d, k, p = a["stride"][i], a["dilation"][i], a["kernel"][i], pad[i]
            span = d * (k - 1)
            if s == 1:
                axes.append(Axis(span + 1, 1, span - p, span - p, False))
            elif d == 1 or any(is_symbolic(v) for v in (s, d, k, p)):
                axes.append(Resample(Fraction(1, s), Fraction(p - span, s), Fraction(p, s), a_up=True))
            else:
                axes.append(Taps(Fraction(1, s), Fraction(p - span, s), Fraction(p, s), a_up=True,
                                 stride=s, kernel=k, dil=d, pad=p))
        return tuple(axes)

    def torch(self, a, xs, y):
        x = xs[0]
        return [(torch_nd("ConvTranspose2d", len(x) - 1), {
            "in_channels": x[0],
            "out_channels": y[0],
            "kernel_size": tuple(a["kernel"]),
            "stride": tuple(a["stride"]),
            "padding": self._sym(a, "padding"),
            "output_padding": self._sym(a, "output_padding"),
            "groups": self.groups(a, x),
            "bias": a["bias"],
            "dilation": tuple(a["dilation"]),
        })]

    torch_ops = rank_ops("ConvTranspose2d")

    def from_torch(self, op, kw, xs, y):
        if kw.get("padding_mode", "zeros") != "zeros" or not torch_rank(op, xs[0]):
            return None
        g = kw["groups"]
        return {"out": kw["out_channels"], "kernel": pair_of(kw["kernel_size"]), "stride": pair_of(kw["stride"]),
                "padding": pair_of(kw["padding"]), "output_padding": pair_of(kw["output_padding"]),
                "dilation": pair_of(kw["dilation"]), "groups": "depthwise" if 1 < g == kw["in_channels"] else g,
                "bias": bool(kw["bias"])}

    def probe(self, a, xs, y, collapse):
        if not collapse:
            return self.torch(a, xs, y)
        (cls, kw), = self.torch(a, xs, y)
        return [("ProbeSpatialConvTranspose", {k: kw[k] for k in ("kernel_size", "stride", "padding", "output_padding", "dilation")})]


@register
class Linear(LayerType):
    name = "linear"
    aliases = ("fc",)
    doc = "Fully connected layer (torch.nn.Linear) on a flat vector."
    keys = (Key("out", "size", REQUIRED, "output features"), Key("bias", "bool", True, "learnable bias"))
    formulas = {"shape": "out", "params": "in * out (+ out bias)", "macs": "in * out"}
    probe_needs_channels = True  # its weights mix channels and positions: the probe keeps every channel

    def out(self, a, xs):
        x = xs[0]
        if len(x) != 1:
            raise ShapeError(
                f"linear needs a flat vector, got a {shape_text(x)} feature map", hint="add flatten before it"
            )
        return (a["out"],)

    def count(self, a, xs, y):
        return as_int(xs[0][0] * y[0] + (y[0] if a["bias"] else 0)), 0

    def macs(self, a, xs, y):
        return as_int(xs[0][0] * y[0])

    def formula(self, a, xs, y):
        fin, fout = Factor("in", xs[0][0]), Factor("out", y[0])
        params = Count((Term((fin, fout)), Term((fout,), "bias"))) if a["bias"] else Count((Term((fin, fout)),))
        return Counts(params, macs=Count((Term((fin, fout)),)))

    def size_formula(self, a, xs, y):
        return Text("output size: out = {} features from {}", (y[0], xs[0][0]))

    def window(self, a, xs, y):
        return "global"

    def size_dependent(self, a):
        return True

    def saves(self, a, training):
        return ("input",)

    def backward_macs(self, a, xs, y, grad_input, grad_weight):
        m = self.macs(a, xs, y)  # grad-input: grad @ W; grad-weight: grad^T @ x
        return as_int(m * ((1 if grad_input else 0) + (1 if grad_weight else 0)))

    def torch(self, a, xs, y):
        return [("Linear", {"in_features": xs[0][0], "out_features": y[0], "bias": a["bias"]})]

    torch_ops = ("Linear",)

    def from_torch(self, op, kw, xs, y):
        return {"out": kw["out_features"], "bias": bool(kw["bias"])} if len(xs[0]) == 1 else None


@register
class ChannelLinear(LayerType):
    torch_module = "conv_torch"  # its own nn.Module classes
    name = "channel_linear"
    doc = (
        "A fully connected layer over the channels at every position: torch.nn.Linear on the "
        "channels-last (N, H, W, C) tensor, as ConvNeXt's pointwise layers. The numbers of a 1x1 conv "
        "(MACs as FlopCounterMode counts the Linear), with nn.Linear's parameters (weight out x in, "
        "bias), so a Linear's state_dict loads into it."
    )
    keys = (Key("out", "size", None, "output channels (default: the input channels)"),
            Key("bias", "bool", True, "learnable bias"))
    formulas = {"shape": "out x H x W", "params": "C_in * out (+ out bias)", "macs": "out * H * W * C_in"}

    def out(self, a, xs):
        x = hw(xs[0], self.name)
        return (x[0] if a["out"] is None else a["out"],) + tuple(x[1:])

    def count(self, a, xs, y):
        return as_int(xs[0][0] * y[0] + (y[0] if a["bias"] else 0)), 0

    def macs(self, a, xs, y):
        return as_int(y[0] * y[1] * y[2] * xs[0][0])

    def formula(self, a, xs, y):
        fin, fout = Factor("C_in", xs[0][0]), Factor("C_out", y[0])
        params = Count((Term((fin, fout)), Term((fout,), "bias"))) if a["bias"] else Count((Term((fin, fout)),))
        return Counts(params, macs=Count((Term((fout, Factor("H", y[1]), Factor("W", y[2]), fin)),)))

    def saves(self, a, training):
        return ("input",)

    def backward_macs(self, a, xs, y, grad_input, grad_weight):
        m = self.macs(a, xs, y)  # a 1x1 conv's: grad-input and grad-weight each the forward's
        return as_int(m * ((1 if grad_input else 0) + (1 if grad_weight else 0)))

    def torch(self, a, xs, y):
        # archcalc.layers.conv_torch.ChannelLinear: nn.Linear's parameters, run as a 1x1 conv on N, C, H, W
        return [("ChannelLinear", {"in_features": xs[0][0], "out_features": y[0], "bias": a["bias"]})]

    def probe(self, a, xs, y, collapse):
        if not collapse:
            return self.torch(a, xs, y)
        return [("ProbeSpatialConv", {"kernel_size": (1, 1), "stride": (1, 1), "padding": (0, 0), "dilation": (1, 1)})]

    torch_ops = ("Linear", "ChannelLinear")
    channels_last = True

    def from_torch(self, op, kw, xs, y):
        # nn.Linear on a channels-last map (the importer gives its shapes channels-first), or the
        # builder's own module
        if len(xs[0]) != 3 or (op == "Linear") != bool(kw.get("channels_last")):
            return None
        return {"out": kw["out_features"], "bias": bool(kw["bias"])}
