"""A spec's top-level fields besides its layers: text fields, symbols and a family's variants."""

from __future__ import annotations

import re

from ..errors import SpecError, Where, did_you_mean, short
from ..limits import MAX_SIZE
from .yamlio import LMap, load_text


_IDENT = re.compile(r"[A-Za-z_][A-Za-z_0-9]{0,63}")
_MEMBER = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.\-]{0,99}")


def _text_field(value, key, file, line, multiline):
    """A spec's text (name, title, source, notes): no control or format characters (escape
    sequences, bidi overrides), a bounded length; newlines only where text may span lines."""
    import unicodedata

    if not isinstance(value, (str, type(None))):
        raise SpecError(f"'{key}' is text, got {short(value)}", Where(file=file, line=line))
    text = (value or "").strip()
    limit = 20_000 if multiline else 1_000
    if len(text) > limit:
        raise SpecError(f"'{key}' is longer than {limit:,} characters", Where(file=file, line=line))
    for ch in text:
        if ch in "\n\t" and multiline:
            continue
        if unicodedata.category(ch) in ("Cc", "Cf", "Cs", "Co", "Cn"):
            raise SpecError(
                f"'{key}' holds the control character U+{ord(ch):04X}",
                Where(file=file, line=line),
                "spec text is shown in terminals and reports: only printable characters" + (", newlines and tabs" if multiline else ""),
            )
    return text


def _number(value, what, where):
    """A symbol value: a positive integer, or an exact rational from a decimal (width: 1.2 is 6/5)."""
    from fractions import Fraction

    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise SpecError(f"{what} must be a positive number or null, got {short(value)}", where)
    if isinstance(value, float):
        import math

        if not math.isfinite(value):
            raise SpecError(f"{what} must be a finite number, got {short(value)}", where)
        value = Fraction(repr(value))
        if value.denominator == 1:
            value = int(value)
    if value <= 0 or value > MAX_SIZE:
        raise SpecError(f"{what} must be a number from 1 to {MAX_SIZE:,} (or a positive fraction), got {short(value) if isinstance(value, int) else value}", where)
    return value


def _variants(raw, file, line, symbols):
    if raw is None:
        return {}
    if not isinstance(raw, LMap) or not raw:
        raise SpecError("'variants' maps each member's name to its symbol values, e.g. {net_b3: {width: 1.2}}",
                        Where(file=file, line=line))
    out = {}
    for member, body in raw.items():
        mline = raw.lines[member]
        where = Where(file=file, line=mline, path=f"variants.{member}" if isinstance(member, str) and _MEMBER.fullmatch(member) else "variants")
        if not isinstance(member, str) or not _MEMBER.fullmatch(member):
            raise SpecError(f"variant name {short(member)} is not a plain name (letters, digits, '_', '-', '.')", where)
        if body is None:
            body = LMap()
            body.lines = {}
        if not isinstance(body, LMap):
            raise SpecError(f"variant '{member}' is a mapping of symbol: value", where)
        vals, title = {}, None
        for key, value in body.items():
            kwhere = where.at(line=body.lines.get(key))
            if key == "title":
                title = _text_field(value, "title", file, body.lines.get(key), False)
                continue
            if key not in symbols:
                raise SpecError(f"variant '{member}': the spec has no symbol {short(key)}", kwhere,
                                did_you_mean(str(key), symbols) or ("declared: " + ", ".join(sorted(symbols)) if symbols else None))
            vals[key] = _number(value, f"variant '{member}': {key}", kwhere)
        out[member] = {"values": vals, "title": title, "line": mline}
    return out


def family(text: str, file: str = "<spec>", doc=None) -> dict:
    """The members a spec text declares under ``variants:`` (name -> title), without expanding layers."""
    doc = load_text(text, file) if doc is None else doc
    if not isinstance(doc, LMap) or "variants" not in doc:
        return {}
    symbols = _symbols(doc, file)
    return {k: v["title"] for k, v in _variants(doc["variants"], file, doc.lines["variants"], symbols).items()}


def _symbols(doc, file):
    symbols: dict = {}
    raw_symbols = doc.get("symbols") or LMap()
    if not isinstance(raw_symbols, dict):
        raise SpecError("'symbols' is a mapping of name: default (or null)", Where(file=file, line=doc.lines["symbols"]))
    for name, default in raw_symbols.items():
        line = raw_symbols.lines[name] if isinstance(raw_symbols, LMap) else doc.line
        if not isinstance(name, str) or not _IDENT.fullmatch(name):
            raise SpecError(f"symbol name {short(name)} is not an identifier", Where(file=file, line=line))
        symbols[name] = None if default is None else _number(default, f"symbol '{name}' default", Where(file=file, line=line))
    raw_input = doc.get("input")
    if isinstance(raw_input, list):
        for item in raw_input:
            if isinstance(item, str) and _IDENT.fullmatch(item):
                symbols.setdefault(item, None)
    return symbols
