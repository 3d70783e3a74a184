"""archcalc graph: Mermaid and DOT, checked for structure (there is no Mermaid renderer in the test
environment: the validator below accepts exactly the subset of Mermaid flowchart syntax archcalc
emits, each rule one rule of Mermaid's grammar; docs/graphs.md holds the committed output). Checked
once by hand against Mermaid 11's own parser (mermaid.parse under Node): every zoo graph parses, the
broken examples in test_validator_rejects_broken_mermaid do not, and the 500-edge limit below is
the one that parser enforces."""

import re

import pytest

from archcalc import analyze, load
from archcalc.output.graph import dot, mermaid
from archcalc.spec.load import loads
from conftest import ROOT

ID = r"[A-Za-z][A-Za-z0-9_]*"
LABEL = r'"[^"\n]*"'  # a quoted label: no raw double quote inside (Mermaid: #34; instead)
RESERVED = {"end", "subgraph", "graph", "flowchart", "style", "classDef", "class", "click", "linkStyle", "default"}


def validate_mermaid(text: str) -> dict:
    """Raise AssertionError unless ``text`` is a well-formed Mermaid flowchart of archcalc's
    subset; returns {"nodes": {id: label}, "edges": [(a, b, label)], "subgraphs": n}."""
    lines = text.rstrip("\n").split("\n")
    assert re.fullmatch(r"flowchart (TD|TB|LR|RL|BT)", lines[0]), lines[0]
    nodes, edges, depth, subgraphs, sub_ids = {}, [], 0, 0, set()
    for raw in lines[1:]:
        line = raw.strip()
        m = re.fullmatch(rf"({ID})\[({LABEL})\]", line)
        if m:
            assert m.group(1) not in RESERVED and m.group(1) not in nodes and m.group(1) not in sub_ids, line
            nodes[m.group(1)] = m.group(2)
            continue
        m = re.fullmatch(rf"subgraph ({ID})\[({LABEL})\]", line)
        if m:
            assert m.group(1) not in RESERVED and m.group(1) not in sub_ids and m.group(1) not in nodes, line
            sub_ids.add(m.group(1))
            depth += 1
            subgraphs += 1
            continue
        if line == "end":
            depth -= 1
            assert depth >= 0, "an 'end' without its subgraph"
            continue
        m = re.fullmatch(rf"({ID}) -->\|({LABEL})\| ({ID})(\(\[({LABEL})\]\))?", line)
        assert m, f"not a Mermaid statement of archcalc's subset: {raw!r}"
        a, label, b = m.group(1), m.group(2), m.group(3)
        if m.group(4):
            assert b not in nodes
            nodes[b] = m.group(5)
        edges.append((a, b, label))
    assert depth == 0, "a subgraph is not closed"
    for a, b, _ in edges:
        assert a in nodes and b in nodes, (a, b)
    for label in list(nodes.values()) + [e[2] for e in edges]:
        inner = label[1:-1]
        # entity codes only where Mermaid expects them; no characters that would end or reshape a label
        assert not re.search(r"[<>](?!br/>)", inner.replace("<br/>", "")), label
        assert not re.search(r"#(?!\d+;)", inner), label
        assert not set(re.sub(r"#\d+;", "", inner)) & set("[]{}|`;\\"), label
    return {"nodes": nodes, "edges": edges, "subgraphs": subgraphs}


def test_inception_bottleneck_graph():
    net = load("inception-bottleneck")
    g = validate_mermaid(mermaid(net, analyze(net)))
    assert g["subgraphs"] == 4  # b1x1, b3x3, b5x5, pool
    assert len(g["nodes"]) == 14 + 2  # 14 layers, input, output
    # the input feeds the four branches; the concat reads their four outputs; shapes on the edges
    assert sum(1 for a, _, _ in g["edges"] if a == "inp") == 4
    into_concat = sorted(lbl for a, b, lbl in g["edges"] if g["nodes"][b].startswith('"output<br/>concat'))
    assert into_concat == ['"128x28x28"', '"192x28x28"', '"64x28x28"', '"96x28x28"']  # 128 + 192 + 96 + 64 = 480
    assert ("n13", "outp", '"480x28x28"') in g["edges"]
    assert '"conv2<br/>conv 3x3 p1<br/>110,784 params"' in g["nodes"].values()  # 192*64*9 + 192


def test_depth_folds_blocks_into_nodes():
    net = load("resnet18")
    r = analyze(net)
    g = validate_mermaid(mermaid(net, r, depth=1))
    assert g["subgraphs"] == 0
    labels = list(g["nodes"].values())
    # layer1: two basic blocks of two 3x3x64x64 convs and two BN(64): 4 * 36,864 + 4 * 128
    assert '"layer1<br/>block<br/>147,968 params<br/>462,422,016 MACs"' in labels and 4 * 36864 + 4 * 128 == 147_968
    assert len(g["nodes"]) == 4 + 4 + 3 + 2  # conv1 bn1 relu maxpool, 4 stages, avgpool flatten fc, in/out
    full = validate_mermaid(mermaid(net, r))
    assert full["subgraphs"] > 8 and len(full["nodes"]) == len(r.rows) + 2


def test_every_zoo_graph_is_well_formed_and_within_mermaids_limits():
    """Mermaid (and GitHub) refuse a diagram of more than 500 edges or 50,000 characters: without
    --depth, a large network is folded to the deepest level that fits, saying so."""
    from archcalc.spec import zoo
    from archcalc.output.graph import MERMAID_MAX_EDGES, MERMAID_MAX_TEXT, mermaid_fitting

    folded = []
    for name in zoo.names():
        net = load(name)
        r = analyze(net)
        text, note = mermaid_fitting(net, r)
        g = validate_mermaid(text)
        assert len(g["edges"]) <= MERMAID_MAX_EDGES and len(text) <= MERMAID_MAX_TEXT, name
        if note is None:
            assert len(g["nodes"]) == len(r.rows) + 2, name
        else:
            folded.append(name)
            assert "folded to --depth" in note and len(g["nodes"]) < len(r.rows) + 2, name
        d = dot(net, r)
        assert d.count("{") == d.count("}") and d.startswith("digraph archcalc {"), name
    assert "resnet152" in folded and "resnet50" not in folded  # 566 edges at full depth; resnet50 has fewer


def test_a_graph_too_large_for_mermaid_says_so(cli, tmp_path):
    spec = tmp_path / "long.yaml"
    spec.write_text("input: [4, 4, 4]\nlayers:\n  - repeat: 300\n    layers: [{conv: {kernel: 1}}, relu]\n")
    code, out, err = cli("graph", str(spec))
    assert code == 0 and out.count(" -->|") == 601  # 600 layers in a chain, plus the edge to the output
    assert err.startswith("archcalc: note: 601 edges and ") and "will not render there" in err


def test_hostile_names_cannot_break_out_of_labels():
    net = loads('name: "a\\"];x[\\"b"\ninput: [3, 8, 8]\nlayers:\n  - conv: {out: 4, kernel: 3}\n', "h.yaml")
    net.nodes[0].name = 'c"]-->|x|z[("end'
    r = analyze(net)
    g = validate_mermaid(mermaid(net, r))
    assert '"c#34;#93;--#62;#124;x#124;z#91;(#34;end<br/>conv 3x3<br/>112 params"' in g["nodes"].values()
    d = dot(net, r)
    assert 'label="c\\"]-->|x|z[(\\"end\\nconv 3x3\\n112 params"' in d
    assert 'label="a\\"];x[\\"b";' in d


def test_docs_graphs_page_is_the_command_output():
    """docs/graphs.md: each ```mermaid block is exactly the output of the command block above it
    (the docs test checks the command blocks themselves)."""
    page = (ROOT / "docs" / "graphs.md").read_text()
    pairs = re.findall(r"```\n\$ archcalc (graph [^\n]+)\n(.*?)```\n\n(?:Rendered:\n\n)?```mermaid\n(.*?)```", page, re.S)
    assert len(pairs) == 2
    for command, shown, rendered in pairs:
        assert shown == rendered, command
        validate_mermaid(rendered)


def test_validator_rejects_broken_mermaid():
    good = 'flowchart TD\n    a["x"]\n    b["y"]\n    a -->|"1"| b\n'
    validate_mermaid(good)
    for bad in ('flowchart TD\n    a["x"]\n    a -->|"1"| b\n',  # edge to an undefined node
                'flowchart TD\n    subgraph s["x"]\n    a["x"]\n',  # unclosed subgraph
                'flowchart TD\n    a["x"y"]\n',  # a quote inside a label
                'flowchart TD\n    end["x"]\n',  # a reserved id
                'graph XY\n'):
        with pytest.raises(AssertionError):
            validate_mermaid(bad)


def test_graph_cli(cli):
    code, out, _ = cli("graph", "inception-bottleneck", "-f", "dot")
    assert code == 0 and out.count("subgraph cluster_") == 4 and "n13 -> outp [label=\"480x28x28\"];" in out
    code, _, err = cli("graph", "vgg16", "--direction", "XY")
    assert code == 2 and "expected TD or LR" in err
