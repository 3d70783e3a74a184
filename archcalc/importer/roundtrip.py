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


def compare_size(text, traced, file="<imported>", cap=64):
    """The C x H x W the outputs are compared at: the traced size cut to ``cap`` where the spec
    accepts that (archcalc's engine analyses it without error), else the smallest input it accepts
    (``summary --min-input``'s solver) raised to the cap where it is below, else the traced size."""
    from ..analysis.solve import min_input
    from ..errors import ArchcalcError

    traced = tuple(traced)
    if len(traced) != 3:
        return traced
    c, h, w = traced
    want = (c, min(h, cap), min(w, cap))
    if want == traced:
        return traced
    try:
        analyze(loads(text, file, {"H": want[1], "W": want[2]}))
        return want
    except ArchcalcError:
        pass
    try:
        m = min_input(loads(text, file))
        size = (c, min(max(m.size[1], want[1]), h), min(max(m.size[2], want[2]), w))
        analyze(loads(text, file, {"H": size[1], "W": size[2]}))
        return size
    except ArchcalcError:
        return traced


def _tensor_outputs(out):
    if isinstance(out, torch.Tensor):
        return out
    return None


def first_divergence(model, built, x, tol_rel=1e-4):
    """(layer name, max |difference|, largest |value|) of the first layer of the built spec, in run
    order, whose output differs from the original module of the same name, or None. Layers with no
    module of their name in the original (joins, functional calls), or whose module has children,
    are not compared."""
    mine: list = []
    theirs: dict = {}
    hooks = []
    try:
        for name, mod in built.node_modules():
            hooks.append(mod.register_forward_hook(lambda m, i, o, name=name: mine.append((name, _tensor_outputs(o)))))
        for name, mod in model.named_modules():
            # a module with children may do more than the layer named after it (timm's
            # BatchNormAct2d: its own tensors are the batchnorm layer, its act a layer beside it)
            if name and not next(iter(mod.children()), None):
                hooks.append(mod.register_forward_hook(lambda m, i, o, name=name: theirs.__setitem__(name, _tensor_outputs(o))))
        with torch.no_grad():
            model(x)
            built(x)
    finally:
        for h in hooks:
            h.remove()
    for name, b in mine:
        a = theirs.get(name)
        if a is None or b is None:
            continue
        if tuple(a.shape) != tuple(b.shape):
            return name, float("inf"), float(a.abs().max()) if a.numel() else 0.0
        scale = float(a.abs().max()) if a.numel() else 0.0
        diff = float((a.float() - b.float()).abs().max()) if a.numel() else 0.0
        if diff > tol_rel * scale + 1e-7:
            return name, diff, scale
    return None


def output_names(graph) -> list | None:
    """The layer names of a multi-output import's outputs, in the order the model returns them."""
    if not getattr(graph, "several", False):
        return None
    return [graph.ops[i].name if i >= 0 else "input" for i in graph.outputs]


def all_outputs(out) -> list:
    """Every tensor a model returns, in order (a dict's values, a tuple's items, nested)."""
    if isinstance(out, torch.Tensor):
        return [out]
    if isinstance(out, dict):
        return [t for v in out.values() for t in all_outputs(v)]
    if isinstance(out, (tuple, list)):
        return [t for v in out for t in all_outputs(v)]
    return []


def check(text: str, model, input_shape, file="<imported>", outputs=True, output_input=None, seed=0, names=None) -> dict:
    """The round trip of an imported spec ``text`` against ``model``. ``input_shape`` is the traced
    C x H x W; ``output_input`` the C x H x W for the output comparison (default: :func:`compare_size`,
    a size the spec accepts), which needs real weights (skipped with ``outputs=False`` or a model on
    the meta device). A failure to build, load or run is a result (``error``), never an exception."""
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
    if names:
        # each output's shape at the traced size: the engine's row against the original's (meta run)
        meta = _meta(model)
        was = meta.training
        try:
            with torch.no_grad():
                theirs = [tuple(t.shape[1:]) for t in all_outputs(meta.eval()(torch.empty(1, *input_shape, device="meta")))]
        finally:
            meta.train(was)
        rows = {r.name: tuple(r.shape) for r in report.rows}
        per = [{"name": n, "shape": theirs[k] if k < len(theirs) else None, "engine": rows.get(n)} for k, n in enumerate(names)]
        result["per_output"] = per
        ok = ok and len(theirs) == len(names) and all(p["shape"] == p["engine"] for p in per)
    real = all(t.device.type != "meta" for t in list(model.parameters()) + list(model.buffers()))
    if outputs and real and ok:
        shape = tuple(output_input or compare_size(text, input_shape, file))
        was = model.training
        try:
            result["outputs"] = _compare_outputs(text, file, model, shape, seed, names)
        except Exception as err:  # noqa: BLE001 - the user's model or torch: reported as one line
            first = (str(err).strip().splitlines() or [""])[0][:160]
            result["outputs"] = {"input": shape, "error": f"{type(err).__name__}: {first}", "ok": False}
        finally:
            model.train(was)
        ok = ok and result["outputs"]["ok"]
    result["ok"] = ok
    return result


def _compare_outputs(text, file, model, shape, seed, names=None):
    values = {"H": shape[1], "W": shape[2]} if len(shape) == 3 else None
    net2 = loads(text, file, values) if values else loads(text, file)
    mine_model = build(net2)
    mine_model.load_state_dict(model.state_dict(), strict=True)
    model.eval(), mine_model.eval()
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(2, *shape, generator=gen)
    if names:
        return _compare_several(model, mine_model, x, names, shape)
    with torch.no_grad():
        a = main_output(model(x))
        b = main_output(mine_model(x))
    same_shape = tuple(a.shape) == tuple(b.shape)
    diff = float((a - b).abs().max()) if same_shape else float("inf")
    scale = float(a.abs().max()) if a.numel() else 0.0
    close = same_shape and diff <= 1e-4 * scale + 1e-7  # relative: timm's heads start with outputs near 1e-5
    out = {"input": shape, "shape": tuple(a.shape[1:]), "max_abs_diff": diff, "max_abs": scale, "ok": close}
    if not close:
        out["first"] = first_divergence(model, mine_model, x)
    return out


def _compare_several(model, built, x, names, shape):
    """Each output of a multi-output model against the built spec's layer of that name."""
    got: dict = {}
    hooks = [mod.register_forward_hook(lambda m, i, o, name=name: got.__setitem__(name, o))
             for name, mod in built.node_modules() if name in names]
    try:
        with torch.no_grad():
            theirs = all_outputs(model(x))
            built(x)
    finally:
        for h in hooks:
            h.remove()
    worst, scale, ok, each = 0.0, 0.0, len(theirs) == len(names), []
    for k, name in enumerate(names):
        a, b = (theirs[k] if k < len(theirs) else None), got.get(name)
        if a is None or b is None or tuple(a.shape) != tuple(b.shape):
            each.append((name, float("inf")))
            ok = False
            continue
        d = float((a - b).abs().max()) if a.numel() else 0.0
        s = float(a.abs().max()) if a.numel() else 0.0
        each.append((name, d))
        worst, scale = max(worst, d), max(scale, s)
        ok = ok and d <= 1e-4 * s + 1e-7
    out = {"input": shape, "shape": tuple(theirs[0].shape[1:]) if theirs else (), "max_abs_diff": worst, "max_abs": scale,
           "ok": ok, "several": each}
    if not ok:
        out["first"] = first_divergence(model, built, x)
    return out
