"""The engine: a pure function from a :class:`~archcalc.spec.Network` to a :class:`Report`.

No printing, no files. Concrete specs are computed with plain ints (sympy is not imported);
specs with unresolved symbols get sympy expressions from the very same code.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from . import layers as L
from .errors import SpecError
from .expr import as_int, is_symbolic, vmax

DTYPES = {"fp64": 8, "fp32": 4, "fp16": 2, "bf16": 2, "int8": 1}
OPTIMIZERS = {"sgd": 0, "momentum": 1, "adam": 2}  # state tensors per parameter
INDEX_BYTES = 8  # max-pool indices are int64
MASK_BYTES = 1  # dropout masks are bool


@dataclass(frozen=True)
class RF:
    """Receptive field of one axis: size r, effective stride (jump) j, effective padding p."""

    size: Any
    stride: Any
    padding: Any


@dataclass
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
    MACs by N.
    """
    if dtype not in DTYPES:
        raise SpecError(f"unknown dtype '{dtype}'", hint="one of " + ", ".join(DTYPES))
    for what, k in (("ensemble", ensemble), ("crops", crops)):
        if isinstance(k, bool) or not isinstance(k, int) or k < 1:
            raise SpecError(f"{what} must be a positive integer, got {k!r}")
    if optimizer not in OPTIMIZERS:
        raise SpecError(f"unknown optimizer '{optimizer}'", hint="one of " + ", ".join(OPTIMIZERS))
    nbytes = DTYPES[dtype]
    shapes = {-1: tuple(net.input)}
    rfs: dict = {-1: _rf_start(net.input)}
    extent: dict = {-1: None}  # spatial size a flat vector was flattened from (for linear's window)
    tensor = {-1: -1}  # which tensor a node's output lives in (training)
    rows: list[Row] = []
    warnings: list[str] = []
    saved: dict = {}  # tensor id -> elements, saved for backward
    extra_bytes = 0
    numel = {-1: L.prod(net.input)}
    grad = {-1: False}  # does a node's output need a gradient (autograd records its layers)?
    readers: dict = {}  # how many nodes read each node's output (-1: the network input)
    for node in net.nodes:
        for j in node.inputs:
            readers[j] = readers.get(j, 0) + 1

    for i, node in enumerate(net.nodes):
        ltype = L.REGISTRY[node.type]
        xs = [shapes[j] for j in node.inputs]
        try:
            y = ltype.out(node.args, xs)
        except L.ShapeError as err:
            raise SpecError(err.fact, node.where, err.hint) from None
        for d in y:
            if not is_symbolic(d) and d < 1:
                raise SpecError(
                    f"output would be {L.shape_text(y)} for input {L.shape_text(xs[0])}",
                    node.where,
                    "the window is larger than the padded input",
                )
        shapes[i] = y
        numel[i] = L.prod(y)
        params, buffers = ltype.count(node.args, xs, y)
        macs = ltype.macs(node.args, xs, y)
        row_warn = []

        # receptive field
        win = ltype.window(node.args, xs, y)
        if ltype.joins:
            rf, note = _rf_join([rfs[j] for j in node.inputs])
            if note:
                row_warn.append(note)
            extent[i] = extent[node.inputs[0]]
        elif win is None:
            rf = rfs[node.inputs[0]]
            extent[i] = extent[node.inputs[0]] if len(y) == 1 else None
            if node.type == "flatten":
                extent[i] = (xs[0][1], xs[0][2]) if len(xs[0]) == 3 else extent[node.inputs[0]]
        elif win == "global":
            src = rfs[node.inputs[0]]
            ext = extent[node.inputs[0]]
            if ext is None or src is None:
                rf = src
            else:
                rf = tuple(_rf_step(a, L.Axis(e, e, 0, 0, False)) for a, e in zip(src, ext))
                extent[i] = (1, 1)
            extent[i] = (1, 1) if ext is not None else None
        else:
            src = rfs[node.inputs[0]]
            rf = tuple(_rf_step(a, w) for a, w in zip(src, win))
            extent[i] = None
            lost = [_unused(xs[0][1], win[0]), _unused(xs[0][2], win[1])]
            if any(lost):
                row_warn.append(_tiling_note(xs[0], win, lost))
        rfs[i] = rf

        # memory
        shared = bool(node.inputs) and (node.inputs[0] == -1 or readers.get(node.inputs[0], 0) > 1)
        if node.args.get("inplace") and shared:
            # an in-place layer must not overwrite a tensor another layer (or the caller) still
            # reads: it runs out of place and produces a new tensor
            node_args = {**node.args, "inplace": False}
        else:
            node_args = node.args
        new_eval = ltype.new_tensor(node_args, xs, y, False)
        if isinstance(new_eval, bool):
            values = numel[i] if new_eval else 0
        else:  # depends on unresolved sizes: exact as a piecewise expression
            from .expr import sympy

            values = sympy().Piecewise((numel[i], new_eval), (0, True))
        new_train = ltype.new_tensor(node_args, xs, y, True)
        tensor[i] = i if (new_train is not False) else tensor[node.inputs[0]]
        # a layer with no parameters on inputs that need no gradient is not recorded: it keeps nothing
        grad[i] = _positive(params) or any(grad[j] for j in node.inputs)
        kept = ltype.saves(node_args, True) if grad[i] else ()
        if grad[i]:
            extra_bytes += ltype.workspace(node_args, xs, y) * nbytes
        for what in kept:
            if what == "input_copy":
                extra_bytes += numel[node.inputs[0]] * nbytes
            elif what == "input":
                for j in node.inputs[:1]:
                    saved[tensor[j]] = numel[j]
            elif what == "output":
                saved[tensor[i]] = numel[i]
            elif what == "indices":
                extra_bytes += numel[i] * INDEX_BYTES
            elif what == "mask":
                extra_bytes += numel[i] * MASK_BYTES

        names = [net.nodes[j].name if j >= 0 else "input" for j in node.inputs]
        row = Row(
            name=node.name,
            type=node.type,
            inputs=names,
            shape=y,
            params=params,
            buffers=buffers,
            macs=macs,
            values=values,
            rf=rf,
            aux=node.aux,
            line=node.where.line,
            warnings=row_warn,
        )
        rows.append(row)
        warnings.extend(f"{node.name}: {w}" for w in row_warn)

    totals = _totals(net, rows, numel, saved, extra_bytes, nbytes, batch, optimizer, ensemble, crops)
    return Report(
        name=net.name,
        title=net.title,
        source=net.source,
        file=net.file,
        input=tuple(net.input),
        symbols=dict(net.symbols),
        values=dict(net.values),
        rows=rows,
        output=shapes[net.output],
        dtype=dtype,
        batch=batch,
        totals=totals,
        warnings=warnings,
        budget=dict(net.budget),
        notes=net.notes,
        optimizer=optimizer,
    )


def _positive(value) -> bool:
    return is_symbolic(value) or value > 0


def _sum(values):
    total = 0
    for v in values:
        total = total + v
    return as_int(total)


def _totals(net, rows, numel, saved, extra_bytes, nbytes, batch, optimizer, ensemble, crops):
    k = ensemble
    params = as_int(_sum(r.params for r in rows) * k)
    main = [r for r in rows if not r.aux]
    activations = as_int((numel[-1] + _sum(r.values for r in main)) * k)
    saved_bytes = as_int((_sum(saved.values()) * nbytes + extra_bytes) * k)
    param_bytes = as_int(params * nbytes)
    states = OPTIMIZERS[optimizer]
    t = {
        "params": params,
        "params_aux": as_int(_sum(r.params for r in rows if r.aux) * k),
        "buffers": as_int(_sum(r.buffers for r in rows) * k),
        "macs": as_int(_sum(r.macs for r in main) * k * crops),
        "macs_aux": as_int(_sum(r.macs for r in rows if r.aux) * k),
        "activations": activations,
        "activation_bytes": as_int(activations * nbytes),
        "train_saved_bytes": saved_bytes,
        "param_bytes": param_bytes,
        "train_state_bytes": as_int(param_bytes * (2 + states)),  # weights, gradients, optimizer state
        "layers": len(rows),
        "ensemble": ensemble,
        "crops": crops,
    }
    t["batch_activation_bytes"] = as_int(t["activation_bytes"] * batch)
    t["batch_train_bytes"] = as_int(saved_bytes * batch + t["train_state_bytes"])
    return t


def max_batch(report: Report, budget_bytes: int) -> Any:
    """Largest training batch whose saved activations plus weights, gradients and optimizer
    state fit in ``budget_bytes`` (0 when even the weights do not fit)."""
    t = report.totals
    free = budget_bytes - t["train_state_bytes"]
    if is_symbolic(free) or is_symbolic(t["train_saved_bytes"]):
        return as_int(free // t["train_saved_bytes"])
    return max(free // t["train_saved_bytes"], 0) if t["train_saved_bytes"] else None


# --------------------------------------------------------------------------- receptive field


def _rf_start(shape):
    if len(shape) != 3:
        return None
    return (RF(1, 1, 0), RF(1, 1, 0))


def _rf_step(a: RF, w: L.Axis) -> RF:
    """Araujo et al. (Distill 2019): r' = r + (k-1) j, j' = j s, p' = p + pad j."""
    return RF(as_int(a.size + (w.k - 1) * a.stride), as_int(a.stride * w.s), as_int(a.padding + w.before * a.stride))


def _rf_join(states):
    states = [s for s in states]
    if any(s is None for s in states):
        return states[0], None
    out = []
    note = None
    for axis in range(2):
        col = [s[axis] for s in states]
        big = col[0]
        for c in col[1:]:
            if _gt(c.size, big.size):
                big = c
        centres = {_centre(c) for c in col}
        strides = {c.stride for c in col}
        if len(centres) > 1 or len(strides) > 1:
            note = "branches' receptive fields are not centre-aligned" if len(centres) > 1 else (
                "branches have different effective strides"
            )
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


def _tiling_note(x, win, lost) -> str:
    h, w = win
    parts = []
    for n, what in zip(lost, ("row", "column")):
        if n:
            parts.append(f"{n} {what}{'s' if n > 1 else ''}")
    pads = f"padding {h.before}+{h.after}, {w.before}+{w.after}"
    return (
        f"{h.k}x{w.k}/{h.s} window does not tile its {x[1]}x{x[2]} input ({pads}): "
        f"the last {' and '.join(parts)} of real input are never seen"
    )


def _unused(size, w: L.Axis) -> int:
    """Input rows (not padding) that no window reaches; 0 when it tiles or sizes are symbolic."""
    if not w.tiles or any(is_symbolic(v) for v in (size, w.k, w.s, w.before, w.after)):
        return 0
    if w.k < w.s:  # a subsampling window (1x1/2 shortcut) skips rows by design, not by accident
        return 0
    rem = (size + w.before + w.after - w.k) % w.s
    return max(rem - w.after, 0)
