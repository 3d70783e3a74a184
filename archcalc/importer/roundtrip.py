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
from .ir import symbol_names
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
    axes = symbol_names(traced)
    if axes and len(traced) != 3:  # 1-D / 3-D: each axis cut to the cap where the spec accepts that
        want = (traced[0],) + tuple(min(v, cap) for v in traced[1:])
        try:
            analyze(loads(text, file, dict(zip(axes, want[1:]))))
            return want
        except ArchcalcError:
            return traced
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


def _tensors(value) -> list:
    """The tensors in a module's or a function's result (nested tuples, lists, dicts)."""
    if isinstance(value, torch.Tensor):
        return [value]
    if isinstance(value, dict):
        value = list(value.values())
    if isinstance(value, (tuple, list)):
        return [t for v in value for t in _tensors(v)]
    return []


class _Calls(torch.overrides.TorchFunctionMode):
    """Every top-level torch function call of a forward (F.conv2d, torch.add, Tensor.__add__, ...;
    calls a call makes are inside it and not seen again): the FLOPs FlopCounterMode counted while it
    ran and the autograd nodes of the tensors it returned, at the time it returned them (an in-place
    op later replaces a tensor's grad_fn; the node it had stays in the graph)."""

    def __init__(self, counter):
        super().__init__()
        self.counter = counter
        self.calls: list = []  # (flops, [grad_fn, ...])

    def __torch_function__(self, func, types, args=(), kwargs=None):
        before = self.counter.get_total_flops()
        out = func(*args, **(kwargs or {}))
        flops = self.counter.get_total_flops() - before
        nodes = [t.grad_fn for t in _tensors(out) if t.grad_fn is not None]
        if flops or nodes:
            self.calls.append((flops, nodes))
        return out


def _reach(root) -> set:
    """The autograd nodes output ``root`` (a grad_fn) depends on, itself included (ids)."""
    seen, todo = set(), [root] if root is not None else []
    while todo:
        node = todo.pop()
        if id(node) in seen:
            continue
        seen.add(id(node))
        todo.extend(n for n, _ in node.next_functions if n is not None)
    return seen


def output_counts(model, input_shape) -> dict:
    """Per output of ``model`` (every tensor it returns, in order), what that output alone depends
    on, read from torch's own autograd graph of one forward on the meta device (eval mode, the
    input and every parameter requiring a gradient) -- never from archcalc's graph:

    - ``params``: the parameters ``torch.autograd.grad(output.sum(), params, allow_unused=True)``
      gives a gradient for (not None);
    - ``buffers``: the buffers (num_batches_tracked left out) of the modules whose result output k's
      graph reaches: a module counts where a tensor it returned (its forward hook's) is an ancestor
      of the output; a BatchNorm's running mean and variance count with the BatchNorm they normalise;
    - ``macs``: FlopCounterMode's forward FLOPs / 2 of the torch function calls (F.conv2d, matmul,
      ...) whose result output k's graph reaches.

    Returns ``{"outputs": [{"params", "buffers", "macs"}, ...], "union": the same counts of what
    any output reaches (the whole model's counts where every layer feeds an output), "flops": the
    forward's total, "unattributed": flops of calls whose result is no autograd node (none where
    every op follows the input or a parameter)}``."""
    meta = _meta(model)
    meta = copy.deepcopy(meta) if meta is model else meta  # requires_grad set below: never on the user's model
    meta.eval()
    params = [p for p in meta.parameters()]
    for p in params:
        p.requires_grad_(True)
    owners: list = []  # (module's id, its own buffers, [grad_fn, ...]) per call of a module holding buffers
    hooks = []
    for mod in meta.modules():
        own = sum(b.numel() for n, b in mod.named_buffers(recurse=False) if not n.endswith("num_batches_tracked"))
        if own:
            hooks.append(mod.register_forward_hook(
                lambda m, i, o, own=own: owners.append((id(m), own, [t.grad_fn for t in _tensors(o) if t.grad_fn is not None]))))
    counter = FlopCounterMode(display=False)
    calls = _Calls(counter)
    x = torch.empty(1, *input_shape, device="meta", requires_grad=True)
    try:
        with torch.enable_grad(), counter, calls:
            out = meta(x)
    finally:
        for h in hooks:
            h.remove()
    outs = all_outputs(out)
    total = counter.get_total_flops()
    unattributed = total - sum(f for f, nodes in calls.calls if nodes)
    per = []
    used: set = set()  # parameters, modules and calls some output reaches: the union of the outputs
    reach_all: set = set()
    for t in outs:
        grads = torch.autograd.grad(t.sum(), params, allow_unused=True, retain_graph=True) if t.grad_fn else [None] * len(params)
        reach = _reach(t.grad_fn)
        reach_all |= reach
        used |= {id(p) for p, g in zip(params, grads) if g is not None}
        flops = sum(f for f, nodes in calls.calls if any(id(n) in reach for n in nodes))
        per.append({
            "params": sum(p.numel() for p, g in zip(params, grads) if g is not None),
            "buffers": sum({m: own for m, own, nodes in owners if any(id(n) in reach for n in nodes)}.values()),
            "macs": flops // 2 if flops % 2 == 0 else flops / 2,
        })
    flops = sum(f for f, nodes in calls.calls if any(id(n) in reach_all for n in nodes))
    union = {"params": sum(p.numel() for p in params if id(p) in used),
             "buffers": sum({m: own for m, own, nodes in owners if any(id(n) in reach_all for n in nodes)}.values()),
             "macs": flops // 2 if flops % 2 == 0 else flops / 2}
    # every call's nodes are kept alive by ``calls`` until here: ids stay unique
    return {"outputs": per, "union": union, "flops": total, "unattributed": unattributed}


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
        # each output's own params, buffers and MACs: the original's and the built model's from
        # torch's autograd graph (output_counts), the engine's from the spec's graph (per_output)
        ok = _check_per_output(result, per, names, model, built, report, input_shape) and ok
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


def _check_per_output(result, per, names, model, built, report, input_shape) -> bool:
    from ..analysis.outputs import per_output

    try:
        theirs = output_counts(model, input_shape)
        mine = output_counts(built, input_shape)
    except Exception as err:  # noqa: BLE001 - the user's model or torch: reported as one line
        first = (str(err).strip().splitlines() or [""])[0][:160]
        result["per_output_error"] = f"{type(err).__name__}: {first}"
        return False
    engine = {o.name: {"params": o.params, "buffers": o.buffers, "macs": o.macs} for o in per_output(report)}
    # the built model returns the spec's outputs main first (report.outputs' order); the original
    # in its own order (``names``)
    built_by_name = dict(zip(report.outputs, mine["outputs"]))
    if theirs["unattributed"]:  # FLOPs of calls no output's graph holds: no output's MACs are known
        for o in theirs["outputs"]:
            o["macs"] = None
    ok = len(theirs["outputs"]) == len(names)
    for k, p in enumerate(per):
        o = theirs["outputs"][k] if k < len(theirs["outputs"]) else {}
        b, e = built_by_name.get(p["name"], {}), engine.get(p["name"], {})
        for key in ("params", "buffers", "macs"):
            p[key] = {"original": o.get(key), "built": b.get(key), "engine": e.get(key)}
        p["ok"] = all(p[key]["original"] is not None and p[key]["original"] == p[key]["built"] == p[key]["engine"]
                      for key in ("params", "buffers", "macs"))
        ok = ok and p["ok"]
    result["per_output_union"] = {"original": theirs["union"], "built": mine["union"], "unattributed": theirs["unattributed"]}
    return ok


def _compare_outputs(text, file, model, shape, seed, names=None):
    axes = symbol_names(shape)
    values = dict(zip(axes, shape[1:])) if axes else None
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
