"""JSON that archcalc reads back (a baseline, the zoo cache): nesting bounded before parsing, and
the parsed document checked against a declared shape, each error with its JSON path.

Nothing read this way is trusted: a baseline arrives in a pull request, a cache file may have been
truncated, overwritten or replaced. :func:`loads` refuses text nested deeper than a limit (found
by a linear scan, before ``json.loads`` would recurse); :func:`check` walks a value against a
schema built from the small declarations below and returns the first mismatch as
``$.specs['a.yaml'].layers.conv1[2]: expected an integer from 0, found a string``.

>>> check({"a": [1, "x"]}, Record({"a": ListOf(Int(0))}))
'$.a[1]: expected an integer from 0, found a string'
>>> check({"a": [1, 2]}, Record({"a": ListOf(Int(0))})) is None
True
"""

from __future__ import annotations

import json
import re
from itertools import accumulate

# a string, its escapes consumed, an unterminated one running to the end: every character but an
# unescaped '"' is consumed by the loop, so the match never fails and never backtracks (linear)
_STRING = re.compile(rb'"[^"\\]*(?:\\.?[^"\\]*)*(?:"|$)', re.S)
_DELTA = [0] * 256
for _c in b"[{":
    _DELTA[_c] = 1
for _c in b"]}":
    _DELTA[_c] = -1
_NOT_BRACKETS = bytes(c for c in range(256) if c not in b"[]{}")


class JSONError(ValueError):
    """Text that is not JSON, or nested deeper than allowed."""


def depth(data: bytes) -> int:
    """The deepest nesting of arrays and objects in JSON text (brackets inside strings do not
    count); linear time, no recursion. Malformed text gets some number: json.loads judges it.

    >>> depth(b'{"a": [[1], "[[["]}')
    3
    """
    brackets = _STRING.sub(b"", data).translate(None, _NOT_BRACKETS)
    return max(accumulate(map(_DELTA.__getitem__, brackets)), default=0)


def loads(data: bytes, max_depth: int):
    """Parse UTF-8 JSON text nested at most ``max_depth`` levels; JSONError otherwise."""
    if isinstance(data, str):
        data = data.encode("utf-8", "surrogatepass")
    deep = depth(data)
    if deep > max_depth:
        raise JSONError(f"nested {deep:,} levels deep, more than the limit of {max_depth}")
    try:
        return json.loads(data.decode("utf-8"))
    except UnicodeDecodeError as err:
        raise JSONError(f"not UTF-8 text (byte {err.start})") from None
    except RecursionError:  # not reached after the scan above; kept as a backstop
        raise JSONError(f"nested more than the limit of {max_depth} levels") from None
    except ValueError as err:  # JSONDecodeError, and an integer of more than 4,300 digits
        text = str(err)
        if "integer string conversion" in text:
            text = "an integer of more than 4,300 digits"
        raise JSONError(f"not JSON ({text[:120]})") from None


# --------------------------------------------------------------------------- shapes


def _kind(value) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int):
        return "an integer"
    if isinstance(value, float):
        return "a number with a fraction"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "a mapping"
    return f"a {type(value).__name__}"


def _key_path(path: str, key: str) -> str:
    if re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]{0,39}", key):
        return f"{path}.{key}"
    from .errors import short

    return f"{path}[{short(key, 40)}]"


class Shape:
    what = "a value"

    def error(self, value, path: str) -> str | None:  # pragma: no cover - every shape overrides it
        raise NotImplementedError

    def _wrong(self, value, path):
        return f"{path}: expected {self.what}, found {_kind(value)}"


def _num(n: int) -> str:
    """1,000 as 1,000; 2**256 - 1 as that."""
    k = (n + 1).bit_length() - 1
    return f"2**{k} - 1" if n >= 10**15 and n + 1 == 1 << k else f"{n:,}"


class Int(Shape):
    """An integer (never a boolean) from ``lo`` to ``hi`` (inclusive, each optional)."""

    def __init__(self, lo: int | None = None, hi: int | None = None):
        self.lo, self.hi = lo, hi
        self.what = "an integer" + (f" from {_num(lo)}" if lo is not None else "") + (f" to {_num(hi)}" if hi is not None else "")

    def error(self, value, path):
        if isinstance(value, bool) or not isinstance(value, int):
            return self._wrong(value, path)
        if (self.lo is not None and value < self.lo) or (self.hi is not None and value > self.hi):
            shown = f"an integer of {value.bit_length()} bits" if value.bit_length() > 64 else f"{value:,}"
            return f"{path}: expected {self.what}, found {shown}"
        return None


class Str(Shape):
    """A string of at most ``max_len`` characters (matching ``pattern`` when given)."""

    def __init__(self, max_len: int = 10_000, pattern: str | None = None, what: str | None = None):
        self.max_len, self.pattern = max_len, pattern
        self.what = what or "a string"

    def error(self, value, path):
        if not isinstance(value, str):
            return self._wrong(value, path)
        if len(value) > self.max_len:
            return f"{path}: expected {self.what} of at most {self.max_len:,} characters, found {len(value):,}"
        if self.pattern is not None and not re.fullmatch(self.pattern, value):
            from .errors import short

            return f"{path}: expected {self.what}, found {short(value, 40)}"
        return None


class Const(Shape):
    def __init__(self, value):
        self.value = value
        self.what = json.dumps(value)

    def error(self, value, path):
        if type(value) is not type(self.value) or value != self.value:
            from .errors import short

            return f"{path}: expected {self.what}, found {short(value, 40)}"
        return None


class Null(Shape):
    what = "null"

    def error(self, value, path):
        return None if value is None else self._wrong(value, path)


class Either(Shape):
    """One of several shapes. When the value is of the kind only one of them takes (an integer
    for Either(Int(0), Str())), that shape's own message; else 'expected X or Y'."""

    def __init__(self, *shapes: Shape):
        self.shapes = shapes
        self.what = " or ".join(s.what for s in shapes)

    def error(self, value, path):
        errors = [s.error(value, path) for s in self.shapes]
        if any(e is None for e in errors):
            return None
        same_kind = [e for s, e in zip(self.shapes, errors) if e != s._wrong(value, path)]
        return same_kind[0] if len(same_kind) == 1 else self._wrong(value, path)


class ListOf(Shape):
    def __init__(self, item: Shape, min_len: int = 0, max_len: int = 1_000_000):
        self.item, self.min_len, self.max_len = item, min_len, max_len
        self.what = "a list"

    def error(self, value, path):
        if not isinstance(value, list):
            return self._wrong(value, path)
        if not self.min_len <= len(value) <= self.max_len:
            want = (f"{self.min_len}" if self.min_len == self.max_len else f"{self.min_len} to {self.max_len:,}")
            return f"{path}: expected a list of {want} items, found {len(value):,}"
        for i, v in enumerate(value):
            e = self.item.error(v, f"{path}[{i}]")
            if e:
                return e
        return None


class MapOf(Shape):
    """A mapping of string keys (``key``: their shape) to values of one shape."""

    def __init__(self, value: Shape, key: Str | None = None, max_len: int = 1_000_000):
        self.value, self.key, self.max_len = value, key or Str(1_000), max_len
        self.what = "a mapping"

    def error(self, value, path):
        if not isinstance(value, dict):
            return self._wrong(value, path)
        if len(value) > self.max_len:
            return f"{path}: expected a mapping of at most {self.max_len:,} keys, found {len(value):,}"
        for k, v in value.items():
            e = self.key.error(k, f"{path} key") or self.value.error(v, _key_path(path, k))
            if e:
                return e
        return None


class Record(Shape):
    """A mapping with declared keys: ``fields`` key -> shape; ``required`` the keys that must be
    there. Other keys are an error unless ``extra`` (they are then never read)."""

    def __init__(self, fields: dict, required=(), extra: bool = False):
        self.fields, self.required, self.extra = fields, tuple(required), extra
        self.what = "a mapping"

    def error(self, value, path):
        if not isinstance(value, dict):
            return self._wrong(value, path)
        for k in self.required:
            if k not in value:
                return f"{path}: the key '{k}' is missing"
        for k, v in value.items():
            shape = self.fields.get(k)
            if shape is None:
                if self.extra:
                    continue
                from .errors import short

                return f"{path}: unknown key {short(k, 40)}; expected " + ", ".join(self.fields)
            e = shape.error(v, _key_path(path, k))
            if e:
                return e
        return None


def check(value, shape: Shape, path: str = "$") -> str | None:
    """The first place where ``value`` does not have ``shape`` (a message with its JSON path), or None."""
    return shape.error(value, path)
