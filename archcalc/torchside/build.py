"""Build a real PyTorch model from a spec, and export it as source or ONNX.

This module (and :mod:`archcalc.torchside.verify`) are the only places that import torch; the CLI imports
them lazily, inside the commands that need them.

>>> from archcalc.torchside.build import build
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
and the project-specific ones (:data:`CUSTOM`: joins, padding, crops, channel slices and shuffles,
layer scale and LayerNorm2d, stochastic depth, resizing to another layer's size, and the modules
of the receptive-field probe) live with their layer types, in archcalc/layers/<family>_torch.py
(each type's ``torch_module``); this module holds only the generic machinery. A layer with a ``ref`` key (``like: NAME``) gets
that layer's output as an extra forward argument. This module names no layer type: in-place
safety, views and frozen (``trainable: false``) layers follow each type's declarations.
"""

from __future__ import annotations

import functools
import keyword
import re
import warnings

with warnings.catch_warnings():  # torch warns at import when numpy is absent; irrelevant here
    warnings.simplefilter("ignore")
    import torch
    from torch import nn

from .. import layers as L
from ..errors import SpecError, UsageError

# archcalc's own modules (joins, padding, crops, channel slices and shuffles, the probe's geometry)
# live with their layer types (archcalc/layers/<family>_torch.py): class name -> class
CUSTOM = L.torch_classes()


def torch_class(name: str):
    if name in CUSTOM:
        return CUSTOM[name]
    cls = getattr(nn, name, None)
    if cls is None:  # a type registered after this module was imported
        CUSTOM.update(L.torch_classes())
        cls = CUSTOM.get(name)
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


_ARCHNET_ATTRS = {"spec_name", "input_shape", "node_names", "attrs", "types", "inputs", "aux", "outputs", "run",
                  "node_modules"}


def module_paths(names):
    """Node names to module paths: the spec's dotted scopes become nested modules, so a layer
    named ``layer1.0.conv1`` holds ``layer1.0.conv1.weight`` in the state_dict, as the model it
    was imported from. A part that would shadow an attribute of nn.Module (or of ArchNet, at
    the top) gets a trailing ``_``; a duplicate path a counter. A node whose name is also the
    scope of other nodes (a join and its list branches, ``add1`` and ``add1.b1.conv1``) sits
    beside that scope (``add1_``), so each node's module holds only its own parameters."""
    scopes = {".".join(n.split(".")[:k]) for n in names for k in range(1, n.count(".") + 1)}
    names = [n + "_" if n in scopes else n for n in names]
    out, used = [], set()
    for name in names:
        parts = []
        for k, part in enumerate(name.split(".")):
            p = part or "_"
            if p.startswith("_"):
                p = "n" + p
            if hasattr(nn.Module, p) or (k == 0 and p in _ARCHNET_ATTRS):
                p += "_"
            parts.append(p)
        path = base = ".".join(parts)
        k = 2
        while path in used:
            path, k = f"{base}_{k}", k + 1
        used.add(path)
        out.append(path)
    return out


def _place(root, path, mod):
    """Put ``mod`` at the dotted ``path`` under ``root``, making plain containers for the scopes on
    the way; a container made earlier for deeper layers hands its children (and bare parameters)
    to ``mod``."""
    *scopes, last = path.split(".")
    for name in scopes:
        if name not in root._modules:
            root.add_module(name, nn.Module())
        root = root._modules[name]
    old = root._modules.get(last)
    if old is not None and type(old) is nn.Module:
        for k, v in old._modules.items():
            mod.add_module(k, v)
        for k, v in old._parameters.items():
            mod.register_parameter(k, v)
    root.add_module(last, mod)


def _scope_of(root, path):
    """(the module of the scope of the dotted ``path``, made where missing; the last part)."""
    *scopes, last = path.split(".")
    for name in scopes:
        if name not in root._modules:
            root.add_module(name, nn.Module())
        root = root._modules[name]
    return root, last


def bare_parameter(spec):
    """A bare parameter as the registry declares it (``LayerType.parameter``): ``{"shape", "init"}``."""
    return nn.Parameter(torch.full(tuple(spec["shape"]), float(spec["init"])))


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
    """Indices of the nodes the model returns: the main output, then each aux head's last node
    (the rule lives in archcalc.analysis.liveness, which the memory estimates and this builder share)."""
    from ..analysis.liveness import outputs as rule

    return rule(net)


def inplace_safe(net, shapes=None) -> list:
    """Per node: may an in-place layer overwrite its input? (Only when no other node, no output
    and no earlier backward need reads that storage, and it is not the network input.) One rule,
    one linear pass: archcalc.analysis.liveness.builder_inplace, whose memory model must match what this
    builder runs."""
    from ..analysis.liveness import builder_inplace

    return builder_inplace(net, _out_shapes(net) if shapes is None else shapes)


def plan(net, probe=None):
    """Plain data describing the model: per node (name, attr, [(torch class name, kwargs)], inputs,
    aux, trainable). ``probe`` (None, or the collapse flag): the ops of the receptive-field probe's
    linearised copy instead. Raises :class:`UsageError` on a spec with unresolved symbols."""
    if net.symbolic:
        raise UsageError(
            f"{net.name}: cannot build a torch model with unresolved symbols ({', '.join(net.free_symbols()) or 'input'})",
            hint="give them values with --set NAME=VALUE or --input CxHxW",
        )
    shapes = _out_shapes(net)
    safe = inplace_safe(net, shapes)
    attrs = module_paths([n.name for n in net.nodes])
    variables = _attr_names([n.name for n in net.nodes])
    taken = set(attrs) | {".".join(a.split(".")[:k]) for a in attrs for k in range(1, a.count(".") + 1)}
    out = []
    for i, node in enumerate(net.nodes):
        ltype = L.REGISTRY[node.type]
        args = node.args
        if ltype.can_inplace and args.get("inplace") and not safe[i]:
            args = {**args, "inplace": False}  # its input is read elsewhere: in place would be wrong
        xs = [shapes[j] for j in node.inputs]
        ops = ltype.torch(args, xs, shapes[i]) if probe is None else ltype.probe(args, xs, shapes[i], probe)
        param = ltype.parameter(args, xs, shapes[i]) if probe is None else None
        attr = attrs[i]
        if param is not None:
            # the parameter takes the layer's path (its state_dict key); its modules sit beside it
            param = {**param, "path": attr}
            attr, k = attr + "_", 2
            while attr in taken:
                attr, k = f"{attrs[i]}_{k}", k + 1
            taken.add(attr)
        out.append({"name": node.name, "attr": attr, "var": variables[i], "type": node.type, "ops": [(cls, dict(kw)) for cls, kw in ops],
                    "inputs": tuple(node.inputs), "aux": node.aux, "trainable": getattr(node, "trainable", True),
                    "param": param})
    return out


# --------------------------------------------------------------------------- the model


class ArchNet(nn.Module):
    """A spec as a torch module: one submodule per node (nested by the node's dotted name), run in
    the spec's order. ``getattr(model, 'layer1.0.conv1')`` reaches a nested node's module."""

    def __init__(self, net, steps=None):
        super().__init__()
        steps = plan(net) if steps is None else steps
        self.spec_name = net.name
        self.input_shape = tuple(net.input)
        self.node_names = {}  # attribute -> node name
        self.attrs = []  # per node index
        self.types = []
        self._params = {}  # node index -> (module, name) of its bare parameter (LayerType.parameter)
        for i, st in enumerate(steps):
            mods = [torch_class(cls)(**kw) for cls, kw in st["ops"]]
            mod = mods[0] if len(mods) == 1 else nn.Sequential(*mods)
            if not st.get("trainable", True):
                mod.requires_grad_(False)  # `trainable: false`: frozen parameters
            _place(self, st["attr"], mod)
            if st.get("param"):
                owner, name = _scope_of(self, st["param"]["path"])
                owner.register_parameter(name, bare_parameter(st["param"]))
                if not st.get("trainable", True):
                    owner._parameters[name].requires_grad_(False)
                self._params[i] = (owner, name)
            self.node_names[st["attr"]] = st["name"]
            self.attrs.append(st["attr"])
            self.types.append(st["type"])
        self._mods = [self.get_submodule(st["attr"]) for st in steps]  # a plain list: run() without lookups
        self.inputs = [st["inputs"] for st in steps]
        self.aux = [st["aux"] for st in steps]
        self.outputs = outputs(net)
        from ..analysis.liveness import _frees

        # per node, the values dropped after it runs (their last reader): None, one or a list
        self._free = {False: _frees(net.nodes, self.outputs, False), True: _frees(net.nodes, self.outputs, True)}

    def __getattr__(self, name):
        if "." in name:
            return self.get_submodule(name)
        return super().__getattr__(name)

    def node_modules(self):
        """(node name, module) per node, in order."""
        return [(self.node_names[a], self.get_submodule(a)) for a in self.attrs]

    def node_parameters(self, i):
        """The parameters of node ``i``: its modules' and its bare parameter (if any)."""
        out = list(self.get_submodule(self.attrs[i]).parameters())
        if i in self._params:
            owner, name = self._params[i]
            out.append(getattr(owner, name))
        return out

    def run(self, x, aux=None):
        """Run the nodes (aux heads too when ``aux``, default: in training mode); returns the list of
        outputs: main first, then the aux heads that ran."""
        aux = self.training if aux is None else aux
        free = self._free[bool(aux)]
        values = {-1: x}
        params = self._params
        for i, mod in enumerate(self._mods):
            if self.aux[i] and not aux:
                continue
            if i in params:  # a bare parameter: the module's last input
                owner, name = params[i]
                values[i] = mod(*[values[j] for j in self.inputs[i]], getattr(owner, name))
            else:
                values[i] = mod(*[values[j] for j in self.inputs[i]])
            f = free[i]
            for j in () if f is None else (f,) if f.__class__ is int else f:
                values.pop(j, None)
        return [values[i] for i in self.outputs if i in values]

    def forward(self, x):
        outs = self.run(x)
        return outs[0] if len(outs) == 1 else tuple(outs)


def load_network(ref, values=None, input_override=None):
    from ..spec.load import Network

    if isinstance(ref, Network):
        return ref
    from ..spec.refs import load_spec

    return load_spec(str(ref), values, input_override)


def build(network, device=None, dtype=None, probe=None) -> ArchNet:
    """A real PyTorch model for a Network (or a zoo name / spec path). ``device='meta'`` builds
    without allocating. ``probe``: the receptive-field probe's linearised copy (see :func:`plan`)."""
    net = load_network(network)
    steps = plan(net, probe)
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
    """A Python literal for a registry keyword value. Only plain data can reach generated source:
    anything else is a bug, not something to paste in."""
    if isinstance(v, bool) or v is None:
        return repr(v)
    if isinstance(v, int):
        return repr(int(v))
    if isinstance(v, float):
        return repr(v) if v == v and v not in (float("inf"), float("-inf")) else f"float({str(v)!r})"
    if isinstance(v, str):
        return repr(str(v))
    if isinstance(v, (tuple, list)):
        inner = ", ".join(_py(x) for x in v)
        return f"({inner},)" if len(v) == 1 else f"({inner})"
    raise TypeError(f"cannot write {type(v).__name__} into generated source")


def _docstring(text):
    """A string literal for ``text``: triple-quoted when that parses back to exactly ``text`` as one
    constant (readable), else ``repr`` (always a single literal)."""
    import ast

    body = text + "\n"
    candidate = '"""' + body + '"""'
    if text.isprintable() or all(line.isprintable() for line in text.split("\n")):
        try:
            tree = ast.parse(candidate)
        except SyntaxError:
            tree = None
        if (tree is not None and len(tree.body) == 1 and isinstance(tree.body[0], ast.Expr)
                and isinstance(tree.body[0].value, ast.Constant) and tree.body[0].value.value == body
                and "\\" not in text):
            return candidate
    return repr(body)


def _class_name(name):
    parts = re.split(r"[^0-9A-Za-z]+", name)
    text = "".join(p[:1].upper() + p[1:] for p in parts if p) or "Net"
    return text if not text[0].isdigit() else "Net" + text


@functools.lru_cache(maxsize=None)
def _class_source(cls) -> str:
    """The source of one of archcalc's module classes, as the exported file carries it (read once
    per process: inspect re-reads and re-scans this file on every call)."""
    import inspect

    return inspect.getsource(cls).rstrip()


def export_source(network) -> str:
    """A standalone PyTorch source file (imports only torch) defining the spec as one nn.Module."""
    net = load_network(network)
    steps = plan(net)
    outs = outputs(net)
    readers: dict = {}
    for i, st in enumerate(steps):
        for j in st["inputs"]:
            readers.setdefault(j, []).append(i)
    used = sorted({cls for st in steps for cls, _ in st["ops"] if cls in CUSTOM})
    cname = _class_name(net.name)
    # spec text (name, title, file) reaches the file only inside one string literal, written by
    # repr(): whatever it holds, it cannot close the literal or run
    doc = "\n".join([
        net.name + (f": {net.title}" if net.title else "") + ".",
        "",
        "Generated by archcalc (archcalc export --to torch) from " + str(net.file) + ".",
        f"Input {'x'.join(str(d) for d in net.input)} per image."
        + (" Aux heads run only in training mode." if len(outs) > 1 else ""),
    ])
    lines = [
        _docstring(doc),
        "",
        "import torch",
        "import torch.nn.functional as F",
        "from torch import nn",
        "",
    ]
    for cls in used:
        lines += ["", _class_source(CUSTOM[cls]), ""]
    lines += ["", f"class {cname}(nn.Module):", "    def __init__(self):", "        super().__init__()"]
    scopes = {".".join(st["attr"].split(".")[:k]) for st in steps for k in range(1, st["attr"].count(".") + 1)}
    flat = {st["attr"] for st in steps if st["attr"] == st["var"] and st["attr"] not in scopes}
    nested = len(flat) < len(steps)
    bare = [st for st in steps if st.get("param")]

    def module(st):  # how forward reaches a node's module: an attribute, or its dotted path
        return f"self.{st['attr']}" if st["attr"] in flat else f"self.get_submodule({_py(st['attr'])})"

    for st in steps:
        mods = [f"{'' if cls in CUSTOM else 'nn.'}{cls}({', '.join(f'{k}={_py(v)}' for k, v in kw.items())})"
                for cls, kw in st["ops"]]
        text = mods[0] if len(mods) == 1 else "nn.Sequential(" + ", ".join(mods) + ")"
        if not st["trainable"]:
            text += ".requires_grad_(False)"  # trainable: false
        if st["attr"] in flat:
            lines.append(f"        self.{st['attr']} = {text}")
        else:  # nested by the spec's dotted scopes, as the state_dict of the model it describes
            lines.append(f"        self._put({_py(st['attr'])}, {text})")
        if st.get("param"):  # a bare parameter on the scope's module, named after the layer
            p = st["param"]
            frozen = "" if st["trainable"] else ", requires_grad=False"
            lines.append(f"        self._put_parameter({_py(p['path'])}, "
                         f"nn.Parameter(torch.full({_py(tuple(p['shape']))}, {_py(float(p['init']))}){frozen}))")
    if nested or bare:
        lines += [
            "",
            "    def _scope(self, path):",
            '        """The module of a dotted path\'s scope (plain containers made on the way) and the last name."""',
            '        *scopes, last = path.split(".")',
            "        root = self",
            "        for name in scopes:",
            "            if name not in root._modules:",
            "                root.add_module(name, nn.Module())",
            "            root = root._modules[name]",
            "        return root, last",
        ]
    if nested:
        lines += [
            "",
            "    def _put(self, path, module):",
            '        """Place a module at a dotted path."""',
            "        root, last = self._scope(path)",
            "        old = root._modules.get(last)",
            "        if old is not None and type(old) is nn.Module:  # a container made for deeper layers first",
            "            for key, child in old._modules.items():",
            "                module.add_module(key, child)",
            "        root.add_module(last, module)",
        ]
    if bare:
        lines += [
            "",
            "    def _put_parameter(self, path, parameter):",
            '        """Register a bare parameter at a dotted path (on the module of its scope)."""',
            "        root, last = self._scope(path)",
            "        root.register_parameter(last, parameter)",
        ]
    lines += ["", "    def forward(self, x):"]
    var = {-1: "x"}
    input_busy = max(readers.get(-1, [0]))  # `x` holds the input until its last reader ran
    in_aux = False
    for i, st in enumerate(steps):
        # a value read only by the very next node of the main path flows through `x`
        simple = (not st["aux"] and readers.get(i) == [i + 1] and i not in outs
                  and not steps[i + 1]["aux"] and i >= input_busy)
        var[i] = "x" if simple else st["var"]
        args = ", ".join(var[j] for j in st["inputs"])
        if st.get("param"):  # the bare parameter: the module's last input
            args += f", self.get_parameter({_py(st['param']['path'])})"
        if st["aux"] and not in_aux:
            lines.append("        if self.training:  # auxiliary head")
        in_aux = st["aux"]
        indent = "            " if st["aux"] else "        "
        lines.append(f"{indent}{var[i]} = {module(st)}({args})")
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


def onnx_failure(err):
    """(message, hint) for an exception from torch.onnx.export: its first line, terminal escape
    sequences and control characters removed, at most 200 characters; the install hint only when a
    package is really missing."""
    import importlib.util

    text = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]|\x1b\][^\x07]*\x07", "", str(err))
    first = next((line.strip() for line in text.splitlines() if line.strip()), "")
    first = "".join(ch for ch in first if ch.isprintable())[:200]
    missing = [m for m in ("onnx", "onnxscript") if importlib.util.find_spec(m) is None]
    if isinstance(err, ImportError) or missing:
        hint = "pip install " + " ".join(missing or ["onnx", "onnxscript"]) + " (torch.onnx.export needs both)"
    else:
        hint = "the exporter could not convert this network; export --to torch writes PyTorch source instead"
    return f"ONNX export failed: {type(err).__name__}: {first}", hint


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
        raise UsageError(*onnx_failure(err)) from None
    from pathlib import Path

    return [str(p) for p in (Path(path), Path(f"{path}.data")) if p.exists()]
