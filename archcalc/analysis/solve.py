"""Input sizes from the canonical forms (issue 10): the smallest input every layer accepts, the
input sizes that tile exactly, and totals compiled once for sweeps.

Every spatial size is ``C + floor((a*X + R) / M)`` in one input symbol X (see
:func:`archcalc.expr.canonical`), so "this layer's output is at least 1" is the linear bound
``X >= ceil((M*(1 - C) - R) / a)``: the minimum input is the largest such bound over all layers,
per axis, then confirmed by a concrete analysis at that size (which also checks that joins agree
and that PyTorch's ceil-mode rule holds there). Pure: no printing, no files.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

from ..errors import ArchcalcError, SpecError
from ..expr import canonical, is_symbolic, symbol

SCAN = 4096  # where a bound cannot be read from the forms, sizes are tried up to this


@dataclass
class MinInput:
    size: tuple  # (C, H, W) the smallest input every layer accepts
    binding: tuple  # per axis: the layer whose output reaches 1x1 first (its name), or None
    method: str  # "closed form" or "scan"
    apart: tuple | None = None  # (H, W): each axis's own smallest, where the two do not work together


def _axes(net):
    """The input's spatial entries as (position, symbol name or None)."""
    return [(1, _name(net, 1)), (2, _name(net, 2))]


def _name(net, pos):
    d = net.input[pos]
    return str(d) if is_symbolic(d) and getattr(d, "is_Symbol", False) else None


def symbolic_input(net):
    """The network with H and W as free symbols (the spec's own names where its input uses
    symbols, else H and W)."""
    if len(net.input) != 3:
        raise SpecError("minimum and tiling input sizes need a C x H x W input", None)
    names = []
    for pos, default in ((1, "H"), (2, "W")):
        d = net.input[pos]
        names.append(str(d) if is_symbolic(d) and getattr(d, "is_Symbol", False) else default)
    return replace(net, input=(net.input[0], symbol(names[0]), symbol(names[1]))), names


def without_aux(net):
    """The network at inference: auxiliary heads (training only) removed. The main path never reads
    an aux head's layers (the spec loader enforces it), so the rest is unchanged."""
    keep = [i for i, node in enumerate(net.nodes) if not node.aux]
    if len(keep) == len(net.nodes):
        return net
    new_index = {old: new for new, old in enumerate(keep)}
    new_index[-1] = -1
    nodes = [replace(net.nodes[i], inputs=tuple(new_index[j] for j in net.nodes[i].inputs)) for i in keep]
    return replace(net, nodes=nodes, output=new_index[net.output], outputs=tuple(new_index[i] for i in net.outputs))


def min_input(net) -> MinInput:
    """The smallest H and W (each on its own, the other at the spec's size) for which every layer's
    output is at least 1 and the network analyses without error, at inference (aux heads, which
    run only in training, are left out, as torchvision's ``min_size`` leaves them out)."""
    from .engine import analyze

    net = without_aux(net)
    concrete = tuple(net.input)
    if len(concrete) != 3 or any(is_symbolic(d) for d in concrete):
        raise SpecError("--min-input needs the spec's concrete input size (give its symbols values)", None)
    sym_net, names = symbolic_input(net)
    bounds = [1, 1]
    binding: list = [None, None]
    method = "closed form"
    try:
        report = analyze(sym_net)
    except ArchcalcError:
        report = None
        method = "scan"
    if report is not None:
        for row in report.rows:
            for axis in (1, 2):
                if len(row.shape) != 3:
                    continue
                need = _at_least_one(row.shape[axis], names[axis - 1])
                if need is None:
                    method = "scan"
                elif need > bounds[axis - 1]:
                    bounds[axis - 1] = need
                    binding[axis - 1] = row.name
    size = []
    for axis in (1, 2):
        start = bounds[axis - 1]
        found = _first_that_works(net, axis, start, concrete)
        if found is None:
            raise SpecError(f"no input size up to {SCAN} works on axis {'HW'[axis - 1]}", None)
        if found != start:
            method = "scan"
            binding[axis - 1] = None
        size.append(found)
    if (size[0], size[1]) == (concrete[1], concrete[2]):
        return MinInput((concrete[0], size[0], size[1]), tuple(binding), method)
    # each axis's smallest was found with the other at the spec's size; together they may still
    # fail (an instance norm needs more than one position: 3x3 may leave it 1x1 where 3x8 and 5x3
    # do not): then the smallest pair above them that works, by area, then by H
    pair = _first_pair_that_works(net, size[0], size[1], concrete)
    if pair is None:
        raise SpecError(f"no input size up to {size[0] + _PAIR_SPAN}x{size[1] + _PAIR_SPAN} works with both axes "
                        f"at least their own smallest ({size[0]} and {size[1]})", None)
    if pair == (size[0], size[1]):
        return MinInput((concrete[0], size[0], size[1]), tuple(binding), method)
    return MinInput((concrete[0], pair[0], pair[1]), tuple(binding), "scan", apart=(size[0], size[1]))


_PAIR_SPAN = 64  # how far above each axis's own smallest a working pair is sought


def _first_pair_that_works(net, h, w, concrete):
    """The pair (H, W) >= (h, w) of least area (then least H) at which the network analyses."""
    from .engine import analyze

    pairs = sorted(((hh, ww) for hh in range(h, h + _PAIR_SPAN + 1) for ww in range(w, w + _PAIR_SPAN + 1)),
                   key=lambda p: (p[0] * p[1], p[0]))
    for n, (hh, ww) in enumerate(pairs, start=1):
        _scan_limit(f"--min-input's search of sizes from {h}x{w}", n, net)
        try:
            analyze(replace(net, input=(concrete[0], hh, ww)))
            return hh, ww
        except ArchcalcError:
            continue
    return None


def _at_least_one(dim, name):
    """The smallest X with dim(X) >= 1, from dim = C + floor((a X + R) / M); 1 for a constant; None
    where the form is not linear in X alone."""
    if not is_symbolic(dim):
        return 1 if dim >= 1 else None
    form = canonical(dim)
    if form is None:
        return None
    n, r, m, c = form
    x = symbol(name)
    if n.free_symbols != {x}:
        return None
    a = n.coeff(x)
    if not (a.is_Integer and a > 0 and (n - a * x) == 0):
        return None
    return max(1, math.ceil((m * (1 - c) - r) / int(a)))


def _scan_limit(what, analyses, net):
    """Refuse ``analyses`` analyses of the network beyond limits.MAX_SCAN_WORK (analyses x layers)."""
    from ..errors import UsageError, Where
    from ..limits import MAX_SCAN_WORK

    layers = len(net.nodes)
    if analyses * max(layers, 1) > MAX_SCAN_WORK:
        raise UsageError(
            f"{what} needs {analyses:,} analyses of {layers:,} layers ({analyses * max(layers, 1):,} layer steps), "
            f"above the limit of {MAX_SCAN_WORK:,}",
            hint="a smaller range or a network with fewer layers", where=Where(file=net.file) if net.file else None,
        )


def _first_that_works(net, axis, start, concrete):
    """The first size >= start on ``axis`` (the other axis at the spec's size) that analyses."""
    from .engine import analyze

    for size in range(start, SCAN + 1):
        _scan_limit(f"--min-input's scan of sizes {start}..{size}", size - start + 1, net)
        shape = list(concrete)
        shape[axis] = size
        try:
            analyze(replace(net, input=tuple(shape)))
            return size
        except ArchcalcError:
            continue
    return None


def tiling_sizes(net, lo: int, hi: int) -> list:
    """Square input sizes S in [lo, hi] at which no window drops a row or column of real input
    (the engine's tiling check finds nothing) and the network analyses."""
    from .engine import analyze

    if len(net.input) != 3:
        raise SpecError("tiling sizes need a C x H x W input", None)
    _scan_limit(f"--tiling {lo}:{hi}", hi - lo + 1, net)
    out = []
    for s in range(lo, hi + 1):
        try:
            r = analyze(replace(net, input=(net.input[0], s, s)))
        except ArchcalcError:
            continue
        if not any(w.is_a("tiling") for row in r.rows for w in row.warnings):
            out.append(s)
    return out


# --------------------------------------------------------------------------- compiled totals


def compile_expr(expr, names):
    """A Python function of ``names`` computing a sympy expression exactly on integers, built from
    the expression tree by archcalc itself (no lambdify, no generated source: symbol names come from
    a spec and never become code)."""
    from ..expr import sympy

    sp = sympy()

    if not is_symbolic(expr):
        from fractions import Fraction

        if isinstance(expr, (int, Fraction)):
            value = expr
        elif getattr(expr, "is_Integer", False):
            value = int(expr)
        elif getattr(expr, "is_Rational", False):
            value = Fraction(int(expr.p), int(expr.q))
        else:
            raise SpecError(f"cannot evaluate {expr} in a sweep", None)
        return lambda env: value
    index = set(names)

    def build(e):
        if e.is_Integer:
            v = int(e)
            return lambda env: v
        if e.is_Rational:
            from fractions import Fraction

            v = Fraction(int(e.p), int(e.q))
            return lambda env: v
        if e.is_Symbol:
            key = str(e)
            if key not in index:
                raise SpecError(f"symbol '{key}' has no value in the sweep", None)
            return lambda env: env[key]
        if isinstance(e, sp.Piecewise):
            pairs = [(build(v), _cond(c)) for v, c in e.args]
            return lambda env: next(v(env) for v, c in pairs if c(env))
        args = [build(a) for a in e.args]
        if e.is_Add:
            return lambda env: sum(f(env) for f in args)
        if e.is_Mul:
            def mul(env):
                out = 1
                for f in args:
                    out = out * f(env)
                return out
            return mul
        if e.is_Pow:
            base, exp = args
            return lambda env: base(env) ** exp(env)
        if isinstance(e, sp.floor):
            (f,) = args
            return lambda env: math.floor(f(env))
        if isinstance(e, sp.ceiling):
            (f,) = args
            return lambda env: math.ceil(f(env))
        if isinstance(e, sp.Max):
            return lambda env: max(f(env) for f in args)
        if isinstance(e, sp.Min):
            return lambda env: min(f(env) for f in args)
        raise SpecError(f"cannot evaluate {type(e).__name__} in a sweep", None)

    def _cond(c):
        if c is sp.true or c == True:  # noqa: E712 - sympy's true
            return lambda env: True
        if isinstance(c, sp.Ne):
            a, b = build(c.args[0]), build(c.args[1])
            return lambda env: a(env) != b(env)
        if isinstance(c, sp.Eq):
            a, b = build(c.args[0]), build(c.args[1])
            return lambda env: a(env) == b(env)
        relations = {sp.LessThan: lambda x, y: x <= y, sp.StrictLessThan: lambda x, y: x < y,
                     sp.GreaterThan: lambda x, y: x >= y, sp.StrictGreaterThan: lambda x, y: x > y}
        for cls, op in relations.items():
            if isinstance(c, cls):  # an upsample's pieces: I <= 55 (archcalc.layers.resample.scale_pieces)
                a, b = build(c.args[0]), build(c.args[1])
                return lambda env, a=a, b=b, op=op: op(a(env), b(env))
        if isinstance(c, sp.Or):
            parts = [_cond(x) for x in c.args]
            return lambda env: any(p(env) for p in parts)
        if isinstance(c, sp.And):
            parts = [_cond(x) for x in c.args]
            return lambda env: all(p(env) for p in parts)
        raise SpecError(f"cannot evaluate the condition {type(c).__name__} in a sweep", None)

    fn = build(expr)

    def run(env):
        v = fn(env)
        return int(v) if getattr(v, "denominator", 1) == 1 else v

    return run


def parse_range(text: str) -> list:
    """'96:512:32' -> [96, 128, ..., 512]; '224,256,299' -> those; 'A:B' steps by 1.

    >>> parse_range("96:160:32")
    [96, 128, 160]
    """
    text = text.strip()
    if ":" in text:
        parts = text.split(":")
        # ASCII digits, at most 13 of them, checked before int(): every value is a size (<= 2**40)
        if len(parts) not in (2, 3) or not all(p.strip().isascii() and p.strip().isdigit() and len(p.strip()) <= 13
                                               for p in parts):
            raise ValueError(text)
        lo, hi = int(parts[0]), int(parts[1])
        step = int(parts[2]) if len(parts) == 3 else 1
        if step < 1 or lo < 1 or hi < lo or hi > 2**40 or (hi - lo) // step > 10_000:
            raise ValueError(text)
        return list(range(lo, hi + 1, step))
    items = [p.strip() for p in text.split(",") if p.strip()]
    if not items or len(items) > 10_000 or not all(p.isascii() and p.isdigit() and len(p) <= 13 and 0 < int(p) <= 2**40 for p in items):
        raise ValueError(text)
    return [int(p) for p in items]



@dataclass
class Sizes:
    """``summary --min-input`` / ``--tiling``: what was asked for, solved."""

    network: str
    min_input: MinInput | None  # None: not asked
    tiling: tuple | None  # (lo, hi, the sizes in lo..hi at which every window tiles its input); None: not asked


def input_sizes(net, want_min: bool, tiling: str | None) -> Sizes:
    """The service of ``summary --min-input`` and ``--tiling LO:HI`` (the range's text)."""
    from ..errors import UsageError, plain

    found_min = min_input(net) if want_min else None
    found_tiling = None
    if tiling:
        try:
            sizes = parse_range(tiling)
        except ValueError:
            raise UsageError(f"--tiling {plain(tiling)}: expected LO:HI, e.g. --tiling 200:300") from None
        found_tiling = (sizes[0], sizes[-1], tiling_sizes(net, sizes[0], sizes[-1]))
    return Sizes(net.name, found_min, found_tiling)
