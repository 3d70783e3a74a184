"""textout uses rich for styles, the colour decision and cell widths, and imports it only where
it is needed (see archcalc/output/textout.py's docstring)."""

from __future__ import annotations

import io
import subprocess
import sys

from archcalc.output.textout import Out, cells


class _TTY(io.StringIO):
    def isatty(self):
        return True


def test_styles_are_ecma48_sgr_sequences(monkeypatch):
    monkeypatch.delenv("NO_COLOR", raising=False)
    monkeypatch.delenv("TTY_COMPATIBLE", raising=False)
    monkeypatch.setenv("TERM", "xterm")
    tty = _TTY()
    out = Out(tty, width=80)
    assert out.color
    for style, sgr in (("bold", "1"), ("dim", "2"), ("yellow", "33"), ("bold red", "1;31"), ("green", "32")):
        out.line("ok", style)
    assert tty.getvalue().split("\n")[:-1] == [f"\x1b[{c}mok\x1b[0m" for c in ("1", "2", "33", "1;31", "32")]


def test_no_colour_on_dumb_or_incompatible_terminals_and_with_no_color(monkeypatch):
    monkeypatch.delenv("NO_COLOR", raising=False)
    monkeypatch.setenv("TERM", "dumb")
    assert not Out(_TTY()).color
    monkeypatch.setenv("TERM", "xterm")
    monkeypatch.setenv("TTY_COMPATIBLE", "0")
    assert not Out(_TTY()).color
    monkeypatch.delenv("TTY_COMPATIBLE")
    monkeypatch.setenv("NO_COLOR", "1")
    out = Out(_TTY())
    assert not out.color
    out.line("x", "bold")
    assert out.stream.getvalue() == "x\n"


def test_cell_widths():
    assert cells("conv1") == 5
    assert cells("卷积层") == 6  # East Asian wide: two cells each
    assert cells("e\u0301") == 1  # a combining accent takes no cell


def test_a_piped_summary_imports_no_rich():
    code = ("import sys\nfrom archcalc.cli.main import main\nc = main(['summary', 'vgg16'])\nsys.stdout.flush()\n"
            "print(c, sorted(m for m in sys.modules if m == 'rich' or m.startswith('rich.')), file=sys.stderr)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.stderr.strip().splitlines()[-1] == "0 []", out.stderr[-2000:]
    assert "vgg16" in out.stdout
