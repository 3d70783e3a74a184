"""The engine: a pure function from a :class:`~archcalc.spec.load.Network` to a :class:`Report`.

No printing, no files. Concrete specs are computed with plain ints (sympy is not imported);
specs with unresolved symbols get sympy expressions from the very same code.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any

from .. import layers as L
from . import liveness as _liveness
from ..errors import SpecError, Where
from ..findings import Finding
from ..expr import as_int, is_symbolic
from ..limits import MAX_FREE_SYMBOLS as _MAX_FREE_SYMBOLS
from ..limits import MAX_SYMBOLIC_LAYERS as _MAX_SYMBOLIC_LAYERS
from ..limits import MAX_CHANNEL_DEPTH as _MAX_CHANNEL_DEPTH
from ..limits import MAX_RF_POSITIONS as _MAX_RF_POSITIONS

_REGISTRY = L.REGISTRY
_Axis = L.Axis


class _ReadOnlyList(list):
    """The one empty warnings list that rows without warnings share (a 200,000-layer network
    would otherwise hold 200,000 empty lists): equal to ``[]``, and it refuses changes."""

    def _refuse(self, *args, **kwargs):
        raise TypeError("a row's shared empty warnings list is read-only: assign a new list")

    append = extend = insert = remove = pop = clear = sort = reverse = _refuse
    __setitem__ = __delitem__ = __iadd__ = __imul__ = _refuse

    def __reduce__(self):  # pickles (and copies) as the shared instance
        return (_no_warnings, ())


def _no_warnings():
    return _NO_WARNINGS


_NO_WARNINGS = _ReadOnlyList()

DTYPES = {"fp64": 8, "fp32": 4, "fp16": 2, "bf16": 2, "int8": 1}
OPTIMIZERS = {"sgd": 0, "momentum": 1, "adam": 2}  # state tensors per parameter
INDEX_BYTES = 8  # max-pool indices are int64
MASK_BYTES = 1  # dropout masks are bool


class RF:
    """Receptive field of one axis: size r, effective stride (jump) j, effective padding p.

    Through integer-stride windows the field is affine: output position o reads input positions
    o*j - p .. o*j - p + r - 1. Resampling (upsample, transposed conv, adaptive pools that do not
    divide) makes j an exact rational (a :class:`fractions.Fraction`; 1/2 after a 2x upsample) and
    the field's start and size depend on the position: ``first``/``last`` then hold, per output
    position, the first and last input position read (padding positions included, as in the affine
    case), r is the largest size over the layer's positions and p is -first[0]. Where every
    position reads the same inputs (after a squeeze-excitation gate, whose global pool sees the
    whole map), ``fixed`` holds them, (first, last): exact for symbolic sizes too.

    After a gate (a global value multiplied onto a map) ``fixed`` is the global part, read at every
    position, padding included, and ``local`` the field of the map the gate multiplies (the spatial
    part, None for a global value alone): position o reads the union of both.

    Padding positions (a padded window reading before or past the map) have a field of their own,
    extended as the affine case extends it (Araujo et al.): ``ext`` works out the field of any
    position outside the map from the layer's window and the fields it reads (:class:`_Ext`), so a
    padded window after an upsample or a gate counts its padding exactly as it does on an affine
    field. A global value alone (``fixed`` without ``ext`` or ``local``: a 1-position map spread
    over a map) is not a map that extends: its padding reads no input where ``n``, its number of
    positions, is known (at sizes that are numbers; at symbolic sizes a window over its padding
    gives no closed form). ``n`` is the number of positions of the map (for a fixed field; the
    length of ``first`` otherwise).

    Immutable by convention; equality and hash use (size, stride, padding). A slotted class, not a
    frozen dataclass: one is made per layer and axis, and a frozen dataclass's constructor costs
    several times more."""

    __slots__ = ("size", "stride", "padding", "first", "last", "fixed", "ext", "n", "local")

    def __init__(self, size, stride, padding, first=None, last=None, fixed=None, ext=None, n=None, local=None):
        self.size = size
        self.stride = stride
        self.padding = padding
        self.first = first
        self.last = last
        self.fixed = fixed
        self.ext = ext
        self.n = n
        self.local = local

    def __eq__(self, other):
        if other.__class__ is not RF:
            return NotImplemented
        return (self.size, self.stride, self.padding) == (other.size, other.stride, other.padding)

    def __hash__(self):
        return hash((self.size, self.stride, self.padding))

    def __repr__(self):
        return f"RF(size={self.size!r}, stride={self.stride!r}, padding={self.padding!r})"

    @property
    def affine(self) -> bool:
        return self.first is None and self.fixed is None

    def inside(self, o) -> bool:
        """Is ``o`` a position of the map (not padding), or known without extending the field?"""
        if self.first is not None:
            return 0 <= o < len(self.first)
        if self.fixed is not None:
            return self.ext is None or 0 <= o < self.n
        return True

    def at(self, o):
        """(first, last) input position that output position ``o`` reads; a position outside the
        map (padding) extended from the window that made the field (:class:`_Ext`)."""
        fixed = self.fixed
        if fixed is not None:
            local = self.local
            if local is not None:
                f, last = local.at(o)
                # the map's position reads no input (a transposed conv's empty row): nor its gate
                if f.__class__ in (int, float) and last.__class__ in (int, float) and f > last:
                    return f, last
                if f.__class__ is int and last.__class__ is int and fixed[0].__class__ is int and fixed[1].__class__ is int:
                    return (fixed[0] if fixed[0] < f else f), (fixed[1] if fixed[1] > last else last)
                return fixed  # symbolic sizes: a gated field is kept only where the global part covers the map's
            if self.ext is None:
                n = self.n
                # a global value's padding (a window over it past its positions) reads no input
                if n is not None and not 0 <= o < n:
                    return _NO_FIRST, _NO_LAST
                return fixed
            if 0 <= o < self.n:
                return fixed
            return self.ext.at(self, o)
        first = self.first
        if first is None:
            start = o * self.stride - self.padding
            return start, as_int(start + self.size - 1)
        if 0 <= o < len(first):
            return first[o], self.last[o]
        if self.ext is not None:
            return self.ext.at(self, o)
        o = min(max(o, 0), len(first) - 1)
        return first[o], self.last[o]


@dataclass(slots=True, eq=False)
class Local:
    """What one layer gives on its own input shapes (:meth:`_Walk.local`): one record per
    (args, input shapes), shared by every node of a repeat that has both (``_Walk.records`` keys
    the liveness caches by its id). Slotted: the walk reads its fields once per node, and a slot
    is read as fast as a tuple item (a NamedTuple's field, on Python 3.11, is not)."""

    shape: tuple
    params: Any
    buffers: Any
    macs: Any
    window: Any  # the layer type's window: None (pointwise), "global", "unknown", or (Axis|Resample) x 2
    warnings: tuple
    numel: Any  # elements of the output
    same_field: bool  # the receptive field passes through unchanged
    decls: list  # the memory declarations [out of place, in place] as far as known (filled by _Walk.memory)


@dataclass(slots=True, eq=False)
class MemoryDecl:
    """A layer's memory declaration at one in-place setting (:meth:`_Walk.memory`)."""

    new_eval: Any  # a new tensor at inference: True, False, or a condition on unresolved sizes
    new_train: Any  # the same in training
    saves: tuple  # what backward keeps ("input", "output", "operands", "input_copy", "indices", "mask")
    workspace: Any  # elements of workspace backward keeps


@dataclass(slots=True)
class Row:
    name: str
    type: str
    inputs: list
    shape: tuple
    params: Any
    buffers: Any
    macs: Any
    values: Any  # new elements produced per image at inference (0 for views / in-place)
    rf: tuple | None  # (RF_h, RF_w); None on flat vectors
    aux: bool = False
    line: int | None = None
    warnings: list = field(default_factory=list)
    trainable: bool = True  # False where the spec marks the layer (or its block) `trainable: false`
    live: Any = None  # bytes alive after it in an inference forward, per image (set by report.memory.get())
    train_macs: Any = None  # forward + backward MACs per image in training (set by report.memory.get())


@dataclass
class Report:
    name: str
    title: str
    source: str
    file: str
    input: tuple
    symbols: dict
    values: dict
    rows: list
    output: tuple
    dtype: str
    batch: Any
    totals: dict
    warnings: list
    budget: dict
    notes: str = ""
    optimizer: str = "sgd"
    memory: Any = None  # archcalc.analysis.liveness.Memory: .get() gives the peaks' Profile (None: symbolic sizes)
    # a spec with `outputs:`: the names of every output, the main one (the last layer) first; else ()
    outputs: tuple = ()

    @property
    def symbolic(self) -> bool:
        return any(is_symbolic(v) for v in self.totals.values())

    def row(self, name: str) -> Row:
        """A row by full name, or by a unique suffix after a '.'."""
        for r in self.rows:
            if r.name == name:
                return r
        hits = [r for r in self.rows if r.name.endswith("." + name)]
        if len(hits) == 1:
            return hits[0]
        raise KeyError(name)


def analyze(
    net, dtype: str = "fp32", batch: Any = 1, optimizer: str = "sgd", ensemble: int = 1, crops: int = 1
) -> Report:
    """Compute every row and the totals. Raises :class:`SpecError` for shapes a layer cannot take.

    Rows are for one model and one image. ``ensemble`` (K models averaged) multiplies the totals'
    MACs, params, buffers and memory by K; ``crops`` (N crops per image at test time) multiplies
    MACs by N. The walk runs three small steps per node: shape and counts, receptive field, memory.
    """
    if dtype not in DTYPES:
        raise SpecError(f"unknown dtype '{dtype}'", hint="one of " + ", ".join(DTYPES))
    for what, k in (("ensemble", ensemble), ("crops", crops)):
        if isinstance(k, bool) or not isinstance(k, int) or k < 1:
            raise SpecError(f"{what} must be a positive integer, got {k!r}")
    if optimizer not in OPTIMIZERS:
        raise SpecError(f"unknown optimizer '{optimizer}'", hint="one of " + ", ".join(OPTIMIZERS))
    free = net.free_symbols() if net.symbols else ()
    if len(free) > _MAX_FREE_SYMBOLS:
        raise SpecError(
            f"{len(free):,} symbols are free (no value), above the limit of {_MAX_FREE_SYMBOLS} for one analysis",
            Where(file=net.file) if net.file else None,
            f"give them values with --set or defaults in 'symbols:' (free: {', '.join(free[:3])}, ...)",
        )
    if free and len(net.nodes) > _MAX_SYMBOLIC_LAYERS:
        raise SpecError(
            f"{len(net.nodes):,} layers with free symbols ({', '.join(free[:3])}), above the limit of "
            f"{_MAX_SYMBOLIC_LAYERS:,} layers for one closed-form analysis",
            Where(file=net.file) if net.file else None,
            "give the symbols values with --set (or defaults in 'symbols:') for numbers",
        )
    walk = _Walk(net, DTYPES[dtype])
    rows = []
    for i, node in enumerate(net.nodes):
        try:
            rows.append(walk.step(i, node))
        except RecursionError:
            # sympy recurses once per level of an expression: a closed form nested beyond Python's
            # stack (a decimal upsample scale's many pieces, then a size-dependent layer) is refused
            raise SpecError("the closed forms at this layer are nested too deeply to compute (sympy ran out of stack)",
                            node.where, "give the sizes values with --set (or --input), or use a scale exact in "
                            "binary (1.25, 1.5) where a decimal one splits the closed form into pieces") from None
    warnings = [w.at(rows[i].name, f"{rows[i].name}: {w.message}") for i in walk.warned for w in rows[i].warnings]
    totals = _totals(net, rows, walk.numel, walk.saved, walk.extra_bytes, walk.nbytes, batch, optimizer, ensemble, crops)
    memory = _liveness.analyze(net, walk.shapes, walk.numel, walk.grad, rows, walk.nbytes, OPTIMIZERS[optimizer],
                               walk.records, walk.readers)
    return Report(
        name=net.name,
        title=net.title,
        source=net.source,
        file=net.file,
        input=tuple(net.input),
        symbols=dict(net.symbols),
        values=dict(net.values),
        rows=rows,
        output=walk.shapes[net.output],
        dtype=dtype,
        batch=batch,
        totals=totals,
        warnings=warnings,
        budget=dict(net.budget),
        notes=net.notes,
        optimizer=optimizer,
        memory=memory,
        outputs=tuple(walk.names[i] for i in (net.output, *net.outputs)) if net.outputs else (),
    )


class _Walk:
    """The state of one pass over the nodes, in the spec's (topological) order."""

    def __init__(self, net, nbytes):
        self.net = net
        self.nbytes = nbytes
        # Per node, in lists of len(nodes) + 1: index -1, the last slot, is the network input, so
        # that node.inputs (-1 for the input) index them directly. Lists, not dicts: a
        # 200,000-layer network then costs 8 bytes a slot rather than a hash-table entry.
        nodes = net.nodes
        n = len(nodes)
        self.shapes: list = [None] * n + [tuple(net.input)]
        self.rfs: list = [None] * n + [_rf_start(net.input)]
        self.extent: list = [None] * (n + 1)  # spatial size a flat vector was flattened from (for linear's window)
        self.tensor: list = [0] * n + [-1]  # which tensor a node's output lives in (training)
        self.storage: list = [0] * n + [-1]  # the node whose new tensor its output is at inference (-1: the input)
        self.writable: list = [False] * (n + 1)  # may a reader overwrite the output (_overwritable)?
        self.saved: list = [0] * (n + 1)  # per tensor (a node index; -1: the input), elements saved for backward
        self.extra_bytes = 0
        self.numel: list = [0] * n + [L.prod(net.input)]
        self.grad: list = [False] * (n + 1)  # does a node's output need a gradient (autograd records its layers)?
        readers = [0] * (n + 1)  # how many nodes read each node's output ([-1]: the network input)
        for node in nodes:
            for j in node.inputs:
                readers[j] += 1
        self.readers = readers
        self.names = [node.name for node in nodes] + ["input"]
        self.seen: set = set()  # ids of args objects met so far
        self.cache: dict = {}  # (args id, input shapes...) -> what `local` gives
        self.records: list = [None] * n  # per node, what `local` gave it (shared by nodes of one cache entry)
        self.warned: list = []  # nodes with warnings
        self.rf_budget = [_MAX_RF_POSITIONS]  # position steps left for position-by-position fields
        self.sliced: dict = {}  # (node, first, stop) -> the field of those channels of its output

    def step(self, i, node) -> Row:
        ltype = _REGISTRY[node.type]
        shapes = self.shapes
        ins = node.inputs
        xs = [shapes[ins[0]]] if len(ins) == 1 else [shapes[j] for j in ins]
        # A repeat's layers share one args object: their shape, counts and local window depend on
        # nothing else but the input shapes, so each (args, inputs) pair is computed once. Only
        # args seen before are cached, so a network of distinct layers pays one set lookup.
        args_id = id(node.args)
        if args_id in self.seen:
            key = (args_id, *xs)
            hit = self.cache.get(key)
            if hit is None:
                hit = self.cache[key] = self.local(ltype, node, xs)
        else:
            self.seen.add(args_id)
            hit = self.local(ltype, node, xs)
        self.records[i] = hit
        y = hit.shape
        win = hit.window
        warnings = hit.warnings
        shapes[i] = y
        self.numel[i] = hit.numel
        src = self.rfs[ins[0]]
        if hit.same_field:
            # pointwise on a map, or a 1x1/1 window without padding: output position o reads input
            # position o, padding included, so the field passes through (the same object serves);
            # self.extent[i] stays None
            rf = src
        else:
            rf, notes = self.receptive_field(i, ltype, node, xs, y, win)
            if notes:
                warnings = (*warnings, *notes)
        if ltype.narrows_channels and rf is not None:  # a slice of the channels: the kept ones' field
            rf = self.kept_channels(i, node, ltype, rf)
        self.rfs[i] = rf
        if warnings:
            self.warned.append(i)
            name = node.name
            warnings = [w if w.layer == name else w.at(name, w.message) for w in warnings]
        params = hit.params
        values = self.memory(i, ltype, node, xs, y, params, hit.decls)
        names = self.names
        return Row(
            node.name,
            node.type,
            [names[j] for j in ins] if len(ins) != 1 else [names[ins[0]]],
            y,
            params,
            hit.buffers,
            hit.macs,
            values,
            rf,
            node.aux,
            node.where.line,
            list(warnings) if warnings else _NO_WARNINGS,
            node.trainable,
        )

    # -- shape and counts
    def local(self, ltype, node, xs) -> Local:
        """What a layer gives on its own inputs (the memory declarations are filled by :meth:`memory`)."""
        y, params, buffers, macs = self.shape(ltype, node, xs)
        win = None if ltype.joins else ltype.window(node.args, xs, y)
        warnings = tuple(ltype.warnings(node.args, xs, y))
        if warnings and not all(w.__class__ is Finding for w in warnings):
            # a layer type's plain-text warning: a finding of the generic 'layer' code
            warnings = tuple(w if w.__class__ is Finding else Finding("layer", str(w)) for w in warnings)
        if isinstance(win, tuple) and len(win) == 2 and isinstance(win[0], L.Axis):
            lost = [_unused(xs[0][1], win[0]), _unused(xs[0][2], win[1])]
            if any(lost):
                warnings += (_tiling_note(xs[0], win, lost),)
        elif isinstance(win, tuple) and isinstance(win[0], L.Axis):  # a 1-D or 3-D map
            lost = [_unused(size, w) for size, w in zip(xs[0][1:], win)]
            if any(lost):
                warnings += (_tiling_note_nd(xs[0], win, lost),)
        # the field passes through a pointwise layer on a map, and through a 1x1/1 window without
        # padding where the field is affine (r + 0 j, j * 1, p + 0 j: the same field)
        same_field = not ltype.joins and (
            (win is None and len(y) != 1)
            or (isinstance(win, tuple)
                and all(a.__class__ is _Axis and a.k == 1 and a.s == 1 and a.before == 0 and a.after == 0
                        for a in win)))
        return Local(y, params, buffers, macs, win, warnings, L.prod(y), same_field, [None, None])

    def shape(self, ltype, node, xs):
        try:
            y = ltype.out(node.args, xs)
        except L.ShapeError as err:
            hint = err.hint
            if ltype.joins:  # branches that agree only at multiples of the strides before the join say so
                from .multiple import join_hint

                hint = join_hint(self.net, self.shapes, node) or hint
            raise SpecError(err.fact, node.where, hint) from None
        for d in y:
            if not is_symbolic(d) and d < 1:
                raise SpecError(
                    f"output would be {L.shape_text(y)} for input {L.shape_text(xs[0])}",
                    node.where,
                    "the window is larger than the padded input",
                )
        params, buffers = ltype.count(node.args, xs, y)
        return y, params, buffers, ltype.macs(node.args, xs, y)

    # -- receptive field
    def receptive_field(self, i, ltype, node, xs, y, win):
        try:
            rf, notes = self._receptive_field(i, ltype, node, xs, y, win)
            if rf is not None and not ltype.joins:
                rf = _padding_alone(rf, win, xs, y)
            return rf, notes
        except RFWorkLimit as err:
            raise _work_limit(err, node) from None

    def _receptive_field(self, i, ltype, node, xs, y, win):
        first = node.inputs[0]
        if ltype.joins:
            self.extent[i] = self.extent[first]
            win = ltype.window(node.args, xs, y)
            if win == "unknown":
                return None, None
            if isinstance(win, tuple) and any(isinstance(a, L.Stack) for a in win):  # a concat along H or W
                return _rf_stack([self.rfs[j] for j in node.inputs], xs, y, win, self.rf_budget), None
            rf, offsets = _rf_join([self.rfs[j] for j in node.inputs], xs, y, self.rf_budget)
            return rf, [self.alignment(node, offsets)] if offsets else []
        src, ext = self.rfs[first], self.extent[first]
        if win is None:  # pointwise, or a change of layout: the field passes through
            if len(y) == 1:
                self.extent[i] = tuple(xs[0][1:]) if len(xs[0]) > 1 else ext
            else:
                self.extent[i] = None
            return src, None
        if win == "global":  # every input position (a linear layer on a flattened map)
            if ext is None or src is None:
                self.extent[i] = None
                return src, None
            self.extent[i] = (1,) * len(ext)
            return tuple(_rf_step(a, L.Axis(e, e, 0, 0, False), 1, e, self.rf_budget) for a, e in zip(src, ext)), None
        self.extent[i] = None
        if src is None or win == "unknown":
            return None, None
        if len(src) != 2 or len(win) != 2:  # a 1-D or 3-D map: each axis on its own
            return self._rf_axes(src, win, xs, y)
        h, w = src
        wh, ww = win
        if (h.first is None and h.fixed is None and w.first is None and w.fixed is None
                and wh.__class__ is _Axis and ww.__class__ is _Axis
                and h.stride.__class__ is int and w.stride.__class__ is int and h.size.__class__ is int
                and w.size.__class__ is int and h.padding.__class__ is int and w.padding.__class__ is int
                and wh.k.__class__ is int and ww.k.__class__ is int and wh.s.__class__ is int
                and ww.s.__class__ is int and wh.before.__class__ is int and ww.before.__class__ is int):
            # the common case, affine on ints: r' = r + (k-1) j, j' = j s, p' = p + pad j (a 1x1/1
            # window without padding never gets here: step passes the field through)
            return (RF(h.size + (wh.k - 1) * h.stride, h.stride * wh.s, h.padding + wh.before * h.stride),
                    RF(w.size + (ww.k - 1) * w.stride, w.stride * ww.s, w.padding + ww.before * w.stride)), None
        budget = self.rf_budget
        rf = tuple(_rf_step(a, w, n_out, n_in, budget) for a, w, n_out, n_in in zip(src, win, y[1:], xs[0][1:]))
        if any(r is None for r in rf):
            return None, None
        return rf, None

    # -- the field of some channels (docs/conventions.md, 'Channels')
    def kept_channels(self, i, node, ltype, own):
        """The field of a layer whose output channels read parts of its input channels, worked out
        from those parts' fields (``own``: the field over every input channel): a slice of the
        channels keeps channels that may read less of the input than the map they are cut from (a
        concat's branch, a pixel unshuffle's phase), and a pixel shuffle's output position reads
        one phase's channels. Worked out back through the layers (each type's ``channel_reads``) to
        the nearest layer that mixes every channel; exact where the channel counts are numbers
        (else ``own``)."""
        y, xs = self.shapes[i], [self.shapes[j] for j in node.inputs]
        if y[0].__class__ is not int or any(len(x) == 1 or x[0].__class__ is not int for x in xs):
            return own
        try:
            return self._channel_field(i, node, ltype, 0, y[0], 0, own)
        except RFWorkLimit as err:
            raise _work_limit(err, node) from None

    def _channels_of(self, j, lo, hi, depth):
        """The field of channels ``lo`` .. ``hi`` - 1 of node ``j``'s output (-1: the input, whose
        channels all have the same field)."""
        own = self.rfs[j]
        if j < 0 or own is None:
            return own
        y = self.shapes[j]
        if (lo == 0 and hi == y[0]) or y[0].__class__ is not int:
            return own
        key = (j, lo, hi)
        if key in self.sliced:
            return self.sliced[key]
        node = self.net.nodes[j]
        xs = [self.shapes[k] for k in node.inputs]
        if any(len(x) == 1 or x[0].__class__ is not int for x in xs):
            rf = own
        else:
            rf = self._channel_field(j, node, _REGISTRY[node.type], lo, hi, depth, own)
        self.sliced[key] = rf
        return rf

    def _channel_field(self, j, node, ltype, lo, hi, depth, own):
        """:meth:`_channels_of` worked out from the channels the layer reads (``own``: the layer's
        field over every channel, for a layer that reads them all)."""
        if depth > _MAX_CHANNEL_DEPTH:  # unknown rather than guessed
            return None
        ins = node.inputs
        xs = [self.shapes[k] for k in ins]
        y = self.shapes[j]
        reads = ltype.channel_reads(node.args, xs, y, lo, hi)
        if reads is None:
            return own
        subs = []
        whole = True  # every part read has its input's whole field
        budget = self.rf_budget
        for idx, first, stop, w in reads:
            # each part (a pixel shuffle has one per input channel, given one at a time) is a step of
            # the network's budget, taken before its work: a spec may have 10**6 channels
            _spend(budget, 1)
            sub = self._channels_of(ins[idx], first, stop, depth + 1)
            if sub is None:
                return None
            whole = whole and sub is self.rfs[ins[idx]]
            subs.append((idx, sub, w))
        if not subs:  # channels that read no input (pad_channels' zeros)
            return _no_field(y, own)
        if whole and own is not None and (
                (lo == 0 and hi == y[0])  # every channel, each reading its input's field: the layer's own
                or (not ltype.joins and all(w is None for _, _, w in subs))  # its window over that field
                or (ltype.joins and len({idx for idx, _, _ in subs}) == len(ins))):  # every branch's field
            return own
        if ltype.joins:
            states = [None] * len(ins)
            for idx, sub, _ in subs:
                states[idx] = sub
            win = ltype.window(node.args, xs, y)
            if win == "unknown":
                return None
            if isinstance(win, tuple) and any(isinstance(a, L.Stack) for a in win):
                return _rf_stack(states, xs, y, win, budget)
            used = [k for k in range(len(ins)) if states[k] is not None]
            if len(used) == 1:
                return states[used[0]]
            return _rf_join([states[k] for k in used], [xs[k] for k in used], y, budget)[0]
        rec = self.records[j]
        by_window: dict = {}  # window -> the fields read through it
        done = set()
        for _, sub, w in subs:
            key = (id(sub), w)  # a pixel shuffle reads each phase's window over many channels' one field
            if key in done:
                continue
            done.add(key)
            if w is None and rec.same_field:
                f = sub
            else:
                f = self._window_field(sub, rec.window if w is None else w, xs, y)
            if f is None:
                return None
            fields = by_window.setdefault(w, [])
            if not any(f is g for g in fields):
                fields.append(f)
        if len(by_window) > 1 and any(w is not None and any(isinstance(a, L.Resample) for a in w) for w in by_window):
            # each input channel is read at some positions only (a pixel shuffle's phase): the
            # field of each axis, the union over the other axes, is exact here; but a later window
            # that reads some positions only (a stride) would read some phases only, so it holds
            # only where each axis's field depends on that axis's phase alone
            phases = {w: _union(fields, y, budget) for w, fields in by_window.items()}
            if any(f is None for f in phases.values()) or not _separable(phases, y):
                return None
            return _union(list(phases.values()), y, budget)
        return _union([f for fields in by_window.values() for f in fields], y, budget)

    def _window_field(self, src, win, xs, y):
        """The field after a layer's window over the field ``src`` of its input (on a map)."""
        if win is None:
            return src
        if win == "unknown" or win == "global" or len(y) == 1:
            return None
        if len(src) != 2 or len(win) != 2:
            rf = self._rf_axes(src, win, xs, y)[0]
        else:
            rf = tuple(_rf_step(a, w, n_out, n_in, self.rf_budget) for a, w, n_out, n_in in zip(src, win, y[1:], xs[0][1:]))
            rf = None if any(r is None for r in rf) else rf
        return None if rf is None else _padding_alone(rf, win, xs, y)

    def _rf_axes(self, src, win, xs, y):
        """The field of a window on a map of any rank, axis by axis (the 2-D walk's rules)."""
        out = []
        for a, w, n_out, n_in in zip(src, win, y[1:], xs[0][1:]):
            if (a.first is None and a.fixed is None and w.__class__ is _Axis and a.stride.__class__ is int
                    and a.size.__class__ is int and a.padding.__class__ is int and w.k.__class__ is int
                    and w.s.__class__ is int and w.before.__class__ is int):
                out.append(RF(a.size + (w.k - 1) * a.stride, a.stride * w.s, a.padding + w.before * a.stride))
                continue
            rf = _rf_step(a, w, n_out, n_in, self.rf_budget)
            if rf is None:
                return None, None
            out.append(rf)
        return tuple(out), None

    def alignment(self, node, offsets) -> Finding:
        """The join's alignment finding from :func:`_offsets`: per axis the two branches (by their
        last layer) and how far apart their centres are, in input pixels; and the windows on those
        branches that are not centred on their output position (the layers whose padding or stride
        to change)."""
        names, ins = self.names, node.inputs
        per_axis = [None, None]
        blame: dict = {}
        for axis, (i, k, d) in offsets.items():
            per_axis[axis] = (names[ins[i]], names[ins[k]], _norm(Fraction(d, 2)))
            for idx, shift in self._off_centre(ins[i], ins[k], axis):
                blame.setdefault(idx, [0, 0])[axis] = shift
        layers = []
        for idx in sorted(blame):
            win = self.records[idx].window
            layers.append((names[idx], self.net.nodes[idx].type, win[0].k, win[1].k, win[0].s, win[1].s,
                           win[0].before, win[1].before, *blame[idx]))
        return _alignment_note(per_axis, layers)

    def _off_centre(self, j1, j2, axis):
        """(node, shift in input pixels) for each layer on the two branches ending at nodes j1 and
        j2 (followed back by first inputs to where they meet) whose integer window on ``axis`` is
        not centred on its output position: a K-window with P_before padding is centred
        (K - 1)/2 - P_before positions of its input after it."""
        nodes, branch = self.net.nodes, []
        a, b = j1, j2
        while a != b and (a >= 0 or b >= 0):
            if a > b:
                branch.append(a)
                a = nodes[a].inputs[0]
            else:
                branch.append(b)
                b = nodes[b].inputs[0]
        out = []
        for idx in branch:
            win = self.records[idx].window
            if not (isinstance(win, tuple) and len(win) == 2 and all(w.__class__ is _Axis for w in win)):
                continue
            w = win[axis]
            src = self.rfs[nodes[idx].inputs[0]]
            if any(is_symbolic(v) for v in (w.k, w.before)) or src is None or is_symbolic(src[axis].stride):
                continue
            twice = w.k - 1 - 2 * w.before
            if twice:
                out.append((idx, _norm(Fraction(twice, 2) * src[axis].stride)))
        return out

    # -- memory
    def memory(self, i, ltype, node, xs, y, params, decls):
        """New values at inference (the row's ``values``); records what backward keeps.
        ``decls``: the layer's memory declarations, out of place and in place, as far as known."""
        ins = node.inputs
        args = node.args
        inplace = 0
        if ltype.can_inplace and args.get("inplace"):
            if not self._overwritable(ins[0]):
                # an in-place layer must not overwrite a tensor another layer (or the caller) still
                # reads: it runs out of place and produces a new tensor
                args = {**args, "inplace": False}
            else:
                inplace = 1
        decl = decls[inplace]
        if decl is None:
            decl = decls[inplace] = MemoryDecl(ltype.new_tensor(args, xs, y, False), ltype.new_tensor(args, xs, y, True),
                                               tuple(ltype.saves(args, True)), ltype.workspace(args, xs, y))
        new_eval = decl.new_eval
        shared = new_eval is False
        self.storage[i] = self.storage[ins[0]] if shared else i
        self.writable[i] = self.readers[i] <= 1 and (self.writable[ins[0]] if shared else True)
        saves = decl.saves
        workspace = decl.workspace
        numel = self.numel
        if new_eval is True:
            values = numel[i]
        elif new_eval is False:
            values = 0
        else:  # depends on unresolved sizes: exact as a piecewise expression
            values = _where(new_eval, numel[i])
        tensor = self.tensor
        tensor[i] = i if (decl.new_train is not False) else tensor[ins[0]]
        # a layer with no trainable parameters on inputs that need no gradient is not recorded: it keeps nothing
        grad = self.grad
        if node.trainable and (params > 0 if params.__class__ is int else _positive(params)):
            g = True
        elif ltype.joins:
            g = any(grad[j] for j in ins)
        else:  # further inputs are `ref`s: sizes only
            g = grad[ins[0]]
        grad[i] = g
        if not g:
            return values
        if workspace:
            self.extra_bytes += workspace * self.nbytes
        for what in saves:
            if what == "input":
                t = tensor[ins[0]]  # the whole storage it lives in (a slice keeps its parent)
                self.saved[t] = numel[t]
            elif what == "output":
                self.saved[tensor[i]] = numel[i]
            elif what == "input_copy":
                self.extra_bytes += numel[ins[0]] * self.nbytes
            elif what == "operands":  # each input that another input's gradient needs
                data = ins if ltype.joins else ins[:1]
                for n, j in enumerate(data):
                    if any(grad[k] for m, k in enumerate(data) if m != n):
                        self.keep(j)
            elif what == "indices":
                self.extra_bytes += numel[i] * INDEX_BYTES
            elif what == "mask":
                self.extra_bytes += numel[i] * MASK_BYTES
        return values

    def _overwritable(self, j) -> bool:
        """May a layer reading node j's output overwrite it? Not where it is the network input or a
        view of it (an `identity` of the input: docs/memory.md), nor where another layer reads it or
        any tensor of the views and in-place layers that share its storage (``self.writable``,
        kept per node as the walk goes: one step each)."""
        return self.writable[j]

    def keep(self, j):
        """Backward keeps node j's output: the whole storage it lives in (a slice keeps its parent)."""
        t = self.tensor[j]
        self.saved[t] = self.numel[t]


def _where(cond, value):
    """``value`` where the condition on unresolved sizes holds, else 0: Piecewise((value, cond),
    (0, True)); on sizes that are themselves piecewise (a decimal upsample scale's pieces: sympy
    rewrites such a condition into nested if-then-else beyond Python's stack) the same function as
    value times an indicator built from KroneckerDelta (1 where its two arguments are equal)."""
    from ..expr import sympy

    sp = sympy()
    if cond.has(sp.Piecewise):
        indicator = _indicator(sp, cond)
        if indicator is not None:
            return value * indicator
    return sp.Piecewise((value, cond), (0, True))


def _indicator(sp, cond):
    """1 where ``cond`` (Eq, Ne, And, Or, Not of them) holds, 0 elsewhere; None for other conditions."""
    if isinstance(cond, sp.Eq):
        return sp.KroneckerDelta(*cond.args)
    if isinstance(cond, sp.Ne):
        return 1 - sp.KroneckerDelta(*cond.args)
    parts = [_indicator(sp, c) for c in cond.args] if isinstance(cond, (sp.And, sp.Or, sp.Not)) else [None]
    if any(p is None for p in parts):
        return None
    if isinstance(cond, sp.Not):
        return 1 - parts[0]
    if isinstance(cond, sp.And):
        return sp.Mul(*parts)
    return 1 - sp.Mul(*(1 - p for p in parts))  # Or


def _positive(value) -> bool:
    return is_symbolic(value) or value > 0


def _sum(values):
    total = 0
    for v in values:
        total = total + v
    return as_int(total)


def _totals(net, rows, numel, saved, extra_bytes, nbytes, batch, optimizer, ensemble, crops):
    k = ensemble
    # one pass over the rows (sums of ints, or of sympy expressions: the same in any order)
    params = params_aux = buffers = macs = macs_aux = values = trainable = 0
    for r in rows:
        p = r.params
        params = params + p
        buffers = buffers + r.buffers
        if r.aux:
            params_aux = params_aux + p
            macs_aux = macs_aux + r.macs
        else:
            macs = macs + r.macs
            values = values + r.values
        if r.trainable:
            trainable = trainable + p
    params = as_int(as_int(params) * k)
    activations = as_int((numel[-1] + as_int(values)) * k)
    saved_bytes = as_int((_sum(saved) * nbytes + extra_bytes) * k)
    param_bytes = as_int(params * nbytes)
    states = OPTIMIZERS[optimizer]
    t = {
        "params": params,
        "params_aux": as_int(as_int(params_aux) * k),
        "buffers": as_int(as_int(buffers) * k),
        "macs": as_int(as_int(macs) * k * crops),
        "macs_aux": as_int(as_int(macs_aux) * k),
        "activations": activations,
        "activation_bytes": as_int(activations * nbytes),
        "train_saved_bytes": saved_bytes,
        "param_bytes": param_bytes,
        # weights (all), gradients and optimizer state (trainable params only: frozen ones have neither)
        "train_state_bytes": as_int(param_bytes + as_int(trainable) * k * nbytes * (1 + states)),
        "layers": len(rows),
        "ensemble": ensemble,
        "crops": crops,
    }
    t["batch_activation_bytes"] = as_int(t["activation_bytes"] * batch)
    t["batch_train_bytes"] = as_int(saved_bytes * batch + t["train_state_bytes"])
    return t


# --------------------------------------------------------------------------- receptive field


def _rf_start(shape):
    if len(shape) == 1:
        return None
    return tuple(RF(1, 1, 0) for _ in shape[1:])  # one field per spatial axis


def _work_limit(err, node) -> SpecError:
    return SpecError(
        f"its receptive field needs {err.needed:,} position steps after {err.spent:,} already taken, "
        f"above the limit of {_MAX_RF_POSITIONS:,} for one network",
        node.where,
        "resampled fields and the fields of some channels are computed step by step: use a smaller input or "
        "output size, or fewer channels",
    )


class RFWorkLimit(Exception):
    """A position-by-position receptive field would exceed the network's budget of position steps
    (limits.MAX_RF_POSITIONS); the walk turns it into a SpecError at the layer."""

    def __init__(self, needed, spent):
        super().__init__(needed)
        self.needed = needed
        self.spent = spent


def _spend(budget, n):
    """Take ``n`` position steps from ``budget`` (a one-item list, or None: unbounded), before the work."""
    if budget is None:
        return
    if n > budget[0]:
        raise RFWorkLimit(n, _MAX_RF_POSITIONS - budget[0])
    budget[0] -= n


# the field of a position that reads no input (a transposed conv's empty row): min and max skip it
_NO_FIRST = float("inf")
_NO_LAST = float("-inf")


class _Ext:
    """How a field extends to the positions outside its map (the padding a later window reads):
    a window over a field (``w`` set: position o reads ``w.span(o)`` of ``srcs[0]``, not clamped,
    as an affine field extends) or a join (``w`` None: ``srcs`` holds (field, broadcast) pairs and
    position o reads each branch's field at o, a broadcast branch's at 0).

    Worked out on demand, each end (first, last) of each position once (``memo``): the first input
    position of o needs only the first of the window's lowest input, so a padding position costs
    one step per layer. A stack instead of recursion: a field after an upsample may stand on
    thousands of layers of such fields."""

    __slots__ = ("w", "srcs", "memo", "n_in")

    def __init__(self, srcs, w=None, n_in=None):
        self.srcs = srcs
        self.w = w
        self.n_in = n_in  # a resampling window's input positions: its padding reads only the input's padding
        self.memo = ({}, {})  # first, last: position -> input position

    def _needs(self, o, end):
        w = self.w
        if w is not None:
            a = self.srcs[0]
            lo, hi = w.span(o)
            taps = _taps(w)
            n_in = self.n_in
            if n_in is not None:
                # o is a padding position of a resampled map (before it or past it): it extends to
                # the input's padding on the same side, never to the input's own rows (a 0.6
                # upsample of 44 rows has 26; its row 26, extended, would be row 43, which no
                # position reads), so that a padding position's field lies past the rows read,
                # as an affine field's does (docs/conventions.md, 'Padding of hidden layers')
                side = (lambda x: x if x < 0 else -1) if o < 0 else (lambda x: x if x >= n_in else n_in)
                if lo <= hi:
                    lo, hi = side(lo), side(hi)
                if taps is not None:
                    return tuple((a, x) for x in sorted({side(x) for x in taps(o)}))
            if a.affine:  # grows with the position: the window's end gives the field's
                return ((a, hi if end else lo),) if lo <= hi else ()
            return tuple((a, x) for x in (range(lo, hi + 1) if taps is None else taps(o)))
        return tuple((f, 0 if broadcast else o) for f, broadcast in self.srcs)

    def at(self, rf, o):
        return self.end(rf, o, 0), self.end(rf, o, 1)

    def end(self, rf, o, end):
        """The first (``end`` 0) or last (1) input position that position ``o`` of ``rf`` reads."""
        hit = self.memo[end].get(o)
        if hit is not None:
            return hit
        stack = [(rf, o)]
        while stack:
            f, x = stack[-1]
            e = f.ext
            memo = e.memo[end]
            if x in memo:
                stack.pop()
                continue
            need = e._needs(x, end)
            missing = [(g, y) for g, y in need if not (g.inside(y) or g.ext is None or y in g.ext.memo[end])]
            if missing:
                stack.extend(missing)
                continue
            values = [g.at(y)[end] if g.inside(y) or g.ext is None else g.ext.memo[end][y] for g, y in need]
            memo[x] = min(values, default=_NO_FIRST) if end == 0 else max(values, default=_NO_LAST)
            stack.pop()
        return self.memo[end][o]


class _AdaptivePositions:
    """The first (``last=False``) or last input position read by each output position of an
    adaptive pool from I to O positions over an affine field (size r, integer stride j, padding p):
    window o covers inputs floor(o I / O) .. ceil((o + 1) I / O) - 1, so

        first(o) = floor(o I / O) j - p,   last(o) = (ceil((o + 1) I / O) - 1) j - p + r - 1.

    A read-only sequence of ints computed on demand: O(1) memory whatever O is (the tuples the
    position-by-position step would build hold the very same values)."""

    __slots__ = ("n_in", "n_out", "size", "stride", "padding", "last")

    def __init__(self, n_in, n_out, size, stride, padding, last):
        self.n_in, self.n_out, self.size, self.stride, self.padding, self.last = n_in, n_out, size, stride, padding, last

    def __len__(self):
        return self.n_out

    def __getitem__(self, o):
        if o.__class__ is not int:
            if isinstance(o, slice):
                return tuple(self[i] for i in range(*o.indices(self.n_out)))
            o = int(o)
        if o < 0:
            o += self.n_out
        if not 0 <= o < self.n_out:
            raise IndexError(o)
        if self.last:
            hi = -((-(o + 1) * self.n_in) // self.n_out) - 1
            return hi * self.stride - self.padding + self.size - 1
        return (o * self.n_in) // self.n_out * self.stride - self.padding

    def __iter__(self):
        return (self[o] for o in range(self.n_out))


def _rf_adaptive(a: RF, w, n_out, n_in) -> RF | None:
    """The field after an adaptive pool from ``n_in`` to ``n_out`` positions (not a divisor: the
    window is Resample(I/O, 0, I/O - 1, b_up)) over an affine field, in closed form, O(1) in the
    sizes. None where it does not apply (the caller then steps position by position).

    Window o has L(o) = ceil((o + 1) I / O) - floor(o I / O) = ceil((r_o + I) / O) inputs, where
    r_o = o I mod O. Over o = 0 .. O - 1 (a whole number of periods O / g, g = gcd(I, O)) r_o takes
    every multiple of g below O, so max L = ceil((O - g + I) / O); the field's size is
    (max L - 1) j + r, its stride j I / O, its padding p (window 0 starts at input 0). The windows
    never leave the input, so no clamping. With I >= 2 and O >= 2 not dividing I, the fields are
    neither affine (floor(I/O) j differs from j I/O) nor all equal (window O - 1 starts past 0),
    which is what the position-by-position step finds too."""
    if not (n_out.__class__ is int and n_in.__class__ is int and n_out >= 2 and n_in >= 2 and n_in % n_out
            and a.affine and a.size.__class__ is int and a.stride.__class__ is int and a.padding.__class__ is int
            and isinstance(w, L.Resample) and w.s == Fraction(n_in, n_out) and w.a == 0 and w.b == w.s - 1
            and not w.a_up and w.b_up):
        return None
    from math import gcd

    g = gcd(n_in, n_out)
    longest = -((-(n_out - g + n_in)) // n_out)
    size = (longest - 1) * a.stride + a.size
    args = (n_in, n_out, a.size, a.stride, a.padding)
    return RF(size, _norm(a.stride * w.s), a.padding, _AdaptivePositions(*args, False), _AdaptivePositions(*args, True),
              ext=_Ext((a,), w, n_in))


def _inner(w, n_out=None, n_in=None) -> bool:
    """Does the window read only positions of its input's map at the map's own positions? A
    resampling window clamps to the map (torch reads no padding there); an integer window
    without padding stays inside it, except a window that need not tile (ceil mode), whose last
    window may reach past the map: inner only where its last row is shown to be inside (False
    where it cannot be shown at symbolic sizes)."""
    if isinstance(w, (L.Resample, L.PadCopy)):  # PadCopy: its padding copies positions of the map
        return True
    if not (isinstance(w, L.Axis) and not is_symbolic(w.before) and not is_symbolic(w.after)
            and w.before <= 0 and w.after <= 0):
        return False
    if w.tiles:
        return True
    if n_out is None or n_in is None:
        return False
    return _le(as_int((n_out - 1) * w.s - w.before + w.k - 1), as_int(n_in - 1))


def _reads_the_one(w, n_out, budget) -> bool:
    """Does every one of the ``n_out`` positions read the one position of a 1-position input? Not
    a transposed conv's rows between its taps or past them (output_padding): those read nothing.
    Symbolic ``n_out``: taken as yes (an upsample of a pooled value, the common case)."""
    if not isinstance(w, L.Resample) or is_symbolic(n_out):
        return True
    _spend(budget, n_out)
    span = w.spans()
    taps = getattr(w, "taps", None)
    for o in range(n_out):
        if taps is not None:
            if 0 not in taps(o):
                return False
            continue
        lo, hi = span(o)
        if not lo <= 0 <= hi:
            return False
    return True


def _taps(w):
    """The positions a window reads at output o, where not every position of its extent: a
    transposed conv's whole-number taps, a dilated window's every D-th position; None otherwise.
    (An affine field needs only the window's ends, which are taps; a field after a transposed
    conv's empty rows needs the taps themselves.)"""
    taps = getattr(w, "taps", None)
    if taps is not None:
        return taps
    d = getattr(w, "dil", 1)
    if d.__class__ is int and d > 1 and isinstance(w, L.Axis):
        span = w.span
        return lambda o: range(span(o)[0], span(o)[1] + 1, d)
    return None


def _reads_some(w, n_out, n_in, budget) -> bool:
    """Does every output position of a window read at least one position of its input? Not a
    transposed conv's rows between its taps (kernel below the stride, or stride and dilation both
    above 1). Concrete sizes: each position, clamped to the input; symbolic: one period of the
    window's pattern (the stride's denominator), away from the ends."""
    if isinstance(w, L.Axis):
        return _axis_reads_some(w, n_out, n_in, budget)
    if not isinstance(w, L.Resample):
        return True
    if any(v.__class__ not in (int, Fraction) for v in (w.s, w.a, w.b)):
        return False
    taps = getattr(w, "taps", None)
    span = w.spans()
    concrete = n_out.__class__ is int and n_in.__class__ is int
    if concrete:
        _spend(budget, n_out)
        positions, top = range(n_out), n_in - 1
    else:
        period = Fraction(w.s).denominator
        positions, top = range(period, 2 * period), None
    for o in positions:
        if taps is not None:
            read = [x for x in taps(o) if x >= 0 and (top is None or x <= top)] if top is not None else taps(o)
            if not read:
                return False
            continue
        lo, hi = span(o)
        if top is not None:
            lo, hi = max(lo, 0), min(hi, top)
        if lo > hi:
            return False
    return True


def _axis_reads_some(w, n_out, n_in, budget) -> bool:
    """:func:`_reads_some` for an integer window: a padded window may read only padding (a 1x1
    window with padding 1 at its first and last positions; such a position reads no input, torch's
    output there is the bias alone). Concrete sizes: each position's taps; symbolic: without
    dilation, every window reads the map when neither padding reaches a whole window (the first
    window ends at k - 1 - before >= 0, the last starts at or before the map's last position, and
    every window between them starts between the two); otherwise not shown (False)."""
    if w.__class__ is L.PadCopy:  # its padding copies positions of the map
        return True
    k, before, after, d = w.k, w.before, w.after, getattr(w, "dil", 1)
    if any(v.__class__ is not int for v in (k, before, after, d, w.s)):
        return False
    if before <= 0 and after <= 0:
        return True
    if n_out.__class__ is not int or n_in.__class__ is not int:
        return d == 1 and before < k and after < k
    _spend(budget, n_out)
    s = w.s
    return all(_tap_inside(o * s - before, k, d, n_in) for o in range(n_out))


def _rf_step(a: RF, w, n_out=None, n_in=None, budget=None) -> RF | None:
    """The field after a window. Affine (Araujo et al., Distill 2019): r' = r + (k-1) j,
    j' = j s, p' = p + pad j. An adaptive pool over an affine field in closed form. Otherwise
    position by position, exact (None where sizes are symbolic), each position counted against
    ``budget`` before the work. A resampling window reads only positions of its input (torch
    clamps there); an integer window's padding reads the input field extended (:class:`_Ext`)."""
    if a.affine and isinstance(w, L.Axis) and w.__class__ is not L.PadCopy:
        return RF(as_int(a.size + (w.k - 1) * a.stride), as_int(a.stride * w.s), as_int(a.padding + w.before * a.stride))
    concrete = not is_symbolic(n_out) and not is_symbolic(n_in)
    inner = _inner(w, n_out, n_in)
    stride = _mul(a.stride, w.s)
    if a.fixed is not None and a.local is not None:  # a gated map: the global part stays, the map's field steps
        local = _rf_step(a.local, w, n_out, n_in, budget)
        if local is None:
            return None
        if concrete:
            return _gated(a.fixed, local, stride, n_out, budget)
        # symbolic: a window that reads only the map's positions keeps the global part covering
        # the map's field (as the join made sure); padding would widen the first and last fields
        return RF(a.size, stride, a.padding, fixed=a.fixed, local=local) if inner else None
    if a.fixed is not None and a.ext is None and (concrete or inner) and _reads_some(w, n_out, n_in, budget):
        # a global value: the same at every position that reads one (a transposed conv's empty
        # rows, or a padded window's positions over padding alone, are stepped position by position
        # below); its padding reads no input (RF.at). At a symbolic size only a window within the
        # map: one that reads padding has a closed form at no size where the map has one position
        # (there it is the 1-position map's own, affine, field: docs/conventions.md)
        return RF(a.size, stride, a.padding, fixed=a.fixed, n=n_out if concrete else None)
    if a.fixed is not None and inner and _reads_some(w, n_out, n_in, budget):
        # every position reads the same inputs, so does every window over them (that reads any:
        # a transposed conv's empty rows are stepped position by position below)
        ext = _Ext((a,), w, n_in if isinstance(w, L.Resample) else None) if concrete else None
        return RF(a.size, stride, a.padding, fixed=a.fixed, ext=ext, n=n_out if ext else None)
    if n_in == 1 and inner and _reads_the_one(w, n_out, budget):
        # a 1x1 map (a pooled gate, ASPP's image features): every output reads it; the padding
        # beside them reads nothing (a global value, not a map that extends: RF.at)
        lo, hi = a.at(0)
        return RF(as_int(hi - lo + 1), _mul(a.stride, w.s), as_int(-lo), fixed=(lo, hi), n=n_out if concrete else None)
    if not concrete or any(is_symbolic(v) for v in (a.stride, a.padding, a.size, w.s)):
        return None
    closed = _rf_adaptive(a, w, n_out, n_in)
    if closed is not None:
        return closed
    _spend(budget, n_out)  # before any work: a layer may have 10**9 positions
    resample = isinstance(w, L.Resample)
    span = w.spans() if resample else w.span
    spans = [span(o) for o in range(n_out)]
    taps = _taps(w)
    if w.__class__ is L.PadCopy:  # padding that copies input positions: the positions read, copied
        taps = w.reads
        spans = [(r[0], r[-1]) for r in (taps(o) for o in range(n_out))]
    if resample:  # torch reads positions of the input only: the window's part inside it (none: empty)
        top = n_in - 1
        if taps is not None:  # the taps inside the input, exactly
            spans = [(r[0], r[-1]) if r else (1, 0) for r in ([x for x in taps(o) if 0 <= x <= top]
                                                            for o in range(n_out))]
        else:
            spans = [(0 if lo < 0 else lo, top if hi > top else hi) for lo, hi in spans]
    if a.affine and a.stride.__class__ is int and a.padding.__class__ is int and a.size.__class__ is int:
        # an affine field grows with the position: the window's ends give the field's
        j, p, extra = a.stride, a.padding, a.size - 1 - a.padding
        firsts = [lo * j - p if lo <= hi else _NO_FIRST for lo, hi in spans]
        lasts = [hi * j + extra if lo <= hi else _NO_LAST for lo, hi in spans]
    else:  # any field (after a transposed conv's taps it need not grow with the position): every input read
        _spend(budget, sum(max(hi - lo + 1, 0) for lo, hi in spans))  # each input position read
        at = a.at
        firsts, lasts = [], []
        for o, (lo, hi) in enumerate(spans):
            # a dilated window reads every dil-th position of its extent (Axis.dil; 1 for the others)
            read = range(lo, hi + 1, getattr(w, "dil", 1)) if taps is None else [x for x in taps(o) if lo <= x <= hi]
            ends = [at(x) for x in read]
            firsts.append(min((e[0] for e in ends), default=_NO_FIRST))
            lasts.append(max((e[1] for e in ends), default=_NO_LAST))
    return _rf_from(firsts, lasts, a.stride * w.s, _Ext((a,), w, n_in if resample else None))


def _rf_from(firsts, lasts, stride, ext=None) -> RF:
    """An RF from per-position fields: affine again where they follow o*j - p (integer j) at every
    position and at the padding either side (``ext``: how the field extends past the map). A
    position that reads no input (a transposed conv's empty row: first _NO_FIRST, last _NO_LAST)
    counts for neither the size nor the padding (p: minus the lowest first position read)."""
    stride = _norm(stride)
    sizes = [b - a + 1 for a, b in zip(firsts, lasts) if a <= b]
    size = max(sizes) if sizes else 0
    low = min(firsts) if sizes else 0
    n = len(firsts)
    if len(set(firsts)) == 1 and len(set(lasts)) == 1 and sizes and (n > 1 or ext is None):
        return RF(size, stride, -firsts[0], fixed=(firsts[0], lasts[0]), ext=ext, n=n)
    rf = RF(size, stride, -low, tuple(firsts), tuple(lasts), ext=ext)
    if isinstance(stride, int) and all(
        f == firsts[0] + o * stride and b - f == size - 1 for o, (f, b) in enumerate(zip(firsts, lasts))
    ):
        affine = RF(size, stride, -firsts[0])
        if ext is None or all(rf.at(o) == affine.at(o) for o in (-2, -1, n, n + 1)):
            return affine
    return rf


def _norm(value):
    if isinstance(value, Fraction) and value.denominator == 1:
        return value.numerator
    return as_int(value)


def _mul(a, b):
    """a * b, exact: a Fraction meets a symbol as a sympy Rational."""
    if (is_symbolic(a) and isinstance(b, Fraction)) or (is_symbolic(b) and isinstance(a, Fraction)):
        from ..expr import sympy

        a, b = (sympy().Rational(v.numerator, v.denominator) if isinstance(v, Fraction) else v for v in (a, b))
    return _norm(a * b)


def _le(a, b) -> bool:
    """Is a <= b for every value of the symbols? (False when it cannot be shown.)"""
    if not is_symbolic(a) and not is_symbolic(b):
        return a <= b
    from ..expr import expandable, sympy, value_at

    if not expandable(b - a):  # sympy's simplify is open-ended: only on small differences
        return False
    diff = sympy().sympify(b - a)
    names = sorted(diff.free_symbols, key=str)
    # a size where b < a disproves it at once (simplify takes a second on xception's 'same'
    # paddings, and _extreme asks both ways round): sizes from 224 on, across a period of 32
    for k in range(0, 64, 3):
        value = value_at(diff, {n: 224 + k + 5 * i for i, n in enumerate(names)})
        if value is not None and value < 0:
            return False
    d = sympy().simplify(diff)
    if d.is_number:
        return bool(d >= 0)
    return d.is_nonnegative is True  # from the sizes' assumptions (positive integers): 2H - H


def _broadcast(xs, y, n):
    """Which of a join's ``n`` inputs are a 1x1 map broadcast onto a larger one (a gate's global value)."""
    if not xs:
        return [False] * n
    return [len(x) > 1 and all(v == 1 for v in x[1:]) and not all(v == 1 for v in y[1:]) for x in xs]


def _rf_join(states, xs=None, y=None, budget=None):
    """The join's field (the union of its branches' at every position) and the alignment offsets
    (:func:`_offsets`)."""
    states = [s for s in states]
    if any(s is None for s in states):
        # a branch without a field (flat vectors, or a position-dependent field of symbolic size):
        # the join's field is unknown too
        return None, {}
    broadcast = _broadcast(xs, y, len(states))
    if y is not None and len(y) == 1:  # a join of flat vectors (repvit's two heads): no positions to compare
        if all(a.affine for s in states for a in s):
            return _rf_join_affine(states, (None,) * len(states[0]), budget), {}
        return None, {}
    # the alignment finding speaks of rows and columns: 2-D maps only
    offsets = _offsets(states, broadcast, y, budget) if y is None or len(y) == 3 else {}
    if all(a.affine for s in states for a in s) and not any(broadcast):
        return _rf_join_affine(states, tuple(y[1:]) if y is not None else (None,) * len(states[0]), budget), offsets
    out = []
    for axis in range(len(states[0])):
        n = y[1 + axis]
        col = [s[axis] for s in states]
        main = [c for c, b in zip(col, broadcast) if not b] or col
        rf = _join_gated(col, broadcast, n, main[0].stride, budget)
        if rf is None:
            rf = _join_fixed(col, broadcast, n, main[0].stride)
        if rf is None:
            rf = _join_positions(col, broadcast, n, main[0].stride, budget)
        if rf is None:
            return None, offsets
        out.append(rf)
    return tuple(out), offsets


def _padding_alone(rf, win, xs, y):
    """The field of a layer whose window, on some axis, reads only padding at every position (a
    1x1 conv at stride 3 with padding 1 on a 2-column map reads columns -1 and 2): no position
    reads any input on any axis (torch's output there is the bias alone), so every axis's field
    is empty, though each axis alone extends into the padding as usual. At symbolic sizes a window
    whose first position reads only padding and whose stride is above 1 can do so at some sizes:
    the field is unknown there (with stride 1 some position always reads the map; a window whose
    padding is a closed form, 'same' padding, pads less than the window, so its first position
    reads row 0)."""
    if not isinstance(win, tuple):
        return rf
    for w, n_out, n_in in zip(win, y[1:], xs[0][1:]):
        if w.__class__ is not _Axis:  # resampling clamps to the map; PadCopy's padding copies it
            continue
        k, s, before, d = w.k, w.s, w.before, getattr(w, "dil", 1)
        if any(v.__class__ is not int for v in (k, s, before, d)):
            continue  # 'same' padding at symbolic sizes: below the window (k - 1 in all), so row 0 is read
        if before < k or s == 1:  # position 0 reads row 0 or later, or a stride-1 window reaches the map
            continue
        if n_out.__class__ is not int or n_in.__class__ is not int:
            return None
        if not any(_tap_inside(o * s - before, k, d, n_in) for o in range(n_out)):
            return _no_field(y, rf)
    return rf


def _tap_inside(lo, k, d, n_in) -> bool:
    """Does a window whose taps are lo, lo + d, ..., lo + k - 1 read a position of 0 .. n_in - 1?"""
    first = lo if lo >= 0 else lo + (-(lo // d)) * d  # the first tap at or past 0
    return first <= lo + k - 1 and first <= n_in - 1


def _no_field(y, own):
    """The field of channels that read no input (pad_channels' zero channels): no position reads
    any (None where the sizes are symbols)."""
    if own is None or any(is_symbolic(n) for n in y[1:]):
        return None
    return tuple(RF(0, f.stride, 0, (_NO_FIRST,) * n, (_NO_LAST,) * n) for f, n in zip(own, y[1:]))


def _union(fields, y, budget):
    """The union of fields of one map (the channels of a slice, a pixel shuffle's phases), position
    by position where sizes are numbers: a part may read nothing at some positions (a phase away
    from its own), where a gate it carries is not read either."""
    if len(fields) == 1:
        return fields[0]
    if any(is_symbolic(n) for n in y[1:]):
        return _rf_join(fields, [y] * len(fields), y, budget)[0]
    out = tuple(_join_positions([f[axis] for f in fields], [False] * len(fields), n, fields[0][axis].stride, budget)
                for axis, n in enumerate(y[1:]))
    return None if any(r is None for r in out) else out


def _separable(phases, y):
    """Does each axis's field of a pixel shuffle's phases (window -> field) depend on that axis's
    phase alone (its window on that axis), at every position?"""
    for axis, n in enumerate(y[1:]):
        seen: dict = {}
        for w, f in phases.items():
            ends = [f[axis].at(o) for o in range(n)]
            if seen.setdefault(w[axis], ends) != ends:
                return False
    return True


def _rf_stack(states, xs, y, win, budget=None):
    """The field of a join whose branches are stacked along one axis (:class:`~archcalc.layers.Stack`):
    on that axis output position o has the field of the one branch it comes from, at its position
    there (exact per position; None where sizes are symbols), on the other axis the branches' union
    (:func:`_rf_join` on that axis alone). No alignment finding: the branches lie side by side."""
    if any(s is None for s in states):
        return None
    out = [None, None]
    for axis, w in enumerate(win):
        if w is None:  # the union, worked out by _rf_join over this axis alone (both slots the same)
            n = y[1 + axis]
            rf, _ = _rf_join([(s[axis], s[axis]) for s in states], [(x[0], x[1 + axis], x[1 + axis]) for x in xs],
                             (y[0], n, n), budget)
            if rf is None:
                return None
            out[axis] = rf[0]
            continue
        col = [s[axis] for s in states]
        n = y[1 + axis]
        if is_symbolic(n) or any(is_symbolic(v) for v in w.sizes) or any(
                is_symbolic(v) for c in col for v in (c.size, c.stride, c.padding)):
            return None
        _spend(budget, n)
        firsts, lasts = [], []
        for o in range(n):
            b, x = w.branch(o)
            f, last = col[b].at(x)
            firsts.append(f)
            lasts.append(last)
        out[axis] = _rf_from(firsts, lasts, col[0].stride, _StackExt(col, w))
    return tuple(out)


class _StackExt:
    """How a stacked join's field extends past its map: before it as its first branch extends, past
    it as its last (:class:`_Ext`'s interface: ``at``, ``end``, ``memo``, ``_needs``)."""

    __slots__ = ("col", "w", "memo")

    def __init__(self, col, w):
        self.col = col
        self.w = w
        self.memo = ({}, {})

    def _needs(self, o, end):
        b, x = self.w.branch(o)
        return ((self.col[b], x),)

    at = _Ext.at
    end = _Ext.end


def _gated(glob, local, stride, n, budget=None) -> RF | None:
    """The field of a gated map of ``n`` positions: the global part ``glob`` (lo, hi) read at every
    position, with the map's own field ``local``. Position o reads min(lo, F(o)) .. max(hi, L(o));
    over an affine map's field (F and L grow with o) the widest position is the first, the last, or
    any where the map's own field is the wider, so the size is
    max(hi - lo, hi - F(0), L(n - 1) - lo, r_local - 1) + 1 and the padding max(-lo, -F(0)).
    Concrete sizes only (None otherwise: the maximum of floors would be a closed form sympy cannot
    order in reasonable time)."""
    lo, hi = glob
    if any(is_symbolic(v) for v in (n, lo, hi, local.size, local.stride, local.padding)):
        return None
    if local.affine:
        f0 = local.at(0)[0]
        last = local.at(n - 1)[1]
        size = max(hi - lo + 1, hi - f0 + 1, last - lo + 1, local.size)
        return RF(size, stride, max(-lo, -f0), fixed=(lo, hi), local=local)
    _spend(budget, n)
    ends = [local.at(o) for o in range(n)]  # any field: position by position
    # a position whose map reads no input (a transposed conv's empty row) reads no gate either
    ends = [(f, last) for f, last in ends if f <= last]
    if not ends:
        return RF(0, stride, 0, fixed=(lo, hi), local=local)
    firsts = [min(lo, f) for f, _ in ends]
    lasts = [max(hi, last) for _, last in ends]
    size = max(b - a + 1 for a, b in zip(firsts, lasts))
    return RF(size, stride, -min(firsts), fixed=(lo, hi), local=local)


def _parts(c: RF, broadcast: bool):
    """A join input's (global part, spatial part): a broadcast 1x1 gate or a global value has no
    spatial part, an ordinary field no global one, a gated map both."""
    if broadcast:
        return c.at(0), None
    if c.fixed is not None and (c.local is not None or c.ext is None):
        return c.fixed, c.local
    return None, c


def _join_gated(col, broadcast, n, stride, budget):
    """A join with a global part (a gate): the union of the global parts, and the spatial parts'
    own join as the map's field (None: not a gate; or symbolic sizes where it cannot be shown)."""
    parts = [_parts(c, b) for c, b in zip(col, broadcast)]
    globs = [g for g, _ in parts if g is not None]
    maps = [m for _, m in parts if m is not None]
    if not globs or is_symbolic(n) or any(is_symbolic(v) for g in globs for v in g):
        return None  # symbolic: _join_fixed, where the global part covers the maps at every position
    lo, hi = min(g[0] for g in globs), max(g[1] for g in globs)
    if not maps:
        return RF(hi - lo + 1, stride, -lo, fixed=(lo, hi), n=n)
    if len(maps) == 1:
        local = maps[0]
    elif all(m.affine for m in maps):
        local = _affine_union(maps, n, budget)
    else:
        local = _join_positions(maps, [False] * len(maps), n, maps[0].stride, budget)
    if local is None:
        return None
    return _gated((lo, hi), local, stride, n, budget)


def _join_positions(col, broadcast, n, stride, budget):
    """The join's field position by position (None where sizes are symbolic)."""
    if any(is_symbolic(v) for c in col for v in (n, c.size, c.stride, c.padding)):
        return None
    _spend(budget, n)
    firsts, lasts = [], []
    for o in range(n):
        spans = [c.at(0 if b else o) for c, b in zip(col, broadcast)]
        firsts.append(min(f for f, _ in spans))
        lasts.append(max(last for _, last in spans))
    return _rf_from(firsts, lasts, stride, _Ext(tuple(zip(col, broadcast))))


def _join_fixed(col, broadcast, n, stride, ext=None):
    """The join's field where branches that read the same inputs at every position (broadcast
    gates, fixed fields) cover the others' fields at every position: then it is fixed too."""
    const = [c.at(0) for c, b in zip(col, broadcast) if b or c.fixed is not None]
    if not const:
        return None
    lo, hi = const[0]
    for f, last in const[1:]:
        if _le(f, lo):
            lo = f
        elif not _le(lo, f):
            return None
        if _le(hi, last):
            hi = last
        elif not _le(last, hi):
            return None
    for c, b in zip(col, broadcast):
        if not b and c.fixed is None and not (_le(lo, c.at(0)[0]) and _le(c.at(n - 1)[1], hi)):
            return None
    maps = [c for c, b in zip(col, broadcast) if not b and c.fixed is None]
    # a gated branch keeps its map's field beside the global part: it is a spatial part too
    maps += [c.local for c, b in zip(col, broadcast) if not b and c.fixed is not None and c.local is not None]
    if any(not m.affine for m in maps) or len({(m.size, m.stride, m.padding) for m in maps}) > 1:
        return None  # symbolic: no single spatial part to step on
    local = maps[0] if maps else None
    if local is None:  # global values alone: their padding reads nothing (RF.at), where n is a number
        return RF(as_int(hi - lo + 1), stride, as_int(-lo), fixed=(lo, hi), n=None if is_symbolic(n) else n)
    return RF(as_int(hi - lo + 1), stride, as_int(-lo), fixed=(lo, hi), local=local)


def _rf_join_affine(states, n=(None, None), budget=None):
    out = tuple(_affine_union([s[axis] for s in states], n[axis], budget) for axis in range(len(n)))
    return None if any(a is None for a in out) else out


def _affine_union(col, n=None, budget=None) -> RF:
    """Affine branches joined, exactly where the figures are numbers: of one stride, position o
    reads from the lowest first row (min of -p) to the highest last (max of r - 1 - p); of
    different strides, position by position. Symbolic: the largest field (the others lie in it
    where the branches share stride and centre)."""
    if all(c.size.__class__ is int and c.padding.__class__ is int and c.stride.__class__ is int for c in col):
        if len({c.stride for c in col}) == 1:
            first = min(-c.padding for c in col)
            last = max(c.size - 1 - c.padding for c in col)
            return RF(last - first + 1, col[0].stride, -first)
        if n is not None and not is_symbolic(n):
            return _join_positions(col, [False] * len(col), n, col[0].stride, budget)
    if all(as_int(c.stride - col[0].stride) == 0 for c in col[1:]):
        # one stride (equal as expressions): the same union as with numbers, min and max exact
        # (sympy decides them where the sizes' positivity does: H against 2H)
        first = _extreme([as_int(-c.padding) for c in col], low=True)
        last = _extreme([as_int(c.size - 1 - c.padding) for c in col], low=False)
        if first is None or last is None:
            return None  # an order sympy cannot show: unknown, not the first branch's guess
        return RF(as_int(last - first + 1), col[0].stride, as_int(-first))
    # strides that differ (or cannot be shown equal): the union depends on the position, and
    # the padding a later window reads extends each branch its own way: unknown, never guessed
    return None


def _extreme(values, low):
    """The lowest (``low``) or highest of ``values`` where :func:`_le` orders each against it at
    every size (a difference that simplifies to a number), else None."""
    best = values[0]
    for v in values[1:]:
        if (_le(v, best) if low else _le(best, v)):
            best = v
        elif not (_le(best, v) if low else _le(v, best)):
            return None
    return best


def _offsets(states, broadcast, y, budget) -> dict:
    """Per axis (0: rows, 1: columns), the first pair of spatial branches (i, k) whose field
    centres differ by the same nonzero amount at every output position: {axis: (i, k, d)}, d the
    difference (k's centre minus i's) doubled, in input positions. A branch that broadcasts a
    global value (a 1x1 gate) or whose field is the same at every position (a whole-map pool
    brought back) is not spatial. Centres that differ by an amount that varies (different
    effective strides; half a pixel one way then the other after a pool and an up-convolution)
    are no offset."""
    out = {}
    for axis in range(2):
        n = y[1 + axis] if y is not None else None
        spatial = [(i, _parts(s[axis], b)[1]) for i, (s, b) in enumerate(zip(states, broadcast))]
        spatial = [(i, c) for i, c in spatial if c is not None and c.fixed is None]
        for x, (i, a) in enumerate(spatial):
            hit = None
            for k, b in spatial[x + 1:]:
                d = _constant_offset(a, b, n, budget)
                if d:
                    hit = (i, k, d)
                    break
            if hit:
                out[axis] = hit
                break
    return out


def _constant_offset(a: RF, b: RF, n, budget):
    """b's field centre minus a's, doubled, where it is the same at every one of the ``n`` output
    positions; None where it varies or cannot be shown (symbolic sizes)."""
    if a.affine and b.affine:
        if as_int(a.stride - b.stride) != 0:
            return None  # the centres drift apart: no constant offset
        d = as_int((b.size - 1 - 2 * b.padding) - (a.size - 1 - 2 * a.padding))
        return None if is_symbolic(d) else d
    if n is None or is_symbolic(n) or any(is_symbolic(v) for c in (a, b) for v in (c.size, c.padding, c.stride)):
        return None
    _spend(budget, n)
    d0 = None
    for o in range(n):
        fa, la = a.at(o)
        fb, lb = b.at(o)
        if fa > la or fb > lb:  # a position that reads nothing has no centre
            continue
        d = fb + lb - fa - la
        if d0 is None:
            d0 = d
        elif d != d0:
            return None
    return d0


def _gt(a, b):
    if is_symbolic(a) or is_symbolic(b):
        return False
    return a > b


def _tiling_note_nd(x, win, lost) -> Finding:
    """:func:`_tiling_note` on a 1-D or 3-D map: per axis the positions of real input never read."""
    names = L.AXIS_NAMES[len(win)]
    parts = [f"{n} on {name}" for n, name in zip(lost, names) if n]
    k = "x".join(str(w.k) for w in win)
    s = ",".join(str(w.s) for w in win)
    pads = ", ".join(f"{w.before}+{w.after}" for w in win)
    numbers = tuple((f"lost_{name.lower()}", n) for n, name in zip(lost, names))
    numbers += tuple((f"kernel_{name.lower()}", w.k) for w, name in zip(win, names))
    numbers += tuple((f"stride_{name.lower()}", w.s) for w, name in zip(win, names))
    numbers += tuple((f"input_{name.lower()}", v) for v, name in zip(x[1:], names))
    return Finding("tiling", f"{k}/{s} window does not tile its {'x'.join(str(v) for v in x[1:])} input (padding {pads}): "
                   f"the last positions of real input are never seen ({', '.join(parts)})", numbers=numbers)


def _tiling_note(x, win, lost) -> Finding:
    """A window that does not tile its input: the rows and columns of real input it never reads."""
    h, w = win
    parts = []
    for n, what in zip(lost, ("row", "column")):
        if n:
            parts.append(f"{n} {what}{'s' if n > 1 else ''}")
    pads = f"padding {h.before}+{h.after}, {w.before}+{w.after}"
    return Finding(
        "tiling",
        f"{h.k}x{w.k}/{h.s} window does not tile its {x[1]}x{x[2]} input ({pads}): "
        f"the last {' and '.join(parts)} of real input are never seen",
        numbers=(("lost_rows", lost[0]), ("lost_columns", lost[1]), ("kernel_h", h.k), ("kernel_w", w.k),
                 ("stride_h", h.s), ("stride_w", w.s), ("input_h", x[1]), ("input_w", x[2]),
                 ("pad_top", h.before), ("pad_bottom", h.after), ("pad_left", w.before), ("pad_right", w.after)),
    )


def _alignment_note(per_axis, layers) -> Finding:
    """A join whose branches are centred apart by the same amount at every position: ``per_axis``
    holds, for rows and columns, (branch a, branch b, b's centre minus a's in input pixels) or None;
    ``layers`` the off-centre windows on those branches (name, type, k_h, k_w, s_h, s_w, pad_top,
    pad_left, shift_h, shift_w), the layers whose padding or stride would align them."""
    numbers = []
    said = []
    for axis, what in ((0, "rows"), (1, "columns")):
        hit = per_axis[axis]
        key = "h" if axis == 0 else "w"
        if hit is None:
            numbers.append((f"offset_{key}", 0))
            continue
        a, b, off = hit
        numbers += [(f"offset_{key}", off), (f"branches_{key}", (a, b))]
        said.append((what, a, b, off))
    if len(said) == 2 and said[0][1:] == said[1][1:]:
        _, a, b, off = said[0]
        where = f"'{b}' is centred {_px(off, True)} '{a}' on rows and columns"
    else:
        where = " and ".join(f"'{b}' is centred {_px(off, True)} '{a}' on {what}" for what, a, b, off in said)
    numbers.append(("layers", tuple(row[0] for row in layers)))
    if layers:
        parts = []
        for name, ltype, kh, kw, sh, sw, ph, pw, dh, dw in layers:
            shift = _px(dh or dw, True) if dh == dw or not dh or not dw else f"{_px(dh, True)} x {_px(dw, True)}"
            parts.append(f"{name} ({ltype} {kh}x{kw}/{sh}, padding {ph} before: centred {shift} its position)")
        hint = "change the padding or stride of " + "; ".join(parts)
    else:
        hint = "no window on these branches is off-centre: a crop or a resampling layer shifts one of them"
    return Finding("alignment.centres",
                   f"branches are not centre-aligned: {where}, at every position; {hint}", numbers=tuple(numbers))


def _px(value, side=False) -> str:
    """An offset in pixels as text: '1/2 pixel', '4 pixels'; with ``side``, '4 pixels before'."""
    text = f"{abs(value)} pixel" + ("" if abs(value) <= 1 else "s")
    return f"{text} {'after' if value > 0 else 'before'}" if side else text


def _unused(size, w) -> int:
    """Input rows (not padding) that no window reaches; 0 when it tiles or sizes are symbolic."""
    if not isinstance(w, L.Axis) or not w.tiles or any(is_symbolic(v) for v in (size, w.k, w.s, w.before, w.after)):
        return 0
    if w.k < w.s:  # a subsampling window (1x1/2 shortcut) skips rows by design, not by accident
        return 0
    rem = (size + w.before + w.after - w.k) % w.s
    return max(rem - w.after, 0)
