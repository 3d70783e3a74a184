"""The permanent, independent differential (issue 21): random chains and DAGs over EVERY registered
layer type, each built a second time from torch's own modules and functionals (never archcalc's
builder, archcalc/torchside/build.py), compared with archcalc on

* every layer's output shape, params, buffers and MACs (FlopCounterMode's forward FLOPs / 2;
  pools, norms, activations and resampling are no MACs by the convention and FlopCounterMode
  counts nothing there either),
* the training MACs (FlopCounterMode over forward + backward, its grouped-conv grad-weight
  over-count corrected: see _randnet._conv_backward_flop),
* the receptive field of every layer archcalc gives one, position by position, against the input
  positions that really influence each output (forward-mode derivatives of the network made
  positive: _randnet.empirical_rf),
* the closed forms (H, W symbolic) substituted at the smallest sizes --min-input finds
  (archcalc/analysis/solve.py), one below and two above, and random sizes, against the concrete
  run and torch at each; whether archcalc accepts a size exactly where torch runs it.

Seeded with ``random.Random(seed)``: the default profile runs the first ``ARCHCALC_DIFF_N`` seeds
(12) and one network per registered type; ``ARCHCALC_DEEP=1`` runs 5,000 (or ``ARCHCALC_DIFF_N``).
The torch forms of issue 23's types are torch's modules, or timm's own where the layer is timm's
(StdConv2d, ScaledStdConv2d, BlurPool2d, GlobalResponseNorm, RadixSoftmax); rrelu is compared in
eval mode (its slopes are random in training). A crash of archcalc (a traceback instead of a number
or an error line) is a disagreement of its own class, ``crash/...``.

A network whose every disagreement is of a class in ``_randnet.KNOWN_OPEN`` (issue 21's items being
fixed on other branches) or ``_randnet.FLAGGED`` (classes found here that the issue does not list)
is an xfail whose reason names the classes; any other disagreement fails, with a shrunk spec.
Remove a class from those tables when its fix merges: the goal is none.
"""

from __future__ import annotations

import os
import random

import pytest

import _randnet as R
from archcalc.layers import REGISTRY

DEEP = os.environ.get("ARCHCALC_DEEP") == "1"
N = int(os.environ.get("ARCHCALC_DIFF_N") or (5000 if DEEP else 12))


def test_every_registered_type_has_a_generator_and_a_torch_form():
    """A new layer type cannot be forgotten: the registry, the generator and the torch reference
    must name the same types."""
    missing_gen = sorted(set(REGISTRY) - set(R.GEN))
    missing_torch = sorted(set(REGISTRY) - set(R.TORCH))
    stale = sorted((set(R.GEN) | set(R.TORCH)) - set(REGISTRY))
    assert not missing_gen, f"registered types without a generator entry (_randnet.py GEN): {missing_gen}"
    assert not missing_torch, f"registered types without a torch form (_randnet.py TORCH): {missing_torch}"
    assert not stale, f"generator entries for types no longer registered: {stale}"


def _judge(doc, found, label):
    if not found:
        return
    unknown = [d for d in found if d.cls not in R.KNOWN_OPEN and d.cls not in R.FLAGGED]
    if unknown:
        cls = unknown[0].cls
        small = R.shrink(doc, cls, budget=60)
        again = [d for d in R.compare(small) if d.cls == cls] or unknown
        lines = "\n".join(d.line() for d in again[:6])
        pytest.fail(f"{label}: archcalc and torch disagree ({cls}), minimal spec:\n{R.dump(small)}\n{lines}\n"
                    f"(the whole network:)\n{R.dump(doc)}")
    reasons = sorted({(f"issue 21 item {R.KNOWN_OPEN[d.cls]}" if d.cls in R.KNOWN_OPEN else
                       f"NOT in issue 21: {R.FLAGGED[d.cls]}") + f" [{d.cls}]" for d in found})
    pytest.xfail("known open disagreement classes: " + "; ".join(reasons))


@pytest.mark.parametrize("kind", sorted(REGISTRY))
def test_each_type_against_torch(kind):
    """One network per registered type, drawn over that type and a conv (and what the type needs to
    be placed: flatten before linear), so that every type is compared in the default profile."""
    helpers = {"linear": ["flatten"], "flatten": ["linear"], "eca_conv": ["global_avgpool"]}.get(kind, [])
    for seed in range(50):
        doc = R.generate(1_000_000 + seed * 7919 + sum(map(ord, kind)), types=[kind, kind, kind, "conv"] + helpers)
        if kind in R.doc_types(doc):
            break
    else:
        pytest.fail(f"the generator never drew {kind} in 50 networks")
    _judge(doc, R.compare(doc, sizes=0, rng=random.Random(seed)), kind)


@pytest.mark.parametrize("seed", range(N))
def test_random_network_against_torch(seed):
    doc = R.generate(seed)
    _judge(doc, R.compare(doc, sizes=2 if not DEEP else 4, rng=random.Random(seed)), f"seed {seed}")


def test_generated_networks_are_diverse():
    """The generator reaches the constructs it claims to over the default profile's seeds: joins of
    every kind, branches from earlier layers, items reading an earlier layer, frozen items,
    size references, and both flat and spatial outputs."""
    seen = set()
    for seed in range(max(N, 30)):  # generation only: cheap
        text = R.dump(R.generate(seed))
        for needle in ("concat", "add", "mean", "mul", "from:", "trainable: false", "like:", "linear",
                       "ceil_mode", "same", "groups", "dilation", "conv_transpose", "upsample"):
            if needle in text:
                seen.add(needle)
    assert len(seen) == 14, {"missing": sorted({"concat", "add", "mean", "mul", "from:", "trainable: false", "like:",
                                                "linear", "ceil_mode", "same", "groups", "dilation", "conv_transpose",
                                                "upsample"} - seen)}


@pytest.mark.parametrize("types, needle", [
    (["concat", "conv"], "dim: 2"), (["concat", "conv"], "dim: 3"), (["sub", "conv"], "sub:"),
    (["maximum", "conv"], "maximum:"), (["conv"], "padding_mode: reflect"), (["conv"], "padding_mode: circular"),
    (["avgpool"], "divisor_override"), (["upsample"], "mode: bicubic"), (["upsample"], "mode: nearest-exact"),
    (["upsample"], "mode: area"), (["upsample"], "scale: ["), (["gelu"], "approximate: tanh"),
    (["std_conv"], "gain: true"), (["pad"], "mode: circular"), (["blur_pool"], "pad_mode: replicate"),
    (["pixel_unshuffle", "conv"], "order: blocks"), (["prelu", "conv"], "per_channel: true"),
])
def test_new_keys_are_drawn(types, needle):
    """Issue 23's keys and joins reach the generated specs (generation only, over a few types)."""
    for seed in range(300):  # stops at the first: a few networks for most needles
        if needle in R.dump(R.generate(2_000_000 + seed, types=types)):
            return
    pytest.fail(f"{needle!r} never drawn over {types} in 300 networks")


def test_the_reference_is_torch_not_archcalc():
    """The reference never imports archcalc's builder or verifier."""
    import ast
    from pathlib import Path

    tree = ast.parse(Path(R.__file__).read_text())
    imported = {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module}
    imported |= {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    assert not any("torchside" in m for m in imported), imported


def test_grouped_conv_grad_weight_correction():
    """FlopCounterMode counts a grouped conv's weight gradient as if ungrouped; the corrected
    counter counts C_out x (C_in / groups) x K_h x K_w x H' x W'. By hand: a 3x3 conv, 8 -> 8
    channels in 4 groups, on 6x6 (padding 1: 6x6 out), batch 1: forward 8*2*9*36 = 5,184 MACs;
    grad-input the same 5,184; grad-weight 8*2*9*36 = 5,184 (FlopCounterMode's own: 4x, 20,736)."""
    import torch

    conv = torch.nn.Conv2d(8, 8, 3, padding=1, groups=4, bias=False)
    x = torch.rand(1, 8, 6, 6, requires_grad=True)
    counter = R.train_flop_counter()
    with counter:
        conv(x).sum().backward()
    assert counter.get_total_flops() // 2 == 3 * 5184
    from torch.utils.flop_counter import FlopCounterMode

    plain = FlopCounterMode(display=False)
    with plain:
        conv(x).sum().backward()
    assert plain.get_total_flops() // 2 == 2 * 5184 + 4 * 5184
