"""archcalc plot: real images from matplotlib (the plot extra; a test dependency)."""

import subprocess
import sys

from archcalc import analyze, load
from archcalc.output.plot import values
from conftest import ROOT


def test_values_are_the_engine_numbers():
    r = analyze(load("vgg16"))
    labels, vals = values(r, "memory")
    # conv1_1: 64 x 224 x 224 values x 4 bytes; ReLUs in place produce nothing and are left out
    assert labels[0] == "conv1_1" and vals[0] == 64 * 224 * 224 * 4 == 12_845_056
    assert "relu1_1" not in labels and labels[-1] == "fc8" and vals[-1] == 1000 * 4
    assert sum(vals) + 3 * 224 * 224 * 4 == r.totals["activation_bytes"]  # the input is the rest
    labels, vals = values(r, "params")
    assert dict(zip(labels, vals))["fc6"] == 25088 * 4096 + 4096
    labels, vals = values(r, "rf")
    assert dict(zip(labels, vals))["pool5"] == 212
    r18 = analyze(load("resnet18"))
    labels, vals = values(r18, "macs", "block")
    assert dict(zip(labels, vals))["layer2"] == 411_041_792


def test_png_and_svg_are_written(tmp_path, cli):
    import matplotlib.image as mpimg

    png = tmp_path / "vgg16-memory.png"
    code, out, err = cli("plot", "vgg16", "--metric", "memory", "-o", str(png))
    assert code == 0 and err == f"wrote {png}\n"
    img = mpimg.imread(png)
    assert img.shape[:2] == (480, 1000)  # 10 x 4.8 inches at 100 dpi
    assert img[..., :3].std() > 0.05  # not a blank canvas: bars and text
    blue = ((abs(img[..., 0] - 0x2A / 255) < 0.02) & (abs(img[..., 2] - 0xB0 / 255) < 0.02)).sum()
    assert blue > 10_000  # the bars
    svg = tmp_path / "cmp.svg"
    code, _, _ = cli("plot", "vgg16", "resnet50", "--compare", "--metric", "macs", "-o", str(svg))
    text = svg.read_text()
    assert code == 0 and text.startswith("<?xml") and "vgg16 (15.47G)" in text and "resnet50 (4.09G)" in text
    again = tmp_path / "again.svg"
    cli("plot", "vgg16", "resnet50", "--compare", "--metric", "macs", "-o", str(again))
    assert again.read_bytes() == svg.read_bytes()  # reproducible: no date, fixed hash salt


def test_plot_errors(cli, tmp_path):
    code, _, err = cli("plot", "vgg16", "-o", str(tmp_path / "x.jpg"))
    assert code == 2 and "must end in .png or .svg" in err
    code, _, err = cli("plot", "vgg16", "resnet50", "-o", str(tmp_path / "x.png"))
    assert code == 2 and "several networks need --compare" in err
    code, _, err = cli("plot", "stack3x3", "--metric", "params", "-o", str(tmp_path / "x.png"))
    assert code == 2 and "symbolic" in err
    code, _, err = cli("plot", "vgg16", "-o", str(tmp_path / "no" / "such" / "dir.png"))
    assert code == 2 and err.startswith("archcalc: error: cannot write")


def test_matplotlib_is_imported_only_by_plot():
    code = ("import sys\nfrom archcalc.cli.main import main\n"
            "main(['summary', 'vgg16']); main(['explain', 'vgg16', 'conv1_1']); main(['graph', 'vgg16'])\n"
            "sys.stderr.write(repr([m for m in ('matplotlib', 'torch') if m in sys.modules]))\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert proc.stderr.endswith("[]"), proc.stderr
