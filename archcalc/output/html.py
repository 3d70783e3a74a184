"""HTML for notebooks (``Report._repr_html_`` and ``Comparison._repr_html_`` in :mod:`archcalc.api`):
the summary's layer table (shares as bars, receptive fields), its totals and warnings, long networks
folded as the terminal folds them; the comparison's metrics and ratios.

Every user string (names, titles, sources, warnings: spec text is untrusted) goes through
:func:`html.escape` after :func:`archcalc.output.textout.plain`; nothing else is markup. No script,
no external resource: the styles are inline."""

from __future__ import annotations

from html import escape

from ..analysis.engine import Report
from .render import METRICS, MAX_ROWS, _details_map, _pct, layer_diffs, row_label, total_lines
from .report import exact, fold, ratio, rf_text, shape_text, share
from .textout import plain

_TABLE = 'class="archcalc" style="border-collapse: collapse; font-size: 12px"'
_CELL = "padding: 1px 6px; border-bottom: 1px solid #ddd"
_NUM = _CELL + "; text-align: right; font-variant-numeric: tabular-nums"
_BAR = "display: inline-block; height: 0.7em; background: #4c78a8; vertical-align: middle"

COLUMNS = ("#", "layer", "type", "details", "output", "params", "params %", "MACs", "MACs %", "activations",
           "RF size/stride/pad")
_RIGHT = {"#", "params", "params %", "MACs", "MACs %", "activations"}


def t(text) -> str:
    """A user string as HTML text: plain characters (no control or bidi characters), escaped."""
    return escape(plain(text), quote=True)


def _share(frac) -> str:
    if frac is None or frac == 0:
        return ""
    width = max(1, round(frac * 60))
    return f'{_pct(frac)} <span style="{_BAR}; width: {width}px"></span>'


def _cells(values, header=False) -> str:
    tag = "th" if header else "td"
    out = []
    for col, v in values:
        style = _NUM if col in _RIGHT else _CELL
        out.append(f'<{tag} style="{style}">{v}</{tag}>')
    return "<tr>" + "".join(out) + "</tr>"


def summary_html(report: Report, depth=None, fit=None, net=None, max_rows: int = MAX_ROWS) -> str:
    """The summary as one HTML fragment: title, layer table (the middle rows folded into one line
    over ``max_rows``; 0 shows every row), totals, warnings."""
    dmap = _details_map(report, net)
    tot = report.totals
    tp, tm = tot["params"], tot["macs"]
    folded = fold(report.rows, depth)
    shown: list = list(enumerate(folded, 1))
    hidden = 0
    if max_rows and len(folded) > max_rows:
        half = max_rows // 2
        hidden = len(folded) - 2 * half
        shown = shown[:half] + [None] + shown[-half:]
    title = t(report.name) + (f" — {t(report.title)}" if report.title else "")
    parts = [f'<div class="archcalc-summary"><p><b>{title}</b><br>'
             f"input {t(shape_text(report.input))}, dtype {t(report.dtype)}, batch {t(report.batch)}"
             + (", symbols " + t(", ".join(f"{k}={v}" for k, v in report.values.items())) if report.values else "")
             + "</p>", f"<table {_TABLE}>", "<thead>" + _cells([(c, c) for c in COLUMNS], header=True) + "</thead><tbody>"]
    for item in shown:
        if item is None:
            parts.append(f'<tr><td colspan="{len(COLUMNS)}" style="{_CELL}; color: #888; text-align: center">'
                         f"… {hidden:,} rows not shown …</td></tr>")
            continue
        i, r = item
        sm = "" if r.aux else _share(share(r.macs, tm))
        values = (i, t(row_label(r)), t(r.type), t(dmap.get(id(r), "")), t(shape_text(r.shape)), t(exact(r.params)),
                  _share(share(r.params, tp)), t(exact(r.macs)), sm, t(exact(r.values)), t(rf_text(r.rf)))
        parts.append(_cells(zip(COLUMNS, values)))
    footer = ("", "<b>total</b>", "", "", t(shape_text(report.output)), f"<b>{t(exact(tp))}</b>", "",
              f"<b>{t(exact(tm))}</b>", "", t(exact(tot["activations"])), "")
    parts.append("</tbody><tfoot>" + _cells(zip(COLUMNS, footer)) + "</tfoot></table>")
    if hidden:
        parts.append(f'<p style="color: #888">({hidden:,} of {len(folded):,} rows folded into one line: '
                     "max_rows=0 shows every row, depth=N folds blocks, to_csv() and to_json() list every layer)</p>")
    if report.source:
        parts.append(f'<p style="color: #888">source: {t(report.source)}</p>')
    parts.append(f"<table {_TABLE}><tbody>")
    for k, v, level in total_lines(report, fit):
        pad = f"; padding-left: {0.5 + 1.5 * level}em" if level else ""
        parts.append(f'<tr><th style="{_CELL}; text-align: left{pad}">{t(k)}</th><td style="{_CELL}">{t(v)}</td></tr>')
    parts.append("</tbody></table>")
    if report.warnings:
        parts.append('<ul class="archcalc-warnings">' + "".join(
            f'<li style="color: #a60">warning: {t(w)}</li>' for w in report.warnings) + "</ul>")
    parts.append("</div>")
    return "\n".join(parts)


def compare_html(reports) -> str:
    """The comparison: each metric per network with the ratios to the first, the layers that
    differ where the layer lists line up, and every warning."""
    names = [t(r.name) for r in reports]
    head = ["metric", *names, *[f"{n} / {names[0]}" for n in names[1:]]]
    blank = [""] * (len(reports) - 1)
    rows = [["input", *[t(shape_text(r.input)) for r in reports], *blank],
            ["output", *[t(shape_text(r.output)) for r in reports], *blank]]
    for key, label in METRICS:
        rows.append([t(label), *[t(exact(r.totals[key])) for r in reports],
                     *[t(ratio(reports[0].totals[key], r.totals[key])) for r in reports[1:]]])
    rows.append(["final receptive field", *[t(rf_text(r.rows[-1].rf)) for r in reports], *blank])
    parts = [f'<div class="archcalc-compare"><table {_TABLE}>',
             "<thead><tr>" + "".join(f'<th style="{_CELL}">{h}</th>' for h in head) + "</tr></thead><tbody>"]
    for row in rows:
        parts.append("<tr>" + f'<th style="{_CELL}; text-align: left">{row[0]}</th>'
                     + "".join(f'<td style="{_NUM}">{c}</td>' for c in row[1:]) + "</tr>")
    parts.append("</tbody></table>")
    diffs = layer_diffs(reports)
    if diffs is None:
        parts.append("<p>The layer lists do not line up (different layers); totals only.</p>")
    elif not diffs:
        parts.append("<p>Every layer agrees.</p>")
    else:
        parts.append(f"<p><b>layers that differ</b></p><table {_TABLE}><thead><tr>"
                     + f'<th style="{_CELL}">layer</th>'
                     + "".join(f'<th style="{_CELL}">{n}: output / params / MACs</th>' for n in names) + "</tr></thead><tbody>")
        for g in diffs:
            parts.append(f'<tr><td style="{_CELL}">{t(g[0].name)}</td>' + "".join(
                f'<td style="{_CELL}">{t(shape_text(x.shape))} / {t(exact(x.params))} / {t(exact(x.macs))}</td>' for x in g)
                + "</tr>")
        parts.append("</tbody></table>")
    warnings = [(r.name, w) for r in reports for w in r.warnings]
    if warnings:
        parts.append("<ul>" + "".join(f'<li style="color: #a60">warning {t(n)}: {t(w)}</li>' for n, w in warnings) + "</ul>")
    parts.append("</div>")
    return "\n".join(parts)


def compare_text_markdown(reports) -> str:
    """The comparison as Markdown: the metrics table, then the layers that differ."""
    from .render import compare_markdown, md

    out = compare_markdown(reports)
    diffs = layer_diffs(reports)
    if diffs is None:
        out += "\nThe layer lists do not line up (different layers); totals only.\n"
    elif not diffs:
        out += "\nEvery layer agrees.\n"
    else:
        out += "\n| layer | " + " | ".join(f"{md(r.name)}: output / params / MACs" for r in reports) + " |\n"
        out += "|" + "---|" * (len(reports) + 1) + "\n"
        for g in diffs:
            out += f"| {md(g[0].name)} | " + " | ".join(
                f"{shape_text(x.shape)} / {exact(x.params)} / {exact(x.macs)}" for x in g) + " |\n"
    for r in reports:
        for w in r.warnings:
            out += f"- warning {md(r.name)}: {md(w)}\n"
    return out
