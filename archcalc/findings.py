"""Findings: what the engine, the layer types and the analyses observe, as data.

A :class:`Finding` carries a stable ``code`` (declared in :data:`CODES`), the layer it is about,
the numbers behind it as ``(name, value)`` pairs and a ``message`` for people. Code reads the code
and the numbers, never the message: a lint selects findings by code, ``--tiling`` looks for the
``tiling`` family, the CLI takes depth's start value from the ``depth-start`` finding's ``start``.
Rewording a message changes what people read and nothing else.

``str(finding)`` is its message, so every renderer prints exactly the text it printed when
warnings were plain strings.

Codes form families: a code names its ``parent`` (``alignment.centres`` is an ``alignment``
finding; a layer type's own codes are ``layer`` findings). A layer type declares its codes with
:func:`declare` beside the class (archcalc/layers/), so this module names no layer type.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Finding:
    """One observation: a stable code, the message people read, the layer, the numbers."""

    code: str
    message: str
    layer: str | None = None
    numbers: tuple = ()  # ((name, value), ...): the figures behind the message

    def get(self, name: str, default=None):
        """The number called ``name`` (``default`` where the finding has none)."""
        for key, value in self.numbers:
            if key == name:
                return value
        return default

    def is_a(self, family: str) -> bool:
        """Is this finding's code ``family`` or declared under it?"""
        return is_a(self.code, family)

    def at(self, layer: str, message: str) -> "Finding":
        """The same finding about ``layer`` with the message ``message`` (the report lists a row's
        findings prefixed with the row's name)."""
        return Finding(self.code, message, layer, self.numbers)

    def __str__(self) -> str:
        return self.message


@dataclass(frozen=True, slots=True)
class Code:
    """A declared finding code: its id, one line of help, the family it belongs to."""

    id: str
    help: str
    parent: str | None = None


CODES: dict[str, Code] = {
    c.id: c
    for c in (
        Code("tiling", "a conv or pool window does not tile its input: the last rows or columns of real input are "
                       "never read (numbers: lost_rows, lost_columns, kernel_h, kernel_w, stride_h, stride_w, "
                       "input_h, input_w, pad_top, pad_bottom, pad_left, pad_right)"),
        Code("alignment", "branches joined by add, concat, mean or mul do not describe the same place of the image"),
        Code("alignment.centres", "two spatial branches' receptive-field centres differ by the same amount at every "
                                  "output position (numbers: offset_h, offset_w: the second branch's centre minus "
                                  "the first's in input pixels, 0 where they agree; branches_h, branches_w: the "
                                  "two branches by their last layer; layers: the off-centre windows on them)",
             "alignment"),
        Code("layer", "a layer type's own warning about this use of it (a type declares more specific codes "
                      "under this one)"),
        Code("depth-start", "totals are closed forms in a repeat count; the layers shown are those at its first "
                            "value that builds (numbers: symbol, start, degree, checks)"),
    )
}


def declare(code: str, help: str, parent: str = "layer") -> str:
    """Declare a code (a layer type declares its own beside its class, under ``layer``); returns
    the code. Declaring the same code twice with the same help is harmless."""
    if parent not in CODES:
        raise ValueError(f"finding code {code!r}: unknown parent {parent!r}")
    old = CODES.get(code)
    if old is not None and (old.help, old.parent) != (help, parent):
        raise ValueError(f"finding code {code!r} is declared twice, differently")
    CODES[code] = Code(code, help, parent)
    return code


def is_a(code: str, family: str) -> bool:
    """Is ``code`` the code ``family`` or declared (directly or not) under it?"""
    seen = 0
    while code is not None and seen <= len(CODES):
        if code == family:
            return True
        c = CODES.get(code)
        code = c.parent if c is not None else None
        seen += 1
    return False
