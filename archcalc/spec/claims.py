"""Printed figures as spec data: a number a paper or lecture prints, compared with the layers.

A spec may list ``claims:``; each is a figure as printed, its source, the printed number, the
spec's own figure it stands for (an expression over the totals and the rows), and optionally an
expression that reproduces the printed number (how the printed figure was probably made) with a
``why`` shown only when that expression agrees with the printed number::

    claims:
      - printed: '"358M ops"'
        source: CS231n 2017, lecture 9
        value: 358M
        of: macs
        reproduce: macs + rows["b3x3.conv2"].macs
        why: the 3x3 conv's term is counted twice

Expressions use archcalc's whitelisted evaluator (:mod:`archcalc.expr`) with three kinds of name:
a total (``params``, ``buffers``, ``macs``, ``activations``, ``activation_bytes``), a row's figure
``rows["LAYER"].FIELD`` and the sum over a layer type ``layers["TYPE"].FIELD`` (FIELD one of
params, buffers, macs, activations, channels, height, width). Nothing here knows a network: the
comparison is computed from whatever spec and input it is given (:func:`compare` returns data;
:mod:`archcalc.output.explain` words it).

>>> claim_expr('macs + rows["b3x3.conv2"].macs').refs
(('rows', 'b3x3.conv2', 'macs'),)
>>> agreement(357_761_024, "358M")
'rounds'
>>> agreement(3_864_000_000, "3.8G")
'cut'
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass
from decimal import Decimal
from fractions import Fraction

from ..errors import SpecError, Where, did_you_mean, short
from ..expr import ExprError, _check, evaluate
from ..limits import MAX_EXPR_CHARS, MAX_EXPR_NODES

TOTALS = ("params", "buffers", "macs", "activations", "activation_bytes")
FIELDS = ("params", "buffers", "macs", "activations", "channels", "height", "width")
KEYS = ("printed", "source", "value", "of", "reproduce", "why")
MAX_CLAIMS = 50
_VALUE = re.compile(r"\s*([0-9]{1,24})(?:\.([0-9]{1,12}))?\s*([KMGT]?)\s*", re.IGNORECASE)
_SCALE = {"": 1, "K": 10**3, "M": 10**6, "G": 10**9, "T": 10**12}


@dataclass(frozen=True, slots=True)
class ClaimExpr:
    text: str
    tree: ast.expr  # refs replaced by names __ref0, __ref1, ...
    refs: tuple  # (kind, key, field) per __refK


@dataclass(frozen=True, slots=True)
class Claim:
    printed: str
    source: str
    value: str  # the printed number as written: its digits give its precision
    of: ClaimExpr
    reproduce: ClaimExpr | None
    why: str
    line: int | None


@dataclass(frozen=True, slots=True)
class Term:
    """One evaluated expression: its text, the text with every name's value in place, the value."""

    text: str
    worked: str
    value: object


@dataclass(frozen=True, slots=True)
class Comparison:
    """A claim compared with the layers: ``agrees`` is 'equal', 'rounds' (equal at the printed
    precision), 'cut' (equal when cut, not rounded, to the printed digits) or '' (differs)."""

    claim: Claim
    printed_value: int | Fraction
    unit: int | Fraction  # the printed number's last digit's place
    of: Term
    agrees: str
    reproduce: Term | None
    reproduce_agrees: str


def printed_number(text: str) -> tuple:
    """(value, unit of the last printed digit) of '358M', '1.5G', '24M', '55'.

    >>> printed_number("1.5G")
    (1500000000, 100000000)
    """
    m = _VALUE.fullmatch(str(text))
    if not m:
        raise ValueError(text)
    whole, frac, suffix = m.group(1), m.group(2) or "", m.group(3).upper()
    scale = _SCALE[suffix]
    value = Decimal(f"{whole}.{frac or '0'}") * scale
    unit = Decimal(1).scaleb(-len(frac)) * scale
    as_q = lambda d: int(d) if d == int(d) else Fraction(d)  # noqa: E731
    return as_q(value), as_q(unit)


def agreement(actual, printed: str) -> str:
    """How ``actual`` agrees with the printed number: 'equal', 'rounds', 'cut' or ''."""
    value, unit = printed_number(printed)
    if actual == value:
        return "equal"
    q = Fraction(actual) / Fraction(unit)
    if Fraction(value) / Fraction(unit) == int(q + Fraction(1, 2)):  # half up, as people round
        return "rounds"
    if Fraction(value) / Fraction(unit) == int(q):
        return "cut"
    return ""


def claim_expr(text) -> ClaimExpr:
    """Parse a claim's expression: the size-expression whitelist plus ``rows["L"].F`` and
    ``layers["T"].F`` references (which become plain names before the whitelist check)."""
    if not isinstance(text, str) or not text.strip():
        raise ExprError(f"expected an expression, got {short(text)}")
    if len(text) > MAX_EXPR_CHARS:
        raise ExprError(f"expression of {len(text)} characters is longer than the limit of {MAX_EXPR_CHARS}")
    if not text.isascii() or not text.isprintable():
        raise ExprError(f"{short(text)} holds a character that is not printable ASCII")
    try:
        tree = ast.parse(text.strip(), mode="eval")
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        raise ExprError(f"cannot parse expression {short(text)}") from None
    count = sum(1 for _ in ast.walk(tree))
    if count > MAX_EXPR_NODES:
        raise ExprError(f"expression {short(text)} has more than {MAX_EXPR_NODES} parts")
    refs: list = []

    class _Refs(ast.NodeTransformer):
        def visit_Attribute(self, node):
            sub = node.value
            if (isinstance(sub, ast.Subscript) and isinstance(sub.value, ast.Name)
                    and sub.value.id in ("rows", "layers") and isinstance(sub.slice, ast.Constant)
                    and isinstance(sub.slice.value, str)):
                if node.attr not in FIELDS:
                    raise ExprError(f"{short(text)}: no field '{node.attr}' (fields: {', '.join(FIELDS)})")
                refs.append((sub.value.id, sub.slice.value, node.attr))
                return ast.copy_location(ast.Name(id=f"__ref{len(refs) - 1}", ctx=ast.Load()), node)
            raise ExprError(f"{short(text)}: only rows[\"LAYER\"].FIELD and layers[\"TYPE\"].FIELD may use '.'")

    body = _Refs().visit(tree).body
    _check(body, text)
    for n in ast.walk(body):
        if isinstance(n, ast.Name) and not n.id.startswith("__ref") and n.id not in TOTALS:
            raise ExprError(f"{short(text)}: unknown name '{n.id}'; names are the totals {', '.join(TOTALS)}, "
                            "rows[\"LAYER\"].FIELD and layers[\"TYPE\"].FIELD")
    return ClaimExpr(text.strip(), body, tuple(refs))


def read(raw, file: str, line: int | None, layer_names, layer_types) -> tuple:
    """The ``claims:`` list of a spec, validated (layer names and types must exist)."""
    from .yamlio import LList, LMap

    if raw is None:
        return ()
    if not isinstance(raw, LList):
        raise SpecError("'claims' is a list of printed figures", Where(file=file, line=line),
                        "each item: {printed: TEXT, source: TEXT, value: 358M, of: EXPR}")
    if len(raw) > MAX_CLAIMS:
        raise SpecError(f"'claims' lists {len(raw)} items; at most {MAX_CLAIMS}", Where(file=file, line=line))
    out = []
    for i, item in enumerate(raw):
        iline = raw.lines[i] if i < len(raw.lines) else line
        where = Where(file=file, line=iline, path=f"claims[{i}]")
        if not isinstance(item, LMap):
            raise SpecError("a claim is a mapping", where, "keys: " + ", ".join(KEYS))
        for key in item:
            if key not in KEYS:
                raise SpecError(f"unknown key {short(key)}", Where(file=file, line=item.lines[key], path=f"claims[{i}]"),
                                did_you_mean(str(key), KEYS) or "keys: " + ", ".join(KEYS))
        for key in ("printed", "source", "value", "of"):
            if key not in item:
                raise SpecError(f"missing key '{key}'", where)
        text = {}
        for key in ("printed", "source", "why"):
            value = item.get(key, "")
            if not isinstance(value, str) or len(value) > 1000 or not value.isprintable():
                raise SpecError(f"'{key}' is one line of printable text", Where(file=file, line=item.lines.get(key, iline), path=f"claims[{i}]"))
            text[key] = value.strip()
        value = item["value"]
        value = str(value) if isinstance(value, int) and not isinstance(value, bool) else value
        try:
            printed_number(value)
        except (ValueError, TypeError):
            raise SpecError(f"'value' is the printed number, like 358M, 1.5G or 55; got {short(value)}",
                            Where(file=file, line=item.lines["value"], path=f"claims[{i}]")) from None
        exprs = {}
        for key in ("of", "reproduce"):
            if key not in item:
                exprs[key] = None
                continue
            kwhere = Where(file=file, line=item.lines[key], path=f"claims[{i}].{key}")
            try:
                e = claim_expr(item[key])
            except ExprError as err:
                raise SpecError(str(err), kwhere) from None
            for kind, name, _ in e.refs:
                known = layer_names if kind == "rows" else layer_types
                if name not in known:
                    what = "layer" if kind == "rows" else "layer type"
                    raise SpecError(f"no {what} {short(name)}", kwhere, did_you_mean(name, known))
            exprs[key] = e
        out.append(Claim(text["printed"], text["source"], value, exprs["of"], exprs["reproduce"], text["why"], iline))
    return tuple(out)


def _field(row, name):
    if name in ("channels", "height", "width"):
        shape = row.shape
        k = ("channels", "height", "width").index(name)
        if k >= len(shape):
            raise ExprError(f"{row.name} has no {name} (its output is {len(shape)}-D)")
        return shape[k]
    return row.values if name == "activations" else getattr(row, name)


def _term(e: ClaimExpr, report) -> Term:
    env = {k: report.totals[k] for k in TOTALS}
    by_name = {r.name: r for r in report.rows}
    for k, (kind, key, field) in enumerate(e.refs):
        if kind == "rows":
            env[f"__ref{k}"] = _field(by_name[key], field)
        else:
            env[f"__ref{k}"] = sum(_field(r, field) for r in report.rows if r.type == key and not r.aux)
    value = evaluate(e.tree, env)

    class _Show(ast.NodeTransformer):
        def visit_Name(self, node):
            v = env.get(node.id)
            return ast.Name(id=f"{v:,}" if isinstance(v, int) else str(v), ctx=ast.Load())

        def visit_Constant(self, node):
            v = node.value
            return ast.Name(id=f"{v:,}" if isinstance(v, int) and abs(v) >= 10_000 else repr(v), ctx=ast.Load())

    worked = ast.unparse(_Show().visit(ast.parse(ast.unparse(e.tree), mode="eval")))
    return Term(e.text, worked, value)


def compare(claims, report) -> list:
    """Each claim compared with a concrete report (closed forms are not compared: []) ."""
    if report.symbolic:
        return []
    out = []
    for c in claims:
        value, unit = printed_number(c.value)
        of = _term(c.of, report)
        rep = _term(c.reproduce, report) if c.reproduce is not None else None
        out.append(Comparison(c, value, unit, of, agreement(of.value, c.value),
                              rep, agreement(rep.value, c.value) if rep is not None else ""))
    return out
