"""Spec loader: YAML text to a :class:`Network` (a list of nodes in topological order).

Expands reusable ``blocks`` (with arguments), ``repeat``, parallel branches joined by ``concat``
/ ``add`` (any join type of the registry), auxiliary heads (``aux``); evaluates size expressions
with :mod:`archcalc.expr`; validates every layer's keys against its registry declaration. Every
error is a :class:`SpecError` naming file, line, layer path and what was expected.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from . import layers as L
from .errors import SpecError, Where, did_you_mean, expected_one_of
from .expr import ExprError, evaluate, is_symbolic, parse, symbol
from .yamlio import LMap, load_text

MAX_NODES = 200_000
TOP_KEYS = ("name", "title", "source", "notes", "input", "symbols", "blocks", "layers", "budget")
BLOCK_KEYS = ("args", "layers", "scope", "doc")
BUDGET_KEYS = ("params", "macs", "activations", "memory", "train_memory")
CONTROL = ("repeat", "aux")


@dataclass
class Node:
    """One layer instance. ``inputs`` are node indices; -1 is the network input."""

    name: str
    type: str
    args: dict
    inputs: tuple
    where: Where
    aux: bool = False


@dataclass
class Network:
    name: str
    title: str
    source: str
    file: str
    input: tuple
    symbols: dict  # declared name -> default (int or None)
    values: dict  # name -> int actually used (defaults and --set); the rest stay symbolic
    nodes: list = field(default_factory=list)
    output: int = -1
    budget: dict = field(default_factory=dict)
    notes: str = ""

    @property
    def symbolic(self) -> bool:
        return any(is_symbolic(d) for d in self.input) or any(
            v is None for k, v in self.values.items() if k in self.symbols
        )

    def free_symbols(self) -> list[str]:
        return sorted(k for k in self.symbols if self.values.get(k) is None)


@dataclass
class _Raw:
    """A block argument that is not a number: a branch or a list of layers, with the caller's env."""

    value: Any
    env: dict
    line: int


class _Ctx:
    def __init__(self, file, blocks, values):
        self.file = file
        self.blocks = blocks
        self.nodes: list[Node] = []
        self.names: dict[str, int] = {}  # name -> line
        self.index: dict[str, int] = {}  # name -> node index
        self.calls: list[str] = []  # blocks being expanded, outermost first
        self.counters: dict = {}
        self.values = values

    def where(self, line, path=None, layer=None):
        return Where(file=self.file, line=line, path=path, layer=layer)

    def fail(self, fact, line, path=None, layer=None, hint=None):
        raise SpecError(fact, self.where(line, path, layer), hint)

    def derive(self, scope, kind):
        key = (scope, kind)
        self.counters[key] = self.counters.get(key, 0) + 1
        return _join(scope, f"{kind}{self.counters[key]}")

    def add(self, name, type_, args, inputs, line, ypath, aux):
        if name in self.names:
            self.fail(
                f"layer name '{name}' is used twice", line, ypath, type_, hint=f"first at line {self.names[name]}"
            )
        if len(self.nodes) >= MAX_NODES:
            self.fail(f"the network expands to more than {MAX_NODES} layers", line, ypath)
        self.names[name] = line
        self.index[name] = len(self.nodes)
        self.nodes.append(Node(name, type_, args, tuple(inputs), self.where(line, f"{ypath} '{name}'", type_), aux))
        return len(self.nodes) - 1


def _join(scope, name):
    return f"{scope}.{name}" if scope else name


# --------------------------------------------------------------------------- entry points


def load(path, values: dict | None = None, input_override=None, free=()) -> Network:
    """Load a spec file. ``values`` sets symbols (``--set``); ``input_override`` replaces ``input``;
    ``free`` names symbols to keep symbolic even where the spec gives a default."""
    from pathlib import Path

    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise SpecError(f"no such file '{path}'") from None
    except (OSError, UnicodeDecodeError) as err:
        raise SpecError(f"cannot read '{path}': {err}") from None
    return loads(text, str(path), values, input_override, free)


def loads(text: str, file: str = "<spec>", values: dict | None = None, input_override=None, free=()) -> Network:
    doc = load_text(text, file)
    if not isinstance(doc, LMap):
        raise SpecError("a spec is a mapping with at least 'input' and 'layers'", Where(file=file, line=1))
    for key in doc:
        if key not in TOP_KEYS:
            raise SpecError(
                f"unknown top-level key '{key}'", Where(file=file, line=doc.lines[key]), expected_one_of(key, TOP_KEYS)
            )
    for key in ("input", "layers"):
        if key not in doc:
            raise SpecError(f"missing top-level key '{key}'", Where(file=file, line=doc.line))

    # symbols: declared in `symbols` or used in `input`
    symbols: dict = {}
    raw_symbols = doc.get("symbols") or LMap()
    if not isinstance(raw_symbols, dict):
        raise SpecError("'symbols' is a mapping of name: default (or null)", Where(file=file, line=doc.lines["symbols"]))
    for name, default in raw_symbols.items():
        line = raw_symbols.lines[name] if isinstance(raw_symbols, LMap) else doc.line
        if not isinstance(name, str) or not re.fullmatch(r"[A-Za-z_][A-Za-z_0-9]*", name):
            raise SpecError(f"symbol name '{name}' is not an identifier", Where(file=file, line=line))
        if default is not None and (isinstance(default, bool) or not isinstance(default, int) or default < 1):
            raise SpecError(f"symbol '{name}' default must be a positive integer or null, got {default!r}", Where(file=file, line=line))
        symbols[name] = default

    raw_input = doc["input"]
    in_line = doc.lines["input"]
    if not isinstance(raw_input, list) or len(raw_input) not in (1, 3):
        raise SpecError("'input' is [C, H, W] (or [F] for a flat vector)", Where(file=file, line=in_line))
    for item in raw_input:
        if isinstance(item, str) and re.fullmatch(r"[A-Za-z_][A-Za-z_0-9]*", item):
            symbols.setdefault(item, None)

    used = {k: v for k, v in symbols.items() if v is not None}
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
    env = {k: used.get(k, None) for k in symbols}
    env = {k: (v if v is not None else symbol(k)) for k, v in env.items()}

    if input_override is not None:
        shape = tuple(input_override)
    else:
        shape = tuple(_size(item, env, Where(file=file, line=in_line, path="input")) for item in raw_input)

    blocks = _blocks(doc.get("blocks"), file, doc.lines.get("blocks"))
    ctx = _Ctx(file, blocks, used)
    layers = doc["layers"]
    if not isinstance(layers, list) or not layers:
        raise SpecError("'layers' is a non-empty list", Where(file=file, line=doc.lines["layers"]))
    out = _expand_list(ctx, layers, -1, env, "", "layers", False)

    meta = {}
    for key in ("name", "title", "source", "notes"):
        v = doc.get(key, "")
        if not isinstance(v, (str, type(None))):
            raise SpecError(f"'{key}' is text", Where(file=file, line=doc.lines[key]))
        meta[key] = (v or "").strip()
    if not meta["name"]:
        from pathlib import Path

        meta["name"] = Path(file).stem
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
        budget=_budget(doc.get("budget"), file, doc.lines.get("budget")),
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
        if L.lookup(name) or name in CONTROL:
            raise SpecError(f"block name '{name}' is already a layer type", Where(file=file, line=bline, path=f"blocks.{name}"))
        if not isinstance(body, LMap) or "layers" not in body:
            raise SpecError(
                "a block is a mapping with 'layers' (and optional 'args', 'scope')",
                Where(file=file, line=bline, path=f"blocks.{name}"),
            )
        for key in body:
            if key not in BLOCK_KEYS:
                raise SpecError(
                    f"unknown block key '{key}'",
                    Where(file=file, line=body.lines[key], path=f"blocks.{name}"),
                    expected_one_of(key, BLOCK_KEYS),
                )
        args = body.get("args") or []
        if isinstance(args, list):
            params = {a: L.REQUIRED for a in args}
        elif isinstance(args, dict):
            params = {a: (L.REQUIRED if d is None else d) for a, d in args.items()}
        else:
            raise SpecError("block 'args' is a list of names or a mapping name: default", Where(file=file, line=bline))
        for a in params:
            if not isinstance(a, str) or not re.fullmatch(r"[A-Za-z_][A-Za-z_0-9]*", a):
                raise SpecError(f"block argument '{a}' is not an identifier", Where(file=file, line=bline, path=f"blocks.{name}"))
        scope = body.get("scope", True)
        if not isinstance(scope, bool):
            raise SpecError("block 'scope' is true or false", Where(file=file, line=body.lines["scope"], path=f"blocks.{name}"))
        out[name] = {"params": params, "layers": body["layers"], "scope": scope, "line": bline}
    return out


_SUFFIX = {"": 1, "K": 10**3, "M": 10**6, "G": 10**9, "T": 10**12, "KIB": 2**10, "MIB": 2**20, "GIB": 2**30, "TIB": 2**40}


def parse_amount(text) -> int:
    """'140M' -> 140_000_000; '16GiB' -> 17179869184; plain ints pass through.

    >>> parse_amount("1.5G")
    1500000000
    """
    if isinstance(text, bool):
        raise ValueError(text)
    if isinstance(text, int):
        return text
    m = re.fullmatch(r"\s*([0-9]+(?:\.[0-9]+)?)\s*([KMGT]I?B?|B)?\s*", str(text), re.IGNORECASE)
    if not m:
        raise ValueError(text)
    unit = (m.group(2) or "").upper()
    if unit == "B":
        unit = ""
    if unit.endswith("B") and not unit.endswith("IB"):
        unit = unit[:-1]
    if unit not in _SUFFIX:
        raise ValueError(text)
    from decimal import Decimal

    value = Decimal(m.group(1)) * _SUFFIX[unit]
    if value != int(value):
        raise ValueError(text)
    return int(value)


def _budget(raw, file, line):
    if raw is None:
        return {}
    if not isinstance(raw, LMap):
        raise SpecError("'budget' is a mapping such as {params: 140M, macs: 16G}", Where(file=file, line=line))
    out = {}
    for key, value in raw.items():
        kline = raw.lines[key]
        if key not in BUDGET_KEYS:
            raise SpecError(f"unknown budget key '{key}'", Where(file=file, line=kline, path="budget"), expected_one_of(key, BUDGET_KEYS))
        try:
            out[key] = parse_amount(value)
        except ValueError:
            raise SpecError(
                f"budget {key}: cannot read {value!r}",
                Where(file=file, line=kline, path="budget"),
                "write an integer with an optional K, M, G, T (powers of 1000) or KiB, MiB, GiB (powers of 1024)",
            ) from None
    return out


def _evaluate(value, env, where: Where, allow_words=False):
    """An int (or sympy expression) from a YAML scalar; strings are size expressions."""
    if isinstance(value, bool):
        raise SpecError(f"expected a size, got {value!r}", where)
    if isinstance(value, int):
        return value
    if isinstance(value, str):
        text = value.strip()
        if allow_words and re.fullmatch(r"[A-Za-z_][A-Za-z_0-9]*", text) and text not in env:
            return text
        try:
            tree = parse(text)
            result = evaluate(tree, env)
        except ExprError as err:
            hint = None
            if err.args[1:]:
                name = err.args[1]
                pool = [k for k in env if k.startswith("$") == name.startswith("$")]
                hint = did_you_mean(name, pool) or (
                    ("known: " + ", ".join(sorted(pool))) if pool else ("no block arguments here" if name.startswith("$") else "declare it under 'symbols'")
                )
            raise SpecError(str(err.args[0]), where, hint) from None
        except TypeError:
            raise SpecError(f"'{text}' mixes text and numbers", where) from None
        if isinstance(result, _Raw):
            raise SpecError(f"'{text}' is a list of layers, not a size", where)
        return result
    if isinstance(value, _Raw):
        raise SpecError("expected a size, got a list of layers", where)
    raise SpecError(f"expected a size, got {type(value).__name__} {value!r}", where)


def _size(value, env, where, minimum=1):
    v = _evaluate(value, env, where)
    if isinstance(v, str):
        raise SpecError(f"expected a size, got '{v}'", where)
    if isinstance(v, float):
        raise SpecError(f"expected an integer, got {v}", where)
    if isinstance(v, int) and v < minimum:
        raise SpecError(f"expected an integer >= {minimum}, got {v}", where)
    return v


def _key_value(key: L.Key, value, env, where: Where):
    kind = key.kind
    ref = env.get(value.strip()) if isinstance(value, str) else None
    if isinstance(ref, _Raw):  # a block argument holding a list, e.g. kernel: [1, 7]
        value, env = ref.value, ref.env
    elif isinstance(value, str) and value.strip().startswith("$"):
        value = _evaluate(value, env, where, allow_words=True)
        if isinstance(value, str) and value.strip().startswith("$"):
            raise SpecError(f"unknown argument {value}", where)
    expect = f"{key.name}: expected {L.KIND_TEXT[kind]}"
    if kind == "bool":
        if not isinstance(value, bool):
            raise SpecError(f"{expect}, got {value!r}", where)
        return value
    if kind == "float":
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise SpecError(f"{expect}, got {value!r}", where)
        return value
    if kind in ("size", "count"):
        return _size(value, env, where.at(), minimum=1 if kind == "size" else 0)
    if kind == "groups":
        if value == "depthwise":
            return value
        return _size(value, env, where)
    if kind == "pair":
        if isinstance(value, list):
            if len(value) != 2:
                raise SpecError(f"{expect}, got a list of {len(value)}", where)
            return tuple(_size(v, env, where) for v in value)
        v = _size(value, env, where)
        return (v, v)
    if kind == "padding":
        if value == "same":
            return "same"
        if isinstance(value, list):
            if len(value) == 2:
                h, w = (_size(v, env, where, 0) for v in value)
                return (h, h, w, w)
            if len(value) == 4:
                return tuple(_size(v, env, where, 0) for v in value)
            raise SpecError(f"{expect}, got a list of {len(value)}", where)
        v = _size(value, env, where, 0)
        return (v, v, v, v)
    raise AssertionError(kind)  # pragma: no cover - registry declares only the kinds above


def _layer_args(ltype: L.LayerType, raw, env, where: Where) -> dict:
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise SpecError(
            f"the keys of {ltype.name} are a mapping, got {raw!r}",
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
            raise SpecError(f"unknown key '{name}'", where.at(line=line), hint)
    args = {}
    for key in ltype.keys:
        if key.name in raw:
            line = raw.lines.get(key.name) if isinstance(raw, LMap) else None
            args[key.name] = _key_value(key, raw[key.name], env, where.at(line=line))
        elif key.required:
            raise SpecError(f"missing key '{key.name}' ({key.doc})", where)
        else:
            default = key.default
            if key.kind == "pair" and default is not None:
                default = (default, default)
            elif key.kind == "padding" and isinstance(default, int):
                default = (default,) * 4
            args[key.name] = default
    return args


def _item_parts(item, ctx, line, ypath):
    """Split one list item into (kind, value, options) where options holds 'name' etc."""
    if isinstance(item, str):
        return item.strip(), None, {}
    if isinstance(item, dict):
        if not item:
            ctx.fail("an empty mapping is not a layer", line, ypath)
        opts = {}
        main = []
        for k, v in item.items():
            if k == "name":
                opts["name"] = v
            elif k == "layers" and "repeat" in item:
                opts["layers"] = v
            else:
                main.append(k)
        if len(main) != 1:
            if "layers" in main and "repeat" not in item:
                ctx.fail("'layers' belongs to a 'repeat'", line, ypath, hint="write {repeat: N, layers: [...]}")
            ctx.fail(
                "one layer per list item: found " + ", ".join(f"'{k}'" for k in main),
                line,
                ypath,
                hint="give each layer its own '- ' entry",
            )
        return str(main[0]), item[main[0]], opts
    ctx.fail(f"a layer is a name or a mapping, got {item!r}", line, ypath)


def _expand_list(ctx, items, cur, env, scope, ypath, aux):
    if isinstance(items, str) and items.startswith("$"):
        return _expand_raw(ctx, items, cur, env, scope, ypath, aux, ctx_line=None)
    if not isinstance(items, list):
        ctx.fail(f"expected a list of layers, got {items!r}", getattr(items, "line", None), ypath)
    lines = getattr(items, "lines", None) or [getattr(items, "line", None)] * len(items)
    for i, item in enumerate(items):
        cur = _expand_item(ctx, item, cur, env, scope, f"{ypath}[{i}]", lines[i], aux)
    return cur


def _expand_raw(ctx, ref, cur, env, scope, ypath, aux, ctx_line):
    value = env.get(ref.strip())
    if not isinstance(value, _Raw):
        hint = did_you_mean(ref.strip(), [k for k in env if k.startswith("$")])
        ctx.fail(f"'{ref}' is not a block argument holding layers", ctx_line, ypath, hint=hint)
    if value.value in ("identity", None) or value.value == []:
        return cur
    return _expand_list(ctx, value.value, cur, value.env, scope, ypath, aux)


def _name(ctx, opts, env, scope, kind, line, ypath):
    given = opts.get("name")
    if given is None:
        return ctx.derive(scope, kind)
    if not isinstance(given, (str, int)) or isinstance(given, bool):
        ctx.fail(f"a layer name is text, got {given!r}", line, ypath)
    text = str(given)

    def interp(m):
        v = _evaluate(m.group(1), env, ctx.where(line, ypath))
        return str(v)

    text = re.sub(r"\{([^{}]*)\}", interp, text)
    if not re.fullmatch(r"[A-Za-z0-9_\-]+", text):
        ctx.fail(f"layer name '{text}' may hold only letters, digits, '_' and '-'", line, ypath, hint="'.' separates scopes")
    return _join(scope, text)


def _expand_item(ctx, item, cur, env, scope, ypath, line, aux):
    kind, value, opts = _item_parts(item, ctx, line, ypath)
    where = ctx.where(line, ypath)

    if kind.startswith("$"):
        return _expand_raw(ctx, kind, cur, env, scope, ypath, aux, line)

    if kind == "repeat":
        times = _size(value, env, where.at(layer="repeat"), minimum=0)
        if is_symbolic(times):
            ctx.fail(
                f"repeat count '{value}' must be a concrete integer",
                line,
                ypath,
                "repeat",
                hint="give its symbols values with --set",
            )
        if times > MAX_NODES:
            ctx.fail(f"repeat count {times} is above the limit of {MAX_NODES} layers", line, ypath, "repeat")
        body = opts.get("layers")
        if body is None:
            ctx.fail("repeat needs 'layers'", line, ypath, "repeat", hint="write {repeat: N, layers: [...]}")
        for i in range(times):
            cur = _expand_list(ctx, body, cur, {**env, "$i": i + 1}, scope, f"{ypath}.layers", aux)
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
        w = ctx.where(line, f"{ypath} '{name}'", ltype.name)
        args = _layer_args(ltype, value, env, w)
        return ctx.add(name, ltype.name, args, [cur], line, ypath, aux)

    if kind in ctx.blocks:
        return _expand_block(ctx, kind, value, opts, cur, env, scope, ypath, line, aux)

    choices = L.all_names() + list(ctx.blocks) + list(CONTROL)
    ctx.fail(f"unknown layer type '{kind}'", line, ypath, hint=expected_one_of(kind, choices, "a layer type or block"))


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
    for bname, branch in branches:
        bscope = _join(scope, str(bname)) if named else _join(name, bname)
        bpath = f"{ypath}.{ltype.name}.{bname}" if named else f"{ypath}.{ltype.name}[{bname[1:]}]"
        if branch in ("identity", None) or branch == []:
            ends.append(cur)
        elif isinstance(branch, str) and branch.startswith("$"):
            ends.append(_expand_raw(ctx, branch, cur, env, bscope, bpath, aux, line))
        elif isinstance(branch, list):
            ends.append(_expand_list(ctx, branch, cur, env, bscope, bpath, aux))
        elif isinstance(branch, dict) and "from" in branch:
            bline = getattr(branch, "line", line)
            for key in branch:
                if key not in ("from", "layers"):
                    ctx.fail(f"unknown branch key '{key}'", bline, bpath, ltype.name, hint=expected_one_of(key, ("from", "layers")))
            start = _tap(ctx, branch["from"], env, scope, bline, bpath, ltype.name)
            body = branch.get("layers") or []
            ends.append(_expand_list(ctx, body, start, env, bscope, bpath, aux) if body else start)
        else:
            ctx.fail(
                f"branch {bname} of {ltype.name} is a list of layers, 'identity' or {{from: LAYER, layers: [...]}}, got {branch!r}",
                getattr(branch, "line", line),
                bpath,
                ltype.name,
            )
    return ctx.add(name, ltype.name, {"branches": [b for b, _ in branches]}, ends, line, ypath, aux)


def _tap(ctx, ref, env, scope, line, ypath, layer):
    """The node a branch starts from: an earlier layer named relative to the current scope (or
    any enclosing one), or 'input' for the network input."""
    if not isinstance(ref, str) or not ref:
        ctx.fail(f"'from' names an earlier layer, got {ref!r}", line, ypath, layer)
    name = re.sub(r"\{([^{}]*)\}", lambda m: str(_evaluate(m.group(1), env, ctx.where(line, ypath))), ref)
    parts = scope.split(".") if scope else []
    for k in range(len(parts), -1, -1):
        full = _join(".".join(parts[:k]), name)
        if full in ctx.index:
            return ctx.index[full]
    if name == "input":
        return -1
    local = [n[len(scope) + 1:] for n in ctx.index if scope and n.startswith(scope + ".")] or list(ctx.index)
    ctx.fail(
        f"'from: {name}' names no earlier layer",
        line,
        ypath,
        layer,
        hint=did_you_mean(name, local) or "name the layer with name: and branch from it after it",
    )


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
                f"block '{kind}' has no argument '{arg}'",
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
        elif raw == "identity":
            benv["$" + arg] = _Raw("identity", source_env, aline)
        else:
            benv["$" + arg] = _evaluate(raw, source_env, ctx.where(aline, ypath, kind), allow_words=True)
    if kind in ctx.calls:
        cycle = " -> ".join(ctx.calls[ctx.calls.index(kind):] + [kind])
        ctx.fail(f"block '{kind}' calls itself ({cycle})", line, ypath, kind, hint="a block may only use blocks that do not lead back to it")
    if block["scope"]:
        inner = _name(ctx, opts, env, scope, kind, line, ypath)
    else:
        if "name" in opts:
            ctx.fail(f"block '{kind}' has scope: false, so its call takes no name", line, ypath, kind)
        inner = scope
    ctx.calls.append(kind)
    try:
        return _expand_list(ctx, block["layers"], cur, benv, inner, f"blocks.{kind}.layers", aux)
    finally:
        ctx.calls.pop()
