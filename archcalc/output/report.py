"""Plain-data views of a Report: the versioned JSON document, row folding, number formats.

No rich, no printing: :mod:`archcalc.output.render` turns these into text.
"""

from __future__ import annotations

import json
import re
from dataclasses import replace
from json import encoder as json_encoder
from typing import Any

from ..version import JSON_SCHEMA, __version__
from ..analysis.engine import Report, Row
from ..expr import as_int, form, is_symbolic, simplify, text
from ..layers import lookup

ROW_FIELDS = ("params", "buffers", "macs", "values")


def jsonable(value):
    """Ints stay ints; every other number is a string that ``sympy.sympify`` reads exactly: a
    rational that is not whole (an RF stride, a width symbol's value) as ``"4/5"``, a closed form
    in sympy's syntax (``"27*C**2"``, ``"512*ceiling(H/32)"``; docs/json.md)."""
    if isinstance(value, (bool, float, str)) or value is None:
        return value
    if isinstance(value, int):
        return value
    if isinstance(value, (tuple, list)):
        return [jsonable(v) for v in value]
    from fractions import Fraction

    if isinstance(value, Fraction):  # a decimal symbol value (width 1.2) or a rational RF stride
        return value.numerator if value.denominator == 1 else str(value)  # exact: '6/5', '1/3'
    value = as_int(value)
    if isinstance(value, int):
        return value
    return form(simplify(value))


def rf_dict(rf):
    if rf is None:
        return None
    # one entry per spatial axis: h, w (2-D); l (1-D); d, h, w (3-D)
    return {
        axis: {"size": jsonable(a.size), "stride": jsonable(a.stride), "padding": jsonable(a.padding)}
        for axis, a in zip({1: ("l",), 2: ("h", "w"), 3: ("d", "h", "w")}[len(rf)], rf)
    }


def to_dict(report: Report) -> dict:
    """The JSON document (schema 1, documented in docs/json.md)."""
    t = report.totals
    return {
        "archcalc": __version__,
        "schema": JSON_SCHEMA,
        "network": {
            "name": report.name,
            "title": report.title,
            "source": report.source,
            "file": report.file,
        },
        "input": jsonable(report.input),
        "symbols": {k: jsonable(report.values.get(k)) for k in report.symbols},
        "dtype": report.dtype,
        "batch": jsonable(report.batch),
        "output": jsonable(report.output),
        "totals": {**{k: jsonable(v) for k, v in t.items()},
                   **dict(zip(("params_trainable", "params_frozen"), map(jsonable, param_split(report)))),
                   **{f"size_{k}": jsonable(v) for k, v in sizes(report).items()},
                   **{k: jsonable(v) for k, v in _peaks(report).items()}},
        **({"outputs": outputs_list(report)} if report.outputs else {}),
        "layers": _Rows(report.rows),
        "warnings": [str(w) for w in report.warnings],  # findings print their message
    }


def outputs_list(report: Report) -> list:
    """A spec with several outputs (``outputs:``): per output, its layer and the counts of the
    layers it depends on (archcalc.analysis.outputs)."""
    from ..analysis.outputs import per_output

    return [{"name": o.name, "output": jsonable(o.shape), "params": jsonable(o.params), "buffers": jsonable(o.buffers),
             "macs": jsonable(o.macs), "layers": o.layers} for o in per_output(report)]


def _peaks(report: Report) -> dict:
    """Peak memory and training MACs (archcalc.analysis.liveness, docs/memory.md)."""
    from ..analysis.liveness import totals

    return totals(report)


def layer_dict(r: Row) -> dict:
    """One layer of the JSON document."""
    return {
        "name": r.name,
        "type": r.type,
        "inputs": r.inputs,
        "output": jsonable(r.shape),
        "params": jsonable(r.params),
        "buffers": jsonable(r.buffers),
        "macs": jsonable(r.macs),
        "activations": jsonable(r.values),
        "rf": rf_dict(r.rf),
        "aux": r.aux,
        "trainable": r.trainable,
        "line": r.line,
        "warnings": [str(w) for w in r.warnings],
    }


_q = json_encoder.encode_basestring_ascii  # JSON string literal, as json.dumps writes it (C)


def _ints(values) -> bool:
    for v in values:
        if v.__class__ is not int:
            return False
    return True


def layer_line(r: Row, cache: dict | None = None) -> str:
    """One layer of the JSON document as one line: exactly ``json.dumps(layer_dict(r),
    separators=(", ", ": "))``, built directly where every number is a plain int (a 200,000-layer
    document then costs about a microsecond a layer). ``cache`` (a dict the caller keeps while its
    rows live) holds the text of each shape and receptive-field object met, by id: rows share
    them, so each is checked and written once."""
    rf = r.rf
    shape = r.shape
    if cache is not None:
        shape_text = cache.get(id(shape))
        rf_text = cache.get(id(rf))
    else:
        shape_text = rf_text = None
    if rf_text is None:
        if rf is None:
            rf_text = "null"
        elif len(rf) != 2:  # a 1-D or 3-D map: the general writer
            return json.dumps(layer_dict(r), separators=(", ", ": "))
        else:
            h, w = rf
            nums = (h.size, h.stride, h.padding, w.size, w.stride, w.padding)
            if not _ints(nums):
                return json.dumps(layer_dict(r), separators=(", ", ": "))
            rf_text = ('{"h": {"size": %d, "stride": %d, "padding": %d}, "w": {"size": %d, "stride": %d, "padding": %d}}'
                       % nums)
        if cache is not None:
            cache[id(rf)] = rf_text
    if shape_text is None:
        if not _ints(shape):
            return json.dumps(layer_dict(r), separators=(", ", ": "))
        shape_text = ", ".join(map(str, shape))
        if cache is not None:
            cache[id(shape)] = shape_text
    if not (r.params.__class__ is int and r.buffers.__class__ is int and r.macs.__class__ is int
            and r.values.__class__ is int and (r.line is None or r.line.__class__ is int)):
        return json.dumps(layer_dict(r), separators=(", ", ": "))
    inputs = r.inputs
    return ('{"name": %s, "type": %s, "inputs": [%s], "output": [%s], "params": %d, "buffers": %d, "macs": %d, '
            '"activations": %d, "rf": %s, "aux": %s, "trainable": %s, "line": %s, "warnings": [%s]}') % (
        _q(r.name), _q(r.type), _q(inputs[0]) if len(inputs) == 1 else ", ".join(map(_q, inputs)), shape_text,
        r.params, r.buffers, r.macs, r.values, rf_text, "true" if r.aux else "false",
        "true" if r.trainable else "false", "null" if r.line is None else r.line,
        ", ".join([_q(str(w)) for w in r.warnings]) if r.warnings else "")


class _Rows(list):
    """The layers of the JSON document, made one at a time as the encoder reaches them (a 200,000-
    layer network is not held twice in memory). Indexing and len work as on a list."""

    def __init__(self, rows):
        super().__init__()
        self._rows = rows

    def __len__(self):
        return len(self._rows)

    def __bool__(self):
        return bool(self._rows)

    def __iter__(self):
        return (layer_dict(r) for r in self._rows)

    def __getitem__(self, i):
        if isinstance(i, slice):
            return [layer_dict(r) for r in self._rows[i]]
        return layer_dict(self._rows[i])

    def __eq__(self, other):
        return list(self) == list(other)


def fold(rows: list[Row], depth: int | None) -> list[Row]:
    """Merge consecutive rows whose names share the first ``depth`` dotted components into one
    row of type ``block`` (params, buffers, MACs and activations summed; the group's last shape
    and receptive field kept)."""
    if not depth:
        return rows
    out: list[Row] = []
    group = None
    for r in rows:
        parts = r.name.split(".")
        if len(parts) <= depth:
            out.append(r)
            group = None
            continue
        key = ".".join(parts[:depth])
        if group == key:
            g = out[-1]
            g.params = as_int(g.params + r.params)
            g.buffers = as_int(g.buffers + r.buffers)
            g.macs = as_int(g.macs + r.macs)
            g.values = as_int(g.values + r.values)
            if not r.aux:
                g.shape, g.rf = r.shape, r.rf
            g.trainable = g.trainable or r.trainable
            g.warnings = g.warnings + r.warnings
        else:
            out.append(replace(r, name=key, type="block", warnings=list(r.warnings)))
            group = key
    return out


def human(value: Any, unit: str = "") -> str:
    """138357544 -> '138.36M'; symbolic values are shown as their closed form."""
    if value is None:
        return "-"
    if is_symbolic(value):
        return text(simplify(value))
    value = as_int(value)
    if not isinstance(value, int):
        return str(value)
    if unit == "B":
        for name, size in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
            if abs(value) >= size:
                return f"{value / size:.2f} {name}"
        return f"{value} B"
    for name, size in (("T", 10**12), ("G", 10**9), ("M", 10**6), ("K", 10**3)):
        if abs(value) >= size:
            return f"{value / size:.2f}{name}"
    return str(value)


def both(value: Any, unit: str = "") -> str:
    """'138,357,544 (138.36M)'; bytes as '60,950,432 bytes (58.13 MiB)'; a symbolic value once."""
    tail = " bytes" if unit == "B" else ""
    if is_symbolic(value):
        return exact(value) + tail
    return f"{exact(value)}{tail} ({human(value, unit)})"


def exact(value: Any) -> str:
    """138357544 -> '138,357,544'; symbolic values as their closed form."""
    if type(value) is int:  # the fast path (every row of a concrete spec)
        return f"{value:,}"
    if value is None:
        return "-"
    if is_symbolic(value):
        return text(simplify(value))
    value = as_int(value)
    return f"{value:,}" if isinstance(value, int) else str(value)


def dim_text(d) -> str:
    if not is_symbolic(d):
        return str(as_int(d))
    shown = text(simplify(d))
    return shown if shown.isidentifier() or re.fullmatch(r"(ceil|floor)\([^()]*\)", shown) else f"({shown})"


def shape_text(shape) -> str:
    """(64, 56, 56) -> '64x56x56'."""
    if all(type(d) is int for d in shape):
        return "x".join(map(str, shape))
    return "x".join(dim_text(d) for d in shape)


def _rf_text_nd(rf) -> str:
    """A 1-D or 3-D field: size/stride/padding once where every axis agrees, else per axis (DxHxW)."""
    def e(v):
        shown = exact(v)
        return f"({shown})" if "/" in shown or " " in shown else shown

    if len({(a.size, a.stride, a.padding) for a in rf}) == 1:
        a = rf[0]
        return f"{e(a.size)}/{e(a.stride)}/{e(a.padding)}"
    return "/".join("x".join(e(getattr(a, f)) for a in rf) for f in ("size", "stride", "padding"))


def rf_text(rf) -> str:
    if rf is None:
        return "-"
    if len(rf) != 2:
        return _rf_text_nd(rf)
    h, w = rf
    if h is w or (type(h.size) is int and type(h.stride) is int and type(h.padding) is int and h == w):
        return f"{h.size:,}/{h.stride:,}/{h.padding:,}"
    def e(v):  # a rational stride or a closed form with '/' gets parentheses: 212/(32/7)/90
        shown = exact(v)
        return f"({shown})" if "/" in shown or " " in shown else shown

    if (h.size, h.stride, h.padding) == (w.size, w.stride, w.padding):
        return f"{e(h.size)}/{e(h.stride)}/{e(h.padding)}"
    return f"{e(h.size)}x{e(w.size)}/{e(h.stride)}x{e(w.stride)}/{e(h.padding)}x{e(w.padding)}"


def ratio(a, b) -> str:
    """b / a as text: '3.15x'; 'same' when equal; enough digits that a difference never reads as
    '1x'; 'n/a' when a is 0 and b is not (no ratio to a zero). For symbolic sizes the exact
    quotient, '49/27 = 1.81x' when it is a number.

    >>> ratio(1000, 1000), ratio(10000, 10004), ratio(0, 5), ratio(0, 0), ratio(3, 1)
    ('same', '1.0004x', 'n/a', 'same', '0.333x')
    """
    if is_symbolic(a) or is_symbolic(b):
        from ..expr import expand, sympy

        sp = sympy()
        a, b = expand(a), expand(b)  # bounded (limits.MAX_EXPAND_TERMS)
        # bounded: polynomial quotients are cancelled (49*C**2 / (27*C**2) is 49/27), others shown as they are
        q = sp.cancel(b / a) if a.is_polynomial() and b.is_polynomial() else b / a
        if q.is_Integer:
            return f"{q}x"
        return f"{q} = {float(q):.3g}x" if q.is_number else text(q)
    a, b = as_int(a), as_int(b)
    if a == b:
        return "same"
    if a == 0:
        return "n/a"
    q = b / a
    for digits in range(3, 12):
        shown = f"{q:.{digits}g}"
        if float(shown) != 1.0:
            return shown + "x"
    return f"{q!r}x"


# --------------------------------------------------------------------------- torchinfo-style extras


def param_split(report: Report) -> tuple:
    """(trainable, frozen) learnable parameters, x ensemble like the engine's total: a layer is
    frozen when the spec marks it (or a block or repeat around it) ``trainable: false``."""
    frozen = 0
    for r in report.rows:
        if not r.trainable:
            frozen = frozen + r.params
    k = report.totals.get("ensemble", 1)
    frozen = as_int(frozen * k)
    return as_int(report.totals["params"] - frozen), frozen


def share(part, total):
    """part / total as a float in [0, 1], or None (symbolic, or a zero total)."""
    if type(part) is not int or type(total) is not int:
        part, total = as_int(part), as_int(total)
        if not isinstance(part, int) or not isinstance(total, int):
            return None
    return part / total if total else None


def sizes(report: Report) -> dict:
    """torchinfo's size lines, in bytes of the report's dtype: the input (x batch), the
    parameters (and BN buffers), the forward activations (x batch, input included) and their
    total, what inference must at most hold."""
    from ..analysis.engine import DTYPES

    nbytes = DTYPES[report.dtype]
    t = report.totals
    n_in = 1
    for d in report.input:
        n_in = n_in * d
    input_bytes = as_int(n_in * nbytes * report.batch)
    param_bytes = as_int(t["param_bytes"] + t["buffers"] * nbytes)
    act = as_int(t["batch_activation_bytes"])
    return {"input_bytes": input_bytes, "param_bytes": param_bytes, "activation_bytes": act,
            "total_bytes": as_int(act + param_bytes)}


def details(node) -> str:
    """A layer's settings in a few characters ('3x3/2 p1 g=32 d2 nobias', 'p=0.5', '7x7'), as its
    type declares them (LayerType.details); empty when there is nothing to say."""
    return lookup(node.type).details(node.args, None, None)
