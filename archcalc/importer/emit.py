"""The importer's :class:`Graph` as a readable spec.

* Name scopes are the module hierarchy: the ops of each child module become one call of a block
  whose scope is the child's name, so every layer's full name is its module path (the builder
  nests its modules by these names, so the original ``state_dict`` loads into the built model).
* Calls whose bodies differ only in numbers are one block; the numbers that differ become its
  arguments (equal columns one argument, integer multiples ``$arg * k``, the most common value
  the default). Runs of calls of one block with the same arguments and consecutive numeric
  names become a ``repeat``.
* A layer that does not read the layer before it says ``from:``; a join names its branches with
  ``from:`` (``identity`` for the layer before it). Inside a block the block's input is named by
  an identity layer ``x`` where something other than its first layer reads it.
"""

from __future__ import annotations

import re
from collections import Counter

from .. import layers as L
from .ir import symbol_names

_GENERIC = ("Sequential", "ModuleList", "ModuleDict", "IntermediateLayerGetter", None)
_PLAIN = re.compile(r"[A-Za-z_][A-Za-z0-9_.\-]*")
_RESERVED = {"true", "false", "yes", "no", "on", "off", "null", "y", "n", "~"}


def _identity_type():
    """The registry type that stands for torch.nn.Identity (the block-input marker)."""
    for name in sorted(L.REGISTRY):
        if "Identity" in L.REGISTRY[name].torch_ops:
            return name
    raise RuntimeError("no layer type declares torch.nn.Identity")


class Call:
    """One call of a block: the ops of one child module (a scope)."""

    def __init__(self, path, cls, body, depth):
        self.path, self.cls, self.body, self.depth = path, cls, body, depth
        self.block = None
        self.args: dict = {}


def _snake(name):
    name = name.lstrip("_")
    return re.sub(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])", "_", name).lower() or "block"


def _base_name(path, cls):
    if cls in _GENERIC:
        leaf = path.rsplit(".", 1)[-1]
        base = re.sub(r"[\d_]+$", "", leaf) or "seq"
        base = _snake(base)
    else:
        base = _snake(cls)
    base = re.sub(r"[^A-Za-z0-9_]", "_", base)
    if not re.match(r"[A-Za-z]", base):
        base = "b_" + base
    if L.lookup(base) is not None or base in ("repeat", "aux"):
        base += "_block"
    return base


class Emitter:
    def __init__(self, g):
        self.g = g
        self.ops = g.ops
        self.calls: list = []
        self.ident = _identity_type()

    # ------------------------------------------------------------------ structure

    def run(self):
        items, _ = self.seq(list(range(len(self.ops))), [], -1, 0)
        return items

    def seq(self, seq, scope_parts, entry, depth, in_aux=False):
        ops = self.ops
        scope = ".".join(scope_parts)
        taken = set(self.g.children.get(scope, ())) | {ops[k].name.split(".")[len(scope_parts)] for k in seq}
        marker = "x"
        while marker in taken:
            marker += "_"
        state = {"cur": entry, "entry_used": False}
        here = set()

        def ref(v):
            if v == -1:
                return "input"
            if v == entry and v not in here:
                state["entry_used"] = True
                return marker
            n = ops[v].name
            return n[len(scope) + 1:] if scope and n.startswith(scope + ".") else n

        items = []
        i, d = 0, len(scope_parts)
        while i < len(seq):
            op = ops[seq[i]]
            parts = op.parts
            if len(parts) > d:
                # inside an aux item everything is aux already: its child modules are plain calls
                child, aux = parts[d], op.aux and not in_aux
                j = i + 1
                while (j < len(seq) and len(ops[seq[j]].parts) > d and ops[seq[j]].parts[d] == child
                       and (ops[seq[j]].aux and not in_aux) == aux):
                    j += 1
                group = seq[i:j]
                first = ops[group[0]]
                sub_entry, frm = state["cur"], None
                if not aux and not L.REGISTRY[first.type].joins and first.inputs[0] != state["cur"]:
                    sub_entry = first.inputs[0]
                    frm = ref(sub_entry)
                body, end = self.seq(group, scope_parts + [child], sub_entry, depth + 1, in_aux or aux)
                path = f"{scope}.{child}" if scope else child
                if aux:
                    items.append({"aux": body, "name": child})
                else:
                    call = Call(path, self.g.classes.get(path), body, depth + 1)
                    self.calls.append(call)
                    items.append({"call": call, "name": child, "from": frm})
                    state["cur"] = end
                here.update(group)
                i = j
                continue
            leaf = op.name.rsplit(".", 1)[-1]
            ltype = L.REGISTRY[op.type]
            if ltype.joins:
                # the layer before the join is the branch `identity` (the registry's identity type's name)
                branches = [self.ident if v == state["cur"] else {"from": ref(v)} for v in op.inputs]
                items.append({"type": op.type, "branches": branches, "name": leaf, "keys": dict(op.args)})
            else:
                args = dict(op.args)
                for key, v in op.refs.items():
                    args[key] = ref(v)
                frm = ref(op.inputs[0]) if op.inputs[0] != state["cur"] else None
                items.append({"type": op.type, "args": args, "name": leaf, "from": frm})
            if not op.aux or in_aux:
                state["cur"] = seq[i]
            here.add(seq[i])
            i += 1
        if state["entry_used"]:
            items.insert(0, {"type": self.ident, "args": {}, "name": marker, "from": None})
        return items, state["cur"]

    # ------------------------------------------------------------------ blocks

    def finalize(self):
        """Group calls into blocks (deepest first); returns {block name: (args spec, body items)}."""
        blocks: dict = {}
        used_names: set = set()
        for depth in sorted({c.depth for c in self.calls}, reverse=True):
            groups: dict = {}
            for call in (c for c in self.calls if c.depth == depth):
                template, values, slots = _signature(call.body)
                key = (_base_name(call.path, call.cls), template)
                groups.setdefault(key, []).append((call, values, slots))
            for (base, _), members in groups.items():
                name, k = base, 2
                while name in used_names:
                    name, k = f"{base}_{k}", k + 1
                used_names.add(name)
                args, body = _factor(members)
                blocks[name] = (args, body)
                for call, _, _ in members:
                    call.block = name
        return blocks


def _leaves(item):
    """(slot key, value) for each number of an item that may become a block argument."""
    if "call" in item:
        return [(item["name"], k, v) for k, v in item["call"].args.items()]
    if "args" in item:
        return [(item["name"], k, v) for k, v in item["args"].items() if isinstance(v, (int, float)) and not isinstance(v, bool)]
    return []


def _template(item):
    if "aux" in item:
        return ("aux", item["name"], tuple(_template(x) for x in item["aux"]))
    if "call" in item:
        return ("call", item["call"].block, item["name"], item["from"], tuple(sorted(item["call"].args)))
    if "branches" in item:
        return ("join", item["type"], item["name"], repr(item["branches"]), repr(item.get("keys")))
    lits = tuple(sorted((k, repr(v)) for k, v in item["args"].items() if not (isinstance(v, (int, float)) and not isinstance(v, bool))))
    nums = tuple(sorted(k for k, v in item["args"].items() if isinstance(v, (int, float)) and not isinstance(v, bool)))
    return ("layer", item["type"], item["name"], item["from"], lits, nums)


def _signature(body):
    template = tuple(_template(x) for x in body)
    values, slots = [], []

    def walk(items, prefix):
        for it in items:
            if "aux" in it:
                walk(it["aux"], prefix + (it["name"],))
                continue
            for owner, key, v in _leaves(it):
                slots.append((prefix + (owner,), key))
                values.append(v)

    walk(body, ())
    return template, tuple(values), slots


def _factor(members):
    """One block from calls with equal templates: (args {name: default or None}, body with
    '$arg' where the calls differ); sets each call's args."""
    calls = [m[0] for m in members]
    slots = members[0][2]
    columns = [tuple(m[1][s] for m in members) for s in range(len(slots))]
    args: dict = {}  # name -> column
    replace: dict = {}  # slot index -> text
    for s, col in enumerate(columns):
        if len(set(col)) == 1 and all(type(v) is type(col[0]) for v in col):
            continue
        same = next((a for a, c in args.items() if c == col), None)
        if same is not None:
            replace[s] = f"${same}"
            continue
        mult = None
        if all(isinstance(v, int) for v in col):
            for a, c in args.items():
                if all(isinstance(v, int) and v > 0 for v in c) and all(x % y == 0 for x, y in zip(col, c)):
                    ratios = {x // y for x, y in zip(col, c)}
                    if len(ratios) == 1 and next(iter(ratios)) > 1:
                        mult = f"${a} * {next(iter(ratios))}"
                        break
        if mult is not None:
            replace[s] = mult
            continue
        key = slots[s][1]
        name, k = key, 2
        while name in args:
            name, k = f"{key}{k}", k + 1
        args[name] = col
        replace[s] = f"${name}"
    defaults = {}
    for a, col in args.items():
        value, n = Counter(col).most_common(1)[0]
        defaults[a] = value if n > 1 else None
    for i, call in enumerate(calls):
        call.args = {a: col[i] for a, col in args.items() if defaults[a] is None or col[i] != defaults[a]}
    body = _substitute(calls[0].body, slots, replace)
    return defaults, body


def _substitute(body, slots, replace):
    index = {}
    for s, (path, key) in enumerate(slots):
        index[(path, key)] = s
    out = []

    def walk(items, prefix):
        res = []
        for it in items:
            it = dict(it)
            if "aux" in it:
                it["aux"] = walk(it["aux"], prefix + (it["name"],))
            elif "call" in it:
                call = it["call"]
                it["args"] = {k: (replace.get(index.get((prefix + (it["name"],), k)), v)) for k, v in call.args.items()}
            elif "args" in it:
                it["args"] = {k: (replace.get(index.get((prefix + (it["name"],), k)), v)) for k, v in it["args"].items()}
            res.append(it)
        return res

    out = walk(body, ())
    return out


# ---------------------------------------------------------------------- YAML text


def scalar(v):
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        text = repr(v)
        if "e" in text and "." not in text.split("e")[0]:
            text = text.replace("e", ".0e", 1)
        return text
    if isinstance(v, (tuple, list)):
        return "[" + ", ".join(scalar(x) for x in v) + "]"
    text = str(v)
    if (_PLAIN.fullmatch(text) and text.lower() not in _RESERVED and not re.fullmatch(r"[\d.eE+\-_]+", text)) or \
            re.fullmatch(r"\$[A-Za-z_][A-Za-z0-9_]*( \* \d+)?", text):
        return text
    import json

    return json.dumps(text)


def flow(v):
    if isinstance(v, dict):
        return "{" + ", ".join(f"{scalar(k)}: {flow(x)}" for k, x in v.items()) + "}"
    if isinstance(v, list):
        return "[" + ", ".join(flow(x) for x in v) + "]"
    return scalar(v)


def item_data(it):
    """An item as YAML data (dicts and lists), calls rendered with their block and arguments."""
    if "aux" in it:
        return {"aux": [item_data(x) for x in it["aux"]], "name": it["name"]}
    if "call" in it:
        args = it.get("args", it["call"].args)
        d = {it["call"].block: dict(args), "name": str(it["name"])}
    elif "branches" in it:
        d = {it["type"]: it["branches"], **it.get("keys", {}), "name": str(it["name"])}  # a join's keys beside it
    else:
        d = {it["type"]: dict(it["args"]), "name": str(it["name"])}
    if it.get("from"):
        d["from"] = it["from"]
    return d


def fold(items):
    """Runs of one block called with the same arguments under consecutive numeric names: repeat."""
    out, i = [], 0
    while i < len(items):
        d = items[i]
        j = i + 1
        key = _run_key(d)
        if key is not None:
            start = int(d["name"])
            while j < len(items) and _run_key(items[j]) == key and items[j]["name"] == str(start + j - i):
                j += 1
        if j - i >= 2:
            body = dict(d)
            off = start - 1
            body["name"] = "{$i}" if off == 0 else ("{$i + %d}" % off if off > 0 else "{$i - %d}" % -off)
            out.append({"repeat": j - i, "layers": [body]})
        else:
            out.append(d)
        i = j if j - i >= 2 else i + 1
    return out


def _run_key(d):
    if not isinstance(d, dict) or "from" in d or "aux" in d or "repeat" in d or not str(d.get("name", "")).isdigit():
        return None
    rest = {k: v for k, v in d.items() if k != "name"}
    return repr(rest)


def write_items(items, indent, lines, width=110):
    pad = " " * indent
    for d in fold(items):
        if "repeat" in d:
            lines.append(f"{pad}- repeat: {d['repeat']}")
            lines.append(f"{pad}  layers:")
            write_items(d["layers"], indent + 4, lines, width)
            continue
        if "aux" in d:
            lines.append(f"{pad}- aux:")
            write_items(d["aux"], indent + 4, lines, width)
            lines.append(f"{pad}  name: {scalar(d['name'])}")
            continue
        text = flow(d)
        if len(pad) + 2 + len(text) <= width:
            lines.append(f"{pad}- {text}")
            continue
        first = True
        for k, v in d.items():
            lead = f"{pad}- " if first else f"{pad}  "
            first = False
            if isinstance(v, list) and v and len(lead) + len(flow(v)) + len(scalar(k)) + 2 > width:
                lines.append(f"{lead}{scalar(k)}:")
                for b in v:
                    lines.append(f"{pad}    - {flow(b)}")
            else:
                lines.append(f"{lead}{scalar(k)}: {flow(v)}")


def _prepare_items(items):
    return [item_data(it) for it in items]


def to_yaml(g, name, title, source, notes=None) -> str:
    em = Emitter(g)
    items = em.run()
    blocks = em.finalize()
    lines = [f"name: {scalar(name)}", f"title: {scalar(title)}"]
    lines.append(f"source: {scalar(source)}")
    if notes:
        lines.append(f"notes: {scalar(notes)}")
    axes = symbol_names(g.input)
    if axes:
        lines.append(f"input: [{g.input[0]}, {', '.join(axes)}]")
        lines.append("symbols: {" + ", ".join(f"{a}: {v}" for a, v in zip(axes, g.input[1:])) + "}")
    else:
        lines.append(f"input: [{', '.join(str(d) for d in g.input)}]")
    if blocks:
        lines.append("blocks:")
        for bname, (args, body) in blocks.items():
            lines.append(f"  {bname}:")
            if args:
                lines.append(f"    args: {flow(args)}")
            lines.append("    layers:")
            write_items(_prepare_items(body), 6, lines)
    lines.append("layers:")
    write_items(_prepare_items(items), 2, lines)
    if getattr(g, "several", False):
        last = len(g.ops) - 1  # the spec's own output is its last layer; the others are listed
        extra = [g.ops[i].name for i in dict.fromkeys(g.outputs) if i != last and i >= 0]
        if extra:
            lines.append(f"outputs: {flow(extra)}")
    text = "\n".join(lines) + "\n"
    validate(text, g)
    return text


# ---------------------------------------------------------------------- the spec must load


def _shape(shape) -> str:
    return "x".join(str(d) for d in shape)


def validate(text: str, g) -> None:
    """Load the written spec with archcalc's own loader and run the engine on it, before anyone
    writes or uses it, and compare each layer's output shape with the one the importer recorded
    (ONNX shape inference). A spec that does not load (a negative size, a
    stride of 0, a NaN epsilon, a name the loader refuses) or computes another shape is an
    ImportFailed naming the node or layer and the bad value, in one line."""
    from ..analysis.engine import analyze
    from ..errors import ArchcalcError, short
    from ..spec.load import loads
    from .ir import ImportFailed, shown_path

    file = shown_path(g.file or "<imported>")
    for stage in ("load", "analyze"):
        try:
            if stage == "load":
                net = loads(text, g.file or "<imported>")
            else:
                report = analyze(net)
        except ArchcalcError as err:
            culprit = _culprit(g, stage == "analyze")
            if culprit is not None:
                op, fact = culprit
                raise ImportFailed(f"{file}: {op.origin or 'layer ' + short(op.name, 60)}: the {op.type} layer it gives "
                                   f"does not load: {fact}") from None
            raise ImportFailed(f"{file}: the imported spec does not load: {err}") from None
    rows = {r.name: r for r in report.rows}
    for op in g.ops:
        # ONNX ops (those with an origin) carry the shape ONNX inferred for that layer; a traced op's
        # shape is the torch call's, which a layer may split with the next (torch's round trip, --check,
        # compares those models)
        row = rows.get(op.name)
        if not op.origin or row is None or op.shape is None or not all(isinstance(d, int) for d in op.shape):
            continue
        if tuple(row.shape) != tuple(op.shape):
            raise ImportFailed(f"{file}: {op.origin}: the model gives an output of {_shape(op.shape)}, but archcalc's "
                               f"{op.type} layer computes {_shape(row.shape)}")


def _culprit(g, run_engine):
    """The first layer that does not load on its own (a one-layer spec at its input shape; with
    ``run_engine``, also run through the engine), with the loader's message; None when each
    loads alone. Only the spec's own loader runs unless the whole spec loaded."""
    from ..analysis.engine import analyze
    from ..errors import ArchcalcError
    from ..spec.load import loads

    for op in g.ops:
        if L.REGISTRY[op.type].joins or op.refs or len(op.inputs) != 1:
            continue
        x = g.input if op.inputs[0] == -1 else g.ops[op.inputs[0]].shape
        if not x or not all(isinstance(d, int) for d in x):
            continue
        one = f"input: {flow(list(x))}\nlayers:\n- {flow({op.type: dict(op.args), 'name': 'layer'})}\n"
        try:
            net = loads(one, "<layer>")
            if run_engine:
                analyze(net)
        except ArchcalcError as err:
            return op, err.fact
    return None
