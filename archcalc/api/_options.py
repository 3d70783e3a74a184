"""The keyword arguments of the Python API (the CLI's options as Python values), checked with
the same rules and one-line messages as the command line's, naming the keyword instead of the
flag. Nothing here imports sympy or torch unless a symbol name asks for sympy."""

from __future__ import annotations

import re
from fractions import Fraction
from typing import Any, Iterable, Mapping, Optional, Sequence, Tuple, Union

from ..errors import UsageError, short
from ..limits import MAX_MULTIPLIER, MAX_SIZE

_NAME = re.compile(r"[A-Za-z_][A-Za-z_0-9]{0,63}")

Shape = Tuple[int, ...]


def _show(value: Any) -> str:
    """A value in a message: a short tuple of numbers as Python writes it, else :func:`short`."""
    if isinstance(value, (tuple, list)) and len(value) <= 8 and all(
            isinstance(v, (int, float)) and len(repr(v)) <= 24 for v in value):
        return repr(tuple(value))
    return short(value)


def _positive_int(value: Any) -> Optional[int]:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value if 0 < value <= MAX_SIZE else None
    if isinstance(value, str) and re.fullmatch(r"\s*[0-9]{1,20}\s*", value):
        return _positive_int(int(value))
    return None


def input_shape(value: Any, what: str = "input") -> Optional[Shape]:
    """``input=``: (C, H, W), (S,) or the CLI's text ``"3x224x224"``; None keeps the spec's."""
    if value is None:
        return None
    parts = re.split(r"[x,]", value.strip().lower()) if isinstance(value, str) else value
    try:
        sizes = [_positive_int(p) for p in parts]
    except TypeError:
        sizes = [None]
    if len(sizes) not in (1, 3) or any(v is None for v in sizes):
        raise UsageError(f"{what}={_show(value)}: expected (C, H, W) with integers from 1 to {MAX_SIZE:,}, e.g. (3, 224, 224)")
    return tuple(int(v or 0) for v in sizes)


def input_size(value: Any) -> Tuple[Optional[int], Optional[Shape]]:
    """torchinfo's ``input_size=(N, C, H, W)`` as (batch, (C, H, W)); (C, H, W) alone keeps the batch."""
    if value is None:
        return None, None
    try:
        sizes = [_positive_int(p) for p in value]
    except TypeError:
        sizes = [None]
    if isinstance(value, str) or len(sizes) not in (3, 4) or any(v is None for v in sizes):
        raise UsageError(f"input_size={_show(value)}: expected (N, C, H, W) or (C, H, W) with integers from 1 to {MAX_SIZE:,}, "
                         "e.g. (1, 3, 224, 224)")
    whole = tuple(int(v or 0) for v in sizes)
    if len(whole) == 4:
        return whole[0], whole[1:]
    return None, whole


def _number(value: Any) -> Union[int, Fraction, None]:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value if 0 < value <= MAX_SIZE else None
    if isinstance(value, float):
        if value != value or value in (float("inf"), float("-inf")):
            return None
        value = Fraction(repr(value)) if "e" not in repr(value) else Fraction(value)
    if isinstance(value, Fraction):
        if not 0 < value <= MAX_SIZE:
            return None
        return int(value) if value.denominator == 1 else value
    if isinstance(value, str):
        text = value.strip()
        if re.fullmatch(r"[0-9]{1,20}", text):
            return _number(int(text))
        if re.fullmatch(r"[0-9]{1,20}\.[0-9]{1,12}", text):
            return _number(Fraction(text))
    return None


def sets(value: Optional[Mapping[str, Any]]) -> dict:
    """``set={"H": 299}``: symbol values (positive integers, or decimals kept exact: 1.4 is 7/5)."""
    out: dict = {}
    if value is None:
        return out
    if not isinstance(value, Mapping):
        raise UsageError(f"set={short(value)}: expected a mapping of symbol names to numbers, e.g. set={{'H': 299}}")
    for name, v in value.items():
        number = _number(v)
        if not isinstance(name, str) or not _NAME.fullmatch(name) or number is None:
            raise UsageError(f"set={{{short(name)}: {short(v)}}}: expected NAME: VALUE with a number VALUE from 1 to "
                             f"{MAX_SIZE:,} (or a positive decimal), e.g. set={{'H': 299}}")
        out[name] = number
    return out


def symbolic(value: Union[str, Iterable[str], None]) -> Tuple[str, ...]:
    """``symbolic=("H", "W")`` (or ``"H,W"``): symbols kept symbolic."""
    if not value:
        return ()
    names = [p.strip() for p in value.split(",")] if isinstance(value, str) else list(value)
    out = []
    for n in names:
        if not isinstance(n, str) or not re.fullmatch(r"[A-Za-z_][A-Za-z_0-9]*", n):
            raise UsageError(f"symbolic={short(value)}: {short(n)} is not a symbol name")
        if n:
            out.append(n)
    return tuple(out)


def batch(value: Any) -> Any:
    """``batch=``: a positive integer or a symbol name (then the memory totals are closed forms in it)."""
    number = _positive_int(value)
    if number is not None:
        return number
    if isinstance(value, str) and _NAME.fullmatch(value.strip()):
        from ..expr import symbol

        return symbol(value.strip())
    raise UsageError(f"batch={short(value)}: expected an integer from 1 to {MAX_SIZE:,} or a symbol name such as 'N'")


def at_least_one(what: str, value: Any) -> int:
    """``ensemble=`` and ``crops=``: an integer from 1 to limits.MAX_MULTIPLIER."""
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_MULTIPLIER:
        raise UsageError(f"{what}={short(value)}: expected an integer from 1 to {MAX_MULTIPLIER:,}")
    return value


def choice(what: str, value: Any, choices: Sequence[str]) -> str:
    """``dtype=``, ``optimizer=``: one of the names (a str Enum member is its value)."""
    value = getattr(value, "value", value)
    if not isinstance(value, str) or value not in choices:
        raise UsageError(f"{what}={short(value)}: expected one of {', '.join(choices)}")
    return value


def max_rows(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise UsageError(f"max_rows={short(value)}: expected 0 (every row) or a positive number")
    return value


def depth(value: Any) -> Optional[int]:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1 or value > 10**18:
        raise UsageError(f"depth={short(value)}: expected a positive integer")
    return value
