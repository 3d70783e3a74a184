"""Symbolic depth (issue 10 item 3): totals as closed forms in a repeat count.

When a repeat count is a free symbol the layer list itself depends on it, so there is no single
table of layers. The totals are still exact polynomials in the count: each repetition adds the
same layers (a body that keeps its shape) or layers whose sizes grow linearly with the index
(DenseNet's concatenations), so params, MACs and memory are polynomials of low degree. They are
found exactly: the network is analysed at DEGREE + 1 consecutive values of the symbol (other free
symbols, such as a width k or the input's H and W, stay symbolic in each analysis), the unique
polynomial through them is built by Lagrange interpolation on exact rationals, and it is checked
at CHECKS further values; a total that is not such a polynomial is an error, never a guess.

>>> from archcalc.analysis.depth import analyze_depth
>>> from archcalc import load
>>> r = analyze_depth(lambda values, free: load("resnet20", values, None, free), (), ("n",))
>>> str(r.totals["params"])                 # ResNet-CIFAR, 6n + 2 layers
'97216*n - 21926'
>>> from archcalc.expr import substitute
>>> [substitute(r.totals["params"], {"n": n}) for n in (3, 9, 18)]   # resnet20, resnet56, resnet110
[269722, 853018, 1727962]
"""

from __future__ import annotations

from fractions import Fraction

from ..errors import SpecError
from ..findings import Finding

DEGREE = 3  # the highest degree fitted in the depth symbol
CHECKS = 2  # further values the polynomial must match
MAX_START = 64  # the first value tried must be at most this


def analyze_depth(load, free_other: tuple, depth: tuple, **analyze_kw):
    """A Report whose totals are polynomials in the depth symbol(s) ``depth`` (one at a time), with
    ``free_other`` kept symbolic in every sample. ``load(values, free)`` loads the Network. The
    report's rows are those at the first sample value, and its first warning says so: a
    ``depth-start`` :class:`~archcalc.findings.Finding` whose ``start`` is that value."""
    from .engine import analyze
    from ..expr import expand, sympy

    if len(depth) != 1:
        raise SpecError(f"one repeat-count symbol can be kept symbolic at a time, got {', '.join(depth)}", None,
                        "give the others values with --set")
    (name,) = depth
    sp = sympy()
    n = sp.Symbol(name, integer=True, positive=True)
    from ..spec.load import SymbolicRepeat

    samples, first = [], None
    start = None
    last = None
    for v in range(1, MAX_START + 1):
        try:
            report = analyze(load({name: v}, free_other), **analyze_kw)
        except SymbolicRepeat as err:
            # another repeat count is still a free symbol at every value of this one: trying more
            # values cannot help, and "no value gives a network" would be false
            others = [s for s in err.symbols if s != name] or list(err.symbols)
            raise SpecError(
                f"repeat counts in {', '.join([name, *others])} are all kept symbolic: closed forms in "
                f"more than one depth symbol are not supported", err.where,
                f"keep one symbolic and give the others values with --set (e.g. --set {others[0]}=2)",
            ) from None
        except SpecError as err:
            last = (v, err)
            continue
        start, first = v, report
        break
    if first is None:
        why = f" (at {name} = {last[0]}: {last[1].fact})" if last is not None else ""
        raise SpecError(f"no value of {name} from 1 to {MAX_START} gives a network{why}", None)
    samples.append((start, first.totals))
    for v in range(start + 1, start + DEGREE + 1 + CHECKS):
        try:
            samples.append((v, analyze(load({name: v}, free_other), **analyze_kw).totals))
        except SpecError as err:
            raise SpecError(f"{name} = {v} does not give a network although {name} = {start} does: {err.fact}", None) from None
    fit, check = samples[: DEGREE + 1], samples[DEGREE + 1:]
    totals = {}
    for key, value in first.totals.items():
        if isinstance(value, (bool, str)) or key in ("ensemble", "crops"):
            totals[key] = value
            continue
        poly = _lagrange(n, [(x, t[key]) for x, t in fit])
        for x, t in check:
            if expand(poly.subs(n, x) - t[key]) != 0:
                raise SpecError(
                    f"total '{key}' is not a polynomial of degree <= {DEGREE} in {name}", None,
                    f"give {name} a value with --set",
                )
        totals[key] = _as_int(poly)
    first.totals = totals
    first.values = {k: v for k, v in first.values.items() if k != name}
    first.warnings = [Finding(
        "depth-start",
        f"totals are closed forms in {name} (exact: fitted at {name} = {start}..{start + DEGREE} and "
        f"checked at {start + DEGREE + 1}..{start + DEGREE + CHECKS}); the layers shown are those at {name} = {start}",
        numbers=(("symbol", name), ("start", start), ("degree", DEGREE), ("checks", CHECKS)),
    )] + list(first.warnings)
    return first


def _lagrange(n, points):
    from ..expr import expand, sympy

    sp = sympy()
    total = 0
    for i, (xi, yi) in enumerate(points):
        term = sp.sympify(yi) if not isinstance(yi, int) else sp.Integer(yi)
        for j, (xj, _) in enumerate(points):
            if i != j:
                term = term * (n - xj) / sp.Rational(xi - xj)
        total = total + term
    return expand(total)


def _as_int(value):
    from ..expr import as_int

    if getattr(value, "is_Rational", False) and not getattr(value, "is_Integer", False):
        return Fraction(int(value.p), int(value.q))
    return as_int(value)
