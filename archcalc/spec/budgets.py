"""A spec's `budget:` and the amounts it is written in (140M, 16GiB)."""

from __future__ import annotations

import re

from ..errors import SpecError, Where, expected_one_of, short
from .yamlio import LMap


BUDGET_KEYS = ("params", "macs", "activations", "memory", "train_memory", "peak_memory", "train_peak_memory")
MAX_AMOUNT = 10**30  # a budget amount
_SUFFIX = {"": 1, "K": 10**3, "M": 10**6, "G": 10**9, "T": 10**12, "KIB": 2**10, "MIB": 2**20, "GIB": 2**30, "TIB": 2**40}


def parse_amount(text) -> int:
    """'140M' -> 140_000_000; '16GiB' -> 17179869184; plain ints pass through.

    >>> parse_amount("1.5G")
    1500000000
    """
    if isinstance(text, bool):
        raise ValueError(text)
    if isinstance(text, int):
        if not 0 <= text <= MAX_AMOUNT:
            raise ValueError(text)
        return text
    if not isinstance(text, str) or len(text) > 40:
        raise ValueError(text)
    m = re.fullmatch(r"\s*([0-9]{1,24}(?:\.[0-9]{1,12})?)\s*([KMGT]I?B?|B)?\s*", text, re.IGNORECASE)
    if not m:
        raise ValueError(text)
    unit = (m.group(2) or "").upper()
    if unit == "B":
        unit = ""
    if unit.endswith("B") and not unit.endswith("IB"):
        unit = unit[:-1]
    if unit not in _SUFFIX:
        raise ValueError(text)
    from decimal import Decimal

    value = Decimal(m.group(1)) * _SUFFIX[unit]
    if value != int(value) or int(value) > MAX_AMOUNT:
        raise ValueError(text)
    return int(value)


def _budget_source(raw) -> dict:
    """The budget amounts as written, with their lines (for lints on how they are written)."""
    if not isinstance(raw, LMap):
        return {}
    return {k: (v, raw.lines.get(k)) for k, v in raw.items()}


def _budget(raw, file, line):
    if raw is None:
        return {}
    if not isinstance(raw, LMap):
        raise SpecError("'budget' is a mapping such as {params: 140M, macs: 16G}", Where(file=file, line=line))
    out = {}
    for key, value in raw.items():
        kline = raw.lines[key]
        if key not in BUDGET_KEYS:
            raise SpecError(f"unknown budget key {short(key)}", Where(file=file, line=kline, path="budget"), expected_one_of(key, BUDGET_KEYS))
        try:
            out[key] = parse_amount(value)
        except ValueError:
            raise SpecError(
                f"{key}: cannot read {short(value)}",
                Where(file=file, line=kline, path="budget"),
                "write a whole number >= 0 with an optional K, M, G, T (powers of 1000) or KiB, MiB, GiB (powers of 1024)",
            ) from None
    return out
