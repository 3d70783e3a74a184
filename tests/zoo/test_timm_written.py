"""Issue 23, "Must show": timm CNNs outside torchvision written by hand from the docs
(tests/zoo/timm_written/NAME.yaml; test data, not zoo names), each exact against timm 1.0.31
itself: params, buffers (BN running statistics) and MACs (FlopCounterMode FLOPs / 2) of
``timm.create_model(NAME)`` at timm's default input size, on the meta device; and timm's
state_dict (random weights, norm statistics and affines made non-trivial) loading strictly into
archcalc's build of the spec with the same eval-mode outputs (max diff <= 1e-4 x max |value| +
1e-7) at 64x64.

The default profile checks the counts of a sample; ``ARCHCALC_DEEP=1`` checks every spec here,
counts and weights. The zoo's own timm networks are tests/zoo/test_zoo_timm.py."""

from __future__ import annotations

from pathlib import Path

import pytest

from conftest import DEEP
from test_zoo_timm import load_and_compare, randomised, small, timm_counts

from archcalc import analyze, load

HERE = Path(__file__).parent / "timm_written"
WRITTEN = sorted(p.stem for p in HERE.glob("*.yaml"))
SAMPLE = ["gernet_s", "repvgg_a2", "skresnet18"]  # cheap, and three different block families


def test_the_written_specs_are_here():
    assert set(SAMPLE) <= set(WRITTEN) and len(WRITTEN) >= len(SAMPLE)


@pytest.mark.parametrize("name", WRITTEN if DEEP else SAMPLE)
def test_counts_are_timms(name):
    size, params, buffers, macs = timm_counts(name)
    net = load(HERE / f"{name}.yaml")
    assert net.name == name and tuple(net.input) == size
    t = analyze(net).totals
    assert (t["params"], t["buffers"], t["macs"]) == (params, buffers, macs)


@pytest.mark.skipif(not DEEP, reason="ARCHCALC_DEEP=1: builds each network with weights")
@pytest.mark.parametrize("name", WRITTEN)
def test_timms_weights_load_and_the_outputs_agree(name):
    diff, scale = load_and_compare(small(HERE / f"{name}.yaml"), randomised(name), (3, 64, 64))
    assert scale > 0.1
    assert diff <= 1e-4 * scale + 1e-7, (diff, scale)
