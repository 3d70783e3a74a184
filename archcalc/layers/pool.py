"""Pooling: max, average, adaptive average, global average."""

from __future__ import annotations

from fractions import Fraction
from typing import ClassVar

from ..expr import ceildiv, floordiv, is_symbolic
from ..findings import Finding, declare
from .base import (same_channels, rank_ops, torch_rank, REQUIRED, Axis, Key, LayerType, Resample, ShapeError, Text, eff, pads, pair_of, pair_text, prod, register,
                   same_out, spatial, torch_nd, torch_pad, window_out, window_sizes)

_AXIS_WORDS = {1: ("positions",), 2: ("rows", "columns"), 3: ("frames", "rows", "columns")}


def _explicit_pad(x, p):
    """Values of map x padded by per-axis (before, after) p."""
    out = x[0]
    for i, size in enumerate(x[1:]):
        out = out * (size + p[2 * i] + p[2 * i + 1])
    return out


class _Pool(LayerType):
    channel_reads = same_channels  # each channel its own
    torch_module = "pool_torch"  # its own nn.Module classes
    torch_name: ClassVar[str]

    def stride(self, a):
        return a["kernel"] if a["stride"] is None else a["stride"]

    def out(self, a, xs):
        x = spatial(xs[0], self.name)
        from .conv import _rank_check

        _rank_check(self.name, a, x)
        if a["padding"] == "same":
            # 'same' pads to exactly ceil(I/S) windows; ceil mode changes nothing: with total
            # padding T > 0 the span (ceil(I/S) - 1) S divides by S, and with T = 0 (K <= S) the
            # extra window ceil mode would add starts at or past the input's end, which PyTorch's
            # drop-the-last-window rule removes (docs/symbolic.md)
            return (x[0],) + same_out(x, self.stride(a))
        k = eff(a)
        p = pads({**a, "stride": self.stride(a)}, x, k)
        s = self.stride(a)
        dims = []
        for size, kk, ss, p0, p1 in zip(x[1:], k, s, p[0::2], p[1::2]):
            if a["ceil_mode"] and not any(is_symbolic(v) for v in (kk, ss, p0, p1)) and p1 <= kk:
                # PyTorch's ceil mode drops a last window that starts in the trailing padding:
                # n = ceil(span/s) + 1, minus 1 where (n - 1) s >= I + p0. With A = ceil(span/s) and
                # B = ceil((I + p0)/s), A <= B when p1 <= k, and the rule is n = 1 + min(A, B - 1)
                # = 1 + ceil((I + p0 + min(p1 - k, -s)) / s): one canonical form, exact for
                # concrete and symbolic sizes alike (see docs/symbolic.md)
                dims.append(ceildiv(size + p0 + min(p1 - kk, -ss), ss) + 1)
                continue
            n = window_out(size, kk, ss, p0, p1, a["ceil_mode"])
            if a["ceil_mode"] and not is_symbolic(n) and not is_symbolic(size):
                # PyTorch: the last window must start inside the input or its leading padding
                if (n - 1) * ss >= size + p0:
                    n -= 1
            dims.append(n)
        return (x[0],) + tuple(dims)

    def window(self, a, xs, y):
        k = eff(a)
        s = self.stride(a)
        p = pads({**a, "stride": s}, xs[0], k)
        tiles = not a["ceil_mode"]
        d = a.get("dilation") or (1,) * len(k)
        return tuple(Axis(k[i], s[i], p[2 * i], p[2 * i + 1], tiles, d[i]) for i in range(len(k)))

    def size_dependent(self, a):
        return a["padding"] == "same" and any(v != 1 for v in self.stride(a))

    def size_formula(self, a, xs, y):
        return window_sizes(a, xs, y, stride=self.stride(a))

    def _from(self, kw):
        k, s = pair_of(kw["kernel_size"]), kw.get("stride")
        return {"kernel": k, "stride": k if s is None or s == () or s == [] else pair_of(s),
                "padding": pair_of(kw.get("padding", 0)), "ceil_mode": bool(kw.get("ceil_mode", False))}

    def _pad_bytes(self, a, xs, itemsize, zero_ok=False):
        """Bytes per image of the explicit padded copy :meth:`_ops` builds (0: implicit padding)."""
        x = xs[0]
        p = pads({**a, "stride": self.stride(a)}, x, eff(a))
        k = tuple(a["kernel"])
        sym = p[0::2] == p[1::2]
        if (sym and all(2 * v <= kk for v, kk in zip(p[0::2], k))) or (zero_ok and sym):
            return 0
        return _explicit_pad(x, p) * itemsize

    def _ops(self, a, xs, y, pool, pad_cls):
        """torch's pools take symmetric implicit padding of at most half the kernel: anything else
        is padded explicitly, and with ceil mode cropped to PyTorch's rule (which counts only the
        leading padding, and which torch cannot apply once the padding is explicit)."""
        n = len(xs[0]) - 1
        if n != 2:
            return self._ops_nd(a, xs, y, pool, pad_cls, n)
        t, b, l, r = pads({**a, "stride": self.stride(a)}, xs[0], eff(a))
        k = tuple(a["kernel"])
        implicit_ok = t == b and l == r and 2 * t <= k[0] and 2 * l <= k[1]
        if implicit_ok or (pad_cls == "ZeroPad2d" and t == b and l == r and not pool.get("count_include_pad", True)):
            return [(self.torch_name, {**pool, "padding": (t, l)})]
        out = [(pad_cls, {"padding": (l, r, t, b)}), (self.torch_name, {**pool, "padding": (0, 0)})]
        if a["ceil_mode"]:
            out.append(("Crop2d", {"size": (y[1], y[2])}))
        return out

    def _ops_nd(self, a, xs, y, pool, pad_cls, n):
        """:meth:`_ops` on a 1-D or 3-D map (MaxPool1d/3d, AvgPool1d/3d; the pads as F.pad)."""
        p = pads({**a, "stride": self.stride(a)}, xs[0], eff(a))
        k = tuple(a["kernel"])
        cls = torch_nd(self.torch_name, n)
        sym = p[0::2] == p[1::2]
        if pool.get("dilation") is not None and n == 1:
            pool = {**pool}
        if (sym and all(2 * v <= kk for v, kk in zip(p[0::2], k))) or (
                pad_cls == "ZeroPad2d" and sym and not pool.get("count_include_pad", True)):
            return [(cls, {**pool, "padding": tuple(p[0::2])})]
        pad = (("ConstantPadNd", {"padding": torch_pad(p), "value": float("-inf")}) if pad_cls == "NegInfPad2d"
               else (f"ZeroPad{n}d", {"padding": torch_pad(p)}))
        out = [pad, (cls, {**pool, "padding": (0,) * n})]
        if a["ceil_mode"]:
            out.append(("CropNd", {"size": tuple(y[1:])}))
        return out


@register
class MaxPool(_Pool):
    name = "maxpool"
    torch_name = "MaxPool2d"
    doc = "Max pooling (torch.nn.MaxPool2d; MaxPool1d / 3d on 1-D / 3-D maps)."
    keys = (
        Key("kernel", "pair", REQUIRED, "window size"),
        Key("stride", "pair", None, "stride (default: the kernel size)"),
        Key("padding", "padding", 0, "implicit -inf padding"),
        Key("dilation", "pair", 1, "dilation"),
        Key("ceil_mode", "bool", False, "round the output size up (PyTorch's rule)"),
    )
    formulas = {
        "shape": "H' = floor((H + P_top + P_bottom - D*(K-1) - 1) / S) + 1 (ceil with ceil_mode)",
        "params": "0",
        "macs": "0 (comparisons are not MACs)",
    }

    def out(self, a, xs):
        y = super().out(a, xs)
        # a window made only of padding: torch returns -inf there (and its CPU backward writes out
        # of bounds), so such a spec is refused (with implicit padding torch's own limit, half the
        # kernel, rules it out; archcalc pads explicitly beyond that)
        # A dilated window reads only its taps (start, start + D, ...): it covers only padding where no
        # tap lands on the input, which can happen inside the map too when D exceeds the input size
        # (a 2-tap window dilated by 2 over 1 row with 'same' padding reads rows -1 and 1)
        x = xs[0]
        p = pads({**a, "stride": self.stride(a)}, x, eff(a))
        for axis, size, kk, d, s, p0, n in zip(_AXIS_WORDS[len(x) - 1], x[1:], a["kernel"], a["dilation"], self.stride(a),
                                               p[0::2], y[1:]):
            if any(is_symbolic(v) for v in (size, kk, d, s, p0, n)) or n < 1:
                continue  # no window at all: the output-size check says so
            k = d * (kk - 1) + 1
            starts = range(n) if d > size else (0, n - 1)  # D <= size: a window reaching the map has a tap on it
            for o in starts:
                start = o * s - p0
                tap = start + (-(start // d) if start < 0 else 0) * d  # its first tap at or after row 0
                if tap > min(start + k - 1, size - 1):  # past its last tap, or past the map
                    what = "the first window" if o == 0 else "the last window" if o == n - 1 else f"window {o}"
                    taps = f"{kk} taps, dilation {d}, " if d > 1 else ""
                    raise ShapeError(
                        f"maxpool: {what} of {k} {axis} ({taps}starting at {start}, stride {s}) on {size} {axis} "
                        "covers only padding (torch returns -inf there)",
                        hint="use less padding than the window, or a larger input")
        return y

    def saves(self, a, training):
        return ("input", "indices")

    def scratch(self, a, xs, y, itemsize, training):
        # torch's max_pool2d makes int64 indices beside its output even under no_grad (kept for
        # backward in training: `saves`), and reads an explicit -inf padded copy where needed
        idx = 0 if training else prod(y) * 8
        return self._pad_bytes(a, xs, itemsize) + idx

    def _pool(self, a):
        return {
            "kernel_size": tuple(a["kernel"]),
            "stride": tuple(self.stride(a)),
            "dilation": tuple(a["dilation"]),
            "ceil_mode": a["ceil_mode"],
        }

    def torch(self, a, xs, y):
        return self._ops(a, xs, y, self._pool(a), "NegInfPad2d")

    torch_ops = rank_ops("MaxPool2d", "max_pool2d")

    def from_torch(self, op, kw, xs, y):
        if kw.get("return_indices") or not torch_rank(op, xs[0]):
            return None
        return {**self._from(kw), "dilation": pair_of(kw.get("dilation", 1))}

    def probe(self, a, xs, y, collapse):
        # every window position weighted: an average pool of the same geometry (a sum pool when dilated)
        out = []
        for cls, kw in self.torch(a, xs, y):
            if cls == "NegInfPad2d":
                out.append(("ZeroPad2d", kw))
            elif cls == "MaxPool2d":
                out.append(("ProbeSumPool", kw))
            else:
                out.append((cls, kw))
        return out


@register
class AvgPool(_Pool):
    name = "avgpool"
    torch_name = "AvgPool2d"
    doc = "Average pooling (torch.nn.AvgPool2d; AvgPool1d / 3d on 1-D / 3-D maps)."
    keys = (
        Key("kernel", "pair", REQUIRED, "window size"),
        Key("stride", "pair", None, "stride (default: the kernel size)"),
        Key("padding", "padding", 0, "implicit zero padding"),
        Key("ceil_mode", "bool", False, "round the output size up (PyTorch's rule)"),
        Key("count_include_pad", "bool", True, "divide by the full window, padding included"),
        Key("divisor_override", "size", None, "divide every window's sum by this instead (torch's divisor_override)"),
    )
    formulas = {
        "shape": "H' = floor((H + P_top + P_bottom - K) / S) + 1 (ceil with ceil_mode)",
        "params": "0",
        "macs": "0 (additions are not MACs)",
    }

    def out(self, a, xs):
        y = super().out(a, xs)
        if not a["count_include_pad"]:
            # torch takes implicit padding only symmetric and at most half the kernel; explicit zero
            # padding would be counted as input: no torch module computes the mean over the real
            # inputs otherwise, so the spec is refused rather than built differently
            x = xs[0]
            p = pads({**a, "stride": self.stride(a)}, x, eff(a))
            k = tuple(a["kernel"])
            if any(is_symbolic(v) for v in p):
                return y
            if len(x) != 3:
                if any(p) and not (p[0::2] == p[1::2] and all(2 * v <= kk for v, kk in zip(p[0::2], k))):
                    raise ShapeError(
                        f"avgpool {'x'.join(map(str, k))} with count_include_pad: false and padding {list(p)} "
                        "(before, after per axis): torch pads only symmetrically and by at most half the kernel "
                        "without counting the padding",
                        hint="use a symmetric padding of at most half the kernel, or count_include_pad: true")
                return y
            t, b, l, r = p
            if (t, b, l, r) != (0, 0, 0, 0) and not (t == b and l == r and 2 * t <= k[0] and 2 * l <= k[1]):
                raise ShapeError(
                    f"avgpool {k[0]}x{k[1]} with count_include_pad: false and padding top {t}, bottom {b}, "
                    f"left {l}, right {r}: torch pads only symmetrically and by at most half the kernel "
                    f"({k[0] // 2}x{k[1] // 2}) without counting the padding",
                    hint="use a symmetric padding of at most half the kernel, or count_include_pad: true")
        return y

    def saves(self, a, training):
        return ("input",)

    def scratch(self, a, xs, y, itemsize, training):
        return self._pad_bytes(a, xs, itemsize, zero_ok=not a["count_include_pad"])

    def torch(self, a, xs, y):
        pool = {
            "kernel_size": tuple(a["kernel"]),
            "stride": tuple(self.stride(a)),
            "ceil_mode": a["ceil_mode"],
            "count_include_pad": a["count_include_pad"],
        }
        if a.get("divisor_override") is not None:
            pool["divisor_override"] = a["divisor_override"]
        return self._ops(a, xs, y, pool, "ZeroPad2d")

    torch_ops = rank_ops("AvgPool2d", "avg_pool2d")

    def from_torch(self, op, kw, xs, y):
        if not torch_rank(op, xs[0]):
            return None
        out = {**self._from(kw), "count_include_pad": bool(kw.get("count_include_pad", True))}
        if kw.get("divisor_override") is not None:
            out["divisor_override"] = int(kw["divisor_override"])
        return out


_UPSAMPLES = declare("layer.adaptive-upsample", "an adaptive average pool to a size larger than its input: "
                     "torch repeats input values, an upsample rather than a pool (numbers: input_h, input_w, "
                     "output_h, output_w)")


@register
class AdaptiveAvgPool(LayerType):
    channel_reads = same_channels  # each channel its own
    name = "adaptive_avgpool"
    doc = (
        "Adaptive average pooling to a fixed output size (torch.nn.AdaptiveAvgPool2d; 1d / 3d on 1-D / 3-D "
        "maps, size one per axis). When the output "
        "size equals the input size it is an identity and produces no new values; an output larger "
        "than the input (torch repeats input values) is flagged with a warning."
    )
    keys = (Key("size", "pair", REQUIRED, "output size"),)
    formulas = {
        "shape": "C x size_h x size_w",
        "params": "0",
        "macs": "0",
    }

    def out(self, a, xs):
        x = spatial(xs[0], self.name)
        from .conv import _rank_check

        _rank_check(self.name, a, x)
        return (x[0],) + tuple(a["size"])

    def details(self, a, xs, y):
        return pair_text(a["size"], both=True)

    def size_formula(self, a, xs, y):
        if len(y) != 3:
            return Text("output size: fixed at {}; windows of ceil(I/O) at stride floor(I/O) on each axis", (tuple(y),))
        return Text("output size: fixed at {}x{}; windows of ceil(I/O) = ceil({}/{}) = {} at stride floor(I/O) = {}",
                    (y[1], y[2], xs[0][1], y[1], ceildiv(xs[0][1], y[1]), floordiv(xs[0][1], y[1])))

    def warnings(self, a, xs, y):
        x = xs[0]
        bigger = [(i, o) for i, o in zip(x[1:], y[1:]) if not is_symbolic(i) and not is_symbolic(o) and o > i]
        if not bigger:
            return []
        if len(x) != 3:
            return [Finding(_UPSAMPLES, f"{self.name} to {'x'.join(map(str, y[1:]))} is larger than its "
                            f"{'x'.join(map(str, x[1:]))} input on an axis: torch repeats input values (an upsample, "
                            "not a pool); use a larger input or a smaller size",
                            numbers=tuple((f"input_{i}", v) for i, v in enumerate(x[1:]))
                            + tuple((f"output_{i}", v) for i, v in enumerate(y[1:])))]
        return [Finding(_UPSAMPLES, f"adaptive_avgpool to {y[1]}x{y[2]} is larger than its {x[1]}x{x[2]} input: "
                        "torch repeats input values (an upsample, not a pool); use a larger input or a smaller size",
                        numbers=(("input_h", x[1]), ("input_w", x[2]), ("output_h", y[1]), ("output_w", y[2])))]

    def new_tensor(self, a, xs, y, training):
        if training:
            return True  # PyTorch copies even at the same size; only the inference count treats it as an identity
        pairs = list(zip(xs[0][1:], y[1:]))
        if not any(is_symbolic(v) for pair in pairs for v in pair):
            return any(i != o for i, o in pairs)
        from ..expr import sympy

        sp = sympy()
        return sp.Or(*(sp.Ne(i, o) for i, o in pairs))  # a condition; the engine keeps it exact

    def fresh(self, a, xs, y, training):
        return True  # torch copies even at the same size

    def copy_note(self, a, xs, y):
        if tuple(xs[0][1:]) == tuple(y[1:]):
            return "identity: torch copies, the engine counts no new values (convention)"
        return None

    def window(self, a, xs, y):
        # output o averages inputs floor(o I / O) .. ceil((o + 1) I / O) - 1 (PyTorch's rule): exact
        # in rationals; a plain window of I/O at stride I/O when O divides I
        axes = []
        for size, n in zip(xs[0][1:], y[1:]):
            if (is_symbolic(size) or is_symbolic(n)) and not (not is_symbolic(n) and n == 1):
                # a closed form holds at every size only where O divides I; elsewhere the field
                # depends on the position (issue 21 item 4): unknown, never a guess
                return "unknown"
            if is_symbolic(size):  # to one position: the whole map
                axes.append(Axis(size, size, 0, 0, False))
            elif size % n == 0:
                axes.append(Axis(size // n, size // n, 0, 0, False))
            else:
                q = Fraction(size, n)
                axes.append(Resample(q, 0, q - 1, b_up=True))
        return tuple(axes)

    def size_dependent(self, a):
        return True

    def saves(self, a, training):
        # PyTorch computes a 1x1 adaptive pool as a mean, whose backward keeps nothing
        return () if all(v == 1 for v in a["size"]) else ("input",)

    def torch(self, a, xs, y):
        return [(torch_nd("AdaptiveAvgPool2d", len(xs[0]) - 1), {"output_size": tuple(a["size"])})]

    torch_ops = rank_ops("AdaptiveAvgPool2d", "adaptive_avg_pool2d")

    def from_torch(self, op, kw, xs, y):
        size = kw["output_size"]
        if not torch_rank(op, xs[0]):
            return None
        if isinstance(size, (tuple, list)) and None in size:
            size = tuple(y[1:])
        return {"size": pair_of(size)}


class WholeMap(LayerType):
    """A reduction over the whole map (global average or max pooling): C x H x W to C x 1 x 1, one
    window of the map's size."""

    channel_reads = same_channels  # each channel its own

    def out(self, a, xs):
        x = spatial(xs[0], self.name)
        return (x[0],) + (1,) * (len(x) - 1)

    def size_formula(self, a, xs, y):
        if len(y) != 3:
            return Text("output size: C x 1... = {} (one window over the whole {} map)", (tuple(y), tuple(xs[0][1:])))
        return Text("output size: C x 1 x 1 = {} (one window over the whole {}x{} map)", (tuple(y), xs[0][1], xs[0][2]))

    def window(self, a, xs, y):
        x = xs[0]
        return tuple(Axis(v, v, 0, 0, False) for v in x[1:])

    def size_dependent(self, a):
        return True


@register
class GlobalAvgPool(WholeMap):
    name = "global_avgpool"
    doc = "Average over all spatial positions: C x H x W to C x 1 x 1 (C x L to C x 1, C x D x H x W to C x 1 x 1 x 1)."
    formulas = {"shape": "C x 1 x 1", "params": "0", "macs": "0"}

    def torch(self, a, xs, y):
        n = len(xs[0]) - 1
        return [(torch_nd("AdaptiveAvgPool2d", n), {"output_size": (1,) * n})]

    torch_ops = ("mean",)

    def from_torch(self, op, kw, xs, y):
        dims = kw.get("dim")
        dims = [dims] if isinstance(dims, int) else list(dims or ())
        n = len(xs[0])  # the spatial dims of an N, C, ... tensor: 2 .. n
        if n not in (2, 3, 4) or sorted(d % (n + 1) for d in dims) != list(range(2, n + 1)) or kw.get("dtype") is not None:
            return None
        return {} if kw.get("keepdim") else [("global_avgpool", {}), ("flatten", {})]
