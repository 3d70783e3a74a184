"""Text that reaches a terminal or a CI runner (issue 19, item 3; item 5's undecodable file names).

A GitHub Actions runner reads every line of a step's stdout and stderr: a line whose first
non-blank characters are ``::`` is a workflow command (``::error file=F::m`` makes an annotation,
``::stop-commands::T`` turns the others off) and so is ``##[command]`` anywhere in a line
(actions/runner, ActionCommand.cs). Layer, network and file names come from pull requests. The
cases below put such names (and ESC, U+202E, zero-width characters, a newline, a CR, bytes that
are not UTF-8) through every command and every ``check`` format, stdout and ``--report`` files,
and assert on each output: no line a runner would obey except archcalc's own annotations in
``--format github`` (whose properties and data are then checked escaped), no raw control, bidi
or zero-width character, JSON/SARIF/XML that parse (JSON keeping the names exactly), the exit
code, one error line and no traceback, within the time and memory of tests/security/test_hostile.py.
"""

from __future__ import annotations

import json
import os
import random
import re
import time
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from archcalc.output.textout import Commands, Guard, escape, neutral, plain
from test_hostile import MEMORY_LIMIT, TIME_LIMIT, run

# what no output may hold raw (the brief's list, plus lone surrogates: undecodable file names)
FORBIDDEN = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u200b-\u200f\u202a-\u202e\u2060-\u2069\ufeff\ud800-\udfff]")
# a line the runner parses as a command: '::' after blanks (.NET TrimStart), '##[' anywhere
COMMAND_START = re.compile(r"\s*::")
OWN_ANNOTATION = re.compile(r"::(error|warning) file=([^:,\n]*),line=(\d+),title=([^:,\n]*)::(.*)")

CMD = "::error file=README.md,line=1,title=Pwned::x"
STOP = "::stop-commands::x"
SPEC = """\
name: "{name}"
title: "::stop-commands::x ##[error]old form"
source: "  ::warning::source"
notes: "one\\n::error::from the notes\\n  ::add-mask::secret"
input: [3, 8, 8]
layers:
  - conv: {{out: 4, kernel: 3}}
  - relu
  - conv: {{out: 8, kernel: 3}}
"""
# spec files whose *names* are the attack (no `name:` in them: the name is the file's stem)
FILE_NAMES = [
    CMD + ".yaml",
    STOP + ".yaml",
    "  ::warning::lead.yaml",
    "v1 ##[error]old form.yaml",
    "nl\n::error::after a newline.yaml",
    "cr\r::error::after a CR.yaml",
    "esc\x1b[31mred\x1b]0;title\x07.yaml",
    "rlo\u202egnp.yaml",
    "zw\u200b\u200c\u200d\u2060\ufeff\u180e.yaml",
]
BAD_BYTES = b"bad\xff\xfe.yaml"  # not UTF-8: os.fsdecode gives lone surrogates
PLAIN_SPEC = SPEC.replace('name: "{name}"\n', "").format()


def lines_of(text: str):
    """Lines as the runner reads them (.NET ReadLine: CR, LF or CRLF)."""
    return re.split(r"\r\n|\r|\n", text)


def assert_harmless(text: str, github: bool = False) -> list:
    """Nothing a terminal or runner acts on; returns archcalc's own annotations (github only)."""
    m = FORBIDDEN.search(text)
    assert m is None, f"raw U+{ord(m.group()):04X} in {text[max(0, m.start() - 60):m.end() + 60]!r}"
    own = []
    for line in lines_of(text):
        assert "##[" not in line, line
        if COMMAND_START.match(line):
            hit = OWN_ANNOTATION.fullmatch(line) if github else None
            assert hit, f"a line a runner obeys: {line!r}"
            own.append(hit)
    return own


def gh_unescape_prop(value: str) -> str:
    for token, raw in (("%0D", "\r"), ("%0A", "\n"), ("%3A", ":"), ("%2C", ","), ("%25", "%")):
        value = value.replace(token, raw)
    return value


def check_run(args, cwd, expect):
    code, out, err, seconds, peak = run(args, cwd)
    assert "Traceback" not in err, err[-2000:]
    assert code == expect, (args, code, out[-800:], err[-800:])
    assert seconds < TIME_LIMIT and peak < MEMORY_LIMIT, (seconds, peak)
    assert_harmless(err)
    if code:
        assert len(err.splitlines()) == 1 and err.startswith("archcalc: error: "), err
    return out, err


@pytest.fixture
def hostile_dir(tmp_path):
    """A checkout holding a spec under each hostile file name, one not UTF-8."""
    d = tmp_path / "specs"
    d.mkdir()
    for name in FILE_NAMES:
        (d / name).write_text(PLAIN_SPEC)
    with open(os.path.join(os.fsencode(d), BAD_BYTES), "w") as fh:
        fh.write(PLAIN_SPEC)
    return d


def expected_files():
    return sorted(FILE_NAMES + [os.fsdecode(BAD_BYTES)])


# --------------------------------------------------------------------------- check, every format


FORMATS = ["text", "json", "github", "sarif", "junit"]


def assert_report(fmt: str, text: str, files: list, failing: bool):
    """Format-specific: parses, keeps or escapes the names, one annotation per finding."""
    own = assert_harmless(text, github=fmt == "github")
    if fmt == "json":
        data = json.loads(text)  # the \\u escapes keep every name exactly, undecodable bytes too
        assert sorted(s["file"] for s in data["specs"]) == files
    elif fmt == "sarif":
        data = json.loads(text)
        results = data["runs"][0]["results"]
        uris = {loc["physicalLocation"]["artifactLocation"]["uri"] for r in results for loc in r["locations"]}
        assert "bad%FF%FE.yaml" in uris  # the file's bytes, percent-encoded
        if CMD + ".yaml" in files:
            assert "%3A%3Aerror%20file%3DREADME.md%2Cline%3D1%2Ctitle%3DPwned%3A%3Ax.yaml" in uris
        for r in results:  # what a code-scanning page shows: escapes, not the characters
            assert FORBIDDEN.search(r["message"]["text"]) is None
            assert not COMMAND_START.match(r["message"]["text"])
    elif fmt == "junit":
        root = ET.fromstring(text.encode("utf-8"))
        suites = root.findall("testsuite")
        assert len(suites) == len(files)
        for s in suites:  # attribute values decoded: still no raw character, no command
            for value in (s.get("name"), s.get("file")):
                assert FORBIDDEN.search(value) is None and not COMMAND_START.match(value), value
        assert any(s.get("file") == "bad\\xff\\xfe.yaml" for s in suites)
        body = "\n".join(x.text or "" for x in root.iter("failure"))
        assert_harmless(body)
    elif fmt == "github":
        assert len(own) == (len(files) if failing else 0)
        props = [gh_unescape_prop(m.group(2)) for m in own]
        for m in own:
            assert m.group(4) == "archcalc budget params"
            assert "\r" not in m.group(5)
        if failing:
            # ':' and ',' of a file name escaped as the runner expects, so the property is whole
            assert any(m.group(2) == "%3A%3Aerror file=README.md%2Cline=1%2Ctitle=Pwned%3A%3Ax.yaml" for m in own)
            assert CMD + ".yaml" in props
            assert "nl\n::error::after a newline.yaml" in props  # LF as %0A: data, not a new line
            assert "bad\\xff\\xfe.yaml" in props and "esc\\x1b[31mred\\x1b]0;title\\x07.yaml" in props
    else:
        status = "FAIL" if failing else "PASS"
        heads = [line for line in lines_of(text) if line.startswith(status + " ")]
        assert len(heads) == len(files), text
        assert f"{status}  bad\\xff\\xfe.yaml" in text
        if CMD + ".yaml" in files:
            assert f"{status}  rlo\\u202egnp.yaml" in text
            assert f"{status}  \\x3a:error file=README.md,line=1,title=Pwned::x.yaml" in text


@pytest.mark.parametrize("fmt", FORMATS)
def test_check_hostile_file_names_every_format(fmt, hostile_dir, tmp_path):
    out, err = check_run(["check", ".", "-j", "1", "--budget", "params=1", "-f", fmt], hostile_dir, 1)
    assert_report(fmt, out, expected_files(), failing=True)
    assert "over budget on params" in err


def test_check_hostile_file_names_reports(hostile_dir, tmp_path):
    """--report FORMAT=FILE in every format (files are strict UTF-8), and the same text as stdout."""
    args = ["check", ".", "-j", "1", "--budget", "params=1"]
    for fmt in FORMATS:
        args += ["--report", f"{fmt}={tmp_path / ('report.' + fmt)}"]
    out, err = check_run(args, hostile_dir, 1)
    assert_report("text", out, expected_files(), failing=True)
    for fmt in FORMATS:
        text = (tmp_path / ("report." + fmt)).read_bytes().decode("utf-8")  # strict: no surrogate got through
        assert_report(fmt, text, expected_files(), failing=True)
        if fmt in ("text", "github", "junit"):  # no clock or version in these: the same bytes as stdout
            stdout, _ = check_run(["check", ".", "-j", "1", "--budget", "params=1", "-f", fmt], hostile_dir, 1)
            assert stdout == text


@pytest.mark.parametrize("fmt", ["sarif", "text"])
def test_undecodable_file_name_alone(fmt, tmp_path):
    """Issue 19 item 5: `check --format sarif` and `--report text=` on a non-UTF-8 name raised
    UnicodeEncodeError."""
    with open(os.path.join(os.fsencode(tmp_path), BAD_BYTES), "w") as fh:
        fh.write(PLAIN_SPEC)
    report = tmp_path / "out" / "report.txt"
    report.parent.mkdir()
    out, _ = check_run(["check", ".", "-j", "1", "-f", fmt, "--budget", "params=1", "--report", f"text={report}"], tmp_path, 1)
    assert_report(fmt, out, [os.fsdecode(BAD_BYTES)], failing=True)
    text = report.read_bytes().decode("utf-8")
    assert_report("text", text, [os.fsdecode(BAD_BYTES)], failing=True)
    assert "      bad\\xff\\xfe.yaml: error [budget params]" in text


@pytest.mark.parametrize("fmt", FORMATS)
def test_check_unreadable_spec_with_hostile_name(fmt, tmp_path):
    """A spec that cannot load, named like a command: the report and the one error line are safe."""
    bad = tmp_path / (CMD + "\x1b[2J\u202e.yaml")
    bad.write_text("input: [3, 8, 8]\nlayers: 5\n")
    (tmp_path / "ok.yaml").write_text(PLAIN_SPEC)
    out, err = check_run(["check", ".", "-j", "1", "-f", fmt], tmp_path, 2)
    own = assert_harmless(out, github=fmt == "github")
    assert "1 of 2 specs could not be checked: \\x3a:error file=README.md" in err
    if fmt == "github":
        assert len(own) == 1 and own[0].group(1) == "error"
        assert gh_unescape_prop(own[0].group(2)) == "::error file=README.md,line=1,title=Pwned::x\\x1b[2J\\u202e.yaml"
    elif fmt in ("json", "sarif"):
        json.loads(out)
    elif fmt == "junit":
        ET.fromstring(out.encode("utf-8"))


def test_check_single_unreadable_hostile_file_is_one_safe_line(tmp_path):
    bad = tmp_path / (STOP + "\u200b.yaml")
    bad.write_text("input: [3, 8, 8]\nlayers: 5\n")
    code, out, err, seconds, peak = run(["check", str(bad.name)], tmp_path)
    assert code == 2 and out == "" and "Traceback" not in err
    assert_harmless(err)
    assert len(err.splitlines()) == 1 and "stop-commands::x\\u200b.yaml" in err


# --------------------------------------------------------------------------- the other commands


@pytest.fixture
def hostile_spec(tmp_path):
    spec = tmp_path / "net.yaml"
    spec.write_text(SPEC.format(name=CMD))
    other = tmp_path / "net2.yaml"
    other.write_text(SPEC.format(name=STOP).replace("out: 8", "out: 16"))
    return spec, other


COMMANDS = [
    ["summary", "{a}"],
    ["summary", "{a}", "-f", "json"],
    ["summary", "{a}", "-f", "csv"],
    ["summary", "{a}", "-f", "markdown"],
    ["summary", "{a}", "--min-input"],
    ["summary", "{a}", "--min-input", "-f", "json"],
    ["explain", "{a}"],
    ["explain", "{a}", "conv1"],
    ["graph", "{a}"],
    ["graph", "{a}", "-f", "dot"],
    ["compare", "{a}", "{b}"],
    ["compare", "{a}", "{b}", "-f", "json"],
    ["compare", "{a}", "{b}", "-f", "csv"],
    ["compare", "{a}", "{b}", "-f", "markdown"],
    ["diff", "{a}", "{b}"],
    ["diff", "{a}", "{b}", "-f", "json"],
    ["check", "{a}", "{b}", "-f", "github", "--budget", "macs=1"],
]


@pytest.mark.parametrize("cmd", COMMANDS, ids=lambda c: "-".join(x for x in c if not x.startswith("{")))
def test_hostile_network_name_every_command(cmd, hostile_spec, tmp_path):
    """A network name ``::error file=...::x`` and a title with ``::stop-commands::`` and ``##[``:
    today's summary, explain and --min-input started a line with them."""
    a, b = hostile_spec
    args = [x.format(a=a.name, b=b.name) for x in cmd]
    expect = 1 if cmd[0] == "check" else 0
    out, err = check_run(args, tmp_path, expect)
    own = assert_harmless(out, github="github" in cmd)
    if "json" in cmd:
        data = json.loads(out)
        text = json.dumps(data, ensure_ascii=False)
        if cmd[0] in ("summary", "compare"):  # JSON keeps the names exactly (##[ as \u0023#[)
            assert CMD in text
        if cmd[0] == "summary" and "--min-input" not in cmd:
            assert "::stop-commands::x ##[error]old form" in text
    elif "github" in cmd:
        assert [(m.group(1), m.group(2), m.group(4)) for m in own if m.group(4).startswith("archcalc budget")] == [
            ("error", "net.yaml", "archcalc budget macs"), ("error", "net2.yaml", "archcalc budget macs")]
    elif cmd[0] in ("summary", "compare") and "csv" not in cmd or cmd == ["explain", "{a}"] or "dot" in cmd:
        assert "\\x3a:error file=README.md" in out or "\\\\x3a:error file=README.md" in out, out[:500]


def test_min_input_line_starts_with_the_escaped_name(hostile_spec, tmp_path):
    """The reported case: --min-input's first line was the name itself."""
    a, _ = hostile_spec
    out, _ = check_run(["summary", a.name, "--min-input"], tmp_path, 0)
    assert out.splitlines()[0] == "\\x3a:error file=README.md,line=1,title=Pwned::x"


def test_wrapped_prose_cannot_start_a_command(tmp_path):
    """A ``::`` in the middle of a spec's text is harmless until the terminal width wraps the line
    there: the guard on stdout catches what no single string could."""
    spec = tmp_path / "wrap.yaml"
    words = "aaaa bbbb cccc dddd eeee ffff gggg hhhh iiii jjjj"
    spec.write_text(f'name: n\nsource: "{words} ::error::wrapped"\ninput: [3, 8, 8]\nlayers:\n  - conv: {{out: 4, kernel: 3}}\n')
    code, out, err, seconds, peak = run(["summary", spec.name], tmp_path, env={"COLUMNS": "60"})
    assert code == 0 and err == ""
    assert_harmless(out)
    assert f"source: {words}\n  \\u003a:error::wrapped\n" in out  # wrapped right before the marker


@pytest.mark.parametrize("bad", ["a\x1bb", "a\u202eb", "a\u200bb", "a\ufeffb", "a\x85b"])
def test_loader_refuses_invisible_name_with_a_safe_line(bad, tmp_path):
    """Names the loader refuses: the error line itself names no raw character."""
    spec = tmp_path / (CMD + ".yaml")
    spec.write_text(SPEC.format(name=bad.encode("unicode_escape").decode()))
    code, out, err, seconds, peak = run(["summary", spec.name], tmp_path)
    assert code == 2 and out == "" and "Traceback" not in err
    assert len(err.splitlines()) == 1 and "holds the control character U+" in err
    assert_harmless(err)


# --------------------------------------------------------------------------- the guard itself


def test_guard_catches_markers_split_over_writes():
    g = Guard()
    out = "".join(g(x) for x in [" ", ":", ":error::x\n", "ab#", "#[error]y\n", "ok ##", "[z\n", "\t", "::w\n"])
    assert_harmless(out)
    assert out == " :\\u003aerror::x\nab#\\u0023[error]y\nok ##\\u005bz\n\t\\u003a:w\n"
    g = Guard()  # a colon mid-line is not a line start, whatever follows in the next write
    assert [g(x) for x in ["a:", ":b\n"]] == ["a:", ":b\n"]


def test_guard_lets_only_archcalcs_own_annotations_through():
    own = "::error file=a.yaml,line=1,title=archcalc x::msg\n"
    assert Guard()(Commands(own)) == own
    assert Guard()(own) == "\\u003a" + own[1:]  # the same text, not marked as archcalc's
    forged = Commands("::stop-commands::x\n  ::error file=a::b\n" + own)
    got = Guard()(forged)
    assert got.splitlines() == ["\\u003a:stop-commands::x", "  \\u003a:error file=a::b", own.rstrip("\n")]
    g = Guard()
    g("  ")  # a marked text that does not start its line gets no privilege
    assert g(Commands(own)) == "\\u003a" + own[1:]
    g = Guard()
    g("text ")  # nor is it a command there
    assert g(Commands(own)) == own


def test_guard_on_a_terminal_keeps_archcalcs_colours_only():
    assert Guard(tty=True)("\x1b[1;31mred\x1b[0m \x1b]0;t\x07 \x1b[2J") == "\x1b[1;31mred\x1b[0m \\u001b]0;t\\u0007 \\u001b[2J"
    assert Guard()("\x1b[1m") == "\\u001b[1m"


def test_neutral_keeps_json_valid_and_equal():
    """The guard's escapes mean the same character inside a JSON string: whatever a command
    writes as JSON (ensure_ascii or not) stays the same document."""
    rnd = random.Random(19)
    pieces = ["::", "##[", "#", ":", "\n", "\r", "\x1b", "\u202e", "\u200b", "\ufeff", "\udcff", "\U000e0041",
              "\x85", "\u2028", "é", "日", " ", "a", "\\", '"', "%", ","]
    for _ in range(300):
        doc = {"".join(rnd.choices(pieces, k=rnd.randint(0, 6))): ["".join(rnd.choices(pieces, k=rnd.randint(0, 12)))
                                                                   for _ in range(3)]}
        for ensure_ascii in (True, False):
            text = neutral(json.dumps(doc, ensure_ascii=ensure_ascii, indent=2))
            assert_harmless(text)
            assert json.loads(text) == doc


def test_user_strings_keep_one_line_and_show_what_they_hold():
    assert plain(CMD) == "\\x3a:error file=README.md,line=1,title=Pwned::x"
    assert plain("  " + STOP) == "  \\x3a:stop-commands::x"
    assert plain("\u3000::x") == "\u3000\\x3a:x"  # .NET's TrimStart strips Unicode blanks too
    assert plain("a::b ##[error]c") == "a::b \\x23#[error]c"
    assert plain("x\n::error::y") == "x ::error::y"
    assert plain(os.fsdecode(b"bad\xff")) == "bad\\xff"
    assert plain("\u202e\u200b\u2060\U000e0001") == "\\u202e\\u200b\\u2060\\U000e0001"
    assert escape("a\nb\rc") == "a\\x0ab\\x0dc" and escape("::a\n::b", newlines=False) == "\\x3a:a\n\\x3a:b"
    assert plain("日本 ok: #1 [x]") == "日本 ok: #1 [x]"


def test_every_unsafe_character_fails_the_fast_check():
    """The guard's fast path trusts str.isprintable: each character it must escape is one
    isprintable rejects (so a printable text needs no closer look)."""
    from archcalc.output import textout

    everything = "".join(map(chr, range(0x110000)))
    unsafe = textout._UNSAFE_OUT.findall(everything)
    assert len(unsafe) > 2000 and not any(ch.isprintable() for ch in unsafe)
    assert all(textout._UNSAFE_OUT.match(ch) for ch in "\x1b\r\x0b\x85\u2028\u202e\u200b\u2060\ufeff\u180e\udcff")


def test_guard_fast_path_on_a_large_table():
    """A 200,000-row table is megabytes of one write: the guard's checks run in C."""
    row = "│ {:>6} │ conv{:<8} │ 4x4x4 │ {:>9} │ {:>10} │ <0.1 ▏ │ 1/1/0 │\n"
    text = "".join(row.format(i, i, i * 20, i * 256) for i in range(40_000))  # ~3 MB
    ascii_text = text.replace("│", "|").replace("▏", "|")
    for t in (text, ascii_text):
        best = min(_timed(Guard(), t) for _ in range(3))
        assert best < 0.3, f"{best:.3f} s for {len(t):,} characters"
    assert Guard()(text) == text


def _timed(g, text):
    start = time.perf_counter()
    g(text)
    return time.perf_counter() - start
