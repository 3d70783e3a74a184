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
from ..expr import as_int, is_symbolic, vmax
from ..limits import MAX_FREE_SYMBOLS as _MAX_FREE_SYMBOLS
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

    Immutable by convention; equality and hash use (size, stride, padding). A slotted class, not a
    frozen dataclass: one is made per layer and axis, and a frozen dataclass's constructor costs
    several times more."""

    __slots__ = ("size", "stride", "padding", "first", "last", "fixed")

    def __init__(self, size, stride, padding, first=None, last=None, fixed=None):
        self.size = size
        self.stride = stride
        self.padding = padding
        self.first = first
        self.last = last
        self.fixed = fixed

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

    def at(self, o):
        """(first, last) input position that output position ``o`` reads (for a position-dependent
        field, positions outside the layer's output are clamped to its border)."""
        if self.fixed is not None:
            return self.fixed
        if self.first is None:
            start = o * self.stride - self.padding
            return start, as_int(start + self.size - 1)
        o = min(max(o, 0), len(self.first) - 1)
        return self.first[o], self.last[o]


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
    walk = _Walk(net, DTYPES[dtype])
    rows = [walk.step(i, node) for i, node in enumerate(net.nodes)]
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
        if hit.same_field and (win is None or (src is not None and src[0].first is None and src[0].fixed is None
                                           and src[1].first is None and src[1].fixed is None)):
            # pointwise on a map, or a 1x1/1 window without padding on an affine field: the field
            # passes through (the same object serves); self.extent[i] stays None
            rf = src
        else:
            rf, notes = self.receptive_field(i, ltype, node, xs, y, win)
            if notes:
                warnings = (*warnings, *notes)
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
        # the field passes through a pointwise layer on a map, and through a 1x1/1 window without
        # padding where the field is affine (r + 0 j, j * 1, p + 0 j: the same field)
        same_field = not ltype.joins and (
            (win is None and len(y) != 1)
            or (isinstance(win, tuple) and len(win) == 2
                and all(a.__class__ is _Axis and a.k == 1 and a.s == 1 and a.before == 0 for a in win)))
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
            return self._receptive_field(i, ltype, node, xs, y, win)
        except RFWorkLimit as err:
            raise SpecError(
                f"its receptive field needs {err.needed:,} position steps after {err.spent:,} already taken, "
                f"above the limit of {_MAX_RF_POSITIONS:,} for one network",
                node.where,
                "resampled fields are computed position by position: use a smaller input or output size",
            ) from None

    def _receptive_field(self, i, ltype, node, xs, y, win):
        first = node.inputs[0]
        if ltype.joins:
            self.extent[i] = self.extent[first]
            rf, note = _rf_join([self.rfs[j] for j in node.inputs], xs, y, self.rf_budget)
            return rf, [note] if note else []
        src, ext = self.rfs[first], self.extent[first]
        if win is None:  # pointwise, or a change of layout: the field passes through
            if len(y) == 1:
                self.extent[i] = (xs[0][1], xs[0][2]) if len(xs[0]) == 3 else ext
            else:
                self.extent[i] = None
            return src, None
        if win == "global":  # every input position (a linear layer on a flattened map)
            if ext is None or src is None:
                self.extent[i] = None
                return src, None
            self.extent[i] = (1, 1)
            return tuple(_rf_step(a, L.Axis(e, e, 0, 0, False), 1, e, self.rf_budget) for a, e in zip(src, ext)), None
        self.extent[i] = None
        if src is None or win == "unknown":
            return None, None
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

    # -- memory
    def memory(self, i, ltype, node, xs, y, params, decls):
        """New values at inference (the row's ``values``); records what backward keeps.
        ``decls``: the layer's memory declarations, out of place and in place, as far as known."""
        ins = node.inputs
        args = node.args
        inplace = 0
        if ltype.can_inplace and args.get("inplace"):
            if ins[0] == -1 or self.readers[ins[0]] > 1:
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
        saves = decl.saves
        workspace = decl.workspace
        numel = self.numel
        if new_eval is True:
            values = numel[i]
        elif new_eval is False:
            values = 0
        else:  # depends on unresolved sizes: exact as a piecewise expression
            from ..expr import sympy

            values = sympy().Piecewise((numel[i], new_eval), (0, True))
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

    def keep(self, j):
        """Backward keeps node j's output: the whole storage it lives in (a slice keeps its parent)."""
        t = self.tensor[j]
        self.saved[t] = self.numel[t]


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
    if len(shape) != 3:
        return None
    return (RF(1, 1, 0), RF(1, 1, 0))


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
    return RF(size, _norm(a.stride * w.s), a.padding, _AdaptivePositions(*args, False), _AdaptivePositions(*args, True))


def _rf_step(a: RF, w, n_out=None, n_in=None, budget=None) -> RF | None:
    """The field after a window. Affine (Araujo et al., Distill 2019): r' = r + (k-1) j,
    j' = j s, p' = p + pad j. An adaptive pool over an affine field in closed form. Otherwise
    position by position, exact (None where sizes are symbolic), each position counted against
    ``budget`` before the work."""
    if a.affine and isinstance(w, L.Axis):
        return RF(as_int(a.size + (w.k - 1) * a.stride), as_int(a.stride * w.s), as_int(a.padding + w.before * a.stride))
    if a.fixed is not None:  # every position reads the same inputs, so does every window over them
        return RF(a.size, _mul(a.stride, w.s), a.padding, fixed=a.fixed)
    if n_in == 1:  # a 1x1 map (a pooled gate, ASPP's image features): every output reads it
        lo, hi = a.at(0)
        return RF(as_int(hi - lo + 1), _mul(a.stride, w.s), as_int(-lo), fixed=(lo, hi))
    if any(is_symbolic(v) for v in (n_out, n_in, a.stride, a.padding, a.size, w.s)):
        return None
    closed = _rf_adaptive(a, w, n_out, n_in)
    if closed is not None:
        return closed
    _spend(budget, n_out)
    span = w.spans() if isinstance(w, L.Resample) else w.span
    top = n_in - 1
    # positions outside the input (padding) have no field of their own: clamp to the border
    spans = [span(o) for o in range(n_out)]
    los = [0 if lo < 0 else top if lo > top else lo for lo, _ in spans]
    his = [0 if hi < 0 else top if hi > top else hi for _, hi in spans]
    if a.affine and a.stride.__class__ is int and a.padding.__class__ is int and a.size.__class__ is int:
        j, p, extra = a.stride, a.padding, a.size - 1 - a.padding
        firsts = [x * j - p for x in los]
        lasts = [x * j + extra for x in his]
    else:
        at = a.at
        firsts = [at(x)[0] for x in los]
        lasts = [at(x)[1] for x in his]
    return _rf_from(firsts, lasts, a.stride * w.s)


def _rf_from(firsts, lasts, stride) -> RF:
    """An RF from per-position fields: affine again where they follow o*j - p (integer j)."""
    stride = _norm(stride)
    size = max(b - a for a, b in zip(firsts, lasts)) + 1
    if isinstance(stride, int) and all(
        f == firsts[0] + o * stride and b - f == size - 1 for o, (f, b) in enumerate(zip(firsts, lasts))
    ):
        return RF(size, stride, -firsts[0])
    if len(set(firsts)) == 1 and len(set(lasts)) == 1:
        return RF(size, stride, -firsts[0], fixed=(firsts[0], lasts[0]))
    return RF(size, stride, -firsts[0], tuple(firsts), tuple(lasts))


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
    from ..expr import expandable, sympy

    if not expandable(b - a):  # sympy's simplify is open-ended: only on small differences
        return False
    d = sympy().simplify(b - a)
    return bool(d.is_number and d >= 0)


def _rf_join(states, xs=None, y=None, budget=None):
    states = [s for s in states]
    if any(s is None for s in states):
        # a branch without a field (flat vectors, or a position-dependent field of symbolic size):
        # the join's field is unknown too
        return None, None
    broadcast = [xs is not None and len(x) == 3 and tuple(x[1:]) == (1, 1) and tuple(y[1:]) != (1, 1) for x in xs] if xs else [False] * len(states)
    if all(a.affine for s in states for a in s) and not any(broadcast):
        return _rf_join_affine(states)
    if y is None or len(y) != 3:
        return None, None  # a join of flat vectors (repvit's two heads) whose fields are not affine: unknown
    out = []
    note = None
    for axis in range(2):
        n = y[1 + axis]
        col = [s[axis] for s in states]
        main = [c for c, b in zip(col, broadcast) if not b] or col
        centres = [sum(c.at(0)) for c in main]
        if len(set(centres)) > 1:
            note = _alignment_note(axis, centres, [c.stride for c in main])
        elif len({c.stride for c in main}) > 1:
            note = _alignment_note(axis, None, [c.stride for c in main])
        fixed = _join_fixed(col, broadcast, n, main[0].stride)
        if fixed is not None:
            out.append(fixed)
            continue
        if any(is_symbolic(v) for c in col for v in (n, c.size, c.stride, c.padding)):
            return None, None
        _spend(budget, n)
        firsts, lasts = [], []
        for o in range(n):
            spans = [c.at(0 if b else o) for c, b in zip(col, broadcast)]
            firsts.append(min(f for f, _ in spans))
            lasts.append(max(last for _, last in spans))
        out.append(_rf_from(firsts, lasts, main[0].stride))
    return tuple(out), note


def _join_fixed(col, broadcast, n, stride):
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
    return RF(as_int(hi - lo + 1), stride, as_int(-lo), fixed=(lo, hi))


def _rf_join_affine(states):
    out = []
    note = None
    for axis in range(2):
        col = [s[axis] for s in states]
        big = col[0]
        for c in col[1:]:
            if _gt(c.size, big.size):
                big = c
        centres = [_centre(c) for c in col]
        strides = [c.stride for c in col]
        if len(set(centres)) > 1:
            note = _alignment_note(axis, centres, strides)
        elif len(set(strides)) > 1:
            note = _alignment_note(axis, None, strides)
        size = big.size if all(not is_symbolic(c.size) for c in col) else vmax(*[c.size for c in col])
        out.append(RF(size, big.stride, big.padding))
    return tuple(out), note


def _gt(a, b):
    if is_symbolic(a) or is_symbolic(b):
        return False
    return a > b


def _centre(rf: RF):
    # centre of the first output's window in input coordinates, doubled to stay an integer
    return as_int(rf.size - 1 - 2 * rf.padding)


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


def _alignment_note(axis, centres, strides) -> Finding:
    """Branches of a join whose fields differ on ``axis`` (0: rows, 1: columns): their centres
    (``centres``: each branch's first-window centre, doubled) or, where those agree (``None``),
    their effective strides."""
    if centres is not None:
        return Finding("alignment.centres", "branches' receptive fields are not centre-aligned",
                       numbers=(("axis", axis), ("centres_x2", tuple(centres)), ("strides", tuple(strides))))
    return Finding("alignment.strides", "branches have different effective strides",
                   numbers=(("axis", axis), ("strides", tuple(strides))))


def _unused(size, w) -> int:
    """Input rows (not padding) that no window reaches; 0 when it tiles or sizes are symbolic."""
    if not isinstance(w, L.Axis) or not w.tiles or any(is_symbolic(v) for v in (size, w.k, w.s, w.before, w.after)):
        return 0
    if w.k < w.s:  # a subsampling window (1x1/2 shortcut) skips rows by design, not by accident
        return 0
    rem = (size + w.before + w.after - w.k) % w.s
    return max(rem - w.after, 0)
