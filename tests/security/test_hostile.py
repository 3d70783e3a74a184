"""Untrusted specs (issue 7): every hostile input ends in a result or one clear line, in bounded time
and memory, and nothing in a spec runs as code or chooses where a file lands.

The corpus is ``tests/hostile/*.yaml`` (each file's header says what it tries, how to run it and
what must come out) plus the cases below that are generated because they are large or are not
files (a 3 GB sparse file, a FIFO, /dev/zero). Each case runs the CLI's ``main`` in this process:
its memory is the process's peak resident set after the case less its resident set before (an
upper bound of what the case added), its time the CPU seconds it spent (user + system: the work it did,
whatever else the machine runs at the time), and a wall-clock alarm fails a case that hangs; the cases about a whole process (the largest legal
network's table) run ``python -m archcalc`` in a child and measure its peak resident set with
``os.wait4``.
"""

from __future__ import annotations

import ast
import contextlib
import io
import os
import re
import resource
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import ROOT

HOSTILE = ROOT / "tests" / "hostile"
TIME_LIMIT = 5.0  # CPU seconds per case (user + system; a hang is caught by the wall-clock alarm)
MEMORY_LIMIT = 500 * 2**20  # bytes per case: added peak resident set (in-process) or peak RSS (a child)


def run(args, cwd, env=None, timeout=60, process=False):
    """(exit code, stdout, stderr, seconds, peak bytes) of one archcalc command."""
    if process:
        return _run_process(args, cwd, env, timeout)
    from archcalc.cli.main import main

    out, err = io.StringIO(), io.StringIO()
    old_cwd, old_env = os.getcwd(), dict(os.environ)
    os.chdir(cwd)
    os.environ.update({"COLUMNS": "100", **(env or {})})
    signal.signal(signal.SIGALRM, _too_long)  # a hang fails the case (the handler raises in it)
    signal.setitimer(signal.ITIMER_REAL, timeout)
    before = _rss()
    start = _cpu()
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = main(list(args))
        seconds = _cpu() - start
        # the process's peak resident set after the case, less its resident set before it: an
        # upper bound of what the case added (the peak is at least what it reached)
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 - before
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        os.chdir(old_cwd)
        os.environ.clear()
        os.environ.update(old_env)
    return code, out.getvalue(), err.getvalue(), seconds, peak


class CaseTooLong(Exception):
    pass


def _too_long(signum, frame):
    raise CaseTooLong("the case ran past its time limit")


def _cpu():
    """CPU seconds this process has spent (user + system, all its threads): the work a case does,
    not how busy the machine was while it ran."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _rss():
    """This process's resident set now, in bytes (Linux)."""
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def _run_process(args, cwd, env, timeout):
    out_path, err_path = cwd / ".out", cwd / ".err"
    with open(out_path, "wb") as out, open(err_path, "wb") as err:
        start = time.monotonic()
        proc = subprocess.Popen([sys.executable, "-m", "archcalc", *args], stdout=out, stderr=err, cwd=cwd,
                                env={**os.environ, "COLUMNS": "100", **(env or {})}, stdin=subprocess.DEVNULL)
        deadline = start + timeout
        while True:
            pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                break
            if time.monotonic() > deadline:
                proc.kill()
                os.wait4(proc.pid, 0)
                pytest.fail(f"archcalc {' '.join(args)[:200]} ran for more than {timeout} s")
            time.sleep(0.01)
    seconds = usage.ru_utime + usage.ru_stime  # the child's CPU seconds (wall clock bounded above)
    code = os.waitstatus_to_exitcode(status)
    return code, out_path.read_text(errors="replace"), err_path.read_text(errors="replace"), seconds, usage.ru_maxrss * 1024


def header(path: Path) -> dict:
    meta = {"run": "summary {spec}", "expect": "2"}
    for line in path.read_bytes().decode("utf-8", "replace").splitlines():
        m = re.match(r"# (\w+): (.*)", line)
        if not m:
            break
        meta[m.group(1)] = m.group(2)
    return meta


def assert_clean(code, out, err, expect, message=None, file_hint=None):
    """exit 2: nothing on stdout, exactly one line on stderr naming the file; exit 0: no traceback."""
    assert "Traceback" not in err, err[-2000:]
    assert code == expect, (code, out[-500:], err[-500:])
    if expect == 2:
        assert out == "", "no partial output pretending to be a result"
        lines = err.splitlines()
        assert len(lines) == 1, err[:2000]
        assert lines[0].startswith("archcalc: error: ")
        assert len(lines[0]) < 600, "an error quotes at most ~80 characters of the input"
        if file_hint:
            assert file_hint in lines[0]
        if message:
            assert message in lines[0], lines[0]


CORPUS = sorted(HOSTILE.glob("*.yaml"))


@pytest.mark.parametrize("path", CORPUS, ids=[p.stem for p in CORPUS])
def test_corpus(path, tmp_path):
    meta = header(path)
    spec = tmp_path / path.name
    spec.write_bytes(path.read_bytes())
    args = meta["run"].format(spec=spec).split()
    code, out, err, seconds, peak = run(args, tmp_path)
    expect = int(meta["expect"])
    assert_clean(code, out, err, expect, meta.get("message"), file_hint=spec.name if expect == 2 else None)
    # an ONNX export (the exporter's own work, not the hostile input) may take longer
    assert seconds < float(meta.get("seconds", TIME_LIMIT)), f"{seconds:.1f} s"
    assert peak < MEMORY_LIMIT, f"{peak / 2**20:.0f} MB"
    if "writes" in meta:  # a sanitised default output name, in the working directory only
        written = tmp_path / meta["writes"]
        assert written.is_file(), sorted(p.name for p in tmp_path.iterdir())
        assert not (tmp_path.parent.parent / "x.onnx").exists()
        # never overwrite without --force
        code2, _, err2, _, _ = run(args, tmp_path)
        assert code2 == 2 and "exists; pass --force to overwrite it" in err2


# --------------------------------------------------------------------------- generated cases


def _spec(tmp_path, text, name="s.yaml"):
    p = tmp_path / name
    p.write_text(text)
    return p


TINY = "input: [3, 8, 8]\nlayers: [{conv: {out: 4, kernel: 3}}]\n"


def test_file_larger_than_the_limit_is_not_read_whole(tmp_path):
    big = tmp_path / "big.yaml"
    with open(big, "wb") as fh:  # a sparse 3 GB file: reading it whole would take 3 GB
        fh.truncate(3 * 2**30)
    code, out, err, seconds, rss = run(["summary", str(big)], tmp_path)
    assert_clean(code, out, err, 2, "is larger than the limit of 2,000,000 bytes")
    assert rss < MEMORY_LIMIT and seconds < TIME_LIMIT


@pytest.mark.parametrize("kind", ["directory", "fifo", "device", "not_a_dir", "too_long", "missing"])
def test_paths_that_are_not_spec_files(kind, tmp_path):
    expected = {"directory": "is a directory, not a spec file", "fifo": "is a FIFO, not a spec file",
                "device": "is a device, not a spec file", "not_a_dir": "cannot read",
                "too_long": "cannot read", "missing": "no such file"}[kind]
    if kind == "directory":
        path = tmp_path / "d.yaml"
        path.mkdir()
    elif kind == "fifo":
        path = tmp_path / "f.yaml"
        os.mkfifo(path)  # opening it for reading would block forever without O_NONBLOCK
    elif kind == "device":
        path = Path("/dev/zero")  # endless
    elif kind == "not_a_dir":
        path = _spec(tmp_path, TINY) / "x.yaml"
    elif kind == "too_long":
        path = tmp_path / ("x" * 5000 + ".yaml")
    else:
        path = tmp_path / "missing.yaml"
    code, out, err, seconds, rss = run(["summary", str(path)], tmp_path)
    assert_clean(code, out, err, 2, expected)
    assert seconds < TIME_LIMIT and rss < MEMORY_LIMIT


DIGITS = "9" * 5000  # over Python's 4,300-digit int <-> str limit


@pytest.mark.parametrize(
    "args, message",
    [
        (["summary", "{spec}", "--set", f"H={DIGITS}"], "--set 'H=99999"),
        (["summary", "{spec}", "--input", f"3x{DIGITS}x8"], "--input '3x9999"),
        (["summary", "{spec}", "--batch", DIGITS], "--batch '9999"),
        (["check", "{spec}", "--budget", f"params={DIGITS}"], "cannot read amount"),
        (["summary", "{spec}", "--input", "3x²x²"], "--input '3x²x²': expected CxHxW"),
        (["summary", "vgg16", "--input", "3x20000x20000", "--format", "json"], None),
        (["verify", "vgg16", "--input", "3x20000x20000", "--device", "cpu"], "verify --device cpu would allocate about 452.77 GiB"),
        (["verify", "vgg16", "--batch", "100000", "--device", "cpu"], "would allocate about"),
        (["verify", "vgg16", "--device", "cpu", "--max-memory", "10MiB"], "above the limit of 10.00 MiB"),
    ],
    ids=["set", "input", "batch", "budget", "superscript", "vgg16-20000-summary", "vgg16-20000-cpu", "batch-100000", "max-memory"],
)
def test_command_line_values(args, message, tmp_path):
    spec = _spec(tmp_path, TINY)
    args = [a.format(spec=spec) for a in args]
    code, out, err, seconds, rss = run(args, tmp_path)
    assert_clean(code, out, err, 0 if message is None else 2, message)
    assert seconds < TIME_LIMIT


@pytest.mark.parametrize(
    "text, message",
    [
        (f"input: [3, 8, 8]\nlayers: [{{conv: {{out: {DIGITS}, kernel: 3}}}}]\n", "an integer of 5000 digits is longer than the limit of 100"),
        (f"name: {DIGITS}\ninput: [3, 8, 8]\nlayers: [relu]\n", "an integer of 5000 digits"),
        ("input: [3, 8, 8]\nlayers: [{conv: {out: " + "[" * 300 + "]" * 300 + ", kernel: 3}}]\n", "nested more than 100 levels deep"),
        ("input: [3, 8, 8]\nlayers: [{conv: {out: '" + "+".join(["1"] * 2000) + "', kernel: 3}}]\n", "longer than the limit of 1000"),
        ("input: [3, 8, 8]\nlayers: [{conv: {out: '" + "+".join(["1"] * 400) + "', kernel: 3}}]\n", "has more than 200 parts"),
        ("input: [3, 8, 8]\nlayers: [{conv: {out: '" + "(" * 300 + "1" + ")" * 300 + "', kernel: 3}}]\n", "cannot parse expression"),
        ("input: [3, 8, 8]\nlayers: [" + "x" * 1_900_000 + "]\n", "unknown layer type 'xxxx"),
        ("input: [3, 8, 8]\nlayers: [{conv: {out: 4, kernel: 3}, name: '" + "n" * 5000 + "'}]\n", "longer than 200 characters"),
    ],
    ids=["int-digits", "name-digits", "yaml-depth", "expr-chars", "expr-terms", "expr-parens", "echo-1.9MB", "long-name"],
)
def test_spec_values(text, message, tmp_path):
    spec = _spec(tmp_path, text)
    code, out, err, seconds, rss = run(["summary", str(spec)], tmp_path)
    assert_clean(code, out, err, 2, message, file_hint=str(spec))
    assert seconds < TIME_LIMIT and rss < MEMORY_LIMIT


def test_chain_of_500_blocks(tmp_path):
    blocks = "".join(f"  b{i}:\n    layers: [b{i + 1}]\n" for i in range(500)) + "  b500:\n    layers: [relu]\n"
    spec = _spec(tmp_path, f"input: [3, 8, 8]\nblocks:\n{blocks}layers: [b0]\n")
    code, out, err, seconds, rss = run(["summary", str(spec)], tmp_path)
    assert_clean(code, out, err, 2, "blocks call blocks more than 100 deep", file_hint=str(spec))
    assert seconds < TIME_LIMIT and rss < MEMORY_LIMIT


def test_xception_symbolic_has_no_false_mismatch(tmp_path):
    code, out, err, seconds, rss = run(["summary", "xception", "--symbolic", "H,W", "--format", "json"], tmp_path)
    assert_clean(code, out, err, 0)
    import json

    data = json.loads(out)
    assert data["totals"]["params"] == 22_855_952  # the concrete figure (docs/zoo.md), independent of H and W
    # the zoo's largest closed form (every layer's field, memory and counts in H and W): legitimate
    # work, bounded by its own CPU-time limit (6-8 s here on a busy 2-core machine, 3-4 s idle)
    assert seconds < 6 * TIME_LIMIT and rss < MEMORY_LIMIT


def test_largest_legal_network_prints_its_table(tmp_path):
    """200,000 layers (the node cap): the table in under 10 s (issue 7), JSON too."""
    spec = _spec(tmp_path, "input: [4, 4, 4]\nlayers:\n  - repeat: 100000\n    layers: [{conv: {kernel: 1}}, relu]\n")
    code, out, err, seconds, rss = run(["summary", str(spec)], tmp_path, env={"COLUMNS": "120"}, timeout=120, process=True)
    assert_clean(code, out, err, 0)
    assert seconds < 10, f"{seconds:.1f} s"
    assert "2,000,000" in out  # 100,000 convs of 4*4 + 4 params each (1x1, 4 -> 4 channels, bias)
    over = _spec(tmp_path, "input: [4, 4, 4]\nlayers:\n  - repeat: 100001\n    layers: [{conv: {kernel: 1}}, relu]\n", "over.yaml")
    code, out, err, seconds, rss = run(["summary", str(over)], tmp_path)
    assert_clean(code, out, err, 2, "the network expands to more than 200000 layers")
    assert seconds < TIME_LIMIT


# --------------------------------------------------------------------------- generated source


HOSTILE_TEXTS = [
    'x"""; __import__("os").system("touch marker"); """',
    "'''; import os #",
    "\\\\\" + __import__('os').getcwd() + \"",
    "line one\nline two \"\"\" still text",
    "ends with a quote\"",
    "{braces} %s %(x)s",
]


def _exported(net_text, tmp_path):
    from archcalc.spec.load import loads
    from archcalc.torchside.build import export_source

    return export_source(loads(net_text, str(tmp_path / "s.yaml")))


@pytest.mark.parametrize("text", HOSTILE_TEXTS)
def test_exported_source_holds_spec_text_only_in_string_literals(text, tmp_path):
    """Differential: the same spec exported with a hostile and with a plain title and source gives
    the same code once string literals are blanked, so spec text can only be data."""
    import yaml

    def export(title, source):
        doc = {"name": "n", "title": title, "source": source, "input": [3, 8, 8],
               "layers": [{"conv": {"out": 4, "kernel": 3}}, {"dropout": {"p": 0.5}}]}
        return _exported(yaml.safe_dump(doc), tmp_path)

    hostile = export(text.replace("\n", " "), text)
    plain = export("plain", "plain")
    assert _code(ast.parse(hostile)) == _code(ast.parse(plain))
    assert text.replace("\n", " ") in ast.get_docstring(ast.parse(hostile))
    _assert_top_level(ast.parse(hostile))


class _BlankStrings(ast.NodeTransformer):
    def visit_Constant(self, node):
        return ast.Constant("") if isinstance(node.value, str) else node


def _code(tree):
    return ast.dump(_BlankStrings().visit(tree))


def _assert_top_level(tree):
    """A generated module is a docstring, imports of torch, class definitions and the __main__ block."""
    for i, node in enumerate(tree.body):
        if isinstance(node, ast.Expr):
            assert i == 0 and isinstance(node.value, ast.Constant), ast.dump(node)[:200]
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            mods = [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module]
            assert all(m.split(".")[0] == "torch" for m in mods), mods
        elif isinstance(node, ast.If):
            assert ast.unparse(node.test) == "__name__ == '__main__'"
        else:
            assert isinstance(node, ast.ClassDef), ast.dump(node)[:200]


def test_every_zoo_export_parses_to_known_code(tmp_path):
    from archcalc import load
    from archcalc.spec import zoo
    from archcalc.torchside.build import export_source
    from conftest import zoo_sample

    for name in zoo_sample(zoo.names()):  # every name with ARCHCALC_DEEP=1
        net = load(name)
        if net.symbolic:  # export needs concrete sizes (conv7x7 and stack3x3 keep C symbolic)
            continue
        tree = ast.parse(export_source(net))
        _assert_top_level(tree)
        doc = ast.get_docstring(tree)
        assert doc is not None and doc.startswith(net.name)


def test_hostile_title_never_runs(tmp_path):
    """The issue's exact reproduction: export, then run the exported file; no marker appears."""
    spec = tmp_path / "s.yaml"
    spec.write_bytes((HOSTILE / "code_in_title.yaml").read_bytes())
    code, out, err, _, _ = run(["export", str(spec), "--to", "torch", "-o", "m.py"], tmp_path)
    assert code == 0, err
    done = subprocess.run([sys.executable, "m.py"], cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "112 parameters" in done.stdout  # conv 3 -> 4, 3x3: 4*3*9 + 4
    assert not (tmp_path / "marker").exists() and not (tmp_path / "marker2").exists()
    assert 'x"""; __import__' in ast.get_docstring(ast.parse((tmp_path / "m.py").read_text()))


def test_default_output_names_stay_in_the_working_directory(tmp_path):
    from archcalc.cli.torch import default_output_name

    assert default_output_name("/tmp/hostile_abs", ".onnx") == "tmp_hostile_abs.onnx"
    assert default_output_name("../../x", ".onnx") == "x.onnx"
    assert default_output_name("..", ".onnx") == "model.onnx"
    assert default_output_name("a/../../b\\c", ".onnx") == "a_.._.._b_c.onnx"
    # an explicit -o is refused when it exists, and written with --force (torch source: fast)
    spec = _spec(tmp_path, TINY)
    (tmp_path / "m.py").write_text("keep me")
    code, out, err, _, _ = run(["export", str(spec), "--to", "torch", "-o", "m.py"], tmp_path)
    assert_clean(code, out, err, 2, "'m.py' exists; pass --force to overwrite it")
    assert (tmp_path / "m.py").read_text() == "keep me"
    code, out, err, _, _ = run(["export", str(spec), "--to", "torch", "-o", "m.py", "--force"], tmp_path)
    assert code == 0 and "class S(nn.Module)" in (tmp_path / "m.py").read_text()


def test_torch_commands_refuse_networks_beyond_their_layer_limit(tmp_path):
    spec = _spec(tmp_path, "input: [4, 4, 4]\nlayers:\n  - repeat: 10001\n    layers: [{conv: {kernel: 1}}, relu]\n")
    for args in (["verify", str(spec)], ["export", str(spec), "--to", "torch"]):
        code, out, err, seconds, rss = run(args, tmp_path)
        assert_clean(code, out, err, 2, "the network has 20,002 layers, above the limit of 20,000 for a torch model", spec.name)
        assert seconds < TIME_LIMIT


def test_onnx_failure_is_one_clean_line():
    """An exporter error (here with ANSI colour codes, as torch.onnx's rich output has) becomes one
    plain line, and the hint names a missing package only when one is missing."""
    from archcalc.torchside.build import onnx_failure

    err = RuntimeError("\x1b[1;31mFailed to export\x1b[0m the model:\nstep 2 of 9\n")
    message, hint = onnx_failure(err)
    assert message == "ONNX export failed: RuntimeError: Failed to export the model:"
    assert "pip install" not in hint  # onnx and onnxscript are installed here (test extra)
    message, hint = onnx_failure(ImportError("No module named 'onnxscript'"))
    assert hint.startswith("pip install onnx onnxscript")
