"""One error family for everything a user can get wrong.

Every error carries *where* (file, line, layer path), *what* (the fact) and a *hint*.
The CLI catches :class:`ArchcalcError` at exactly one place and prints ``str(err)``.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass


@dataclass(frozen=True)
class Where:
    """A location in a spec: file, 1-based line, layer path and layer type (all optional)."""

    file: str | None = None
    line: int | None = None
    path: str | None = None
    layer: str | None = None

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

    def at(self, **changes) -> "Where":
        data = {**self.__dict__, **{k: v for k, v in changes.items() if v is not None}}
        return Where(**data)


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


def did_you_mean(word: str, choices) -> str | None:
    """A ``did you mean 'x'?`` hint, or None when nothing is close.

    >>> did_you_mean("kernal", ["kernel", "stride"])
    "did you mean 'kernel'?"
    """
    close = difflib.get_close_matches(str(word), [str(c) for c in choices], n=1, cutoff=0.6)
    return f"did you mean '{close[0]}'?" if close else None


def expected_one_of(word: str, choices, what: str = "one of") -> str:
    """Hint text: a did-you-mean if one fits, else the list of valid choices."""
    hint = did_you_mean(word, choices)
    if hint:
        return hint
    return f"expected {what}: " + ", ".join(sorted(str(c) for c in choices))
