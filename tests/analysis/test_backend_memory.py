"""The backend's working memory in the peaks (docs/memory.md, archcalc/layers/conv.py conv_workspace):
hand arithmetic checked against the peaks an NVIDIA H100 measured (docs/verify.md, "Peak memory on a
GPU over the zoo": torch 2.11, cuDNN 9.19, torch.cuda.max_memory_allocated above model and input),
and issue 26's goals over that whole table (benchmarks/memory_rule.py reads its measured columns)."""

from __future__ import annotations

import importlib.util
import json

import archcalc
from archcalc import analyze
from archcalc.analysis.liveness import totals
from conftest import ROOT


def _r512(v):
    return -(-v // 512) * 512


def _peak(name, batch, backend, what="inference_peak_bytes"):
    return totals(analyze(archcalc.load(name), batch=batch), batch, backend)[what]


def test_vgg16_batch32_cudnn_and_native():
    act = 32 * 64 * 224 * 224 * 4  # one 64x224x224 fp32 activation at batch 32
    assert act == 411_041_792
    # conv1_2 runs while conv1_1's output lives, beside its own output: the live tensors
    assert _peak("vgg16", 32, "cpu") == 2 * act == 822_083_584
    # cuDNN: the input and the output once more (channels last) and the filter 64x64x3x3 x 4 bytes
    # (+ 256), rounded to 512: measured 1,644,315,136
    assert 4 * act + _r512(64 * 64 * 9 * 4 + 256) == 1_644_315_136
    assert _peak("vgg16", 32, "cudnn") == 1_644_315_136
    # without cuDNN: one image's column buffer, 64 x 9 x 224 x 224 x 4: measured 937,689,088
    assert _peak("vgg16", 32, "native") == 2 * act + 64 * 9 * 224 * 224 * 4 == 937_689_088


def test_resnet_stems_and_cifar_blocks_as_measured():
    # resnet18 at batch 32, conv1 (7x7/2, 3 -> 64): its output (64x112x112) and bn1's beside it
    # are the live peak; cuDNN adds the input 3x224x224, the output again and the filter
    # 64x3x7x7 x 4 = 37,632 (+ 256 -> 37,888): measured 224,826,368
    out = 32 * 64 * 112 * 112 * 4
    assert 2 * out + 32 * 3 * 224 * 224 * 4 + _r512(64 * 3 * 49 * 4 + 256) == 224_826_368
    assert _peak("resnet18", 32, "cudnn") == 224_826_368
    # resnet20 (CIFAR) at batch 32, a 16 -> 16 3x3 conv at 32x32: three live 16x32x32 maps, the
    # input and output converted, the filter 16x16x9 x 4 + 256: measured 10,495,488; without
    # cuDNN the column buffer 16 x 9 x 32 x 32 x 4 instead: measured 6,881,280
    unit = 32 * 16 * 32 * 32 * 4
    assert 5 * unit + _r512(16 * 16 * 9 * 4 + 256) == 10_495_488 == _peak("resnet20", 32, "cudnn")
    assert 3 * unit + 16 * 9 * 32 * 32 * 4 == 6_881_280 == _peak("resnet20", 32, "native")


def test_pointwise_from_1024_channels_converts():
    # fcn_resnet50 at batch 32 (65x65 maps, dilated): layer4.0's 1x1 shortcut (1024 -> 2048) runs
    # beside the residual branch's output (2048x65x65); with its input and output converted
    # (a 1x1 filter needs no copy): 2048 + 1024 + 2048 + 1024 + 2048 = 4 x 2048 maps. Measured
    # 4,430,234,112, 512 bytes more.
    unit = 32 * 2048 * 65 * 65 * 4
    assert _peak("fcn_resnet50", 32, "cudnn") == 4 * unit == 4_430_234_112 - 512


def test_batch1_rounds_every_block_to_512_bytes():
    # lenet5 without cuDNN at batch 1: C1's output 6x28x28 x 4 = 18,816 -> 18,944 and its column
    # buffer 1 x 25 x 28 x 28 x 4 = 78,400 -> 78,848: measured 97,792
    assert _r512(6 * 28 * 28 * 4) + _r512(25 * 28 * 28 * 4) == 97_792
    assert _peak("lenet5", 1, "native") == 97_792
    # (the live tensors alone are not rounded: the CPU's figure)
    assert _peak("lenet5", 1, "cpu") == 2 * 18_816


def _rule_script():
    spec = importlib.util.spec_from_file_location("memory_rule", ROOT / "benchmarks" / "memory_rule.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_goals_over_the_measured_table():
    mod = _rule_script()
    rows = [r for r in mod.read_table() if r["batch"] == 32]
    assert len(rows) == 98  # every concrete zoo spec but efficientnet_b7
    vgg = next(r for r in rows if r["spec"] == "vgg16")
    assert vgg["inference_measured"] == 1_644_315_136 and vgg["inference_measured_without_cudnn"] == 937_689_088
    rows = mod.estimates(rows)
    within, below, n, _ = mod.score(rows, "inference", "", 0.05)
    # issue 26: within 5% on at least 90%, never more than 5% below (regnet_y_16gf was 6.3% below
    # before the grouped conv's engine workspace, now 3.6%); alexnet alone is more than 5% above
    assert within >= 0.9 * n and (within, below) == (97, 0)
    assert [r["spec"] for r in rows if r["inference_estimate"] > 1.05 * r["inference_measured"]] == ["alexnet"]
    within, below, n, _ = mod.score(rows, "inference", "_without_cudnn", 0.05)
    assert (within, below) == (98, 0)
    within, below, n, _ = mod.score(rows, "training", "", 0.03)
    # issue 26: within 3% on at least 90%, never more than 3% below (lenet5 0.703 and
    # shufflenet_v2_x0_5 0.963 before the backward's engine workspace); five are more than 3% above
    assert within >= 0.9 * n and (within, below) == (93, 0)
    assert sorted(r["spec"] for r in rows if r["train_estimate"] > 1.03 * r["train_measured"]) == [
        "inception-bottleneck", "inception-naive", "unet", "vgg11", "vgg13"]
    within, below, n, _ = mod.score(rows, "training", "_without_cudnn", 0.03)
    assert (within, below) == (98, 0)


def test_grouped_conv_engine_workspace_regnet_y_16gf():
    # regnet_y_16gf at batch 32, block1-0.f.b.0: 3x3 stride 2, 224 channels in 2 groups of 112,
    # 112x112 -> 56x56. Alive: the shortcut's output and f.b's own (224x56x56) and f.a's
    # (224x112x112), each in a 2 MiB-rounded segment (1 MiB or less to spare: not split)
    big, small = 32 * 224 * 112 * 112 * 4, 32 * 224 * 56 * 56 * 4
    assert (big, small) == (359_661_568, 89_915_392)
    seg = lambda v: -(-v // 2**21) * 2**21  # noqa: E731
    live = seg(big) + 2 * seg(small)
    # cuDNN: the input and output once more, the filter 224 x 112 x 9 x 4 (+256) rounded to 512
    copies = seg(big) + seg(small) + _r512(224 * 112 * 9 * 4 + 256)
    # regnet_y_8gf, the same shapes in 4 groups of 56, measures exactly live + the two copies
    # (no filter copy); regnet_y_16gf exactly 64 MiB more: the workspace of the engine cuDNN's
    # heuristics pick for that group width
    assert live + copies - 903_680 == 991_952_896
    assert 1_059_061_760 - 991_952_896 == 64 * 2**20
    # the rule: a grouped conv that converts adds 1/16 of its converted bytes per image
    engine = (224 * 112 * 112 * 4 + 224 * 56 * 56 * 4) * 32 // 16
    assert engine == 28_098_560  # a 10 MiB-or-larger request: 14 MiB segment, more than 1 MiB left: split
    est = _peak("regnet_y_16gf", 32, "cudnn")
    assert est == live + copies + engine == 1_020_955_136
    assert 0.95 < est / 1_059_061_760 < 0.97  # measured: 3.6% below, within the 5% goal
    assert 1.02 < _peak("regnet_y_8gf", 32, "cudnn") / 991_952_896 < 1.03


def test_backward_engine_workspace_between_1_and_8_mib():
    from archcalc.analysis.liveness import _buffers
    from archcalc.layers import REGISTRY

    conv = REGISTRY["conv"]

    def args(spec, layer):  # the layer's arguments as the spec loader normalises them
        return next(n.args for n in archcalc.load(spec).nodes if n.name == layer)

    # lenet5's C5 (16x5x5 -> 120x1x1, 5x5) at batch 32: backward converts the input 32 x 1,600 x 4,
    # the output's gradient twice, 32 x 120 x 4 each, and the filter 120 x 400 x 4 + 256 -> 192,512:
    # 274,432 bytes, below 1 MiB: the engine takes 1 MiB
    a = args("lenet5", "C5")
    _, bwd = conv.backend_workspace(a, [(16, 5, 5)], (120, 1, 1), 4, "cudnn")
    converted = 32 * 16 * 25 * 4 + 2 * 32 * 120 * 4 + _r512(120 * 400 * 4 + 256)
    assert converted == 274_432
    assert _buffers(bwd, 32) == (converted + 2**20, 0)
    # lenet5 at batch 32 measures 1,120,256 bytes more with cuDNN than without (3,631,104 against
    # 2,510,848): the estimate is now 1.1% below, was 29.7%
    assert 0.97 < _peak("lenet5", 32, "cudnn", "train_peak_bytes") / 3_631_104 < 1.0
    # shufflenet_v2_x0_5's conv5 (1x1, 192 -> 1024 at 7x7): its input 32 x 192 x 49 x 4 and the
    # output's gradient twice, 32 x 1024 x 49 x 4 each: 14,049,280 bytes, above 8 MiB: 8 MiB, what
    # cuDNN adds to the measured peak (365,126,656 against 356,738,048 without)
    a = args("shufflenet_v2_x0_5", "conv5")
    _, bwd = conv.backend_workspace(a, [(192, 7, 7)], (1024, 7, 7), 4, "cudnn")
    converted = 32 * 192 * 49 * 4 + 2 * 32 * 1024 * 49 * 4
    assert converted == 14_049_280 and 365_126_656 - 356_738_048 == 8 * 2**20
    assert _buffers(bwd, 32) == (converted + 8 * 2**20, 0)
    assert _buffers(bwd, None) == (converted // 32, 8 * 2**20)  # per image: the upper bound
    assert 0.97 < _peak("shufflenet_v2_x0_5", 32, "cudnn", "train_peak_bytes") / 365_126_656 < 1.0
    # without cuDNN no engine: the native 1x1 conv is a matrix product as it lies
    assert conv.backend_workspace(a, [(192, 7, 7)], (1024, 7, 7), 4, "native") == ((), ())


def test_the_loss_gradient_is_copied_dense_by_a_non_elementwise_backward():
    # The gradient of the outputs' sum is one scalar expanded to the output's shape (no storage);
    # upsample_bilinear2d_backward (like convolution's and mm's) first makes it contiguous: a dense
    # copy of the whole output, 32 x 21 x 520 x 520 x 4 = 726,835,200 bytes for deeplabv3 at batch 32,
    # beside the live tensors of the final interpolate's backward. The H100 measured 11,838,052,352
    # with and without cuDNN (docs/verify.md); the estimate was 5.1% below before, now 0.3%.
    assert 32 * 21 * 520 * 520 * 4 == 726_835_200
    # (693.16 MiB: a segment of its own, 694 MiB, not split, as test_large_blocks_count_their_2_mib_segment)
    for backend in ("cudnn", "native"):
        est = _peak("deeplabv3_mobilenet_v3_large", 32, backend, "train_peak_bytes")
        assert abs(est / 11_838_052_352 - 1) < 0.001, backend
    # lraspp likewise: measured 11,300,275,200 both ways (5% below before)
    est = _peak("lraspp_mobilenet_v3_large", 32, "native", "train_peak_bytes")
    assert abs(est / 11_300_275_200 - 1) < 0.001


def test_large_blocks_count_their_2_mib_segment():
    # c10's CUDACachingAllocator: a request of 10 MiB or more (kMinLargeAlloc) gets a new segment
    # rounded up to 2 MiB (kRoundLarge), split only when more than 1 MiB (kSmallSize) would remain;
    # unsplit, the whole segment is the block memory_allocated counts. mobilenet_v2 at batch 32:
    # the inference peak is two 96x112x112 maps, 32 x 96 x 112 x 112 x 4 = 154,140,672 bytes = 147
    # MiB each, each in a 148 MiB segment (1 MiB left: not split): measured 310,378,496, cuDNN on or off
    each = 32 * 96 * 112 * 112 * 4
    assert each == 147 * 2**20 and 2 * 148 * 2**20 == 310_378_496
    assert _peak("mobilenet_v2", 32, "cudnn") == _peak("mobilenet_v2", 32, "native") == 310_378_496
    assert _peak("mobilenet_v2", 32, "cpu") == 2 * each  # live tensors: not rounded


def test_summary_states_backend_figure_and_live_line(cli):
    code, out, err = cli("summary", "vgg16", "--batch", "32")
    assert code == 0, err
    lines = out.splitlines()
    assert "    peak_memory (inference_peak_bytes): 1,644,315,136 B (1.53 GiB) at conv1_2" in lines
    assert "    inference_live_bytes: 822,083,584 B (784.00 MiB): live tensors alone" in lines
    code, out, err = cli("summary", "vgg16", "--batch", "32", "--backend", "native", "-f", "json")
    t = json.loads(out)["totals"]
    assert (t["memory_backend"], t["inference_peak_bytes"], t["inference_live_bytes"]) == ("native", 937_689_088, 822_083_584)


def test_fit_uses_the_backend_figure(cli):
    # vgg16 inference, 2 GiB: weights 553,430,176 bytes; per image the input 602,112 and, live
    # tensors alone, 25,690,112 -> (2 GiB - 553,430,176) // 26,292,224 = 60; with cuDNN's
    # conv1_2 (4 x 12,845,056 per image + its filter 147,968) -> ... // 51,982,336 = 30
    assert (2 * 2**30 - 553_430_176) // (25_690_112 + 602_112) == 60
    assert (2 * 2**30 - 553_430_176 - 147_968) // (4 * 12_845_056 + 602_112) == 30
    for backend, n in (("cpu", 60), ("cudnn", 30)):
        code, out, err = cli("summary", "vgg16", "--fit", "2GiB", "--inference", "--backend", backend, "-f", "json")
        assert json.loads(out)["fit"]["max_batch"] == n, backend


def test_docs_counts_are_the_scripts():
    # docs/memory.md's counts table is benchmarks/memory_rule.py's, over the whole measured table
    mod = _rule_script()
    lines, ok = mod.summary(mod.estimates(mod.read_table()))
    assert "\n".join(lines) in (ROOT / "docs" / "memory.md").read_text()
    assert ok  # issue 26's batch-32 goals, all four met (benchmarks/memory_rule.py --check exits 0)
