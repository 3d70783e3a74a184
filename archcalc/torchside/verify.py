"""The torch verifier: the engine's numbers against a real PyTorch model built from the same spec.

Everything here returns plain data (dicts and lists); :mod:`archcalc.cli.torch` renders it.

* :func:`check`   -- per layer and in total: output shapes (forward hooks), params and buffers
  (numel; BN's ``num_batches_tracked`` counter excluded), MACs (``FlopCounterMode``, 2 FLOPs per
  MAC, counted per hook) and new activation values. On the ``meta`` device nothing is allocated.
* :func:`receptive_fields` -- empirical receptive fields: one output position is backpropagated
  through a linearised copy of the network (each type's ``probe`` declaration: positive constant
  weights, max-pools as sum pools of the same geometry, normalisations and activations as
  identities, products as means) and the extent of nonzero input gradient is measured per axis,
  against the engine's field (exact rationals through resampling) and against the windows mapped
  back layer by layer. :func:`probe_bytes` estimates its memory without running it.
* :func:`memory` -- the bytes of tensors autograd saves for backward (distinct storages,
  parameters and buffers excluded) beside the engine's ``train_saved_bytes``; on CUDA also the
  peak allocated bytes of a forward and of a forward+backward.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import replace
from fractions import Fraction

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    import torch
    from torch import nn
    from torch.utils.flop_counter import FlopCounterMode
    from torch.multiprocessing.reductions import StorageWeakRef
    from torch.utils._python_dispatch import TorchDispatchMode
    from torch.utils._pytree import tree_leaves

from .. import _speedups
from .. import layers as L
from ..errors import SpecError, UsageError
from .build import build, plan


# Start-up (issue 14): while a model runs here, torch's disable-dynamo wrappers call their
# function directly instead of importing torch._dynamo (over a second): archcalc._speedups, which
# holds every use of torch's private internals, explains how.
def _dispatch_modes():
    return (LiveBytes,)


_without_dynamo = _speedups.without_dynamo(_dispatch_modes)


OK, NOTE, BAD = "ok", "note", "mismatch"
METRICS = ("shape", "params", "buffers", "macs", "values")


def _device(name: str):
    if name not in ("meta", "cpu", "cuda"):
        raise UsageError(f"--device {name}: expected meta, cpu or cuda")
    if name == "cuda" and not torch.cuda.is_available():
        raise UsageError("--device cuda: no CUDA device is available to torch", hint="use --device cpu or meta")
    return torch.device(name)


def _storage(t):
    return t.untyped_storage()._cdata


def _concrete(net):
    if net.symbolic:
        raise UsageError(
            f"{net.name}: verify needs concrete sizes; unresolved: {', '.join(net.free_symbols()) or 'input'}",
            hint="give them values with --set NAME=VALUE or --input CxHxW",
        )


def _cmp(engine, measured, note=None):
    if engine == measured:
        status = OK
    elif note:
        status = NOTE
    else:
        status = BAD
    out = {"engine": engine, "torch": measured, "status": status}
    if status == NOTE:
        out["note"] = note
    return out


# --------------------------------------------------------------------------- per-layer check


@_without_dynamo
def check(net, report, device="meta", batch=1) -> dict:
    """Engine against torch for every node (aux heads included). ``report`` is ``analyze(net)``."""
    _concrete(net)
    if isinstance(batch, bool) or not isinstance(batch, int) or batch < 1:
        raise UsageError(f"--batch {batch}: verify needs a positive integer batch")
    dev = _device(device)
    steps = plan(net)
    model = build(net, device=dev).eval()
    x = torch.zeros(batch, *net.input, device=dev) if dev.type != "meta" else torch.empty(batch, *net.input, device=dev)
    seen: dict = {}
    counter = FlopCounterMode(display=False)

    def pre(i):
        def hook(mod, args):
            seen[i] = {"flops0": counter.get_total_flops(), "inputs": {_storage(a) for a in args}}

        return hook

    def post(i):
        def hook(mod, args, out):
            rec = seen[i]
            rec["flops"] = counter.get_total_flops() - rec.pop("flops0")
            rec["shape"] = tuple(out.shape[1:])
            rec["numel"] = out[0].numel()
            rec["new"] = _storage(out) not in rec.pop("inputs")

        return hook

    handles = []
    for i, (_, mod) in enumerate(model.node_modules()):
        handles.append(mod.register_forward_pre_hook(pre(i)))
        handles.append(mod.register_forward_hook(post(i)))
    try:
        with torch.no_grad(), counter:
            outs = model.run(x, aux=True)
    finally:
        for h in handles:
            h.remove()

    rows = []
    for i, (node, row) in enumerate(zip(net.nodes, report.rows)):
        mod = getattr(model, model.attrs[i])
        rec = seen[i]
        params = sum(p.numel() for p in model.node_parameters(i))  # a bare parameter (layer scale) too
        buffers = sum(b.numel() for n, b in mod.named_buffers() if not n.endswith("num_batches_tracked"))
        flops = rec["flops"]
        macs = flops // (2 * batch) if flops % (2 * batch) == 0 else flops / (2 * batch)
        values = rec["numel"] if rec["new"] else 0
        note = None
        if values and not row.values:
            ltype = L.REGISTRY[node.type]
            xs = [tuple(net.input) if j < 0 else tuple(report.rows[j].shape) for j in node.inputs]
            note = ltype.copy_note(node.args, xs, tuple(row.shape))
            if note is None and node.args.get("inplace") and any(
                kw.get("inplace") is False for cls, kw in steps[i]["ops"]
            ):
                note = "built out of place: its input is read elsewhere, so in-place would be wrong"
        checks = {
            "shape": _cmp(list(row.shape), list(rec["shape"])),
            "params": _cmp(row.params, params),
            "buffers": _cmp(row.buffers, buffers),
            "macs": _cmp(row.macs, macs),
            "values": _cmp(row.values, values, note),
        }
        rows.append({"name": node.name, "type": node.type, "aux": node.aux,
                     "torch": " + ".join(cls for cls, _ in steps[i]["ops"]), "checks": checks})

    t = report.totals
    main = [r for r in rows if not r["aux"]]
    torch_values = _prod(net.input) + sum(r["checks"]["values"]["torch"] for r in main)
    noted = sum(r["checks"]["values"]["torch"] - r["checks"]["values"]["engine"] for r in main
                if r["checks"]["values"]["status"] == NOTE)
    totals = {
        "output": _cmp(list(report.output), list(outs[0].shape[1:])),
        "params": _cmp(t["params"], sum(p.numel() for p in model.parameters())),
        "buffers": _cmp(t["buffers"], sum(b.numel() for n, b in model.named_buffers() if not n.endswith("num_batches_tracked"))),
        "macs": _cmp(t["macs"], sum(r["checks"]["macs"]["torch"] for r in main)),
        "macs_aux": _cmp(t["macs_aux"], sum(r["checks"]["macs"]["torch"] for r in rows if r["aux"])),
        "activations": _cmp(t["activations"], torch_values,
                            "see the noted layers" if noted and torch_values - noted == t["activations"] else None),
    }
    mismatches = sum(1 for r in rows for c in r["checks"].values() if c["status"] == BAD)
    mismatches += sum(1 for c in totals.values() if c["status"] == BAD)
    return {"layers": rows, "totals": totals, "mismatches": mismatches}


def _prod(shape):
    out = 1
    for d in shape:
        out *= d
    return out


# --------------------------------------------------------------------------- receptive fields

def linearise(model: nn.Module) -> nn.Module:
    """In place, on a probe model (``build(net, probe=...)``, whose modules the registry chose):
    every parameter a positive constant (1 / its fan-in), every bias 0."""
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("bias"):
                p.zero_()
            else:
                p.fill_(1.0 / max(1, p[0].numel() if p.dim() > 1 else 1))
    return model


def _resolve(net, names):
    idx = []
    for name in names:
        hits = [i for i, n in enumerate(net.nodes) if n.name == name]
        if not hits:
            hits = [i for i, n in enumerate(net.nodes) if n.name.endswith("." + name)]
        if len(hits) != 1:
            from ..errors import expected_one_of

            raise UsageError(f"--rf-at {name}: no such layer" if not hits else f"--rf-at {name}: ambiguous",
                             hint=expected_one_of(name, [n.name for n in net.nodes], "a layer name"))
        idx.append(hits[0])
    return idx


def default_rf_layers(net, report) -> list:
    """The last main-path feature map at each effective stride (the end of each stage)."""
    chosen: dict = {}
    for i, row in enumerate(report.rows):
        if row.aux or row.rf is None or len(row.shape) != 3:
            continue
        chosen[(row.rf[0].stride, row.rf[1].stride)] = i
    return sorted(chosen.values())


def _ancestors(net, targets):
    need = set()
    stack = list(targets)
    while stack:
        i = stack.pop()
        if i < 0 or i in need:
            continue
        need.add(i)
        stack.extend(net.nodes[i].inputs)
    return need


def _resizable(net, need):
    """May the probe enlarge the input? Not where a layer's window depends on the input size."""
    return not any(L.REGISTRY[net.nodes[i].type].size_dependent(net.nodes[i].args) for i in need)


def _plan_position(rf_axis, out_size):
    """An output position whose whole receptive field lies at or after input index 0 (for a
    position-dependent field, the first such position of the largest size), and its field
    (first, last)."""
    a = rf_axis
    if a.fixed is not None:  # every position reads the same inputs (a gated map's: with its map's field)
        first, last = a.at(0)
        return 0, first, last
    if a.affine:
        c = -(-a.padding // a.stride) if a.padding > 0 else 0
        c = min(c, max(out_size - 1, 0)) if out_size is not None else c
        first, last = a.at(c)
        return c, first, last
    from ..limits import MAX_RF_POSITIONS

    # a lazy field (an adaptive pool's) can be long: look at most as far as the engine steps
    inside = [o for o in range(min(len(a.first), MAX_RF_POSITIONS)) if a.first[o] >= 0]
    best = [o for o in inside if a.last[o] - a.first[o] + 1 == a.size]
    c = (best or inside or [0])[0]
    first, last = a.at(c)
    return c, first, last


def _reach(net, report, target, position):
    """The input rows (or columns) that output ``position`` of node ``target`` really reads, per
    axis: each layer's window (from the registry) mapped back through the network, clamped to the
    positions that exist at every layer. It differs from the engine's field clipped to the image
    only where a window does not tile its input (the last rows are never read)."""
    need = {target: [(p, p) for p in position]}
    for i in range(target, -1, -1):
        if i not in need:
            continue
        node, want = net.nodes[i], need.pop(i)
        ltype = L.REGISTRY[node.type]
        xs = [tuple(net.input) if j < 0 else tuple(report.rows[j].shape) for j in node.inputs]
        y = tuple(report.rows[i].shape)
        win = None if ltype.joins else ltype.window(node.args, xs, y)
        sources = node.inputs if ltype.joins else node.inputs[:1]
        for j, x in zip(sources, xs):
            if len(x) != 3:
                return None
            got = []
            for axis, (a, b) in enumerate(want):
                n_in = x[1 + axis]
                if ltype.joins:
                    lo, hi = (0, 0) if n_in == 1 and y[1 + axis] != 1 else (a, b)
                elif win is None:
                    lo, hi = a, b
                elif win in ("global", "unknown"):
                    lo, hi = 0, n_in - 1
                else:
                    lo, hi = win[axis].span(a)[0], win[axis].span(b)[1]
                got.append((min(max(lo, 0), n_in - 1), min(max(hi, 0), n_in - 1)))
            old = need.get(j)
            need[j] = got if old is None else [(min(p[0], q[0]), max(p[1], q[1])) for p, q in zip(old, got)]
    return need.get(-1)


def _num(v):
    """A JSON-friendly exact number: ints stay ints, a fraction becomes its text ('1/2')."""
    if isinstance(v, Fraction):
        return v.numerator if v.denominator == 1 else str(v)
    return v


@_without_dynamo
def receptive_fields(net, layers=None, report=None, max_side=2048, resize=True) -> list:
    """Measure receptive fields empirically at ``layers`` (names; default: the end of each stage).

    Where the layers' ancestors do not depend on the input size, the input is enlarged so that the
    measured output position's whole field (padding included) lies inside the image; the measured
    extent then equals the engine's size r exactly, starting at c*j - p. Otherwise the spec's input
    is used and the field is compared clipped to the image.
    """
    from ..analysis.engine import analyze

    _concrete(net)
    report = report or analyze(net)
    groups = _groups(net, report, layers, resize)
    found = {}
    for group, enlarge in groups:
        found.update(zip(group, _measure(net, report, group, enlarge, max_side)))
    targets = _targets(net, report, layers)
    return [found[i] for i in targets]


@_without_dynamo
def probe_bytes(net, layers=None, report=None, max_side=2048, resize=True) -> int:
    """An estimate (from above) of the bytes :func:`receptive_fields` allocates, without running
    torch: per group of measured layers, a float64 copy of their ancestors on the input the probe
    uses (enlarged so the fields fit), one image per layer, every tensor kept for backward. Without
    a type that needs every channel among the ancestors (``probe_needs_channels``: linear) the
    probe runs on channel sums: a tensor then holds one value per position (joins: 2 counted)."""
    from ..analysis.engine import analyze

    report = report or analyze(net)
    total = 0
    for group, enlarge in _groups(net, report, layers, resize):
        sized_net, sized = _probe_input(net, report, group, enlarge, max_side)
        need = _ancestors(net, group)
        collapse = not any(L.REGISTRY[net.nodes[i].type].probe_needs_channels for i in need)
        shape_in = tuple(sized_net.input)
        values = _prod(shape_in[1:] if collapse else shape_in)
        params = 0
        for i in need:
            shape = tuple(sized.rows[i].shape)
            values += (2 * _prod(shape[1:]) if len(shape) == 3 else 1) if collapse else _prod(shape)
            params += 0 if collapse else sized.rows[i].params + sized.rows[i].buffers
        total += 8 * (2 * params + 2 * values * len(group))
    return total


def _targets(net, report, layers):
    targets = default_rf_layers(net, report) if layers is None else _resolve(net, layers)
    return [i for i in targets if report.rows[i].rf is not None and len(report.rows[i].shape) == 3]


def _groups(net, report, layers, resize):
    """The measured layers in groups: those whose ancestors allow another input size (measured on
    an enlarged input), then the others (measured on the spec's input)."""
    targets = _targets(net, report, layers)
    free = [i for i in targets if resize and _resizable(net, _ancestors(net, [i]))]
    fixed = [i for i in targets if i not in free]
    return [(g, enlarge) for g, enlarge in ((free, True), (fixed, False)) if g]


def _probe_input(net, report, targets, resize, max_side):
    """(network, report) at the input the probe uses: enlarged, where allowed, until the measured
    position's whole field (padding included) lies inside the image."""
    from ..analysis.engine import analyze

    if not resize:
        return net, report
    want = []
    for axis in (0, 1):
        size = 1
        for i in targets:
            a = report.rows[i].rf[axis]
            c, first, last = _plan_position(a, None if a.affine else report.rows[i].shape[1 + axis])
            size = max(size, last + 1 + math.ceil(a.stride))
        want.append(size)
    cand = (net.input[0], max(want[0], net.input[1]), max(want[1], net.input[2]))
    if max(cand[1:]) > max_side:
        return net, report
    for extra in range(0, 64):
        trial = replace(net, input=(cand[0], cand[1] + extra, cand[2] + extra))
        try:
            r2 = analyze(trial)
        except SpecError:
            continue
        fits = True
        for i in targets:
            for axis in (0, 1):
                a = r2.rows[i].rf[axis]
                if a is None:
                    fits = False
                    continue
                n = r2.rows[i].shape[1 + axis]
                c, first, last = _plan_position(a, n)
                if c >= n or first < 0 or last >= trial.input[1 + axis]:
                    fits = False
        if fits:
            return trial, r2
    return net, report


def _measure(net, report, targets, resize, max_side):
    need = _ancestors(net, targets)
    sized_net, sized_report = _probe_input(net, report, targets, resize, max_side)
    H, W = sized_net.input[1], sized_net.input[2]
    collapse = not any(L.REGISTRY[net.nodes[i].type].probe_needs_channels for i in need)
    model = build(sized_net, device="meta", probe=collapse)
    for i, attr in enumerate(model.attrs):
        if i not in need:
            setattr(model, attr, nn.Identity())  # never run: free its parameters
    model = linearise(model.to_empty(device="cpu"))
    model = model.to(torch.float64).eval()
    channels = 1 if collapse else sized_net.input[0]
    x = torch.ones(len(targets), channels, H, W, dtype=torch.float64, requires_grad=True)
    values = {-1: x}
    for i in sorted(need):
        values[i] = getattr(model, model.attrs[i])(*[values[j] for j in model.inputs[i]])
    loss = 0
    plans = []
    for b, i in enumerate(targets):
        pos = []
        for axis in (0, 1):
            a = sized_report.rows[i].rf[axis]
            pos.append(_plan_position(a, sized_report.rows[i].shape[1 + axis]))
        plans.append(pos)
        loss = loss + values[i][b, :, pos[0][0], pos[1][0]].sum()
    loss.backward()
    out = []
    for b, i in enumerate(targets):
        reach = _reach(sized_net, sized_report, i, [plans[b][0][0], plans[b][1][0]])
        g = x.grad[b].abs().sum(0)
        row = sized_report.rows[i]
        res = {"layer": net.nodes[i].name, "input": [H, W], "position": [plans[b][0][0], plans[b][1][0]], "axes": {}}
        ok = True
        for axis, name in ((0, "h"), (1, "w")):
            nz = torch.nonzero(g.sum(1 - axis) > 0).flatten().tolist()
            a = row.rf[axis]
            start, end = plans[b][axis][1], plans[b][axis][2]
            size_in = (H, W)[axis]
            clipped = start < 0 or end > size_in - 1
            exp_lo, exp_hi = max(start, 0), min(end, size_in - 1)
            lo, hi = (nz[0], nz[-1]) if nz else (None, None)
            good = (lo, hi) == (exp_lo, exp_hi)
            # the engine's field counts input rows that no window reaches (a window that does not
            # tile its input): a note when the measured extent is exactly the rows really read
            real = reach is not None and (lo, hi) == tuple(reach[axis]) and clipped
            status = OK if good else (NOTE if real else BAD)
            ok = ok and status != BAD
            res["axes"][name] = {
                "engine": {"size": a.size, "stride": _num(a.stride), "padding": a.padding, "start": start,
                           "size_here": end - start + 1},
                "measured": {"size": None if lo is None else hi - lo + 1, "start": lo},
                "expected_extent": [exp_lo, exp_hi],
                "reach": None if reach is None else list(reach[axis]),
                "clipped": clipped,
                "status": status,
            }
            if status == NOTE:
                first, last = (hi + 1, exp_hi) if hi < exp_hi else (exp_lo, lo - 1)
                what = "row" if name == "h" else "column"
                unread = f"{what} {first} is" if first == last else f"{what}s {first}..{last} are"
                res["axes"][name]["note"] = (f"input {unread} never read: a window does not tile its input "
                                             "(see the tiling warning)")
        res["status"] = OK if ok else BAD
        out.append(res)
    return out


# --------------------------------------------------------------------------- memory


@_without_dynamo
def saved_bytes(model: nn.Module, x) -> dict:
    """Bytes of the distinct storages autograd saves for backward in one training forward
    (parameters and buffers excluded). Works on the meta device too (no allocation)."""
    state = {_storage(p) for p in model.parameters()} | {_storage(b) for b in model.buffers()}
    storages: dict = {}
    kinds: dict = {}

    def pack(t):
        key = _storage(t)
        if key not in state:
            st = t.untyped_storage()
            storages[key] = st.nbytes()
            kinds[key] = str(t.dtype).replace("torch.", "")
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        outs = model(x)
    by_dtype: dict = {}
    for k, n in storages.items():
        by_dtype[kinds[k]] = by_dtype.get(kinds[k], 0) + n
    del outs
    return {"bytes": sum(storages.values()), "storages": len(storages), "by_dtype": by_dtype}


@_without_dynamo
def memory(net, report, device="cpu", batch=1) -> dict:
    """Saved-for-backward bytes (any device) and, on CUDA, peak allocated bytes."""
    _concrete(net)
    dev = _device(device)
    notes = []
    run_batch = batch
    if batch == 1 and _bn_on_single_values(report):
        run_batch = 2
        notes.append(
            "measured at batch 2 (batch norm cannot train on one value per channel: a flat vector "
            "or a 1x1 map at batch 1) and reported per 1"
        )
    model = build(net, device=dev).train()
    x = (torch.empty if dev.type == "meta" else torch.randn)(run_batch, *net.input, device=dev)
    measured = saved_bytes(model, x)
    per = measured["bytes"] * batch // run_batch
    est = report.totals["train_saved_bytes"] * batch
    out = {
        "device": dev.type,
        "batch": batch,
        "dtype": report.dtype,
        "saved_bytes": {"engine": est, "torch": per, "ratio": (per / est) if est else None,
                        "storages": measured["storages"], "by_dtype": measured["by_dtype"]},
        "notes": notes,
    }
    if dev.type == "cuda":
        out["cuda"] = _cuda_peaks(net, report, batch, run_batch)
    elif dev.type == "cpu":
        out["live"] = _cpu_live(net, report, batch)
    return out


def _cpu_live(net, report, batch):
    """The inference peak of live tensor bytes on the CPU (:func:`live_bytes`) beside the engine's
    liveness estimate: they agree exactly (docs/memory.md)."""
    from ..analysis.liveness import totals as peaks

    got = live_bytes(net, batch=batch)
    est = peaks(report, batch, "cpu")
    at = got["at"]
    return {"inference_live_bytes": {
        "batch": batch, "engine": est["inference_peak_bytes"], "torch": got["peak"],
        "ratio": _ratio(got["peak"], est["inference_peak_bytes"]),
        "at": est["inference_peak_layer"], "torch_at": net.nodes[at].name if isinstance(at, int) else at,
        "engine_is": "liveness: live tensors of a no-grad forward"}}


def _bn_on_single_values(report) -> bool:
    """Does a batch-norm layer see one value per channel per image (flat input, or 1x1 maps)?"""
    return any(L.REGISTRY[r.type].batch_stats and (len(r.shape) == 1 or tuple(r.shape[1:]) == (1, 1)) for r in report.rows)


@_without_dynamo
def cuda_peak(model, net, n, train) -> int:
    """Peak allocated CUDA bytes above the model and the input of one run of ``model`` at batch
    ``n``: an inference forward (eval, no grad) or a training forward+backward of the outputs' sum
    (no optimizer step; the gradients are dropped afterwards)."""
    cuda = torch.cuda
    x = torch.randn(n, *net.input, device="cuda")
    cuda.synchronize()
    base = cuda.memory_allocated()
    cuda.reset_peak_memory_stats()
    if train:
        outs = model.train()(x)
        outs = outs if isinstance(outs, tuple) else (outs,)
        sum(o.float().sum() for o in outs).backward()
        del outs
    else:
        with torch.no_grad():
            model.eval()(x)
    cuda.synchronize()
    got = cuda.max_memory_allocated() - base
    model.zero_grad(set_to_none=True)
    return got


def _cuda_peaks(net, report, batch, run_batch, model=None):
    """Peak allocated bytes above the model and input: an inference forward at ``batch`` (no grad,
    eval mode) and a training forward+backward at ``run_batch`` (``batch``, or 2 where batch norm
    needs it; no optimizer step), beside the engine's liveness estimates (archcalc.analysis.liveness)."""
    from ..analysis.liveness import totals as peaks

    model = build(net, device="cuda") if model is None else model
    fwd = cuda_peak(model, net, batch, False)
    train = cuda_peak(model, net, run_batch, True)
    backend = "cudnn" if torch.backends.cudnn.enabled else "native"  # docs/memory.md: the backend's working memory
    inf = peaks(report, batch, backend)
    tr = peaks(report, run_batch, backend)
    return {
        "inference_peak_bytes": {"batch": batch, "engine": inf["inference_peak_bytes"], "torch": fwd,
                                 "ratio": _ratio(fwd, inf["inference_peak_bytes"]), "at": inf["inference_peak_layer"],
                                 "engine_is": f"liveness: live tensors of a no-grad forward + {backend} working memory"},
        "train_peak_bytes": {"batch": run_batch, "engine": tr["train_peak_bytes"], "torch": train,
                             "ratio": _ratio(train, tr["train_peak_bytes"]),
                             "at": f"{tr['train_peak_layer']} ({tr['train_peak_phase']})",
                             "engine_is": f"liveness: live tensors and gradients of forward+backward + {backend} working memory"},
    }


def _ratio(measured, estimate):
    return measured / estimate if isinstance(estimate, int) and estimate else None


class LiveBytes(TorchDispatchMode):
    """Counts the bytes of the storages that tensors made under it hold, as torch dispatches each
    op: after every op, the storages still alive (weak references; storages made before the mode,
    such as weights and the input, are not counted); ``peak`` is the largest such total and
    ``where`` what :attr:`label` said then. Exact for every tensor torch hands out; allocations
    inside a kernel (a convolution's workspace) are not tensors and are not seen."""

    def __init__(self, ignore=()):
        super().__init__()
        self.ignore = {_storage(t) for t in ignore}  # weights, buffers, the input: alive throughout
        self.storages: dict = {}
        self.now = self.peak = 0
        self.label = self.where = None

    def live(self) -> int:
        """Bytes alive now (dropping the storages that died since the last op)."""
        dead = [k for k, (ref, _) in self.storages.items() if ref.expired()]
        for k in dead:
            self.now -= self.storages.pop(k)[1]
        return self.now

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        self.live()  # a storage may reuse a dead one's address: forget the dead first
        for t in tree_leaves(out):
            if isinstance(t, torch.Tensor):
                st = t.untyped_storage()
                key = st._cdata
                if key not in self.storages and key not in self.ignore:
                    self.storages[key] = (StorageWeakRef(st), st.nbytes())
                    self.now += st.nbytes()
        if self.now > self.peak:
            self.peak, self.where = self.now, self.label
        return out


@_without_dynamo
def live_bytes(net, batch=1, train=False, device="cpu") -> dict:
    """Run the built model on the CPU under :class:`LiveBytes`: an inference forward (eval, no
    grad) or a training forward+backward of the outputs' sum (no optimizer step); on the meta
    device too (the same storages, nothing computed). Returns the peak
    bytes (above weights and input), the node running at the peak, and per node the bytes alive
    just after it (before the next node starts; inference only, main path)."""
    _concrete(net)
    dev = _device(device)
    model = build(net, device="meta")  # no initialisation: the values do not matter here
    if dev.type != "meta":
        model = model.to_empty(device=dev)
        with torch.no_grad():
            for t in [*model.parameters(), *model.buffers()]:
                t.zero_()  # zeros: no overflow, no denormals (slow on the CPU)
    model.train(train)
    x = (torch.empty if dev.type == "meta" else torch.randn)(batch, *net.input, device=dev)
    mode = LiveBytes([*model.parameters(), *model.buffers(), x])
    after: dict = {}
    order = []

    def pre(i):
        def hook(mod, args):
            if order:
                after[order[-1]] = mode.live()
            order.append(i)
            mode.label = i
        return hook

    handles = [mod.register_forward_pre_hook(pre(i)) for i, (_, mod) in enumerate(model.node_modules())]
    try:
        if train:
            with mode:
                outs = model.run(x, aux=True)
                mode.label = "backward"
                sum(o.sum() for o in outs).backward()
                del outs
        else:
            with torch.no_grad(), mode:
                outs = model.run(x, aux=False)
                after[order[-1]] = mode.live()
                del outs
    finally:
        for h in handles:
            h.remove()
    return {"peak": mode.peak, "at": mode.where, "after": after, "batch": batch}


# --------------------------------------------------------------------------- one call


@_without_dynamo
def verify(net, report=None, device="meta", batch=1, rf=False, rf_layers=None, mem=False) -> dict:
    """Everything the CLI prints, as plain data. ``ok`` is False on any mismatch."""
    from ..analysis.engine import analyze

    _concrete(net)
    report = report or analyze(net, batch=batch)
    result = {
        "network": net.name,
        "file": str(net.file),
        "device": device,
        "input": list(net.input),
        "batch": batch,
        "torch": torch.__version__,
        **check(net, report, device, batch),
    }
    result["rf"] = None
    if rf or rf_layers:
        result["rf"] = receptive_fields(net, rf_layers, analyze(net))
        result["mismatches"] += sum(1 for r in result["rf"] if r["status"] == BAD)
    result["memory"] = None
    if mem:
        result["memory"] = memory(net, report, device, batch)
    result["ok"] = result["mismatches"] == 0
    return result
