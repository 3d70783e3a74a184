"""``archcalc explain``: every number of a layer (or a network) with its working.

Each formula is written out with the layer's own numbers substituted, then evaluated, and the
result is checked against the engine's (the two are computed independently here: a difference
would be a bug, and is printed as one rather than hidden). Symbolic sizes stay symbols. Where a
paper or lecture prints a figure that the layers do not give, the arithmetic of the difference
follows (the same errata as docs/zoo.md, computed from the report rather than typed in).

Pure text out: lists of lines, no printing.
"""

from __future__ import annotations


from ..analysis.engine import DTYPES, RF, Report
from ..expr import as_int, is_symbolic
from ..layers import Count, PadCopy, Resample, Stack, Text, WindowSizes, lookup, prod
from .report import dim_text, exact, rf_text, shape_text, share
from .textout import plain


def _n(v) -> str:
    """A size inside a formula: 224, or (H/2) for a symbolic one."""
    return dim_text(v)


def _x(v) -> str:
    """A result: 1,792, or the closed form."""
    return exact(v)


def _pct(part, total) -> str:
    f = share(part, total)
    if f is None:
        return ""
    return f" ({100 * f:.3g}%)" if f >= 0.001 else f" ({100 * f:.2g}%)"


def _eq(a, b) -> bool:
    if is_symbolic(a) or is_symbolic(b):
        from ..expr import equal

        return equal(a, b)
    return as_int(a) == as_int(b)


def _check(lines, computed, engine, what):
    if not _eq(computed, engine):
        lines.append(f"  ! the engine has {_x(engine)} for {what}: please report this difference")


# --------------------------------------------------------------------------- one layer


def spec_path(file: str) -> str:
    """A spec's file as the user knows it: relative to the working directory, or the zoo's name."""
    from pathlib import Path

    p = Path(file)
    try:
        return str(p.resolve().relative_to(Path.cwd().resolve()))
    except (ValueError, OSError):
        pass
    try:
        from ..spec import zoo

        if p.resolve().parent == zoo.specs_dir().resolve():
            return f"the zoo's {p.name}"
    except Exception:  # noqa: BLE001 - a display nicety, never an error
        pass
    return file


def _axis_size(lines, axis_name, size, k, d, s, before, after, out, ceil=False):
    """out = floor((I + P_before + P_after - D*(K-1) - 1) / S) + 1, written out."""
    inner = f"{_n(size)} + {_n(before)} + {_n(after)} - {_n(d)}*({_n(k)}-1) - 1"
    if any(is_symbolic(v) for v in (size, k, d, s, before, after)):
        rnd = "ceil" if ceil else "floor"
        lines.append(f"  {axis_name}: {rnd}(({inner})/{_n(s)}) + 1 = {_n(out)}")
        return
    span = size + before + after - d * (k - 1) - 1
    q, r = divmod(span, s)
    if r == 0:
        lines.append(f"  {axis_name}: ({inner})/{s} + 1 = {q + 1}")
        val = q + 1
    else:
        rnd = "ceil" if ceil else "floor"
        val = (-(-span // s) if ceil else q) + 1
        lines.append(f"  {axis_name}: {rnd}(({inner})/{s}) + 1 = {rnd}({span}/{s}) + 1 = {val - 1} + 1 = {val}"
                     f"   ({span}/{s} = {span / s:g} is not a whole number)")
    if ceil and val != out:
        lines.append(f"  {axis_name}: the last window would start in the trailing padding: PyTorch drops it, {out}")
    elif val != out:
        lines.append(f"  ! the engine has {out}: please report this difference")


def _axes(n):
    """(axis, name) of each spatial axis: H, W (2-D); L (1-D); D, H, W (3-D)."""
    return tuple(enumerate({1: ("L",), 2: ("H", "W"), 3: ("D", "H", "W")}[n]))


def _rf_lines(lines, prev, win, rf):
    """r' = r + (k-1)*j, j' = j*s, p' = p + P_before*j, per axis."""
    for axis, name in _axes(len(prev)):
        a, w = prev[axis], win[axis]
        r = as_int(a.size + (w.k - 1) * a.stride)
        j = as_int(a.stride * w.s)
        p = as_int(a.padding + w.before * a.stride)
        lines.append(f"  {name}: r = {_n(a.size)} + ({_n(w.k)}-1)*{_n(a.stride)} = {_x(r)}; "
                     f"j = {_n(a.stride)}*{_n(w.s)} = {_x(j)}; p = {_n(a.padding)} + {_n(w.before)}*{_n(a.stride)} = {_x(p)}")
        if axis == 0 and len(prev) == 2 and prev[0] == prev[1] and win[0] == win[1]:
            lines.append("  W: the same")
            break
    lines.append(f"  receptive field {rf_text(rf)} (size/stride/padding)")


def _position_lines(lines, rf):
    """Position 0's field and the widest size, per axis, as the engine worked them out."""
    for axis, name in _axes(len(rf)):
        a = rf[axis]
        first, last = a.at(0)
        lines.append(f"  {name}: position 0 reads {_n(first)} .. {_n(last)}, so p = {_x(a.padding)}; "
                     f"the widest position reads r = {_x(a.size)}; j = {_x(a.stride)}")
        if axis == 0 and len(rf) == 2 and rf[0] == rf[1] and rf[0].at(0) == rf[1].at(0):
            lines.append("  W: the same")
            break
    lines.append(f"  receptive field {rf_text(rf)} (size/stride/padding)")


def _affine(s, a) -> str:
    """s*o + a as people write it: 1/2*o - 1/2, o + 3, 2*o."""
    head = "o" if not is_symbolic(s) and s == 1 else f"{_n(s)}*o"
    if is_symbolic(a):
        return f"{head} + {_n(a)}"
    return head if a == 0 else f"{head} + {_n(a)}" if a > 0 else f"{head} - {_n(-a)}"


def _resample_lines(lines, win, rf):
    """first(o) = floor|ceil(s*o + a), last(o) = floor|ceil(s*o + b), per axis."""
    for axis, name in _axes(len(win)):
        w = win[axis]
        first = f"{'ceil' if w.a_up else 'floor'}({_affine(w.s, w.a)})"
        last = f"{'ceil' if w.b_up else 'floor'}({_affine(w.s, w.b)})"
        lines.append(f"  {name}: first(o) = {first}, last(o) = {last}")
        if axis == 0 and len(win) == 2 and win[0] == win[1]:
            lines.append("  W: the same")
            break
    lines.append(f"  receptive field {rf_text(rf)} (size/stride/padding)")


def _saves_text(what, xs, y, nbytes):
    parts = []
    for w in what:
        if w == "input":
            parts.append(f"its input ({shape_text(xs[0])})")
        elif w == "output":
            parts.append(f"its output ({shape_text(y)})")
        elif w == "input_copy":
            parts.append("a private copy of its input (it runs in place)")
        elif w == "indices":
            parts.append(f"int64 indices, 8 bytes x {_x(prod(y))} = {_x(as_int(8 * prod(y)))} bytes")
        elif w == "mask":
            parts.append(f"a one-byte mask per element, {_x(prod(y))} bytes")
    return ", ".join(parts)


def _fill(text: Text) -> str:
    """A type's line with its sizes written as the report writes them."""
    return text.template.format(*(shape_text(v) if isinstance(v, tuple) else _n(v) for v in text.values))


def _window_size_lines(lines, w: WindowSizes):
    """A sliding window's output size, per axis (H and W together where they agree)."""
    names = {1: ("L",), 2: ("H", "W"), 3: ("D", "H", "W")}[len(w.size)]
    if w.padding == "same":
        lines.append("output size: padding 'same' (TensorFlow's rule): out = ceil(I / S), total padding "
                     "max((out - 1)*S + D*(K-1) + 1 - I, 0), the odd pixel after")
        for ax, name in enumerate(names):
            lines.append(f"  {name}: ceil({_n(w.size[ax])}/{_n(w.stride[ax])}) = {_n(w.out[ax])}; padding "
                         f"{_n(w.before[ax])} before, {_n(w.after[ax])} after")
    elif len(w.size) != 2:
        lines.append("output size: out = floor((I + P_before + P_after - D*(K-1) - 1)/S) + 1"
                     + (" (ceil with ceil_mode)" if w.ceil else ""))
        k, d, s = w.kernel, w.dilation, w.stride
        axes = [(w.size[i], k[i], d[i], s[i], w.padding[2 * i], w.padding[2 * i + 1]) for i in range(len(names))]
        if len(set(axes)) == 1:
            _axis_size(lines, ", ".join(names), *axes[0], w.out[0], w.ceil)
        else:
            for i, name in enumerate(names):
                _axis_size(lines, name, *axes[i], w.out[i], w.ceil)
    else:
        lines.append("output size: out = floor((I + P_before + P_after - D*(K-1) - 1)/S) + 1"
                     + (" (ceil with ceil_mode)" if w.ceil else ""))
        t_, b_, l_, r_ = w.padding
        k, d, s = w.kernel, w.dilation, w.stride
        same_axes = (w.size[0], k[0], d[0], s[0], t_, b_) == (w.size[1], k[1], d[1], s[1], l_, r_)
        _axis_size(lines, "H" if not same_axes else "H, W", w.size[0], k[0], d[0], s[0], t_, b_, w.out[0], w.ceil)
        if not same_axes:
            _axis_size(lines, "W", w.size[1], k[1], d[1], s[1], l_, r_, w.out[1], w.ceil)
    if w.channels is not None:
        lines.append(_fill(w.channels))


def _heading(c: Count) -> str:
    """A count's formula in its factors' names: 'C_out * (C_in/groups) * K_h * K_w + C_out (bias)'."""
    text = " + ".join(" * ".join(f.name for f in t.factors) + (f" ({t.note})" if t.note else "") for t in c.terms)
    return (text or "0") + (f" ({c.note})" if c.note else "")


def _factor(f) -> str:
    return _n(f.value) if f.over is None else f"({_n(f.value)}/{_n(f.over)})"


def _working(c: Count) -> str:
    """The formula with the layer's numbers: '64 * (3/1) * 3 * 3 + 64'; '' for no terms."""
    return " + ".join(" * ".join(_factor(f) for f in t.factors) for t in c.terms)


def _count_lines(what: str, c: Count, engine) -> list[str]:
    """'params: <formula>' and its working, evaluated from the same factors and checked against the
    engine's count; one line where the formula is a product of at most two factors."""
    value = c.value
    tail = "; not params" if what == "buffers" else ""
    if not c.terms:
        note = c.note or ("only conv and linear layers count" if what == "MACs" else "")
        lines = [f"{what}: 0" + (f" ({note})" if note else "") + tail]
    else:
        working = _working(c)
        lone = len(c.terms) == 1 and len(c.terms[0].factors) == 1 and c.terms[0].factors[0].over is None
        steps = [] if lone else [working]
        if len(c.terms) > 1:
            steps.append(" + ".join(_factor(t.factors[0]) if len(t.factors) == 1 else _x(t.value) for t in c.terms))
        steps.append(_x(value))
        if len(c.terms) == 1 and len(c.terms[0].factors) <= 2:
            lines = [f"{what}: {_heading(c)} = " + " = ".join(steps) + tail]
        else:
            lines = [f"{what}: {_heading(c)}", "  " + " = ".join(steps) + tail]
    _check(lines, value, engine, what)
    return lines


def explain_layer(net, report: Report, index: int) -> list[str]:
    """The working of row ``index`` (its formulas with numbers substituted)."""
    node = net.nodes[index]
    row = report.rows[index]
    lt = lookup(node.type)
    a = node.args
    shapes = {-1: tuple(net.input)}
    shapes.update({i: r.shape for i, r in enumerate(report.rows)})
    xs = [shapes[j] for j in node.inputs]
    y = row.shape
    src = [("input" if j < 0 else plain(net.nodes[j].name)) for j in node.inputs]
    where = f"line {row.line}" if row.line else ""
    det = lt.details(a, xs, y)
    lines = [f"{plain(row.name)}: {node.type}{(' ' + det) if det else ''}"
             + (f" ({where} of {plain(spec_path(net.file))})" if where and net.file else ""),
             f"input {', '.join(shape_text(x) for x in xs)} (from {', '.join(src)}), output {shape_text(y)}"]
    if row.aux:
        lines.append("an auxiliary head: its MACs are not in the inference total (macs_aux)")
    if not row.trainable:
        lines.append("frozen (trainable: false): its parameters count as frozen, not trainable")
    nbytes = DTYPES[report.dtype]
    t = report.totals

    # -- shape
    lines.append("")
    win = lt.window(a, xs, y)
    size = lt.size_formula(a, xs, y)
    if isinstance(size, WindowSizes):
        _window_size_lines(lines, size)
    else:
        lines.append(_fill(size))

    # -- params, buffers, MACs: the type's named factors, worked and checked against the engine
    lines.append("")
    counts = lt.formula(a, xs, y)
    lines += _count_lines("params", counts.params, row.params)
    if counts.buffers.terms or row.buffers:
        lines += _count_lines("buffers", counts.buffers, row.buffers)
    lines += _count_lines("MACs", counts.macs, row.macs)

    # -- receptive field
    lines.append("")
    prev = report.rows[node.inputs[0]].rf if node.inputs and node.inputs[0] >= 0 else (
        tuple(RF(1, 1, 0) for _ in net.input[1:]) if len(net.input) > 1 else None)
    if lt.narrows_channels and len(row.shape) > 1:
        # a slice keeps some channels, a pixel shuffle's position reads one phase's channels: their
        # own fields, worked out back to the nearest layer that mixes every channel
        what = "receptive field of the channels each output position reads (docs/conventions.md, 'Channels')"
        if row.rf is None:
            lines.append(f"{what}: unknown (the sizes are symbols, or a pixel shuffle's phases read rows that a "
                         "later window could tell apart, or the channels' layers go back further than archcalc "
                         "follows)")
        elif all(a.size == 0 for a in row.rf):
            lines.append(f"{what}: none, these channels read no input (zeros that padding added), {rf_text(row.rf)}")
        else:
            lines.append(f"{what}: {rf_text(row.rf)}")
    elif row.rf is None and len(row.shape) > 1:
        lines.append("receptive field: unknown (it depends on the output position and the sizes are symbols: "
                     "give them values for the exact field)")
    elif row.rf is None:
        lines.append("receptive field: none (a flat vector that was never spatial)")
    elif lt.joins and isinstance(win, tuple) and any(isinstance(w, Stack) for w in win):
        lines.append("receptive field: each position on the axis the branches are stacked along is the field of the "
                     f"branch it comes from, at its position there; the other axis the branches' union, {rf_text(row.rf)}")
    elif lt.joins:
        lines.append(f"receptive field: the largest of the branches', {rf_text(row.rf)}")
    elif isinstance(win, tuple) and prev is not None and any(isinstance(w, Resample) for w in win):
        lines.append("receptive field of a resampling layer: output position o reads input positions "
                     "first(o) .. last(o), an exact window per axis; the field is the widest over all positions")
        _resample_lines(lines, win, row.rf)
    elif isinstance(win, tuple) and prev is not None and (not all(a.affine for a in prev)
                                                          or any(isinstance(w, PadCopy) for w in win)):
        if any(isinstance(w, PadCopy) for w in win):
            lines.append("its padding copies input positions (reflect, replicate or circular): a position whose "
                         "window reads the padding reads the positions copied there")
        lines.append("receptive field position by position (the input's field depends on the position): output "
                     "position o reads input positions o*s - P_before .. o*s - P_before + k - 1, padding positions "
                     "with the field their layer extends to them; r is the widest position's, p minus position 0's "
                     "first")
        _position_lines(lines, row.rf)
    elif isinstance(win, tuple) and prev is not None:
        lines.append("receptive field (Araujo et al. 2019): r' = r + (k-1)*j, j' = j*s, p' = p + P_before*j, from "
                     f"the input's {rf_text(prev)}")
        _rf_lines(lines, prev, win, row.rf)
    elif win == "global":
        lines.append(f"receptive field: a window over the whole map, {rf_text(row.rf)}")
    else:
        lines.append(f"receptive field: unchanged (a pointwise layer), {rf_text(row.rf)}")

    # -- memory
    lines.append("")
    if row.values:
        lines.append(f"activations: {' * '.join(_n(v) for v in y)} = {_x(row.values)} values x {nbytes} bytes "
                     f"({report.dtype}) = {_x(as_int(row.values * nbytes))} bytes")
    else:
        lines.append("activations: 0 new values (it works in place or is a view)")
    kept = lt.saves(a, True)
    if kept:
        lines.append(f"backward keeps {_saves_text(kept, xs, y, nbytes)} (each tensor counted once in the total)")
    else:
        lines.append("backward keeps nothing of its own")

    # -- into the totals
    lines.append("")
    lines.append("into the totals:")
    lines.append(f"  params {_x(row.params)} of {_x(t['params'])}{_pct(row.params, t['params'])}")
    if row.aux:
        lines.append(f"  MACs {_x(row.macs)} of the aux heads' {_x(t['macs_aux'])}")
    else:
        lines.append(f"  MACs {_x(row.macs)} of {_x(t['macs'])}{_pct(row.macs, t['macs'])}")
        lines.append(f"  activations {_x(row.values)} of {_x(t['activations'])}{_pct(row.values, t['activations'])}")
    for w in row.warnings:
        lines.append(f"warning: {plain(w)}")
    return lines


# --------------------------------------------------------------------------- a network


def explain_network(net, report: Report) -> list[str]:
    """How the totals add up: every layer with params or MACs, its formula with numbers, the sums;
    then the printed figures that differ, with their arithmetic."""
    t = report.totals
    title = plain(report.name) + (f" — {plain(report.title)}" if report.title else "")
    lines = [title, f"input {shape_text(report.input)}, {report.dtype}", ""]
    shapes = {-1: tuple(net.input)}
    shapes.update({i: r.shape for i, r in enumerate(report.rows)})
    worked, legend = [], {}
    p_sum, m_sum = 0, 0
    for i, (node, row) in enumerate(zip(net.nodes, report.rows)):
        if not row.params and not row.macs:
            continue
        lt = lookup(node.type)
        counts = lt.formula(node.args, [shapes[j] for j in node.inputs], row.shape)
        for key, c in (("params", counts.params), ("macs", counts.macs)):
            seen = legend.setdefault(lt.name, {"params": [], "macs": []})[key]
            if c.terms and _heading(c) not in seen:
                seen.append(_heading(c))
        per, mac = _working(counts.params) or "0", _working(counts.macs) or "0"
        tag = " (aux)" if row.aux else ""
        worked.append(f"  {plain(row.name)}{tag}: params {per} = {_x(row.params)}; MACs {mac} = {_x(row.macs)}")
        p_sum = p_sum + row.params
        if not row.aux:
            m_sum = m_sum + row.macs
    lines.append("params and MACs of each layer that has any ("
                 + "; ".join(f"{name}: {' or '.join(h['params']) or '0'}"
                             + (f"; MACs {' or '.join(h['macs'])}" if h["macs"] else "") for name, h in legend.items())
                 + "):")
    lines += worked
    lines.append(f"  sum: params {_x(as_int(p_sum))}, MACs {_x(as_int(m_sum))}"
                 + (f" (aux heads' MACs {_x(t['macs_aux'])} apart)" if t["macs_aux"] else ""))
    if not _eq(as_int(p_sum) * t.get("ensemble", 1), t["params"]):
        lines.append(f"  ! the engine's total is {_x(t['params'])}: please report this difference")
    lines.append("")
    lines.append(f"activations / image: the input {shape_text(report.input)} plus every new tensor = "
                 f"{_x(t['activations'])} values x {DTYPES[report.dtype]} bytes = {_x(t['activation_bytes'])} bytes")
    last = next((r for r in reversed(report.rows) if r.rf is not None and not r.aux), None)
    if last is not None:
        lines.append(f"receptive field at {plain(last.name)}: {rf_text(last.rf)} (size/stride/padding); "
                     f"'archcalc explain {plain(report.name)} LAYER' works one layer through")
    claims = getattr(net, "claims", ())
    if claims:
        from ..spec.claims import compare

        compared = compare(claims, report)
        if not compared:
            lines += ["", f"{len(claims)} printed figure(s) in the spec: compared at concrete sizes only"]
        for cmp in compared:
            lines += ["", f"printed: {plain(cmp.claim.printed)} ({plain(cmp.claim.source)})"]
            lines += _claim_lines(cmp)
    return lines


# --------------------------------------------------------------------------- printed figures


def _digits(v) -> str:
    return f"{v:,}" if isinstance(v, int) else str(v)


def _agree_text(how: str, actual, c) -> str:
    if how == "equal":
        return f"equals the printed {c.value}"
    if how == "rounds":
        return f"rounds to the printed {c.value}"
    if how == "cut":
        return f"is the printed {c.value} cut, not rounded, to its digits"
    return ""


def _claim_lines(cmp) -> list[str]:
    """A printed figure against the layers: computed comparisons only (archcalc.spec.claims)."""
    c = cmp.claim
    of = cmp.of
    shown = of.text if of.worked == of.text else f"{of.text} = {of.worked}"
    head = f"  the layers: {shown}" + ("" if of.worked == _digits(of.value) else f" = {_digits(of.value)}")
    if cmp.agrees:
        lines = [f"{head}: {_agree_text(cmp.agrees, of.value, c)}"]
    else:
        diff = of.value - cmp.printed_value
        more = "less" if diff > 0 else "more"
        printed = c.value if c.value == _digits(cmp.printed_value) else f"{c.value} = {_digits(cmp.printed_value)}"
        rel = f": the printed figure is {abs(diff) / of.value * 100:.3g}% {more}" if of.value else ""
        lines = [f"{head}; printed {printed}: differs by {_digits(abs(diff))}{rel}"]
    show_why = bool(c.why) and (bool(cmp.reproduce_agrees) if cmp.reproduce is not None else not cmp.agrees)
    if cmp.reproduce is not None:
        r = cmp.reproduce
        text = f"  {r.text} = {r.worked}" + ("" if r.worked == _digits(r.value) else f" = {_digits(r.value)}")
        if cmp.reproduce_agrees:
            lines.append(f"{text}: {_agree_text(cmp.reproduce_agrees, r.value, c)}")
        else:
            lines.append(f"{text}: does not give the printed {c.value} either")
    if show_why:
        lines.append(f"  why: {plain(c.why)}")
    return lines


