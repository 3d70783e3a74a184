"""The layer registry: the one place to add a layer type.

Each layer type is one class that declares
  * its YAML keys (:class:`Key`: name, kind, default, doc) -- the spec validator, ``archcalc layers``
    and docs/layers.md all derive from these declarations;
  * ``out``    -- output shape from input shape(s);
  * ``count``  -- learnable parameters and buffers;
  * ``macs``   -- multiply-accumulates (conv and linear only; see docs/conventions.md);
  * ``window`` -- the local window per spatial axis, for the receptive field;
  * ``saves``  -- what backward keeps, for the training-memory estimate;
  * ``torch``  -- how the verifier builds it, as plain data (``("Conv2d", {...})``); torch is never
    imported here.

Shapes are tuples: ``(C, H, W)`` for feature maps, ``(F,)`` for flat vectors. Every size is a
plain int or, when a symbol is unresolved, a sympy expression; the same code serves both, and it
branches on layer parameters, never on dimension values.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

from .expr import as_int, ceildiv, floordiv, is_symbolic, vmax

REQUIRED = object()


@dataclass(frozen=True)
class Key:
    """One YAML key of a layer type.

    kind: ``size`` (positive int), ``count`` (int >= 0), ``pair`` (int or [h, w]),
    ``padding`` (int, [h, w], [top, bottom, left, right] or ``same``), ``groups`` (int or
    ``depthwise``), ``bool``, ``float``.
    """

    name: str
    kind: str
    default: Any = REQUIRED
    doc: str = ""

    @property
    def required(self) -> bool:
        return self.default is REQUIRED


KIND_TEXT = {
    "size": "positive integer",
    "count": "integer >= 0",
    "pair": "integer or [h, w]",
    "padding": "integer, [h, w], [top, bottom, left, right] or 'same'",
    "groups": "positive integer or 'depthwise'",
    "bool": "true or false",
    "float": "number",
}


class ShapeError(ValueError):
    """A layer cannot take the shape it is given; the engine adds the location."""

    def __init__(self, fact: str, hint: str | None = None):
        super().__init__(fact)
        self.fact = fact
        self.hint = hint


@dataclass(frozen=True)
class Axis:
    """The local window of one spatial axis: effective kernel, stride, padding before/after."""

    k: Any
    s: Any
    before: Any = 0
    after: Any = 0
    tiles: bool = True  # check that the window tiles the input (not for ceil mode / adaptive)


# --------------------------------------------------------------------------- helpers


def _hw(x, layer: str):
    if len(x) != 3:
        raise ShapeError(
            f"{layer} needs a C x H x W feature map, got a flat vector of {x[0]}",
            hint="put it before flatten",
        )
    return x


def _pads(a, x, k_eff):
    """(top, bottom, left, right) padding; 'same' follows TensorFlow/Keras, which equals
    PyTorch's padding='same' at stride 1 (extra row/column, if any, after)."""
    pad = a["padding"]
    if pad != "same":
        return pad
    out = []
    for size, k, s in ((x[1], k_eff[0], a["stride"][0]), (x[2], k_eff[1], a["stride"][1])):
        total = vmax((ceildiv(size, s) - 1) * s + k - size, 0)
        first = floordiv(total, 2)
        out += [first, as_int(total - first)]
    return tuple(out)


def _window_out(size, k_eff, s, before, after, ceil=False):
    span = size + before + after - k_eff
    return as_int(ceildiv(span, s) + 1 if ceil else floordiv(span, s) + 1)


def _eff(a):
    d = a.get("dilation", (1, 1))
    return (d[0] * (a["kernel"][0] - 1) + 1, d[1] * (a["kernel"][1] - 1) + 1)


def prod(values):
    out = 1
    for v in values:
        out = out * v
    return as_int(out)


# --------------------------------------------------------------------------- base class


class LayerType:
    """Base of every layer type. Subclasses set the class attributes and override methods."""

    name: ClassVar[str]
    aliases: ClassVar[tuple[str, ...]] = ()
    doc: ClassVar[str] = ""
    keys: ClassVar[tuple[Key, ...]] = ()
    formulas: ClassVar[dict[str, str]] = {}
    joins: ClassVar[bool] = False  # takes several inputs (concat, add, mean)
    view: ClassVar[bool] = False  # produces no new tensor (in-place or a view) at inference

    # -- shape and counts
    def out(self, a: dict, xs: list) -> tuple:
        return xs[0]

    def count(self, a: dict, xs: list, y) -> tuple:
        """(learnable params, buffers)."""
        return 0, 0

    def macs(self, a: dict, xs: list, y) -> Any:
        return 0

    def window(self, a: dict, xs: list, y) -> tuple[Axis, Axis] | str | None:
        """Per-axis windows; None for pointwise layers; 'global' for a window over everything."""
        return None

    def new_tensor(self, a: dict, xs: list, y, training: bool) -> bool:
        """Does the layer produce a new tensor (not a view, not in-place)?"""
        return not self.view

    def saves(self, a: dict, training: bool) -> tuple[str, ...]:
        """What backward keeps: 'input', 'output' (those tensors, each counted once however many
        layers keep it), 'input_copy' (a private copy of the input: an in-place op whose backward
        needs the original), 'indices' (int64 per output element), 'mask' (one byte per output
        element)."""
        return ()

    def workspace(self, a: dict, xs: list, y) -> Any:
        """Elements of work tensors (of the dtype) that backward keeps besides those above."""
        return 0

    def torch(self, a: dict, xs: list, y) -> list[tuple[str, dict]]:
        return [("Identity", {})]


REGISTRY: dict[str, LayerType] = {}
ALIASES: dict[str, str] = {}


def register(cls):
    inst = cls()
    REGISTRY[cls.name] = inst
    for alias in cls.aliases:
        ALIASES[alias] = cls.name
    return cls


def lookup(name: str) -> LayerType | None:
    return REGISTRY.get(ALIASES.get(name, name))


def all_names() -> list[str]:
    return sorted(list(REGISTRY) + list(ALIASES))


# --------------------------------------------------------------------------- convolution


@register
class Conv(LayerType):
    name = "conv"
    aliases = ("conv2d",)
    doc = "2-D convolution (torch.nn.Conv2d)."
    keys = (
        Key("out", "size", None, "output channels (default: the input channels)"),
        Key("kernel", "pair", REQUIRED, "kernel size"),
        Key("stride", "pair", 1, "stride"),
        Key("padding", "padding", 0, "zero padding"),
        Key("dilation", "pair", 1, "dilation"),
        Key("groups", "groups", 1, "groups; 'depthwise' means one group per input channel"),
        Key("bias", "bool", True, "learnable bias"),
    )
    formulas = {
        "shape": "H' = floor((H + P_top + P_bottom - D*(K-1) - 1) / S) + 1, likewise W'",
        "params": "C_out * (C_in / groups) * K_h * K_w  (+ C_out bias)",
        "macs": "C_out * H' * W' * (C_in / groups) * K_h * K_w",
    }

    def groups(self, a, x):
        return x[0] if a["groups"] == "depthwise" else a["groups"]

    def cout(self, a, x):
        return x[0] if a["out"] is None else a["out"]

    def out(self, a, xs):
        x = _hw(xs[0], "conv")
        g, cout = self.groups(a, x), self.cout(a, x)
        for what, c in (("input", x[0]), ("output", cout)):
            if not is_symbolic(c) and not is_symbolic(g) and c % g:
                raise ShapeError(f"{what} channels {c} are not divisible by groups={g}")
        k = _eff(a)
        t, b, l, r = _pads(a, x, k)
        h = _window_out(x[1], k[0], a["stride"][0], t, b)
        w = _window_out(x[2], k[1], a["stride"][1], l, r)
        return (cout, h, w)

    def count(self, a, xs, y):
        x = xs[0]
        g = self.groups(a, x)
        weights = as_int(y[0] * (x[0] // g) * a["kernel"][0] * a["kernel"][1])
        return as_int(weights + (y[0] if a["bias"] else 0)), 0

    def macs(self, a, xs, y):
        x = xs[0]
        return as_int(y[0] * y[1] * y[2] * (x[0] // self.groups(a, x)) * a["kernel"][0] * a["kernel"][1])

    def window(self, a, xs, y):
        k = _eff(a)
        t, b, l, r = _pads(a, xs[0], k)
        return Axis(k[0], a["stride"][0], t, b), Axis(k[1], a["stride"][1], l, r)

    def saves(self, a, training):
        return ("input",)

    def torch(self, a, xs, y):
        x = xs[0]
        t, b, l, r = _pads(a, x, _eff(a))
        conv = {
            "in_channels": x[0],
            "out_channels": y[0],
            "kernel_size": tuple(a["kernel"]),
            "stride": tuple(a["stride"]),
            "dilation": tuple(a["dilation"]),
            "groups": self.groups(a, x),
            "bias": a["bias"],
        }
        if t == b and l == r:
            return [("Conv2d", {**conv, "padding": (t, l)})]
        return [("ZeroPad2d", {"padding": (l, r, t, b)}), ("Conv2d", {**conv, "padding": (0, 0)})]


# --------------------------------------------------------------------------- pooling


class _Pool(LayerType):
    torch_name: ClassVar[str]

    def stride(self, a):
        return a["kernel"] if a["stride"] is None else a["stride"]

    def out(self, a, xs):
        x = _hw(xs[0], self.name)
        k = _eff(a)
        t, b, l, r = _pads({**a, "stride": self.stride(a)}, x, k)
        s = self.stride(a)
        dims = []
        for size, kk, ss, p0, p1 in ((x[1], k[0], s[0], t, b), (x[2], k[1], s[1], l, r)):
            n = _window_out(size, kk, ss, p0, p1, a["ceil_mode"])
            if a["ceil_mode"] and not is_symbolic(n) and not is_symbolic(size):
                # PyTorch: the last window must start inside the input or its leading padding
                if (n - 1) * ss >= size + p0:
                    n -= 1
            dims.append(n)
        return (x[0], dims[0], dims[1])

    def window(self, a, xs, y):
        k = _eff(a)
        s = self.stride(a)
        t, b, l, r = _pads({**a, "stride": s}, xs[0], k)
        tiles = not a["ceil_mode"]
        return Axis(k[0], s[0], t, b, tiles), Axis(k[1], s[1], l, r, tiles)

    def _crop(self, a, y):
        # with the padding made explicit, torch's ceil rule counts the trailing padding as input
        # and may add a window PyTorch's rule (the engine's) drops: crop to the engine's size
        return [("Crop2d", {"size": (y[1], y[2])})] if a["ceil_mode"] else []

    def _torch_pad(self, a, xs):
        return _pads({**a, "stride": self.stride(a)}, xs[0], _eff(a))


@register
class MaxPool(_Pool):
    name = "maxpool"
    doc = "2-D max pooling (torch.nn.MaxPool2d)."
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

    def saves(self, a, training):
        return ("input", "indices")

    def torch(self, a, xs, y):
        t, b, l, r = self._torch_pad(a, xs)
        pool = {
            "kernel_size": tuple(a["kernel"]),
            "stride": tuple(self.stride(a)),
            "dilation": tuple(a["dilation"]),
            "ceil_mode": a["ceil_mode"],
        }
        if t == b and l == r:
            return [("MaxPool2d", {**pool, "padding": (t, l)})]
        return [("NegInfPad2d", {"padding": (l, r, t, b)}), ("MaxPool2d", {**pool, "padding": (0, 0)})] + self._crop(a, y)


@register
class AvgPool(_Pool):
    name = "avgpool"
    doc = "2-D average pooling (torch.nn.AvgPool2d)."
    keys = (
        Key("kernel", "pair", REQUIRED, "window size"),
        Key("stride", "pair", None, "stride (default: the kernel size)"),
        Key("padding", "padding", 0, "implicit zero padding"),
        Key("ceil_mode", "bool", False, "round the output size up (PyTorch's rule)"),
        Key("count_include_pad", "bool", True, "divide by the full window, padding included"),
    )
    formulas = {
        "shape": "H' = floor((H + P_top + P_bottom - K) / S) + 1 (ceil with ceil_mode)",
        "params": "0",
        "macs": "0 (additions are not MACs)",
    }

    def saves(self, a, training):
        return ("input",)

    def torch(self, a, xs, y):
        t, b, l, r = self._torch_pad(a, xs)
        pool = {
            "kernel_size": tuple(a["kernel"]),
            "stride": tuple(self.stride(a)),
            "ceil_mode": a["ceil_mode"],
            "count_include_pad": a["count_include_pad"],
        }
        if t == b and l == r:
            return [("AvgPool2d", {**pool, "padding": (t, l)})]
        return [("ZeroPad2d", {"padding": (l, r, t, b)}), ("AvgPool2d", {**pool, "padding": (0, 0)})] + self._crop(a, y)


@register
class AdaptiveAvgPool(LayerType):
    name = "adaptive_avgpool"
    doc = (
        "Adaptive average pooling to a fixed output size (torch.nn.AdaptiveAvgPool2d). When the output "
        "size equals the input size it is an identity and produces no new values."
    )
    keys = (Key("size", "pair", REQUIRED, "output size"),)
    formulas = {
        "shape": "C x size_h x size_w",
        "params": "0",
        "macs": "0",
    }

    def out(self, a, xs):
        x = _hw(xs[0], self.name)
        return (x[0], a["size"][0], a["size"][1])

    def new_tensor(self, a, xs, y, training):
        if training:
            return True  # PyTorch copies even at the same size; only the inference count treats it as an identity
        pairs = list(zip(xs[0][1:], y[1:]))
        if not any(is_symbolic(v) for pair in pairs for v in pair):
            return any(i != o for i, o in pairs)
        from .expr import sympy

        sp = sympy()
        return sp.Or(*(sp.Ne(i, o) for i, o in pairs))  # a condition; the engine keeps it exact

    def window(self, a, xs, y):
        # windows of size ceil(I/O) (+1 where I is not a multiple of O) at stride ~ I/O; exact
        # when I is a multiple of O, which is every case in the zoo.
        axes = []
        for size, n in ((xs[0][1], y[1]), (xs[0][2], y[2])):
            k = ceildiv(size, n)
            axes.append(Axis(k, floordiv(size, n), 0, 0, False))
        return tuple(axes)

    def saves(self, a, training):
        # PyTorch computes a 1x1 adaptive pool as a mean, whose backward keeps nothing
        return () if tuple(a["size"]) == (1, 1) else ("input",)

    def torch(self, a, xs, y):
        return [("AdaptiveAvgPool2d", {"output_size": tuple(a["size"])})]


@register
class GlobalAvgPool(LayerType):
    name = "global_avgpool"
    doc = "Average over all spatial positions: C x H x W to C x 1 x 1."
    formulas = {"shape": "C x 1 x 1", "params": "0", "macs": "0"}

    def out(self, a, xs):
        x = _hw(xs[0], self.name)
        return (x[0], 1, 1)

    def window(self, a, xs, y):
        x = xs[0]
        return Axis(x[1], x[1], 0, 0, False), Axis(x[2], x[2], 0, 0, False)

    def torch(self, a, xs, y):
        return [("AdaptiveAvgPool2d", {"output_size": (1, 1)})]


# --------------------------------------------------------------------------- normalisation


@register
class BatchNorm(LayerType):
    name = "batchnorm"
    aliases = ("bn",)
    doc = "Batch normalisation over channels (torch.nn.BatchNorm2d, or BatchNorm1d on a flat vector)."
    keys = (
        Key("eps", "float", 1e-5, "epsilon"),
        Key("momentum", "float", 0.1, "running-statistics momentum"),
        Key("affine", "bool", True, "learnable scale and shift"),
        Key("scale", "bool", True, "with affine: learnable scale (false: shift only, as Keras' scale=False)"),
    )
    formulas = {
        "shape": "unchanged",
        "params": "2 * C (scale and shift, when affine; C with scale: false)",
        "buffers": "2 * C (running mean and variance; PyTorch's num_batches_tracked counter is not counted)",
        "macs": "0",
    }

    def count(self, a, xs, y):
        c = xs[0][0]
        if not a["affine"]:
            return 0, 2 * c
        return (2 * c if a["scale"] else c), 2 * c

    def saves(self, a, training):
        return ("input",)

    def workspace(self, a, xs, y):
        return 2 * xs[0][0]  # the batch mean and inverse standard deviation per channel

    def torch(self, a, xs, y):
        cls = "BatchNorm2d" if len(xs[0]) == 3 else "BatchNorm1d"
        shift_only = a["affine"] and not a["scale"]
        bn = (cls, {"num_features": xs[0][0], "eps": a["eps"], "momentum": a["momentum"], "affine": a["affine"] and not shift_only})
        return [bn, ("ChannelBias", {"num_features": xs[0][0]})] if shift_only else [bn]


@register
class LRN(LayerType):
    name = "lrn"
    doc = "Local response normalisation across channels (torch.nn.LocalResponseNorm; AlexNet 2012)."
    keys = (
        Key("size", "size", 5, "channels in the normalising window"),
        Key("alpha", "float", 1e-4, "alpha"),
        Key("beta", "float", 0.75, "beta"),
        Key("k", "float", 2.0, "k (AlexNet: 2; PyTorch's default is 1)"),
    )
    formulas = {"shape": "unchanged", "params": "0", "macs": "0 (not a conv or linear)"}

    def out(self, a, xs):
        return _hw(xs[0], self.name)

    def saves(self, a, training):
        return ("input",)

    def workspace(self, a, xs, y):
        # PyTorch composes LRN from elementwise ops: backward keeps the squared input padded to
        # C + size - 1 channels, and the scale before and after the power
        c, h, w = xs[0]
        return as_int((c + a["size"] - 1) * h * w + 2 * c * h * w)

    def torch(self, a, xs, y):
        return [("LocalResponseNorm", {"size": a["size"], "alpha": a["alpha"], "beta": a["beta"], "k": a["k"]})]


# --------------------------------------------------------------------------- activations


class _Activation(LayerType):
    torch_name: ClassVar[str] = ""
    can_inplace: ClassVar[bool] = True
    saved: ClassVar[str] = "output"
    extra: ClassVar[dict] = {}
    formulas = {"shape": "unchanged", "params": "0", "macs": "0"}

    def new_tensor(self, a, xs, y, training):
        return not a.get("inplace", False)

    def saves(self, a, training):
        if self.saved == "input" and a.get("inplace"):
            return ("input_copy",)  # backward needs the input the op overwrites: autograd keeps a copy
        return (self.saved,)

    def torch(self, a, xs, y):
        kw = {k: a[k] for k in self.extra}
        if self.can_inplace:
            kw["inplace"] = a["inplace"]
        return [(self.torch_name, kw)]


def _activation(name, torch_name, doc, saved="output", can_inplace=True, extra=()):
    keys = tuple(extra) + ((Key("inplace", "bool", True, "overwrite the input (no new tensor)"),) if can_inplace else ())
    cls = type(
        name.title().replace("_", ""),
        (_Activation,),
        {
            "name": name,
            "doc": doc,
            "torch_name": torch_name,
            "keys": keys,
            "saved": saved,
            "can_inplace": can_inplace,
            "extra": {k.name: k for k in extra},
        },
    )
    return register(cls)


_activation("relu", "ReLU", "max(0, x), in place by default as in torchvision.")
_activation("relu6", "ReLU6", "min(max(0, x), 6) (MobileNet), in place by default.", saved="input")
_activation(
    "leaky_relu", "LeakyReLU", "Leaky ReLU.", extra=(Key("negative_slope", "float", 0.01, "slope for x < 0"),)
)
_activation("elu", "ELU", "Exponential linear unit.", extra=(Key("alpha", "float", 1.0, "alpha"),))
_activation("silu", "SiLU", "x * sigmoid(x) (swish).", saved="input")
_activation("hardswish", "Hardswish", "Hard swish (MobileNetV3).", saved="input")
_activation("sigmoid", "Sigmoid", "Logistic sigmoid; a new tensor.", can_inplace=False)
_activation("tanh", "Tanh", "Hyperbolic tangent; a new tensor.", can_inplace=False)
_activation("gelu", "GELU", "Gaussian error linear unit; a new tensor.", saved="input", can_inplace=False)


@register
class Softmax(LayerType):
    name = "softmax"
    doc = "Softmax over channels (or features of a flat vector)."
    formulas = {"shape": "unchanged", "params": "0", "macs": "0"}

    def saves(self, a, training):
        return ("output",)

    def torch(self, a, xs, y):
        return [("Softmax", {"dim": 1})]


@register
class Scale(LayerType):
    name = "scale"
    doc = "Multiplies by a constant, no parameters (Inception-ResNet's residual scaling)."
    keys = (Key("factor", "float", REQUIRED, "the constant"),)
    formulas = {"shape": "unchanged", "params": "0", "macs": "0 (not a conv or linear)"}

    def torch(self, a, xs, y):
        return [("Scale", {"factor": a["factor"]})]


@register
class Dropout(LayerType):
    name = "dropout"
    doc = "Dropout: an identity at inference; in training a new tensor and a one-byte mask per element."
    keys = (Key("p", "float", 0.5, "drop probability"),)
    formulas = {"shape": "unchanged", "params": "0", "macs": "0"}

    def new_tensor(self, a, xs, y, training):
        return training

    def saves(self, a, training):
        return ("mask",) if training else ()

    def torch(self, a, xs, y):
        return [("Dropout", {"p": a["p"]})]


@register
class Identity(LayerType):
    name = "identity"
    doc = "Passes its input on unchanged (no new tensor)."
    view = True
    formulas = {"shape": "unchanged", "params": "0", "macs": "0"}


# --------------------------------------------------------------------------- flat layers


@register
class Flatten(LayerType):
    name = "flatten"
    doc = "C x H x W to a flat vector of C*H*W (a view: no new tensor)."
    view = True
    formulas = {"shape": "C*H*W", "params": "0", "macs": "0"}

    def out(self, a, xs):
        return (prod(xs[0]),)

    def torch(self, a, xs, y):
        return [("Flatten", {})]


@register
class Linear(LayerType):
    name = "linear"
    aliases = ("fc",)
    doc = "Fully connected layer (torch.nn.Linear) on a flat vector."
    keys = (Key("out", "size", REQUIRED, "output features"), Key("bias", "bool", True, "learnable bias"))
    formulas = {"shape": "out", "params": "in * out (+ out bias)", "macs": "in * out"}

    def out(self, a, xs):
        x = xs[0]
        if len(x) != 1:
            raise ShapeError(
                f"linear needs a flat vector, got a {x[0]}x{x[1]}x{x[2]} feature map", hint="add flatten before it"
            )
        return (a["out"],)

    def count(self, a, xs, y):
        return as_int(xs[0][0] * y[0] + (y[0] if a["bias"] else 0)), 0

    def macs(self, a, xs, y):
        return as_int(xs[0][0] * y[0])

    def window(self, a, xs, y):
        return "global"

    def saves(self, a, training):
        return ("input",)

    def torch(self, a, xs, y):
        return [("Linear", {"in_features": xs[0][0], "out_features": y[0], "bias": a["bias"]})]


# --------------------------------------------------------------------------- joins


class _Join(LayerType):
    joins = True

    def mismatch(self, a, xs, i):
        names = a.get("branches") or [f"b{k + 1}" for k in range(len(xs))]
        return f"branch '{names[0]}' gives {shape_text(xs[0])} but branch '{names[i]}' gives {shape_text(xs[i])}"

    def same_spatial(self, a, xs):
        first = xs[0]
        for i, x in enumerate(xs[1:], start=1):
            if len(x) != len(first) or tuple(x[1:]) != tuple(first[1:]):
                raise ShapeError(self.mismatch(a, xs, i), hint="branches must agree on spatial size")

    def same_shape(self, a, xs):
        first = xs[0]
        for i, x in enumerate(xs[1:], start=1):
            if tuple(x) != tuple(first):
                hint = "branches must agree on shape"
                if len(x) == len(first) == 3 and x[0] != first[0]:
                    hint = "project the shortcut with a 1x1 conv (stride to match) so channels agree"
                elif len(x) == len(first) == 3:
                    hint = (
                        "give the shortcut the same stride as the other branch "
                        "(a strided 1x1 conv projection, or pad_channels)"
                    )
                raise ShapeError(self.mismatch(a, xs, i), hint=hint)
        return first


@register
class Concat(_Join):
    name = "concat"
    doc = "Joins parallel branches along channels (torch.cat(dim=1)). Spatial sizes must agree."
    formulas = {"shape": "(C_1 + C_2 + ...) x H x W", "params": "0", "macs": "0"}

    def out(self, a, xs):
        self.same_spatial(a, xs)
        return (as_int(sum(x[0] for x in xs)),) + tuple(xs[0][1:])

    def torch(self, a, xs, y):
        return [("Concat", {})]


@register
class Add(_Join):
    name = "add"
    doc = "Residual sum of branches; a branch `identity` (or `[]`) is the shortcut. Shapes must agree."
    formulas = {"shape": "unchanged", "params": "0", "macs": "0 (additions are not MACs)"}

    def out(self, a, xs):
        return self.same_shape(a, xs)

    def torch(self, a, xs, y):
        return [("Add", {})]


def shape_text(shape) -> str:
    return "x".join(str(d) for d in shape)


@dataclass
class LayerInfo:
    """Plain data about a layer type for listings and docs."""

    name: str
    aliases: tuple
    doc: str
    keys: tuple
    formulas: dict = field(default_factory=dict)


def describe() -> list[LayerInfo]:
    return [
        LayerInfo(t.name, t.aliases, t.doc, t.keys, dict(t.formulas)) for _, t in sorted(REGISTRY.items())
    ]


@register
class Mean(_Join):
    name = "mean"
    doc = "Elementwise mean of branches (FractalNet's join). Shapes must agree."
    formulas = {"shape": "unchanged", "params": "0", "macs": "0"}

    def out(self, a, xs):
        return self.same_shape(a, xs)

    def torch(self, a, xs, y):
        return [("Mean", {})]


@register
class PadChannels(LayerType):
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

    def out(self, a, xs):
        x = _hw(xs[0], self.name)
        if not is_symbolic(x[0]) and not is_symbolic(a["out"]) and a["out"] < x[0]:
            raise ShapeError(f"pad_channels: out={a['out']} is below the input's {x[0]} channels")
        s = a["stride"]
        return (a["out"], ceildiv(x[1], s), ceildiv(x[2], s))

    def window(self, a, xs, y):
        s = a["stride"]
        return Axis(1, s, 0, 0, False), Axis(1, s, 0, 0, False)

    def torch(self, a, xs, y):
        extra = a["out"] - xs[0][0]
        return [("PadChannels", {"stride": a["stride"], "before": extra // 2, "after": extra - extra // 2})]
