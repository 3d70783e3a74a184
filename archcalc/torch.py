"""Build a real PyTorch model from a spec, and export it as source or ONNX.

This module (and :mod:`archcalc.verify`) are the only places that import torch; the CLI imports
them lazily, inside the commands that need them.

>>> from archcalc.torch import build
>>> model = build("vgg16", device="meta")       # a zoo name, a path or a Network; meta: no allocation
>>> sum(p.numel() for p in model.parameters())  # the spec's params
138357544

The model is an :class:`ArchNet`: one submodule per spec node, named after the node (dots and other
characters that are not allowed in attribute names become ``_``; :attr:`ArchNet.node_names` maps
attribute names back to node names). Its ``forward`` runs the nodes in the spec's topological
order; auxiliary heads run only in training mode, when the forward returns ``(main, aux1, ...)``
like torchvision's GoogLeNet / Inception v3; in eval mode it returns the main output only.

How each layer type is built comes from the layer registry (``REGISTRY[type].torch(...)``), plain
data such as ``[("ZeroPad2d", {...}), ("Conv2d", {...})]``; torch.nn classes are looked up by name
and the project-specific ones (:class:`Concat`, :class:`Add`, :class:`Mean`, :class:`NegInfPad2d`,
:class:`PadChannels`) are defined below.
"""

from __future__ import annotations

import keyword
import re
import warnings

with warnings.catch_warnings():  # torch warns at import when numpy is absent; irrelevant here
    warnings.simplefilter("ignore")
    import torch
    import torch.nn.functional as F
    from torch import nn

from . import layers as L
from .errors import SpecError, UsageError

# --------------------------------------------------------------------------- project-specific modules


class Concat(nn.Module):
    """torch.cat of the inputs, in order, along channels."""

    def forward(self, *xs):
        return torch.cat(xs, dim=1)


class Add(nn.Module):
    """Elementwise sum of the inputs (a residual join)."""

    def forward(self, *xs):
        out = xs[0]
        for x in xs[1:]:
            out = out + x
        return out


class Mean(nn.Module):
    """Elementwise mean of the inputs (FractalNet's join)."""

    def forward(self, *xs):
        out = xs[0]
        for x in xs[1:]:
            out = out + x
        return out / len(xs)


class NegInfPad2d(nn.Module):
    """Pad with -inf (before a max-pool); padding is (left, right, top, bottom)."""

    def __init__(self, padding):
        super().__init__()
        self.padding = tuple(padding)

    def forward(self, x):
        return F.pad(x, self.padding, value=float("-inf"))

    def extra_repr(self):
        return f"padding={self.padding}"


class PadChannels(nn.Module):
    """Take every stride-th row and column, then zero-pad channels (`before` ahead, `after` behind)."""

    def __init__(self, stride, before, after):
        super().__init__()
        self.stride, self.before, self.after = stride, before, after

    def forward(self, x):
        s = self.stride
        if s != 1:
            x = x[:, :, ::s, ::s]
        return F.pad(x, (0, 0, 0, 0, self.before, self.after))

    def extra_repr(self):
        return f"stride={self.stride}, before={self.before}, after={self.after}"


class ChannelBias(nn.Module):
    """A learnable per-channel shift (batch norm with a shift but no scale, as Keras' scale=False)."""

    def __init__(self, num_features):
        super().__init__()
        self.bias = nn.Parameter(torch.zeros(num_features))

    def forward(self, x):
        return x + self.bias.view(1, -1, *([1] * (x.dim() - 2)))


class Scale(nn.Module):
    """Multiply by a constant (Inception-ResNet's residual scaling)."""

    def __init__(self, factor):
        super().__init__()
        self.factor = factor

    def forward(self, x):
        return x * self.factor

    def extra_repr(self):
        return f"factor={self.factor}"


class Crop2d(nn.Module):
    """Keep the first size[0] rows and size[1] columns."""

    def __init__(self, size):
        super().__init__()
        self.size = tuple(size)

    def forward(self, x):
        return x[:, :, : self.size[0], : self.size[1]]

    def extra_repr(self):
        return f"size={self.size}"


CUSTOM = {"ChannelBias": ChannelBias, "Scale": Scale, "Crop2d": Crop2d, "Concat": Concat, "Add": Add, "Mean": Mean, "NegInfPad2d": NegInfPad2d, "PadChannels": PadChannels}
INPLACE_TYPES = ("ReLU", "ReLU6", "LeakyReLU", "ELU", "SiLU", "Hardswish")
ALIAS_TYPES = ("identity", "flatten", "dropout")  # outputs that share their input's storage (eval)


def torch_class(name: str):
    if name in CUSTOM:
        return CUSTOM[name]
    cls = getattr(nn, name, None)
    if not (isinstance(cls, type) and issubclass(cls, nn.Module)):
        raise SpecError(f"the layer registry names an unknown torch module '{name}'")
    return cls


# --------------------------------------------------------------------------- the plan (plain data)


def _attr_names(names):
    """Node names to unique Python identifiers that do not shadow nn.Module attributes."""
    out, used = [], set()
    for name in names:
        base = re.sub(r"[^0-9A-Za-z_]", "_", name)
        if not base or base[0].isdigit():
            base = "n_" + base
        if keyword.iskeyword(base) or hasattr(nn.Module, base) or base in ("x", "self", "torch", "nn", "F"):
            base += "_"
        attr, k = base, 2
        while attr in used:
            attr, k = f"{base}_{k}", k + 1
        used.add(attr)
        out.append(attr)
    return out


def _out_shapes(net):
    shapes = {-1: tuple(net.input)}
    for i, node in enumerate(net.nodes):
        ltype = L.REGISTRY[node.type]
        try:
            shapes[i] = tuple(ltype.out(node.args, [shapes[j] for j in node.inputs]))
        except L.ShapeError as err:
            raise SpecError(err.fact, node.where, err.hint) from None
    return shapes


def outputs(net):
    """Indices of the nodes the model returns: the main output, then each aux head's last node."""
    readers = {i: 0 for i in range(len(net.nodes))}
    for node in net.nodes:
        for j in node.inputs:
            if j >= 0:
                readers[j] += 1
    aux = [i for i, n in enumerate(net.nodes) if n.aux and readers[i] == 0 and i != net.output]
    return [net.output] + aux


def inplace_safe(net) -> list:
    """Per node: may an in-place activation overwrite its input? (Only when no other node, no output
    and no earlier backward need reads that storage, and it is not the network input.)"""
    readers: dict = {}
    for i, node in enumerate(net.nodes):
        for j in node.inputs:
            readers.setdefault(j, []).append(i)
    outs = set(outputs(net))
    root = {-1: -1}
    safe = [False] * len(net.nodes)
    for i, node in enumerate(net.nodes):
        ltype = L.REGISTRY[node.type]
        j = node.inputs[0]
        if node.type in ALIAS_TYPES:
            root[i] = root[j]
            continue
        if not (node.args.get("inplace") and isinstance(ltype, L._Activation) and ltype.can_inplace):
            root[i] = i
            continue
        s = root[j]
        ok = s != -1
        chain = [t for t in range(s, i) if t >= 0 and root.get(t) == s] if ok else []
        for t in chain:
            if t in outs:
                ok = False
            for k in readers.get(t, []):
                if k != i and not (k in chain):
                    ok = False
            if "output" in L.REGISTRY[net.nodes[t].type].saves(net.nodes[t].args, True):
                ok = False
        safe[i] = ok
        root[i] = s if ok else i
    return safe


def plan(net):
    """Plain data describing the model: per node (name, attr, [(torch class name, kwargs)], inputs,
    aux). Raises :class:`UsageError` on a spec with unresolved symbols."""
    if net.symbolic:
        raise UsageError(
            f"{net.name}: cannot build a torch model with unresolved symbols ({', '.join(net.free_symbols()) or 'input'})",
            hint="give them values with --set NAME=VALUE or --input CxHxW",
        )
    shapes = _out_shapes(net)
    safe = inplace_safe(net)
    attrs = _attr_names([n.name for n in net.nodes])
    out = []
    for i, node in enumerate(net.nodes):
        ltype = L.REGISTRY[node.type]
        ops = [(cls, dict(kw)) for cls, kw in ltype.torch(node.args, [shapes[j] for j in node.inputs], shapes[i])]
        ops = [_fix(cls, kw, safe[i], shapes[node.inputs[0]]) for cls, kw in ops]
        ops = [op for pair in ops for op in pair]
        out.append({"name": node.name, "attr": attrs[i], "type": node.type, "ops": ops,
                    "inputs": tuple(node.inputs), "aux": node.aux})
    return out


def _fix(cls, kw, inplace_ok, x):
    """Adjust one registry entry to what torch accepts; returns a list of entries."""
    if cls in INPLACE_TYPES and kw.get("inplace") and not inplace_ok:
        kw["inplace"] = False
    if cls in ("MaxPool2d", "AvgPool2d"):
        # torch allows implicit padding of at most half the kernel (not dilated); beyond that pad explicitly
        k = kw["kernel_size"]
        p = kw["padding"]
        if any(pp * 2 > kk for pp, kk in zip(p, k)) and not (
            cls == "AvgPool2d" and not kw["count_include_pad"]
        ):
            pad = "NegInfPad2d" if cls == "MaxPool2d" else "ZeroPad2d"
            out = [(pad, {"padding": (p[1], p[1], p[0], p[0])}), (cls, {**kw, "padding": (0, 0)})]
            if kw.get("ceil_mode"):
                # PyTorch's ceil rule drops a last window that starts in the trailing padding; with
                # the padding made explicit torch cannot see that, so crop to what the rule gives
                d = kw.get("dilation", (1, 1))
                s = kw["stride"]
                size = []
                for n_in, kk, ss, pp, dd in zip(x[1:], k, s, p, d):
                    n = -(-(n_in + 2 * pp - dd * (kk - 1) - 1) // ss) + 1
                    if (n - 1) * ss >= n_in + pp:
                        n -= 1
                    size.append(n)
                out.append(("Crop2d", {"size": tuple(size)}))
            return out
    return [(cls, kw)]


# --------------------------------------------------------------------------- the model


class ArchNet(nn.Module):
    """A spec as a torch module: one submodule per node, run in the spec's order."""

    def __init__(self, net, steps=None):
        super().__init__()
        steps = plan(net) if steps is None else steps
        self.spec_name = net.name
        self.input_shape = tuple(net.input)
        self.node_names = {}  # attribute -> node name
        self.attrs = []  # per node index
        self.types = []
        for st in steps:
            mods = [torch_class(cls)(**kw) for cls, kw in st["ops"]]
            mod = mods[0] if len(mods) == 1 else nn.Sequential(*mods)
            self.add_module(st["attr"], mod)
            self.node_names[st["attr"]] = st["name"]
            self.attrs.append(st["attr"])
            self.types.append(st["type"])
        self.inputs = [st["inputs"] for st in steps]
        self.aux = [st["aux"] for st in steps]
        self.outputs = outputs(net)
        self._free = {False: self._frees(False), True: self._frees(True)}

    def _frees(self, with_aux):
        """Per node, the values that can be dropped after it runs (their last reader)."""
        last: dict = {}
        for i, ins in enumerate(self.inputs):
            if self.aux[i] and not with_aux:
                continue
            for j in ins:
                last[j] = i
        keep = set(self.outputs)
        free: dict = {}
        for j, i in last.items():
            if j not in keep:
                free.setdefault(i, []).append(j)
        return free

    def node_modules(self):
        """(node name, module) per node, in order."""
        return [(self.node_names[a], getattr(self, a)) for a in self.attrs]

    def run(self, x, aux=None):
        """Run the nodes (aux heads too when ``aux``, default: in training mode); returns the list of
        outputs: main first, then the aux heads that ran."""
        aux = self.training if aux is None else aux
        free = self._free[bool(aux)]
        values = {-1: x}
        for i, attr in enumerate(self.attrs):
            if self.aux[i] and not aux:
                continue
            values[i] = getattr(self, attr)(*[values[j] for j in self.inputs[i]])
            for j in free.get(i, ()):
                values.pop(j, None)
        return [values[i] for i in self.outputs if i in values]

    def forward(self, x):
        outs = self.run(x)
        return outs[0] if len(outs) == 1 else tuple(outs)


def load_network(ref, values=None, input_override=None):
    from .spec import Network

    if isinstance(ref, Network):
        return ref
    from . import load

    return load(str(ref), values, input_override)


def build(network, device=None, dtype=None) -> ArchNet:
    """A real PyTorch model for a Network (or a zoo name / spec path). ``device='meta'`` builds
    without allocating."""
    net = load_network(network)
    steps = plan(net)
    if device is None:
        model = ArchNet(net, steps)
    else:
        with torch.device(device):
            model = ArchNet(net, steps)
    if dtype is not None:
        model = model.to(dtype)
    return model


# --------------------------------------------------------------------------- export


def _py(v):
    if isinstance(v, float):
        return repr(v)
    if isinstance(v, (tuple, list)):
        inner = ", ".join(_py(x) for x in v)
        return f"({inner},)" if len(v) == 1 else f"({inner})"
    return repr(v)


def _class_name(name):
    parts = re.split(r"[^0-9A-Za-z]+", name)
    text = "".join(p[:1].upper() + p[1:] for p in parts if p) or "Net"
    return text if not text[0].isdigit() else "Net" + text


def export_source(network) -> str:
    """A standalone PyTorch source file (imports only torch) defining the spec as one nn.Module."""
    import inspect

    net = load_network(network)
    steps = plan(net)
    outs = outputs(net)
    readers: dict = {}
    for i, st in enumerate(steps):
        for j in st["inputs"]:
            readers.setdefault(j, []).append(i)
    used = sorted({cls for st in steps for cls, _ in st["ops"] if cls in CUSTOM})
    cname = _class_name(net.name)
    lines = [
        f'"""{net.name}' + (f": {net.title}" if net.title else "") + ".",
        "",
        "Generated by archcalc (archcalc export --to torch) from " + str(net.file) + ".",
        f"Input {'x'.join(str(d) for d in net.input)} per image."
        + (" Aux heads run only in training mode." if len(outs) > 1 else ""),
        '"""',
        "",
        "import torch",
        "import torch.nn.functional as F",
        "from torch import nn",
        "",
    ]
    for cls in used:
        lines += ["", inspect.getsource(CUSTOM[cls]).rstrip(), ""]
    lines += ["", f"class {cname}(nn.Module):", "    def __init__(self):", "        super().__init__()"]
    for st in steps:
        mods = [f"{'' if cls in CUSTOM else 'nn.'}{cls}({', '.join(f'{k}={_py(v)}' for k, v in kw.items())})"
                for cls, kw in st["ops"]]
        text = mods[0] if len(mods) == 1 else "nn.Sequential(" + ", ".join(mods) + ")"
        lines.append(f"        self.{st['attr']} = {text}")
    lines += ["", "    def forward(self, x):"]
    var = {-1: "x"}
    input_busy = max(readers.get(-1, [0]))  # `x` holds the input until its last reader ran
    in_aux = False
    for i, st in enumerate(steps):
        # a value read only by the very next node of the main path flows through `x`
        simple = (not st["aux"] and readers.get(i) == [i + 1] and i not in outs
                  and not steps[i + 1]["aux"] and i >= input_busy)
        var[i] = "x" if simple else st["attr"]
        args = ", ".join(var[j] for j in st["inputs"])
        if st["aux"] and not in_aux:
            lines.append("        if self.training:  # auxiliary head")
        in_aux = st["aux"]
        indent = "            " if st["aux"] else "        "
        lines.append(f"{indent}{var[i]} = self.{st['attr']}({args})")
    main = var[outs[0]]
    if len(outs) > 1:
        aux_vars = ", ".join(var[i] for i in outs[1:])
        lines += ["        if self.training:", f"            return {main}, {aux_vars}"]
    lines += [f"        return {main}", ""]
    lines += [
        "",
        'if __name__ == "__main__":',
        f"    model = {cname}().eval()",
        '    print(sum(p.numel() for p in model.parameters()), "parameters")',
        f"    print(model(torch.zeros(1, {', '.join(str(d) for d in net.input)})).shape)",
        "",
    ]
    return "\n".join(lines)


def onnx_available() -> bool:
    import importlib.util

    return importlib.util.find_spec("onnx") is not None


ONNX_SINGLE_FILE_LIMIT = 1 << 30  # protobuf caps a file at 2 GiB: larger weights go to PATH.data


def export_onnx(network, path) -> list:
    """Write an ONNX file through torch.onnx.export; returns the files written (the weights go to
    a PATH.data file beside it when they exceed 1 GiB)."""
    if not onnx_available():
        raise UsageError(
            "--to onnx needs the 'onnx' package, which is not installed",
            hint="install it with: pip install onnx onnxscript",
        )
    net = load_network(network)
    model = build(net).eval()
    x = torch.zeros(1, *net.input)
    big = sum(p.numel() * p.element_size() for p in model.parameters()) > ONNX_SINGLE_FILE_LIMIT
    try:
        torch.onnx.export(
            model, (x,), str(path), input_names=["input"], output_names=["output"],
            external_data=big, verbose=False,
        )
    except Exception as err:  # noqa: BLE001 - surface the exporter's reason as one line
        raise UsageError(f"ONNX export failed: {type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}",
                         hint="pip install onnx onnxscript (the exporter needs both)") from None
    from pathlib import Path

    return [str(p) for p in (Path(path), Path(f"{path}.data")) if p.exists()]
