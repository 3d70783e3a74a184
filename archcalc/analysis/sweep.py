"""Sweeps (issue 10): totals against a swept symbol, from one symbolic analysis compiled once.

The spec is analysed once with the swept symbols free; each total (and the receptive field of the
last spatial layer) is a closed form, compiled by :func:`archcalc.analysis.solve.compile_expr` into a small
evaluator and evaluated at every point: no re-analysis per point. Each point is also checked for
validity from the same forms (every layer's output at least 1), and points where the network does
not apply are reported as such. Pure: no printing.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import SpecError, UsageError, Where
from ..expr import is_symbolic
from ..limits import MAX_SWEEP_WORK

METRICS = ("params", "macs", "activations", "activation_bytes", "train_saved_bytes", "rf")


@dataclass
class Sweep:
    name: str
    symbols: tuple  # the swept symbol names, all given the same value at each point
    values: list  # the swept values
    points: list  # per value: {metric: int} ("rf": None where no field is known) or None where the network does not apply
    invalid: list  # per value: None, or why the network does not apply there
    rf_layer: str | None
    # a 1-D / 3-D spec's axes (("l",) / ("d", "h", "w")): each point then also holds rf_<axis>, and
    # "rf" is the L axis (1-D) or the H axis (3-D); () on a 2-D spec ("rf": the H axis)
    rf_axes: tuple = ()


def sweep(load_free, names: tuple, values: list) -> Sweep:
    """``load_free(names)`` loads the Network with ``names`` kept symbolic."""
    from .engine import analyze
    from .solve import compile_expr

    net = load_free(names)
    report = analyze(net)
    t = report.totals
    exprs = {m: t[m] for m in METRICS if m != "rf"}
    # the receptive field of the last layer whose map still depends on the swept size (before a
    # global or fixed-size pool, whose field is the whole input by construction)
    rf_row = next((r for r in reversed(report.rows) if r.rf is not None and len(r.shape) in (2, 3, 4)
                   and len(r.rf) == len(r.shape) - 1 and not r.aux
                   and any(is_symbolic(d) for d in r.shape[1:])), None)
    rf_axes: tuple = ()
    if rf_row is not None:
        exprs["rf"] = rf_row.rf[0 if len(rf_row.rf) < 3 else -2].size  # H (2-D, 3-D) or L (1-D)
        if len(rf_row.rf) != 2:
            rf_axes = ("l",) if len(rf_row.rf) == 1 else ("d", "h", "w")
            for axis, field_ in zip(rf_axes, rf_row.rf):
                exprs["rf_" + axis] = field_.size
    # validity: every spatial output at least 1 (the same forms, compiled); each distinct form once,
    # under the first layer that has it (the first layer found below 1 is the same)
    forms: dict = {}
    for r in report.rows:
        for d in r.shape:
            if is_symbolic(d) and d not in forms:
                forms[d] = r.name
    # the work: every point evaluates each compiled form, node by node; counted before compiling
    nodes = 0
    for e in (*exprs.values(), *forms):
        nodes += _nodes(e, MAX_SWEEP_WORK + 1 - nodes)
        if nodes > MAX_SWEEP_WORK:
            break
    if nodes * len(values) > MAX_SWEEP_WORK:
        raise UsageError(
            f"the sweep evaluates {len(values):,} points x {nodes:,} closed-form terms "
            f"({len(values) * nodes:,}), above the limit of {MAX_SWEEP_WORK:,}",
            hint="sweep fewer points (a larger step)", where=Where(file=net.file) if net.file else None,
        )
    fns = {m: compile_expr(e, names) for m, e in exprs.items()}
    checks = [(name, compile_expr(d, names)) for d, name in forms.items()]
    points, invalid = [], []
    for v in values:
        env = {n: v for n in names}
        bad = next((name for name, f in checks if f(env) < 1), None)
        if bad is not None:
            points.append(None)
            invalid.append(f"layer '{bad}' would have an output below 1")
            continue
        point = {m: f(env) for m, f in fns.items()}
        point.setdefault("rf", None)  # no layer whose map depends on the swept size has a known field
        points.append(point)
        invalid.append(None)
    return Sweep(report.name, tuple(names), list(values), points, invalid, rf_row.name if rf_row else None, rf_axes)


def _nodes(expr, cap) -> int:
    """The nodes of an expression's tree (what a compiled evaluator visits), counting at most to ``cap``."""
    if not is_symbolic(expr):
        return 1
    n, stack = 0, [expr]
    while stack and n < cap:
        e = stack.pop()
        n += 1
        stack.extend(e.args)
    return n


def parse_sweep(items) -> tuple:
    """'H=96:512:32' or 'H,W=224,256' -> (('H',), [96, ...]); exactly one sweep per run."""
    import re

    from ..errors import plain
    from .solve import parse_range

    found = []
    for item in items or []:
        m = re.fullmatch(r"\s*([A-Za-z_][A-Za-z_0-9]{0,63}(?:\s*,\s*[A-Za-z_][A-Za-z_0-9]{0,63})*)\s*=\s*(\S+)\s*", item)
        if not m:
            raise UsageError(f"--set {plain(item)}: expected NAME=LO:HI[:STEP] or NAME=V1,V2,... (several names: H,W=...)")
        try:
            values = parse_range(m.group(2))
        except ValueError:
            raise UsageError(f"--set {plain(item)}: expected LO:HI[:STEP] or a list of positive integers, at most 10,000 points") from None
        names = tuple(n.strip() for n in m.group(1).split(","))
        found.append((names, values))
    if len(found) != 1:
        raise UsageError("sweep takes exactly one --set NAME=LO:HI[:STEP]", hint="e.g. --set H,W=96:512:32")
    return found[0]


def check_names(net_symbols, names):
    for n in names:
        if n not in net_symbols:
            raise SpecError(f"the spec has no symbol '{n}' to sweep", None,
                            "declared: " + ", ".join(sorted(net_symbols)) if net_symbols else "it declares no symbols")
