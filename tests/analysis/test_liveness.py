"""Live-tensor peak memory (archcalc/analysis/liveness.py): hand-checked figures, the builder's in-place rule,
and the engine's model against the bytes of live tensors torch really holds on the CPU
(archcalc.torchside.verify.live_bytes: a TorchDispatchMode that follows every storage with a weak reference)."""

from __future__ import annotations

import json

import pytest

import torch  # noqa: F401  (a test extra: missing torch must fail, not skip)

import archcalc
from archcalc import analyze
from archcalc.layers import REGISTRY
from archcalc.analysis.liveness import builder_inplace, max_batch, totals
from archcalc.spec.load import loads
from archcalc.torchside.verify import live_bytes

TINY = """name: tiny
input: [3, 8, 8]
layers:
  - {conv: {out: 4, kernel: 3, padding: 1}, name: c1}
  - {relu: {}, name: r1}
  - {maxpool: {kernel: 2}, name: p1}
  - {flatten: {}, name: f}
  - {linear: {out: 10}, name: fc}
"""


def test_tiny_inference_by_hand():
    # fp32, per image. c1 makes 4x8x8 = 256 values = 1,024 bytes (the input is the caller's).
    # r1 runs in place on it (only r1 reads c1): nothing new. p1 makes 4x4x4 = 64 values = 256
    # bytes and, beside them, 64 int64 indices = 512 bytes, while c1's 1,024 are alive:
    # 1,024 + 256 + 512 = 1,792, the peak. Then c1's storage dies (256 alive); flatten is a view;
    # fc makes 10 values = 40 bytes beside the 256: 296; at the end the output's 40 remain.
    r = analyze(loads(TINY, "tiny.yaml"), batch=3)
    t = totals(r, backend="cpu")  # (the liveness pass runs when first asked: then the rows carry their live bytes)
    assert [row.live for row in r.rows] == [1024, 1024, 256, 256, 40]
    assert t["inference_peak_bytes"] == 3 * 1792 and t["inference_peak_layer"] == "p1"
    for batch in (1, 3):
        got = live_bytes(loads(TINY, "tiny.yaml"), batch=batch)
        assert got["peak"] == batch * 1792
        assert [got["after"][i] for i in range(5)] == [batch * v for v in (1024, 1024, 256, 256, 40)]


def test_tiny_training_by_hand():
    # Per image, fp32. Forward: c1 1,024 (saved by r1 as its output, by p1 as its input), p1 256
    # and its 512 bytes of indices (kept for backward), fc 40 (saves p1's output through the
    # flatten view): 1,832 alive when backward starts. Backward, last layer first:
    #   fc: p1's gradient 256 new (2,088) and fc's weight gradient, 650 params x 4 = 2,600 bytes
    #       (batch-independent); then p1's output (first saved by fc) dies: 1,832
    #   f:  passes the gradient on (a view)
    #   p1: r1's gradient 1,024 new: 2,856; then its 256-byte input gradient and its indices die: 2,088
    #   r1: c1's gradient 1,024 new beside r1's 1,024: 3,112 <- the largest; then 1,064
    #   c1: no input gradient; its 112 params' gradient (448 bytes): 1,064 + 3,048
    # Peak at batch N: max(3,112 N + 2,600, 1,064 N + 3,048) = 3,112 N + 2,600.
    r = analyze(loads(TINY, "tiny.yaml"), batch=2)
    t = totals(r, backend="cpu")
    assert t["train_peak_bytes"] == 2 * 3112 + 2600 == 8824
    assert (t["train_peak_layer"], t["train_peak_phase"]) == ("r1", "backward")
    # train MACs: c1 6,912 forward + 6,912 grad-weight (no grad-input: the input needs none);
    # fc 640 + 640 grad-input + 640 grad-weight
    assert t["train_macs"] == 2 * 6912 + 3 * 640 == 15744
    # torch holds the same, and two 4-byte scalars of the loss (sum of the outputs' sums)
    for batch in (1, 2):
        got = live_bytes(loads(TINY, "tiny.yaml"), batch=batch, train=True)
        assert got["peak"] == totals(r, batch, "cpu")["train_peak_bytes"] + 8


# The specs, small inputs (the model takes them: adaptive pools), fp32, batch 2.
EXACT = [("vgg16", (3, 32, 32)), ("resnet50", (3, 32, 32)), ("googlenet", (3, 32, 32)),
         ("densenet121", (3, 32, 32)), ("mobilenet_v2", (3, 32, 32)), ("inception-bottleneck", (256, 8, 8))]


@pytest.mark.parametrize("name,size", EXACT, ids=[n for n, _ in EXACT])
def test_inference_equals_torch_live_bytes(name, size):
    net = archcalc.load(name, input_override=size)
    r = analyze(net, batch=2)
    got = live_bytes(net, batch=2)
    t = totals(r, backend="cpu")  # fills each row's live bytes
    assert got["peak"] == t["inference_peak_bytes"]
    assert net.nodes[got["at"]].name == t["inference_peak_layer"]
    # every layer: the bytes alive when the next one starts (the last: after the run, outputs kept)
    order = [i for i, nd in enumerate(net.nodes) if not nd.aux]
    for k, i in enumerate(order):
        assert got["after"][i] == 2 * r.rows[i].live, (name, r.rows[i].name)


# alexnet-paper (227x227: its classifier fixes the size) has LRN, whose backward holds three
# temporaries of its input's size beside the input's gradient (issue 26: 7.7% below before)
@pytest.mark.parametrize("name,size", [("resnet18", (3, 32, 32)), ("mobilenet_v2", (3, 32, 32)), ("alexnet-paper", None)])
def test_training_equals_torch_live_bytes(name, size):
    net = archcalc.load(name, input_override=size) if size else archcalc.load(name)
    r = analyze(net, batch=2)
    got = live_bytes(net, batch=2, train=True)
    assert got["peak"] == totals(r, backend="cpu")["train_peak_bytes"] + 8  # + the loss's two scalars


def test_resnet50_batch32_summary(cli):
    # 9,633,792 bytes per image: layer1.0's shortcut batch norm output (256x56x56) made while the
    # shortcut conv's output (256x56x56) and the residual branch's output (256x56x56) are alive:
    # 3 x 802,816 values x 4 bytes; x 32 = 308,281,344 (the GPU measured 309 MB: issue 12)
    code, out, err = cli("summary", "resnet50", "--batch", "32")
    assert code == 0, err
    # (cuDNN's working memory does not reach it at batch 32: the peak is the live tensors')
    assert "peak_memory (inference_peak_bytes): 308,281,344 B (294.00 MiB) at layer1.0.shortcut.bn" in out
    assert "inference_live_bytes: 308,281,344 B (294.00 MiB)" in out
    code, out, err = cli("summary", "resnet50", "--batch", "32", "--memory")
    assert "activations: 28,101,608 values" in out and "classic count" in out
    code, out, err = cli("summary", "resnet50", "--batch", "32", "-f", "json")
    t = json.loads(out)["totals"]
    assert t["inference_peak_bytes"] == 308_281_344 == 32 * 3 * 802_816 * 4
    assert t["inference_peak_layer"] == "layer1.0.shortcut.bn"
    assert t["train_macs"] == 3 * 4_089_184_256 - 118_013_952  # no grad-input for conv1 (64x112x112x147)
    assert t["train_total_bytes"] == t["train_peak_bytes"] + (25_557_032 + 53_120) * 4 + 32 * 3 * 224 * 224 * 4


def test_fit_inference_and_training(cli):
    code, out, err = cli("summary", "resnet50", "--fit", "16GiB", "--inference")
    assert code == 0, err
    # (16 GiB - weights and buffers 102,440,608) // (peak 9,633,792 + input 602,112 per image)
    assert (16 * 2**30 - 102_440_608) // (9_633_792 + 602_112) == 1668
    assert "fits in 16.00 GiB: inference batch of at most 1,668" in out
    r = analyze(archcalc.load("resnet50"))
    n = max_batch(r, 16 * 2**30)
    assert totals(r, n)["train_total_bytes"] <= 16 * 2**30 < totals(r, n + 1)["train_total_bytes"]
    code, out, err = cli("summary", "resnet50", "--inference")
    assert code == 2 and "--inference goes with --fit" in err


def test_budgets(cli, tmp_path):
    spec = tmp_path / "b.yaml"
    # Budgets read the default backend's figures (cudnn, every block rounded up to 512 bytes, the
    # CUDA allocator's rule). Inference, batch 1: c1 1,024 + p1 256 -> 512 + its indices 512 =
    # 2,048 (c1 converts nothing: 3 x 3 x 3 = 27 is below 32). Training, batch 1, the hand walk of
    # test_tiny_training_by_hand with each block rounded: forward ends with c1 1,024, p1 512,
    # indices 512, fc 40 -> 512 alive; fc's weight gradient 2,600 -> 3,072; p1 and r1's steps
    # reach 3,584 + 3,072 = 6,656; then 1,536 alive (c1's gradient and fc's output) when c1's
    # backward converts its input 3x8x8 x 4 = 768 -> 1,024, its output's gradient 1,024 twice and
    # its filter 4x3x3x3 x 4 + 256 = 688 -> 1,024: 1,536 + 4,096 + 3,072 + c1's weight gradient
    # 448 -> 512 = 9,216, and beside them cuDNN's backward engine takes its least, 1 MiB (its
    # converted bytes, 4,096, are below it): 9,216 + 1,048,576 = 1,057,792. Batch 2: inference
    # 2,048 + 512 + 1,024 = 3,584; training at c1's backward 2,560 (c1's gradient 2,048, fc's output
    # 512) + 1,536 + 2 x 2,048 + 1,024 + 3,072 + 512 = 12,800, + 1 MiB = 1,061,376.
    spec.write_text(TINY + "budget: {peak_memory: 1KiB, train_peak_memory: 8KiB}\n")
    code, out, err = cli("check", str(spec))
    assert code == 1
    assert "peak_memory 2,048 > 1,024 (limit)" in out
    assert "train_peak_memory 1,057,792 > 8,192 (limit)" in out
    code, out, err = cli("check", str(spec), "--budget", "peak_memory=4KiB", "--batch", "2")
    assert code == 1 and "peak_memory 3,584 <= 4,096" in out
    assert "train_peak_memory 1,061,376 > 8,192 (limit)" in out
    # --fit trains with the backend's figure: with cuDNN the peak alone is 1,057,792 bytes at batch
    # 1 (above), more than 1 MiB, so no batch fits; the live tensors alone (--backend cpu) fit many
    spec.write_text(TINY)
    fits = {}
    for backend in ("cudnn", "cpu"):
        code, out, err = cli("summary", str(spec), "--fit", "1MiB", "--backend", backend, "-f", "json")
        assert code == 0, err
        fits[backend] = json.loads(out)["fit"]["max_batch"]
    assert fits["cudnn"] == 0 and fits["cpu"] > 10


def test_symbolic_sizes_have_no_peak(cli):
    r = analyze(archcalc.load("vgg16", free=("H", "W")))
    t = totals(r)
    assert r.memory.get() is None and t["inference_peak_bytes"] is None and t["train_peak_bytes"] is None
    assert t["train_macs"] is not None  # a closed form
    # a symbolic batch on concrete sizes: exact, linear in N
    code, out, err = cli("summary", "resnet50", "--batch", "N", "-f", "json")
    assert code == 0, err
    t = json.loads(out)["totals"]
    assert t["inference_live_bytes"] == "9633792*N"
    # with cuDNN's working memory (docs/memory.md) a second line: layer4.0.conv2 (3x3, 512 -> 512,
    # stride 2, 14x14 -> 7x7) runs while the block's input (1024x14x14 = 200,704 values) and conv1's
    # output (512x14x14 = 100,352) live, beside its output (512x7x7 = 25,088) and both converted
    # (100,352 + 25,088): 451,584 values x 4 = 1,806,336 bytes per image; its filter once more,
    # 512 x 512 x 9 x 4 + 256 = 9,437,440 bytes per batch
    assert 4 * (200_704 + 2 * 100_352 + 2 * 25_088) == 1_806_336
    # the JSON writes closed forms in sympy's syntax (docs/json.md: `sympy.sympify` reads them back
    # exactly), so the maximum is sympy's `Max`; read back, it is the same function of N
    assert t["inference_peak_bytes"] == "Max(9633792*N, 1806336*N + 9437440)"
    import sympy

    n = sympy.Symbol("N")
    peak = sympy.sympify(t["inference_peak_bytes"], locals={"N": n})
    assert peak == sympy.Max(9_633_792 * n, 1_806_336 * n + 9_437_440)
    assert [peak.subs(n, b) for b in (1, 2)] == [max(9_633_792, 1_806_336 + 9_437_440),
                                                 max(2 * 9_633_792, 2 * 1_806_336 + 9_437_440)]
    # the table prints the same maximum as people write it (docs/json.md: `max`, not sympy's `Max`)
    code, out, err = cli("summary", "resnet50", "--batch", "N")
    assert code == 0, err
    assert "peak_memory (inference_peak_bytes): max(9633792*N, 1806336*N + 9437440) B" in out


# The in-place rule as torch.py first wrote it (a walk over each chain of nodes sharing a
# storage, quadratic), kept here as an independent reference for builder_inplace, the one linear
# pass that the builder and the memory model now share.
def _reference_outputs(net):
    """Indices of the nodes the model returns: the main output, then each aux head's last node."""
    readers = {i: 0 for i in range(len(net.nodes))}
    for node in net.nodes:
        for j in node.inputs:
            if j >= 0:
                readers[j] += 1
    aux = [i for i, n in enumerate(net.nodes) if n.aux and readers[i] == 0 and i != net.output]
    return [net.output] + aux


def _reference_inplace_safe(net, shapes) -> list:
    """Per node: may an in-place layer overwrite its input? (Only when no other node, no output
    and no earlier backward need reads that storage, and it is not the network input.)"""
    readers: dict = {}
    for i, node in enumerate(net.nodes):
        for j in node.inputs:
            readers.setdefault(j, []).append(i)
    outs = set(_reference_outputs(net))
    root = {-1: -1}
    safe = [False] * len(net.nodes)
    for i, node in enumerate(net.nodes):
        ltype = REGISTRY[node.type]
        j = node.inputs[0]
        inplace = ltype.can_inplace and node.args.get("inplace")
        if not inplace:
            xs = [shapes[k] for k in node.inputs]
            # a view (or an identity at inference) shares its input's storage
            root[i] = root[j] if ltype.new_tensor(node.args, xs, shapes[i], False) is False else i
            continue
        s = root[j]
        ok = s != -1
        chain = [t for t in range(s, i) if t >= 0 and root.get(t) == s] if ok else []
        for t in chain:
            if t in outs:
                ok = False
            for k in readers.get(t, []):
                if k != i and not (k in chain):
                    ok = False
            if "output" in REGISTRY[net.nodes[t].type].saves(net.nodes[t].args, True):
                ok = False
        safe[i] = ok
        root[i] = s if ok else i
    return safe


def test_builder_rule_equals_the_chain_walk():
    from archcalc.torchside.build import _out_shapes, inplace_safe

    ran = {}
    for name in ("resnet50", "densenet121", "mobilenet_v3_large", "inception_v3", "googlenet-paper", "fractalnet",
                 "shufflenet_v2_x1_0", "efficientnet_b0", "lenet5", "deeplabv3_mobilenet_v3_large"):
        net = archcalc.load(name)
        shapes = _out_shapes(net)
        expected = _reference_inplace_safe(net, shapes)
        assert builder_inplace(net, shapes) == inplace_safe(net, shapes) == expected, name
        ran[name] = sum(expected)
    # the comparison is not vacuous: in-place layers run in most of these (lenet5 has none)
    assert ran["lenet5"] == 0 and sum(1 for v in ran.values() if v) >= 8, ran


def test_long_chain_is_linear():
    # 20,000 conv + relu pairs: relu runs in place each time (one pass, no quadratic chain walk);
    # the inference peak is one conv's input and output: 2 x 8x16x16 x 4 bytes
    net = loads("name: chain\ninput: [8, 16, 16]\nlayers:\n  - repeat: 10000\n    layers: [{conv: {out: 8, kernel: 3, "
                "padding: 1}}, relu]\n", "chain.yaml")
    r = analyze(net)
    assert r.rows[0].live is None  # not computed until asked for
    assert totals(r, backend="cpu")["inference_peak_bytes"] == 2 * 8 * 16 * 16 * 4
    assert all(row.live == 8 * 16 * 16 * 4 for row in r.rows)
    # training keeps every conv's output (saved by its relu and the next conv): 10,000 x 8,192
    # bytes; backward's first conv step adds two gradients (its output's and its input's) and its
    # weight gradient (584 params x 4); later steps free 8,192 bytes each for 2,336 more gradients
    assert totals(r, backend="cpu")["train_peak_bytes"] == 10000 * 8192 + 2 * 8192 + 584 * 4


@pytest.mark.parametrize("optimizer,make,states", [("momentum", lambda ps: torch.optim.SGD(ps, lr=0.1, momentum=0.9), 1),
                                                   ("adam", lambda ps: torch.optim.Adam(ps), 2)])
def test_a_layer_that_reaches_no_output_has_no_gradient_and_no_optimizer_state(optimizer, make, states):
    """issue 21 item 1, memory: conv a's output reaches no output, so backward never reaches its
    weights: torch leaves a.weight.grad None and the optimizer makes no state for it. Counted by torch
    itself after one step: the bytes of every .grad and of every optimizer state tensor (Adam's step
    counters are 0-dim: left out, as the engine counts state per parameter element)."""
    from archcalc.torchside.build import build

    net = loads("input: [2, 6, 6]\nlayers:\n  - {conv: {out: 4, kernel: 3}, name: a}\n"
                "  - {conv: {out: 3, kernel: 3}, name: b, from: input}\n")
    model = build(net)
    outs = model(torch.randn(1, 2, 6, 6))
    sum(o.sum() for o in (outs if isinstance(outs, tuple) else (outs,))).backward()
    opt = make(model.parameters())
    opt.step()
    grads = sum(p.grad.numel() * p.grad.element_size() for p in model.parameters() if p.grad is not None)
    state = sum(t.numel() * t.element_size() for s in opt.state.values() for t in s.values()
                if torch.is_tensor(t) and t.dim() > 0)
    weights = sum(p.numel() * p.element_size() for p in model.parameters())
    # b: 3 x 2 x 3 x 3 + 3 = 57 parameters x 4 bytes = 228; a: 4 x 2 x 3 x 3 + 4 = 76 (304 bytes): none
    assert (grads, state, weights) == (228, states * 228, 228 + 304)
    prof = analyze(net, optimizer=optimizer).memory.get()
    assert prof.state_bytes.gradients == grads
    assert prof.state_bytes.with_optimizer - prof.state_bytes.weights == state
    assert prof.state_bytes.weights == weights
