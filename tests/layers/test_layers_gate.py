"""ECA's 1-D conv over the pooled channels (eca_conv) and GCNet's context pooling (context_pool)
against torch: torch.nn.Conv1d on the map viewed as N x 1 x C (Wang et al. 2020, the ECA-Net paper's
code), the context modelling written out (Cao et al. 2019), timm's EcaModule and GlobalContext,
FlopCounterMode; counts worked out by hand in the comments."""

from __future__ import annotations

import pytest

import torch  # noqa: E402  (a test extra: missing torch must fail, not skip)
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from archcalc import analyze
from archcalc.errors import SpecError
from archcalc.spec.load import loads
from archcalc.torchside.build import build
from archcalc.torchside.verify import memory, receptive_fields, verify

# a conv, then an ECA gate: global average pool, eca_conv, sigmoid, times the trunk
GATE = ("input: [8, 9, 9]\nlayers:\n  - {conv: {out: 16, kernel: 3, padding: 1}, name: c}\n"
        "  - mul: {trunk: identity, gate: [global_avgpool, {eca_conv: {kernel: 5}, name: e}, sigmoid]}\n")


def test_eca_conv_is_conv1d_over_the_channels():
    net = loads("input: [16, 1, 1]\nlayers:\n  - {eca_conv: {kernel: 5}, name: e}\n", "e.yaml")
    model = build(net).eval()
    ref = nn.Conv1d(1, 1, 5, padding=2, bias=False)
    torch.manual_seed(0)
    with torch.no_grad():
        ref.weight.copy_(torch.randn(1, 1, 5))
    model.load_state_dict({"e.weight": ref.weight.detach()}, strict=True)  # the Conv1d's key and shape (1, 1, 5)
    x = torch.randn(2, 16, 1, 1)
    with torch.no_grad():
        want = ref(x.view(2, 1, 16)).view(2, 16, 1, 1)
        got = model(x)
    assert torch.equal(got, want)
    # by hand: 5 weights; 16 output channels * 5 = 80 MACs (zero padding counted, as torch counts)
    n = analyze(net).totals
    assert (n["params"], n["buffers"], n["macs"]) == (5, 0, 80) == (sum(p.numel() for p in ref.parameters()), 0, 80)
    with FlopCounterMode(display=False) as fc:
        ref(x[:1].view(1, 1, 16))
    assert fc.get_total_flops() // 2 == 80


def test_eca_gate_verifies_against_torch():
    net = loads(GATE, "gate.yaml")
    result = verify(net, device="cpu")
    bad = [(r["name"], k, c) for r in result["layers"] for k, c in r["checks"].items() if c["status"] != "ok"]
    assert not bad and result["ok"], bad or result["totals"]
    # by hand: conv 8*16*9 + 16 = 1168, eca 5 -> 1173 params; MACs conv 16*81*72 = 93312, eca 16*5 = 80
    assert analyze(net).totals["params"] == 1173 and analyze(net).totals["macs"] == 93312 + 80


def _fields_and_bytes_equal_torch(net, report):
    """Every map's receptive field measured by torch's gradients (verify --rf), and the bytes
    autograd saves and a no-grad forward keeps live on CPU, equal the engine's."""
    names = [r.name for r in report.rows if r.rf is not None and len(r.shape) == 3]
    res = receptive_fields(net, names, report)
    assert res and all(r["status"] == "ok" for r in res), [r for r in res if r["status"] != "ok"]
    torch.manual_seed(0)
    m = memory(net, report, device="cpu")
    assert m["saved_bytes"]["torch"] == m["saved_bytes"]["engine"] == report.totals["train_saved_bytes"]
    live = m["live"]["inference_live_bytes"]
    assert live["torch"] == live["engine"], live


def test_eca_gate_receptive_field_and_bytes_equal_torch():
    net = loads(GATE, "gate.yaml")
    report = analyze(net)
    _fields_and_bytes_equal_torch(net, report)


@pytest.mark.parametrize("text, message", [
    ("input: [8, 9, 9]\nlayers:\n  - {eca_conv: {kernel: 3}}\n", "eca_conv needs a pooled C x 1 x 1 map, got a 2-D map 8x9x9"),
    ("input: [8, 4, 4, 4]\nlayers:\n  - {eca_conv: {kernel: 3}}\n", "got a 3-D map 8x4x4x4"),  # not 'a flat vector'
    ("input: [8]\nlayers:\n  - {eca_conv: {kernel: 3}}\n", "got a flat vector of 8"),
    ("input: [8, 1, 1]\nlayers:\n  - {eca_conv: {kernel: 4}}\n", "eca_conv needs an odd kernel"),
])
def test_eca_conv_errors_are_one_line(text, message):
    with pytest.raises(SpecError, match=message) as err:
        analyze(loads(text, "e.yaml"))
    assert "\n" not in str(err.value).strip()


def test_timm_eca_module_imports_as_eca_conv():
    """timm's EcaModule (ecaresnet, eca_nfnet, byobnet's eca): traced through, its view(N, 1, -1),
    Conv1d and view back become eca_conv; its conv's weight loads under its own key; the outputs agree."""
    eca = pytest.importorskip("timm.layers.eca")
    from archcalc.importer import import_target
    from archcalc.importer.roundtrip import check

    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(8, 64, 3, padding=1), eca.EcaModule(64))  # 64 channels: timm picks kernel 3
    with torch.no_grad():
        model[1].conv.weight.copy_(torch.randn(1, 1, 3))
    text, _, _ = import_target("tests:eca", None, (8, 9, 9), model=model)
    assert "{eca_conv: {kernel: 3}, name: conv}" in text, text
    r = check(text, model, (8, 9, 9))
    assert r["ok"] and r["outputs"]["ok"] and r["outputs"]["max_abs_diff"] == 0, r
    # the original's own numbers: params 8*64*9 + 64 + 3 = 4675; FlopCounterMode / 2: conv 64*81*72 + eca 64*3
    assert r["engine"]["params"] == sum(p.numel() for p in model.parameters()) == 4675
    with FlopCounterMode(display=False) as fc:
        model(torch.randn(1, 8, 9, 9))
    assert r["engine"]["macs"] == fc.get_total_flops() // 2 == 64 * 81 * 72 + 64 * 3


# GCNet's block (timm's GlobalContext, fuse_scale): context pooling, a bottleneck of 1x1 convs, a sigmoid gate
GC = ("input: [8, 9, 9]\nlayers:\n  - {conv: {out: 16, kernel: 3, padding: 1}, name: c}\n"
      "  - mul: {trunk: identity, gate: [{context_pool: {}, name: p}, {conv: {out: 4, kernel: 1}}, relu, "
      "{conv: {out: 16, kernel: 1}}, sigmoid]}\n")


def test_context_pool_is_the_softmax_weighted_sum():
    net = loads("input: [16, 5, 5]\nlayers:\n  - {context_pool: {}, name: p}\n", "p.yaml")
    model = build(net).eval()
    torch.manual_seed(0)
    w, b = torch.randn(1, 16, 1, 1), torch.randn(1)
    model.load_state_dict({"p.weight": w, "p.bias": b}, strict=True)  # timm's conv_attn keys and shapes
    x = torch.randn(2, 16, 5, 5)
    # by hand: logit(p) = sum_c w_c x_c(p) + b; a = softmax over the 25 positions; out_c = sum_p a(p) x_c(p)
    logits = (x * w).sum(1).flatten(1) + b
    a = torch.softmax(logits, dim=1)
    want = (x.flatten(2) * a[:, None, :]).sum(2).view(2, 16, 1, 1)
    with torch.no_grad():
        torch.testing.assert_close(model(x), want, rtol=1e-5, atol=1e-6)
    # 16 weights + 1 bias; MACs 2 * 16*25 = 800 (FlopCounterMode: the conv 16*25, the matmul 16*25)
    n = analyze(net).totals
    assert (n["params"], n["macs"]) == (17, 800)
    with FlopCounterMode(display=False) as fc:
        model(x[:1])
    assert fc.get_total_flops() // 2 == 800


def test_context_pool_gate_verifies_rf_and_bytes():
    net = loads(GC, "gc.yaml")
    result = verify(net, device="cpu")
    bad = [(r["name"], k, c) for r in result["layers"] for k, c in r["checks"].items() if c["status"] != "ok"]
    assert not bad and result["ok"], bad or result["totals"]
    report = analyze(net)
    _fields_and_bytes_equal_torch(net, report)


def test_timm_global_context_imports_as_context_pool():
    """timm's GlobalContext (GCNet, fuse_scale): its conv_attn, reshape, softmax over the positions and
    matmul become context_pool named after conv_attn (whose weight and bias load); with fuse_add the
    sum of the map and a C x 1 x 1 context is refused in one line naming the op."""
    gc = pytest.importorskip("timm.layers.global_context")
    from archcalc.importer import ImportFailed, import_target
    from archcalc.importer.roundtrip import check

    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(8, 16, 3, padding=1), gc.GlobalContext(16))
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn_like(p) * 0.5)
    text, _, _ = import_target("tests:gc", None, (8, 9, 9), model=model)
    assert "{context_pool: {}, name: conv_attn}" in text, text
    r = check(text, model, (8, 9, 9))
    assert r["ok"] and r["outputs"]["ok"] and r["outputs"]["max_abs_diff"] == 0, r
    # the original's own numbers: params conv 8*16*9 + 16, conv_attn 16 + 1, mlp 16*2 + 2, norm 2 + 2, 2*16 + 16
    assert r["engine"]["params"] == sum(p.numel() for p in model.parameters()) == 1168 + 17 + 34 + 4 + 48
    with FlopCounterMode(display=False) as fc:
        model(torch.randn(1, 8, 9, 9))
    # conv 16*81*72, context 2 * 16*81, mlp 16*2 + 2*16
    assert r["engine"]["macs"] == fc.get_total_flops() // 2 == 16 * 81 * 72 + 2 * 16 * 81 + 64
    added = nn.Sequential(nn.Conv2d(8, 16, 3, padding=1), gc.GlobalContext(16, fuse_add=True, fuse_scale=False))
    with pytest.raises(ImportFailed, match=r"operator\.add at 1 \(x1\): needs add to broadcast a C x 1 x 1 tensor") as err:
        import_target("tests:gca", None, (8, 9, 9), model=added)
    assert "\n" not in str(err.value)


# ONNX export and `export --to torch` of an ECA gate: tests/layers/test_layers_vocab.py (its ONNX and source lists)
