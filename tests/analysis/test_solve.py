"""Input sizes from the canonical forms and sweeps (issue 10 items 4 and 5)."""

from __future__ import annotations

import pytest

from archcalc import analyze, load
from archcalc.errors import ArchcalcError
from archcalc.analysis.solve import min_input, parse_range, tiling_sizes
from archcalc.analysis.sweep import sweep

# torchvision's documented minimum input sizes: the `"min_size"` entry of each model's weights
# meta in torchvision/models/alexnet.py (63, 63), vgg.py (_COMMON_META, 32, 32), googlenet.py
# (15, 15), inception.py (75, 75), densenet.py (_COMMON_META, 29, 29), squeezenet.py (21, 21),
# resnet.py and mobilenetv2.py (1, 1)
TORCHVISION_MIN_SIZE = {"alexnet": 63, "vgg16": 32, "googlenet": 15, "inception_v3": 75, "densenet121": 29,
                        "squeezenet1_0": 21, "resnet50": 1, "mobilenet_v2": 1}


@pytest.mark.parametrize("name, size", sorted(TORCHVISION_MIN_SIZE.items()))
def test_min_input_equals_torchvision_min_size(name, size):
    m = min_input(load(name))
    assert m.size[1:] == (size, size)
    # the bound is tight: one less and some layer's output would be empty
    if size > 1:
        from dataclasses import replace

        from archcalc.errors import ArchcalcError

        net = load(name)
        with pytest.raises(ArchcalcError):
            analyze(replace(net, input=(3, size - 1, size)))


def test_min_input_names_the_binding_layer():
    m = min_input(load("vgg16"))
    # vgg16: five 2x2/2 pools; 32 -> 16 -> 8 -> 4 -> 2 -> 1 at pool5 (5 halvings: 2**5 = 32)
    assert m.binding == ("pool5", "pool5") and m.method == "closed form"


def test_min_input_ignores_aux_heads():
    # inception_v3's aux head (training only) needs 299 (its 5x5 avg pool /3 then a 5x5 conv on 17x17
    # maps); at inference the smallest input is 75, as torchvision documents
    assert min_input(load("inception_v3")).size == (3, 75, 75)


def test_tiling_sizes():
    # alexnet-paper (227 in): 224 drops rows (the 224-vs-227 erratum), 227 tiles exactly
    sizes = tiling_sizes(load("alexnet-paper"), 220, 235)
    assert 227 in sizes and 224 not in sizes
    # (227 - 11) / 4 + 1 = 55; 55 - 3 = 52 is even for the 3x3/2 pool: 27; 27 -> 13 -> 6 likewise
    for s in sizes:
        assert (s - 11) % 4 == 0


@pytest.mark.parametrize("name", ["resnet50", "vgg16", "googlenet", "densenet121", "mobilenet_v2", "xception"])
def test_sweep_equals_the_concrete_engine_at_every_point(name):
    names = ("H", "W")
    values = [64, 97, 128, 224, 255, 299]
    result = sweep(lambda free: load(name, free=free), names, values)
    for v, point in zip(values, result.points):
        try:
            r = analyze(load(name, values={n: v for n in names}))
        except ArchcalcError:
            assert point is None
            continue
        assert point is not None, v
        for key in ("params", "macs", "activations", "activation_bytes", "train_saved_bytes"):
            assert point[key] == r.totals[key], (v, key)
        row = r.row(result.rf_layer)
        assert point["rf"] == row.rf[0].size


def test_parse_range():
    assert parse_range("96:512:32")[:3] == [96, 128, 160] and parse_range("96:512:32")[-1] == 512
    assert parse_range("224,256") == [224, 256]
    for bad in ("0:5", "5:1", "1:100000", "a:b", "1:5:0", "224,x", ""):
        with pytest.raises(ValueError):
            parse_range(bad)


def test_sweep_cli(cli):
    code, out, err = cli("sweep", "vgg16", "--set", "H,W=16,32", "--format", "csv")
    assert code == 0, err
    lines = out.splitlines()
    assert lines[1] == "16,,,,,,,layer 'pool5' would have an output below 1"
    # vgg16 at 32x32: 138,357,544 params; the convs' MACs are 1/49 of those at 224 (every map is
    # 7x smaller a side), the classifier's 25088*4096 + 4096*4096 + 4096*1000 = 123,633,664 the same
    # (the adaptive pool restores 7x7)
    classifier = 25088 * 4096 + 4096 * 4096 + 4096 * 1000
    assert classifier == 123_633_664
    assert (15_470_264_320 - classifier) // 49 + classifier == 436_830_208
    assert lines[2].startswith("32,138357544,436830208,")


def test_input_sizes_service():
    from archcalc.analysis.solve import input_sizes
    from archcalc.errors import UsageError

    s = input_sizes(load("alexnet-paper"), True, "227:231")
    # 227 tiles (the paper's own size); 228..230 leave rows unseen ((s - 11) % 4 != 0); 231 tiles conv1
    # ((231 - 11) / 4 + 1 = 56) but 56 - 3 is odd for the 3x3/2 pool
    assert s.network and s.tiling == (227, 231, [227])
    assert s.min_input.size[0] == 3 and s.min_input.size[1] == s.min_input.size[2]
    assert input_sizes(load("alexnet-paper"), False, None).min_input is None
    with pytest.raises(UsageError, match=r"^--tiling 2x:9: expected LO:HI"):
        input_sizes(load("alexnet-paper"), False, "2x:9")


def test_min_input_axes_that_fail_together(cli, tmp_path):
    """A 3x3 conv then an instance norm (no running statistics) on 2 x 5 x 8. Each axis on its own
    (the other at the spec's size): H = 3 (a 1x6 map) and W = 3 (3x1); but 3x3 leaves the norm a
    1x1 map, which torch refuses. The answer is the smallest pair above both that torch runs: 3x4
    (area 12, as 4x3; the smaller H first), with each axis's own smallest beside it."""
    torch = pytest.importorskip("torch")

    def runs(h, w):
        net = torch.nn.Sequential(torch.nn.Conv2d(2, 2, 3), torch.nn.InstanceNorm2d(2))
        try:
            net(torch.rand(1, 2, h, w))
            return True
        except (RuntimeError, ValueError):
            return False

    assert runs(3, 8) and runs(5, 3) and not runs(2, 8) and not runs(5, 2)
    assert not runs(3, 3) and runs(3, 4) and runs(4, 3)
    text = "input: [2, 5, 8]\nlayers:\n  - conv: {out: 2, kernel: 3}\n  - instancenorm: {}\n"
    from archcalc.spec.load import loads

    m = min_input(loads(text, "case.yaml"))
    assert m.size == (2, 3, 4) and m.apart == (3, 3)
    spec = tmp_path / "inorm.yaml"
    spec.write_text(text)
    code, out, _ = cli("summary", str(spec), "--min-input", "-f", "json")
    import json

    assert code == 0 and json.loads(out)["min_input"]["size"] == [2, 3, 4] and json.loads(out)["min_input"]["apart"] == [3, 3]
