"""The round trip that proves an import: build the spec with archcalc's builder, load the original
model's ``state_dict`` into it (strict: every name and shape), and compare params, buffers and
MACs (torch's FlopCounterMode, on the meta device) with the original module and with archcalc's
engine, and the outputs (eval mode, the original's weights) on a random input."""

from __future__ import annotations

import copy

import torch
from torch.utils.flop_counter import FlopCounterMode

from ..analysis.engine import analyze
from ..spec.load import loads
from ..torchside.build import build


def _meta(model):
    if all(t.device.type == "meta" for t in list(model.parameters()) + list(model.buffers())):
        return model
    return copy.deepcopy(model).to("meta")


def counts(model, input_shape) -> dict:
    """params, buffers (BN's num_batches_tracked left out) and MACs per image at ``input_shape``
    (eval mode: aux heads do not run)."""
    meta = _meta(model)
    was = meta.training
    meta.eval()
    counter = FlopCounterMode(display=False)
    try:
        with torch.no_grad(), counter:
            meta(torch.empty(1, *input_shape, device="meta"))
    finally:
        meta.train(was)
    flops = counter.get_total_flops()
    return {
        "params": sum(p.numel() for p in model.parameters()),
        "buffers": sum(b.numel() for n, b in model.named_buffers() if not n.endswith("num_batches_tracked")),
        "macs": flops // 2 if flops % 2 == 0 else flops / 2,
    }


def main_output(out):
    """The main tensor of a model's output: itself, the first of a tuple, or a dict's 'out' (else its first)."""
    if isinstance(out, torch.Tensor):
        return out
    if isinstance(out, dict):
        return main_output(out["out"] if "out" in out else next(iter(out.values())))
    if isinstance(out, (tuple, list)):
        return main_output(out[0])
    raise TypeError(f"a model output of type {type(out).__name__}")


def check(text: str, model, input_shape, file="<imported>", outputs=True, output_input=None, seed=0) -> dict:
    """The round trip of an imported spec ``text`` against ``model``. ``input_shape`` is the traced
    C x H x W; ``output_input`` a (smaller) C x H x W for the output comparison, which needs
    real weights (skipped with ``outputs=False`` or a model on the meta device)."""
    net = loads(text, file)
    report = analyze(net)
    built = build(net, device="meta")
    want, have = model.state_dict(), built.state_dict()
    missing = sorted(set(want) - set(have))
    unexpected = sorted(set(have) - set(want))
    shapes = sorted(k for k in set(want) & set(have) if tuple(want[k].shape) != tuple(have[k].shape))
    orig = counts(model, input_shape)
    mine = counts(built, input_shape)
    engine = {k: report.totals[k] for k in ("params", "buffers", "macs")}  # params and buffers: aux heads included
    result = {
        "state_dict": {"keys": len(want), "missing": missing, "unexpected": unexpected, "shape": shapes},
        "original": orig, "built": mine, "engine": engine,
    }
    ok = not (missing or unexpected or shapes) and all(orig[k] == mine[k] == engine[k] for k in orig)
    real = all(t.device.type != "meta" for t in list(model.parameters()) + list(model.buffers()))
    if outputs and real and ok:
        shape = tuple(output_input or input_shape)
        values = {"H": shape[1], "W": shape[2]} if len(shape) == 3 else None
        net2 = loads(text, file, values) if values else net
        mine_model = build(net2)
        mine_model.load_state_dict(model.state_dict(), strict=True)
        was = model.training
        model.eval(), mine_model.eval()
        gen = torch.Generator().manual_seed(seed)
        x = torch.randn(2, *shape, generator=gen)
        try:
            with torch.no_grad():
                a = main_output(model(x))
                b = main_output(mine_model(x))
        finally:
            model.train(was)
        same_shape = tuple(a.shape) == tuple(b.shape)
        diff = float((a - b).abs().max()) if same_shape else float("inf")
        scale = float(a.abs().max()) if a.numel() else 0.0
        close = same_shape and diff <= 1e-4 * max(1.0, scale)
        result["outputs"] = {"input": shape, "shape": tuple(a.shape[1:]), "max_abs_diff": diff, "max_abs": scale, "ok": close}
        ok = ok and close
    result["ok"] = ok
    return result
