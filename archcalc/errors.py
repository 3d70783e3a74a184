"""One error family for everything a user can get wrong.

Every error carries *where* (file, line, layer path), *what* (the fact) and a *hint*.
The CLI catches :class:`ArchcalcError` at exactly one place and prints ``str(err)``.
"""

from __future__ import annotations

import difflib


class Where:
    """A location in a spec: file, 1-based line, layer path and layer type (all optional).

    Immutable by convention; a slotted class rather than a frozen dataclass because the loader
    makes one per layer, and a frozen dataclass's constructor costs several times more."""

    __slots__ = ("file", "line", "path", "layer")

    def __init__(self, file: str | None = None, line: int | None = None, path: str | None = None,
                 layer: str | None = None):
        self.file = file
        self.line = line
        self.path = path
        self.layer = layer

    def _key(self):
        return (self.file, self.line, self.path, self.layer)

    def __eq__(self, other):
        if other.__class__ is not Where:
            return NotImplemented
        return self._key() == other._key()

    def __hash__(self):
        return hash(self._key())

    def __repr__(self):
        return f"Where(file={self.file!r}, line={self.line!r}, path={self.path!r}, layer={self.layer!r})"

    def __str__(self) -> str:
        head = self.file or "<spec>"
        if self.line is not None:
            head += f":{self.line}"
        parts = [head]
        if self.path:
            tail = self.path if not self.layer else f"{self.path} ({self.layer})"
            parts.append(tail)
        elif self.layer:
            parts.append(f"({self.layer})")
        return ": ".join(parts)

    def at(self, file=None, line=None, path=None, layer=None) -> "Where":
        """A copy with the given parts replaced (None keeps a part)."""
        return Where(self.file if file is None else file, self.line if line is None else line,
                     self.path if path is None else path, self.layer if layer is None else layer)


class ArchcalcError(Exception):
    """Base of all user-facing errors. ``exit_code`` is what the CLI returns."""

    exit_code = 2

    def __init__(self, fact: str, where: Where | None = None, hint: str | None = None):
        super().__init__(fact)
        self.fact = fact
        self.where = where
        self.hint = hint

    def __str__(self) -> str:
        text = f"{self.where}: {self.fact}" if self.where else self.fact
        if self.hint:
            text += f"; {self.hint}"
        return text


class SpecError(ArchcalcError):
    """The spec (YAML or its meaning) is wrong."""


class UsageError(ArchcalcError):
    """A command-line argument is wrong."""


class CheckFailed(ArchcalcError):
    """A budget check or a verification found a mismatch (exit code 1)."""

    exit_code = 1


MAX_QUOTE = 80


def plain(text: str, limit: int = MAX_QUOTE) -> str:
    """A command-line argument as typed when it is short and printable, else :func:`short`.

    >>> plain("H=abc")
    'H=abc'
    """
    if isinstance(text, str) and len(text) <= limit and text.isprintable() and text.isascii():
        return text
    return short(text, limit)


def short(value, limit: int = MAX_QUOTE) -> str:
    """At most ``limit`` characters of a user's value for an error message, control characters
    escaped, never expanding a large structure (a YAML alias bomb stays a few bytes here).

    >>> short("x" * 200)[-25:]
    "xxxxxx…' (200 characters)"
    >>> short("kernal")
    "'kernal'"
    >>> short([1, [2, 3]])
    'a list of 2 items'
    """
    if isinstance(value, str):
        text = value if len(value) <= limit else value[: limit - 2]
        shown = repr(text)
        if len(value) > limit:
            return shown[:-1] + "…" + shown[-1] + f" ({len(value)} characters)"
        return shown
    if isinstance(value, bool) or value is None or isinstance(value, float):
        return repr(value)
    if isinstance(value, int):
        digits = len(str(value)) if value.bit_length() < 4000 else None
        if digits is not None and digits <= limit:
            return str(value)
        return f"an integer of {digits or 'more than 1,200'} digits"
    if isinstance(value, dict):
        return f"a mapping of {len(value)} key{'s' if len(value) != 1 else ''}"
    if isinstance(value, (list, tuple)):
        return f"a list of {len(value)} item{'s' if len(value) != 1 else ''}"
    return f"a {type(value).__name__}"


def did_you_mean(word: str, choices) -> str | None:
    """A ``did you mean 'x'?`` hint, or None when nothing is close.

    >>> did_you_mean("kernal", ["kernel", "stride"])
    "did you mean 'kernel'?"
    """
    if len(str(word)) > 100:  # nothing is close to a very long word, and comparing would be slow
        return None
    close = difflib.get_close_matches(str(word), [str(c) for c in choices], n=1, cutoff=0.6)
    return f"did you mean '{close[0]}'?" if close else None


def expected_one_of(word: str, choices, what: str = "one of") -> str:
    """Hint text: a did-you-mean if one fits, else the list of valid choices."""
    hint = did_you_mean(word, choices)
    if hint:
        return hint
    names = sorted(str(c) for c in choices)
    shown = ", ".join(short(n, 40)[1:-1] if len(n) > 40 else n for n in names[:30])
    return f"expected {what}: {shown}" + (f" and {len(names) - 30} more" if len(names) > 30 else "")
