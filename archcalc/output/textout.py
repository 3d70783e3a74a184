"""Plain text for any terminal: user strings made harmless, a writer that knows its stream, and a
table that fits the width it is given.

rich, the project's terminal library, does what it does well here: styles and their escape
sequences (:class:`rich.style.Style`: any style rich parses, "bold red", "dim"), whether a terminal
takes colour (:class:`rich.console.Console`: ``NO_COLOR``, ``TERM=dumb``, ``TTY_COMPATIBLE``) and
the width of a character in terminal cells (:func:`rich.cells.cell_len`: East Asian wide
characters, emoji, combining marks). rich is imported only where it is needed: on a terminal (the
colour decision and styles), and for a string with a character that is not one column wide. A
summary written to a pipe or a file imports none of it (rich's console module alone costs more to
import than the engine's work on resnet152; typer does not import rich for a concrete summary).

What stays here, because rich cannot do it:

* the table (:func:`table`, :func:`layout`): rich's Table fits a width by wrapping or cropping
  cells ("…"), which would cut a layer name or a digit. This one never cuts a cell: when the
  columns do not fit it switches to a compact layout (no borders), then leaves out whole columns
  by priority and names them. It is also the hot path of a 200,000-row table (one ``str.format``
  per row, where rich's Table measures and renders every cell as segments);
* harmless text (:func:`plain`, :func:`escape`, :class:`Guard`): rich's ``markup.escape`` only
  stops markup (nothing here is ever parsed as markup: no string reaches rich's markup parser, so
  ``[/]`` prints as itself), while a spec's strings must also lose control characters, escape
  sequences, bidi overrides and CI runners' workflow commands;
* piped output is never cut and never coloured (rich would wrap a pipe at 80 columns, and colour
  it under ``FORCE_COLOR``); ``NO_COLOR`` drops every style, bold and dim too (rich keeps those);
* the ASCII fallback (:data:`ASCII_SUBS`, :data:`BOXED_ASCII`): decided by encoding the very
  characters archcalc prints on the stream's encoding (rich's ``ascii_only`` treats every
  encoding that is not UTF-* as ASCII), and marks become words (✓ -> ok), which rich has no
  notion of.
"""

from __future__ import annotations

import os
import re
import sys
from dataclasses import dataclass

# --------------------------------------------------------------------------- harmless text
#
# archcalc's output is read by terminals and by CI runners, and much of it is spec text: names,
# titles, file names, all from pull requests. Two things could go wrong with such text:
#
# * a character that acts instead of showing: C0/C1 controls and DEL (cursor moves, colours,
#   terminal titles, a CR that starts a new line for a log reader), line and paragraph separators,
#   bidirectional embeddings/overrides/isolates/marks (U+202E shows "exe.txt" as "txt.exe"),
#   zero-width and other invisible format characters (U+200B..U+200D, U+2060, U+FEFF, U+180E,
#   tag characters), noncharacters XML cannot hold, and lone surrogates (a file
#   name that is not UTF-8, decoded with ``surrogateescape``: it cannot even be encoded);
# * a GitHub Actions workflow command. The runner (actions/runner, ActionCommand.cs) reads every
#   line of a step's stdout and stderr: a line whose first non-blank characters are ``::`` is a
#   command (``::error file=F::msg`` makes an annotation, ``::stop-commands::T`` turns commands
#   off, ``::add-mask::``, ``::set-output``, ...), and so is ``##[command]data`` ANYWHERE in a
#   line (the older form, still parsed).
#
# The rule: no such character leaves archcalc raw (it becomes a visible backslash escape), no
# line starts with ``::`` after blanks and no line holds ``##[`` (the first character of the
# marker is escaped), unless it is one of archcalc's own annotations in ``--format github``. It is
# enforced in two places:
#
# 1. :func:`plain` / :func:`escape`: each user string as it is rendered (table cells keep their
#    width; ``\x1b``, ``\u202e``, ``\xff`` for an undecodable byte, ``\x3a:`` for a leading
#    ``::``, ``\x23#[`` for ``##[``);
# 2. :func:`neutral` / :class:`Guard`: the whole text as it is written, whatever wrote it (the
#    CLI's stdout and stderr go through a Guard; check's reports through neutral). Its escapes
#    are ``\uXXXX``, which mean the same character inside a JSON string, so a JSON document stays
#    valid and equal; elsewhere they read as escapes. New formats are safe by construction.

# Everything below except TAB and LF (a user string also has those replaced, see plain).
_UNSAFE_CLASS = (
    "\x00-\x08\x0b-\x1f\x7f-\x9f\u00ad\u0600-\u0605\u061c\u06dd\u070f\u0890\u0891\u08e2\u180e"
    "\u200b-\u200f\u2028-\u202e\u2060-\u206f\ufeff\ufff9-\ufffb\ufffe\uffff\ud800-\udfff"
    "\U000110bd\U000110cd\U00013430-\U0001343f\U0001bca0-\U0001bca3\U0001d173-\U0001d17a\U000e0000-\U000e007f"
)
_UNSAFE = re.compile("[\t\n" + _UNSAFE_CLASS + "]")  # in one user string
_UNSAFE_OUT = re.compile("[" + _UNSAFE_CLASS + "]")  # in written text: lines and tabs kept
# on a terminal, archcalc's own colours (SGR: ESC [ digits m) pass; any other ESC is escaped
_UNSAFE_OUT_TTY = re.compile("\x1b(?!\\[[0-9;]*m)|[" + _UNSAFE_CLASS.replace("\x0b-\x1f", "\x0b-\x1a\x1c-\x1f") + "]")
_LEADING_COMMAND = re.compile(r"\s*:(?=:)")  # a user string that would start a workflow command
_COMMAND_MARK = re.compile(r"(?m)^([^\S\n]*):(?=:)|#(?=#\[)")  # in written text
# archcalc's own annotation lines (ci_report.github): properties escaped, so no ':' before '::'
_OWN_COMMAND = re.compile(r"::(?:error|warning|notice) [^:\n]*::")


def _code(ch: str) -> str:
    r"""A character as a backslash escape: ``\xNN`` for one byte (a lone surrogate from an
    undecodable file-name byte is that byte), else ``\uNNNN`` / ``\UNNNNNNNN``."""
    code = ord(ch)
    if code < 0x100:
        return f"\\x{code:02x}"
    if 0xDC80 <= code <= 0xDCFF:  # os.fsdecode's surrogateescape: the byte it stands for
        return f"\\x{code - 0xDC00:02x}"
    return f"\\u{code:04x}" if code <= 0xFFFF else f"\\U{code:08x}"


def _escape(m: re.Match) -> str:
    ch = m.group(0)
    return " " if ch in "\t\n\r" else _code(ch)


def _escape_all(m: re.Match) -> str:
    return _code(m.group(0))


def _u(m: re.Match) -> str:
    r"""``\uXXXX`` (valid inside a JSON string: the same character; beyond U+FFFF as JSON writes
    it, a UTF-16 surrogate pair)."""
    code = ord(m.group(0))
    if code <= 0xFFFF:
        return f"\\u{code:04x}"
    code -= 0x10000
    return f"\\u{0xD800 + (code >> 10):04x}\\u{0xDC00 + (code & 0x3FF):04x}"


def _markers(s: str) -> str:
    r"""A user string that cannot open a workflow command wherever it lands: a leading ``::``
    (after blanks) becomes ``\x3a:``, any ``##[`` becomes ``\x23#[``."""
    if ":" in s:
        m = _LEADING_COMMAND.match(s)
        if m:
            s = s[: m.end() - 1] + "\\x3a" + s[m.end():]
    if "##[" in s:
        s = s.replace("##[", "\\x23#[")
    return s


def plain(text) -> str:
    """A user string (name, title, source, note, warning) as one harmless line of text.

    >>> plain("conv\\x1b[31mred")
    'conv\\\\x1b[31mred'
    >>> plain("[/]")
    '[/]'
    >>> plain("two\\nlines")
    'two lines'
    >>> plain("::stop-commands::x")
    '\\\\x3a:stop-commands::x'
    """
    s = text if isinstance(text, str) else str(text)
    if s.isascii() and s.isprintable():
        return _markers(s) if (":" in s or "#" in s) else s
    return _markers(_UNSAFE.sub(_escape, s))


def escape(text, newlines: bool = True, markers: bool = True) -> str:
    r"""Like :func:`plain` but every unsafe character becomes an escape, line breaks too
    (``\x0a``) unless ``newlines`` is False (then they are kept, for a multi-line text whose
    every line is made safe). ``markers=False`` leaves ``::`` and ``##[`` alone, for text that
    never starts a line (the data of archcalc's own annotations).

    >>> escape("a\x1b[2Jb\nc")
    'a\\x1b[2Jb\\x0ac'
    """
    s = text if isinstance(text, str) else str(text)
    if not newlines and "\n" in s:
        return "\n".join(escape(line, True, markers) for line in s.split("\n"))
    if not (s.isascii() and s.isprintable()):
        s = _UNSAFE.sub(_escape_all, s)
    return _markers(s) if markers and (":" in s or "#" in s) else s


def neutral(text: str, commands: bool = False) -> str:
    """A whole output (a report, a document) made harmless line by line: see :class:`Guard`.
    ``commands``: the text is archcalc's own ``--format github`` output, whose annotation lines
    stay commands."""
    return Guard()(text, commands)


class Commands(str):
    """Text whose lines starting with ``::error``/``::warning``/``::notice`` are archcalc's own
    workflow commands (made by :func:`archcalc.ci.ci_report.github` with escaped properties and
    data): a :class:`Guard` lets those lines through."""


_OPEN_LINE = re.compile(r"[^\S\n]*:?")


class Guard:
    r"""The last step before text leaves archcalc: every write is made harmless.

    * unsafe characters become ``\uXXXX`` escapes (on a terminal, archcalc's own SGR colour
      sequences pass);
    * a line whose first non-blank characters are ``::`` gets its first colon escaped
      (``\u003a:``), and every ``##[`` its first ``#`` (``\u0023#[``), except in the lines of a
      :class:`Commands` text that are archcalc's annotations;
    * it remembers the unfinished line between writes, so a marker split over two writes is still
      caught (then a character of it in the second write is escaped).

    The common write (no unsafe character, no ``::``, no ``##[``) costs a few scans in C: a byte
    translation (ASCII) or ``str.isprintable`` and two substring searches, about 15 ms for a
    megabyte of table; the regular expressions run only on text that needs them.
    """

    __slots__ = ("_unsafe", "_head")

    def __init__(self, tty: bool = False):
        self._unsafe = _UNSAFE_OUT_TTY if tty else _UNSAFE_OUT
        # the unfinished line written so far when it could still begin a command (blanks and at
        # most one ':'), else a NUL and its last two characters; never written itself
        self._head = ""

    def __call__(self, text: str, commands: bool = False) -> str:
        own = commands or isinstance(text, Commands)
        text = str(text)
        if not _safe_chars(text) and self._unsafe.search(text) is not None:
            text = self._unsafe.sub(_u, text)
        head = self._head
        if "::" in text or "##[" in text or (text[:1] in (":", "#", "[") and head[-1:] in (":", "#")):
            text = self._marks(head, text, own and head == "")
        nl = text.rfind("\n")
        line = text[nl + 1:] if nl >= 0 else head + text
        if len(line) <= 2 and "\x00" not in line or _OPEN_LINE.fullmatch(line):
            self._head = line[-64:]
        else:
            self._head = "\x00" + line[-2:]
        return text

    @staticmethod
    def _marks(head: str, text: str, own: bool) -> str:
        s = head + text
        off = len(head)
        out = []
        pos = off
        for m in _COMMAND_MARK.finditer(s):
            if m.group(1) is not None:
                at, span = m.end() - 1, 2
                if own and not m.group(1) and _OWN_COMMAND.match(s, at):
                    continue  # archcalc's own annotation (the match starts a line)
            else:
                at, span = m.start(), 3
            for i in range(at, at + span):
                if i >= off:
                    break
            else:  # pragma: no cover - a whole marker before this write cannot be (head is short)
                continue
            out.append(s[pos:i])
            out.append(_u_char(s[i]))
            pos = i + 1
        if not out:
            return text
        out.append(s[pos:])
        return "".join(out)


_ASCII_SAFE = bytes(range(0x20, 0x7F)) + b"\t\n"


def _safe_chars(text: str) -> bool:
    """A quick True when ``text`` holds no unsafe character (False: look closer). Every unsafe
    character is one ``str.isprintable`` rejects, so printable text with its line breaks left
    out is safe; ASCII text is checked byte by byte in C."""
    if text.isascii():
        return not text.encode("ascii").translate(None, _ASCII_SAFE)
    return text.replace("\n", "").isprintable()


def _u_char(ch: str) -> str:
    return f"\\u{ord(ch):04x}"


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
_STYLES: dict = {}  # style text -> (escape sequence before, after)


def _styled(s: str, style: str) -> str:
    """``s`` in a rich style (the standard 16 colours: what every terminal shows alike)."""
    codes = _STYLES.get(style)
    if codes is None:
        from rich.color import ColorSystem
        from rich.style import Style

        before, _, after = Style.parse(style).render("\x00", color_system=ColorSystem.STANDARD).partition("\x00")
        codes = _STYLES[style] = (before, after)
    return codes[0] + s + codes[1]


def _takes_colour(stream) -> bool:
    """Does a terminal stream take colour? rich's Console decides (NO_COLOR, TERM=dumb,
    TTY_COMPATIBLE=0: no)."""
    from rich.console import Console

    console = Console(file=stream)
    return console.is_terminal and console.color_system is not None and not console.no_color


def _int_env(name):
    v = os.environ.get(name, "").strip()
    return int(v) if v.isdigit() and 0 < int(v) < 100_000 else None


class Out:
    """Writes lines to a stream (stdout by default).

    * width: ``COLUMNS`` when set; else the terminal's width on a terminal; else None (piped
      output is never cut);
    * colour only on a terminal, as rich's Console decides there: never with ``NO_COLOR`` set
      (https://no-color.org) or ``TERM=dumb``;
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
            color = tty and _takes_colour(self.stream)
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
            s = _styled(s, style)
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
