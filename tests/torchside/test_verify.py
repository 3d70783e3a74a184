"""The torch verifier: every zoo spec on the meta device, empirical receptive fields, saved-tensor
memory, the builder's in-place safety and aux heads, and the CLI's exit codes."""

from __future__ import annotations

import json
import sys

import pytest

import torch  # noqa: E402  (a test extra: missing torch must fail, not skip)

import archcalc  # noqa: E402
from archcalc import analyze
from archcalc.spec import zoo  # noqa: E402
from archcalc.spec.load import loads  # noqa: E402
from archcalc.torchside.build import build  # noqa: E402
from archcalc.torchside.verify import memory, receptive_fields, verify  # noqa: E402

from conftest import run_subprocess, zoo_sample  # noqa: E402


def _concrete(name):
    net = archcalc.load(name)
    if net.symbolic:  # generic specs (conv7x7, stack3x3): give every free symbol a small value
        net = archcalc.load(name, {s: (3 if s == "C" else 32) for s in net.free_symbols()})
    return net


# --------------------------------------------------------------------------- every zoo spec


@pytest.mark.parametrize("name", zoo_sample(zoo.names()))  # every name with ARCHCALC_DEEP=1
def test_zoo_spec_verifies_on_meta(name):
    net = _concrete(name)
    result = verify(net, device="meta")
    bad = [(r["name"], k, c) for r in result["layers"] for k, c in r["checks"].items() if c["status"] == "mismatch"]
    assert not bad, bad[:5]
    assert result["ok"], result["totals"]
    assert result["totals"]["params"]["status"] == "ok"
    assert result["totals"]["macs"]["status"] == "ok"


def test_cli_verify_vgg16_table_and_json(cli):
    code, out, err = cli("verify", "vgg16")
    assert code == 0, err
    assert "138,357,544 ✓" in out and "15,470,264,320 ✓" in out and "engine and torch agree" in out
    code, out, err = cli("verify", "vgg16", "--format", "json")
    assert code == 0, err
    data = json.loads(out)
    assert data["ok"] and data["totals"]["params"]["torch"] == 138_357_544
    assert data["totals"]["macs"]["torch"] == 15_470_264_320
    conv = next(r for r in data["layers"] if r["name"] == "conv1_1")
    assert conv["checks"]["shape"]["torch"] == [64, 224, 224]


def _resnet18_macs():
    """ResNet-18 at 224x224 by hand: C_out * H_out * W_out * C_in * K * K per conv, plus the head."""
    conv = lambda cout, hw, cin, k: cout * hw * hw * cin * k * k  # noqa: E731
    total = conv(64, 112, 3, 7) + 4 * conv(64, 56, 64, 3)  # stem, then layer1's four 3x3 convs
    for c, hw in ((128, 28), (256, 14), (512, 7)):  # layer2-4: a strided 3x3, three 3x3, a 1x1 projection
        total += conv(c, hw, c // 2, 3) + 3 * conv(c, hw, c, 3) + conv(c, hw, c // 2, 1)
    return total + 512 * 1000


def test_batch_divides_macs(cli):
    """torch counts the FLOPs of all 3 images; verify divides by 2 x batch to get per-image MACs,
    which must equal the hand count (not 3x it)."""
    code, out, _ = cli("verify", "resnet18", "--batch", "3", "-f", "json")
    assert code == 0
    data = json.loads(out)
    assert data["batch"] == 3
    conv1 = next(r for r in data["layers"] if r["name"] == "conv1")
    assert conv1["checks"]["macs"]["torch"] == 64 * 112 * 112 * 3 * 7 * 7 == 118_013_952
    assert _resnet18_macs() == 1_814_073_344  # the figure torchvision publishes: 1.81 GFLOPS
    assert data["totals"]["macs"]["torch"] == data["totals"]["macs"]["engine"] == _resnet18_macs()


# --------------------------------------------------------------------------- receptive fields


def _rf(result, layer, axis="h"):
    r = next(x for x in result if x["layer"] == layer)
    return r["axes"][axis]


def test_rf_vgg16():
    res = receptive_fields(archcalc.load("vgg16"), ["conv5_3", "pool5"])
    assert all(r["status"] == "ok" for r in res), res
    for layer, size in (("conv5_3", 196), ("pool5", 212)):
        for axis in "hw":
            a = _rf(res, layer, axis)
            assert a["measured"]["size"] == a["engine"]["size"] == size
            assert not a["clipped"]  # the whole field, padding included, lies inside the input used


RESNET_LIKE = """
name: resnet-like
input: [3, 64, 64]
blocks:
  basic:
    args: [width, stride]
    layers:
      - add:
          - - {conv: {out: $width, kernel: 3, stride: $stride, padding: 1, bias: false}}
            - bn
            - relu
            - {conv: {out: $width, kernel: 3, padding: 1, bias: false}}
            - bn
          - - {conv: {out: $width, kernel: 1, stride: $stride, bias: false}}
            - bn
      - relu
layers:
  - {conv: {out: 8, kernel: 7, stride: 2, padding: 3, bias: false}}
  - bn
  - relu
  - {maxpool: {kernel: 3, stride: 2, padding: 1}}
  - {basic: {width: 8, stride: 1}, name: layer1}
  - {basic: {width: 16, stride: 2}, name: layer2}
  - {basic: {width: 32, stride: 2}, name: layer3}
  - global_avgpool
  - flatten
  - {linear: {out: 10}}
"""


def _stage_ends(net, report):
    from archcalc import layers as L
    from archcalc.torchside.verify import default_rf_layers

    return [net.nodes[i].name for i in default_rf_layers(net, report)
            if not L.REGISTRY[net.nodes[i].type].size_dependent(net.nodes[i].args)]


def test_rf_resnet18():
    net = archcalc.load("resnet18")
    report = analyze(net)
    layers = _stage_ends(net, report)
    assert len(layers) >= 4
    res = receptive_fields(net, layers, report)
    assert all(r["status"] == "ok" for r in res), [r for r in res if r["status"] != "ok"]
    last = res[-1]["axes"]["h"]
    assert last["measured"]["size"] == last["engine"]["size"] == 435 and not last["clipped"]


def test_rf_resnet_like_inline():
    net = loads(RESNET_LIKE)
    report = analyze(net)
    res = receptive_fields(net, _stage_ends(net, report), report)
    assert res and all(r["status"] == "ok" for r in res), res
    assert all(not a["clipped"] and a["measured"]["size"] == a["engine"]["size"] for r in res for a in r["axes"].values())


INCEPTION = """
name: inception-module
input: [3, 32, 32]
layers:
  - {conv: {out: 16, kernel: 3, stride: 2, padding: 1}}
  - relu
  - concat:
      b1x1: [{conv: {out: 8, kernel: 1}}, relu]
      b3x3: [{conv: {out: 4, kernel: 1}}, relu, {conv: {out: 8, kernel: 3, padding: 1}}, relu]
      b5x5: [{conv: {out: 4, kernel: 1}}, relu, {conv: {out: 8, kernel: 5, padding: 2}}, relu]
      pool: [{maxpool: {kernel: 3, stride: 1, padding: 1}}, {conv: {out: 8, kernel: 1}}, relu]
    name: mixed
"""


def test_rf_inception_module():
    net = loads(INCEPTION)
    report = analyze(net)
    res = receptive_fields(net, ["mixed", "b3x3.conv2", "b5x5.conv2", "pool.conv1"], report)
    assert all(r["status"] == "ok" for r in res), res
    sizes = {r["layer"]: r["axes"]["h"]["measured"]["size"] for r in res}
    # stem 3x3/2 gives 3; the 5x5 branch adds 4 input strides of 2: 3 + 4*2 = 11 (the widest branch)
    assert sizes["b5x5.conv2"] == 11 == sizes["mixed"] == report.row("mixed").rf[0].size
    assert sizes["b3x3.conv2"] == 7 and sizes["pool.conv1"] == 7


def test_cli_rf_flag(cli):
    code, out, err = cli("verify", "vgg16", "--rf-at", "conv5_3", "--rf-at", "pool5")
    assert code == 0, err
    assert "196 vs 196" in out and "212 vs 212" in out


# --------------------------------------------------------------------------- memory

TINY = """
name: tiny
input: [1, 4, 4]
layers:
  - {conv: {out: 2, kernel: 3, padding: 1}}
  - relu
  - {maxpool: {kernel: 2}}
  - flatten
  - {linear: {out: 3}}
"""


def test_saved_bytes_tiny_by_hand():
    """Autograd keeps, for one 1x4x4 image (fp32, parameters excluded):
    conv saves its input: 1*4*4 * 4 B = 64; relu (in place) saves its result, the conv output
    2*4*4 * 4 B = 128; maxpool saves that same storage (counted once) and int64 indices 2*2*2 * 8 B
    = 64; linear saves its input, a view of the pool output 2*2*2 * 4 B = 32. Total 288 bytes."""
    net = loads(TINY)
    report = analyze(net)
    assert report.totals["train_saved_bytes"] == 64 + 128 + 64 + 32
    for device in ("cpu", "meta"):
        m = memory(net, report, device=device)
        assert m["saved_bytes"]["torch"] == 288 == m["saved_bytes"]["engine"]
        assert m["saved_bytes"]["storages"] == 4
        assert m["saved_bytes"]["by_dtype"] == {"float32": 224, "int64": 64}


def test_memory_vgg16_cpu(cli):
    code, out, err = cli("verify", "vgg16", "--memory", "--device", "cpu", "-f", "json")
    assert code == 0, err
    m = json.loads(out)["memory"]["saved_bytes"]
    assert m["engine"] == analyze(archcalc.load("vgg16")).totals["train_saved_bytes"]
    assert 0.8 < m["ratio"] < 1.25, m  # measured 73,355,264 vs estimated 73,230,336 bytes
    code, out, err = cli("verify", "vgg16", "--memory")  # table: both numbers and the ratio
    assert code == 0
    line = next(x for x in out.splitlines() if "saved for backward" in x)
    assert f"{m['torch']:,}" in line and f"{m['engine']:,}" in line and "ratio torch/engine" in line


# --------------------------------------------------------------------------- builder


def test_build_names_and_counts():
    net = archcalc.load("vgg16")
    model = build(net, device="meta")
    assert [n for n, _ in model.node_modules()] == [n.name for n in net.nodes]
    assert sum(p.numel() for p in model.parameters()) == 138_357_544
    assert isinstance(model.conv1_1, torch.nn.Conv2d)
    assert build("vgg16", device="meta").spec_name == "vgg16"  # zoo names work too


SHARED = """
input: [2, 8, 8]
layers:
  - {conv: {out: 4, kernel: 3, padding: 1}}
  - add:
      - [relu, {conv: {out: 4, kernel: 3, padding: 1}}]
      - identity
  - relu
  - concat:
      - [relu, {conv: {out: 2, kernel: 1}}]
      - [{conv: {out: 2, kernel: 1}}]
"""


def test_inplace_only_where_safe():
    net = loads(SHARED)
    model = build(net)
    mods = dict(model.node_modules())
    # the add's first relu reads the conv output that the identity shortcut also reads
    assert mods["add1.b1.relu1"].inplace is False
    assert mods["relu1"].inplace is True  # the sum is read by this relu only
    assert mods["concat1.b1.relu1"].inplace is False  # a branch input is shared
    torch.manual_seed(0)
    x = torch.randn(2, 2, 8, 8, requires_grad=True)
    ref = build(net)
    ref.load_state_dict(model.state_dict())
    for m in ref.modules():
        if hasattr(m, "inplace"):
            m.inplace = False
    assert torch.equal(model(x), ref(x))
    model(x).sum().backward()  # no "modified by an inplace operation" error
    first = build(loads("input: [2, 4, 4]\nlayers: [relu, {conv: {out: 2, kernel: 1}}]\n"))
    assert first.relu1.inplace is False  # never overwrite the caller's input


def test_aux_heads_only_in_training():
    text = """
input: [3, 16, 16]
layers:
  - {conv: {out: 4, kernel: 3}}
  - aux: [global_avgpool, flatten, {linear: {out: 5}}]
  - relu
  - global_avgpool
  - flatten
  - {linear: {out: 7}}
"""
    # the inline net has one aux head (5 classes); GoogLeNet as published, two (1000 classes each)
    for net, aux in ((loads(text), [(2, 5)]), (archcalc.load("googlenet-paper"), [(2, 1000)] * 2)):
        model = build(net, device="meta")
        x = torch.empty(2, *net.input, device="meta")
        assert isinstance(model.eval()(x), torch.Tensor)
        outs = model.train()(x)
        assert isinstance(outs, tuple) and outs[0].shape == model.eval()(x).shape
        assert [tuple(o.shape) for o in outs[1:]] == aux


# --------------------------------------------------------------------------- errors and exit codes


def test_mismatch_exits_1(cli, monkeypatch):
    from archcalc import layers as L

    real = L.Conv.count
    monkeypatch.setattr(L.Conv, "count", lambda self, a, xs, y: (real(self, a, xs, y)[0] + 1, 0))
    code, out, err = cli("verify", "vgg16")
    assert code == 1
    assert "✗" in out and "mismatch" in err and err.count("\n") == 1


def test_bad_input_exits_2(cli):
    code, _, err = cli("verify", "no-such-net")
    assert code == 2 and "not in the zoo" in err and "Traceback" not in err
    code, _, err = cli("verify", "vgg16", "--rf-at", "conv9_9")
    assert code == 2 and "conv9_9" in err
    if "conv7x7" in zoo.names():
        code, _, err = cli("verify", "conv7x7")
        assert code == 2 and "--set" in err
    code, _, err = cli("verify", "vgg16", "--device", "tpu")
    assert code == 2


def test_cuda_unavailable_is_a_usage_error(cli):
    if torch.cuda.is_available():
        pytest.skip("a CUDA device is present")
    code, _, err = cli("verify", "vgg16", "--device", "cuda")
    assert code == 2 and "CUDA" in err


def test_missing_torch_exits_2(cli, monkeypatch):
    for mod in ("archcalc.torchside.build", "archcalc.torchside.verify"):
        monkeypatch.delitem(sys.modules, mod, raising=False)
    monkeypatch.setitem(sys.modules, "torch", None)  # import torch -> ImportError
    code, _, err = cli("verify", "vgg16")
    assert code == 2 and "pip install torch" in err
    code, _, err = cli("export", "vgg16", "--to", "torch")
    assert code == 2 and "pip install torch" in err


def test_cli_import_does_not_import_torch():
    proc = run_subprocess("summary", "vgg16", env={"PYTHONWARNINGS": "ignore"})
    assert proc.returncode == 0
    import subprocess

    code = "import sys, archcalc.cli.main; print('torch' in sys.modules, 'archcalc.torchside.verify' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True).stdout.strip()
    assert out == "False False"


def test_memory_with_batch_norm_on_1x1_maps(cli):
    """inception_v3's aux head normalises a 768x1x1 map: training at batch 1 is impossible, so the
    saved bytes are measured at batch 2 and reported per image (this used to be a traceback)."""
    code, out, err = cli("verify", "inception_v3", "--memory", "--format", "json")
    assert code == 0, err
    mem = json.loads(out)["memory"]
    assert mem["notes"] and "batch 2" in mem["notes"][0]
    s = mem["saved_bytes"]
    assert s["engine"] == analyze(archcalc.load("inception_v3")).totals["train_saved_bytes"]
    assert 0.95 < s["torch"] / s["engine"] < 1.05


SAVED_CASES = {  # layer after a 16->32 1x1 conv on 8x8 maps, then flatten + linear
    "relu": "relu", "relu6": "relu6", "leaky_relu": "leaky_relu", "elu": "elu", "silu": "silu",
    "hardswish": "hardswish", "sigmoid": "sigmoid", "tanh": "tanh", "gelu": "gelu", "lrn": "lrn",
    "softmax": "softmax", "maxpool": "maxpool: {kernel: 2}", "avgpool": "avgpool: {kernel: 2}",
    "adaptive": "adaptive_avgpool: {size: 4}", "adaptive_same_size": "adaptive_avgpool: {size: 8}",
    "adaptive_1x1": "adaptive_avgpool: {size: 1}", "global": "global_avgpool", "bn": "bn",
    "concat": "concat: [identity, [{conv: {out: 8, kernel: 1}}]]",
    "add": "add: [identity, [{conv: {out: 32, kernel: 1}}]]",
    "mean": "mean: [identity, [{conv: {out: 32, kernel: 1}}]]",
    "pad_channels": "pad_channels: {out: 48, stride: 2}", "scale": "scale: {factor: 0.5}",
}


@pytest.mark.parametrize("case", sorted(SAVED_CASES))
def test_saved_bytes_per_layer_type_equal_torch(case):
    """The engine's saved-for-backward bytes equal what autograd keeps, to the byte, per layer type."""
    text = (f"input: [16, 8, 8]\nlayers:\n  - {{conv: {{out: 32, kernel: 1, bias: false}}}}\n"
            f"  - {SAVED_CASES[case]}\n  - flatten\n  - {{linear: {{out: 10}}}}\n")
    net = loads(text)
    report = analyze(net)
    s = memory(net, report, device="cpu")["saved_bytes"]
    assert s["torch"] == s["engine"] == report.totals["train_saved_bytes"]


def test_saved_bytes_dropout_mask_on_cpu():
    # the estimate keeps one byte per element for the mask (CUDA's bool mask); PyTorch's CPU
    # dropout keeps a float mask: 3 more bytes for each of the 32*8*8 elements
    net = loads("input: [16, 8, 8]\nlayers:\n  - {conv: {out: 32, kernel: 1, bias: false}}\n  - dropout\n"
                "  - flatten\n  - {linear: {out: 10}}\n")
    s = memory(net, analyze(net), device="cpu")["saved_bytes"]
    assert s["torch"] - s["engine"] == 3 * 32 * 8 * 8


# --------------------------------------------------------------------------- issue 8: fields through resampling


@pytest.mark.parametrize("name,size", [("mobilenet_v3_large", None), ("shufflenet_v2_x1_0", None), ("fcn_resnet50", 96)])
def test_rf_modern_zoo_equals_input_gradients(name, size):
    """Squeeze-excitation gates (every position then reads the whole image), channel splits and
    shuffles, and FCN's bilinear upsample back to the input (at a reduced input): the engine's
    field at the end of each stage equals the extent of the input gradient."""
    net = archcalc.load(name, input_override=(3, size, size) if size else None)
    report = analyze(net)
    res = receptive_fields(net, None, report)
    assert len(res) >= 4 and all(r["status"] == "ok" for r in res), [r for r in res if r["status"] != "ok"]


def test_rf_window_that_does_not_tile_is_a_note_not_a_mismatch():
    """squeezenet1_1's first conv (3x3/2, no padding) never reads row 223 of a 224 input; its global
    pool's field, clipped to the image, would end at 223: the probe measures 0..222, the rows the
    windows really read, and reports a note."""
    net = archcalc.load("squeezenet1_1")
    res = receptive_fields(net, ["avgpool10"])
    h = res[0]["axes"]["h"]
    assert res[0]["status"] == "ok" and h["status"] == "note"
    assert h["expected_extent"] == [0, 223] and h["reach"] == [0, 222] and h["measured"] == {"size": 223, "start": 0}
    assert h["note"].startswith("input row 223 is never read")


def test_probe_bytes_by_hand():
    """The RF probe's memory estimate, for the CLI's --max-memory guard: relu1 (field 3, stride 1,
    padding 1) fits the 6x6 input at position 1, so the probe runs 6x6 on channel sums (no linear):
    the input plane 36 + conv and relu 2 x 36 each (joins may hold two planes) = 180 float64
    values, kept for backward (x2), one image: 8 * 2 * 180 = 2,880 bytes; a linear head that is not
    an ancestor of the measured layer changes nothing."""
    from archcalc.torchside.verify import probe_bytes

    net = loads("input: [2, 6, 6]\nlayers:\n  - {conv: {out: 4, kernel: 3, padding: 1}}\n  - relu\n")
    assert probe_bytes(net) == 2_880
    head = loads("input: [2, 6, 6]\nlayers:\n  - {conv: {out: 4, kernel: 3, padding: 1}}\n  - relu\n  - flatten\n"
                 "  - {linear: {out: 3}}\n")
    assert probe_bytes(head, ["relu1"]) == 2_880


def test_verify_never_imports_dynamo_and_leaves_torch_as_it_was():
    """Issue 14: torch's disable-dynamo wrappers (dispatch modes, the batch-norm decomposition's
    elementwise references) would import torch._dynamo (over a second) on first call. While a
    model runs they call their function directly; afterwards the cache attributes are gone again.
    Numbers are unchanged: the run must still agree with the engine."""
    code = (
        "import sys\n"
        "from archcalc import analyze, load\n"
        "from archcalc.torchside.verify import verify, LiveBytes\n"
        "from archcalc._speedups import seed_dynamo_disable\n"
        "from archcalc.spec.load import loads\n"
        "net = loads('input: [3, 16, 16]\\nlayers:\\n  - {conv: {out: 4, kernel: 3}}\\n  - batchnorm\\n  - relu\\n')\n"
        "r = verify(net, analyze(net), device='meta', mem=True)\n"
        "print(r['ok'], r['mismatches'], 'torch._dynamo' in sys.modules)\n"
        "again = seed_dynamo_disable((LiveBytes,))\n"  # all removed after the run: found and set again
        "print(len(again) > 100)\n"
        "import types\n"
        "sys.modules['torch._dynamo'] = types.ModuleType('torch._dynamo')\n"  # as if loaded (the real one: 1.5 s)
        "print(seed_dynamo_disable((LiveBytes,)))\n"  # a process with dynamo keeps torch's behaviour
    )
    out = __import__("subprocess").run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.stdout.split("\n")[:3] == ["True 0 False", "True", "[]"], out.stdout + out.stderr[-3000:]
