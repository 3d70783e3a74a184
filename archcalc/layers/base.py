"""The base of the layer registry: keys, windows, the :class:`LayerType` contract, the registry.

Everything the rest of archcalc knows about a layer type is declared on its class (see
:class:`LayerType`); the engine, the torch builder and the verifier only call these methods.
"""

from __future__ import annotations

import re

from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any, ClassVar

from ..expr import as_int, ceildiv, floordiv, is_symbolic, vmax

REQUIRED = object()


@dataclass(frozen=True)
class Key:
    """One YAML key of a layer type.

    kind: ``size`` (positive int), ``count`` (int >= 0), ``pair`` (int or [h, w]),
    ``padding`` (int, [h, w], [top, bottom, left, right] or ``same``), ``groups`` (int or
    ``depthwise``), ``bool``, ``float``, ``scales`` (a float, or [h, w] floats: a tuple), ``ref`` (the name of an earlier layer or ``input``; the
    loader stores its node index and feeds its output as an extra input), ``choice`` (one of
    ``choices``).
    """

    name: str
    kind: str
    default: Any = REQUIRED
    doc: str = ""
    lo: Any = None  # floats: the smallest accepted value (None: any finite number)
    hi: Any = None  # floats: the largest accepted value
    lo_open: bool = False  # floats: lo itself is excluded (eps > 0)
    choices: tuple = ()  # choice: the accepted words

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
    "scales": "number or [h, w] (numbers)",
    "ref": "the name of an earlier layer, or 'input'",
    "choice": "a word (see its meaning)",
}

_KIND_RANK = {
    1: {"pair": "integer or [l]", "padding": "integer, [l], [before, after] or 'same'", "scales": "number or [l] (numbers)"},
    3: {"pair": "integer or [d, h, w]", "padding": "integer, [d, h, w], [front, back, top, bottom, left, right] or 'same'",
        "scales": "number or [d, h, w] (numbers)"},
}


KIND_DOC = {  # docs/layers.md: the kinds with one value per spatial axis, for every rank
    "pair": "integer or one per axis ([h, w]; [l] 1-D, [d, h, w] 3-D)",
    "padding": "integer, one per axis, (before, after) per axis ([top, bottom, left, right]) or 'same'",
    "scales": "number or one per axis (numbers)",
}


def kind_text(kind: str, rank: int = 2) -> str:
    """A key kind as an error message words it, for an input of ``rank`` spatial axes."""
    return _KIND_RANK.get(rank, {}).get(kind) or KIND_TEXT.get(kind, kind)


AXIS_NAMES = {1: ("L",), 2: ("H", "W"), 3: ("D", "H", "W")}


def rank_of(x) -> int:
    """The spatial axes of a shape (C x L: 1, C x H x W: 2, C x D x H x W: 3; a flat vector: 0)."""
    return len(x) - 1


def torch_nd(name: str, n: int) -> str:
    """A torch class named for 2-D as its n-D sibling: 'Conv2d' -> 'Conv3d'."""
    return name.replace("2d", f"{n}d") if n != 2 else name


def torch_pad(p) -> tuple:
    """Per-axis (before, after) padding, axes in order, as F.pad takes it (last axis first)."""
    n = len(p) // 2
    return tuple(v for i in reversed(range(n)) for v in (p[2 * i], p[2 * i + 1]))


class ShapeError(ValueError):
    """A layer cannot take the shape it is given; the engine adds the location."""

    def __init__(self, fact: str, hint: str | None = None):
        super().__init__(fact)
        self.fact = fact
        self.hint = hint


# --------------------------------------------------------------------------- windows (receptive field)


@dataclass(frozen=True)
class Axis:
    """The local window of one spatial axis: effective kernel, integer stride, padding before/after.
    Output position o reads input positions o*s - before .. o*s - before + k - 1."""

    k: Any
    s: Any
    before: Any = 0
    after: Any = 0
    tiles: bool = True  # check that the window tiles the input (not for ceil mode / adaptive)
    dil: Any = 1  # dilation: of the k positions it spans, it reads every dil-th (the two ends always)

    def span(self, o):
        first = o * self.s - self.before
        return first, first + self.k - 1


def _round(value, up):
    if isinstance(value, int):
        return value
    n, d = value.numerator, value.denominator
    return -((-n) // d) if up else n // d


@dataclass(frozen=True)
class Resample:
    """The window of a resampling layer on one axis, exact in rationals: output position o reads
    input positions first(o) .. last(o) with

        first(o) = ceil(s*o + a) if a_up else floor(s*o + a)
        last(o)  = ceil(s*o + b) if b_up else floor(s*o + b)

    ``s`` is the input positions per output position (1/2 for a 2x upsample): a fraction, so the
    receptive field's effective stride stays exact through encoder-decoder nets."""

    s: Any
    a: Any = 0
    b: Any = 0
    a_up: bool = False
    b_up: bool = False

    def span(self, o):
        return _round(self.s * o + self.a, self.a_up), _round(self.s * o + self.b, self.b_up)

    def spans(self):
        """:meth:`span` as a function of o on plain ints (the same values, several times faster
        than Fraction arithmetic: the receptive field steps through every output position)."""
        if not all(v.__class__ in (int, Fraction) for v in (self.s, self.a, self.b)):
            return self.span
        s, a, b = Fraction(self.s), Fraction(self.a), Fraction(self.b)
        d = s.denominator * a.denominator * b.denominator
        m, x0, y0 = s.numerator * (d // s.denominator), a.numerator * (d // a.denominator), b.numerator * (d // b.denominator)
        a_up, b_up = self.a_up, self.b_up

        def span(o):
            x, y = m * o + x0, m * o + y0
            return (-((-x) // d) if a_up else x // d), (-((-y) // d) if b_up else y // d)

        return span


@dataclass(frozen=True)
class PadCopy(Axis):
    """An integer window whose padding copies positions of its input (torch's reflect, replicate
    and circular padding). Its geometry (k, s, before, after) is zero padding's: shapes and tiling
    as :class:`Axis`. Output o reads the padded positions q = o*s - before + t*dil for t in
    0 .. taps - 1, and a padding position reads the input position its mode copies, on an axis of
    ``n`` positions: reflect -q before the map and 2(n - 1) - q past it (the border not repeated),
    replicate the border, circular q + n and q - n (torch wraps once). :meth:`reads` gives the
    input positions themselves, so the receptive field at the border is the rows torch really
    reads; ``span`` stays the window's extent (as zero padding's), which is how a position outside
    the output map (a later layer's padding) extends the field."""

    mode: str = "reflect"
    n: Any = None  # the input's size on this axis

    def copied(self, q):
        """The input position padded position ``q`` holds."""
        n = self.n
        if 0 <= q < n:
            return q
        if self.mode == "replicate":
            return 0 if q < 0 else n - 1
        if self.mode == "circular":
            return q + n if q < 0 else q - n
        return -q if q < 0 else 2 * (n - 1) - q  # reflect

    def reads(self, o):
        """The input positions output ``o`` reads (its taps, copied), in increasing order."""
        first = o * self.s - self.before
        taps = (self.k - 1) // self.dil + 1
        return sorted({self.copied(first + t * self.dil) for t in range(taps)})


@dataclass(frozen=True)
class Stack:
    """A join's window on the axis its branches are stacked along (concat with dim 2 or 3): output
    position o reads branch b at o - offset(b), offset(b) the branches' sizes before it on the
    axis (``sizes``, one per branch). The other axis is the branches' union, as any join's."""

    sizes: tuple

    def branch(self, o):
        """(branch, position in it) of output position ``o`` (before the map: the first branch, past
        it: the last, as the branches extend)."""
        off = 0
        last = len(self.sizes) - 1
        for b, n in enumerate(self.sizes):
            if o < off + n or b == last:
                return b, o - off
            off += n
        return last, o - off  # pragma: no cover  (no branches)


def rational(value):
    """An exact rational for a number of the spec (ints stay ints; a float is read as its decimal
    text, as the spec wrote it)."""
    if isinstance(value, bool):
        raise TypeError(value)
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        value = Fraction(repr(value))
    if isinstance(value, Fraction):
        return value.numerator if value.denominator == 1 else value
    return value  # sympy


def same_out(x, stride):
    """'same' padding gives ceil(I / S) on each axis: the padding is chosen for exactly that (with
    total = max((ceil(I/S) - 1) S + K - I, 0); when the max clips to 0, floor((I - K)/S) + 1 is
    ceil(I/S) too). The closed form keeps symbolic branches comparable."""
    return tuple(ceildiv(i, s) for i, s in zip(x[1:], stride))


_MAP_TEXT = {1: "C x L", 2: "C x H x W", 3: "C x D x H x W"}


def hw(x, layer: str):
    """The input of a 2-D-only layer: a C x H x W map (a flat vector or a 1-D / 3-D map is refused)."""
    if len(x) != 3:
        if len(x) == 1:
            raise ShapeError(
                f"{layer} needs a C x H x W feature map, got a flat vector of {x[0]}",
                hint="put it before flatten",
            )
        raise ShapeError(f"{layer} works on 2-D maps (C x H x W) only, got a {len(x) - 1}-D map {shape_text(x)}",
                         hint="1-D and 3-D maps take conv, conv_transpose, the pools, batch/group/instance norm, "
                              "upsample, pixel shuffle, pad, crop and pointwise layers (docs/spec-format.md)")
    return x


def spatial(x, layer: str):
    """The input of a rank-generic layer: a map of 1, 2 or 3 spatial axes (C x L, C x H x W,
    C x D x H x W); a flat vector is refused."""
    if len(x) == 1:
        raise ShapeError(f"{layer} needs a feature map ({_MAP_TEXT[2]}, or {_MAP_TEXT[1]}, {_MAP_TEXT[3]}), "
                         f"got a flat vector of {x[0]}", hint="put it before flatten")
    return x


def pads(a, x, k_eff):
    """Per-axis (before, after) padding, (top, bottom, left, right) in 2-D; 'same' follows
    TensorFlow/Keras, which equals PyTorch's padding='same' at stride 1 (extra row/column, if any,
    after)."""
    pad = a["padding"]
    if pad != "same":
        return pad
    out = []
    for size, k, s in zip(x[1:], k_eff, a["stride"]):
        total = vmax((ceildiv(size, s) - 1) * s + k - size, 0)
        first = floordiv(total, 2)
        out += [first, as_int(total - first)]
    return tuple(out)


def window_out(size, k_eff, s, before, after, ceil=False):
    span = size + before + after - k_eff
    return as_int(ceildiv(span, s) + 1 if ceil else floordiv(span, s) + 1)


def eff(a):
    k = a["kernel"]
    d = a.get("dilation") or (1,) * len(k)
    return tuple(dd * (kk - 1) + 1 for dd, kk in zip(d, k))


def prod(values):
    out = 1
    for v in values:
        out = out * v
    return as_int(out)


def shape_text(shape) -> str:
    return "x".join(str(d) for d in shape)


def concrete(*values) -> bool:
    return not any(is_symbolic(v) for v in values)


# --------------------------------------------------------------------------- formulas (explain's working)


@dataclass(frozen=True)
class Factor:
    """One named factor of a count: ``name`` as the formula's heading writes it (``C_out``,
    ``(C_in/groups)``), its ``value``; a quotient has a divisor ``over`` (the working shows
    ``(64/1)``, the value is ``value // over``)."""

    name: str
    value: Any
    over: Any = None

    @property
    def number(self):
        return self.value if self.over is None else self.value // self.over


@dataclass(frozen=True)
class Term:
    """A product of factors; ``note`` names what it counts (``bias``)."""

    factors: tuple
    note: str = ""

    @property
    def value(self):
        return prod(f.number for f in self.factors)


@dataclass(frozen=True)
class Count:
    """A count (params, buffers or MACs) as a sum of products of named factors, from which
    ``archcalc explain`` prints both the formula and its working, and evaluates the number. No
    terms: 0. ``note`` qualifies the whole (``no bias``, ``affine: false``)."""

    terms: tuple = ()
    note: str = ""

    @property
    def value(self):
        total = 0
        for t in self.terms:
            total = total + t.value
        return as_int(total)


@dataclass(frozen=True)
class Counts:
    """A layer's params, buffers and MACs, each a :class:`Count`: what :meth:`LayerType.formula`
    declares (a test checks each against ``count``/``macs``, the engine's fast path)."""

    params: Count = Count()
    buffers: Count = Count()
    macs: Count = Count()


@dataclass(frozen=True)
class Text:
    """A line of ``explain`` with sizes in it: ``template`` holds ``{}`` where each of ``values``
    goes (a size as the report writes it, a tuple as a shape)."""

    template: str
    values: tuple = ()


@dataclass(frozen=True)
class WindowSizes:
    """The output size of a sliding window on H and W (conv, pools), for ``explain``'s per-axis
    working: out = floor((I + P_before + P_after - D*(K-1) - 1)/S) + 1 (ceil with ``ceil``), or
    with 'same' padding ceil(I/S) and the padding per axis (``before``, ``after``)."""

    size: tuple  # (H, W) of the input
    kernel: tuple
    dilation: tuple
    stride: tuple
    padding: Any  # (top, bottom, left, right) or "same"
    before: tuple  # the padding the window applies per axis (H, W)
    after: tuple
    out: tuple  # (H_out, W_out)
    ceil: bool = False
    channels: Text | None = None  # a line on the output channels


def window_sizes(a, xs, y, stride=None, channels=None) -> WindowSizes:
    """:class:`WindowSizes` of a layer with kernel/stride/padding(/dilation/ceil_mode) keys."""
    x = xs[0]
    s = tuple(stride if stride is not None else a["stride"])
    k = eff(a)
    p = pads({**a, "stride": s}, x, k)
    return WindowSizes(tuple(x[1:]), tuple(a["kernel"]), tuple(a.get("dilation") or (1,) * len(k)), s, a["padding"],
                       tuple(p[0::2]), tuple(p[1::2]), tuple(y[1:]), bool(a.get("ceil_mode", False)), channels)


def pair_text(v, sep="x", both=False) -> str:
    if len(v) != 2:  # 1-D and 3-D: one value where all axes agree, else each
        return str(v[0]) if len(set(v)) == 1 and not (both and len(v) > 1) else sep.join(str(e) for e in v)
    a, b = v
    return str(a) if a == b and not both else f"{a}{sep}{b}"


def window_details(a) -> str:
    """The settings of a windowed layer in a few characters: '3x3/2 p1 g=32 d2 ceil nobias'."""
    k = a["kernel"]
    n = len(k)
    s = a.get("stride")
    s = k if s is None else s
    text = pair_text(k, both=True)
    if tuple(s) != (1,) * n:
        text += "/" + pair_text(s, ",")
    pad = a.get("padding", 0)
    if pad == "same":
        text += " same"
    elif pad and any(pad) and n != 2:
        before, after = pad[0::2], pad[1::2]
        if len(set(pad)) == 1:
            text += f" p{pad[0]}"
        elif before == after:
            text += " p" + ",".join(str(v) for v in before)
        else:
            text += " p" + ",".join(str(v) for v in pad)
    elif pad and any(pad):
        top, bottom, left, right = pad
        if top == bottom == left == right:
            text += f" p{top}"
        elif top == bottom and left == right:
            text += f" p{top},{left}"
        else:
            text += f" p{top},{bottom},{left},{right}"
    d = a.get("dilation") or (1,) * n
    if tuple(d) != (1,) * n:
        text += " d" + pair_text(d, ",")
    g = a.get("groups", 1)
    if g == "depthwise":
        text += " dw"
    elif g != 1:
        text += f" g={g}"
    if a.get("ceil_mode"):
        text += " ceil"
    if a.get("bias") is False:
        text += " nobias"
    return text


# --------------------------------------------------------------------------- base class


class LayerType:
    """Base of every layer type. Subclasses set the class attributes and override methods.

    Everything about a type is declared here, and nowhere else:

    * YAML keys (:class:`Key`), ``doc``, ``formulas`` (``archcalc layers``, docs/layers.md);
    * ``out`` / ``count`` / ``macs``: shape, (params, buffers), multiply-accumulates;
    * ``details`` (a summary row's settings text), ``formula`` (params/buffers/MACs as named
      factors, for ``explain``'s working), ``size_formula`` (explain's output-size working);
    * ``is_identity``: the type's name also means an empty branch (``add: [identity, [...]]``);
    * ``window``: the local window per axis for the receptive field (:class:`Axis`,
      :class:`Resample`, 'global' or None);
    * memory: ``new_tensor``, ``saves``, ``workspace``; ``can_inplace`` (an ``inplace`` key that
      the engine and the builder may switch off where the input is read elsewhere);
    * torch: ``torch`` (the modules, as plain data; the type's own nn.Module classes live in its
      ``torch_module``, archcalc/layers/<family>_torch.py), ``probe`` (how the empirical receptive-field
      probe linearises it), ``size_dependent`` (its window depends on the input size),
      ``probe_needs_channels``, ``batch_stats``, ``copy_note``.
    """

    name: ClassVar[str]
    aliases: ClassVar[tuple[str, ...]] = ()
    doc: ClassVar[str] = ""
    keys: ClassVar[tuple[Key, ...]] = ()
    formulas: ClassVar[dict[str, str]] = {}
    joins: ClassVar[bool] = False  # takes several inputs (concat, add, mean, mul)
    view: ClassVar[bool] = False  # produces no new tensor (in-place or a view) at inference
    can_inplace: ClassVar[bool] = False  # honours an `inplace` key (activations)
    is_identity: ClassVar[bool] = False  # passes its input on unchanged: the word names an empty branch
    torch_module: ClassVar[str | None] = None  # its own nn.Module classes: archcalc.layers.<this> (imports torch)
    probe_needs_channels: ClassVar[bool] = False  # the RF probe cannot collapse channels through it
    batch_stats: ClassVar[bool] = False  # trains on batch statistics (needs > 1 value per channel)

    # -- shape and counts
    def out(self, a: dict, xs: list) -> tuple:
        return xs[0]

    def count(self, a: dict, xs: list, y) -> tuple:
        """(learnable params, buffers)."""
        return 0, 0

    def macs(self, a: dict, xs: list, y) -> Any:
        return 0

    def window(self, a: dict, xs: list, y) -> tuple | str | None:
        """Per-axis windows (:class:`Axis` or :class:`Resample`; a join: None, or :class:`Stack`
        on an axis its branches are stacked along); None for pointwise layers;
        'global' for a window over everything; 'unknown' where it cannot be known (a resampling
        ratio of unresolved sizes: the engine then reports no receptive field)."""
        return None

    # -- what the report and ``archcalc explain`` show (archcalc/output/: generic printers)
    # the receptive field of some channels (docs/conventions.md, 'Channels'): is the layer's field
    # less than its window over the union of its input channels' fields (a slice of the channels
    # keeps some; a pixel shuffle's position reads one phase's)? The engine then works it out from
    # the fields of the channels it reads (``channel_reads``).
    narrows_channels: ClassVar[bool] = False

    def channel_reads(self, a: dict, xs: list, y, lo: int, hi: int) -> list | None:
        """The input channels that output channels ``lo`` .. ``hi`` - 1 read, for the receptive field
        of a slice of the channels: a list (or an iterator) of ``(input index, first, stop, window)``, ``window``
        None for the layer's own (:meth:`window`) or the window those channels are read through (a
        pixel unshuffle's phase); an empty list: channels that read no input; None: every channel
        of every input (the default: the layer's field is the channels' union). Called with concrete channel counts only. Under archcalc's
        convention a layer that mixes channels only through statistics (a norm, a softmax) reads
        the channel itself."""
        return None

    def details(self, a: dict, xs, y) -> str:
        """The layer's settings in a few characters, as a summary row shows them ('7x7/2 p3',
        'g=32', 'p=0.5'); '' when there is nothing to say. Reads only ``a`` (the summary calls it
        with ``xs``/``y`` None). A layer with a kernel shows its window by default."""
        return window_details(a) if "kernel" in a else ""

    def formula(self, a: dict, xs: list, y) -> Counts:
        """Params, buffers and MACs as sums of products of named factors (:class:`Counts`), from
        which ``explain`` prints the formula, the working and the number. Must equal ``count`` and
        ``macs`` (tests/layers/test_formulas.py checks every type and every zoo layer)."""
        return Counts()

    def size_formula(self, a: dict, xs: list, y) -> Text | WindowSizes:
        """How ``explain`` works out the output size: a sliding window's per-axis arithmetic
        (:class:`WindowSizes`) or a line (:class:`Text`); by default the ``shape`` formula."""
        shape = self.formulas.get("shape", "unchanged").replace("{", "{{").replace("}", "}}")
        return Text("output size: " + shape + " -> {}", (tuple(y),))

    def warnings(self, a: dict, xs: list, y) -> list:
        """Facts about this use of the layer that deserve a warning (the engine adds them to its row):
        :class:`archcalc.findings.Finding` s with a code the type declares (``findings.declare``,
        under ``layer``), their numbers and a message; the finding's layer is filled by the engine."""
        return []

    # -- memory
    def new_tensor(self, a: dict, xs: list, y, training: bool) -> bool:
        """Does the layer produce a new tensor (not a view, not in-place)?"""
        if self.can_inplace and a.get("inplace", False):
            return False
        return not self.view

    def saves(self, a: dict, training: bool) -> tuple[str, ...]:
        """What backward keeps: 'input', 'output' (those tensors, each counted once however many
        layers keep it), 'operands' (every data input that another input's gradient needs: a
        product), 'input_copy' (a private copy of the input: an in-place op whose backward
        needs the original), 'indices' (int64 per output element), 'mask' (one byte per output
        element)."""
        return ()

    def workspace(self, a: dict, xs: list, y) -> Any:
        """Elements of work tensors (of the dtype) that backward keeps besides those above."""
        return 0

    # -- liveness (archcalc/analysis/liveness.py: peak memory as the builder really runs the model)
    grad_alias: ClassVar[bool] = False  # backward hands its output's gradient to its inputs as is (or views of it)
    grad_shared: ClassVar[bool] = False  # backward makes one gradient that all its inputs share (a mean's)
    workspace_per_batch: ClassVar[bool] = False  # its ``workspace`` is one per batch, not per image (BN's statistics)

    def fresh(self, a: dict, xs: list, y, training: bool) -> bool:
        """Does the built module put its output in a new storage? ``new_tensor``, except where torch
        copies although the engine's values convention counts no new values."""
        return self.new_tensor(a, xs, y, training) is not False

    def scratch(self, a: dict, xs: list, y, itemsize: int, training: bool) -> Any:
        """Allocates at inference (and in a training forward) beyond its output: the bytes per image
        the built module holds at its peak besides its inputs and its output (a padded copy,
        max-pool indices, partial sums), all freed when it returns. Kept for backward is
        ``saves``/``workspace``, not this."""
        return 0

    def backend_workspace(self, a: dict, xs: list, y, itemsize: int, backend: str) -> tuple:
        """What the compute backend allocates while the layer runs, beyond every tensor the layer
        returns or keeps (docs/memory.md, "The backend's working memory"): ``(forward, backward)``,
        each a tuple of buffers ``(bytes per image, bytes per batch)`` or :class:`EngineWorkspace`,
        all freed when the op returns. ``backend``: 'cudnn' (CUDA, cuDNN on: PyTorch's default) or
        'native' (CUDA, cuDNN off); 'cpu' asks nothing. Most layers allocate nothing beyond
        ``scratch``."""
        return ((), ())

    def backward_scratch(self, a: dict, xs: list, y, itemsize: int) -> Any:
        """Bytes per image its backward holds at its peak beside the gradients it returns (the
        temporaries of a backward composed of several ops), all freed when it returns."""
        return 0

    # backward is elementwise in its output's gradient (TensorIterator): it reads the loss's
    # expanded gradient as it is; any other backward first copies that to a dense tensor
    grad_elementwise: ClassVar[bool] = False

    def backward_macs(self, a: dict, xs: list, y, grad_input: bool, grad_weight: bool) -> Any:
        """Multiply-accumulates of its backward per image: the gradient of its input (when
        ``grad_input``: the input needs one) and of its weights (when ``grad_weight``: trainable)."""
        return 0

    # -- torch
    def torch(self, a: dict, xs: list, y) -> list[tuple[str, dict]]:
        """The torch modules, as plain data: [(class name, keyword arguments), ...]. Names are
        torch.nn classes or classes of the type's own ``torch_module`` (a sibling module that
        imports torch; the registry never imports it: :func:`torch_classes` does, for the builder).
        Extra inputs (``ref`` keys) reach the module's forward after the data input."""
        return [("Identity", {})]

    def probe(self, a: dict, xs: list, y, collapse: bool) -> list[tuple[str, dict]]:
        """The modules of the linearised copy the receptive-field probe runs (every parameter is
        then set to a positive constant, biases to 0). ``collapse``: the probe works on one
        channel (channel sums), so channel bookkeeping must not depend on the channel count."""
        return self.torch(a, xs, y)

    def size_dependent(self, a: dict) -> bool:
        """Does the window depend on the input size (so the probe cannot enlarge the input)?"""
        return False

    def copy_note(self, a: dict, xs: list, y) -> str | None:
        """Why torch may make a new tensor where the engine counts no new values, if it may."""
        return None

    def parameter(self, a: dict, xs: list, y) -> dict | None:
        """A bare parameter the layer multiplies by, or None (the usual case: its modules hold their
        own). ``{"shape": ..., "init": value}``: the builder puts ``nn.Parameter(torch.full(shape,
        init))`` on the module of the layer's scope under the layer's own name (state_dict key: the
        layer's full name, as torchvision's ``CNBlock.layer_scale``) and hands it to the layer's
        parameter-less modules as their last forward argument."""
        return None

    # -- the importer (archcalc/importer/): a torch module, function or method back to this type
    # torch.nn classes and function / method names it stands for; a class of another package is
    # named with its module (timm.layers.grn.GlobalResponseNorm) besides its bare name, so only that
    # class is taken by name (archcalc/importer/fx.py declared_base)
    torch_ops: ClassVar[tuple[str, ...]] = ()
    # from_torch also reads a call on a channels-last tensor (N, H, W, C, made by permute(0, 2, 3, 1))
    # that works per position over the last dimension: kw then holds channels_last=True and xs / y
    # are given channels-first (C, H, W), as the spec sees them
    channels_last: ClassVar[bool] = False

    def from_torch(self, op: str, kw: dict, xs: list, y) -> Any:
        """The spec keys of a traced torch module or call named ``op`` (one of ``torch_ops``), or
        None where this type does not express it. ``kw``: the module's constructor values, or the
        call's arguments by name (``args``: positional ones without a schema); tensor arguments are
        :data:`TENSOR`, a size read from a tensor's shape a :class:`SizeOf`. ``xs``/``y``: the tensor
        inputs' and the output's shapes without the batch dimension. A model parameter used as an
        argument is a :class:`Param` (the layer is then named after it). A list of (type, keys)
        stands for several layers in a row."""
        return None


TENSOR = type("Tensor", (), {"__repr__": lambda self: "TENSOR"})()  # the importer's tensor argument


@dataclass(frozen=True)
class EngineWorkspace:
    """A buffer in :meth:`LayerType.backend_workspace` whose size is not the layer's own: a backend
    engine's workspace (cuDNN's ``plan.getWorkspaceSize()``), as many bytes as the op's other
    buffers take at the batch, at least ``low`` and at most ``high`` (bytes, per batch). Per image
    (no concrete batch) it counts ``high``."""

    low: int
    high: int


@dataclass(frozen=True)
class SizeOf:
    """A size the traced model read from a tensor's shape (``F.interpolate(x, size=y.shape[-2:])``):
    ``index`` is that tensor among the call's tensor inputs."""

    index: int


@dataclass(frozen=True)
class Param:
    """A parameter of the traced model used directly as an argument (``self.layer_scale * x``):
    its dotted name, its shape, and its value where every element has the same one (else None);
    ``stored`` is the parameter's own shape where forward uses a view of it (timm's
    ``self.gamma.reshape(1, -1, 1, 1)``: shape C x 1 x 1, stored (C,)), else None."""

    name: str
    shape: tuple
    value: Any = None
    stored: Any = None


def pair_of(v):
    """A torch size argument as the spec writes it: an int, or [h, w] when they differ."""
    if isinstance(v, (tuple, list)):
        v = tuple(int(x) for x in v)
        return v[0] if len(v) == 1 or (len(v) in (2, 3) and len(set(v)) == 1) else v
    return int(v)


def torch_rank(op: str, x) -> bool:
    """Whether a torch name with a rank suffix (Conv1d, max_pool3d) fits an input ``x`` (C, L /
    C, H, W / C, D, H, W); a name without one fits a 2-D map. BatchNorm1d also fits a vector (C)."""
    m = re.search(r"([123])d$", op)
    n = int(m.group(1)) if m else 2
    return len(x) == n + 1 or (op == "BatchNorm1d" and len(x) == 1)


def rank_ops(*names: str) -> tuple:
    """Each torch name ending in 2d (or 2d_suffix-free) with its 1d and 3d forms: one type, one place."""
    out = []
    for name in names:
        out.append(name)
        if re.search(r"2d$", name) and "." not in name:
            out += [name[:-2] + "1d", name[:-2] + "3d"]
    return tuple(out)


def args_of(kw: dict) -> list:
    """The positional arguments of an operator call (``kw['args']``), else []."""
    return list(kw.get("args", ()))


class Pointwise(LayerType):
    """A layer the receptive-field probe replaces by an identity (norms, activations, scales)."""

    def probe(self, a, xs, y, collapse):
        return [("Identity", {})]

    def channel_reads(self, a, xs, y, lo, hi):
        # each channel its own (a norm's or a softmax's statistics are not counted: the convention)
        return [(0, lo, hi, None)] if xs[0][0] == y[0] else None


def same_channels(self, a, xs, y, lo, hi):
    """:meth:`LayerType.channel_reads` of a layer that works on each channel alone (a pool, a
    resampling, padding): output channel c reads input channel c."""
    return [(0, lo, hi, None)]


REGISTRY: dict[str, LayerType] = {}
ALIASES: dict[str, str] = {}


def register(cls):
    inst = cls()
    if cls.name in REGISTRY or cls.name in ALIASES:
        raise ValueError(f"layer type {cls.name} registered twice")
    for alias in cls.aliases:  # a subclass that inherits its parent's aliases would take them over
        if alias in ALIASES or alias in REGISTRY or alias == cls.name:
            raise ValueError(f"layer type {cls.name}: alias {alias} registered twice")
    REGISTRY[cls.name] = inst
    for alias in cls.aliases:
        ALIASES[alias] = cls.name
    return cls


def lookup(name: str) -> LayerType | None:
    return REGISTRY.get(ALIASES.get(name, name))


def torch_classes() -> dict:
    """Class name -> class of every nn.Module the layer types declare in their ``torch_module``
    (imports torch: only the builder calls it)."""
    import importlib

    out = {}
    for t in REGISTRY.values():
        if t.torch_module:
            mod = importlib.import_module(f"{__package__}.{t.torch_module}")
            out.update({n: c for n, c in vars(mod).items() if isinstance(c, type) and c.__module__ == mod.__name__})
    return out


def all_names() -> list[str]:
    return sorted(list(REGISTRY) + list(ALIASES))


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
