"""PyTorch front end: torch.fx traces the model; each leaf module, function, method and operator
becomes a registry layer through the types' own ``torch_ops`` / ``from_torch`` declarations."""

from __future__ import annotations

import copy
import inspect
import operator
import re
import sys
import traceback
import types

import torch
import torch.fx as fx
from torch.fx.operator_schemas import normalize_function

from .. import layers as L
from ..errors import short
from .ir import Graph, ImportFailed, Op, Unsupported, candidates, defaults_dropped, simplify

_CONTAINERS = (torch.nn.Sequential, torch.nn.ModuleList, torch.nn.ModuleDict)


class _Shape:
    """x.shape / x.size(): ``tensor`` (a value), sliced by ``index`` (None: the whole shape)."""

    def __init__(self, tensor, index=None):
        self.tensor, self.index = tensor, index


class _Parts:
    """The tuple a chunk / split call returns: ``op`` (its torch name), kw, the tensor it splits."""

    def __init__(self, op, kw, tensor, where):
        self.op, self.kw, self.tensor, self.where = op, kw, tensor, where


def _declared_names():
    return set(candidates())


class _Tracer(fx.Tracer):
    """Modules whose class (or a base class) a layer type declares stay leaves; other modules are
    traced through; torch.nn's own modules stay leaves (and are reported if no type declares them)."""

    def __init__(self, names, autowrap):
        super().__init__(autowrap_functions=tuple(fn for fn, _ in autowrap))
        self.names = names
        # torch.fx patches the wrapped functions in the globals of the searched modules only:
        # add the modules that define them (and call them)
        search = getattr(self, "_autowrap_search", None)
        if isinstance(search, list):
            search.extend(m for m in {id(m): m for _, m in autowrap}.values() if m not in search)

    def is_leaf_module(self, m, qualname):
        if isinstance(m, _CONTAINERS):
            return False
        if any(c.__name__ in self.names for c in type(m).__mro__[:-1]):
            return True
        return super().is_leaf_module(m, qualname)


def _autowrap(model, names):
    """Python functions of the model's own modules that a layer type declares by name
    (torchvision's ``channel_shuffle``): kept as one call instead of traced through."""
    found = {}
    for m in model.modules():
        mod = sys.modules.get(type(m).__module__)
        if mod is None or type(m).__module__.startswith("torch."):
            continue
        for value in vars(mod).values():
            if isinstance(value, types.FunctionType) and value.__name__ in names and value.__module__.split(".")[0] != "torch":
                found[id(value)] = (value, mod)
    return list(found.values())


def _user_frame(err):
    """'file:line' of the innermost frame of the error outside torch (the user's code)."""
    frames = [f for f in traceback.extract_tb(err.__traceback__) if "/torch/" not in f.filename.replace("\\", "/")]
    return f"{frames[-1].filename}:{frames[-1].lineno}" if frames else ""


def trace(model, input_shape, label: str) -> Graph:
    """The model as an importer :class:`Graph` (shapes from a meta-device run at ``input_shape``,
    C x H x W). Tries eval mode; if some parameters go unused (aux heads that run in training
    only), traces in training mode and keeps the extra outputs as aux heads."""
    meta = model if all(p.device.type == "meta" for p in list(model.parameters()) + list(model.buffers())) else None
    if meta is None:
        meta = copy.deepcopy(model).to("meta")
    was = meta.training
    try:
        g, used = _trace(meta.eval(), input_shape, label)
        if used is not None and used != {n for n, _ in meta.named_parameters()}:
            g2, _ = _trace(meta.train(), input_shape, label)
            if len(g2.outputs) > 1:
                g = g2
    finally:
        meta.train(was)
    return g


def _trace(model, input_shape, label):
    names = _declared_names()
    tracer = _Tracer(names, _autowrap(model, names))
    try:
        graph = tracer.trace(model)
    except Exception as err:  # noqa: BLE001 - tracing runs the user's forward: any error is theirs
        text = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        where = _user_frame(err)
        if isinstance(err, fx.proxy.TraceError) and "control flow" in text:
            raise ImportFailed(
                f"{label}: the forward uses data-dependent control flow (an if or loop on tensor values){' at ' + where if where else ''}, "
                "which torch.fx cannot trace",
                hint="make the branch depend on arguments, not on tensor values, or export the model to ONNX and import that",
            ) from None
        raise ImportFailed(f"{label}: torch.fx could not trace the model: {type(err).__name__}: {short(text, 160)[1:-1]}"
                           + (f" (at {where})" if where else ""),
                           hint="archcalc imports models that torch.fx.symbolic_trace can trace") from None
    gm = fx.GraphModule(tracer.root, graph)
    x = torch.empty(2, *input_shape, device="meta")
    try:
        from torch.fx.passes.shape_prop import ShapeProp

        ShapeProp(gm).propagate(x)
    except Exception as err:  # noqa: BLE001
        raise ImportFailed(f"{label}: running the traced model on a {'x'.join(map(str, input_shape))} input failed: "
                           f"{type(err).__name__}: {short(str(err).strip().splitlines()[0] if str(err).strip() else '', 160)[1:-1]}",
                           hint="give the input size the model expects with --input CxHxW") from None
    return _convert(gm, model, input_shape, label)


def _shape(node):
    meta = node.meta.get("tensor_meta")
    if meta is None or not hasattr(meta, "shape"):
        return None
    return tuple(int(d) for d in meta.shape[1:])


def _scope(node):
    stack = node.meta.get("nn_module_stack") or {}
    if not stack:
        return ""
    last = list(stack.values())[-1]
    path = last[0] if isinstance(last, tuple) else list(stack.keys())[-1]
    return path if isinstance(path, str) else ""


def _module_kw(mod):
    kw = {}
    try:
        params = inspect.signature(type(mod).__init__).parameters
    except (TypeError, ValueError):
        params = {}
    for name in params:
        if name in ("self", "device", "dtype") or not hasattr(mod, name):
            continue
        v = getattr(mod, name)
        kw[name] = (v is not None) if name == "bias" or isinstance(v, torch.Tensor) else v
    if "bias" not in kw and "bias" in params:
        kw["bias"] = getattr(mod, "bias", None) is not None
    return kw


def _fn_name(target):
    if isinstance(target, str):
        return target
    return getattr(target, "__name__", str(target))


def _fn_label(node):
    if node.op == "call_method":
        return f"Tensor.{node.target}"
    t = node.target
    mod = getattr(t, "__module__", None) or ""
    name = getattr(t, "__qualname__", None) or _fn_name(t)
    if mod in ("_operator", "operator"):
        return f"operator.{name}"
    sub = re.fullmatch(r"torch\._C\._([a-z]+)", mod)
    if sub and sub.group(1) != "nn" and name.startswith(sub.group(1) + "_"):
        mod, name = "torch." + sub.group(1), name[len(sub.group(1)) + 1:]  # torch._C._fft.fft_fft2: torch.fft.fft2
    elif mod.startswith("torch._C") or name.startswith("_VariableFunctionsClass."):
        mod, name = "torch", name.rsplit(".", 1)[-1]
    return f"{mod}.{name}" if mod else name


def _convert(gm, model, input_shape, label) -> Graph:
    table = candidates()
    ops: list = []
    env: dict = {}
    bad = Unsupported()
    used_names: dict = {}  # scope -> names taken
    calls: dict = {}  # module path -> times called
    used_params: set = set()
    children = {path: [n for n, _ in m.named_children()] for path, m in model.named_modules()}
    classes = {path: type(m).__name__ for path, m in model.named_modules()}

    def unique(scope, base):
        taken = used_names.setdefault(scope, set(children.get(scope, [])))
        name, k = base, 2
        while name in taken:
            name, k = f"{base}_{k}", k + 1
        taken.add(name)
        return f"{scope}.{name}" if scope else name

    def value(a):
        return env.get(a) if isinstance(a, fx.Node) else a

    def prepare(a, tensors, refs):
        """A call argument as from_torch sees it: tensors become TENSOR (their values collected)."""
        if isinstance(a, fx.Node):
            v = env.get(a)
            if isinstance(v, int):
                tensors.append(v)
                return L.base.TENSOR
            if isinstance(v, _Shape):
                if v.index in (slice(-2, None), slice(2, None), slice(2, 4)):
                    refs.append(v.tensor)
                    return L.base.SizeOf(len(refs) - 1)
                return v
            if isinstance(v, tuple) and v and v[0] == "const":
                return v[1]
            return v
        if isinstance(a, (list, tuple)):
            return type(a)(prepare(x, tensors, refs) for x in a)
        if isinstance(a, dict):
            return {k: prepare(x, tensors, refs) for k, x in a.items()}
        return a

    def add(result, node, torch_name, tensors, refs, scope, base_fallback, xs, y):
        """Append the layer(s) from_torch gave; returns the last op index."""
        steps = [(None, result)] if isinstance(result, dict) else list(result)
        inputs = tensors
        for k, (tname, args) in enumerate(steps):
            ltype = found_type if tname is None else L.REGISTRY[L.ALIASES.get(tname, tname)]
            args = dict(args)
            ref_ops = {}
            for key, v in list(args.items()):
                if isinstance(v, L.base.SizeOf):
                    ref_ops[key] = refs[v.index] if refs else -1
                    del args[key]
            name = base_fallback if (k == 0 and base_fallback and len(steps) == 1) else unique(scope, ltype.name)
            ops.append(Op(name, ltype.name, defaults_dropped(ltype, args), list(inputs), ref_ops, torch=torch_name, shape=y))
            inputs = [len(ops) - 1]
        return len(ops) - 1

    placeholders = 0
    for node in gm.graph.nodes:
        if node.op == "placeholder":
            placeholders += 1
            if placeholders > 1:
                bad.add(f"a second forward input '{node.target}'", "")
            env[node] = -1
            continue
        if node.op == "get_attr":
            env[node] = ("param", node.target)
            continue
        if node.op == "output":
            outs = []

            def collect(a):
                if isinstance(a, fx.Node):
                    v = env.get(a)
                    if isinstance(v, int):
                        outs.append(v)
                    elif isinstance(v, tuple) and v and v[0] == "tuple":
                        outs.extend(x for x in v[1] if isinstance(x, int))
                elif isinstance(a, dict):
                    for x in a.values():
                        collect(x)
                elif isinstance(a, (list, tuple)):
                    for x in a:
                        collect(x)

            collect(node.args[0])
            bad.raise_if_any(label)
            if not outs:
                raise ImportFailed(f"{label}: the model returns no tensor")
            break
        if any(a in env and env[a] is None for a in node.all_input_nodes):
            env[node] = None  # downstream of a construct already reported
            continue
        scope = _scope(node)
        y = _shape(node)
        tensors: list = []
        refs: list = []
        if node.op == "call_module":
            mod = gm.get_submodule(node.target)
            used_params.update(f"{node.target}.{n}" for n, _ in mod.named_parameters())
            calls[node.target] = calls.get(node.target, 0) + 1
            for a in node.args:
                prepare(a, tensors, refs)
            kw = _module_kw(mod)
            mro = [c.__name__ for c in type(mod).__mro__[:-1]]
            op_name = next((n for n in mro if n in table), mro[0])
            where = node.target
            if calls[node.target] > 1 and any(True for _ in mod.parameters()):
                bad.add(f"module {type(mod).__name__} called {calls[node.target]} times (shared weights)", where)
                env[node] = None
                continue
            base_name = node.target if calls[node.target] == 1 else None
            scope_of = node.target.rsplit(".", 1)[0] if "." in node.target else ""
            label_of = f"nn.{type(mod).__name__}" if type(mod).__module__.startswith("torch.nn") else f"module {type(mod).__name__}"
        else:
            name = _fn_name(node.target)
            where = scope
            scope_of = scope
            base_name = None
            label_of = _fn_label(node)
            args = list(node.args)
            if name in ("getattr",) and len(args) == 2 and args[1] == "shape":
                env[node] = _Shape(value(args[0]))
                continue
            if node.op == "call_method" and name == "size":
                env[node] = _Shape(value(args[0])) if len(args) == 1 and not node.kwargs else ("const", None)
                continue
            if isinstance(node.target, type) and issubclass(node.target, tuple):  # a namedtuple of outputs
                env[node] = ("tuple", [value(a) for a in list(args) + list(node.kwargs.values())])
                continue
            if name == "getitem":
                base = value(args[0])
                if isinstance(base, _Shape) and base.index is None and isinstance(args[1], slice):
                    env[node] = _Shape(base.tensor, args[1])
                    continue
                if isinstance(base, _Parts) and isinstance(args[1], int):
                    op_name, kw = base.op, {**base.kw, "index": args[1]}
                    tensors = [base.tensor]
                    xs = [_shape_of(ops, base.tensor, input_shape)]
                    result, found_type = _first(table, op_name, kw, xs, y)
                    if result is None:
                        bad.add(f"{base.where} then [{args[1]}]", scope)
                        env[node] = None
                        continue
                    env[node] = add(result, node, op_name, tensors, refs, scope, None, xs, y)
                    continue
            if node.op == "call_method" and name in ("dim", "ndimension"):
                env[node] = ("const", 1 + len(_shape_of(ops, value(args[0]), input_shape) or ()))
                continue
            kw = None
            target = node.target if node.op == "call_function" else getattr(torch, name, None)
            if target is not None and not isinstance(target, str):
                try:
                    norm = normalize_function(target, tuple(args), dict(node.kwargs), normalize_to_only_use_kwargs=True)
                except Exception:  # noqa: BLE001 - no schema: positional arguments below
                    norm = None
                if norm is not None:
                    kw = {k: prepare(v, tensors, refs) for k, v in norm.kwargs.items()}
            if kw is None:
                tensors, refs = [], []
                kw = {"args": tuple(prepare(a, tensors, refs) for a in args),
                      **{k: prepare(v, tensors, refs) for k, v in node.kwargs.items()}}
            op_name = name
            if name in ("chunk", "split") and y is None:
                env[node] = _Parts(name, kw, tensors[0] if tensors else None, label_of)
                continue
        if any(isinstance(t, str) for t in tensors) or None in tensors:
            bad.add(label_of + " (on a value archcalc could not follow)", where)
            env[node] = None
            continue
        if y is None:
            bad.add(label_of + " (returns no single tensor)", where)
            env[node] = None
            continue
        xs = [_shape_of(ops, t, input_shape) for t in tensors]
        if not tensors:
            bad.add(label_of + " (on no tensor: a parameter or constant)", where)
            env[node] = None
            continue
        result, found_type = _first(table, op_name, kw, xs, y)
        if result is None:
            bad.add(label_of, where)
            env[node] = None
            continue
        env[node] = add(result, node, op_name, tensors, refs, scope_of, base_name, xs, y)
    bad.raise_if_any(label)
    g = Graph(ops, tuple(input_shape), outs, classes=classes, children=children)
    g = simplify(g)
    g.used = used_params
    return g, used_params


def _shape_of(ops, i, input_shape):
    if i == -1:
        return tuple(input_shape)
    return ops[i].shape if i is not None and i < len(ops) else None


def _first(table, op_name, kw, xs, y):
    for ltype in table.get(op_name, ()):
        try:
            result = ltype.from_torch(op_name, kw, xs, y)
        except (KeyError, TypeError, ValueError, IndexError, ZeroDivisionError):
            result = None
        if result is not None:
            return result, ltype
    return None, None


__all__ = ["trace", "operator"]
