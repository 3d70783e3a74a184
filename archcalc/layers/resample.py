"""Resampling: upsample (nearest, bilinear), centre crop, parameter-free shortcut subsampling."""

from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction
from functools import lru_cache

from ..expr import as_int, ceildiv, floordiv, is_symbolic
from ..limits import MAX_SIZE
from .base import (same_channels, REQUIRED, Axis, Key, LayerType, Resample, ShapeError, SizeOf, concrete, hw, pair_of, rational, register,
                   shape_text, spatial)


@lru_cache(maxsize=256)
def scale_pieces(scale: float) -> tuple:
    """torch's output size floor(I * scale), computed in double precision (ATen's
    compute_output_size: ``static_cast<double>(I) * scale``, truncated), as exact pieces over
    I = 1 .. MAX_SIZE: a tuple of (last I of the piece, numerator, addend, denominator), the size
    being floor((numerator * I + addend) / denominator) on the piece.

    The double d = float(scale) is an exact dyadic m / 2**e. For x = I d in [2**K, 2**(K+1)) the
    product rounds to the nearest multiple of 2**(K-52), ties to even; an integer N there is an even
    multiple (K < 52), so fl(x) >= N exactly when x >= N - 2**(K-53): the size is
    floor(x + 2**(K-53)) on that binade. Where the decimal p/q the spec wrote is near d (|x + 2**(K-53)
    - I p/q| < 1/q on the binade) the size is floor(I p/q), less 1 where q divides I and the rounded
    product falls short of the integer I p/q: floor((p I - 1)/q) on the part of the binade where
    I (p/q - d) > 2**(K-53). Scales exact in binary (2, 1.5, 0.25) and those whose double is above
    the decimal (0.6, 1.2) are one piece, floor(p I / q); 1.16 (a double just below 29/25) drops a
    row at I = 25, 50, 100, ... (torch: 28 rows at 25); a piece holding no multiple of q takes either form.

    >>> scale_pieces(1.5), scale_pieces(0.6)[0][1:]
    (((1099511627776, 3, 0, 2),), (3, 0, 5))
    >>> [p for p in scale_pieces(1.16)[:3]]
    [(55, 29, -1, 25), (88, 29, 0, 25), (110, 29, -1, 25)]
    """
    s, d = Fraction(repr(scale)), Fraction(scale)
    p, q = s.numerator, s.denominator
    pieces: list = []  # (lo, hi, set of addends r valid for floor((p I + r)/q), or the exact form)
    k = math.floor(math.log2(d)) - 1
    while True:
        lo, hi = max(1, math.ceil(Fraction(2) ** k / d)), math.ceil(Fraction(2) ** (k + 1) / d) - 1
        if lo > MAX_SIZE:
            break
        hi = min(hi, MAX_SIZE)
        k += 1
        if lo > hi:
            continue
        if k - 1 >= 52:
            raise ShapeError(f"upsample: scale {scale} makes sizes above 2**52 rows, beyond exact closed forms",
                             hint="give the sizes values with --set")
        half = Fraction(2) ** (k - 1 - 53)
        gap = lambda i: i * (d - s) + half  # noqa: E731 - what torch adds to I p/q before the floor
        if max(abs(gap(lo)), abs(gap(hi))) >= Fraction(1, q):
            # far from the decimal: the binade's exact form floor((m I + 2**(e+K-53)) / 2**e)
            m, e2 = d.numerator, d.denominator
            add = half * e2
            pieces.append((lo, hi, (m, math.floor(add), e2)))
            continue
        # the gap is negative exactly above cut (it falls with I when d < s)
        cut = hi if d >= s else min(hi, math.floor(half / (s - d)))
        for a, b, r in ((lo, cut, 0), (max(lo, cut + 1), hi, -1)):
            if a <= b:
                # no multiple of q in a..b: both addends give the same sizes there
                both = (b // q) * q < a
                pieces.append((a, b, {0, -1} if both else {r}))
    out: list = []
    for lo, hi, f in pieces:  # merge neighbours that can share one form
        if out and isinstance(f, set) and isinstance(out[-1][2], set) and out[-1][2] & f:
            out[-1] = (out[-1][0], hi, out[-1][2] & f)
        elif out and f == out[-1][2]:
            out[-1] = (out[-1][0], hi, f)
        else:
            out.append((lo, hi, f))
    return tuple((hi, *((p, min(f), q) if isinstance(f, set) else f)) for _, hi, f in out)


def scaled_size(size, scale: float):
    """floor(size * scale) as torch computes it (:func:`scale_pieces`), for an int or a closed form."""
    if not is_symbolic(size):
        return math.floor(size * float(scale))  # torch's rule, in double precision
    pieces = scale_pieces(float(scale))
    forms = [floordiv(as_int(m * size + r), e) for _, m, r, e in pieces]
    if len(forms) == 1:
        return forms[0]
    from ..expr import sympy

    sp = sympy()
    return sp.Piecewise(*((f, size <= hi) for f, (hi, *_) in zip(forms[:-1], pieces)), (forms[-1], True))


_CORNERS = ("linear", "bilinear", "bicubic", "trilinear")  # the modes with torch's align_corners
_LINEAR = ("linear", "bilinear", "trilinear")  # one per rank: 1-D, 2-D, 3-D
_RANK_MODES = {"linear": 1, "bilinear": 2, "bicubic": 2, "trilinear": 3}  # the rank each mode is for (torch's rule)


def _on_axis(a, i):
    """The keys with a per-axis scale ([h, w]) narrowed to axis i (0: H, 1: W)."""
    return {**a, "scale": a["scale"][i]} if isinstance(a.get("scale"), tuple) else a


def _nearest_exact(q, corners, size, n):
    return Resample(q, q / 2, q / 2)  # torch: floor((o + 1/2) q)


@dataclass(frozen=True)
class Cubic(Resample):
    """A bicubic axis: src = s*o + a + 1 (Resample(q, c - 1, c + 1, b_up) with c the source offset);
    four taps floor(src) - 1 .. floor(src) + 2, all weighted where src is not a whole number, and
    only src itself where it is (torch's cubic weights at t = 0 are 0, 1, 0, 0)."""

    def span(self, o):
        lo, hi = Resample.span(self, o)
        return (lo + 1, lo + 1) if hi - lo == 2 else (lo, hi)  # ceil - floor = 0: a whole number

    def spans(self):
        span = Resample.spans(self)
        if span == self.span:
            return span

        def cubic(o):
            lo, hi = span(o)
            return (lo + 1, lo + 1) if hi - lo == 2 else (lo, hi)

        return cubic


def _bicubic(q, corners, size, n):
    # src = o q (align_corners) or (o + 1/2) q - 1/2 (torch does not clamp a cubic source at 0)
    c = 0 if corners else (q - 1) / 2
    return Cubic(q, c - 1, c + 1, b_up=True)


def _area(q, corners, size, n):
    # an adaptive average pool to the output size: o averages floor(o I / O) .. ceil((o + 1) I / O) - 1
    if not concrete(size, n):
        return Axis(ceildiv(size, n), floordiv(size, n), 0, 0, False)
    return Resample(q, 0, q - 1, b_up=True)


_MODES_23 = {"nearest-exact": _nearest_exact, "bicubic": _bicubic, "area": _area}


@register
class Upsample(LayerType):
    torch_module = "resample_torch"  # its own nn.Module classes
    channel_reads = same_channels  # each channel its own
    name = "upsample"
    doc = (
        "Upsampling (torch.nn.Upsample / F.interpolate), nearest or bilinear (linear on a 1-D map, "
        "trilinear on a 3-D one), by a scale factor, to a "
        "size, or to the spatial size of an earlier layer's output (`like: NAME`, or `like: input`: FCN "
        "and LR-ASPP upsample to the input size). No parameters and, under the conv+linear convention, "
        "no MACs; its output is a new tensor. Its window is exact in rationals: a 2x upsample halves "
        "the receptive field's effective stride."
    )
    keys = (
        Key("scale", "scales", None, "scale factor, or one per axis (output = floor(input * scale))", lo=0, lo_open=True),
        Key("size", "pair", None, "output size, one per axis"),
        Key("like", "ref", None, "an earlier layer (or input) whose spatial size to take"),
        Key("mode", "choice", "nearest", "interpolation: nearest, nearest-exact, bilinear, bicubic or area; "
            "linear on a 1-D map, trilinear on a 3-D one",
            choices=("nearest", "nearest-exact", "bilinear", "bicubic", "area", "linear", "trilinear")),
        Key("align_corners", "bool", False, "bilinear and bicubic only: align the corner pixels (torch's align_corners)"),
    )
    formulas = {"shape": "C x floor(H * scale) x floor(W * scale), or the given size", "params": "0", "macs": "0"}

    def _how(self, a):
        given = [k for k in ("scale", "size", "like") if a.get(k) is not None]
        if len(given) != 1:
            raise ShapeError(
                "upsample needs exactly one of scale, size or like" + (f", got {', '.join(given)}" if given else ""),
                hint="upsample: {scale: 2} or {size: [h, w]} or {like: LAYER}",
            )
        if a["align_corners"] and a["mode"] not in _CORNERS:
            raise ShapeError("upsample: align_corners applies to bilinear and bicubic only", hint="drop align_corners or use mode: bilinear")
        return given[0]

    def out(self, a, xs):
        x = spatial(xs[0], self.name)
        n = len(x) - 1
        how = self._how(a)
        want = _RANK_MODES.get(a["mode"])
        if want is not None and want != n:
            fits = {1: "linear", 2: "bilinear or bicubic", 3: "trilinear"}[n]
            raise ShapeError(f"upsample: mode {a['mode']} is for {want}-D maps, its input {shape_text(x)} is {n}-D "
                             "(as torch's F.interpolate)", hint=f"use mode: {fits} (or nearest, nearest-exact, area)")
        for key in ("size", "scale"):
            v = a.get(key)
            if isinstance(v, tuple) and len(v) != n:
                raise ShapeError(f"upsample: {key} has {len(v)} values but its input {shape_text(x)} is a {n}-D map",
                                 hint=f"give {key} one value per spatial axis")
        if how == "size":
            return (x[0],) + tuple(a["size"])
        if how == "like":
            ref = xs[-1]
            if len(ref) == 1:
                raise ShapeError(f"upsample: like: names a flat vector of {ref[0]}, not a feature map")
            if len(ref) != len(x):
                raise ShapeError(f"upsample: like: names a {len(ref) - 1}-D map {shape_text(ref)}, its input is {n}-D")
            return (x[0],) + tuple(ref[1:])
        dims = [scaled_size(d, _on_axis(a, i)["scale"]) for i, d in enumerate(x[1:])]  # a per-axis scale: this axis's
        return (x[0],) + tuple(dims)

    def _q(self, a, size, n):
        """Input positions per output position, as torch computes source coordinates (a Fraction;
        a sympy expression where the sizes are symbols)."""
        if not concrete(size, n):
            from ..expr import sympy

            sp = sympy()
            size, n = sp.Integer(size) if isinstance(size, int) else size, sp.Integer(n) if isinstance(n, int) else n
            if a["mode"] in _CORNERS and a["align_corners"]:
                # torch's area_pixel_compute_scale: (I - 1)/(O - 1), and 0 for a single output
                # (the concrete rule below; no division by zero where O is 1 at some sizes)
                return sp.Piecewise((0, sp.Eq(n, 1)), ((size - 1) / (n - 1), True))
            return 1 / sp.Rational(str(rational(a["scale"]))) if a.get("scale") is not None and a["mode"] != "area" else size / n
        if a["mode"] in _CORNERS and a["align_corners"]:
            return Fraction(size - 1, n - 1) if n > 1 else 0
        if a.get("scale") is not None and a["mode"] != "area":  # area: an adaptive average pool to the size
            return 1 / Fraction(rational(a["scale"]))
        return Fraction(size, n)

    def window(self, a, xs, y):
        axes = []
        for i, (size, n) in enumerate(zip(xs[0][1:], y[1:])):
            if a["mode"] == "area" and not concrete(size, n):
                # an adaptive average pool from I to O: a closed form holds only where O divides I,
                # elsewhere the field depends on the position (as adaptive_avgpool): unknown
                return "unknown"
            q = self._q(_on_axis(a, i), size, n)
            if a["mode"] in ("nearest",) + _LINEAR and concrete(size, n) and n == size and not (
                    a["align_corners"] and n == 1 and a["mode"] in _CORNERS):
                # (align_corners to one position: torch's scale is 0, as the closed form's for a
                # size that is one: the stride of such a map is then 0 at every size)
                # an axis that keeps its size is a copy in torch's CPU kernels whatever the scale
                # (nearest_idx returns the output index when output size == input size; the
                # bilinear kernel interpolates only the axes whose size changes): 1.16 on 2 rows
                # gives 2 rows, row 1 reads row 1, not floor(1/1.16) = 0. Bicubic and
                # nearest-exact follow the scale there.
                axes.append(Axis(1, 1, 0, 0, False))
            elif q == 1 and a["mode"] != "area":
                axes.append(Axis(1, 1, 0, 0, False))
            elif a["mode"] in _MODES_23:
                axes.append(_MODES_23[a["mode"]](q, a["align_corners"], size, n))
            elif a["mode"] == "nearest":
                axes.append(Resample(q))  # torch: floor(o * q)
            elif a["align_corners"]:
                axes.append(Resample(q, 0, 0, b_up=True))  # src = o q; floor(src) and ceil(src)
            else:
                # src = (o + 1/2) q - 1/2; it reads floor(src) and floor(src) + 1 with weights
                # 1 - frac and frac, so exactly the integers floor(src) .. ceil(src)
                c = (q - 1) / 2
                axes.append(Resample(q, c, c, b_up=True))
        return tuple(axes)

    def size_dependent(self, a):
        return a.get("scale") is None or a["mode"] == "area"

    def saves(self, a, training):
        # area: adaptive_avg_pool2d's backward reads the input (to 1 x 1 torch takes a mean, which keeps nothing)
        return ("input",) if a["mode"] == "area" and not all(v == 1 for v in (a.get("size") or (0,))) else ()

    def torch(self, a, xs, y):
        how = self._how(a)
        mode = {"mode": a["mode"], "align_corners": a["align_corners"] if a["mode"] in _CORNERS else None}
        if how == "like":
            return [("ResizeLike", mode)]
        if how == "size":
            return [("Upsample", {"size": tuple(a["size"]), **mode})]
        sc = a["scale"]
        return [("Upsample", {"scale_factor": tuple(float(v) for v in sc) if isinstance(sc, tuple) else float(sc), **mode})]

    torch_ops = ("Upsample", "interpolate", "ResizeLike")

    def from_torch(self, op, kw, xs, y):
        mode = kw.get("mode", "nearest")
        if mode not in ("nearest", "bilinear") + tuple(_MODES_23) or kw.get("antialias") or len(xs[0]) != 3:
            return None
        out = {"mode": mode, "align_corners": bool(kw.get("align_corners"))}
        size, scale = kw.get("size"), kw.get("scale_factor")
        if op == "ResizeLike" or isinstance(size, SizeOf):
            return {**out, "like": size if isinstance(size, SizeOf) else SizeOf(1)}
        if size is not None:
            return {**out, "size": pair_of(size)}
        scale = scale[0] if isinstance(scale, (tuple, list)) and len(set(scale)) == 1 else scale
        if isinstance(scale, (tuple, list)) and len(scale) == 2 and all(isinstance(v, (int, float)) for v in scale):
            scale = [float(v) for v in scale]  # per axis
        elif not isinstance(scale, (int, float)):
            return None
        return None if kw.get("recompute_scale_factor") else {**out, "scale": scale}


@register
class Crop(LayerType):
    torch_module = "resample_torch"  # its own nn.Module classes
    channel_reads = same_channels  # each channel its own
    name = "crop"
    doc = (
        "Centre crop (every spatial axis, of a map of any rank) to the spatial size of an earlier layer's "
        "output (`like: NAME`: U-Net's "
        "crop-and-concat) or to `size: [h, w]`; the offset is floor((H - h) / 2). A view: no new tensor."
    )
    keys = (
        Key("like", "ref", None, "an earlier layer (or input) whose spatial size to crop to"),
        Key("size", "pair", None, "output size [h, w]"),
    )
    formulas = {"shape": "C x h x w (centre)", "params": "0", "macs": "0"}
    view = True

    def _target(self, a, xs):
        given = [k for k in ("like", "size") if a.get(k) is not None]
        if len(given) != 1:
            raise ShapeError("crop needs exactly one of like or size", hint="crop: {like: LAYER} or {size: [h, w]}")
        if given[0] == "size":
            return tuple(a["size"])
        ref = xs[-1]
        if len(ref) == 1:
            raise ShapeError(f"crop: like: names a flat vector of {ref[0]}, not a feature map")
        if len(ref) != len(xs[0]):
            raise ShapeError(f"crop: like: names a {len(ref) - 1}-D map {shape_text(ref)}, its input is "
                             f"{len(xs[0]) - 1}-D {shape_text(xs[0])}")
        return tuple(ref[1:])

    def out(self, a, xs):
        x = spatial(xs[0], self.name)
        if len(x) != 3:  # 1-D, 3-D: the centre of every axis
            t = self._target(a, xs)
            if len(t) != len(x) - 1:
                raise ShapeError(f"crop: size has {len(t)} values but its input {shape_text(x)} is a {len(x) - 1}-D map")
            if concrete(*t, *x[1:]) and any(o > i for o, i in zip(t, x[1:])):
                raise ShapeError(f"crop to {'x'.join(map(str, t))} is larger than its {'x'.join(map(str, x[1:]))} input",
                                 hint="crop only shrinks; pad or upsample instead")
            return (x[0],) + t
        h, w = self._target(a, xs)
        if concrete(h, w, x[1], x[2]) and (h > x[1] or w > x[2]):
            raise ShapeError(f"crop to {h}x{w} is larger than its {x[1]}x{x[2]} input", hint="crop only shrinks; pad or upsample instead")
        return (x[0], h, w)

    def _offsets(self, xs, y):
        return tuple(floordiv(i - o, 2) for i, o in zip(xs[0][1:], y[1:]))

    def window(self, a, xs, y):
        if len(y) != 3:
            return tuple(Axis(1, 1, -f, as_int(f + o - i), False) for f, i, o in zip(self._offsets(xs, y), xs[0][1:], y[1:]))
        top, left = self._offsets(xs, y)
        return (Axis(1, 1, -top, as_int(top + y[1] - xs[0][1]), False),
                Axis(1, 1, -left, as_int(left + y[2] - xs[0][2]), False))

    def size_dependent(self, a):
        return True

    def torch(self, a, xs, y):
        if len(y) != 3:
            return [("CentreCropNd", {"start": self._offsets(xs, y), "size": tuple(y[1:])})]
        top, left = self._offsets(xs, y)
        return [("CentreCrop", {"top": top, "left": left, "size": (y[1], y[2])})]


@register
class PadChannels(LayerType):
    torch_module = "resample_torch"  # its own nn.Module classes
    name = "pad_channels"
    doc = (
        "Parameter-free shortcut (CIFAR ResNet 'option A'): take every stride-th row and column, "
        "then zero-pad the channels up to `out` (extra channels split evenly before and after)."
    )
    keys = (
        Key("out", "size", REQUIRED, "output channels (>= input channels)"),
        Key("stride", "size", 1, "subsampling stride"),
    )
    formulas = {"shape": "out x ceil(H / stride) x ceil(W / stride)", "params": "0", "macs": "0"}

    def details(self, a, xs, y):
        return f"/{a['stride']}" if a.get("stride", 1) != 1 else ""

    def out(self, a, xs):
        x = hw(xs[0], self.name)
        if not is_symbolic(x[0]) and not is_symbolic(a["out"]) and a["out"] < x[0]:
            raise ShapeError(f"pad_channels: out={a['out']} is below the input's {x[0]} channels")
        s = a["stride"]
        return (a["out"], ceildiv(x[1], s), ceildiv(x[2], s))

    def window(self, a, xs, y):
        s = a["stride"]
        return Axis(1, s, 0, 0, False), Axis(1, s, 0, 0, False)

    def channel_reads(self, a, xs, y, lo, hi):
        # output channel c is input channel c - before (before: half the added channels, as torch()
        # pads them); the zero channels read nothing
        before = (y[0] - xs[0][0]) // 2
        first, stop = max(lo - before, 0), min(hi - before, xs[0][0])
        return [(0, first, stop, None)] if first < stop else []

    def torch(self, a, xs, y):
        extra = a["out"] - xs[0][0]
        return [("PadChannels", {"stride": a["stride"], "before": extra // 2, "after": extra - extra // 2})]
