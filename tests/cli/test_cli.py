"""The command line: formats, the zoo listing, the layer listing, budgets, and start-up cost."""

import csv
import io
import json
import subprocess
import sys
from pathlib import Path


from archcalc.spec import zoo
from conftest import ROOT, run_subprocess


def test_summary_json_document(cli):
    code, out, err = cli("summary", "vgg16", "--format", "json")
    assert code == 0 and err == ""
    doc = json.loads(out)
    assert doc["schema"] == 1
    assert doc["network"]["name"] == "vgg16"
    assert doc["input"] == [3, 224, 224] and doc["output"] == [1000]
    t = doc["totals"]
    assert (t["params"], t["macs"], t["activations"], t["activation_bytes"]) == (
        138_357_544, 15_470_264_320, 15_237_608, 60_950_432)
    conv53 = next(r for r in doc["layers"] if r["name"] == "conv5_3")
    assert conv53["rf"]["h"] == {"size": 196, "stride": 16, "padding": 90}
    pool5 = next(r for r in doc["layers"] if r["name"] == "pool5")
    assert pool5["rf"]["w"] == {"size": 212, "stride": 32, "padding": 90}
    assert conv53["params"] == 512 * 512 * 9 + 512 and conv53["output"] == [512, 14, 14]
    assert set(conv53) == {"name", "type", "inputs", "output", "params", "buffers", "macs", "activations",
                           "rf", "aux", "trainable", "line", "warnings"}
    # torchinfo's size lines: input 3*224*224*4 bytes; params 138,357,544*4; forward = activation bytes
    assert (t["size_input_bytes"], t["size_param_bytes"]) == (3 * 224 * 224 * 4, 138_357_544 * 4)
    assert t["size_total_bytes"] == 60_950_432 + 138_357_544 * 4
    assert (t["params_trainable"], t["params_frozen"]) == (138_357_544, 0)


def test_summary_json_symbolic_values_are_text(cli):
    code, out, _ = cli("summary", "stack3x3", "-f", "json")
    doc = json.loads(out)
    assert doc["totals"]["params"] == "27*C**2"
    assert doc["symbols"] == {"C": None, "H": None, "W": None}


def test_summary_csv(cli):
    code, out, _ = cli("summary", "alexnet", "-f", "csv")
    rows = list(csv.DictReader(io.StringIO(out)))
    assert rows[0]["name"] == "conv1" and rows[0]["params"] == str(64 * 3 * 121 + 64)
    assert rows[-1]["name"] == "total" and rows[-1]["params"] == "61100840"
    assert rows[-1]["macs"] == "714188480"


def test_summary_markdown(cli):
    code, out, _ = cli("summary", "vgg16", "-f", "markdown")
    assert out.startswith("# vgg16: VGG-16 (configuration D)\n")
    # conv5_3: 2,359,808 / 138,357,544 = 1.7% of params; 462,422,016 / 15,470,264,320 = 3.0% of MACs
    assert "| 29 | conv5_3 | conv | 3x3 p1 | 512x14x14 | 2,359,808 | 1.7 | 462,422,016 | 3.0 | 100,352 | 196/16/90 |" in out
    assert "- **params**: 138,357,544 (138.36M)" in out


def test_summary_table(cli):
    code, out, _ = cli("summary", "vgg16")
    assert code == 0
    assert "conv5_3" in out and "196/16/90" in out and "138,357,544" in out and "15,470,264,320" in out


def test_input_and_set_override(cli):
    _, out, _ = cli("summary", "vgg16", "--input", "3x256x256", "-f", "json")
    assert json.loads(out)["layers"][30]["output"] == [512, 8, 8]  # pool5: 256 / 32
    _, out2, _ = cli("summary", "vgg16", "--set", "H=256,W=256", "-f", "json")
    assert json.loads(out2)["totals"]["macs"] == json.loads(out)["totals"]["macs"]
    # conv MACs scale with area; the fc layers (after the 7x7 adaptive pool) do not
    fc = 25088 * 4096 + 4096 * 4096 + 4096 * 1000
    assert json.loads(out)["totals"]["macs"] - fc == (15_470_264_320 - fc) * 256**2 // 224**2


def test_fit_and_batch(cli):
    from archcalc import analyze, load
    from archcalc.analysis.liveness import totals

    _, out, _ = cli("summary", "vgg16", "--fit", "16GiB", "-f", "json")
    doc = json.loads(out)
    t = doc["totals"]
    # weights + gradients (SGD keeps no state) = 2 * 4 bytes * params
    assert t["train_state_bytes"] == 2 * 4 * 138_357_544
    # --fit answers for training with the liveness model (issue 12): the largest batch whose training total
    # (training peak, weights, optimizer state and input) fits the budget
    # (with cuDNN's working memory, the default backend: 206; live tensors alone: 218)
    assert doc["fit"] == {"budget_bytes": 16 * 2**30, "max_batch": 206, "for": "training"}
    r = analyze(load("vgg16"))
    assert totals(r, 206)["train_total_bytes"] <= 16 * 2**30 < totals(r, 207)["train_total_bytes"]
    assert totals(r, 218, "cpu")["train_total_bytes"] <= 16 * 2**30 < totals(r, 219, "cpu")["train_total_bytes"]
    _, out, _ = cli("summary", "vgg16", "--fit", "16GiB", "--backend", "cpu", "-f", "json")
    assert json.loads(out)["fit"]["max_batch"] == 218
    _, out, _ = cli("summary", "vgg16", "--optimizer", "adam", "--batch", "4", "-f", "json")
    t = json.loads(out)["totals"]
    assert t["train_state_bytes"] == 4 * 4 * 138_357_544  # weights, grads, two Adam moments
    assert t["batch_train_bytes"] == 4 * t["train_saved_bytes"] + t["train_state_bytes"]


def test_ensemble_and_crops(cli):
    _, out, _ = cli("summary", "alexnet", "--ensemble", "7", "--crops", "10", "-f", "json")
    t = json.loads(out)["totals"]
    assert t["macs"] == 714_188_480 * 7 * 10
    assert t["params"] == 61_100_840 * 7
    assert t["activations"] == 733_032 * 7


def test_depth_folds_rows(cli):
    _, out, _ = cli("summary", "inception-bottleneck", "--depth", "1", "-f", "csv")
    rows = list(csv.DictReader(io.StringIO(out)))
    assert [r["name"] for r in rows] == ["b1x1", "b3x3", "b5x5", "pool", "output", "total"]
    b3 = rows[1]
    assert int(b3["macs"]) == 28 * 28 * 64 * 256 + 28 * 28 * 192 * 64 * 9
    assert b3["output"] == "192x28x28"


def test_list(cli):
    code, out, _ = cli("list", "-f", "json")
    assert code == 0
    entries = {e["name"]: e for e in json.loads(out)}
    assert set(entries) == set(zoo.names())
    assert entries["vgg16"]["params"] == 138_357_544
    assert entries["stack3x3"]["params"] == "27*C**2"


def test_zoo_names_accept_dash_or_underscore(cli):
    a = cli("summary", "inception_naive", "-f", "json")[1]
    b = cli("summary", "inception-naive", "-f", "json")[1]
    assert json.loads(a)["totals"] == json.loads(b)["totals"]


def test_layers_doc_is_generated_from_the_registry(cli):
    code, out, _ = cli("layers", "--format", "markdown")
    assert code == 0
    assert out == (ROOT / "docs" / "layers.md").read_text(), "run: archcalc layers -f markdown > docs/layers.md"
    assert "## `conv`" in out and "| `kernel` |" in out


def test_check_within_and_over_budget(cli, tmp_path):
    """Exit codes and numbers only: the report's wording belongs to the check command (test_ci_check.py)."""
    code, out, _ = cli("check", "vgg16", "--budget", "params=140M,macs=16G")
    assert code == 0 and "138,357,544" in out and "15,470,264,320" in out
    code, out, err = cli("check", "vgg16", "--budget", "params=138M")
    assert code == 1
    assert "138,357,544" in out and "138,000,000" in out
    assert err == "archcalc: error: vgg16: over budget on params\n"
    spec = tmp_path / "small.yaml"
    spec.write_text("input: [3, 32, 32]\nlayers:\n  - conv: {out: 8, kernel: 3}\nbudget: {params: 200, macs: 1K}\n")
    code, out, err = cli("check", str(spec))
    # params 8*3*9+8 = 224 > 200; MACs 8*30*30*27 = 194,400 > 1,000
    assert code == 1 and "224" in out and "194,400" in out and "params, macs" in err


def test_help_states_conventions():
    proc = run_subprocess("--help")
    assert proc.returncode == 0
    text = " ".join(proc.stdout.split())  # the paragraph is wrapped to the terminal
    for convention in ("BN running statistics are buffers", "MACs are multiply-accumulates of conv and linear layers",
                       "FLOPs = 2 x MACs", "activations are the values of every new tensor per image, input included",
                       "RF is receptive field size / effective stride / effective padding"):
        assert convention in text, convention


def test_summary_imports_neither_sympy_nor_torch():
    code = (
        "import sys\n"
        "from archcalc.cli.main import main\n"
        "rc = main(['summary', 'vgg16', '--format', 'json'])\n"
        "bad = [m for m in ('sympy', 'torch') if m in sys.modules]\n"
        "sys.stderr.write(repr(bad))\n"
        "sys.exit(rc or (3 if bad else 0))\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == "[]"
    # the symbolic path does import sympy (so the check above can fail)
    proc = subprocess.run([sys.executable, "-c", code.replace("'vgg16'", "'stack3x3'")], capture_output=True, text=True, cwd=ROOT)
    assert "sympy" in proc.stderr


def test_console_script_installed():
    exe = Path(sys.executable).with_name("archcalc")
    assert exe.exists(), "the archcalc console script is installed beside the interpreter"
    proc = subprocess.run([str(exe), "summary", "alexnet", "-f", "json"], capture_output=True, text=True)
    assert proc.returncode == 0 and json.loads(proc.stdout)["totals"]["params"] == 61_100_840


def test_wheel_ships_the_zoo(tmp_path):
    """A non-editable install must find specs/: the wheel carries them as archcalc/specs/*.yaml."""
    import zipfile

    proc = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(tmp_path), str(ROOT)],
        capture_output=True, text=True,
    )
    assert proc.returncode == 0, proc.stderr
    wheel = next(tmp_path.glob("archcalc-*.whl"))
    names = zipfile.ZipFile(wheel).namelist()
    shipped = sorted(Path(n).stem for n in names if n.startswith("archcalc/specs/") and n.endswith(".yaml"))
    assert shipped == sorted(p.stem for p in zoo.specs_dir().glob("*.yaml"))


def test_compare_json_csv_markdown(cli):
    code, out, _ = cli("compare", "resnet50", "resnet50-v1", "-f", "json")
    assert code == 0
    doc = json.loads(out)
    a, b = doc["networks"]
    assert (a["name"], b["name"]) == ("resnet50", "resnet50-v1")
    assert a["totals"]["params"] == b["totals"]["params"] == 25_557_032
    # the paper's stride on the first 1x1 saves 3 stages x 77,070,336 MACs
    assert a["totals"]["macs"] - b["totals"]["macs"] == 3 * 77_070_336
    assert b["ratios"]["macs"] == 3_857_973_248 / 4_089_184_256
    assert doc["layers_line_up"] is True  # same layer types in the same order
    diffs = {g[0]["name"] for g in doc["layer_differences"]}
    assert "layer2.0.residual.conv1" in diffs and "layer1.0.residual.conv1" not in diffs
    code, out, _ = cli("compare", "resnet50", "resnet50-v1", "-f", "csv")
    rows = list(csv.reader(io.StringIO(out)))
    assert rows[0] == ["metric", "resnet50", "resnet50-v1"]
    assert ["macs", "4089184256", "3857973248"] in rows
    code, out, _ = cli("compare", "resnet50", "resnet50-v1", "-f", "markdown")
    assert "| MACs | 4,089,184,256 | 3,857,973,248 | 0.943x |" in out
