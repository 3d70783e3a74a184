"""The fast paths of issue 14 give exactly what the plain paths give.

Each speed-up here replaced or bypassed a general mechanism; these tests hold the two side by side
on real networks, so a fast path can never change a number or a byte of output."""

import json
import sys

import pytest

from archcalc import analyze, load
from archcalc.output import render
from archcalc.output.report import layer_dict, layer_line

from conftest import ROOT, run_subprocess

NETS = ("vgg16", "googlenet", "resnet50", "efficientnet_b0", "deeplabv3_mobilenet_v3_large", "unet", "stack3x3")


@pytest.mark.parametrize("name", NETS)
def test_json_layer_lines_are_json_dumps(name):
    """`layer_line` writes what json.dumps writes for every layer (symbolic ones through json.dumps
    itself), and the whole document parses to the same data as the plain encoder's."""
    report = analyze(load(name))
    for row in report.rows:
        assert layer_line(row) == json.dumps(layer_dict(row), separators=(", ", ": ")), row.name
    doc = json.loads(render.summary_json(report))
    assert doc["layers"] == [layer_dict(r) for r in report.rows]
    # one line per layer, the rest of the document indented as before
    text = render.summary_json(report)
    assert text.count("\n    {\"name\": ") == len(report.rows)


def test_json_symbolic_layers_fall_back():
    report = analyze(load("stack3x3"))  # C free: params 9*C**2 per conv
    line = layer_line(report.rows[0])
    assert '"params": "9*C**2"' in line


def test_empty_layer_list_is_valid_json(tmp_path):
    spec = tmp_path / "one.yaml"
    spec.write_text("name: one\ninput: [3, 8, 8]\nlayers:\n  - relu\n")
    doc = json.loads(render.summary_json(analyze(load(str(spec)))))
    assert [r["name"] for r in doc["layers"]] == ["relu1"]


def test_engine_caches_repeated_layers_exactly(tmp_path):
    """A repeat's layers share one args object, so the engine computes each (args, input shape)
    once: the rows must equal those of the same layers written out one by one."""
    body = "      - conv: {out: 8, kernel: 3, padding: 1}\n      - relu\n      - maxpool: {kernel: 2, stride: 2, ceil_mode: true}\n"
    rep = tmp_path / "rep.yaml"
    rep.write_text("name: r\ninput: [8, 37, 37]\nlayers:\n  - repeat: 3\n    layers:\n" + body)
    flat = tmp_path / "flat.yaml"
    flat.write_text("name: r\ninput: [8, 37, 37]\nlayers:\n" + "".join(
        f"  - {{conv: {{out: 8, kernel: 3, padding: 1}}, name: conv{k}}}\n  - {{relu: {{}}, name: relu{k}}}\n"
        f"  - {{maxpool: {{kernel: 2, stride: 2, ceil_mode: true}}, name: maxpool{k}}}\n" for k in (1, 2, 3)))
    a, b = analyze(load(str(rep))), analyze(load(str(flat)))
    assert [layer_dict(r) | {"line": 0} for r in a.rows] == [layer_dict(r) | {"line": 0} for r in b.rows]
    # 37 -> 19 -> 10 -> 5 with ceil mode; RF of the last pool: 3 + 1 + 2*2 + 2*2 + 4*2 + 4*1... worked out:
    # conv r=3 j=1; pool r=4 j=2; conv r=8 j=2; pool r=10 j=4; conv r=18 j=4; pool r=22 j=8
    last = a.rows[-1]
    assert last.shape == (8, 5, 5)
    assert (last.rf[0].size, last.rf[0].stride) == (22, 8)


def test_parallel_check_reports_what_one_process_reports():
    """`check --jobs 2` (forked workers; a fresh process has no other threads) and `--jobs 1`
    print the same JSON report and exit alike, over ten files including a family."""
    files = sorted(str(p.relative_to(ROOT)) for p in (ROOT / "specs").glob("*.yaml"))[:9] + ["specs/efficientnet.yaml"]
    one = run_subprocess("check", *files, "-f", "json", "--jobs", "1")
    two = run_subprocess("check", *files, "-f", "json", "--jobs", "2")
    assert one.returncode == two.returncode == 0, one.stderr + two.stderr
    assert one.stdout == two.stdout
    doc = json.loads(one.stdout)
    members = [s["variant"] for s in doc["specs"] if s["file"] == "specs/efficientnet.yaml"]
    assert members == [f"efficientnet_b{k}" for k in range(8)]
    assert len({s["file"] for s in doc["specs"]}) == 10


def test_jobs_out_of_range_is_a_usage_error(cli):
    code, out, err = cli("check", "specs/vgg16.yaml", "--jobs", "-1")
    assert code == 2 and "--jobs -1" in err and out == ""


@pytest.mark.skipif(sys.platform != "linux", reason="fork-based workers are tested where CI runs")
def test_no_fork_when_threads_run(monkeypatch):
    import threading

    from archcalc.ci.checks import _jobs

    # the suite may have started threads of its own (torch does): count from this test's view
    base = threading.active_count()
    monkeypatch.setattr(threading, "active_count", lambda: threading.enumerate().__len__() - base + 1)
    assert _jobs(4, 20) == 4
    assert _jobs(0, 3) == 1  # a few files: no workers
    assert _jobs(1, 100) == 1
    stop = threading.Event()
    t = threading.Thread(target=stop.wait)
    t.start()
    try:
        assert _jobs(4, 20) == 1
    finally:
        stop.set()
        t.join()


def test_table_widths_of_one_column_glyphs():
    from archcalc.output.textout import cells, one_column

    assert cells("25.5 ██▏") == 8 and one_column("25.5 ██▏")
    assert cells("中文") == 4 and not one_column("中文")  # wide: two columns each
    assert not one_column("a\tb")


@pytest.mark.parametrize("name", ("resnet50", "googlenet", "efficientnet_b0"))
def test_json_layer_lines_with_the_shared_cache(name):
    """The document writer caches each shape's and field's text by object: every line is still
    exactly json.dumps of the layer."""
    report = analyze(load(name))
    cache: dict = {}
    for row in report.rows:
        assert layer_line(row, cache) == json.dumps(layer_dict(row), separators=(", ", ": ")), row.name
    assert len(cache) < 2 * len(report.rows)  # rows share shapes and fields


BLOCKS = """name: b
input: [4, 16, 16]
blocks:
  unit:
    args: {k: 3, bias: true, width: 4}
    layers:
      - conv: {out: $width, kernel: $k, padding: $k // 2, bias: $bias}
      - relu
layers:
"""


def test_block_keys_are_read_per_argument_values(tmp_path):
    """A layer's keys are read once per YAML value and argument values: a block called again with
    other arguments gets its own keys, with the same ones the very same keys."""
    spec = tmp_path / "b.yaml"
    spec.write_text(BLOCKS + "  - unit: {k: 3}\n  - unit: {k: 5, width: 6}\n  - unit: {k: 3}\n"
                    "  - repeat: 2\n    layers: [{unit: {k: 1, width: $i}}]\n")
    net = load(str(spec))
    convs = [n for n in net.nodes if n.type == "conv"]
    assert [(n.args["kernel"], n.args["padding"], n.args["out"]) for n in convs] == [
        ((3, 3), (1, 1, 1, 1), 4), ((5, 5), (2, 2, 2, 2), 6), ((3, 3), (1, 1, 1, 1), 4),
        ((1, 1), (0, 0, 0, 0), 1), ((1, 1), (0, 0, 0, 0), 2)]
    assert convs[0].args is convs[2].args  # the same values: the same keys (the engine's cache hits)
    rows = analyze(net).rows
    # params: 4*4*9+4, 6*4*25+6, 4*6*9+4, 1*4*1+1, 2*1*1+2
    assert [r.params for r in rows if r.type == "conv"] == [148, 606, 220, 5, 4]


def test_argument_types_are_part_of_the_key(tmp_path):
    """1 and true are equal in Python: a block called with bias: true, then bias: 1, must still
    reject the second (a bool key), not reuse the first call's keys."""
    spec = tmp_path / "b.yaml"
    spec.write_text(BLOCKS + "  - unit: {bias: true}\n  - unit: {bias: 1}\n")
    code = run_subprocess("summary", str(spec))
    assert code.returncode == 2 and "bias: expected" in code.stderr, code.stderr


def test_repeat_rounds_after_the_first_name_clash_alike(tmp_path):
    """Later rounds of a repeat take a fast path (the layer's keys known): a derived name that
    clashes with an earlier explicit one fails there as in the first round, at the same place."""
    for clash in ("conv1", "conv3"):  # round 1 (the plain path) and round 3 (the fast path)
        spec = tmp_path / f"{clash}.yaml"
        spec.write_text(f"name: c\ninput: [4, 8, 8]\nlayers:\n  - {{conv: {{out: 4, kernel: 1}}, name: {clash}}}\n"
                        "  - repeat: 4\n    layers:\n      - conv: {out: 4, kernel: 1}\n")
        out = run_subprocess("summary", str(spec))
        assert out.returncode == 2, out.stdout
        assert f"layer name '{clash}' is used twice" in out.stderr and ":7:" in out.stderr, out.stderr


def test_parallel_check_hands_symbolic_specs_to_the_parent():
    """Workers never import sympy: a spec that needs it comes back to the parent, which imports
    it once. The report equals the one-process report."""
    files = ["specs/stack3x3.yaml", "specs/conv7x7.yaml"] + sorted(
        str(p.relative_to(ROOT)) for p in (ROOT / "specs").glob("vgg1*.yaml"))
    one = run_subprocess("check", *files, "-f", "json", "--jobs", "1")
    two = run_subprocess("check", *files, "-f", "json", "--jobs", "3")
    assert one.returncode == two.returncode == 0, one.stderr + two.stderr
    assert one.stdout == two.stdout
    doc = json.loads(two.stdout)
    stack = next(s for s in doc["specs"] if s["file"] == "specs/stack3x3.yaml")
    assert stack["status"] == "pass" and "27*C**2" in json.dumps(stack)


def test_blocked_sympy_raises_in_the_worker_and_not_after():
    code = ("import sys\nfrom archcalc import expr\nexpr.block_sympy()\n"
            "try:\n    expr.sympy()\nexcept expr.SympyBlocked:\n    print('blocked', 'sympy' in sys.modules)\n"
            "expr.block_sympy(False)\nprint(expr.sympy().__name__)\n")
    out = __import__("subprocess").run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert out.stdout.split() == ["blocked", "False", "sympy"], out.stderr


def test_console_exit_flushes_everything_and_keeps_the_code(tmp_path):
    """`python -m archcalc` ends with a hard exit once its output is flushed (no teardown): the
    whole document arrives, errors keep exit code 2, and a reader that stops early sees no
    traceback."""
    out = run_subprocess("summary", "resnet152", "-f", "json")
    assert out.returncode == 0 and out.stderr == ""
    assert len(json.loads(out.stdout)["layers"]) == 515
    bad = run_subprocess("summary", str(tmp_path / "missing.yaml"))
    assert bad.returncode == 2 and bad.stdout == "" and "no such file" in bad.stderr
    import subprocess

    proc = subprocess.Popen([sys.executable, "-m", "archcalc", "summary", "resnet152"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, cwd=ROOT)
    proc.stdout.readline()
    proc.stdout.close()  # the reader goes away mid-table
    assert proc.wait() == 0 and proc.stderr.read() == b""
    proc.stderr.close()
