"""``archcalc graph``: the network as a graph, in Mermaid (renders in GitHub Markdown) or DOT.

Blocks (dotted name prefixes: ``layer1.0.residual.conv1`` is in ``layer1`` > ``layer1.0`` >
``layer1.0.residual``) become nested subgraphs; ``depth`` folds everything below that many name
parts into one node per block. Edges carry the shape that flows along them.

Every user string is a quoted label with its special characters written as entities (Mermaid:
``#quot;`` etc.; DOT: backslash escapes), so a name can never end a label or inject syntax; node
ids are generated (n0, n1, ...), never taken from the spec.
"""

from __future__ import annotations

from ..errors import UsageError, Where
from ..limits import MAX_GRAPH_WORK
from .report import details, exact, shape_text
from .textout import plain


class Graph:
    """Nodes, edges and the block tree, after folding at ``depth``."""

    def __init__(self, net, report, depth=None):
        self.nodes = []  # (id, label lines, block path tuple)
        self.edges = []  # (src id, dst id, label)
        ids = {}  # node index (or folded block name) -> graph id
        group_of = {}  # node index -> key in ids
        self.input_id = "inp"
        self.nodes.append(("inp", ["input", shape_text(report.input)], ()))
        n = 0
        folded = {}  # folded block name -> its node entry (a list, totals filled in as rows come)
        for i, (node, row) in enumerate(zip(net.nodes, report.rows)):
            parts = row.name.split(".")
            if depth and len(parts) > depth:
                key = ".".join(parts[:depth])
                group_of[i] = key
                if key not in ids:
                    ids[key] = f"n{n}"
                    n += 1
                    folded[key] = [ids[key], [parts[depth - 1], "block"], tuple(parts[: depth - 1]), 0, 0]
                    self.nodes.append(folded[key])
                g = folded[key]
                g[3] = g[3] + row.params
                g[4] = g[4] + (0 if row.aux else row.macs)
                continue
            group_of[i] = i
            ids[i] = f"n{n}"
            n += 1
            det = details(node)
            label = [parts[-1], node.type + (f" {det}" if det else "")]
            if row.params:
                label.append(f"{exact(row.params)} params")
            self.nodes.append((ids[i], label, tuple(parts[:-1])))
        # folded blocks: add their totals to the label
        for k, item in enumerate(self.nodes):
            if isinstance(item, list):
                nid, label, path, p, m = item
                label = label + ([f"{exact(p)} params"] if p else []) + ([f"{exact(m)} MACs"] if m else [])
                self.nodes[k] = (nid, label, path)
        seen = set()
        for i, node in enumerate(net.nodes):
            dst = ids[group_of[i]]
            for j in node.inputs:
                src = "inp" if j < 0 else ids[group_of[j]]
                if src == dst:
                    continue
                shape = shape_text(report.input) if j < 0 else shape_text(report.rows[j].shape)
                if (src, dst) in seen:
                    continue
                seen.add((src, dst))
                self.edges.append((src, dst, shape))
        self.output_id = ids[group_of[net.output if net.output >= 0 else len(net.nodes) - 1]]
        # the block tree: path tuple -> child paths
        self.blocks = set()
        for item in self.nodes:
            path = item[2]
            for k in range(len(path), 0, -1):
                if path[:k] in self.blocks:
                    break  # its own parents are there already
                self.blocks.add(path[:k])
        # path -> its child blocks, sorted (what each emitter walks: linear, not a scan per block)
        self.children: dict = {}
        for p in sorted(self.blocks):
            self.children.setdefault(p[:-1], []).append(p)

    def by_path(self) -> dict:
        """Block path -> its nodes' (id, label lines), in order (each renderer draws blocks from it)."""
        out: dict = {}
        for nid, label, path in self.nodes:
            out.setdefault(path, []).append((nid, label))
        return out


# --------------------------------------------------------------------------- Mermaid

_MERMAID_ENTITIES = {ch: f"#{ord(ch)};" for ch in '"<>#&`|{}[];\\'}  # Mermaid's entity codes: #34; is "


def mermaid_text(s: str) -> str:
    """A label's text for Mermaid: plain, with every character that could close or reshape a label
    written as an entity code."""
    return "".join(_MERMAID_ENTITIES.get(ch, ch) for ch in plain(s))


def mermaid(net, report, depth=None, direction="TD") -> str:
    g = Graph(net, report, depth)
    out = [f"flowchart {direction}"]
    by_path = g.by_path()
    block_ids = {p: f"b{k}" for k, p in enumerate(sorted(g.blocks))}

    def emit(path, indent):
        pad = "    " * indent
        for nid, label in by_path.get(path, []):
            text = "<br/>".join(mermaid_text(x) for x in label)
            out.append(f'{pad}{nid}["{text}"]')
        for child in g.children.get(path, ()):
            out.append(f'{pad}subgraph {block_ids[child]}["{mermaid_text(child[-1])}"]')
            emit(child, indent + 1)
            out.append(f"{pad}end")

    emit((), 1)
    for src, dst, shape in g.edges:
        out.append(f'    {src} -->|"{mermaid_text(shape)}"| {dst}')
    out.append(f'    {g.output_id} -->|"{mermaid_text(shape_text(report.output))}"| outp(["output"])')
    return "\n".join(out) + "\n"


# Mermaid's defaults, which GitHub uses: a diagram with more edges or characters is not drawn
MERMAID_MAX_EDGES = 500
MERMAID_MAX_TEXT = 50_000


def mermaid_fitting(net, report, depth=None, direction="TD"):
    """(text, note): the Mermaid graph at ``depth``; without a depth, folded to the deepest level
    that stays within Mermaid's default limits (500 edges, 50,000 characters), with a note saying
    so. ``note`` is None when nothing needed saying."""

    def size(text):
        return text.count(" -->|"), len(text)

    if depth is None:
        # without a depth, a graph too large for Mermaid is rendered again at each fold until one
        # fits: each render is linear, their number is the names' depth; bounded before the first
        deepest = max((r.name.count(".") for r in report.rows), default=0)
        renders = deepest + 1
        if len(report.rows) > MERMAID_MAX_EDGES and renders * len(report.rows) > MAX_GRAPH_WORK:
            raise UsageError(
                f"fitting {len(report.rows):,} layers named {deepest + 1} parts deep to Mermaid could take {renders:,} "
                f"renders ({renders * len(report.rows):,} layer renders), above the limit of {MAX_GRAPH_WORK:,}",
                hint="choose a fold with --depth N, or use --format dot", where=Where(file=net.file) if net.file else None,
            )
    text = mermaid(net, report, depth, direction)
    edges, chars = size(text)
    if edges <= MERMAID_MAX_EDGES and chars <= MERMAID_MAX_TEXT:
        return text, None
    limits = f"Mermaid draws at most {MERMAID_MAX_EDGES} edges and {MERMAID_MAX_TEXT:,} characters (GitHub too)"
    if depth is None:
        for d in range(deepest, 0, -1):
            folded = mermaid(net, report, d, direction)
            e, c = size(folded)
            if e <= MERMAID_MAX_EDGES and c <= MERMAID_MAX_TEXT:
                return folded, (f"{edges} edges and {chars:,} characters at full depth; {limits}: folded to --depth {d} "
                                "(--depth N chooses, --format dot has no limit)")
    return text, (f"{edges} edges and {chars:,} characters; {limits}: this graph will not render there "
                  "(fold it with --depth N, or use --format dot)")


# --------------------------------------------------------------------------- DOT


def dot_text(s: str) -> str:
    return plain(s).replace("\\", "\\\\").replace('"', '\\"')


def dot(net, report, depth=None) -> str:
    g = Graph(net, report, depth)
    out = ["digraph archcalc {", "    rankdir=TB;", '    node [shape=box, fontname="Helvetica"];',
           '    edge [fontname="Helvetica", fontsize=10];',
           f'    label="{dot_text(report.name)}"; labelloc=t;']
    by_path = g.by_path()
    block_ids = {p: f"cluster_{k}" for k, p in enumerate(sorted(g.blocks))}

    def emit(path, indent):
        pad = "    " * indent
        for nid, label in by_path.get(path, []):
            out.append(f'{pad}{nid} [label="' + "\\n".join(dot_text(x) for x in label) + '"];')
        for child in g.children.get(path, ()):
            out.append(f"{pad}subgraph {block_ids[child]} {{")
            out.append(f'{pad}    label="{dot_text(child[-1])}";')
            emit(child, indent + 1)
            out.append(f"{pad}}}")

    emit((), 1)
    for src, dst, shape in g.edges:
        out.append(f'    {src} -> {dst} [label="{dot_text(shape)}"];')
    out.append('    outp [shape=oval, label="output"];')
    out.append(f'    {g.output_id} -> outp [label="{dot_text(shape_text(report.output))}"];')
    out.append("}")
    return "\n".join(out) + "\n"
