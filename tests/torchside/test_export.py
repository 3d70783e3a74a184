"""archcalc export: a standalone PyTorch source file (same params and outputs as build()), ONNX."""

from __future__ import annotations

import subprocess
import sys

import pytest

import torch  # noqa: E402  (a test extra: missing torch must fail, not skip)

import archcalc  # noqa: E402
from archcalc import analyze  # noqa: E402
from archcalc.spec.load import loads  # noqa: E402
from archcalc.torchside.build import build, export_source  # noqa: E402

SMALL = """
name: small-net
input: [3, 20, 20]
layers:
  - {conv: {out: 6, kernel: 3, padding: [0, 1, 0, 1]}}
  - bn
  - relu
  - {maxpool: {kernel: 3, stride: 2, padding: [1, 0, 1, 0]}}
  - add:
      - [{conv: {out: 6, kernel: 3, padding: 1}}, relu]
      - identity
  - concat:
      - [{conv: {out: 4, kernel: 1}}]
      - [{avgpool: {kernel: 3, stride: 1, padding: 1}}]
  - aux: [global_avgpool, flatten, {linear: {out: 3}}]
  - {pad_channels: {out: 14, stride: 2}}
  - global_avgpool
  - flatten
  - {linear: {out: 5}}
"""


@pytest.mark.parametrize("ref", ["small", "vgg16", "googlenet-paper", "resnet18", "inception_resnet_v2", "mobilenet_v2",
                                 "unet", "shufflenet_v2_x1_0", "mobilenet_v3_large", "lraspp_mobilenet_v3_large"])
def test_export_runs_and_matches(ref, tmp_path):
    net = loads(SMALL) if ref == "small" else archcalc.load(ref)
    source = export_source(net)
    assert "archcalc" not in "".join(line for line in source.splitlines() if line.startswith(("import", "from")))
    path = tmp_path / "model.py"
    path.write_text(source)
    space: dict = {"__name__": "exported"}
    exec(compile(source, str(path), "exec"), space)
    from archcalc.torchside.build import CUSTOM

    cls = next(v for k, v in space.items() if isinstance(v, type) and issubclass(v, torch.nn.Module)
               and k not in CUSTOM)
    exported = cls() if ref == "small" else None
    if exported is None:
        with torch.device("meta"):
            exported = cls()
    assert sum(p.numel() for p in exported.parameters()) == analyze(net).totals["params"]
    if ref == "small":  # same forward as build() with the same weights, aux heads in training only
        model = build(net)
        exported.load_state_dict(model.state_dict())
        torch.manual_seed(0)
        x = torch.randn(2, *net.input)
        model.eval(), exported.eval()
        with torch.no_grad():
            assert torch.equal(model(x), exported(x))
        model.train(), exported.train()
        a, b = model(x), exported(x)
        assert isinstance(b, tuple) and len(a) == len(b) == 2


def test_export_cli_file_runs_standalone(cli, tmp_path):
    # resnet18 rather than vgg16: the same check at a twelfth of the weights to initialise
    out = tmp_path / "resnet18_model.py"
    code, _, err = cli("export", "resnet18", "--to", "torch", "-o", str(out))
    assert code == 0, err
    proc = subprocess.run([sys.executable, "-W", "ignore", str(out)], capture_output=True, text=True, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    # torchvision's resnet18: 11,689,512 parameters (its weights table, and tests/reference)
    assert "11689512 parameters" in proc.stdout
    assert "torch.Size([1, 1000])" in proc.stdout


def test_export_onnx_runs_like_the_builder(cli, tmp_path):
    """The ONNX file, run by onnx's reference evaluator, gives the builder's outputs."""
    import onnx  # a test extra
    from onnx.reference import ReferenceEvaluator

    path = tmp_path / "m.onnx"
    spec = tmp_path / "small.yaml"
    spec.write_text(SMALL)
    torch.manual_seed(0)
    code, _, err = cli("export", str(spec), "--to", "onnx", "-o", str(path))
    assert code == 0, err
    assert err.strip().endswith(f"wrote {path}")
    model = onnx.load(str(path))
    onnx.checker.check_model(model)
    torch.manual_seed(0)  # the same initial weights as the exported model
    reference = build(loads(SMALL)).eval()
    x = torch.randn(1, 3, 20, 20)
    (got,) = ReferenceEvaluator(model).run(None, {"input": x.numpy()})
    with torch.no_grad():
        want = reference(x).numpy()
    assert got.shape == want.shape == (1, 5)
    assert abs(got - want).max() < 1e-4


def test_export_onnx_without_onnx(cli, tmp_path, monkeypatch):
    import archcalc.torchside.build as T

    monkeypatch.setattr(T, "onnx_available", lambda: False)
    code, out, err = cli("export", "alexnet", "--to", "onnx", "-o", str(tmp_path / "a.onnx"))
    assert code == 2 and out == ""
    assert err == "archcalc: error: --to onnx needs the 'onnx' package, which is not installed; install it with: pip install onnx onnxscript\n"


def test_export_bad_input(cli, tmp_path):
    code, _, err = cli("export", "vgg16", "--to", "keras")
    assert code == 2
    code, _, err = cli("export", "vgg16", "--to", "torch", "-o", str(tmp_path / "no" / "such" / "dir.py"))
    assert code == 2 and "cannot write" in err
