"""PyTorch front end: torch.fx traces the model; each leaf module, function, method and operator
becomes a registry layer through the types' own ``torch_ops`` / ``from_torch`` declarations."""

from __future__ import annotations

import copy
import inspect
import math
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
        self.made: dict = {}  # part index -> the op made for it


class _Groups:
    """A feature map seen as k branches along its channels, N x k x C/k x H x W (``torch.stack``
    of k maps on dim 1: their concat; ``x.view(N, k, C // k, H, W)``): ``tensor`` (an op index)
    and ``k``. A product of two, a softmax over the branches (dim 1) and a sum over them are read."""

    def __init__(self, tensor, k):
        self.tensor, self.k = tensor, k


class _GroupsShape:
    """``.shape`` of a :class:`_Groups`."""

    def __init__(self, groups):
        self.groups = groups


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
        base = declared_base(type(m), self.names)
        if base is not None:
            # a leaf only where it computes what the declared class computes; a subclass whose
            # forward differs (timm's BatchNormAct2d: BatchNorm2d, then drop and activation) is
            # traced through, its functional calls read back as the module they stand for
            return same_function(type(m), base)
        if any(c.__name__ in self.names for c in type(m).__mro__[:-1]):
            return False  # a class of another package that only shares a declared name: traced through
        return super().is_leaf_module(m, qualname)


# where a class that a layer type declares by name comes from: torch, torchvision and archcalc's
# own builder; a class of the same name elsewhere (timm's LayerNorm2d) is not taken by its name
_TRUSTED = ("torch.", "torchvision.", "archcalc.")
# methods a subclass may override without changing what the module computes
_HARMLESS = {"__init__", "__repr__", "__setstate__", "__getstate__", "extra_repr", "reset_parameters",
             "_reset_parameters", "reset_running_stats", "_load_from_state_dict", "init_weights", "_init_weights",
             "__constants__", "__annotations__", "__module__", "__qualname__", "__doc__", "__dict__", "__weakref__"}


def declared_base(cls, names):
    """The first class in ``cls``'s MRO that a layer type declares by name and that is the class
    the name stands for (from torch, torchvision or archcalc, or another package's class that the
    type names with its module: ``timm.layers.std_conv.StdConv2d``), or None."""
    for c in cls.__mro__[:-1]:
        if c.__name__ in names and ((c.__module__ + ".").startswith(_TRUSTED) or f"{c.__module__}.{c.__qualname__}" in names):
            return c
    return None


def same_function(cls, base) -> bool:
    """Whether ``cls`` computes what ``base`` computes: no class between them overrides a method
    of ``base`` (forward, _conv_forward, ...) other than construction and initialisation."""
    for c in cls.__mro__:
        if c is base:
            return True
        for name, value in vars(c).items():
            if name in _HARMLESS or not callable(value) and not isinstance(value, (property, staticmethod, classmethod)):
                continue
            if hasattr(base, name):
                return False
    return True


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
        g, used = _trace(meta.eval(), input_shape, label, model)
        if used is not None and used != {n for n, _ in meta.named_parameters()}:
            g2, _ = _trace(meta.train(), input_shape, label, model)
            if len(g2.outputs) > 1:
                g = g2
    finally:
        meta.train(was)
    return g


def _hooked(model):
    """The first module with a forward hook (its path and class): torch.fx runs forward alone, so
    what a hook changes would be lost."""
    for path, m in model.named_modules():
        if m._forward_hooks or m._forward_pre_hooks:
            return path or "(the model)", type(m).__name__
    return None


def _trace(model, input_shape, label, original=None):
    hooked = _hooked(original if original is not None else model)
    if hooked:
        raise ImportFailed(f"{label}: module {hooked[0]} ({hooked[1]}) has a forward hook, which tracing does not see",
                           hint="remove the hook (or fold what it does into forward) before importing")
    names = _declared_names()
    tracer = _Tracer(names, _autowrap(model, names))
    notes = []
    try:
        graph = tracer.trace(model)
    except Exception as err:  # noqa: BLE001 - tracing runs the user's forward: any error is theirs
        text = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        where = _user_frame(err)
        if not (isinstance(err, fx.proxy.TraceError) and "control flow" in text):
            raise ImportFailed(f"{label}: torch.fx could not trace the model: {type(err).__name__}: {short(text, 160)[1:-1]}"
                               + (f" (at {where})" if where else ""),
                               hint="archcalc imports models that torch.fx.symbolic_trace can trace") from None
        # a branch on a size (timm's ConvMlp: `if x.shape[-2] < 7`): traced again with the sizes of
        # the traced input as numbers, so the branch taken at that size is the spec
        graph, tracer = _trace_concrete(model, names, input_shape)
        if graph is None:
            raise ImportFailed(
                f"{label}: the forward uses data-dependent control flow (an if or loop on tensor values){' at ' + where if where else ''}, "
                "which torch.fx cannot trace",
                hint="make the branch depend on arguments, not on tensor values, or export the model to ONNX and import that",
            ) from None
        notes.append(f"the forward branches on the input's size{' at ' + where if where else ''}: the spec is the branch "
                     f"taken at {'x'.join(map(str, input_shape))}, and the sizes the forward reads are that input's")
    gm = fx.GraphModule(tracer.root, graph)
    x = torch.empty(2, *input_shape, device="meta")
    import contextlib
    import io

    try:
        from torch.fx.passes.shape_prop import ShapeProp

        with contextlib.redirect_stderr(io.StringIO()):  # ShapeProp prints the traceback before raising
            ShapeProp(gm).propagate(x)
    except Exception as err:  # noqa: BLE001
        cause = err.__cause__ if isinstance(err.__cause__, Exception) else err
        text = str(cause).strip().splitlines()[0] if str(cause).strip() else ""
        where = next((n.target for n in gm.graph.nodes if n.op == "call_module" and f"node=%{n.name} " in str(err)), None)
        mode = " (in training mode, where its aux head runs)" if model.training else ""
        raise ImportFailed(f"{label}: running the traced model on a {'x'.join(map(str, input_shape))} input failed{mode}"
                           + (f" at {where}" if where else "") + f": {type(cause).__name__}: {short(text, 160)[1:-1]}",
                           hint="give the input size the model expects with --input CxHxW") from None
    g, used = _convert(gm, model, input_shape, label, original)
    g.notes = notes
    return g, used


def _trace_concrete(model, names, input_shape):
    """(graph, tracer) of torch.fx's MetaTracer, where x.shape and x.size() are the numbers of a
    meta-device run at ``input_shape``, or (None, None) where that fails too (a branch on values)."""
    import warnings

    from torch.fx.experimental.meta_tracer import MetaTracer

    class Concrete(_Tracer, MetaTracer):
        pass

    try:
        first = next(iter(inspect.signature(model.forward).parameters))
    except (StopIteration, TypeError, ValueError):
        return None, None
    tracer = Concrete(names, _autowrap(model, names))
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            graph = tracer.trace(model, meta_args={first: torch.empty(2, *input_shape, device="meta")})
    except Exception:  # noqa: BLE001
        return None, None
    return graph, tracer


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
    params: dict = {}
    # the class's own constructor, then its bases' (torchvision's Conv3DSimple(in_planes, out_planes,
    # midplanes, ...) is an nn.Conv3d: its kernel_size, dilation, groups are Conv3d's)
    for c in type(mod).__mro__[:-1]:
        if "__init__" not in vars(c):
            continue
        try:
            params.update({k: v for k, v in inspect.signature(c.__init__).parameters.items() if k not in params})
        except (TypeError, ValueError):
            pass
    for name in params:
        if name in ("self", "device", "dtype") or not hasattr(mod, name):
            continue
        v = getattr(mod, name)
        kw[name] = (v is not None) if name == "bias" or isinstance(v, torch.Tensor) else v
    if "bias" not in kw and "bias" in params:
        kw["bias"] = getattr(mod, "bias", None) is not None
    # numbers the module computed at construction (timm's ScaledStdConv2d keeps gamma / sqrt(fan-in)
    # as ``scale``, not gamma): for from_torch to read back what the constructor was given
    kw["attrs"] = {k: v for k, v in vars(mod).items()
                   if not k.startswith("_") and k != "training" and isinstance(v, (int, float))}
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


def _param_value(model, name):
    """The value every element of a parameter (or buffer) holds, as the shortest float that is that
    value in its dtype; None on the meta device or where the elements differ."""
    try:
        t = model.get_parameter(name)
    except AttributeError:
        try:
            t = model.get_buffer(name)
        except AttributeError:
            return None
    if t.device.type == "meta" or not t.numel() or not t.dtype.is_floating_point:
        return None
    with torch.no_grad():
        first = t.reshape(-1)[0]
        if not bool((t == first).all()):
            return None
        first = first.cpu()
        v = float(first)
    for digits in range(1, 18):
        short_v = float(f"{v:.{digits}g}")
        if torch.tensor(short_v, dtype=t.dtype) == first:
            return short_v
    return v


def _permute_dims(args, kwargs):
    """The dims of ``torch.permute(x, dims)`` / ``x.permute(*dims)``, normalised to 0..3, or None."""
    dims = kwargs.get("dims", args[1:] if len(args) > 2 else (args[1] if len(args) == 2 else None))
    if not isinstance(dims, (list, tuple)) or len(dims) != 4 or not all(isinstance(d, int) for d in dims):
        return None
    return tuple(d % 4 for d in dims)


CHANNELS_LAST, CHANNELS_FIRST = (0, 2, 3, 1), (0, 3, 1, 2)


def _convert(gm, model, input_shape, label, original=None) -> Graph:
    table = candidates()
    ops: list = []
    env: dict = {}
    bad = Unsupported()
    used_names: dict = {}  # scope -> names taken
    calls: dict = {}  # module path -> times called
    used_params: set = set()
    param_uses: dict = {}  # parameter name -> layers named after it
    seq: set = set()  # fx nodes whose value is a C x 1 x 1 map viewed as (N, 1, C): the channels as a sequence (ECA)
    last: set = set()  # fx nodes whose value is channels-last (N, H, W, C): a permute(0, 2, 3, 1) of a feature map
    children = {path: [n for n, _ in m.named_children()] for path, m in model.named_modules()}
    # a module's own parameters name the layers that use them: no other layer may take those names
    own = {path: [n for n, _ in m.named_parameters(recurse=False)] for path, m in model.named_modules()}
    classes = {path: type(m).__name__ for path, m in model.named_modules()}
    owners: set = set()  # modules traced through whose own tensors one functional call used (named after them)

    def unique(scope, base):
        taken = used_names.setdefault(scope, set(children.get(scope, [])) | set(own.get(scope, [])))
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
            if isinstance(v, L.base.Param):
                params.append(v)
            return v
        if isinstance(a, (list, tuple)):
            if len(a) == 2 and all(isinstance(x, fx.Node) for x in a):
                h, w = env.get(a[0]), env.get(a[1])
                if isinstance(h, _Shape) and isinstance(w, _Shape) and h.tensor == w.tensor and (h.index, w.index) == (2, 3):
                    refs.append(h.tensor)  # (x.shape[-2], x.shape[-1]): the size of x, as x.shape[-2:]
                    return L.base.SizeOf(len(refs) - 1)
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
                    # a size read from a tensor (refs), or from the call's own input (a pad then a crop to it)
                    ref_ops[key] = refs[v.index] if refs else tensors[v.index] if v.index < len(tensors) else -1
                    del args[key]
            name = base_fallback if (k == 0 and base_fallback and len(steps) == 1) else unique(scope, ltype.name)
            # a step before the last that works per element keeps its input's shape (timm's
            # RadixSoftmax: the softmax, then the flatten that gives the traced shape)
            shape = y if k == len(steps) - 1 or not isinstance(ltype, L.base.Pointwise) else _shape_of(ops, inputs[0], input_shape)
            if k < len(steps) - 1 and not ltype.keys and not ltype.joins:
                # a step before the last without settings (a global pool before its flatten): its own shape
                try:
                    shape = tuple(ltype.out({}, [_shape_of(ops, inputs[0], input_shape)]))
                except Exception:  # noqa: BLE001 - as before: the traced shape
                    pass
            ops.append(Op(name, ltype.name, defaults_dropped(ltype, args), list(inputs), ref_ops, torch=torch_name, shape=shape))
            inputs = [len(ops) - 1]
        return len(ops) - 1

    def emit(op_name, kw, srcs, y, node, scope):
        """The layer(s) a registry type gives for ``op_name`` on the ops ``srcs``: the last op's index, or None."""
        nonlocal found_type
        xs = [_shape_of(ops, t, input_shape) for t in srcs]
        result, found_type = _first(table, op_name, kw, xs, y)
        return None if result is None else add(result, node, op_name, list(srcs), [], scope, None, xs, y)

    def number(v):
        """A traced size as a number (the traced input's), or None."""
        v = value(v) if isinstance(v, fx.Node) else v
        if isinstance(v, tuple) and v[:1] == ("const",):
            v = v[1]
        if isinstance(v, _Shape) and isinstance(v.index, int) and isinstance(v.tensor, int):
            x = _shape_of(ops, v.tensor, input_shape)
            return x[v.index - 1] if x is not None and 0 < v.index <= len(x) else None
        return v if isinstance(v, int) and not isinstance(v, bool) else None

    def branches(node, name, args, kw, scope):
        """k branches stacked on dim 1 (selective kernels, split attention) as existing types: the
        stack a concat, the softmax over the branches a radix softmax, their product a product, their
        sum channel slices and sums. The value for the node, or None (reported)."""
        vals = [value(a) if isinstance(a, fx.Node) else a for a in args]
        g = vals[0] if vals and isinstance(vals[0], _Groups) else None
        if name == "getattr" and g is not None and len(args) == 2 and args[1] == "shape":
            return _GroupsShape(g)
        if name == "getitem" and vals and isinstance(vals[0], _GroupsShape) and isinstance(args[1], int):
            g = vals[0].groups
            x = _shape_of(ops, g.tensor, input_shape)
            i = args[1] % 5
            return ("const", None if i == 0 else g.k if i == 1 else x[0] // g.k) if i < 3 else _Shape(g.tensor, i - 1)
        if name == "stack":
            parts = args[0] if args else kw.get("tensors")
            dim = args[1] if len(args) > 1 else kw.get("dim", 0)
            srcs = [value(a) for a in parts] if isinstance(parts, (list, tuple)) else []
            shapes = {_shape_of(ops, t, input_shape) if isinstance(t, int) else None for t in srcs}
            if dim != 1 or not srcs or len(shapes) != 1 or None in shapes or len(next(iter(shapes))) != 3:
                return None
            x = next(iter(shapes))
            i = emit(torch.cat.__name__, {"tensors": [L.base.TENSOR] * len(srcs), "dim": 1}, srcs,
                     (len(srcs) * x[0],) + x[1:], node, scope)
            return None if i is None else _Groups(i, len(srcs))
        if name in ("view", "reshape") and node.op == "call_method" and vals and isinstance(vals[0], int):
            dims = args[1] if len(args) == 2 and isinstance(args[1], (tuple, list)) else args[1:]
            x = _shape_of(ops, vals[0], input_shape)
            if len(dims) != 5 or x is None or len(x) != 3:
                return None
            k = number(dims[1])
            if not k or x[0] % k or [number(d) for d in dims[2:]] != [x[0] // k, x[1], x[2]]:
                return None
            return _Groups(vals[0], k)
        dim = args[1] if len(args) > 1 else kw.get("dim")
        if g is not None and name == "sum" and dim in (1, (1,), [1]) and not kw.get("keepdim") and len(args) <= 2:
            x = _shape_of(ops, g.tensor, input_shape)
            c = x[0] // g.k
            out = None
            for r in range(g.k):
                i = emit("ChannelSlice", {"start": r * c, "stop": (r + 1) * c}, [g.tensor], (c,) + x[1:], node, scope)
                out = i if out is None or i is None else emit(_ADD, {"args": (L.base.TENSOR,) * 2}, [out, i], (c,) + x[1:], node, scope)
                if out is None:
                    return None
            return out
        if g is not None and name == torch.softmax.__name__ and dim == 1 and len(args) <= 2:
            x = _shape_of(ops, g.tensor, input_shape)
            i = emit("RadixSoftmax", {"radix": g.k, "cardinality": 1}, [g.tensor], x, node, scope)
            return None if i is None else _Groups(i, g.k)
        if name in (_MUL, "imul") and len(vals) == 2 and all(isinstance(v, _Groups) for v in vals) and vals[0].k == vals[1].k:
            xs = [_shape_of(ops, v.tensor, input_shape) for v in vals]
            y = tuple(max(a, b) for a, b in zip(*xs))
            i = emit(_MUL, {"args": (L.base.TENSOR,) * 2}, [v.tensor for v in vals], y, node, scope)
            return None if i is None else _Groups(i, g.k)
        return None

    def context(node, name, args, kw):
        """GCNet's context pooling (timm's GlobalContext) from its steps: the map and a one-logit conv's
        output flattened over the positions, the logits' softmax over them, unsqueezes, their product
        (a matmul) viewed back to N x C x 1 x 1. The conv's op becomes the pooling (it holds the conv's
        tensors under the conv's name). The value for the node, or None (reported)."""
        vals = [value(a) if isinstance(a, fx.Node) else a for a in args]
        p = vals[0] if vals and isinstance(vals[0], _Positions) else None
        if name in ("view", "reshape") and node.op == "call_method" and p is None:
            i = vals[0]
            src = node.args[0]
            one_reader = len(src.users) == 1 and src.op == "call_module"
            return _Positions(i, _shape_of(ops, i, input_shape)[0], src=src if one_reader else None)
        if p is None:
            if name == operator.matmul.__name__ and len(vals) == 2 and isinstance(vals[1], _Positions):
                p = vals[0]
            else:
                return None
        dim = args[1] if len(args) > 1 else kw.get("dim")
        if name == torch.softmax.__name__ and len(vals) <= 2 and p.c == 1 and not p.soft and not p.unsq and dim in (-1, 2):
            return _Positions(p.i, 1, True, 0, p.src)
        if name == "unsqueeze" and len(vals) <= 2 and not p.unsq and dim in ((3, -1) if p.c == 1 else (1,)):
            return _Positions(p.i, p.c, p.soft, dim % 4, p.src)
        if name == operator.matmul.__name__ and len(vals) == 2 and isinstance(vals[0], _Positions) and not kw:
            m, w = vals
            j = w.i
            if not (m.unsq == 1 and not m.soft and w.soft and w.unsq == 3 and w.src is not None and 0 <= j < len(ops)
                    and ops[j].inputs == [m.i]):
                return None
            try:
                conv = model.get_submodule(w.src.target)
            except AttributeError:
                return None
            if type(conv) is not torch.nn.Conv2d or conv.out_channels != 1 or conv.kernel_size != (1, 1) or conv.stride != (1, 1) \
                    or conv.padding != (0, 0) or conv.dilation != (1, 1) or conv.groups != 1 or conv.padding_mode != "zeros":
                return None
            x = _shape_of(ops, m.i, input_shape)
            result, ltype = _first(table, "ContextPool", {"bias": conv.bias is not None}, [x], (x[0], 1, 1))
            if not isinstance(result, dict):
                return None
            ops[j] = Op(ops[j].name, ltype.name, defaults_dropped(ltype, result), [m.i], {}, torch="GlobalContext",
                        shape=(x[0], 1, 1))
            return _Positions(j, x[0], done=True)
        if name in ("view", "reshape") and node.op == "call_method" and p.done:
            dims = [number(d) for d in (args[1] if len(args) == 2 and isinstance(args[1], (tuple, list)) else args[1:])]
            return p.i if len(dims) == 4 and dims[1] in (-1, p.c) and dims[2:] == [1, 1] else None
        return None

    found_type = None
    placeholders = 0
    for node in gm.graph.nodes:
        if node.op == "placeholder":
            placeholders += 1
            if placeholders > 1:
                bad.add(f"a second forward input '{node.target}'", "")
            env[node] = -1
            continue
        if node.op == "get_attr":
            try:
                t = model.get_parameter(node.target)
            except AttributeError:
                t = None
            if t is None:
                env[node] = ("param", node.target)  # a buffer or a constant: no layer type reads those
            else:
                env[node] = L.base.Param(node.target, tuple(t.shape),
                                         _param_value(original, node.target) if original is not None else None)
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
            if any(n in last for n in node.all_input_nodes):
                bad.add("a channels-last tensor (torch.permute(x, (0, 2, 3, 1)) not permuted back) as an output", "")
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
        params: list = []
        cl = any(n in last for n in node.all_input_nodes)
        if cl:
            if any(n not in last and isinstance(env.get(n), int) for n in node.all_input_nodes):
                bad.add(f"{_label(node, gm)} of a channels-last and a channels-first tensor", scope)
                env[node] = None
                continue
            y = (y[2], y[0], y[1]) if y is not None and len(y) == 3 else y  # as the spec sees it
        sq = any(n in seq for n in node.all_input_nodes)
        if sq:
            # the pooled channels seen as a 1-channel sequence, (N, 1, C) (ECA): a 1-D conv over them
            # and elementwise ops stay on the C x 1 x 1 map; viewed back to (N, C, 1, 1), it is that map
            src = next(n for n in node.all_input_nodes if n in seq)
            back = _seq_back(node, src, value, ops, input_shape)
            if back is not None:
                env[node] = back
                continue
            if any(n not in seq and isinstance(env.get(n), int) for n in node.all_input_nodes):
                bad.add(f"{_label(node, gm)} of the channels viewed as a sequence, (N, 1, C), and a feature map", scope)
                env[node] = None
                continue
            y = _shape_of(ops, value(src), input_shape)
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
            if name in _IGNORED:  # torch._assert and the like: no value, nothing computed
                env[node] = ("const", None)
                continue
            if name == "getattr" and len(args) == 2 and args[1] == "ndim" and isinstance(value(args[0]), int):
                env[node] = ("const", 1 + len(_shape_of(ops, value(args[0]), input_shape) or ()))
                continue
            grouped = [value(a) for a in node.all_input_nodes]
            if name == "stack" or any(isinstance(v, (_Groups, _GroupsShape)) for v in grouped) or (
                    name in ("view", "reshape") and len(args) in (2, 6) and len(args[1] if len(args) == 2 and isinstance(args[1], (tuple, list)) else args[1:]) == 5):
                done = branches(node, name, args, dict(node.kwargs), scope)
                if done is None:
                    bad.add(f"{label_of} of k branches stacked on dim 1 (N x k x C x H x W): only their product, softmax "
                            "and sum over dim 1 are read", scope)
                env[node] = done
                continue
            if any(isinstance(v, _Positions) for v in grouped) or _flattens_positions(node, name, value, ops, input_shape):
                done = context(node, name, args, dict(node.kwargs))
                if done is None:
                    bad.add(f"{label_of} of a map flattened over its positions (N, C, H*W): only GCNet's context pooling "
                            "(a one-logit 1x1 conv's softmax over the positions, the map's sum weighted by it) is read", scope)
                env[node] = done
                continue
            folded = _fold(node, value)
            if folded is not None:  # Python arithmetic on constants (x.ndim == 4, sizes)
                env[node] = folded
                continue
            if node.op == "call_function" and name == torch.nn.functional.pad.__name__:
                neg = _neg_inf_pad(node, value)
                if neg is not None:  # -inf padding read by one max pool (timm's MaxPool2dSame): the pool's padding
                    env[node] = neg
                    continue
            if node.op == "call_function" and name == torch.nn.functional.max_pool2d.__name__ and args \
                    and isinstance(value(args[0]), _NegInfPad):
                pad = value(args[0])
                try:
                    norm = normalize_function(node.target, tuple(args), dict(node.kwargs), normalize_to_only_use_kwargs=True)
                except Exception:  # noqa: BLE001
                    norm = None
                kw = {k: (value(v)[1] if isinstance(value(v), tuple) and value(v)[:1] == ("const",) else value(v))
                      for k, v in (norm.kwargs.items() if norm is not None else ())}
                xs = [_shape_of(ops, pad.src, input_shape)]
                result, found_type = (None, None) if norm is None or pair_of_zero(kw.get("padding", 0)) is False else \
                    _first(table, name, {**kw, "padding": pad.pads}, xs, y)
                if result is None:
                    bad.add(f"{label_of} after torch.nn.functional.pad with -inf", scope)
                    env[node] = None
                    continue
                env[node] = add(result, node, name, [pad.src], [], scope, None, xs, y)
                continue
            if node.op == "call_function" and name in FUNCTIONAL:
                said = _as_module(node, name, value, model, ops, input_shape)
                if isinstance(said, str):
                    bad.add(f"{label_of} {said}", scope)
                    env[node] = None
                    continue
                op_name, kw, owner, src = said
                tensors, refs = [src], []
                xs = [_shape_of(ops, src, input_shape)]
                if cl:
                    kw["channels_last"] = True
                result, found_type = _first(table, op_name, kw, xs, y, cl)
                if result is None:
                    bad.add(f"{label_of} (as torch.nn.{op_name}{' on a channels-last tensor' if cl else ''})" + _advice(op_name), scope)
                    env[node] = None
                    continue
                used_params.update(f"{owner}.{n}" for n, _ in model.get_submodule(owner).named_parameters(recurse=False))
                parent = owner.rsplit(".", 1)[0] if "." in owner else ""
                env[node] = add(result, node, op_name, tensors, refs, parent, owner, xs, y)
                owners.add(owner)
                if cl:
                    last.add(node)
                continue
            if name == "permute" and args and isinstance(value(args[0]), int):
                # a layout change, no layer: to channels-last and back (ConvNeXt's blocks)
                dims, src = _permute_dims(args, node.kwargs), args[0]
                x = _shape_of(ops, value(src), input_shape)
                if x is not None and len(x) == 3 and dims == (CHANNELS_FIRST if src in last else CHANNELS_LAST):
                    env[node] = value(src)
                    if src not in last:
                        last.add(node)
                    continue
            if cl and (name in ("getattr", "size") or node.op == "call_method" and name in ("dim", "ndimension")):
                bad.add(f"{label_of} of a channels-last tensor", scope)
                env[node] = None
                continue
            if name in ("getattr",) and len(args) == 2 and args[1] == "shape":
                env[node] = _Shape(value(args[0]))
                continue
            if node.op == "call_method" and name == "size":
                dim = args[1] if len(args) == 2 else node.kwargs.get("dim")
                env[node] = (_Shape(value(args[0])) if len(args) == 1 and not node.kwargs
                             else _dim(value(args[0]), dim, ops, input_shape) if isinstance(dim, int) else ("const", None))
                continue
            if name in _CONST_OPS and not cl:
                k = _with_constant(name, args, node.kwargs, value)
                if k is not None:  # x + 0 (mobileone's empty branches), x * 1: x; x / c: a scale by 1 / c
                    src, c = k
                    if (name in _ADDS and c == 0) or (name in _MULS and c == 1):
                        env[node] = src
                        continue
                    if name in ("truediv", "itruediv") and c != 0:
                        xs = [_shape_of(ops, src, input_shape)]
                        result, found_type = _first(table, "Scale", {"factor": 1.0 / c}, xs, y)
                        if result is not None:
                            env[node] = add(result, node, "Scale", [src], [], scope, None, xs, y)
                            continue
            if isinstance(node.target, type) and issubclass(node.target, tuple):  # a namedtuple of outputs
                env[node] = ("tuple", [value(a) for a in list(args) + list(node.kwargs.values())])
                continue
            if name == "getitem":
                base = value(args[0])
                if isinstance(base, _Shape) and base.index is None and isinstance(args[1], slice):
                    env[node] = _Shape(base.tensor, args[1])
                    continue
                if isinstance(base, _Shape) and base.index is None and isinstance(args[1], int):
                    env[node] = _dim(base.tensor, args[1], ops, input_shape)  # N, C, H, W = x.shape
                    continue
                if isinstance(base, int) and not cl:
                    sliced = _channel_slice(args[1], _shape_of(ops, base, input_shape))
                    if sliced is not None:  # x[:, a:b] (ghostnet, rexnet, dpn): a channel slice
                        if sliced == (0, _shape_of(ops, base, input_shape)[0]):
                            env[node] = base
                            continue
                        xs = [_shape_of(ops, base, input_shape)]
                        result, found_type = _first(table, "ChannelSlice", {"start": sliced[0], "stop": sliced[1]}, xs, y)
                        if result is not None:
                            env[node] = add(result, node, "ChannelSlice", [base], [], scope, None, xs, y)
                            continue
                if isinstance(base, _Parts) and args[1] in base.made:
                    env[node] = base.made[args[1]]
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
            back = _view_back(name, node, value, ops, input_shape) if node.op == "call_method" else None
            if back is not None:  # x.view(N, -1, 1, 1) of a flattened C x 1 x 1 gate: the gate itself
                env[node] = back
                continue
            viewed = _param_view(name, node, value) if node.op == "call_method" else None
            if viewed is not None:  # timm's gamma.reshape(1, -1, 1, 1), Scale's scale.view(C, 1, 1)
                env[node] = viewed
                continue
            seq_of = _channel_seq(name, node, value, ops, input_shape) if node.op == "call_method" and not sq else None
            if seq_of is not None:  # x.mean((2, 3)).view(N, 1, -1) (ECA): the pooled map, read as a sequence
                env[node] = seq_of
                seq.add(node)
                continue
            if name in ("expand_as", "expand") and node.op == "call_method" and not sq:
                wide = _broadcast_expand(node, value, ops, input_shape)
                if wide is not None:  # y.expand_as(x) read only by a product: the product broadcasts y
                    env[node] = wide
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
            if name in ("chunk", "split") and y is None and not cl:
                parts = env[node] = _Parts(name, kw, tensors[0] if tensors else None, label_of)
                # the parts taken by [i] are made here, in order, where only one child module's
                # layers run between the takes (SKNet's paths.0 on the first half, then paths.1 on
                # the second): the child's layers stay one run
                for u in (node.users if _takes_around_one_child(node, scope) else ()):
                    if u.op != "call_function" or u.target is not operator.getitem or not isinstance(u.args[1], int) \
                            or u.args[1] in parts.made or not isinstance(parts.tensor, int):
                        continue
                    xs = [_shape_of(ops, parts.tensor, input_shape)]
                    result, found_type = _first(table, name, {**kw, "index": u.args[1]}, xs, _shape(u))
                    if result is not None:
                        parts.made[u.args[1]] = add(result, u, name, [parts.tensor], [], _scope(u), None, xs, _shape(u))
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
            bad.add(label_of + _on_no_tensor(params, model), where)
            env[node] = None
            continue
        if cl:
            kw["channels_last"] = True
        if sq:
            kw["channel_seq"] = kw["channels_last"] = True
        result, found_type = _first(table, op_name, kw, xs, y, cl, sq)
        if result is None:
            what = label_of + (" on a channels-last tensor (after torch.permute(x, (0, 2, 3, 1)))" if cl else "")
            what += " on the channels viewed as a sequence, (N, 1, C) (ECA)" if sq else ""
            what += "".join(f" with the parameter {p.name}" for p in params)
            what += _advice(op_name, params)
            bad.add(what, where)
            env[node] = None
            continue
        if params:
            # a layer made from a call on a parameter of the model is named after it (its state_dict key)
            p = params[0]
            single = isinstance(result, dict) or len(result) == 1
            if len(params) > 1 or p.name.rpartition(".")[0] != scope_of or not single or param_uses.get(p.name):
                bad.add(f"{label_of} with the parameter {p.name} (used twice, or in another module's forward)", where)
                env[node] = None
                continue
            param_uses[p.name] = 1
            used_params.add(p.name)
            base_name = p.name
        env[node] = add(result, node, op_name, tensors, refs, scope_of, base_name, xs, y)
        if node.op == "call_method" and op_name.endswith("_") and not op_name.startswith("_") and node.args \
                and isinstance(node.args[0], fx.Node) and isinstance(env.get(node.args[0]), int):
            # x.mul_(g) changes x: later reads of x (the trace's node before the call) read the result
            env[node.args[0]] = env[node]
        if cl:
            last.add(node)
        if sq:
            seq.add(node)
    _beside_owners(ops, owners, model, bad)
    bad.raise_if_any(label)
    g = Graph(ops, tuple(input_shape), outs, classes=classes, children=children)
    # in eval mode every tensor the model returns is an output (a detection backbone's feature
    # maps); in training mode the extra ones are aux heads (Inception's)
    g.several = not model.training and len(outs) > 1
    g = simplify(g)
    g.used = used_params
    return g, used_params


_IGNORED = {"_assert", "_assert_async", "_assert_scalar"}
_ADD_NAME = operator.add.__name__

# what an op that no layer type reads needs, for the error's "what to do" (planned: the layer
# vocabulary issue adds these types; then the op maps through the type's own torch_ops)
_ADVICE = {
    **dict.fromkeys(("view", "reshape", "transpose", "permute"), "a layer type for this reshape: only flattening, channel slices, "
                    "channel shuffles and pixel (un)shuffles are read (attention has no type)"),
    **dict.fromkeys(("matmul", "bmm", "einsum", "baddbmm", "scaled_dot_product_attention"), "attention, which archcalc has no layer type for"),
    **dict.fromkeys(("conv1d", "Conv1d"), "a 1-D conv over channels (ECA attention): a layer type for it"),
    **dict.fromkeys(("stack",), "k branches stacked on dim 1 are read only through their product, softmax and sum over dim 1"),
    **dict.fromkeys((_ADD_NAME, "iadd", "add_"), "add to broadcast a C x 1 x 1 tensor over the map (timm's GlobalContext with "
                    "fuse_add); add sums tensors of one shape"),
    torch.nn.functional.pad.__name__: "constant padding with a finite value (-inf before a max pool, timm's MaxPool2dSame, "
                                      "would need the max pool to read it as its own padding)",
}


def _on_no_tensor(params, model):
    """What a call on a parameter (not on the feature map) needs, for the error."""
    if not params:
        return " (on no tensor: a constant)"
    p = params[0]
    owner, _, leaf = p.name.rpartition(".")
    try:
        mod = model.get_submodule(owner)
    except AttributeError:
        mod = None
    if leaf == "weight" and isinstance(mod, torch.nn.Conv2d):
        return (f" of the parameter {p.name}, a conv's weight computed in forward: a weight-standardised conv "
                "is read from timm's StdConv2d module only (std_conv)")
    if len(p.shape) == 1:
        return (f" of the parameter {p.name} (a {p.shape[0]}-vector) used in forward: a per-channel scale is read "
                "from torch's mul by a C x 1 x 1 parameter or from timm's LayerScale / LayerScale2d module")
    return f" of the parameter {p.name}: needs a layer type that holds this parameter"


def _advice(op_name, params=()):
    if params:
        return ": needs a layer type that holds this parameter (only a C x 1 x 1 per-channel scale is read)"
    what = _ADVICE.get(op_name)
    return f": needs {what}" if what else ""


# torch's operator names (some are also layer type names: written as the functions' own names)
_ADD, _MUL = operator.add.__name__, operator.mul.__name__
_CONV2D, _LINEAR = torch.nn.functional.conv2d.__name__, torch.nn.functional.linear.__name__
_CONVS = {torch.nn.functional.conv1d.__name__: "Conv1d", _CONV2D: "Conv2d", torch.nn.functional.conv3d.__name__: "Conv3d"}
_ADDS = {_ADD, "iadd", operator.sub.__name__, "isub"}
_MULS = {_MUL, "imul", "truediv", "itruediv"}
_CONST_OPS = _ADDS | _MULS


def _with_constant(name, args, kwargs, value):
    """(the tensor's op index, the number) of ``x OP c`` (or ``c + x``, ``c * x``) with c a Python
    number (or a constant the trace folded), or None."""
    if kwargs or len(args) != 2:
        return None

    def tensor(a):
        return isinstance(a, fx.Node) and isinstance(value(a), int) and not isinstance(value(a), bool)

    def number(a):
        v = value(a) if isinstance(a, fx.Node) else a
        v = v[1] if isinstance(v, tuple) and v[:1] == ("const",) else v
        if isinstance(a, fx.Node) and not (isinstance(value(a), tuple) and value(a)[:1] == ("const",)):
            return None
        return v if isinstance(v, (int, float)) and not isinstance(v, bool) else None

    if tensor(args[0]) and number(args[1]) is not None:
        return value(args[0]), number(args[1])
    if name in (_ADD, _MUL) and tensor(args[1]) and number(args[0]) is not None:
        return value(args[1]), number(args[0])
    return None


class _NegInfPad:
    """``F.pad(x, (l, r, t, b), value=-inf)`` whose one reader is a max pool without padding:
    ``src`` (x's op index) and ``pads`` (t, b, l, r), the pool's own padding."""

    def __init__(self, src, pads):
        self.src, self.pads = src, pads


def pair_of_zero(p):
    """Whether a pool's padding argument is zero (an int or a tuple of zeros)."""
    return all(v == 0 for v in p) if isinstance(p, (tuple, list)) else p == 0


def _neg_inf_pad(node, value):
    """A :class:`_NegInfPad` for an ``F.pad`` with -inf read only by ``F.max_pool2d``, else None."""
    try:
        norm = normalize_function(node.target, tuple(node.args), dict(node.kwargs), normalize_to_only_use_kwargs=True)
    except Exception:  # noqa: BLE001
        return None
    if norm is None:
        return None
    kw = norm.kwargs
    src = value(kw.get("input"))
    pad = next((v for k, v in kw.items() if k not in ("input", "mode", "value")), None)  # the amounts (l, r, t, b)
    fill = kw.get("value")
    users = list(node.users)
    if not isinstance(src, int) or kw.get("mode", "constant") != "constant" or not isinstance(fill, float) \
            or fill != -math.inf or len(users) != 1 or users[0].op != "call_function" \
            or _fn_name(users[0].target) != torch.nn.functional.max_pool2d.__name__ or users[0].args[:1] != (node,):
        return None
    if not isinstance(pad, (tuple, list)) or len(pad) != 4 or not all(isinstance(v, int) and v >= 0 for v in pad):
        return None
    l, r, t, b = pad
    return _NegInfPad(src, (t, b, l, r))


def _takes_around_one_child(node, scope):
    """Whether the nodes between the first and the last ``[i]`` of ``node`` (a split) all run
    inside one module below ``scope``."""
    takes = [u for u in node.users if u.op == "call_function" and u.target is operator.getitem]
    if len(takes) < 2 or len(takes) != len(node.users):
        return False
    order = {n: k for k, n in enumerate(node.graph.nodes)}
    lo, hi = min(order[u] for u in takes), max(order[u] for u in takes)
    paths = [(n.target if n.op == "call_module" else _scope(n)).split(".") for n in node.graph.nodes
             if lo < order[n] < hi and n not in takes]
    if not paths:
        return False
    common = paths[0]
    for p in paths[1:]:
        k = 0
        while k < min(len(common), len(p)) and common[k] == p[k]:
            k += 1
        common = common[:k]
    depth = len(scope.split(".")) if scope else 0
    return len(common) > depth and (not scope or common[:depth] == scope.split("."))


def _view_back(name, node, value, ops, input_shape):
    """``y.view(N, *shape)`` / ``y.reshape(...)`` where y is the output of a layer that is a view
    (a flatten) of one input whose shape is ``shape``: that input's op index; else None."""
    if name not in ("view", "reshape") or node.kwargs or len(node.args) < 2 or not isinstance(value(node.args[0]), int):
        return None
    i = value(node.args[0])
    if i < 0 or len(ops[i].inputs) != 1 or not getattr(L.REGISTRY[ops[i].type], "view", False):
        return None
    src = ops[i].inputs[0]
    x = _shape_of(ops, src, input_shape)
    dims = node.args[1] if len(node.args) == 2 and isinstance(node.args[1], (tuple, list)) else node.args[1:]
    dims = [value(d) if isinstance(d, fx.Node) else d for d in dims]
    if x is None or len(dims) != len(x) + 1 or dims[0] not in (("const", None), -1):
        return None
    dims = [d[1] if isinstance(d, tuple) and d[:1] == ("const",) else d for d in dims[1:]]
    if not all(isinstance(d, int) and not isinstance(d, bool) for d in dims) or dims.count(-1) > 1:
        return None
    known = 1
    for d in dims:
        known *= d if d != -1 else 1
    dims = [d if d != -1 else (math.prod(x) // known if known else -1) for d in dims]
    return src if tuple(dims) == tuple(x) else None


class _Positions:
    """A feature map flattened over its positions, N x C x H*W (op ``i``, ``c`` channels): ``soft`` a
    softmax over the positions, ``unsq`` the dim an unsqueeze added (0: none), ``src`` the fx node of
    the module whose output it is, where that is its only reader; ``done``: the context pooling
    itself, N x 1 x C x 1 (op ``i``)."""

    def __init__(self, i, c, soft=False, unsq=0, src=None, done=False):
        self.i, self.c, self.soft, self.unsq, self.src, self.done = i, c, soft, unsq, src, done


def _flattens_positions(node, name, value, ops, input_shape):
    """Whether ``x.reshape(N, C, H * W)`` (or view) flattens a C x H x W map over its positions."""
    if name not in ("view", "reshape") or node.op != "call_method" or node.kwargs or len(node.args) < 2:
        return False
    i = value(node.args[0])
    x = _shape_of(ops, i, input_shape) if isinstance(i, int) and not isinstance(i, bool) else None
    dims = node.args[1] if len(node.args) == 2 and isinstance(node.args[1], (tuple, list)) else node.args[1:]
    if x is None or len(x) != 3 or len(dims) != 3 or x[1:] == (1, 1):
        return False
    vals = [value(d) if isinstance(d, fx.Node) else d for d in dims]
    vals = [v[1] if isinstance(v, tuple) and v[:1] == ("const",) else v for v in vals]
    # the batch, the channels, and the rest (H * W: a size the forward computed, or -1)
    return vals[0] in (None, -1) and vals[1] == x[0] and (vals[2] in (-1, x[1] * x[2]) or isinstance(dims[2], fx.Node))


def _dims_of(node, value):
    """The dims of ``x.view(*dims)`` / ``x.reshape(dims)`` with constants read (None: the batch), or None."""
    if node.kwargs or len(node.args) < 2:
        return None
    dims = node.args[1] if len(node.args) == 2 and isinstance(node.args[1], (tuple, list)) else node.args[1:]
    out = []
    for d in dims:
        v = value(d) if isinstance(d, fx.Node) else d
        v = v[1] if isinstance(v, tuple) and v[:1] == ("const",) else v
        if not (v is None or isinstance(v, int) and not isinstance(v, bool)):
            return None
        out.append(v)
    return out


def _pooled(i, ops, input_shape):
    """The op index of the C x 1 x 1 map that op ``i`` is (itself, or the map a flatten of it views), or None."""
    x = _shape_of(ops, i, input_shape)
    if x is not None and len(x) == 3 and x[1:] == (1, 1):
        return i
    if x is not None and len(x) == 1 and i >= 0 and len(ops[i].inputs) == 1 and getattr(L.REGISTRY[ops[i].type], "view", False):
        src = ops[i].inputs[0]
        if _shape_of(ops, src, input_shape) == (x[0], 1, 1):
            return src
    return None


def _channel_seq(name, node, value, ops, input_shape):
    """``y.view(N, 1, -1)`` / ``y.reshape(N, 1, C)`` of a pooled map y (N x C or N x C x 1 x 1): the
    C x 1 x 1 map's op index (its channels then read as a 1-channel sequence), else None."""
    if name not in ("view", "reshape") or not node.args or not isinstance(value(node.args[0]), int):
        return None
    i = _pooled(value(node.args[0]), ops, input_shape)
    dims = _dims_of(node, value)
    if i is None or dims is None or len(dims) != 3 or dims[0] not in (None, -1) or dims[1] != 1:
        return None
    return i if dims[2] in (-1, _shape_of(ops, i, input_shape)[0]) else None


def _seq_back(node, src, value, ops, input_shape):
    """The C x 1 x 1 map's op index for ``s.view(N, -1, 1, 1)`` (or ``(N, C, 1, 1)``) of ``src``, a
    sequence of the channels; None for any other call."""
    if node.op != "call_method" or node.target not in ("view", "reshape") or node.args[:1] != (src,):
        return None
    i = value(src)
    dims = _dims_of(node, value)
    c = _shape_of(ops, i, input_shape)[0]
    if dims is None or len(dims) != 4 or dims[0] not in (None, -1) or dims[1] not in (-1, c) or dims[2:] != [1, 1]:
        return None
    return i


def _broadcast_expand(node, value, ops, input_shape):
    """``g.expand_as(x)`` / ``g.expand(x.shape)`` of a C x 1 x 1 map g to C x H x W whose only
    readers multiply it with a tensor (the product broadcasts g the same): g's op index, else None."""
    g = value(node.args[0]) if node.args else None
    y = _shape(node)
    x = _shape_of(ops, g, input_shape) if isinstance(g, int) else None
    if x is None or y is None or len(x) != 3 or x[1:] != (1, 1) or y[0] != x[0] or not node.users:
        return None
    for u in node.users:
        if _fn_name(u.target) not in (_MUL, "imul", _MUL + "_") or len(u.args) != 2 or u.kwargs:
            return None
        other = u.args[1] if u.args[0] is node else u.args[0]
        if not isinstance(other, fx.Node) or _shape(other) != y:
            return None
    return g


def _param_view(name, node, value):
    """``p.view(shape)`` / ``p.reshape(shape)`` of a 1-D parameter p of the model to a shape whose
    dimensions are all 1 but one, p's length (a per-channel vector broadcast over the map): that
    parameter, as :class:`Param` with the view's shape (a leading batch 1 left out) and ``stored``
    its own; else None."""
    if name not in ("view", "reshape") or node.kwargs or len(node.args) < 2:
        return None
    p = value(node.args[0])
    if not isinstance(p, L.base.Param) or p.stored is not None or len(p.shape) != 1:
        return None
    dims = node.args[1] if len(node.args) == 2 and isinstance(node.args[1], (tuple, list)) else node.args[1:]
    dims = [value(d)[1] if isinstance(value(d), tuple) and value(d)[:1] == ("const",) else value(d) for d in dims]
    if not all(isinstance(d, int) and not isinstance(d, bool) for d in dims) or sum(d == -1 for d in dims) > 1:
        return None
    n = p.shape[0]
    dims = [n if d == -1 else d for d in dims]
    if sorted(dims)[:-1] != [1] * (len(dims) - 1) or max(dims) != n:
        return None
    if len(dims) == 4 and dims[0] == 1:
        dims = dims[1:]
    return L.base.Param(p.name, tuple(dims), p.value, stored=tuple(p.shape))


def _dim(tensor, i, ops, input_shape):
    """x.shape[i] / x.size(i) of a feature map: the batch (no number), the channels (a constant),
    or a size that depends on the input (kept as what it is)."""
    x = _shape_of(ops, tensor, input_shape) if isinstance(tensor, int) else None
    if x is None:
        return ("const", None)
    i = i % (len(x) + 1)
    if i == 0:
        return ("const", None)
    if i == 1:
        return ("const", x[0])
    return _Shape(tensor, i)


def _channel_slice(index, x):
    """(start, stop) of ``x[:, a:b]`` / ``x[:, a:b, :, :]`` on a C x H x W map, or None."""
    if x is None or len(x) != 3 or not isinstance(index, tuple) or not 2 <= len(index) <= 4:
        return None
    whole = slice(None, None, None)
    if index[0] != whole or not isinstance(index[1], slice) or any(i != whole and i is not Ellipsis for i in index[2:]):
        return None
    sl = index[1]
    if sl.step not in (None, 1) or not all(v is None or isinstance(v, int) and not isinstance(v, bool) for v in (sl.start, sl.stop)):
        return None
    start, stop, _ = sl.indices(x[0])
    return (start, stop) if stop > start else None

# torch.nn.functional calls that are a torch module's forward on that module's own tensors (a
# subclass traced through: timm's BatchNormAct2d calls F.batch_norm on its weight and running
# statistics): said as that module, its class name and constructor keywords, and named after the
# module that holds the tensors, so the layer's state_dict keys are the original's. name ->
# (the tensor arguments, in the module's attribute names)
FUNCTIONAL = {
    "batch_norm": ("running_mean", "running_var", "weight", "bias"),
    **{conv: ("weight", "bias") for conv in _CONVS},
    _LINEAR: ("weight", "bias"),
    "layer_norm": ("weight", "bias"),
    "group_norm": ("weight", "bias"),
}


def _module_of_functional(name, kw, x, tensors):
    """(torch.nn class name, its constructor keywords) that computes ``F.<name>(**kw)`` on an input
    of shape ``x`` (C, H, W or F) with ``tensors`` (attribute -> shape or None); or a reason."""
    w = tensors.get("weight")
    if name == "batch_norm":
        if kw.get("training") or tensors.get("running_mean") is None:
            return "(batch statistics: training mode or no running statistics)"
        return ({3: "BatchNorm2d", 4: "BatchNorm3d"}.get(len(x), "BatchNorm1d"),
                {"num_features": x[0], "eps": kw.get("eps", 1e-5), "momentum": kw.get("momentum", 0.1),
                 "affine": w is not None, "track_running_stats": True})
    if name in _CONVS:
        return _CONVS[name], {"in_channels": x[0], "out_channels": w[0], "kernel_size": tuple(w[2:]),
                          "stride": kw.get("stride", 1), "padding": kw.get("padding", 0), "dilation": kw.get("dilation", 1),
                          "groups": kw.get("groups", 1), "bias": tensors.get("bias") is not None, "padding_mode": "zeros"}
    if name == _LINEAR:
        return "Linear", {"in_features": w[1], "out_features": w[0], "bias": tensors.get("bias") is not None}
    if name == "layer_norm":
        return "LayerNorm", {"normalized_shape": tuple(kw["normalized_shape"]), "eps": kw.get("eps", 1e-5),
                             "elementwise_affine": w is not None, "bias": tensors.get("bias") is not None}
    if name == "group_norm":
        return "GroupNorm", {"num_groups": kw["num_groups"], "num_channels": x[0], "eps": kw.get("eps", 1e-5),
                             "affine": w is not None}
    return "(no module)"


def _arg_type(a):
    """The type of a traced call's argument as torch's schemas name it (to pick one schema)."""
    if isinstance(a, fx.Node):
        return torch.Tensor
    if a is None:
        return type(None)
    if isinstance(a, (tuple, list)) and all(isinstance(x, int) and not isinstance(x, bool) for x in a):
        import typing

        return typing.List[int]
    return type(a)


def _as_module(node, name, value, model, ops, input_shape):
    """A FUNCTIONAL call as (module class name, kw, the owning module's path, the input op), or a
    one-line reason why it is not one module's forward."""
    try:
        norm = normalize_function(node.target, tuple(node.args), dict(node.kwargs), normalize_to_only_use_kwargs=True)
    except Exception:  # noqa: BLE001
        norm = None
    if norm is None:  # several schemas match (torch.conv2d's padding: ints or a string): by the arguments' types
        try:
            norm = normalize_function(node.target, tuple(node.args), dict(node.kwargs), arg_types=tuple(map(_arg_type, node.args)),
                                      kwarg_types={k: _arg_type(v) for k, v in node.kwargs.items()},
                                      normalize_to_only_use_kwargs=True)
        except Exception:  # noqa: BLE001
            norm = None
    if norm is None:
        return "(arguments not read)"
    kw = dict(norm.kwargs)
    src = value(kw.pop("input", None))
    if not isinstance(src, int):
        return "(on a value archcalc could not follow)"
    tensors, owner = {}, set()
    for attr in FUNCTIONAL[name]:
        a = kw.pop(attr, None)
        if a is None:
            tensors[attr] = None
            continue
        v = value(a)
        path = v.name if isinstance(v, L.base.Param) else v[1] if isinstance(v, tuple) and v[:1] == ("param",) else None
        if path is None:
            return f"(its {attr} is computed, not a tensor of the model: a new layer type, or a module that holds it)"
        mod_path, _, leaf = path.rpartition(".")
        if leaf != attr:
            return f"(its {attr} is {path}: only a module's own {attr} is read)"
        owner.add(mod_path)
        t = model.get_parameter(path) if isinstance(v, L.base.Param) else model.get_buffer(path)
        tensors[attr] = tuple(t.shape)
    for k, v in list(kw.items()):
        kw[k] = value(v)[1] if isinstance(value(v), tuple) and value(v)[:1] == ("const",) else value(v)
    if len(owner) != 1:
        return "(on the tensors of no module, or of several)"
    owner = owner.pop()
    mod = model.get_submodule(owner)
    held = {n for n, _ in mod.named_parameters(recurse=False)} | {n for n, _ in mod.named_buffers(recurse=False) if n != "num_batches_tracked"}
    if held != {a for a, t in tensors.items() if t is not None}:
        return f"(on some of {owner}'s tensors, which hold {', '.join(sorted(held))})"
    said = _module_of_functional(name, kw, _shape_of(ops, src, input_shape), tensors)
    if isinstance(said, str):
        return said
    return said[0], said[1], owner, src


def _fold(node, value):
    """("const", v) for a Python operator or builtin on constants only (``x.ndim == 4``), else None."""
    if node.op != "call_function" or not node.all_input_nodes:
        return None
    vals = [value(a) for a in node.all_input_nodes]
    if getattr(node.target, "__module__", None) not in ("_operator", "operator", "builtins", "math"):
        return None
    sizes = [v for v in vals if isinstance(v, _Shape) and isinstance(v.index, int) or isinstance(v, tuple) and v[:1] == ("size",)]
    if sizes and all(isinstance(v, tuple) and v[:1] in (("const",), ("size",)) or v in sizes for v in vals):
        return ("size", None)  # arithmetic on a size that depends on the input (H // 2): what reads it is reported
    if not all(isinstance(v, tuple) and v[:1] == ("const",) for v in vals):
        return None

    def sub(a):
        if isinstance(a, fx.Node):
            return value(a)[1]
        if isinstance(a, (list, tuple)):
            return type(a)(sub(x) for x in a)
        return a

    try:
        return ("const", node.target(*sub(tuple(node.args)), **{k: sub(v) for k, v in node.kwargs.items()}))
    except Exception:  # noqa: BLE001
        return None


def _beside_owners(ops, owners, model, bad):
    """A module traced through whose own tensors became one layer named after it (timm's
    BatchNormAct2d as ``bn1``): its child modules' layers (``bn1.act``) move beside it
    (``bn1_act``), as the builder keeps a layer's module free of other layers. A child with
    parameters cannot move (its state_dict keys would change): reported."""
    if not owners:
        return
    names = {op.name for op in ops}
    for op in ops:
        for owner in owners:
            if op.name.startswith(owner + ".") and op.name != owner:
                rest = op.name[len(owner) + 1:]
                child = rest.split(".")[0]
                if any(n.startswith(child + ".") for n, _ in model.get_submodule(owner).named_parameters()):
                    bad.add(f"module {type(model.get_submodule(owner)).__name__} (its own tensors one layer, "
                            f"and a child {child} with parameters)", owner)
                    break
                new = owner + "_" + rest.replace(".", "_")
                while new in names:
                    new += "_"
                names.add(new)
                op.name = new
                break


def _shape_of(ops, i, input_shape):
    if i == -1:
        return tuple(input_shape)
    return ops[i].shape if i is not None and i < len(ops) else None


def _label(node, gm):
    if node.op == "call_module":
        return f"module {type(gm.get_submodule(node.target)).__name__}"
    return _fn_label(node)


def _first(table, op_name, kw, xs, y, channels_last=False, channel_seq=False):
    for ltype in table.get(op_name, ()):
        if channels_last and not ltype.channels_last:
            continue
        # on the channels as a sequence, (N, 1, C): a type that reads it, or one that works per position
        # over the last dimension (a channels-last call: (N, 1, C) is a C x 1 x 1 map's channels-last form)
        if channel_seq and not (getattr(ltype, "channel_seq", False) or ltype.channels_last):
            continue
        try:
            result = ltype.from_torch(op_name, kw, xs, y)
        except (KeyError, TypeError, ValueError, IndexError, ZeroDivisionError):
            result = None
        if result is not None:
            return result, ltype
    return None, None


__all__ = ["trace", "operator"]
