"""archcalc import (issue 9): a PyTorch model as a readable spec, proved by a round trip.

The round trip (archcalc.importer.roundtrip.check) builds the imported spec with archcalc's
builder, loads the ORIGINAL model's state_dict into it strictly (every name and shape), and
compares params, buffers and MACs (FlopCounterMode) of the original, of the built spec and of
archcalc's engine; with real weights it also compares outputs (eval mode, random input). The
expected numbers are independent: torchvision's own figures in tests/reference/torchvision.json
(tools/torchvision_reference.py) and the hand-written zoo specs.

Tests that need torchvision skip without it (it is not in the project's default venv; CI installs
it). The torch-only tests below run everywhere torch is.
"""

from __future__ import annotations

import json
import os
import sys
import textwrap

import pytest

torch = pytest.importorskip("torch")

from archcalc import analyze, load  # noqa: E402
from archcalc.cli.main import main  # noqa: E402
from archcalc.importer import import_target, is_target, model_of, parse_args  # noqa: E402
from archcalc.importer.roundtrip import check  # noqa: E402
from conftest import ROOT, randomise  # noqa: E402

DEEP = os.environ.get("ARCHCALC_DEEP") == "1"
REFERENCE = json.loads((ROOT / "tests" / "reference" / "torchvision.json").read_text())["models"]

SMALL_NET = textwrap.dedent('''
    import torch
    from torch import nn
    import torch.nn.functional as F


    class SE(nn.Module):
        def __init__(self, c):
            super().__init__()
            self.fc1 = nn.Conv2d(c, c // 4, 1)
            self.fc2 = nn.Conv2d(c // 4, c, 1)

        def forward(self, x):
            s = F.adaptive_avg_pool2d(x, 1)
            return x * torch.sigmoid(self.fc2(F.relu(self.fc1(s))))


    class Block(nn.Module):
        def __init__(self, c):
            super().__init__()
            self.conv = nn.Conv2d(c, c, 3, padding=1, bias=False)
            self.bn = nn.BatchNorm2d(c)
            self.se = SE(c)

        def forward(self, x):
            return F.relu(x + self.se(self.bn(self.conv(x))))


    class Net(nn.Module):
        def __init__(self, width=8, classes=10):
            super().__init__()
            self.stem = nn.Sequential(nn.Conv2d(3, width, 3, stride=2, padding=1), nn.ReLU())
            self.blocks = nn.Sequential(*[Block(width) for _ in range(3)])
            self.head = nn.Linear(width, classes)

        def forward(self, x):
            x = self.blocks(self.stem(x))
            return self.head(torch.flatten(F.adaptive_avg_pool2d(x, 1), 1))


    class FFT(Net):
        def forward(self, x):
            return torch.fft.fft2(self.stem(x)).real


    class Branchy(Net):
        def forward(self, x):
            if x.sum() > 0:
                return self.stem(x)
            return x


    class CNBlock(nn.Module):
        """ConvNeXt's block as torchvision writes it: channels-last LayerNorm and Linear layers
        between two permutes, and a bare parameter as the layer scale."""

        def __init__(self, c):
            super().__init__()
            self.dw = nn.Conv2d(c, c, 7, padding=3, groups=c)
            self.norm = nn.LayerNorm(c, eps=1e-6)
            self.pw1 = nn.Linear(c, 4 * c)
            self.pw2 = nn.Linear(4 * c, c)
            self.gamma = nn.Parameter(torch.full((c, 1, 1), 0.5))

        def forward(self, x):
            y = self.dw(x).permute(0, 2, 3, 1)
            y = self.pw2(F.gelu(self.pw1(self.norm(y))))
            return x + self.gamma * torch.permute(y, (0, 3, 1, 2))


    class ChannelsLast(Net):
        def __init__(self, width=8, classes=10):
            super().__init__(width, classes)
            self.blocks = nn.Sequential(*[CNBlock(width) for _ in range(2)])


    class LeftChannelsLast(Net):
        def forward(self, x):
            return self.stem(x).permute(0, 2, 3, 1)


    class FlatChannelsLast(Net):
        def forward(self, x):
            return torch.flatten(self.stem(x).permute(0, 2, 3, 1), 1)


    class SharedScale(ChannelsLast):
        def forward(self, x):
            x = self.blocks(self.stem(x))
            return self.blocks[0].gamma * x
''')


@pytest.fixture
def netfile(tmp_path):
    path = tmp_path / "mynet.py"
    path.write_text(SMALL_NET)
    return path


# --------------------------------------------------------------------------- torch only


def test_item_from_reads_an_earlier_layer():
    """The loader's `from:` on an item (what the importer writes where a layer does not read the
    layer before it): proj reads x, not conv; the add joins conv and proj."""
    from archcalc.errors import SpecError
    from archcalc.spec.load import loads

    net = loads("input: [3, 8, 8]\nlayers:\n  - {identity: {}, name: x}\n"
                "  - {conv: {out: 64, kernel: 3, padding: 1}, name: conv}\n"
                "  - {conv: {out: 64, kernel: 1}, name: proj, from: x}\n"
                "  - {add: [{from: conv}, identity], name: add}\n")
    assert [(n.name, n.inputs) for n in net.nodes] == [("x", (-1,)), ("conv", (0,)), ("proj", (0,)), ("add", (1, 2))]
    # conv 3*64*9 + 64 = 1,792; proj 3*64 + 64 = 256 (it reads the 3-channel input, not conv's 64)
    assert analyze(net).totals["params"] == 1792 + 256
    with pytest.raises(SpecError, match="names no earlier layer"):
        loads("input: [3, 8, 8]\nlayers:\n  - {conv: {out: 4, kernel: 1}, name: a, from: nowhere}\n")


def test_targets_and_args_are_parsed_as_data():
    assert is_target("pkg.mod:factory") and is_target("a/b.py:Net") and is_target("x.onnx")
    assert not is_target("resnet50") and not is_target("specs/resnet50.yaml") and not is_target("a:b:c d")
    assert parse_args(["n=3", "p=0.5", "name=abc", "t=(1, 2)", "f=False"]) == {"n": 3, "p": 0.5, "name": "abc", "t": (1, 2), "f": False}
    # a value that is code stays text: literal_eval runs nothing
    assert parse_args(["x=__import__('os').getcwd()"]) == {"x": "__import__('os').getcwd()"}


def test_custom_model_round_trips_with_its_weights(netfile):
    target = f"{netfile}:Net"
    model = randomise(model_of(target, {"width": 8}))
    text, g, _ = import_target(target, {"width": 8}, (3, 32, 32), model=model)
    r = check(text, model, (3, 32, 32))
    assert r["ok"], r
    # hand count: stem conv 3*8*9+8 = 224; per block conv 8*8*9 = 576, bn 16, SE fc1 8*2+2 = 18,
    # fc2 2*8+8 = 24 -> 634; head 8*10+10 = 90: 224 + 3*634 + 90 = 2216
    assert r["original"]["params"] == r["engine"]["params"] == 2216
    # MACs at 32x32: stem 8*16*16*27 = 55,296; block conv 8*16*16*72 = 147,456, SE 16 + 16;
    # head 80: 55,296 + 3 * 147,488 + 80 = 497,840
    assert r["original"]["macs"] == r["engine"]["macs"] == 497840
    assert r["outputs"]["ok"] and r["outputs"]["max_abs_diff"] <= 1e-5
    # state_dict: stem 2, per block conv 1 + bn 5 (num_batches_tracked too) + SE 4 = 10, head 2
    assert r["state_dict"]["keys"] == 2 + 3 * 10 + 2 and not r["state_dict"]["missing"]
    # readable: one block for the three identical children, called in a repeat
    assert "repeat: 3" in text and text.count("conv: {out: 8, kernel: 3, padding: 1, bias: false}") == 1


def test_load_accepts_a_target_in_memory(netfile, tmp_path):
    net = load(f"{netfile}:Net", None, (3, 32, 32))
    assert analyze(net).totals["params"] == 2216
    assert not list(tmp_path.glob("*.yaml"))  # nothing written


def test_unknown_op_is_named_once_with_exit_2(netfile, capsys):
    assert main(["import", f"{netfile}:FFT", "--input", "3x32x32"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "torch.fft.fft2 at (top level) (x1)" in err, err
    assert "Traceback" not in err


def test_data_dependent_control_flow_says_so(netfile, capsys):
    assert main(["import", f"{netfile}:Branchy"]) == 2
    err = capsys.readouterr().err
    assert "data-dependent control flow" in err and "mynet.py:" in err and err.count("\n") == 1


@pytest.mark.parametrize("target, fragment", [
    ("nosuchpkg_xyz.models:net", "no module named 'nosuchpkg_xyz'"),
    ("{file}:Nett", "has no attribute 'Nett'; did you mean 'Net'?"),
    ("{file}:Net --arg width=abc", "raised TypeError"),
    ("{file}:Net --arg 9=1", "expected KEY=VALUE"),
    ("missing.py:Net", "no such file"),
])
def test_bad_targets_are_one_line_errors(netfile, capsys, target, fragment):
    argv = ["import"] + target.format(file=netfile).split()
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert fragment in err and err.count("\n") == 1 and "Traceback" not in err, err


def test_check_flag_and_output_file(netfile, tmp_path, capsys):
    out = tmp_path / "net.yaml"
    assert main(["import", f"{netfile}:Net", "--input", "3x32x32", "--check", "-o", str(out)]) == 0
    err = capsys.readouterr().err
    assert "params: original 2,216, built 2,216, engine 2,216: ok" in err and "MISMATCH" not in err
    assert main(["summary", str(out)]) == 0


def test_export_to_torch_loads_the_original_weights(netfile):
    from archcalc.spec.load import loads
    from archcalc.torchside.build import export_source

    model = randomise(model_of(f"{netfile}:Net"))
    text, _, _ = import_target(f"{netfile}:Net", None, (3, 32, 32), model=model)
    space: dict = {"__name__": "exported"}
    exec(compile(export_source(loads(text)), "exported.py", "exec"), space)
    exported = space["Net"]().eval()
    exported.load_state_dict(model.state_dict(), strict=True)
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        assert torch.allclose(exported(x), model.eval()(x), atol=1e-5)


def test_channels_last_block_round_trips_with_its_weights(netfile):
    """ConvNeXt's constructs in a small model: permute(0, 2, 3, 1) .. permute(0, 3, 1, 2) around
    nn.LayerNorm / nn.Linear / GELU (channels-first layernorm and channel_linear layers), and
    ``self.gamma * x`` with a bare C x 1 x 1 parameter (a layer_scale named after it)."""
    from archcalc.spec.load import loads
    from archcalc.torchside.build import export_source
    from archcalc.torchside.verify import verify

    target = f"{netfile}:ChannelsLast"
    model = randomise(model_of(target))
    text, _, _ = import_target(target, None, (3, 32, 32), model=model)
    assert "channel_linear: {out: $out * 4}" in text or "channel_linear: {out: 32}" in text, text
    assert "{layer_scale: {bare: true}, name: gamma}" in text and "permute" not in text, text
    r = check(text, model, (3, 32, 32))
    assert r["ok"], r
    # hand count: stem 3*8*9 + 8 = 224; per block dw 8*49 + 8 = 400, norm 2*8 = 16,
    # pw1 8*32 + 32 = 288, pw2 32*8 + 8 = 264, gamma 8 -> 976; head 8*10 + 10 = 90:
    # 224 + 2*976 + 90 = 2266
    assert r["original"]["params"] == r["engine"]["params"] == 2266
    # MACs at 32x32 (16x16 after the stem): stem 8*256*27 = 55,296; per block dw 8*256*49 =
    # 100,352, pw1 32*256*8 = 65,536, pw2 8*256*32 = 65,536; head 80:
    # 55,296 + 2*231,424 + 80 = 518,224 (the Linear layers as FlopCounterMode counts them)
    assert r["original"]["macs"] == r["engine"]["macs"] == 518224
    # state_dict: stem 2, per block dw 2 + norm 2 + pw1 2 + pw2 2 + gamma 1 = 9 (gamma has no
    # ".weight"), head 2
    assert r["state_dict"]["keys"] == 2 + 2 * 9 + 2 and "blocks.0.gamma" in model.state_dict()
    assert r["outputs"]["ok"] and r["outputs"]["max_abs_diff"] <= 1e-5
    # the verifier counts the bare parameter with its layer; the exported source loads the weights
    v = verify(loads(text, "cl.yaml"), device="cpu")
    assert v["ok"] and [r["checks"]["params"]["torch"] for r in v["layers"] if r["name"].endswith("gamma")] == [8, 8]
    space: dict = {"__name__": "exported"}
    exec(compile(export_source(loads(text, "cl.yaml")), "exported.py", "exec"), space)
    exported = space["ChannelsLast"]().eval()
    exported.load_state_dict(model.state_dict(), strict=True)
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        assert torch.allclose(exported(x), model.eval()(x), atol=1e-5)
    # with its initial weights the scale's value is read back (0.5, not the default 1e-6)
    fresh, _, _ = import_target(target, None, (3, 32, 32))
    assert "{layer_scale: {init: 0.5, bare: true}, name: gamma}" in fresh


@pytest.mark.parametrize("cls, fragment", [
    ("LeftChannelsLast", "a channels-last tensor (torch.permute(x, (0, 2, 3, 1)) not permuted back) as an output at (top level) (x1)"),
    ("FlatChannelsLast", "torch.flatten on a channels-last tensor (after torch.permute(x, (0, 2, 3, 1))) at (top level) (x1)"),
    ("SharedScale", "operator.mul with the parameter blocks.0.gamma (used twice, or in another module's forward) at (top level) (x1)"),
])
def test_channels_last_and_parameters_that_do_not_map_are_named(netfile, capsys, cls, fragment):
    assert main(["import", f"{netfile}:{cls}", "--input", "3x32x32"]) == 2
    err = capsys.readouterr().err
    assert fragment in err and err.count("\n") == 1 and "Traceback" not in err, err


def test_commands_accept_a_target(netfile, capsys):
    target = f"{netfile}:Net"
    assert main(["summary", target, "--input", "3x32x32"]) == 0
    assert "2,216" in capsys.readouterr().out
    # check never imports Python (issue 19): a target is a usage error that says what to run
    assert main(["check", target, "--input", "3x32x32"]) == 2
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err.count("\n") == 1 and "never imports Python" in captured.err
    assert main(["compare", target, "lenet5", "--input", "3x32x32"]) == 0
    assert "2,216" in capsys.readouterr().out  # the model's params, beside LeNet-5's
    assert main(["verify", target, "--input", "3x32x32"]) == 0
    assert "mismatch" not in capsys.readouterr().out


def test_check_of_a_spec_folder_never_imports_python(tmp_path, capsys):
    marker = tmp_path / "imported"
    (tmp_path / "evil.py").write_text(f"open({str(marker)!r}, 'w').close()\nraise SystemExit('imported!')\n")
    (tmp_path / "a.yaml").write_text("input: [3, 8, 8]\nlayers:\n  - {conv: {out: 4, kernel: 3}}\n")
    assert main(["check", str(tmp_path)]) == 0
    assert "a.yaml" in capsys.readouterr().out  # the spec beside it was checked
    assert not marker.exists() and "evil" not in sys.modules


# --------------------------------------------------------------------------- torchvision

SEGMENTATION = {"fcn_resnet50", "fcn_resnet101", "deeplabv3_resnet50", "deeplabv3_resnet101",
                "deeplabv3_mobilenet_v3_large", "lraspp_mobilenet_v3_large"}
# one member per family by default (each ~0.3-1 s); every model with ARCHCALC_DEEP=1
FAST = ["alexnet", "vgg11_bn", "squeezenet1_1", "resnet18", "resnet50", "resnext50_32x4d", "densenet121",
        "googlenet", "inception_v3", "mobilenet_v2", "mobilenet_v3_large", "mobilenet_v3_small", "mnasnet0_5",
        "shufflenet_v2_x0_5", "efficientnet_b0", "regnet_y_400mf", "convnext_tiny", "fcn_resnet50",
        "deeplabv3_mobilenet_v3_large", "lraspp_mobilenet_v3_large"]
MODELS = sorted(REFERENCE) if DEEP else FAST
# outputs compared with real (randomised) weights, CPU, 64x64 input: one model per kind of
# construct (residual adds, concat, channel split and shuffle, SE gates, segmentation heads that
# upsample to the input, ConvNeXt's channels-last runs and bare layer-scale parameters); RegNet is
# built on CPU anyway. The ONNX tests below compare resnet50's and mobilenet_v3_large's outputs too.
# With ARCHCALC_DEEP=1 all 74 models' outputs are compared.
REAL = {"resnet18", "squeezenet1_1", "shufflenet_v2_x0_5", "lraspp_mobilenet_v3_large", "regnet_y_400mf", "convnext_tiny"}


def _torchvision_model(name, device):
    pytest.importorskip("torchvision")
    mod = "torchvision.models.segmentation" if name in SEGMENTATION else "torchvision.models"
    args = {"weights": None}
    if name in ("googlenet", "inception_v3"):
        args["init_weights"] = False
    if name == "googlenet":
        args["aux_logits"] = False  # as torchvision's figures and the zoo spec (its weights drop the aux heads)
    if name in SEGMENTATION:
        args["weights_backbone"] = None
    if name.startswith("regnet"):
        return f"{mod}:{name}", model_of(f"{mod}:{name}", args, None)  # its constructor computes widths with tensors
    model = model_of(f"{mod}:{name}", args, "meta")
    # real weights: made on meta and moved without initialising (_randomise sets every tensor)
    return f"{mod}:{name}", (model if device == "meta" else model.to_empty(device="cpu"))


@pytest.mark.parametrize("name", MODELS)
def test_torchvision_model_round_trips(name):
    real = name in REAL or DEEP
    target, model = _torchvision_model(name, None if real else "meta")
    if real:
        randomise(model)
    shape = tuple(REFERENCE[name]["input"])
    text, g, _ = import_target(target, None, shape, model=model)
    small = (3, 96, 96) if name == "inception_v3" else (3, 64, 64)  # Inception v3 needs 75x75 at least
    r = check(text, model, shape, output_input=small)
    assert r["ok"], {k: r[k] for k in r if k != "state_dict"}
    ref = REFERENCE[name]
    assert r["engine"]["params"] == ref["params"] and r["engine"]["macs"] == ref["macs"]
    if real:
        assert r["outputs"]["ok"] and r["outputs"]["max_abs_diff"] <= 1e-4 * max(1.0, r["outputs"]["max_abs"])
    hand = analyze(load(name)).totals
    assert (hand["params"], hand["buffers"], hand["macs"]) == (r["engine"]["params"], r["engine"]["buffers"], r["engine"]["macs"])


def test_convnext_state_dict_names_and_shapes():
    """torchvision's names for ConvNeXt's channels-last Linear layers and its bare layer-scale
    parameter are the built spec's, with their shapes: (4C, C) and (C, 1, 1), C = 96 for -T."""
    from archcalc.spec.load import loads
    from archcalc.torchside.build import build

    target, model = _torchvision_model("convnext_tiny", "meta")
    text, _, _ = import_target(target, None, (3, 224, 224), model=model)
    built = build(loads(text), device="meta").state_dict()
    want = model.state_dict()
    for key, shape in (("features.1.0.block.3.weight", (384, 96)), ("features.1.0.block.5.weight", (96, 384)),
                       ("features.1.0.layer_scale", (96, 1, 1)), ("features.7.2.layer_scale", (768, 1, 1))):
        assert tuple(want[key].shape) == tuple(built[key].shape) == shape, key
    assert sorted(built) == sorted(want)


def test_committed_examples_are_the_importer_output():
    pytest.importorskip("torchvision")
    for name in ("resnet50", "mobilenet_v3_large"):
        committed = (ROOT / "docs" / "examples" / f"{name}.yaml").read_text()
        text, _, _ = import_target(f"torchvision.models:{name}", {"weights": None}, (3, 224, 224), device="meta")
        strip = lambda t: [line for line in t.splitlines() if not line.startswith("source:")]  # noqa: E731
        assert strip(text) == strip(committed), name


# --------------------------------------------------------------------------- ONNX


@pytest.mark.parametrize("name", ["resnet50", "mobilenet_v3_large"])
def test_onnx_export_round_trips_without_torch_in_the_import(name, tmp_path):
    """torch.onnx.export (TorchScript exporter, BN kept: TrainingMode.PRESERVE, no constant
    folding, so the graph holds the model's own parameters; ~3 s each), then the import runs in
    a process where torch cannot be imported at all; the spec must round-trip against the original."""
    import subprocess
    import sys
    import warnings

    pytest.importorskip("onnx")
    target, model = _torchvision_model(name, None)
    randomise(model)
    path = tmp_path / f"{name}.onnx"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(model.eval(), (torch.randn(1, 3, 64, 64),), str(path), input_names=["input"], dynamo=False,
                          training=torch.onnx.TrainingMode.PRESERVE, do_constant_folding=False)
    code = ("import sys; sys.modules['torch'] = None\n"  # any `import torch` now fails
            "from archcalc.importer import import_target\n"
            f"text, _, _ = import_target({str(path)!r})\n"
            "assert 'torch' not in [m.split('.')[0] for m in sys.modules if sys.modules[m] is not None]\n"
            "sys.stdout.write(text)\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr[-2000:]
    text = proc.stdout
    assert text.startswith(f"name: {name}") and "onnx " in text.split("\n")[2]
    assert "input: [3, H, W]\nsymbols: {H: 64, W: 64}" in text  # exported at 64x64 (2 s instead of 3 s)
    r = check(text, model, (3, 64, 64))
    assert r["ok"], {k: r[k] for k in r if k != "state_dict"}
    assert r["outputs"]["ok"] and r["outputs"]["input"] == (3, 64, 64)
    # at torchvision's 224x224 the spec's numbers are torchvision's and the zoo spec's
    from archcalc.spec.load import loads

    totals = analyze(loads(text, "imported.yaml", {"H": 224, "W": 224})).totals
    ref, hand = REFERENCE[name], analyze(load(name)).totals
    assert (totals["params"], totals["macs"]) == (ref["params"], ref["macs"]) == (hand["params"], hand["macs"])


def test_onnx_unknown_op_is_named(tmp_path, capsys):
    onnx = pytest.importorskip("onnx")
    from onnx import TensorProto, helper

    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 8, 8])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 3, 8, 8])
    graph = helper.make_graph([helper.make_node("Relu", ["x"], ["r"], name="/stem/act/Relu"),
                               helper.make_node("Erf", ["r"], ["y"], name="/head/Erf")], "g", [x], [y])
    path = tmp_path / "erf.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))
    assert main(["import", str(path)]) == 2
    err = capsys.readouterr().err
    assert "ONNX Erf at head (x1)" in err and err.count("\n") == 1, err


def test_without_torch_or_onnx_import_says_how_to_install(netfile, tmp_path):
    import subprocess
    import sys

    code = ("import sys; sys.modules['torch'] = None; sys.modules['onnx'] = None\n"
            "from archcalc.cli.main import main\n"
            f"sys.exit(main(['import', {str(netfile) + ':Net'!r}]) * 10 + main(['import', {str(tmp_path / 'm.onnx')!r}]))\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert proc.returncode == 22, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 2 and "pip install torch" in lines[0] and "pip install onnx" in lines[1], lines
