"""Plain-data views of a Report: the versioned JSON document, row folding, number formats.

No rich, no printing: :mod:`archcalc.render` turns these into text.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from . import JSON_SCHEMA, __version__
from .engine import Report, Row
from .expr import as_int, is_symbolic, simplify

ROW_FIELDS = ("params", "buffers", "macs", "values")


def jsonable(value):
    """Ints stay ints; symbolic sizes become their closed form as text (``27*C**2``)."""
    if isinstance(value, (bool, float, str)) or value is None:
        return value
    if isinstance(value, int):
        return value
    if isinstance(value, (tuple, list)):
        return [jsonable(v) for v in value]
    value = as_int(value)
    if isinstance(value, int):
        return value
    return str(simplify(value))


def rf_dict(rf):
    if rf is None:
        return None
    return {
        axis: {"size": jsonable(a.size), "stride": jsonable(a.stride), "padding": jsonable(a.padding)}
        for axis, a in zip(("h", "w"), rf)
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
        "symbols": {k: report.values.get(k) for k in report.symbols},
        "dtype": report.dtype,
        "batch": jsonable(report.batch),
        "output": jsonable(report.output),
        "totals": {k: jsonable(v) for k, v in t.items()},
        "layers": [
            {
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
                "line": r.line,
                "warnings": list(r.warnings),
            }
            for r in report.rows
        ],
        "warnings": list(report.warnings),
    }


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
        return str(simplify(value))
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
    if value is None:
        return "-"
    if is_symbolic(value):
        return str(simplify(value))
    value = as_int(value)
    return f"{value:,}" if isinstance(value, int) else str(value)


def dim_text(d) -> str:
    if not is_symbolic(d):
        return str(as_int(d))
    text = str(simplify(d))
    return text if text.isidentifier() else f"({text})"


def shape_text(shape) -> str:
    """(64, 56, 56) -> '64x56x56'."""
    return "x".join(dim_text(d) for d in shape)


def rf_text(rf) -> str:
    if rf is None:
        return "-"
    h, w = rf
    if (h.size, h.stride, h.padding) == (w.size, w.stride, w.padding):
        return f"{exact(h.size)}/{exact(h.stride)}/{exact(h.padding)}"
    return f"{exact(h.size)}x{exact(w.size)}/{exact(h.stride)}x{exact(w.stride)}/{exact(h.padding)}x{exact(w.padding)}"


def ratio(a, b) -> str:
    """b / a as text: '3.15x'; for symbolic sizes the exact quotient, '49/27 = 1.81x' when it is a
    number."""
    if is_symbolic(a) or is_symbolic(b):
        from .expr import sympy

        q = sympy().simplify(b / a)
        return f"{q} = {float(q):.3g}x" if q.is_number else str(q)
    if a == 0:
        return "-" if b == 0 else "inf"
    return f"{b / a:.3g}x"
