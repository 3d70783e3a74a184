"""ONNX front end: the graph is read with the ``onnx`` package only (protobuf; no torch).

Each ONNX node is first said as the torch module it stands for (``Conv`` is a ``Conv2d`` with
these constructor values), and the layer registry maps that to a type exactly as for a traced
PyTorch model (``LayerType.torch_ops`` / ``from_torch``): this module knows ONNX and torch, not
archcalc's layer types. Names come from the weights (``layer1.0.conv1.weight`` names the conv
``layer1.0.conv1``, as in the state_dict of the model it was exported from) and, for layers
without weights, from the exporter's scope names (``/layer1/layer1.0/relu/Relu`` or the
``pkg.torch.onnx.name_scopes`` metadata). Shapes come from ONNX shape inference; only the data
inputs of each node are followed from the outputs back, so shape arithmetic (Shape, Gather,
Concat of sizes feeding a Reshape) is never mistaken for layers.
"""

from __future__ import annotations

import ast
import re

from .. import layers as L
from ..errors import short
from .ir import Graph, ImportFailed, Op, Unsupported, candidates, defaults_dropped, simplify


def _onnx():
    from .ir import need

    return need("onnx", "importing an ONNX file")


def _pairs(v, n=2):
    v = list(v) if v is not None else []
    return tuple(v) if v else None


def _pads(pads):
    """ONNX pads [top, left, bottom, right] as torch padding: (h, w), or (top, bottom, left, right)."""
    if not pads:
        return (0, 0)
    t, l, b, r = pads
    return (t, l) if (t == b and l == r) else (t, b, l, r)


def _num(x, digits=7):
    """A float32 attribute as the decimal it was written as (1e-05, not 9.99999974738e-06)."""
    return float(f"{x:.{digits}g}")


class _Reader:
    def __init__(self, model, label):
        onnx = _onnx()
        self.onnx = onnx
        self.label = label
        try:
            model = onnx.shape_inference.infer_shapes(model)
        except Exception as err:  # noqa: BLE001 - a malformed file: one line
            raise ImportFailed(f"{label}: ONNX shape inference failed: {type(err).__name__}: {short(str(err), 120)[1:-1]}") from None
        self.graph = model.graph
        self.inits = {t.name: t for t in self.graph.initializer}
        self.shapes = {}
        for vi in list(self.graph.value_info) + list(self.graph.input) + list(self.graph.output):
            dims = vi.type.tensor_type.shape.dim
            self.shapes[vi.name] = tuple(d.dim_value if d.HasField("dim_value") else None for d in dims)
        for name, t in self.inits.items():
            self.shapes[name] = tuple(t.dims)
        self.consts = {}
        self.producer = {}
        for node in self.graph.node:
            for out in node.output:
                self.producer[out] = node
            if node.op_type == "Constant":
                import numpy as np

                for a in node.attribute:
                    if a.name == "value":
                        self.consts[node.output[0]] = onnx.numpy_helper.to_array(a.t)
                    elif a.name in ("value_int", "value_ints", "value_float", "value_floats"):
                        self.consts[node.output[0]] = np.array(onnx.helper.get_attribute_value(a))

    def attrs(self, node):
        return {a.name: self.onnx.helper.get_attribute_value(a) for a in node.attribute}

    def value(self, name):
        if name in self.inits:
            return self.onnx.numpy_helper.to_array(self.inits[name])
        return self.consts.get(name)

    def is_data(self, name):
        return bool(name) and name not in self.inits and name not in self.consts


def _scope_path(node):
    """The module path of a node without weights, from the exporter's scope names."""
    for prop in node.metadata_props:
        if prop.key == "pkg.torch.onnx.name_scopes":
            try:
                scopes = ast.literal_eval(prop.value)
            except (ValueError, SyntaxError):
                break
            return [s for s in scopes[1:-1] if isinstance(s, str) and s]
    comps = [c for c in node.name.split("/") if c][:-1] if node.name.startswith("/") else []
    out, full, rel = [], "", ""
    for c in comps:
        if rel and c.startswith(rel + "."):
            full = full[: len(full) - len(rel)] + c
        elif full and not c.startswith(full + "."):
            full = f"{full}.{c}"
        else:
            full = c
        rel = c
        out.append(full)
    return out


def translate(node, r):
    """The torch module (class name, constructor values) an ONNX node stands for, its data inputs
    and the extra tensors it reads for their size; or a list of such modules in a row; or None."""
    a = r.attrs(node)
    t = node.op_type
    data = [x for x in node.input[:1] if r.is_data(x)]
    if t in ("Conv", "ConvTranspose"):
        w = r.shapes.get(node.input[1])
        if a.get("auto_pad", b"NOTSET") not in (b"NOTSET", "NOTSET") or w is None or len(w) != 4:
            return None
        g = a.get("group", 1)
        k = tuple(a.get("kernel_shape", w[2:]))
        kw = {"kernel_size": k, "stride": tuple(a.get("strides", (1, 1))), "dilation": tuple(a.get("dilations", (1, 1))),
              "groups": g, "bias": len(node.input) > 2 and bool(node.input[2]), "padding_mode": "zeros"}
        if t == "Conv":
            return [("Conv2d", {**kw, "in_channels": w[1] * g, "out_channels": w[0], "padding": _pads(a.get("pads"))})], data
        pads = _pads(a.get("pads"))
        if len(pads) == 4:
            return None
        return [("ConvTranspose2d", {**kw, "in_channels": w[0], "out_channels": w[1] * g, "padding": pads,
                                     "output_padding": tuple(a.get("output_padding", (0, 0)))})], data
    if t == "Gemm":
        w = r.shapes.get(node.input[1])
        if a.get("transA", 0) or a.get("alpha", 1.0) != 1.0 or a.get("beta", 1.0) != 1.0 or w is None or node.input[1] not in r.inits:
            return None
        out = w[0] if a.get("transB", 0) else w[1]
        return [("Linear", {"in_features": w[1] if a.get("transB", 0) else w[0], "out_features": out,
                            "bias": len(node.input) > 2 and bool(node.input[2])})], data
    if t == "BatchNormalization":
        c = r.shapes.get(node.input[1], (None,))[0]
        return [("BatchNorm2d", {"num_features": c, "eps": _num(a.get("epsilon", 1e-5)),
                                 "momentum": round(1 - _num(a.get("momentum", 0.9)), 6), "affine": True,
                                 "track_running_stats": True})], data
    simple = {"Relu": ("ReLU", {"inplace": True}), "Sigmoid": ("Sigmoid", {}), "Tanh": ("Tanh", {}),
              "HardSwish": ("Hardswish", {"inplace": True}), "Identity": ("Identity", {}),
              "GlobalAveragePool": ("AdaptiveAvgPool2d", {"output_size": 1})}
    if t in simple:
        return [simple[t]], data
    if t == "HardSigmoid":
        if abs(a.get("alpha", 0.2) - 1 / 6) > 1e-6 or abs(a.get("beta", 0.5) - 0.5) > 1e-6:
            return None
        return [("Hardsigmoid", {"inplace": True})], data
    if t == "LeakyRelu":
        return [("LeakyReLU", {"negative_slope": _num(a.get("alpha", 0.01)), "inplace": True})], data
    if t == "Elu":
        return [("ELU", {"alpha": _num(a.get("alpha", 1.0)), "inplace": True})], data
    if t == "Gelu":
        return [("GELU", {"approximate": a.get("approximate", b"none").decode() if isinstance(a.get("approximate"), bytes) else a.get("approximate", "none")})], data
    if t == "Clip":
        lo, hi = (r.value(x) if x else None for x in (list(node.input) + ["", ""])[1:3])
        if lo is not None and hi is not None and float(lo) == 0.0 and float(hi) == 6.0:
            return [("ReLU6", {"inplace": True})], data
        return None
    if t == "Softmax":
        return [("Softmax", {"dim": a.get("axis", -1)})], data
    if t == "Dropout":
        ratio = r.value(node.input[1]) if len(node.input) > 1 and node.input[1] else None
        return [("Dropout", {"p": _num(float(ratio)) if ratio is not None else 0.5})], data
    if t in ("MaxPool", "AveragePool"):
        if a.get("auto_pad", b"NOTSET") not in (b"NOTSET", "NOTSET") or len(node.output) > 1 and node.output[1]:
            return None
        k = tuple(a["kernel_shape"])
        kw = {"kernel_size": k, "stride": tuple(a.get("strides", (1, 1))), "padding": _pads(a.get("pads")),
              "ceil_mode": bool(a.get("ceil_mode", 0))}
        if t == "MaxPool":
            return [("MaxPool2d", {**kw, "dilation": tuple(a.get("dilations", (1, 1))), "return_indices": False})], data
        return [("AvgPool2d", {**kw, "count_include_pad": bool(a.get("count_include_pad", 0)), "divisor_override": None})], data
    if t == "ReduceMean":
        axes = a.get("axes")
        if axes is None and len(node.input) > 1:
            v = r.value(node.input[1])
            axes = None if v is None else [int(x) for x in v.reshape(-1)]
        rank = len(r.shapes.get(node.input[0], ()))
        if rank != 4 or axes is None or sorted(x % 4 for x in axes) != [2, 3]:
            return None
        ops = [("AdaptiveAvgPool2d", {"output_size": 1})]
        return (ops if a.get("keepdims", 1) else ops + [("Flatten", {})]), data
    if t in ("Flatten", "Reshape"):
        if t == "Flatten" and a.get("axis", 1) != 1:
            return None
        return [("Flatten", {})], data
    if t in ("Add", "Sum", "Mul"):
        ins = [x for x in node.input if x]
        tensors = [x for x in ins if r.is_data(x)]
        if len(ins) == 2 and len(tensors) == 2:
            return [("Add" if t != "Mul" else "Mul", {})], tensors
        if t == "Mul" and len(ins) == 2 and len(tensors) == 1:
            c = r.value(next(x for x in ins if x not in tensors))
            if c is not None and c.size == 1:
                return [("Scale", {"factor": _num(float(c.reshape(-1)[0]))})], tensors
        return None
    if t == "Concat":
        rank = len(r.shapes.get(node.output[0], ()))
        if a.get("axis") not in (1, 1 - rank) or rank != 4:
            return None
        return [("Concat", {"dim": 1})], [x for x in node.input if r.is_data(x)]
    if t in ("Resize", "Upsample"):
        mode = a.get("mode", b"nearest")  # ONNX string attributes are bytes
        ctm = a.get("coordinate_transformation_mode", b"half_pixel")
        y = r.shapes.get(node.output[0])
        if mode not in (b"nearest", b"linear") or y is None or None in y:
            return None
        return [("Upsample", {"size": tuple(y[2:]), "mode": "bilinear" if mode == b"linear" else "nearest",
                              "align_corners": ctm == b"align_corners"})], data
    return None


def read(path: str, input_shape=None) -> Graph:
    onnx = _onnx()
    label = str(path)
    try:
        model = onnx.load(str(path))
    except FileNotFoundError:
        raise ImportFailed(f"{short(label)}: no such file") from None
    except Exception as err:  # noqa: BLE001 - not an ONNX file: one line
        raise ImportFailed(f"{short(label)}: not a readable ONNX file: {type(err).__name__}: {short(str(err), 120)[1:-1]}") from None
    r = _Reader(model, label)
    g = r.graph
    inputs = [i for i in g.input if i.name not in r.inits]
    if len(inputs) != 1:
        raise ImportFailed(f"{short(label)}: the graph has {len(inputs)} inputs; archcalc imports networks of one input")
    shape = r.shapes[inputs[0].name]
    if len(shape) not in (2, 4) or None in shape[1:]:
        raise ImportFailed(f"{short(label)}: input shape {shape} is not N x C x H x W with fixed C, H and W",
                           hint="export with a fixed input size")
    if input_shape is not None and tuple(input_shape) != tuple(shape[1:]):
        raise ImportFailed(f"{short(label)}: the graph's input is {'x'.join(map(str, shape[1:]))}; --input cannot change it")
    # the nodes that compute data, found from the outputs back through data inputs
    needed, stack, order = set(), [o.name for o in g.output], {}
    for k, node in enumerate(g.node):
        order[id(node)] = k
    trans = {}
    while stack:
        name = stack.pop()
        node = r.producer.get(name)
        if node is None or id(node) in needed:
            continue
        needed.add(id(node))
        if node.op_type in ("Identity",) and node.input and not r.is_data(node.input[0]):
            continue
        res = translate(node, r)
        trans[id(node)] = res
        follow = res[1] if res else [x for x in node.input if r.is_data(x)]
        stack.extend(follow)
    table = candidates()
    bad = Unsupported()
    ops: list = []
    env = {inputs[0].name: -1}
    param_paths = {n.rsplit(".", 1)[0] for n in r.inits if "." in n}
    scopes_with_children = {p.rsplit(".", k)[0] for p in param_paths for k in range(1, p.count(".") + 1)}
    used: dict = {}

    def unique(scope, base):
        taken = used.setdefault(scope, set())
        name, k = base, 2
        while name in taken:
            name, k = f"{base}_{k}", k + 1
        taken.add(name)
        return f"{scope}.{name}" if scope else name

    for node in g.node:
        if id(node) not in needed:
            continue
        if node.op_type == "Identity" and node.input and node.input[0] in env:
            env[node.output[0]] = env[node.input[0]]
            continue
        res = trans.get(id(node))
        scopes = _scope_path(node)
        where = scopes[-1] if scopes else ""
        if res is None:
            bad.add(f"ONNX {node.op_type}", where)
            continue
        steps, data = res
        if any(x not in env for x in data):
            continue  # downstream of a node already reported
        inputs_ = [env[x] for x in data]
        xs = [ops[i].shape if i >= 0 else tuple(shape[1:]) for i in inputs_]
        y = r.shapes.get(node.output[0])
        y = tuple(y[1:]) if y else None
        weight = node.input[1] if len(node.input) > 1 and node.input[1] in r.inits else None
        last = None
        for k, (cls, kw) in enumerate(steps):
            kw = dict(kw)
            if cls == "BatchNorm2d" and len(xs[0]) == 1:
                cls = "BatchNorm1d"
            result, ltype = None, None
            for t in table.get(cls, ()):
                try:
                    result = t.from_torch(cls, kw, xs, y if k == len(steps) - 1 else None)
                except (KeyError, TypeError, ValueError, IndexError):
                    result = None
                if result is not None:
                    ltype = t
                    break
            if result is None or not isinstance(result, dict):
                bad.add(f"ONNX {node.op_type} (as torch {cls})", where)
                last = None
                break
            if weight and "." in weight and len(steps) == 1:
                name = weight.rsplit(".", 1)[0]
                used.setdefault(name.rsplit(".", 1)[0] if "." in name else "", set()).add(name.rsplit(".", 1)[-1])
            elif where and where not in scopes_with_children and len(steps) == 1:
                parent, _, leaf = where.rpartition(".")
                name = unique(parent, leaf)
            else:
                name = unique(where, ltype.name)
            out_shape = y if k == len(steps) - 1 else _intermediate(ltype, result, xs)
            ops.append(Op(name, ltype.name, defaults_dropped(ltype, result), list(inputs_), {}, torch=cls, shape=out_shape))
            inputs_ = [len(ops) - 1]
            xs = [out_shape]
            last = len(ops) - 1
        if last is not None:
            env[node.output[0]] = last
    bad.raise_if_any(label)
    outs = [env[o.name] for o in g.output if o.name in env]
    if not outs:
        raise ImportFailed(f"{short(label)}: no output of the graph could be followed")
    graph = Graph(ops, tuple(shape[1:]), outs)
    return simplify(graph)


def _intermediate(ltype, args, xs):
    """The output shape of a layer inside a multi-layer translation (global average: C x 1 x 1)."""
    full = {k.name: k.default for k in ltype.keys}
    full.update(args)
    for k in ltype.keys:
        if k.kind == "pair" and not isinstance(full[k.name], (tuple, list)) and full[k.name] is not None:
            full[k.name] = (full[k.name], full[k.name])
    return tuple(ltype.out(full, xs))


__all__ = ["read", "translate", "re"]
