"""The importer's intermediate form: the traced model as a list of registry layers in run order.

Both front ends (:mod:`.fx` for PyTorch, :mod:`.onnx` for ONNX files) produce a :class:`Graph`;
:mod:`.emit` writes it as a readable spec. Nothing here imports torch or onnx.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from .. import layers as L
from ..errors import ArchcalcError, short


def shown_path(path, limit: int = 100) -> str:
    """A file name for a one-line message: control characters escaped, a long one cut at the
    front so the file's own name stays ('…/models/net.onnx')."""
    text = short(str(path), 10 * limit)[1:-1]  # repr without the quotes: no control character passes
    return text if len(text) <= limit else "…" + text[-(limit - 1):]


class ImportFailed(ArchcalcError):
    """A model could not be imported (a target that does not load, an untraceable model, an op
    with no layer type). Exit code 2."""


@dataclass
class Op:
    """One layer: its full dotted name (the module path, as in the state_dict), its registry type
    and spec keys, its data inputs (op indices; -1 is the network input; a join has several) and
    layers it reads for their size only (``refs``: key -> op index)."""

    name: str
    type: str
    args: dict
    inputs: list
    refs: dict = field(default_factory=dict)
    aux: bool = False
    torch: str = ""  # the torch module class, function or ONNX op it came from
    shape: tuple = None  # output shape without the batch dimension
    origin: str = ""  # what it was imported from, for error messages (ONNX: "node #3 '/conv/Conv' (Conv)")

    @property
    def parts(self):
        return self.name.split(".")[:-1]


@dataclass
class Graph:
    ops: list
    input: tuple  # C, H, W (or F)
    outputs: list  # op indices: the main output first, then aux heads
    classes: dict = field(default_factory=dict)  # module path -> class name (block names)
    children: dict = field(default_factory=dict)  # module path -> names of its child modules
    source: str = ""
    name: str = "imported"
    file: str = ""  # the file or target it was imported from, for error messages
    notes: list = field(default_factory=list)  # what the user should know about this import (one line each)
    several: bool = False  # the outputs are all the model's outputs (eval mode), not a main one and aux heads


class Unsupported:
    """Collects every construct without a layer type, to report them all at once."""

    def __init__(self):
        self.seen: Counter = Counter()

    def add(self, what: str, where: str):
        self.seen[(what, where or "(top level)")] += 1

    def raise_if_any(self, model: str):
        if not self.seen:
            return
        items = sorted(self.seen.items(), key=lambda kv: (kv[0][0], kv[0][1]))
        shown = []
        for (what, where), n in items[:12]:
            what, sep, need = what.partition(": needs ")  # what to do goes last
            shown.append(f"{what} at {short(where, 60)[1:-1]} (x{n}){sep}{need}")
        more = f" and {len(items) - 12} more" if len(items) > 12 else ""
        raise ImportFailed(
            f"{shown_path(model)}: {len(items)} construct{'s' if len(items) != 1 else ''} with no archcalc layer type: "
            + "; ".join(shown) + more,
            hint="archcalc counts nothing it does not know; a new layer type is one class in archcalc/layers/ "
            "(docs/design.md, 'Adding a layer type')",
        )


def candidates() -> dict:
    """torch name -> the registry types that declare it (``LayerType.torch_ops``), in registry order."""
    out: dict = {}
    for name in sorted(L.REGISTRY):
        t = L.REGISTRY[name]
        for op in t.torch_ops:
            out.setdefault(op, []).append(t)
    return out


def defaults_dropped(ltype, args: dict) -> dict:
    """The keys that differ from the type's declared defaults, in declaration order."""
    out = {}
    for key in ltype.keys:
        if key.name not in args:
            continue
        v = args[key.name]
        d = key.default
        if d is not L.REQUIRED and (v == d or (isinstance(v, (tuple, list)) and len(set(v)) == 1 and v[0] == d)):
            if type(v) is type(d) or not isinstance(v, bool) and not isinstance(d, bool):
                continue
        out[key.name] = v
    return out


def simplify(g: Graph) -> Graph:
    """Joins of one input and nn.Identity modules are their input; ``torch.cat(xs + [y])`` where ``torch.cat(xs)`` was
    already made is the concat of that and ``y`` (DenseNet's growing concatenations); ops that
    reach no output are dropped."""
    alias: dict = {}
    ops = g.ops

    def real(i):
        while i in alias:
            i = alias[i]
        return i

    cats: list = []
    for i, op in enumerate(ops):
        op.inputs = [real(j) for j in op.inputs]
        op.refs = {k: real(v) for k, v in op.refs.items()}
        if L.REGISTRY[op.type].joins and len(op.inputs) == 1:
            alias[i] = op.inputs[0]
            continue
        if op.torch == "Identity" and len(op.inputs) == 1 and op.inputs[0] != -1 and i not in g.outputs:
            alias[i] = op.inputs[0]  # an nn.Identity module (timm's drop and act when off): no layer
            continue
        if op.torch == "cat":
            for j, prev in reversed(cats):
                n = len(ops[j].inputs)
                if 2 <= n < len(op.inputs) and op.inputs[:n] == ops[j].inputs:
                    op.inputs = [j] + op.inputs[n:]
                    break
            cats.append((i, op))
    outputs = [real(i) for i in g.outputs]
    readers: dict = {}
    for k, op in enumerate(ops):
        if k not in alias:
            for j in list(op.inputs) + list(op.refs.values()):
                readers.setdefault(j, []).append(k)
    # keep what reaches an output; aux: reaches an aux output but not the main one
    reach_main, reach_any = set(), set()
    for i in range(len(ops) - 1, -1, -1):
        if i in alias:
            continue
        if i == outputs[0] or g.several and i in outputs or any(c in reach_main for c in readers.get(i, ())):
            reach_main.add(i)
        if i in outputs or any(c in reach_any for c in readers.get(i, ())):
            reach_any.add(i)
    keep = [i for i in range(len(ops)) if i in reach_any and i not in alias]
    new = {old: k for k, old in enumerate(keep)}
    new[-1] = -1
    out = []
    for old in keep:
        op = ops[old]
        op.inputs = [new[j] for j in op.inputs]
        op.refs = {k: new[v] for k, v in op.refs.items()}
        op.aux = old not in reach_main
        out.append(op)
    g.ops = out
    g.outputs = [new[i] for i in outputs]
    return g


def need(package: str, what: str):
    """Import ``package`` or say how to install it (exit 2)."""
    import importlib

    try:
        return importlib.import_module(package)
    except ImportError:
        extra = "pip install torch (a CPU-only build is enough)" if package == "torch" else f"pip install {package}"
        from ..errors import UsageError

        raise UsageError(f"{what} needs the '{package}' package, which is not installed", hint=f"install it with: {extra}") from None


SYMBOLS = {2: ("L",), 3: ("H", "W"), 4: ("D", "H", "W")}


def symbol_names(shape) -> tuple:
    """The spec's symbols for the spatial sizes of an imported input (C, L / C, H, W / C, D, H, W),
    or () for another input (a vector)."""
    return SYMBOLS.get(len(tuple(shape)), ())
