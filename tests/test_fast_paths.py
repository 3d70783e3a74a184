"""The fast paths of issue 14 give exactly what the plain paths give.

Each speed-up here replaced or bypassed a general mechanism; these tests hold the two side by side
on real networks, so a fast path can never change a number or a byte of output."""

import json
import sys

import pytest

from archcalc import analyze, load, render
from archcalc.report import layer_dict, layer_line

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
def test_no_fork_when_threads_run():
    import threading

    from archcalc.checks import _jobs

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
    from archcalc.textout import cells, one_column

    assert cells("25.5 ██▏") == 8 and one_column("25.5 ██▏")
    assert cells("中文") == 4 and not one_column("中文")  # wide: two columns each
    assert not one_column("a\tb")
