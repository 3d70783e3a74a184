"""Notebook rendering (issue 25): Report._repr_html_ and Comparison._repr_html_, parsed with
html.parser; numbers from torchvision's table (tests/reference/torchvision.json) and hand
arithmetic; every user string escaped."""

from __future__ import annotations

from html.parser import HTMLParser

import archcalc
from conftest import REFERENCE


class Tables(HTMLParser):
    """Every <table> as a list of rows, each a list of cell texts; every element's tag seen."""

    def __init__(self, text: str):
        super().__init__(convert_charrefs=True)
        self.tables: list = []
        self.tags: list = []
        self._cell = None
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        if tag == "table":
            self.tables.append([])
        elif tag == "tr":
            self.tables[-1].append([])
        elif tag in ("td", "th"):
            self._cell = []

    def handle_endtag(self, tag):
        if tag in ("td", "th") and self._cell is not None:
            self.tables[-1][-1].append("".join(self._cell).strip())
            self._cell = None

    def handle_data(self, data):
        if self._cell is not None:
            self._cell.append(data)


def _num(text: str) -> int:
    return int(text.replace(",", ""))


def test_vgg16_html_has_the_layer_table():
    html = archcalc.summary("vgg16")._repr_html_()
    layers, totals = Tables(html).tables
    head, *rows, foot = layers
    assert head[:2] == ["#", "layer"] and "params %" in head and "RF size/stride/pad" in head
    col = {name: i for i, name in enumerate(head)}
    assert len(rows) == 40  # vgg16: 13 conv, 13 relu, 5 pool, adaptive pool, flatten, 3 linear, 2 relu, 2 dropout
    by_name = {r[col["layer"]]: r for r in rows}
    assert _num(foot[col["params"]]) == REFERENCE["vgg16"]["params"] == 138_357_544
    assert _num(foot[col["MACs"]]) == REFERENCE["vgg16"]["macs"] == 15_470_264_320
    assert sum(_num(r[col["params"]]) for r in rows) == 138_357_544
    conv = by_name["conv1_1"]
    assert _num(conv[col["params"]]) == 64 * 3 * 3 * 3 + 64
    assert _num(conv[col["MACs"]]) == 64 * 224 * 224 * 27
    assert conv[col["output"]] == "64x224x224"
    assert conv[col["RF size/stride/pad"]] == "3/1/1"
    # fc6 holds 25088 x 4096 + 4096 of the params: 74.3%
    assert by_name["fc6"][col["params %"]] == f"{100 * (25088 * 4096 + 4096) / 138_357_544:.1f}"
    # the receptive field after conv1_2: 5, stride 1, padding 2
    assert by_name["conv1_2"][col["RF size/stride/pad"]] == "5/1/2"
    labels = {r[0]: r[1] for r in totals}
    assert labels["params"].startswith("138,357,544")
    assert "peak_memory (inference_peak_bytes)" in labels


def test_long_networks_fold_like_the_terminal():
    r = archcalc.summary("vgg16", max_rows=10)
    layers = Tables(r._repr_html_()).tables[0]
    body = layers[1:-1]
    assert len(body) == 11  # 5 first rows, one fold line, 5 last rows
    assert body[5][0] == "… 30 rows not shown …"
    assert [row[1] for row in body[:2]] == ["conv1_1", "relu1_1"] and body[-1][1] == "fc8"
    assert "30 rows not shown" in r.table()


def test_names_are_escaped():
    # layer names are letters, digits, '_' and '-' (the loader refuses others); name, title and source are free text
    spec = {"name": "<script>alert(1)</script>", "title": "a & b <i>", "source": "<img src=x onerror=alert(1)>",
            "input": [3, 8, 8], "layers": [{"conv": {"out": 4, "kernel": 3}}]}
    r = archcalc.summary(spec)
    html = r._repr_html_()
    parsed = Tables(html)
    assert not {"script", "i", "img"} & set(parsed.tags)
    assert parsed.tags.count("b") == 4  # the title line, "total" and the two bold totals: none from the spec
    assert "&lt;script&gt;alert(1)&lt;/script&gt; — a &amp; b &lt;i&gt;" in html
    assert "source: &lt;img src=x onerror=alert(1)&gt;" in html
    c = archcalc.compare(spec, spec)
    assert "script" not in Tables(c._repr_html_()).tags
    assert "<script>" not in r._repr_markdown_() and "<script>" not in c._repr_markdown_()


def test_comparison_html():
    c = archcalc.compare("vgg16", "vgg19")
    table = Tables(c._repr_html_()).tables[0]
    assert table[0] == ["metric", "vgg16", "vgg19", "vgg19 / vgg16"]
    params = next(r for r in table if r[0] == "params")
    assert [_num(x) for x in params[1:3]] == [REFERENCE["vgg16"]["params"], REFERENCE["vgg19"]["params"]]
    assert params[3] == f"{143_667_240 / 138_357_544:.3g}x"
