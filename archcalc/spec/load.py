"""Spec loader: YAML text to a :class:`Network` (a list of nodes in topological order).

The loader's public names are importable from here; they are defined beside it: the data model in
:mod:`.network`, file reading in :mod:`.read`, the top-level fields in :mod:`.header`, budgets in
:mod:`.budgets`. This module expands the layers.

Expands reusable ``blocks`` (with arguments), ``repeat``, parallel branches joined by ``concat``
/ ``add`` (any join type of the registry), auxiliary heads (``aux``); evaluates size expressions
with :mod:`archcalc.expr`; validates every layer's keys against its registry declaration. Every
error is a :class:`SpecError` naming file, line, layer path and what was expected.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from .. import layers as L
from ..errors import SpecError, Where, did_you_mean, expected_one_of, short
from ..expr import ExprError, evaluate, is_symbolic, parse, symbol
from ..limits import MAX_BLOCK_DEPTH, MAX_DEPTH, MAX_NAME, MAX_NODES, MAX_SIZE, MAX_WORK
from .budgets import BUDGET_KEYS, _budget, _budget_source, parse_amount  # noqa: F401 - BUDGET_KEYS, parse_amount: public
from .header import _symbols, _text_field, _variants, family  # noqa: F401 - family: public
from .network import Network, Node, SymbolicRepeat  # noqa: F401 - Node: public
from .read import parse_doc, read_spec_file  # noqa: F401 - parse_doc: public
from .yamlio import LMap, load_text

TOP_KEYS = ("name", "title", "source", "notes", "input", "symbols", "blocks", "layers", "budget", "lint", "variants",
            "claims", "outputs")
BLOCK_KEYS = ("args", "layers", "scope", "doc")
CONTROL = ("repeat", "aux")



def _extra_outputs(raw, file, line, nodes, main) -> tuple:
    """``outputs: [NAME, ...]``: layers the model returns besides its last one (a detection
    backbone's feature maps), by full name; their layers count at inference like the main path's."""
    if raw is None:
        return ()
    where = Where(file=file, line=line)
    if not isinstance(raw, list) or not raw or not all(isinstance(n, str) for n in raw):
        raise SpecError("'outputs' is a list of layer names (the model's outputs besides its last layer)", where)
    index = {n.name: i for i, n in enumerate(nodes)}
    out = []
    for name in raw:
        i = index.get(name)
        if i is None:
            raise SpecError(f"'outputs' names {short(name)}, which is no layer", where, did_you_mean(name, list(index)) or None)
        if nodes[i].aux:
            raise SpecError(f"'outputs' names {short(name)}, a layer of an aux head (aux heads are outputs in training already)", where)
        if i != main and i not in out:
            out.append(i)
    return tuple(out)

@dataclass
class _Raw:
    """A block argument that is not a number: a branch or a list of layers, with the caller's env."""

    value: Any
    env: dict
    line: int


class _Ctx:
    def __init__(self, file, blocks, values, rank=2):
        self.file = file
        self.rank = rank  # spatial axes of the input (1, 2 or 3): how per-axis keys are read
        self.blocks = blocks
        self.nodes: list[Node] = []
        self.index: dict[str, int] = {}  # name -> node index
        self.named: dict[str, tuple] = {}  # a block call's full name -> (its output's node index, its line)
        self.calls: list[str] = []  # blocks being expanded, outermost first
        self.counters: dict = {}
        self.values = values
        self.frozen = 0  # > 0 inside an item marked `trainable: false`
        self.work = 0  # expansion steps so far (items visited, repeat rounds, branches)
        self.args_cache: dict = {}  # _args_key -> the layer's keys
        self.values_cache: dict = {}  # (argument text, the arguments it uses) -> its value
        self.plans: dict = {}  # id of a list item -> (type, keys): a plain layer whose keys use no argument
        self.plan = None  # set by _expand_one when the item it expanded can be planned
        self.static: dict = {}  # (type, id of a YAML value) or an argument's text -> the block arguments it uses
        self.depth = 0  # items being expanded, outermost first
        self.call = None  # inside a block: the line of the outermost call (Node.call)

    def tick(self, line, ypath, steps=1):
        self.work += steps
        if self.work > MAX_WORK:
            self.fail(
                f"expanding the spec takes more than {MAX_WORK:,} steps (blocks, repeats and branches, empty ones included)",
                line, ypath, hint="a network this large is beyond archcalc's limits",
            )

    def where(self, line, path=None, layer=None):
        return Where(file=self.file, line=line, path=path, layer=layer)

    def fail(self, fact, line, path=None, layer=None, hint=None):
        raise SpecError(fact, self.where(line, path, layer), hint)

    def derive(self, scope, kind):
        key = (scope, kind)
        self.counters[key] = self.counters.get(key, 0) + 1
        return _join(scope, f"{kind}{self.counters[key]}")

    def add(self, name, type_, args, inputs, line, ypath, aux):
        nodes = self.nodes
        k = len(nodes)
        if name in self.index or name in self.named:
            first = nodes[self.index[name]].where.line if name in self.index else self.named[name][1]
            self.fail(f"layer name '{name}' is used twice", line, ypath, type_, hint=f"first at line {first}")
        if k >= MAX_NODES:
            self.fail(f"the network expands to more than {MAX_NODES} layers", line, ypath)
        if not aux:
            for j in inputs:
                if j >= 0 and nodes[j].aux:
                    self.fail(
                        f"layer '{name}' on the main path reads '{nodes[j].name}', which belongs to an aux head",
                        line, ypath, type_, hint="aux heads run only in training; branch from a main-path layer instead",
                    )
        self.index[name] = k
        nodes.append(Node(name, type_, args, tuple(inputs), Where(self.file, line, f"{ypath} '{name}'", type_), aux,
                          not self.frozen, self.call))
        return k


def _join(scope, name):
    return f"{scope}.{name}" if scope else name


# --------------------------------------------------------------------------- entry points


def load(path, values: dict | None = None, input_override=None, free=(), variant=None) -> Network:
    """Load a spec file. ``values`` sets symbols (``--set``); ``input_override`` replaces ``input``;
    ``free`` names symbols to keep symbolic even where the spec gives a default; ``variant`` picks a
    member of a family (``variants:``)."""
    return loads(read_spec_file(path), str(path), values, input_override, free, variant)


def loads(text: str, file: str = "<spec>", values: dict | None = None, input_override=None, free=(), variant=None,
          doc=None) -> Network:
    """A Network from spec text (or from ``doc``, the text already parsed by :func:`parse_doc`)."""
    doc = load_text(text, file) if doc is None else doc
    if not isinstance(doc, LMap):
        raise SpecError("a spec is a mapping with at least 'input' and 'layers'", Where(file=file, line=1))
    for key in doc:
        if key not in TOP_KEYS:
            raise SpecError(
                f"unknown top-level key {short(key)}", Where(file=file, line=doc.lines[key]), expected_one_of(key, TOP_KEYS)
            )
    for key in ("input", "layers"):
        if key not in doc:
            raise SpecError(f"missing top-level key '{key}'", Where(file=file, line=doc.line))

    # symbols: declared in `symbols` or used in `input`
    symbols = _symbols(doc, file)
    raw_input = doc["input"]
    in_line = doc.lines["input"]
    if not isinstance(raw_input, list) or len(raw_input) not in (1, 2, 3, 4):
        raise SpecError("'input' is [C, H, W] (or [C, L], [C, D, H, W]; [F] for a flat vector)", Where(file=file, line=in_line))
    members = _variants(doc.get("variants"), file, doc.lines.get("variants"), symbols)

    used = {k: v for k, v in symbols.items() if v is not None}
    member = None
    if variant is not None:
        member = members.get(variant)
        if member is None:
            raise SpecError(f"the spec declares no variant {short(variant)}", Where(file=file, line=doc.lines.get("variants", doc.line)),
                            expected_one_of(variant, members, "a variant") if members else "it has no 'variants:'")
        used.update(member["values"])
    for name, value in (values or {}).items():
        if name not in symbols:
            hint = did_you_mean(name, symbols) or (
                "this spec declares no symbols" if not symbols else "declared: " + ", ".join(sorted(symbols))
            )
            raise SpecError(f"--set {name}: the spec has no symbol '{name}'", Where(file=file), hint)
        used[name] = value
    for name in free:
        if name not in symbols:
            raise SpecError(
                f"--symbolic {name}: the spec has no symbol '{name}'",
                Where(file=file),
                did_you_mean(name, symbols) or ("declared: " + ", ".join(sorted(symbols)) if symbols else "this spec declares no symbols"),
            )
        if name in (values or {}):
            raise SpecError(f"symbol '{name}' is both given a value and kept symbolic", Where(file=file))
        used.pop(name, None)
    if input_override is not None:
        # --input gives the input's symbols their values, so what is printed is what was used
        if len(input_override) != len(raw_input):
            raise SpecError(
                f"--input has {len(input_override)} entries but the spec's input has {len(raw_input)}",
                Where(file=file, line=in_line, path="input"),
                "give CxHxW for a feature map (CxL, CxDxHxW for 1-D, 3-D), F for a flat vector",
            )
        for item, value in zip(raw_input, input_override):
            name = item.strip() if isinstance(item, str) else None
            if name in symbols:
                if name in (values or {}):
                    raise SpecError(f"symbol '{name}' is given by both --input and --set", Where(file=file, line=in_line, path="input"),
                                    "give it once")
                if name in free:
                    raise SpecError(f"symbol '{name}' is given a value by --input and kept symbolic", Where(file=file, line=in_line, path="input"))
                used[name] = value
    env = {k: used.get(k, None) for k in symbols}
    env = {k: (v if v is not None else symbol(k)) for k, v in env.items()}

    if input_override is not None:
        shape = tuple(input_override)
    else:
        shape = tuple(_size(item, env, Where(file=file, line=in_line, path="input")) for item in raw_input)

    meta = {}
    for key in ("name", "title", "source", "notes"):
        meta[key] = _text_field(doc.get(key, ""), key, file, doc.lines.get(key), key in ("source", "notes"))
    if member is not None:
        meta["name"] = variant
        meta["title"] = member["title"] or (f"{meta['title']} ({variant})" if meta["title"] else variant)
    if not meta["name"]:
        from pathlib import Path

        meta["name"] = Path(file).stem
    if len(meta["name"]) > MAX_NAME:
        raise SpecError(f"'name' is longer than {MAX_NAME} characters", Where(file=file, line=doc.lines.get("name")))
    budget = _budget(doc.get("budget"), file, doc.lines.get("budget"))

    blocks = _blocks(doc.get("blocks"), file, doc.lines.get("blocks"))
    # the rank (spatial axes) of the input decides how per-axis keys are read: an int or n values
    # (kernel, stride, ...), 2n for padding; a flat input reads them as 2-D (they are refused at shape)
    ctx = _Ctx(file, blocks, used, len(raw_input) - 1 if len(raw_input) > 1 else 2)
    layers = doc["layers"]
    if not isinstance(layers, list) or not layers:
        raise SpecError("'layers' is a non-empty list", Where(file=file, line=doc.lines["layers"]))
    out = _expand_list(ctx, layers, -1, env, "", "layers", False)
    extra = _extra_outputs(doc.get("outputs"), file, doc.lines.get("outputs"), ctx.nodes, out)
    claims = ()
    if "claims" in doc:
        from . import claims as C

        claims = C.read(doc["claims"], file, doc.lines["claims"], {n.name for n in ctx.nodes}, L.REGISTRY)

    return Network(
        name=meta["name"],
        title=meta["title"],
        source=meta["source"],
        notes=meta["notes"],
        file=file,
        input=shape,
        symbols=symbols,
        values=used,
        nodes=ctx.nodes,
        output=out,
        outputs=extra,
        budget=budget,
        lint=doc.get("lint"),
        lint_line=doc.lines.get("lint"),
        budget_source=_budget_source(doc.get("budget")),
        variants=list(members),
        claims=claims,
    )


# --------------------------------------------------------------------------- pieces


def _blocks(raw, file, line):
    if raw is None:
        return {}
    if not isinstance(raw, LMap):
        raise SpecError("'blocks' is a mapping of block name to definition", Where(file=file, line=line))
    out = {}
    for name, body in raw.items():
        bline = raw.lines[name]
        if not isinstance(name, str) or not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_\-]{0,99}", name):
            raise SpecError(f"block name {short(name)} is not a name (letters, digits, '_', '-')", Where(file=file, line=bline, path="blocks"))
        if L.lookup(name) or name in CONTROL:
            raise SpecError(f"block name {short(name)} is already a layer type", Where(file=file, line=bline, path=f"blocks.{name}"))
        if not isinstance(body, LMap) or "layers" not in body:
            raise SpecError(
                "a block is a mapping with 'layers' (and optional 'args', 'scope')",
                Where(file=file, line=bline, path=f"blocks.{name}"),
            )
        for key in body:
            if key not in BLOCK_KEYS:
                raise SpecError(
                    f"unknown block key {short(key)}",
                    Where(file=file, line=body.lines[key], path=f"blocks.{name}"),
                    expected_one_of(key, BLOCK_KEYS),
                )
        args = body.get("args") or []
        if isinstance(args, list) and not all(isinstance(a, str) for a in args):
            bad = next(a for a in args if not isinstance(a, str))
            raise SpecError(f"block argument {short(bad)} is not a name", Where(file=file, line=bline, path=f"blocks.{name}"),
                            "write args as a list of names or a mapping name: default")
        if isinstance(args, list):
            params = {a: L.REQUIRED for a in args}
        elif isinstance(args, dict):
            params = {a: (L.REQUIRED if d is None else d) for a, d in args.items()}
        else:
            raise SpecError("block 'args' is a list of names or a mapping name: default", Where(file=file, line=bline))
        for a in params:
            if not isinstance(a, str) or not re.fullmatch(r"[A-Za-z_][A-Za-z_0-9]*", a):
                raise SpecError(f"block argument {short(a)} is not an identifier", Where(file=file, line=bline, path=f"blocks.{name}"))
        scope = body.get("scope", True)
        if not isinstance(scope, bool):
            raise SpecError("block 'scope' is true or false", Where(file=file, line=body.lines["scope"], path=f"blocks.{name}"))
        out[name] = {"params": params, "layers": body["layers"], "scope": scope, "line": bline}
    return out


_WORD = re.compile(r"[A-Za-z_][A-Za-z_0-9]*")
_BRACES = re.compile(r"\{([^{}]*)\}")
_NAME = re.compile(r"[A-Za-z0-9_\-]+")
_BRANCH = re.compile(r"[A-Za-z0-9_\-]{1,100}")
_LAYER_PATH = re.compile(r"[A-Za-z_][A-Za-z0-9_\-]{0,99}(\.[A-Za-z0-9_\-]{1,100}){0,50}")


def _evaluate(value, env, where: Where, allow_words=False):
    """An int (or sympy expression) from a YAML scalar; strings are size expressions."""
    if isinstance(value, bool):
        raise SpecError(f"expected a size, got {short(value)}", where)
    if isinstance(value, int):
        return value
    if isinstance(value, float) and allow_words:  # a block argument such as p: 0.2
        return value
    if isinstance(value, str):
        text = value.strip()
        if allow_words and _WORD.fullmatch(text) and text not in env:
            return text
        try:
            tree = parse(text)
            result = evaluate(tree, env)
        except ExprError as err:
            hint = None
            if len(err.args) > 1 and err.args[1]:
                name = err.args[1]
                pool = [k for k in env if k.startswith("$") == name.startswith("$")]
                hint = did_you_mean(name, pool) or (
                    ("known: " + ", ".join(sorted(pool))) if pool else ("no block arguments here" if name.startswith("$") else "declare it under 'symbols'")
                )
            if allow_words and _LAYER_PATH.fullmatch(text):  # a layer's name for `from:` (enc1.relu2, up-4)
                return text
            raise SpecError(str(err.args[0]), where, hint) from None
        except TypeError:
            raise SpecError(f"{short(text)} mixes text and numbers", where) from None
        if isinstance(result, _Raw):
            raise SpecError(f"{short(text)} is a list of layers, not a size", where)
        return result
    if isinstance(value, _Raw):
        raise SpecError("expected a size, got a list of layers", where)
    if is_symbolic(value):  # a block argument that was already evaluated to a closed form
        return value
    raise SpecError(f"expected a size, got {short(value)}", where)


def _size(value, env, where, minimum=1):
    from fractions import Fraction

    v = _evaluate(value, env, where)
    if isinstance(v, str):
        raise SpecError(f"expected a size, got {short(v)}", where)
    if isinstance(v, bool):
        raise SpecError("expected a size, got a comparison (true/false)", where)
    if isinstance(v, (float, Fraction)):
        raise SpecError(f"expected an integer, got {v}", where, "round it with floor(), ceil() or round(), or use // for floor division")
    if isinstance(v, int):
        if v < minimum:
            raise SpecError(f"expected an integer >= {minimum}, got {short(v)}", where)
        if v > MAX_SIZE:
            raise SpecError(f"size {short(v)} is above archcalc's limit of {MAX_SIZE:,}", where)
    elif getattr(v, "is_number", False):
        raise SpecError(f"expected an integer, got {v}", where)
    return v


def _float(key, value, env, where, expect):
    """A float key (p, eps, ...): a finite number (or an expression), inside the key's range."""
    import math
    from fractions import Fraction

    if isinstance(value, str):
        value = _evaluate(value, env, where)
    if isinstance(value, Fraction):  # an exact rational (a decimal, or a block argument computed as one)
        value = float(value)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise SpecError(f"{expect}, got {short(value)}", where)
    if isinstance(value, int) and abs(value) > 2**53:
        raise SpecError(f"{key.name}: {short(value)} is too large", where)
    value = float(value) if isinstance(value, int) and not isinstance(value, bool) else value
    if not math.isfinite(value):
        raise SpecError(f"{key.name}: expected a finite number, got {value}", where)
    lo, hi, lo_open = key.lo, key.hi, getattr(key, "lo_open", False)
    if (lo is not None and (value < lo or (lo_open and value == lo))) or (hi is not None and value > hi):
        bounds = [f"{'>' if lo_open else '>='} {lo}"] if lo is not None else []
        bounds += [f"<= {hi}"] if hi is not None else []
        raise SpecError(f"{key.name}: expected a number {' and '.join(bounds)}, got {value}", where)
    return value


def _key_value(key: L.Key, value, env, where: Where, resolve=None, rank=2):
    kind = key.kind
    if kind == "ref":
        return _ref_value(key, value, env, where, resolve)
    ref = env.get(value.strip()) if isinstance(value, str) else None
    if isinstance(ref, _Raw):  # a block argument holding a list, e.g. kernel: [1, 7]
        value, env = ref.value, ref.env
    elif isinstance(value, str) and value.strip().startswith("$"):
        value = _evaluate(value, env, where, allow_words=True)
        if isinstance(value, str) and value.strip().startswith("$"):
            raise SpecError(f"unknown argument {short(value)}", where)
    expect = f"{key.name}: expected {L.kind_text(kind, rank)}"
    if kind == "bool":
        if not isinstance(value, bool):
            raise SpecError(f"{expect}, got {short(value)}", where)
        return value
    if kind == "float":
        return _float(key, value, env, where, expect)
    if kind == "scales":  # a number, or one per axis [h, w] (a tuple)
        if isinstance(value, list):
            if len(value) != rank:
                raise SpecError(f"{expect}, got a list of {len(value)}", where)
            return tuple(_float(key, v, env, where, expect) for v in value)
        return _float(key, value, env, where, expect)
    if kind in ("size", "count"):
        return _size(value, env, where, minimum=1 if kind == "size" else 0)
    if kind == "groups":
        if value == "depthwise":
            return value
        return _size(value, env, where)
    if kind == "pair":  # an int, or one per spatial axis
        if isinstance(value, list):
            if len(value) != rank:
                raise SpecError(f"{expect}, got a list of {len(value)}", where)
            return tuple(_size(v, env, where) for v in value)
        v = _size(value, env, where)
        return (v,) * rank
    if kind == "padding":  # an int, one per axis, or (before, after) per axis: 2n values
        if value == "same":
            return "same"
        if isinstance(value, list):
            if len(value) == rank:
                return tuple(p for v in value for p in (_size(v, env, where, 0),) * 2)
            if len(value) == 2 * rank:
                return tuple(_size(v, env, where, 0) for v in value)
            raise SpecError(f"{expect}, got a list of {len(value)}", where)
        v = _size(value, env, where, 0)
        return (v,) * (2 * rank)
    if kind == "choice":
        if isinstance(value, str) and value.strip().startswith("$"):
            value = _evaluate(value, env, where, allow_words=True)
        if not isinstance(value, str) or value not in key.choices:
            hint = did_you_mean(value, key.choices) if isinstance(value, str) else None
            raise SpecError(f"{key.name}: expected one of {', '.join(key.choices)}, got {short(value)}", where, hint)
        return value
    raise AssertionError(kind)  # pragma: no cover - registry declares only the kinds above


def _ref_value(key, value, env, where, resolve):
    """A key of kind 'ref': the name of an earlier layer (or 'input'), resolved by ``resolve`` to a
    node index (-1 for the input)."""
    if isinstance(value, str) and value.strip().startswith("$"):
        value = env.get(value.strip(), value)
    if not isinstance(value, str) or not value.strip():
        raise SpecError(f"{key.name}: expected the name of an earlier layer (or 'input'), got {short(value)}", where)
    if resolve is None:  # pragma: no cover - every caller that allows refs passes a resolver
        raise SpecError(f"{key.name}: a layer reference is not allowed here", where)
    return resolve(value.strip(), key.name)


def _layer_args(ltype: L.LayerType, raw, env, where: Where, resolve=None, rank=2) -> dict:
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise SpecError(
            f"the keys of {ltype.name} are a mapping, got {short(raw)}",
            where,
            hint=("keys: " + ", ".join(k.name for k in ltype.keys)) if ltype.keys else f"{ltype.name} takes no keys",
        )
    known = {k.name: k for k in ltype.keys}
    for name in raw:
        if name not in known:
            line = raw.lines.get(name) if isinstance(raw, LMap) else None
            hint = did_you_mean(name, known) or (
                ("keys: " + ", ".join(known)) if known else f"{ltype.name} takes no keys"
            )
            raise SpecError(f"unknown key {short(name)}", where.at(line=line), hint)
    args = {}
    for key in ltype.keys:
        if key.name in raw:
            line = raw.lines.get(key.name) if isinstance(raw, LMap) else None
            args[key.name] = _key_value(key, raw[key.name], env, where if line is None else where.at(line=line), resolve, rank)
        elif key.required:
            raise SpecError(f"missing key '{key.name}' ({key.doc})", where)
        else:
            default = key.default
            if key.kind == "pair" and default is not None:
                default = (default,) * rank
            elif key.kind == "padding" and isinstance(default, int):
                default = (default,) * (2 * rank)
            args[key.name] = default
    return args


_NO_OPTIONS: dict = {}  # a bare layer name's options (never written to)


def _item_parts(item, ctx, line, ypath):
    """Split one list item into (kind, value, options) where options holds 'name' etc."""
    if isinstance(item, str):
        return item.strip(), None, _NO_OPTIONS
    if isinstance(item, dict):
        if not item:
            ctx.fail("an empty mapping is not a layer", line, ypath)
        opts = {}
        main = []
        for k, v in item.items():
            if k in ("name", "trainable", "from"):
                opts[k] = v
            elif k == "layers" and "repeat" in item:
                opts["layers"] = v
            else:
                main.append(k)
        if len(main) > 1:  # a join's own keys sit beside it: {concat: [...], dim: 2}
            joins = [k for k in main if isinstance(k, str) and getattr(L.lookup(k), "joins", False)]
            known = {key.name for key in L.lookup(joins[0]).keys} if len(joins) == 1 else set()
            if known and all(k in known for k in main if k != joins[0]):
                opts["keys"] = {k: item[k] for k in main if k != joins[0]}
                main = joins
        if len(main) != 1:
            if "layers" in main and "repeat" not in item:
                ctx.fail("'layers' belongs to a 'repeat'", line, ypath, hint="write {repeat: N, layers: [...]}")
            ctx.fail(
                "one layer per list item: found " + ", ".join(short(k, 40) for k in main[:5]) + (f" and {len(main) - 5} more" if len(main) > 5 else ""),
                line,
                ypath,
                hint="give each layer its own '- ' entry",
            )
        return str(main[0]), item[main[0]], opts
    ctx.fail(f"a layer is a name or a mapping, got {short(item)}", line, ypath)


def _expand_list(ctx, items, cur, env, scope, ypath, aux):
    if isinstance(items, str) and items.startswith("$"):
        return _expand_raw(ctx, items, cur, env, scope, ypath, aux, ctx_line=None)
    if not isinstance(items, list):
        ctx.fail(f"expected a list of layers, got {short(items)}", getattr(items, "line", None), ypath)
    lines = getattr(items, "lines", None) or [getattr(items, "line", None)] * len(items)
    plans = ctx.plans
    nodes, index, counters = ctx.nodes, ctx.index, ctx.counters
    for i, item in enumerate(items):
        plan = plans.get(id(item))
        if (plan is not None and ctx.depth < MAX_DEPTH and ctx.work < MAX_WORK and len(nodes) < MAX_NODES
                and (aux or cur < 0 or not nodes[cur].aux)):
            # a plain layer met before (a repeat's next round, a block's next call): its type and
            # keys are known, only its name (ctx.derive) and place (ctx.add) are new
            ctx.work += 1
            type_, args = plan
            key = (scope, type_)
            count = counters[key] = counters.get(key, 0) + 1
            name = f"{scope}.{type_}{count}" if scope else f"{type_}{count}"
            if name not in index and name not in ctx.named:
                k = index[name] = len(nodes)
                nodes.append(Node(name, type_, args, (cur,), Where(ctx.file, lines[i], f"{ypath}[{i}] '{name}'", type_),
                                  aux, not ctx.frozen, ctx.call))
                cur = k
                continue
            counters[key] -= 1  # a name given before: ctx.add says so
            cur = ctx.add(ctx.derive(scope, type_), type_, args, (cur,), lines[i], f"{ypath}[{i}]", aux)
            continue
        ctx.plan = None
        cur = _expand_item(ctx, item, cur, env, scope, f"{ypath}[{i}]", lines[i], aux)
        if ctx.plan is not None:
            plans[id(item)] = ctx.plan
            ctx.plan = None
    return cur


def _empty_branch(value) -> bool:
    """An empty branch: null, [] or the name of a layer type declared ``is_identity``."""
    if value is None or value == []:
        return True
    t = L.lookup(value) if isinstance(value, str) else None
    return t is not None and t.is_identity


def _expand_raw(ctx, ref, cur, env, scope, ypath, aux, ctx_line):
    value = env.get(ref.strip())
    if not isinstance(value, _Raw):
        hint = did_you_mean(ref.strip(), [k for k in env if k.startswith("$")])
        ctx.fail(f"{short(ref)} is not a block argument holding layers", ctx_line, ypath, hint=hint)
    if _empty_branch(value.value):
        return cur
    return _expand_list(ctx, value.value, cur, value.env, scope, ypath, aux)


def _name(ctx, opts, env, scope, kind, line, ypath):
    given = opts.get("name")
    if given is None:
        return ctx.derive(scope, kind)
    if not isinstance(given, (str, int)) or isinstance(given, bool):
        ctx.fail(f"a layer name is text, got {short(given)}", line, ypath)
    text = str(given)

    def interp(m):
        v = _evaluate(m.group(1), env, ctx.where(line, ypath))
        return str(v)

    if len(text) > MAX_NAME:
        ctx.fail(f"layer name {short(text)} is longer than {MAX_NAME} characters", line, ypath)
    if "{" in text:
        text = _BRACES.sub(interp, text)
    if len(text) > MAX_NAME or not _NAME.fullmatch(text):
        ctx.fail(f"layer name {short(text)} may hold only letters, digits, '_' and '-'", line, ypath, hint="'.' separates scopes")
    return _join(scope, text)


def _expand_item(ctx, item, cur, env, scope, ypath, line, aux):
    ctx.tick(line, ypath)
    if ctx.depth >= MAX_DEPTH:
        ctx.fail(f"layers are nested more than {MAX_DEPTH} deep (blocks, repeats and branches together)", line, ypath)
    kind, value, opts = _item_parts(item, ctx, line, ypath)
    if opts and "from" in opts:  # `from: LAYER` on an item: it reads that earlier layer, not the one before it
        cur = _tap(ctx, opts["from"], env, scope, line, ypath, kind)
    trainable = opts.get("trainable", True) if opts else True
    if trainable is not True and not isinstance(trainable, bool):
        ctx.fail(f"'trainable' is true or false, got {short(trainable)}", line, ypath)
    ctx.depth += 1
    if trainable:
        try:
            return _expand_one(ctx, kind, value, opts, cur, env, scope, ypath, line, aux)
        finally:
            ctx.depth -= 1
    ctx.frozen += 1
    try:
        return _expand_one(ctx, kind, value, opts, cur, env, scope, ypath, line, aux)
    finally:
        ctx.frozen -= 1
        ctx.depth -= 1


def _expand_one(ctx, kind, value, opts, cur, env, scope, ypath, line, aux):
    if kind.startswith("$"):
        return _expand_raw(ctx, kind, cur, env, scope, ypath, aux, line)

    if kind == "repeat":
        times = _size(value, env, ctx.where(line, ypath, "repeat"), minimum=0)
        if is_symbolic(times):
            raise SymbolicRepeat(
                f"repeat count {short(value)} must be a concrete integer",
                ctx.where(line, ypath, "repeat"),
                "give its symbols values with --set (or keep them symbolic for totals only: archcalc.analysis.depth)",
                sorted(str(x) for x in times.free_symbols),
            )
        if times > MAX_NODES:
            ctx.fail(f"repeat count {times} is above the limit of {MAX_NODES} layers", line, ypath, "repeat")
        body = opts.get("layers")
        if body is None:
            ctx.fail("repeat needs 'layers'", line, ypath, "repeat", hint="write {repeat: N, layers: [...]}")
        renv = env
        if env.get(_ARG_I) is not None:  # inside a block whose argument is named i
            if _reads_i(body):
                ctx.fail(f"this repeat hides the argument 'i' of block '{env[_ARG_I]}': inside it '$i' is the repeat's count",
                         line, ypath, "repeat", hint="give the block's argument another name (repeat's counter is $i)")
            renv = {k: v for k, v in env.items() if k != _ARG_I}
        for i in range(times):
            ctx.tick(line, ypath)
            cur = _expand_list(ctx, body, cur, {**renv, "$i": i + 1}, scope, f"{ypath}.layers", aux)
        return cur

    if kind == "aux":
        name = _name(ctx, opts, env, scope, "aux", line, ypath)
        _expand_list(ctx, value, cur, env, name, f"{ypath}.aux", True)
        return cur

    ltype = L.lookup(kind)
    if ltype is not None and ltype.joins:
        return _expand_join(ctx, ltype, value, opts, cur, env, scope, ypath, line, aux)

    if ltype is not None:
        name = _name(ctx, opts, env, scope, ltype.name, line, ypath)
        key = _args_key(ctx, ltype, value, env)
        args = ctx.args_cache.get(key) if key is not None else None
        if args is not None:  # keys read before from the same value and arguments
            if not opts and len(key) == 2:  # and they use none: _expand_list reuses them directly
                ctx.plan = (ltype.name, args)
            return ctx.add(name, ltype.name, args, (cur,), line, ypath, aux)
        refs: list = []

        def resolve(ref, key="like"):  # a `like: LAYER` key: the layer's output becomes an extra input
            idx = _tap(ctx, ref, env, scope, line, f"{ypath} '{name}'", ltype.name, key)
            refs.append(idx)
            return idx

        args = _layer_args(ltype, value, env, ctx.where(line, f"{ypath} '{name}'", ltype.name), resolve, ctx.rank)
        if key is not None:
            ctx.args_cache[key] = args
        return ctx.add(name, ltype.name, args, [cur] + refs, line, ypath, aux)

    if kind in ctx.blocks:
        return _expand_block(ctx, kind, value, opts, cur, env, scope, ypath, line, aux)

    choices = L.all_names() + list(ctx.blocks) + list(CONTROL)
    ctx.fail(f"unknown layer type {short(kind)}", line, ypath, hint=expected_one_of(kind, choices, "a layer type or block"))


_HAS_REF: dict = {}  # layer type -> does it take a `ref` key (a layer reference)?
_MISSING = object()


def _args_key(ctx, ltype, value, env):
    """A cache key for a layer's keys, from what they can depend on: the YAML value itself and the
    values of the block arguments ('$name', '$i') its strings use. Symbols are fixed for the whole
    load, so expressions in them evaluate alike every time. A repeat then reads a layer's keys
    once, not once per round, and a block called again with the same arguments reuses them (the
    same dict: the engine's own cache then hits too). None where no key is safe: a layer reference,
    or an argument holding layers or a list (its meaning depends on the caller's env)."""
    has_ref = _HAS_REF.get(ltype.name)
    if has_ref is None:
        has_ref = _HAS_REF[ltype.name] = any(k.kind == "ref" for k in ltype.keys)
    if has_ref:
        return None
    key = (ltype.name, id(value))
    used = ctx.static.get(key)
    if used is None:
        used = ctx.static[key] = _arguments_used(value)
    if used is False:
        return None
    if not used:
        return key
    return _with_values(key, used, env)


def _with_values(key, used, env):
    """``key`` and, per argument used, the type and value of its value (1, 1.0 and True are equal
    keys: the type tells them apart); None where a value holds layers or a list."""
    parts = [key]
    for name in used:
        v = env.get(name, _MISSING)
        if isinstance(v, (_Raw, list, dict, set)):
            return None
        parts.append(v.__class__)
        parts.append(v)
    return tuple(parts)


def _arguments_used(value):
    """The block arguments ('$name') the strings of a YAML value use, sorted (False: never cache).
    Each mapping or list is visited once, so a value built of aliases (a "billion laughs") costs
    its distinct nodes, not its expansion. A '$' that names no argument cannot parse: the string
    is kept as written, so the key still differs and the error is raised each time."""
    stack, seen, found = [value], set(), set()
    while stack:
        v = stack.pop()
        if isinstance(v, str):
            if "$" in v:
                found.update("$" + m for m in _ARG_NAME.findall(v))
                if "$" in _ARG_NAME.sub("", v):
                    found.add(v)
        elif isinstance(v, (dict, list)):
            if id(v) in seen:
                continue
            seen.add(id(v))
            if isinstance(v, dict):
                stack.extend(v.keys())
                stack.extend(v.values())
            else:
                stack.extend(v)
        elif isinstance(v, _Raw):  # layers inside the keys: never cached
            return False
    return tuple(sorted(found))


_ARG_NAME = re.compile(r"\$([A-Za-z_][A-Za-z_0-9]*)")


def _expand_join(ctx, ltype, value, opts, cur, env, scope, ypath, line, aux):
    name = _name(ctx, opts, env, scope, ltype.name, line, ypath)
    if isinstance(value, dict):
        branches = list(value.items())
        named = True
    elif isinstance(value, list):
        branches = [(f"b{i + 1}", b) for i, b in enumerate(value)]
        named = False
    else:
        ctx.fail(f"{ltype.name} takes a list of branches (each a list of layers, or identity)", line, ypath, ltype.name)
    if len(branches) < 2:
        ctx.fail(f"{ltype.name} needs at least two branches, got {len(branches)}", line, ypath, ltype.name)
    ends = []
    for position, (bname, branch) in enumerate(branches):
        if not _BRANCH.fullmatch(str(bname)) or isinstance(bname, bool):
            ctx.fail(f"branch name {short(bname)} may hold only letters, digits, '_' and '-'", line, ypath, ltype.name)
        ctx.tick(line, ypath)
        bscope = _join(scope, str(bname)) if named else _join(name, bname)
        bpath = f"{ypath}.{ltype.name}.{bname}" if named else f"{ypath}.{ltype.name}[{position}]"  # positions count from 0, as layers[i] does
        if _empty_branch(branch):
            ends.append(cur)
        elif isinstance(branch, str) and branch.startswith("$"):
            ends.append(_expand_raw(ctx, branch, cur, env, bscope, bpath, aux, line))
        elif isinstance(branch, list):
            ends.append(_expand_list(ctx, branch, cur, env, bscope, bpath, aux))
        elif isinstance(branch, dict) and "from" in branch:
            bline = getattr(branch, "line", line)
            for key in branch:
                if key not in ("from", "layers"):
                    ctx.fail(f"unknown branch key {short(key)}", bline, bpath, ltype.name, hint=expected_one_of(key, ("from", "layers")))
            start = _tap(ctx, branch["from"], env, scope, bline, bpath, ltype.name)
            body = branch.get("layers") or []
            ends.append(_expand_list(ctx, body, start, env, bscope, bpath, aux) if body else start)
        else:
            ctx.fail(
                f"branch {bname} of {ltype.name} is a list of layers, 'identity' or {{from: LAYER, layers: [...]}}, got {short(branch)}",
                getattr(branch, "line", line),
                bpath,
                ltype.name,
            )
    args = {"branches": [b for b, _ in branches]}
    if ltype.keys:  # the join's own keys (concat's dim), beside it in the item
        args.update(_layer_args(ltype, opts.get("keys") or {}, env, ctx.where(line, ypath, ltype.name), rank=ctx.rank))
    return ctx.add(name, ltype.name, args, ends, line, ypath, aux)


def _tap(ctx, ref, env, scope, line, ypath, layer, key="from"):
    """The node a branch starts from: an earlier layer named relative to the current scope (or
    any enclosing one), or 'input' for the network input."""
    if isinstance(ref, str) and ref.strip().startswith("$"):  # a block argument holding a layer's name
        arg = ref.strip()
        value = env.get(arg, _MISSING)
        if value is _MISSING:
            hint = did_you_mean(arg, [k for k in env if k.startswith("$")])
            ctx.fail(f"'{key}: {arg}': no block argument {short(arg)} here", line, ypath, layer,
                     hint=hint or "give the layer's name, or pass it to the block as an argument")
        if not isinstance(value, str):
            ctx.fail(f"'{key}: {arg}' names an earlier layer, but {arg} is {short(value.value) if isinstance(value, _Raw) else short(value)}",
                     line, ypath, layer, hint=f"pass the layer's name: {arg[1:]}: NAME")
        ref = value
    if not isinstance(ref, str) or not ref:
        ctx.fail(f"'{key}' names an earlier layer, got {short(ref)}", line, ypath, layer)
    name = _BRACES.sub(lambda m: str(_evaluate(m.group(1), env, ctx.where(line, ypath))), ref) if "{" in ref else ref
    parts = scope.split(".") if scope else []
    for k in range(len(parts), -1, -1):
        full = _join(".".join(parts[:k]), name)
        if full in ctx.index:
            return ctx.index[full]
        if full in ctx.named:  # a block call, by the name the call was given: its output
            if ctx.named[full][0] is None:
                ctx.fail(f"'{key}: {full}' names a block call made more than once (first at line {ctx.named[full][1]}), "
                         "so it has no one output", line, ypath, layer, hint="name a layer inside the call you mean")
            return ctx.named[full][0]
    if name == "input":
        return -1
    known = list(ctx.index) + list(ctx.named)
    local = [n[len(scope) + 1:] for n in known if scope and n.startswith(scope + ".")] or known
    ctx.fail(
        f"'{key}: {short(name)[1:-1] if isinstance(name, str) else name}' names no earlier layer",
        line,
        ypath,
        layer,
        hint=did_you_mean(name, local) or "name the layer with name: and branch from it after it",
    )


def _argument(ctx, raw, env, line, ypath, kind):
    """A block argument's value (a size, a number or a word), evaluated once per text and values
    of the arguments it uses (a block called again with the same arguments is common)."""
    if raw.__class__ is not str:
        return _evaluate(raw, env, ctx.where(line, ypath, kind), allow_words=True)
    used = ctx.static.get(raw)
    if used is None:
        used = ctx.static[raw] = _arguments_used(raw)
    key = _with_values(raw, used, env)
    if key is None:
        return _evaluate(raw, env, ctx.where(line, ypath, kind), allow_words=True)
    value = ctx.values_cache.get(key, _MISSING)
    if value is _MISSING:
        value = ctx.values_cache[key] = _evaluate(raw, env, ctx.where(line, ypath, kind), allow_words=True)
    return value


_ARG_I = "$\0arg-i"  # set in a block's env when one of its arguments is named i (a '$' key: not inherited)
_READS_I = re.compile(r"\$i(?![A-Za-z_0-9])")


def _reads_i(value) -> bool:
    """Whether a YAML value (a repeat's body) mentions '$i' anywhere: in a string or a key."""
    if isinstance(value, str):
        return _READS_I.search(value) is not None
    if isinstance(value, dict):
        return any(_reads_i(k) or _reads_i(v) for k, v in value.items())
    if isinstance(value, list):
        return any(_reads_i(v) for v in value)
    return False


def _expand_block(ctx, kind, value, opts, cur, env, scope, ypath, line, aux):
    block = ctx.blocks[kind]
    params = block["params"]
    given = value if value is not None else {}
    if not isinstance(given, dict):
        ctx.fail(f"the arguments of block '{kind}' are a mapping", line, ypath, kind, hint="args: " + ", ".join(params))
    benv = {k: v for k, v in env.items() if not k.startswith("$")}
    for arg in given:
        if arg not in params:
            ctx.fail(
                f"block '{kind}' has no argument {short(arg)}",
                given.lines.get(arg, line) if isinstance(given, LMap) else line,
                ypath,
                kind,
                hint=did_you_mean(arg, params) or ("args: " + ", ".join(params) if params else "it takes none"),
            )
    for arg, default in params.items():
        if arg in given:
            raw, source_env = given[arg], env
        elif default is not L.REQUIRED:
            raw, source_env = default, benv
        else:
            ctx.fail(f"block '{kind}' needs argument '{arg}'", line, ypath, kind)
        aline = given.lines.get(arg, line) if isinstance(given, LMap) else line
        passed = source_env.get(raw.strip()) if isinstance(raw, str) else None
        if isinstance(passed, _Raw):  # a layers argument handed on to a nested block
            benv["$" + arg] = passed
        elif isinstance(raw, (list, dict)):
            benv["$" + arg] = _Raw(raw, source_env, aline)
        elif isinstance(raw, (bool, float)):
            benv["$" + arg] = raw
        elif isinstance(raw, str) and _empty_branch(raw):  # the word of an identity type: an empty layers argument
            benv["$" + arg] = _Raw(raw, source_env, aline)
        else:
            benv["$" + arg] = _argument(ctx, raw, source_env, aline, ypath, kind)
    if "i" in params:
        benv[_ARG_I] = kind
    if len(ctx.calls) >= MAX_BLOCK_DEPTH:
        ctx.fail(f"blocks call blocks more than {MAX_BLOCK_DEPTH} deep", line, ypath, kind)
    if kind in ctx.calls:
        cycle = " -> ".join(ctx.calls[ctx.calls.index(kind):] + [kind])
        ctx.fail(f"block '{kind}' calls itself ({cycle})", line, ypath, kind, hint="a block may only use blocks that do not lead back to it")
    if block["scope"]:
        inner = _name(ctx, opts, env, scope, kind, line, ypath)
        if inner in ctx.index:
            first = ctx.nodes[ctx.index[inner]].where.line
            ctx.fail(f"layer name '{inner}' is used twice", line, ypath, kind, hint=f"first at line {first}")
        # a call's name given again enters the same scope again (the layers inside still need names
        # of their own: ctx.add checks them); `from: NAME` then has no one output and is refused
    else:
        if "name" in opts:
            ctx.fail(f"block '{kind}' has scope: false, so its call takes no name", line, ypath, kind)
        inner = scope
    ctx.calls.append(kind)
    outermost = ctx.call is None
    if outermost:
        ctx.call = line
    try:
        out = _expand_list(ctx, block["layers"], cur, benv, inner, f"blocks.{kind}.layers", aux)
    finally:
        ctx.calls.pop()
        if outermost:
            ctx.call = None
    if block["scope"]:  # `from: NAME` and `like: NAME` read the call's output by the call's name
        ctx.named[inner] = (None, ctx.named[inner][1]) if inner in ctx.named else (out, line)
    return out
