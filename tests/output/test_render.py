"""Tables for any terminal: widths, pipes, encodings, colour, hostile strings, and the torchinfo
parity figures (trainable/frozen, details, shares, size lines)."""

import io
import json
import os
import pty
import re
import subprocess
import sys

from archcalc import analyze, load
from archcalc.output.report import details, param_split, ratio, sizes
from archcalc.spec.load import loads
from archcalc.output.textout import Column, Out, plain, table
from conftest import ROOT


def _run(args, env=None, **kw):
    full = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "NO_COLOR")}
    full.update(env or {})
    return subprocess.run([sys.executable, "-m", "archcalc", *args], capture_output=True, text=True, cwd=ROOT,
                          env=full, errors="replace", **kw)


def _rows(name):
    r = analyze(load(name))
    return r, [(row.name, f"{row.params:,}", f"{row.macs:,}") for row in r.rows]


# --------------------------------------------------------------------------- widths


def test_summary_at_80_columns_keeps_every_layer_name_and_digit():
    proc = _run(["summary", "resnet50"], {"COLUMNS": "80"})
    assert proc.returncode == 0, proc.stderr
    report, rows = _rows("resnet50")
    lines = proc.stdout.splitlines()
    # the table: up to its total row (the memory lines under it may wrap onto a layer name)
    lines = lines[:next(i for i, x in enumerate(lines) if x.startswith("total")) + 1]
    table_lines = [x for x in lines if x.startswith(("layer", "conv1", "bn1", "relu", "maxpool", "avgpool",
                                                     "flatten", "fc", "total")) or x.startswith("layer")]
    assert max(len(x) for x in table_lines) <= 80
    body = {x.split()[0]: x.split() for x in lines if x and x.split()[0] in {r[0] for r in rows}}
    for name, params, macs in rows:  # every name, and its params and MACs whole, on its own line
        assert name in body, name
        assert params in body[name] and macs in body[name], (name, body[name])
    assert any(x.startswith("total") and "25,557,032" in x and "4,089,184,256" in x for x in lines)
    assert "(not shown at 80 columns:" in proc.stdout


def test_summary_in_a_real_80_column_terminal():
    """Width from the terminal itself (a pseudo-terminal of 80 columns), no COLUMNS."""
    import fcntl
    import struct
    import termios

    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 50, 80, 0, 0))
    env = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "NO_COLOR", "LINES")}
    proc = subprocess.Popen([sys.executable, "-m", "archcalc", "summary", "resnet50"], stdin=slave, stdout=slave,
                            stderr=slave, cwd=ROOT, env=env, close_fds=True)
    os.close(slave)
    chunks = []
    while True:
        try:
            data = os.read(master, 65536)
        except OSError:
            break
        if not data:
            break
        chunks.append(data)
    proc.wait(timeout=60)
    os.close(master)
    text = re.sub(r"\x1b\[[0-9;]*m", "", b"".join(chunks).decode("utf-8", "replace")).replace("\r", "")
    assert proc.returncode == 0
    _, rows = _rows("resnet50")
    for name, params, macs in rows:
        assert re.search(rf"^{re.escape(name)}\s.*\s{re.escape(params)}\s+{re.escape(macs)}\b", text, re.M), name
    table_part = text.split("(not shown")[0]
    assert max(len(x) for x in table_part.splitlines()) <= 80
    # the memory lines under it wrap to the terminal too, each figure on its own line
    assert max(len(x) for x in text.splitlines()) <= 80
    lines = text.splitlines()
    assert any(x.startswith("    peak_memory (inference_peak_bytes): ") for x in lines)
    assert any(x.startswith("    inference_live_bytes: 9,633,792 B ") for x in lines)  # 3 x 256x56x56 x 4


def test_boxed_at_100_columns_keeps_names_too():
    proc = _run(["summary", "resnet50"], {"COLUMNS": "100"})
    _, rows = _rows("resnet50")
    assert all(re.search(rf"\b{re.escape(n)}\b", proc.stdout) for n, _, _ in rows)
    assert max(len(x) for x in proc.stdout.split("(not shown")[0].splitlines()) <= 100


def test_piped_output_is_never_cut_and_follows_columns():
    wide = _run(["summary", "resnet50"])
    assert "┏" in wide.stdout and "RF size/stride/pad" in wide.stdout and "not shown" not in wide.stdout
    assert max(len(x) for x in wide.stdout.splitlines()) > 150  # every column, whatever the width
    narrow = _run(["summary", "resnet50"], {"COLUMNS": "120"})
    assert max(len(x) for x in narrow.stdout.split("(not shown")[0].splitlines()) <= 120


def test_table_layout_drops_by_priority_and_never_cuts():
    cols = [Column("name", "l", 0), Column("big", "r", 0), Column("extra", "l", 2), Column("more", "l", 1)]
    rows = [["a-very-long-layer-name", "123,456,789", "x" * 10, "y" * 10]]
    # compact widths 22, 11, 10, 10 and 2 between: 59 columns; without "extra" (priority 2) 47
    lines, hidden, _ = table(cols, rows, width=50)
    assert hidden == ["extra"]
    assert lines[2] == "a-very-long-layer-name  123,456,789  yyyyyyyyyy"
    lines, hidden, _ = table(cols, rows, width=20)  # essentials wider than the screen: kept whole
    assert hidden == ["extra", "more"] and any("123,456,789" in x and "a-very-long-layer-name" in x for x in lines)


# --------------------------------------------------------------------------- pipes, encodings, colour


def test_closed_pipe_is_a_quiet_exit_0():
    for spec in ("vgg16", "resnet152"):  # resnet152's table is larger than a pipe's buffer
        proc = subprocess.run(["bash", "-c", f"'{sys.executable}' -m archcalc summary {spec} | head -3; "
                               "echo \"status ${PIPESTATUS[0]}\""], capture_output=True, text=True, cwd=ROOT)
        assert proc.stdout.splitlines()[-1] == "status 0", proc.stdout
        assert len(proc.stdout.splitlines()) == 4
        assert "Traceback" not in proc.stderr and "Exception ignored" not in proc.stderr and proc.stderr == ""


def test_ascii_stream_gets_an_ascii_table():
    proc = _run(["summary", "vgg16"], {"PYTHONIOENCODING": "ascii"})
    assert proc.returncode == 0 and proc.stderr == ""
    assert proc.stdout.isascii()
    assert "+--" in proc.stdout and "| conv5_3 " in proc.stdout and "138,357,544" in proc.stdout
    assert "vgg16 - VGG-16" in proc.stdout  # the em dash made ASCII
    # user text that ASCII cannot hold is escaped, not an error
    proc = _run(["explain", "inception-bottleneck"], {"PYTHONIOENCODING": "ascii"})
    assert proc.returncode == 0 and proc.stderr == "" and proc.stdout.isascii()
    assert proc.stdout.startswith("inception-bottleneck - Inception module")


def test_ascii_stream_escapes_what_it_cannot_encode(tmp_path):
    spec = tmp_path / "accents.yaml"
    spec.write_text('name: réseau\ntitle: "Réseau à 2 couches"\ninput: [3, 8, 8]\nlayers:\n  - conv: {out: 4, kernel: 3}\n',
                    encoding="utf-8")
    proc = _run(["summary", str(spec)], {"PYTHONIOENCODING": "ascii"})
    assert proc.returncode == 0 and proc.stderr == ""
    assert "r\\xe9seau - R\\xe9seau \\xe0 2 couches" in proc.stdout


class _Buf(io.StringIO):
    encoding = "utf-8"


class _TTY(_Buf):
    def isatty(self):
        return True


def test_colour_only_on_a_terminal_and_never_with_no_color(monkeypatch):
    report = analyze(load("alexnet-paper"), batch=1)
    from archcalc.output import render

    monkeypatch.delenv("NO_COLOR", raising=False)
    monkeypatch.setenv("COLUMNS", "200")
    tty = _TTY()
    render.summary_table(Out(tty), report)
    assert "\x1b[1m" in tty.getvalue()
    monkeypatch.setenv("NO_COLOR", "1")
    tty = _TTY()
    render.summary_table(Out(tty), report)
    assert "\x1b" not in tty.getvalue()
    piped = _Buf()
    monkeypatch.delenv("NO_COLOR")
    render.summary_table(Out(piped), report)
    assert "\x1b" not in piped.getvalue()


# --------------------------------------------------------------------------- hostile strings

HOSTILE = """name: "[/]"
title: "[bold red]t[/bold red]"
source: "[link=http://x]src[/link]"
notes: "[/]"
input: [3, 8, 8]
layers:
  - {conv: {out: 4, kernel: 3}, name: c1}
  - relu
"""


def test_markup_in_spec_strings_is_plain_text_in_every_format(tmp_path):
    """rich markup in a name once raised MarkupError; every output prints it as the characters."""
    spec = tmp_path / "hostile.yaml"
    spec.write_text(HOSTILE)
    outputs = {}
    for args in (["summary", str(spec)], ["summary", str(spec), "-f", "markdown"], ["summary", str(spec), "-f", "csv"],
                 ["summary", str(spec), "-f", "json"], ["compare", str(spec), str(spec)], ["explain", str(spec)],
                 ["explain", str(spec), "c1"], ["graph", str(spec)], ["graph", str(spec), "-f", "dot"]):
        proc = _run(args, {"COLUMNS": "200"})
        outputs[" ".join(args[:1] + args[2:])] = proc
        assert proc.returncode == 0 and proc.stderr == "", (args, proc.stderr)
    table_out = outputs["summary"].stdout
    assert "[/] — [bold red]t[/bold red]" in table_out and "source: [link=http://x]src[/link]" in table_out
    assert outputs["summary -f markdown"].stdout.startswith("# [/]: [bold red]t[/bold red]\n")
    assert json.loads(outputs["summary -f json"].stdout)["network"]["name"] == "[/]"
    assert 'label="[/]"' in outputs["graph -f dot"].stdout
    assert outputs["explain"].stdout.startswith("[/] — [bold red]t[/bold red]\n")
    assert "into the totals:" in outputs["explain c1"].stdout


def test_escape_sequences_never_reach_the_terminal():
    """The loader refuses control characters in spec text; the renderers neutralise them anyway
    (names can also come from --set values, files, future inputs)."""
    from archcalc.output import render
    from archcalc.output.explain import explain_layer
    from archcalc.output.graph import dot, mermaid

    net = loads("input: [3, 8, 8]\nlayers:\n  - {conv: {out: 4, kernel: 3}, name: c1}\n", "e.yaml")
    evil = "x\x1b]0;pwned\x07\x1b[2J\u202e|<b>"
    net.name = net.title = net.source = evil
    net.nodes[0].name = "c1" + evil
    r = analyze(net)
    r.warnings.append(evil)
    texts = [render.summary_markdown(r, net=net), render.summary_csv(r, net=net), mermaid(net, r), dot(net, r),
             "\n".join(explain_layer(net, r, 0)), render.compare_markdown([r, r])]
    for mode in (None, 60):
        buf = _Buf()
        render.summary_table(Out(buf, width=mode), r, net=net)
        render.compare_table(Out(buf, width=mode), [r, r])
        texts.append(buf.getvalue())
    for text in texts:
        assert "\x1b" not in text and "\x07" not in text and "\u202e" not in text
        assert "\\x1b]0;pwned" in text or "#92;x1b" in text
    assert r"x\\x1b]0;pwned\\x07\\x1b[2J\\u202e\|&lt;b>" in texts[0]  # Markdown: \\, | and < escaped too


def test_plain_escapes_controls_and_keeps_text():
    assert plain("ok name") == "ok name"
    assert plain("a\x1b[31mb") == "a\\x1b[31mb"
    assert plain("x\u202ey") == "x\\u202ey"
    assert plain("t\tab\nnl") == "t ab nl"
    assert plain("日本") == "日本"


# --------------------------------------------------------------------------- torchinfo parity

FROZEN = """
name: frozen
input: [3, 32, 32]
blocks:
  unit:
    args: {out: null}
    layers:
      - {conv: {out: $out, kernel: 3, padding: 1, bias: false}}
      - bn
      - relu
layers:
  - {unit: {out: 16}, trainable: false}
  - unit: {out: 32}
  - global_avgpool
  - flatten
  - {linear: {out: 10}, trainable: false}
"""


def test_trainable_and_frozen_params():
    r = analyze(loads(FROZEN, "frozen.yaml"))
    # frozen: conv 16*3*9 = 432, its BN 2*16 = 32, linear 32*10 + 10 = 330
    # trainable: conv 32*16*9 = 4,608 and its BN 64
    assert param_split(r) == (4608 + 64, 432 + 32 + 330)
    assert r.totals["params"] == 4608 + 64 + 432 + 32 + 330
    r2 = analyze(loads(FROZEN, "frozen.yaml"), ensemble=3)
    assert param_split(r2) == (3 * (4608 + 64), 3 * (432 + 32 + 330))


def test_frozen_in_the_outputs(tmp_path, cli):
    spec = tmp_path / "frozen.yaml"
    spec.write_text(FROZEN)
    code, out, _ = cli("summary", str(spec))
    assert code == 0
    assert "params: 5,466 (5.47K); trainable 4,672, frozen 794" in out  # 4,672 + 794 = 5,466
    assert "(frozen)" in out
    code, out, _ = cli("summary", str(spec), "-f", "json")
    doc = json.loads(out)
    assert (doc["totals"]["params_trainable"], doc["totals"]["params_frozen"]) == (4672, 794)
    assert [x["trainable"] for x in doc["layers"]][:4] == [False, False, False, True]


DETAILS = """
input: [32, 16, 16]
layers:
  - {conv: {out: 32, kernel: 3, stride: 2, padding: 1, groups: 4, bias: false}}
  - {conv: {out: 32, kernel: 3, padding: [1, 2], dilation: 2, groups: depthwise}}
  - {conv: {out: 8, kernel: [1, 7], padding: [0, 0, 3, 3]}}
  - {maxpool: {kernel: 3, stride: 2, ceil_mode: true}}
  - {adaptive_avgpool: {size: 2}}
  - flatten
  - dropout: {p: 0.2}
"""


def test_details_column():
    net = loads(DETAILS, "d.yaml")
    assert [details(n) for n in net.nodes] == [
        "3x3/2 p1 g=4 nobias", "3x3 p1,2 d2 dw", "1x7 p0,3", "3x3/2 ceil", "2x2", "", "p=0.2"]


def test_shares_and_size_lines(cli):
    code, out, _ = cli("summary", "vgg16")
    # fc6: 102,764,544 / 138,357,544 = 74.27% of params; conv1_2: 1,849,688,064 / 15,470,264,320 = 11.96% of MACs
    fc6 = next(x for x in out.splitlines() if " fc6 " in x)
    assert " 74.3 " in fc6 and "█" in fc6
    conv12 = next(x for x in out.splitlines() if " conv1_2 " in x)
    assert " 12.0 " in conv12
    r = analyze(load("vgg16"), batch=2)
    s = sizes(r)
    assert s == {"input_bytes": 2 * 3 * 224 * 224 * 4, "param_bytes": 138_357_544 * 4,
                 "activation_bytes": 2 * 60_950_432, "total_bytes": 2 * 60_950_432 + 138_357_544 * 4}
    assert "size_input_bytes" not in out  # the sizes: behind --memory
    code, out, _ = cli("summary", "vgg16", "--memory")
    # 3x224x224 x 4 = 602,112; 60,950,432 + 138,357,544 x 4 = 614,380,608
    assert "size_input_bytes: 602,112 B" in out and "size_total_bytes: 614,380,608 B" in out
    assert "buffers" not in out  # no BN, no buffers
    code, out, _ = cli("summary", "resnet18")
    assert "; buffers 9,600 (BN running statistics)" in out


# --------------------------------------------------------------------------- other commands


def test_compare_ratios_are_never_hidden(cli):
    assert ratio(10_000, 10_004) == "1.0004x" and ratio(7, 7) == "same" and ratio(0, 3) == "n/a"
    code, out, _ = cli("compare", "vgg16", "resnet50")
    buffers = next(x for x in out.splitlines() if "buffers" in x)
    assert "53,120" in buffers and "n/a" in buffers and "inf" not in out
    code, out, _ = cli("compare", "resnet50", "resnet50")
    assert "same" in out and " 1x" not in out


def test_layers_listing_speaks_yaml(cli):
    code, out, _ = cli("layers")
    assert code == 0 and "None" not in out and "False" not in out and "True" not in out
    assert "kernel (required)" in out and "bias (true)" in out and "out (null)" in out
    code, out, _ = cli("layers", "-f", "json")
    conv = next(x for x in json.loads(out) if x["name"] == "conv")
    assert {"name": "bias", "kind": "bool", "kind_text": "true or false", "required": False, "default": True,
            "doc": "learnable bias"} in conv["keys"]
    code, _, err = cli("layers", "-f", "csv")
    assert code == 2 and err.endswith("archcalc: error: --format: 'csv' is not one of table, markdown, json\n")


def test_help_version_and_usage_errors():
    proc = _run(["--version"])
    assert proc.returncode == 0 and proc.stdout == "archcalc 0.1.0\n"
    for cmd in ("summary", "compare", "list", "layers", "explain", "graph", "plot"):
        h = _run([cmd, "-h"])
        assert h.returncode == 0 and "Usage: archcalc " + cmd in h.stdout
        assert not re.search(r"<[a-z\[\] ]+>|\{", h.stdout), (cmd, h.stdout)
        assert "docs/conventions.md" not in h.stdout
    proc = _run(["summary", "vgg16", "-f", "yaml"])
    assert proc.returncode == 2
    assert proc.stderr.splitlines()[-1] == "archcalc: error: --format: 'yaml' is not one of table, json, csv, markdown"
    proc = _run(["summary", "vgg16", "--depth", "0"])
    assert proc.returncode == 2 and proc.stderr == "archcalc: error: --depth 0: expected a positive integer\n"


def test_depth_that_folds_nothing_says_so(cli):
    code, out, err = cli("summary", "vgg16", "--depth", "1")
    assert code == 0 and "--depth 1 folds nothing" in err
    code, out, err = cli("summary", "resnet18", "--depth", "1")
    assert err == ""


def test_a_zoo_name_beside_a_file_of_that_name(cli, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "mynet.yaml").write_text("input: [1, 28, 28]\nlayers:\n  - conv: {out: 6, kernel: 5}\n")
    code, out, err = cli("summary", "mynet")
    assert code == 2 and "to read the file here, give its path: ./mynet.yaml" in err
    code, out, err = cli("summary", "./mynet.yaml", "-f", "json")
    assert code == 0 and json.loads(out)["totals"]["params"] == 6 * 25 + 6
    (tmp_path / "vgg16.yaml").write_text("input: [1, 28, 28]\nlayers:\n  - conv: {out: 6, kernel: 5}\n")
    code, out, err = cli("summary", "vgg16", "-f", "json")
    assert code == 0 and json.loads(out)["totals"]["params"] == 138_357_544
    assert "to use the file here, give its path: ./vgg16.yaml" in err


# --------------------------------------------------------------------------- verify's table (rendered here)


def test_verify_table_at_80_columns():
    from archcalc.output import render
    from archcalc.torchside import verify  # torch is a test dependency

    net = load("resnet50")
    report = analyze(net)
    result = verify.verify(net, report, device="meta")
    buf = _Buf()
    render.verify_table(result, Out(buf, width=80))
    text = buf.getvalue()
    lines = text.splitlines()
    table_part = text.split("(not shown")[0].splitlines()
    assert max(len(x) for x in table_part) <= 80
    for row in report.rows:  # every name, with its params and MACs whole
        hit = [x for x in lines if re.search(rf"\s{re.escape(row.name)}\s", " " + x)]
        assert hit and f"{row.params:,}" in hit[0] and f"{row.macs:,}" in hit[0], row.name
    assert "engine and torch agree" in text
    wide = _Buf()
    render.verify_table(result, Out(wide, width=None))
    assert "25,557,032 ✓" in wide.getvalue() and "Conv2d" in wide.getvalue()


def test_verify_table_prints_markup_as_text():
    """The verify renderer here takes names as text (cli_torch's rich table raised MarkupError)."""
    from archcalc.output import render
    from archcalc.torchside import verify

    net = loads('name: "[/]"\ninput: [3, 8, 8]\nlayers:\n  - {conv: {out: 4, kernel: 3}, name: c1}\n', "m.yaml")
    r = analyze(net)
    result = verify.verify(net, r, device="meta")
    buf = _Buf()
    render.verify_table(result, Out(buf, width=None))
    text = buf.getvalue()
    assert "verify [/] — engine vs torch" in text
    assert "112 ✓" in text  # 4 * 3 * 9 + 4 params
    assert "engine and torch agree" in text
