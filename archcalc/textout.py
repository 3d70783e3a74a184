"""Plain text for any terminal: user strings made harmless, a writer that knows its stream, and a
table that fits the width it is given.

Nothing here parses markup: every string is printed as the characters it holds, after
:func:`plain` has replaced control characters and escape sequences with visible escapes. The
table keeps every digit: when the columns do not fit it first switches to a compact layout
(no borders), then leaves out whole columns by priority (naming them), and never cuts a cell.
"""

from __future__ import annotations

import os
import re
import sys
from dataclasses import dataclass

# C0/C1 controls, DEL, line/paragraph separators, bidirectional overrides and marks: anything that
# could move the cursor, change colours or reorder what the reader sees.
_UNSAFE = re.compile("[\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069\ufeff]")


def _escape(m: re.Match) -> str:
    ch = m.group(0)
    if ch in "\t\n\r":
        return " "
    code = ord(ch)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def plain(text) -> str:
    """A user string (name, title, source, note, warning) as one harmless line of text.

    >>> plain("conv\\x1b[31mred")
    'conv\\\\x1b[31mred'
    >>> plain("[/]")
    '[/]'
    >>> plain("two\\nlines")
    'two lines'
    """
    s = text if isinstance(text, str) else str(text)
    if s.isascii() and s.isprintable():
        return s
    return _UNSAFE.sub(_escape, s)


# Printable ASCII and the non-ASCII characters archcalc itself prints (box drawing, the bars'
# block elements, marks such as ✓ and ≈): each takes one column, so such a string's width is its
# length. A 200,000-row table is almost all such strings (issue 14).
_ONE_COLUMN = re.compile("[\x20-\x7e\u2500-\u259f\u2713\u2717\u2248\u2260\u2014\u2026\u00d7\u00b7]*")


def one_column(s: str) -> bool:
    """Does every character of ``s`` take exactly one terminal column?"""
    return s.isascii() and s.isprintable() or _ONE_COLUMN.fullmatch(s) is not None


def cells(s: str) -> int:
    """Terminal columns a string takes (wide East Asian characters count 2)."""
    if s.isascii() or _ONE_COLUMN.fullmatch(s):
        return len(s)
    from rich.cells import cell_len

    return cell_len(s)


# --------------------------------------------------------------------------- the writer

_UNICODE_PROBE = "┏━┃┡╇│─├┼└┴✓≈✗≠█▏—…"
ASCII_SUBS = str.maketrans({"✓": "ok", "≈": "~", "✗": "X", "≠": "!=", "—": "-", "…": "...", "×": "x",
                            "█": "#", "▏": "|", "·": "."})
_ANSI = {"bold": "1", "dim": "2", "red": "31", "green": "32", "yellow": "33", "bold red": "1;31"}


def _int_env(name):
    v = os.environ.get(name, "").strip()
    return int(v) if v.isdigit() and 0 < int(v) < 100_000 else None


class Out:
    """Writes lines to a stream (stdout by default).

    * width: ``COLUMNS`` when set; else the terminal's width on a terminal; else None (piped
      output is never cut);
    * colour only on a terminal, never with ``NO_COLOR`` set (https://no-color.org) or
      ``TERM=dumb``;
    * ``ascii``: True when the stream cannot encode box-drawing characters (then tables use
      ``+-|`` and marks become words).
    """

    def __init__(self, stream=None, width=None, color=None, ascii=None):
        self.stream = stream if stream is not None else sys.stdout
        try:
            tty = bool(self.stream.isatty())
        except (AttributeError, ValueError):
            tty = False
        if width is None:
            width = _int_env("COLUMNS")
            if width is None and tty:
                import shutil

                width = shutil.get_terminal_size((80, 24)).columns
        self.width = width
        if color is None:
            color = tty and not os.environ.get("NO_COLOR") and os.environ.get("TERM") != "dumb"
        self.color = bool(color)
        if ascii is None:
            enc = getattr(self.stream, "encoding", None) or "ascii"
            try:
                _UNICODE_PROBE.encode(enc)
                ascii = False
            except (UnicodeEncodeError, LookupError):
                ascii = True
        self.ascii = bool(ascii)

    def text(self, s: str) -> str:
        """Program-made text (may hold ✓, —, box characters): ASCII substitutes where needed."""
        return s.translate(ASCII_SUBS) if self.ascii else s

    def line(self, s: str = "", style: str | None = None) -> None:
        s = self.text(s)
        if style and self.color and s:
            s = f"\x1b[{_ANSI.get(style, '0')}m{s}\x1b[0m"
        self.stream.write(s + "\n")

    def para(self, s: str, style: str | None = None, indent: str = "") -> None:
        """A long line of prose, wrapped to the width when there is one (never a table row)."""
        if self.width and cells(s) > self.width:
            import textwrap

            for part in textwrap.wrap(s, self.width, subsequent_indent=indent + "  ", break_on_hyphens=False):
                self.line(part, style)
        else:
            self.line(s, style)

    def lines(self, items, styles=None) -> None:
        if not self.color or not styles:
            text = "\n".join(items)
            if self.ascii:
                text = text.translate(ASCII_SUBS)
            self.stream.write(text + "\n" if items else "")
            return
        for s, st in zip(items, styles):
            self.line(s, st)


# --------------------------------------------------------------------------- the table


@dataclass
class Column:
    """header; ``short``: a shorter header for narrow layouts; align 'l' or 'r'; ``prio``: 0 is
    never left out, higher numbers are left out first."""

    header: str
    align: str = "l"
    prio: int = 0
    short: str | None = None


BOXED = {  # rich's HEAVY_HEAD look
    "top": "┏━┳┓", "head": "┃┃┃", "head_sep": "┡━╇┩", "row": "│││", "foot_sep": "├─┼┤", "bottom": "└─┴┘",
}
BOXED_ASCII = {
    "top": "+-++", "head": "|||", "head_sep": "+=++", "row": "|||", "foot_sep": "+-++", "bottom": "+-++",
}


def _pad(s: str, w: int, align: str) -> str:
    n = w - cells(s)
    if n <= 0:
        return s
    return " " * n + s if align == "r" else s + " " * n


def _row_formatter(widths, aligns, sep, left, right, keep=None):
    """A function from a row of cells to its line: one str.format call for ASCII rows (the hot
    path of a 200,000-layer table), per-cell padding by display width otherwise."""
    keep = list(range(len(widths))) if keep is None else list(keep)
    fmt = left + sep.join("{%d:%s%d}" % (i, ">" if a == "r" else "<", w) for i, w, a in zip(keep, widths, aligns)) + right
    fmt_format = fmt.format

    def line(r):
        if one_column("".join(r)):
            return fmt_format(*r)
        return left + sep.join(_pad(r[i], w, a) for i, w, a in zip(keep, widths, aligns)) + right

    return line


def _widths(cols, rows, footer, short):
    widths = []
    for i, c in enumerate(cols):
        head = c.short if (short and c.short) else c.header
        w = cells(head)
        col = [r[i] for r in rows]
        if col:
            n = max(map(len, col))
            if n > w:
                w = n
            if not one_column("".join(col)):
                w = max(w, max(map(cells, col)))
        if footer is not None and cells(footer[i]) > w:
            w = cells(footer[i])
        widths.append(w)
    return widths


def layout(cols, rows, footer=None, width=None, ascii=False, compact=None):
    """Choose the layout and the columns. Returns (style, kept column indexes, widths, hidden
    headers, separator width); style is 'boxed' or 'compact'."""
    all_idx = list(range(len(cols)))
    if compact is None and width is not None and width < 100:
        compact = True  # under 100 columns: compact, without measuring the boxed layout
    if not compact:
        widths = _widths(cols, rows, footer, False)
        if compact is None:
            compact = width is not None and sum(widths) + 3 * len(cols) + 1 > width
    if not compact:
        return "boxed", all_idx, widths, [], 3
    widths = _widths(cols, rows, footer, True)

    def fit(sep):
        keep, hidden = list(all_idx), []

        def total():
            return sum(widths[i] for i in keep) + sep * (len(keep) - 1)

        if width is not None:
            while total() > width:
                drop = [i for i in keep if cols[i].prio > 0]
                if not drop:
                    break  # the essential columns are wider than the screen: wrap rather than cut
                worst = max(drop, key=lambda i: (cols[i].prio, i))
                keep.remove(worst)
                hidden.append(cols[worst].header)
        return keep, hidden, total() <= (width or total())

    keep, hidden, ok = fit(2)
    sep = 2
    if not ok:  # one space between columns before giving up on the width
        keep, hidden, _ = fit(1)
        sep = 1
    return "compact", keep, widths, hidden, sep


def table(cols, rows, footer=None, width=None, ascii=False, title=None, compact=None):
    """Render a table as lines. ``rows`` are lists of plain strings (already made safe). Returns
    (lines, hidden column headers, index of the first body line)."""
    style, keep, widths, hidden, gap = layout(cols, rows, footer, width, ascii, compact)
    out = []
    if style == "boxed":
        box = BOXED_ASCII if ascii else BOXED
        total = sum(widths) + 3 * len(cols) + 1
        if title:
            t = title if cells(title) >= total else " " * ((total - cells(title)) // 2) + title
            out.append(t)

        def rule(kind):
            left, fill, mid, right = box[kind]
            return left + mid.join(fill * (w + 2) for w in widths) + right

        def line(cells_, kind="row"):
            left, mid, right = box[kind]
            return left + mid.join(" " + _pad(c, w, cols[i].align) + " " for i, (c, w) in enumerate(zip(cells_, widths))) + right

        out.append(rule("top"))
        out.append(line([c.header for c in cols], "head"))
        out.append(rule("head_sep"))
        first = len(out)
        # the hot loop: one f-string per row
        aligns = [c.align for c in cols]
        left, mid, right = box["row"]
        sep = f" {mid} "
        fast = _row_formatter(widths, aligns, sep, left + " ", " " + right)
        for r in rows:
            out.append(fast(r))
        if footer is not None:
            out.append(rule("foot_sep"))
            out.append(line(footer))
        out.append(rule("bottom"))
        return out, hidden, first
    if title:
        out.append(title)
    ks = keep
    sp = " " * gap
    heads = [(cols[i].short or cols[i].header) for i in ks]
    out.append(sp.join(_pad(h, widths[i], cols[i].align) for h, i in zip(heads, ks)).rstrip())
    dash = "-" if ascii else "─"
    rule_line = sp.join(dash * widths[i] for i in ks)
    out.append(rule_line)
    first = len(out)
    aligns = [cols[i].align for i in ks]
    ws = [widths[i] for i in ks]
    fast = _row_formatter(ws, aligns, sp, "", "", ks)
    for r in rows:
        out.append(fast(r).rstrip())
    if footer is not None:
        out.append(rule_line)
        out.append(sp.join(_pad(footer[i], w, a) for i, w, a in zip(ks, ws, aligns)).rstrip())
    return out, hidden, first


def print_table(out: Out, cols, rows, footer=None, title=None, row_styles=None, what="columns"):
    """Print a table on ``out`` and, when columns were left out, one line naming them."""
    lines, hidden, first = table(cols, rows, footer, out.width, out.ascii, title)
    styles = None
    if out.color:
        styles = [None] * len(lines)
        head = first - 2
        if head >= 0:
            styles[head] = "bold"
        if row_styles:
            for k, st in enumerate(row_styles):
                styles[first + k] = st
    out.lines(lines, styles)
    if hidden:
        out.para(f"(not shown at {out.width} columns: {', '.join(hidden)}; a wider terminal or "
                 "--format markdown|csv|json shows every column)", "dim")
    return hidden
