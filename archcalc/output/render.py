"""Text renderings of reports: tables for any terminal, JSON, CSV, Markdown. Only the CLI calls this.

Every user string (name, title, source, warning) goes through :func:`archcalc.output.textout.plain`
(tables, CSV) or :func:`md` (Markdown): it is printed as the characters it holds, never as markup
or terminal escapes. JSON escapes control characters itself.
"""

from __future__ import annotations

import csv
import io
import json

from ..analysis.engine import Report
from ..expr import is_symbolic
from .report import (both, details, exact, fold, human, jsonable, layer_line, param_split, ratio, rf_text, shape_text, share, sizes,
                     to_dict)
from .textout import Column, Out, plain, print_table

CONVENTIONS = (
    "params: learnable parameters (BN running statistics are buffers, counted apart). "
    "MACs: multiply-accumulates of conv and linear layers at inference (aux heads apart); "
    "FLOPs = 2 x MACs. activations: values of every new tensor per image, input included "
    "(views and in-place layers add none). RF: receptive field size, effective stride and "
    "effective padding (Araujo et al., Distill 2019)."
)


# --------------------------------------------------------------------------- helpers


def md(text) -> str:
    """A user string inside a Markdown table cell: plain, with ``|`` and ``<`` escaped."""
    return plain(text).replace("\\", "\\\\").replace("|", "\\|").replace("<", "&lt;")


def _bar(frac, ascii, width=8):
    if frac is None or frac <= 0:
        return ""
    if ascii:
        return "#" * max(1, round(frac * width))
    eighths = max(1, round(frac * width * 8))
    full, rem = divmod(eighths, 8)
    return "█" * full + ("▏▎▍▌▋▊▉"[rem - 1] if rem else "")


def _pct(frac) -> str:
    if frac is None or frac == 0:
        return ""
    return "<0.1" if frac < 0.0005 else f"{100 * frac:.1f}"


def share_cell(frac, ascii=False) -> str:
    """'74.4 ██████▉': the percentage and a bar of 8 cells for 100%."""
    if frac is None or frac == 0:
        return ""
    return f"{_pct(frac):>5} {_bar(frac, ascii)}"


class _Details(dict):
    """id(row) -> details text, computed when a row is shown (a folded table shows few)."""

    def __init__(self, report, net):
        super().__init__()
        self._nodes = {id(r): n for r, n in zip(report.rows, net.nodes)} if net is not None else {}

    def get(self, key, default=""):
        node = self._nodes.get(key)
        return default if node is None else details(node)


def _details_map(report, net):
    """Row -> details text (needs the loaded Network; the engine's rows carry no args)."""
    return _Details(report, net)


def row_label(r) -> str:
    name = plain(r.name)
    if r.aux:
        name += " (aux)"
    if not r.trainable:
        name += " (frozen)"
    return name


# --------------------------------------------------------------------------- summary


def summary_json(report: Report, extra: dict | None = None) -> str:
    return "".join(iter_summary_json(report, extra))


def iter_summary_json(report: Report, extra: dict | None = None):
    """The JSON document in pieces (layers encoded one at a time), ``extra`` keys appended."""
    doc = to_dict(report)
    rows = doc["layers"]
    doc["layers"] = []
    doc.update(extra or {})
    # the document with indent 2, but one line per layer: `"layers": [` and its closing `]` come
    # from the encoder around an empty list, the layers go between them
    head, sep, tail = json.dumps(doc, indent=2).partition('"layers": []')
    yield head
    if not rows:
        yield sep
    else:
        yield '"layers": [\n    '
        n, lines = 0, []
        cache: dict = {}  # shape and field texts by id: the rows, which hold those objects, outlive it
        for r in rows._rows:
            lines.append(layer_line(r, cache))
            n += 1
            if n == 1000:  # in pieces: a huge network is never one string
                yield ",\n    ".join(lines)
                lines = []
                if r is not rows._rows[-1]:
                    yield ",\n    "
                n = 0
        if lines:
            yield ",\n    ".join(lines)
        yield "\n  ]"
    yield tail
    yield "\n"


_RF_AXES = {1: ("l",), 2: ("h", "w"), 3: ("d", "h", "w")}  # a field's axes by its length (1-D, 2-D, 3-D)


def _csv_rf_axes(rows) -> tuple:
    """The axes the CSV's field columns name: h, w (a 2-D spec, or no field), or every axis the
    rows' fields have, in the order d, h, w, l (a 1-D or 3-D spec)."""
    seen = {len(r.rf) for r in rows if r.rf is not None}
    if seen <= {2}:
        return ("h", "w")
    have = {a for n in seen for a in _RF_AXES.get(n, ())}
    return tuple(a for a in ("d", "h", "w", "l") if a in have)


def summary_csv(report: Report, depth=None, net=None) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    rows = list(fold(report.rows, depth))
    axes = _csv_rf_axes(rows)
    w.writerow(
        ["name", "type", "inputs", "output", "params", "buffers", "macs", "activations",
         *(f"rf_{what}{a}" for what in ("", "stride_", "padding_") for a in axes), "aux", "warnings",
         "trainable", "details"]
    )
    dmap = _details_map(report, net)
    for r in rows:
        rf = r.rf
        by_axis = {} if rf is None else dict(zip(_RF_AXES.get(len(rf), ()), rf))
        rfv = [jsonable(getattr(by_axis[a], what)) if a in by_axis else ""
               for what in ("size", "stride", "padding") for a in axes]
        w.writerow(
            [plain(r.name), r.type, " ".join(plain(x) for x in r.inputs), shape_text(r.shape), jsonable(r.params),
             jsonable(r.buffers), jsonable(r.macs), jsonable(r.values), *rfv, int(r.aux),
             "; ".join(plain(x) for x in r.warnings), int(r.trainable), dmap.get(id(r), "")]
        )
    t = report.totals
    w.writerow(["total", "", "", shape_text(report.output), jsonable(t["params"]), jsonable(t["buffers"]),
                jsonable(t["macs"]), jsonable(t["activations"]), *[""] * (3 * len(axes)), "", "", "", ""])
    return buf.getvalue()


def _b(value) -> str:
    """'1,644,315,136 B (1.53 GiB)': bytes in the footer (a symbolic value once)."""
    if is_symbolic(value):
        return exact(value) + " B"
    return f"{exact(value)} B ({human(value, 'B')})"


def total_lines(report: Report, fit=None, memory: bool = False):
    """(label, text, level) triples under the summary table. Level 0: params, MACs, then the
    memory groups (level 0 headers, their figures at level 1), each figure named as its JSON
    field in ``totals`` and, where it has one, its budget key first (docs/ci.md maps them):
    inference at the batch, training at the batch (the figures to act on); with ``memory`` also
    the figures per image and the sizes as torchinfo prints them (docs/memory.md)."""
    t = report.totals
    trainable, frozen = param_split(report)
    params = both(t["params"])
    if frozen:
        params += f"; trainable {exact(trainable)}, frozen {exact(frozen)}"
    if t["params_aux"]:
        params += f"; aux heads {exact(t['params_aux'])}"
    if t["buffers"]:
        params += f"; buffers {exact(t['buffers'])} (BN running statistics)"
    lines = [
        ("params", params, 0),
        ("MACs", both(t["macs"]) + "; FLOPs = 2 x MACs"
         + (f"; aux heads add {exact(t['macs_aux'])} in training" if t["macs_aux"] else ""), 0),
    ]
    if report.outputs:
        from ..analysis.outputs import per_output

        each = per_output(report)
        lines.append(("outputs", f"{len(each)}, each counting the layers it depends on (shared ones in each)", 0))
        lines += [(plain(o.name), f"{shape_text(o.shape)}; params {exact(o.params)}; MACs {exact(o.macs)}", 1) for o in each]
    from .report import _peaks

    p = _peaks(report)
    backend = p.get("memory_backend")
    sz = sizes(report)
    at = f"batch {exact(report.batch)}"
    peaks = p["inference_peak_bytes"] is not None
    if memory:
        lines += [
            ("per image", "", 0),
            ("activations", f"{exact(t['activations'])} values (every tensor kept: the classic count)", 1),
            ("activation_bytes", f"{_b(t['activation_bytes'])}, {report.dtype}", 1),
            ("train_saved_bytes", f"{_b(t['train_saved_bytes'])}: saved for backward", 1),
        ]
        if p["train_macs"] is not None:
            lines.append(("train_macs", both(p["train_macs"]) + ": forward + backward MACs", 1))
    lines.append((f"inference at {at}" + (f", {backend}" if peaks else ""), "", 0))
    if peaks:
        where = f" at {plain(p['inference_peak_layer'])}" if p["inference_peak_layer"] else ""
        lines += [
            ("peak_memory (inference_peak_bytes)", _b(p["inference_peak_bytes"]) + where, 1),
            ("inference_live_bytes", _b(p["inference_live_bytes"]) + ": live tensors alone", 1),
        ]
    if not peaks:
        lines.append(("memory (batch_activation_bytes)", _b(t["batch_activation_bytes"])
                      + ": every tensor kept, input included", 1))
    lines.append((f"training at {at}" + (f", {backend}" if peaks else "") + f", {report.optimizer}", "", 0))
    if peaks:
        where = (f" at {plain(p['train_peak_layer'])}, {p['train_peak_phase']}" if p["train_peak_phase"] else "")
        lines.append(("train_peak_memory (train_peak_bytes)", _b(p["train_peak_bytes"]) + where, 1))
        if memory:
            lines.append(("train_live_bytes", _b(p["train_live_bytes"]) + ": live tensors and gradients alone", 1))
        lines.append(("train_total_bytes", _b(p["train_total_bytes"]) + f": peak + weights, {report.optimizer} state, input", 1))
    if memory or not peaks:
        lines += [
            ("train_state_bytes", _b(t["train_state_bytes"]) + f": weights, gradients, {report.optimizer} state", 1),
            ("train_memory (batch_train_bytes)", _b(t["batch_train_bytes"]) + ": saved for backward x batch + state", 1),
        ]
    if memory:
        lines += [
            (f"sizes as torchinfo prints them, {at}", "", 0),
            ("size_input_bytes", _b(sz["input_bytes"]), 1),
            ("size_param_bytes", _b(sz["param_bytes"]) + (" (with buffers)" if t["buffers"] else ""), 1),
            ("memory (batch_activation_bytes, size_activation_bytes)", _b(sz["activation_bytes"])
             + ": forward size, every tensor kept, input included", 1),
            ("size_total_bytes", _b(sz["total_bytes"]) + ": forward + params", 1),
        ]
    if t.get("ensemble", 1) != 1 or t.get("crops", 1) != 1:
        lines.append(("test-time cost", f"ensemble of {t['ensemble']} x {t['crops']} crop(s): MACs x{t['ensemble'] * t['crops']}, "
                      f"params and memory x{t['ensemble']}", 0))
    if fit is not None:
        budget, batch = fit[:2]
        what = fit[2] if len(fit) > 2 else "training"
        lines.append(("fits in " + human(budget, "B"), f"{what} batch of at most {exact(batch)}"
                      + (f" ({backend})" if peaks else ""), 0))
    if not memory:
        lines.append(("", "--memory: every memory figure; docs/memory.md", 0))
    return lines


def _head_line(report):
    return (f"input {shape_text(report.input)}, dtype {report.dtype}, batch {report.batch}"
            + (f", symbols {', '.join(f'{k}={v}' for k, v in report.values.items())}" if report.values else ""))


def summary_markdown(report: Report, depth=None, fit=None, net=None, memory: bool = False) -> str:
    out = [f"# {md(report.name)}" + (f": {md(report.title)}" if report.title else ""), ""]
    if report.source:
        out += [f"Source: {md(report.source)}", ""]
    out += [f"Input {shape_text(report.input)}, {report.dtype}, batch {report.batch}.", ""]
    cols = ("#", "layer", "type", "details", "output", "params", "params %", "MACs", "MACs %", "activations",
            "RF size/stride/pad")
    right = {"#", "params", "params %", "MACs", "MACs %", "activations"}
    out.append("| " + " | ".join(cols) + " |")
    out.append("|" + "|".join("---:" if c in right else "---" for c in cols) + "|")
    dmap = _details_map(report, net)
    tp, tm = report.totals["params"], report.totals["macs"]
    for i, r in enumerate(fold(report.rows, depth), 1):
        pm = "" if r.aux else _pct(share(r.macs, tm))
        out.append(f"| {i} | {md(row_label(r))} | {r.type} | {dmap.get(id(r), '')} | {shape_text(r.shape)} | "
                   f"{exact(r.params)} | {_pct(share(r.params, tp))} | {exact(r.macs)} | {pm} | "
                   f"{exact(r.values)} | {rf_text(r.rf)} |")
    out.append("")
    for k, v, level in total_lines(report, fit, memory):
        pad = "  " * level
        out.append(f"{pad}- **{k}**" + (f": {v}" if v else "") if k else f"{pad}- {v}")
    for w in report.warnings:
        out.append(f"- warning: {md(w)}")
    return "\n".join(out) + "\n"


SUMMARY_COLUMNS = (
    Column("#", "r", 6),
    Column("layer", "l", 0),
    Column("type", "l", 4),
    Column("details", "l", 8),
    Column("output", "l", 1),
    Column("params", "r", 2),
    Column("params %", "l", 10, "%P"),
    Column("MACs", "r", 3),
    Column("MACs %", "l", 9, "%MACs"),
    Column("activations", "r", 5, "acts"),
    Column("RF size/stride/pad", "l", 7, "RF r/j/p"),
)


MAX_ROWS = 10_000


def summary_table(out: Out, report: Report, depth=None, fit=None, net=None, max_rows=MAX_ROWS, memory: bool = False):
    """The summary as a table that fits ``out.width`` (see :mod:`archcalc.output.textout`), then the
    totals. Cheap per row: one string per cell, no markup. Over ``max_rows`` rows (0: no limit)
    the middle rows are folded into one line that says how many (the totals stay exact)."""
    dmap = _details_map(report, net)
    t = report.totals
    tp, tm = t["params"], t["macs"]
    concrete = type(tp) is int and type(tm) is int
    asc = out.ascii
    rows = []
    styles = []
    folded = fold(report.rows, depth)
    shown = list(enumerate(folded, 1))
    hidden_rows = 0
    if max_rows and len(folded) > max_rows:
        half = max_rows // 2
        hidden_rows = len(folded) - 2 * half
        shown = shown[:half] + [None] + shown[-half:]
    # a long network repeats its shapes, fields and shares: each distinct one is formatted once
    shape_cells: dict = {}
    rf_cells: dict = {}
    share_cells: dict = {}

    def share_of(frac):
        cell = share_cells.get(frac)
        if cell is None:
            cell = share_cells[frac] = share_cell(frac, asc)
        return cell

    for item in shown:
        if item is None:
            rows.append(["", f"... {hidden_rows:,} rows not shown ...", "", "", "", "", "", "", "", "", ""])
            styles.append("dim")
            continue
        i, r = item
        if concrete and type(r.params) is int and type(r.macs) is int:
            sp = share_of(r.params / tp) if tp and r.params else ""
            sm = share_of(r.macs / tm) if tm and r.macs and not r.aux else ""
        else:
            sp = share_cell(share(r.params, tp), asc)
            sm = "" if r.aux else share_cell(share(r.macs, tm), asc)
        shape = shape_cells.get(r.shape)
        if shape is None:
            shape = shape_cells[r.shape] = shape_text(r.shape)
        rf = r.rf
        field = rf_cells.get(rf) if rf is not None else "-"
        if field is None:
            field = rf_cells[rf] = rf_text(rf)
        rows.append([str(i), row_label(r), r.type, dmap.get(id(r), ""), shape, exact(r.params), sp,
                     exact(r.macs), sm, exact(r.values), field])
        styles.append("dim" if r.aux else ("yellow" if r.warnings else None))
    footer = ["", "total", "", "", shape_text(report.output), exact(tp), "", exact(tm), "", exact(t["activations"]), ""]
    title = plain(report.name) + (f" — {plain(report.title)}" if report.title else "")
    print_table(out, SUMMARY_COLUMNS, rows, footer, title, styles if out.color else None)
    if hidden_rows:
        out.para(f"({hidden_rows:,} of {len(folded):,} rows folded into one line: --max-rows 0 prints every row, "
                 "--depth N folds blocks, --format csv|json lists every layer)", "dim")
    if report.source:
        out.para("source: " + plain(report.source), "dim")
    out.para(_head_line(report))
    for k, v, level in total_lines(report, fit, memory):
        pad = "  " * (level + 1)
        out.para(f"{pad}{k}:" + (f" {v}" if v else "") if k else f"{pad}({v})", indent=pad)
    for w in report.warnings:
        out.para(f"  warning: {plain(w)}", "yellow", indent="  ")


# --------------------------------------------------------------------------- compare

METRICS = (
    ("params", "params"),
    ("buffers", "buffers"),
    ("macs", "MACs"),
    ("activations", "activations / image"),
    ("activation_bytes", "activation bytes / image"),
    ("train_saved_bytes", "saved for backward / image"),
)


def layer_diffs(reports):
    """Per-layer differences when the layer lists line up (same length, same types), else None."""
    first = reports[0].rows
    if any(len(r.rows) != len(first) for r in reports[1:]):
        return None
    if any(a.type != b.type for r in reports[1:] for a, b in zip(first, r.rows)):
        return None
    diffs = []
    for i, row in enumerate(first):
        others = [r.rows[i] for r in reports[1:]]
        if any(shape_text(o.shape) != shape_text(row.shape) or str(o.params) != str(row.params)
               or str(o.macs) != str(row.macs) for o in others):
            diffs.append([row] + others)
    return diffs


def compare_dict(reports) -> dict:
    from ..version import JSON_SCHEMA, __version__

    base = reports[0].totals
    diffs = layer_diffs(reports)
    return {
        "archcalc": __version__,
        "schema": JSON_SCHEMA,
        "networks": [
            {"name": r.name, "input": jsonable(r.input), "output": jsonable(r.output),
             "totals": {k: jsonable(v) for k, v in r.totals.items()},
             "ratios": {k: _ratio_value(base[k], r.totals[k]) for k, _ in METRICS}}
            for r in reports
        ],
        "layers_line_up": diffs is not None,
        "layer_differences": None if diffs is None else [
            [{"name": x.name, "output": jsonable(x.shape), "params": jsonable(x.params), "macs": jsonable(x.macs)} for x in group]
            for group in diffs
        ],
    }


def _ratio_value(a, b):

    if is_symbolic(a) or is_symbolic(b):
        return ratio(a, b)
    return None if a == 0 else b / a


def compare_markdown(reports) -> str:
    head = ["metric"] + [md(r.name) for r in reports] + [f"{md(r.name)} / {md(reports[0].name)}" for r in reports[1:]]
    out = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    out.append("| output | " + " | ".join(shape_text(r.output) for r in reports) + " |" + " |" * (len(reports) - 1))
    for key, label in METRICS:
        vals = [exact(r.totals[key]) for r in reports]
        rat = [ratio(reports[0].totals[key], r.totals[key]) for r in reports[1:]]
        out.append(f"| {label} | " + " | ".join(vals + rat) + " |")
    return "\n".join(out) + "\n"


def compare_csv(reports) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["metric"] + [plain(r.name) for r in reports])
    w.writerow(["output"] + [shape_text(r.output) for r in reports])
    for key, _ in METRICS:
        w.writerow([key] + [jsonable(r.totals[key]) for r in reports])
    return buf.getvalue()


def compare_table(out: Out, reports):
    names = [plain(r.name) for r in reports]
    cols = [Column("metric", "l", 0)] + [Column(n, "r", 0) for n in names] + [
        Column(f"{n} / {names[0]}", "r", 1, "ratio" if len(reports) == 2 else f"/{names[0]}") for n in names[1:]]
    blank = [""] * (len(reports) - 1)
    rows = [["input", *[shape_text(r.input) for r in reports], *blank],
            ["output", *[shape_text(r.output) for r in reports], *blank]]
    for key, label in METRICS:
        rows.append([label, *[exact(r.totals[key]) for r in reports],
                     *[ratio(reports[0].totals[key], r.totals[key]) for r in reports[1:]]])
    rows.append(["final receptive field", *[rf_text(r.rows[-1].rf) for r in reports], *blank])
    print_table(out, cols, rows, title="compare")
    out.line("ratios: 'same' when equal, 'n/a' when the first is 0")
    diffs = layer_diffs(reports)
    if diffs is None:
        out.line("The layer lists do not line up (different layers); totals only.")
    elif not diffs:
        out.line("Every layer agrees.")
    else:
        lcols = [Column("layer", "l", 0)] + [Column(f"{n}: output / params / MACs", "l", 0, n) for n in names]
        lrows = [[plain(g[0].name), *[f"{shape_text(x.shape)} / {exact(x.params)} / {exact(x.macs)}" for x in g]]
                 for g in diffs]
        out.line()
        print_table(out, lcols, lrows, title="layers that differ")
    for r in reports:
        for w in r.warnings:
            out.para(f"  warning {plain(r.name)}: {plain(w)}", "yellow", indent="  ")


# --------------------------------------------------------------------------- list


def list_table(out: Out, rows):
    """rows: (name, entry) for each zoo network, entries as :mod:`archcalc.spec.zoocache` keeps them."""
    cols = [Column("name", "l", 0), Column("input", "l", 0), Column("params", "r", 0), Column("MACs", "r", 0),
            Column("title", "l", 1)]
    body = [[plain(n), e["input_text"], e["params_text"], e["macs_text"], plain(e["title"])] for n, e in rows]
    print_table(out, cols, body, title="archcalc zoo")


def _list_cells(rows):
    for n, e in rows:
        yield (n, e["input_text"], str(e["params"]), str(e["macs"]), e["title"])


def list_csv(rows) -> str:
    lines = ["name,input,params,macs,title"]
    for cells in _list_cells(rows):
        buf = io.StringIO()
        csv.writer(buf, lineterminator="").writerow([plain(c) for c in cells])
        lines.append(buf.getvalue())
    return "\n".join(lines) + "\n"


def list_markdown(rows) -> str:
    lines = ["| name | input | params | macs | title |", "|---|---|---:|---:|---|"]
    lines += ["| " + " | ".join(md(c) for c in cells) + " |" for cells in _list_cells(rows)]
    return "\n".join(lines) + "\n"


def zoo_rows() -> list:
    """``archcalc list``'s service: (name, entry) for every zoo network, each entry its title, input
    and totals (numbers and their text), read from the listing cache (:mod:`archcalc.spec.zoocache`)
    or computed there and then."""
    from ..spec import zoo, zoocache

    def compute(name):  # on a cache miss only
        from ..analysis.engine import analyze
        from ..spec import refs

        net = refs.load_spec(name)  # a family member (efficientnet_b3) with its own values
        r = analyze(net)
        t = r.totals
        return {"title": net.title, "input": jsonable(r.input), "input_text": shape_text(r.input),
                "params": jsonable(t["params"]), "macs": jsonable(t["macs"]), "activations": jsonable(t["activations"]),
                "params_text": exact(t["params"]), "macs_text": exact(t["macs"])}

    names = zoo.names()
    return list(zip(names, zoocache.listing([(n, zoo.resolve(n)) for n in names], compute)))


# --------------------------------------------------------------------------- layers listing


def yaml_text(value) -> str:
    """A default value as a spec writes it: null, false, [1, 1]."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (tuple, list)):
        return "[" + ", ".join(yaml_text(v) for v in value) + "]"
    return str(value)


def layers_markdown() -> str:
    """docs/layers.md, generated from the registry (a test keeps the file in step)."""
    from ..layers import KIND_DOC, KIND_TEXT, REQUIRED, describe

    out = [
        "# Layer types",
        "",
        "Generated from the layer registry (`archcalc layers --format markdown`); do not edit by hand.",
        "Size keys accept integers or expressions (`2*C`, `$width // 2`).",
        "",
        "The spec's `input` decides the rank: `[C, H, W]` is 2-D, `[C, L]` 1-D, `[C, D, H, W]` 3-D. Per-axis",
        "keys then take one value per spatial axis (`kernel: [3, 7, 7]` in 3-D) or one integer for all;",
        "padding also takes (before, after) per axis (`[front, back, top, bottom, left, right]`). conv,",
        "conv_transpose, the pools (max, average, adaptive, global), batch, group and instance norm,",
        "upsample, pixel shuffle and unshuffle, pad, crop and every pointwise layer work on all three;",
        "a type that is 2-D only refuses other ranks with an error naming the layer.",
        "",
    ]
    for info in describe():
        title = f"## `{info.name}`" + (f" (also {', '.join(f'`{a}`' for a in info.aliases)})" if info.aliases else "")
        out += [title, "", info.doc, ""]
        if info.keys:
            out += ["| key | kind | default | meaning |", "|---|---|---|---|"]
            for k in info.keys:
                default = "required" if k.default is REQUIRED else ("-" if k.default is None else yaml_text(k.default))
                out.append(f"| `{k.name}` | {KIND_DOC.get(k.kind, KIND_TEXT[k.kind])} | {default} | {k.doc} |")
            out.append("")
        for name, text in info.formulas.items():
            out.append(f"- {name}: `{text}`")
        out.append("")
    return "\n".join(out).rstrip() + "\n"


def layers_json() -> str:
    from ..layers import KIND_TEXT, REQUIRED, describe

    data = [{"name": i.name, "aliases": list(i.aliases), "doc": i.doc,
             "keys": [{"name": k.name, "kind": k.kind, "kind_text": KIND_TEXT[k.kind], "required": k.default is REQUIRED,
                       "default": None if k.default is REQUIRED else jsonable(k.default), "doc": k.doc} for k in i.keys],
             "formulas": dict(i.formulas)} for i in describe()]
    return json.dumps(data, indent=2) + "\n"


def layers_text(out: Out):
    """Every layer type as a short paragraph (no table: the formulas are long)."""
    from ..layers import REQUIRED, describe

    for info in describe():
        out.line(info.name + (f" (also {', '.join(info.aliases)})" if info.aliases else "") + ": " + info.doc, "bold")
        if info.keys:
            keys = ", ".join(f"{k.name} ({'required' if k.default is REQUIRED else yaml_text(k.default)})" for k in info.keys)
            out.line(f"  keys: {keys}")
        for k, v in info.formulas.items():
            out.line(f"  {k}: {v}")
        out.line()


# --------------------------------------------------------------------------- verify

VERIFY_MARK = {"ok": "✓", "note": "≈", "mismatch": "✗"}


def _vnum(v):
    return exact(v) if isinstance(v, int) else (f"{v:.4g}" if isinstance(v, float) else plain(v))


def _vshape(v):
    return "x".join(str(d) for d in v)


def _vcell(c, fmt=_vnum, mark=True):
    e, t = c["engine"], c["torch"]
    text = fmt(e) if c["status"] == "ok" else f"{fmt(e)} ≠ {fmt(t)}"
    return f"{text} {VERIFY_MARK[c['status']]}" if mark else text


VERIFY_KEYS = (("shape", _vshape), ("params", _vnum), ("buffers", _vnum), ("macs", _vnum), ("values", _vnum))


def verify_table(result, out: Out | None = None):
    """The verify report (the dict archcalc.torchside.verify.verify returns) on ``out``: one row per layer
    with engine against torch. Wide: a mark in each cell (✓ agrees, ≈ a documented convention,
    ✗ differs). Narrow (under 100 columns or when the wide table does not fit): the numbers
    alone, engine ≠ torch only where they differ, and one mark column; columns are left out by
    priority (type, torch), never cut."""
    out = out or Out()
    head = ("#", "layer", "type", "torch", "output", "params", "buffers", "MACs", "values")
    right = {"#", "params", "buffers", "MACs", "values"}
    prio = {"#": 5, "layer": 0, "type": 4, "torch": 3, "output": 0, "params": 0, "buffers": 0, "MACs": 0, "values": 0}
    t = result["totals"]
    tot = {"shape": t["output"], "params": t["params"], "buffers": t["buffers"], "macs": t["macs"],
           "values": t["activations"]}
    notes = []
    wide_rows, narrow_rows, styles = [], [], []
    for i, r in enumerate(result["layers"], 1):
        c = r["checks"]
        bad = any(x["status"] == "mismatch" for x in c.values())
        for k, x in c.items():
            if x["status"] == "note":
                notes.append(f"{plain(r['name'])} ({k}): {plain(x['note'])}")
        base = [str(i), plain(r["name"]) + (" (aux)" if r["aux"] else ""), r["type"], plain(r["torch"])]
        wide_rows.append(base + [_vcell(c[k], f) for k, f in VERIFY_KEYS])
        worst = "mismatch" if bad else ("note" if any(x["status"] == "note" for x in c.values()) else "ok")
        narrow_rows.append(base + [_vcell(c[k], f, False) for k, f in VERIFY_KEYS] + [VERIFY_MARK[worst]])
        styles.append("red" if bad else ("dim" if r["aux"] else None))
    wide_cols = [Column(h, "r" if h in right else "l", prio[h]) for h in head]
    wide_foot = ["", "total", "", ""] + [_vcell(tot[k], f) for k, f in VERIFY_KEYS]
    title = f"verify {plain(result['network'])} — engine vs torch {plain(result['torch'])} on {plain(result['device'])}"
    from .textout import layout

    style = layout(wide_cols, wide_rows, wide_foot, out.width, out.ascii)[0]
    if style == "boxed":
        print_table(out, wide_cols, wide_rows, wide_foot, title, styles if out.color else None)
    else:
        narrow_cols = wide_cols + [Column("", "l", 0)]
        ok_all = all(x["status"] != "mismatch" for x in tot.values())
        narrow_foot = ["", "total", "", ""] + [_vcell(tot[k], f, False) for k, f in VERIFY_KEYS] + [
            VERIFY_MARK["ok" if ok_all else "mismatch"]]
        print_table(out, narrow_cols, narrow_rows, narrow_foot, title, styles if out.color else None)
    out.line(f"input {_vshape(result['input'])}, batch {result['batch']}; MACs = FlopCounterMode FLOPs / 2; "
             "buffers exclude num_batches_tracked; values = elements of each new tensor (0 for views and in-place)")
    if t["macs_aux"]["engine"] or t["macs_aux"]["torch"]:
        out.line(f"  aux-head MACs: {_vcell(t['macs_aux'])}")
    for n in notes:
        out.line(f"  ≈ {n}", "yellow")
    if result.get("rf") is not None:
        cols = [Column("layer", "l", 0), Column("input", "l", 3), Column("position", "r", 4, "pos"),
                Column("engine r / j / p", "l", 0, "engine r/j/p"), Column("expected extent", "l", 2, "expected"),
                Column("measured extent", "l", 0, "measured"), Column("size", "l", 1), Column("", "l", 0)]
        rows = []
        for r in result["rf"]:
            for ax in ("h", "w"):
                a = r["axes"][ax]
                e, m = a["engine"], a["measured"]
                ext = "-" if m["start"] is None else f"[{m['start']}, {m['start'] + m['size'] - 1}]"
                size = f"{m['size']} vs {e['size']}" + (" (clipped by the image)" if a["clipped"] else "")
                rows.append([f"{plain(r['layer'])} ({ax})", "x".join(map(str, r["input"])),
                             str(r["position"][0 if ax == "h" else 1]), f"{e['size']} / {e['stride']} / {e['padding']}",
                             f"[{a['expected_extent'][0]}, {a['expected_extent'][1]}]", ext, size, VERIFY_MARK[a["status"]]])
        print_table(out, cols, rows, title="receptive fields (empirical: gradient extent of one output position)")
    if result.get("memory"):
        m = result["memory"]
        s = m["saved_bytes"]
        ratio_ = "-" if s["ratio"] is None else f"{s['ratio']:.3f}"
        out.line(f"  saved for backward (batch {m['batch']}, {m['device']}): torch {_vnum(s['torch'])} bytes "
                 f"({human(s['torch'], 'B')}) in {s['storages']} storages; engine estimate {_vnum(s['engine'])} bytes "
                 f"({human(s['engine'], 'B')}); ratio torch/engine {ratio_}")
        for k, v in {**(m.get("cuda") or {}), **(m.get("live") or {})}.items():
            r = "-" if v["ratio"] is None else f"{v['ratio']:.3f}"
            at = f" at {plain(v['at'])}" if v.get("at") else ""
            out.line(f"  {k.replace('_', ' ')} (batch {v['batch']}, {m['device']}): torch {_vnum(v['torch'])} bytes, engine "
                     f"{_vnum(v['engine'])}{at} ({v['engine_is']}); ratio torch/engine {r}")
        for n in m["notes"]:
            out.line(f"  note: {plain(n)}")
    if result["ok"]:
        out.line("engine and torch agree", "green")
    else:
        out.line(f"{result['mismatches']} mismatch(es)", "bold red")


# --------------------------------------------------------------------------- summary --min-input / --tiling


def sizes_dict(s) -> dict:
    """An :class:`archcalc.analysis.solve.Sizes` as JSON data."""
    data: dict = {"network": s.network}
    if s.min_input is not None:
        m = s.min_input
        data["min_input"] = {"size": list(m.size), "binding": list(m.binding), "method": m.method}
        if m.apart is not None:
            data["min_input"]["apart"] = list(m.apart)
    if s.tiling is not None:
        lo, hi, found = s.tiling
        data["tiling"] = {"range": [lo, hi], "sizes": found}
    return data


def sizes_text(s) -> str:
    lines = []
    if s.min_input is not None:
        m = s.min_input
        where = ", ".join(f"{ax}: '{b}'" for ax, b in zip("HW", m.binding) if b) or "no layer limits it"
        lines.append(f"minimum input: {'x'.join(map(str, m.size))} (each layer's output at least 1x1 at inference; "
                     f"first to reach 1: {where}; {m.method})")
        if m.apart is not None:
            lines.append(f"  (H {m.apart[0]} and W {m.apart[1]} are each axis's smallest, the other at the spec's size; "
                         f"{m.apart[0]}x{m.apart[1]} together fails)")
    if s.tiling is not None:
        lo, hi, found = s.tiling
        shown = ", ".join(map(str, found)) if found else "none"
        lines.append(f"input sizes {lo}..{hi} at which every window tiles its input: {shown}")
    return plain(s.network) + "\n" + "".join(f"  {plain(line)}\n" for line in lines)


# --------------------------------------------------------------------------- sweep

BAR = "█"


def sweep_dict(result) -> dict:
    """An :class:`archcalc.analysis.sweep.Sweep` as JSON data."""
    axes = {"rf_axes": list(result.rf_axes)} if result.rf_axes else {}
    return {"network": result.name, "swept": list(result.symbols), "rf_layer": result.rf_layer, **axes,
            "points": [{"value": v, **(p or {}), **({"invalid": why} if why else {})}
                       for v, p, why in zip(result.values, result.points, result.invalid)]}


def sweep_csv(stream, result) -> None:
    from ..analysis.sweep import METRICS

    w = csv.writer(stream, lineterminator="\n")
    cols = list(METRICS) + [f"rf_{a}" for a in result.rf_axes]  # a 1-D / 3-D spec: the field per axis too
    w.writerow([",".join(result.symbols)] + cols + ["invalid"])
    for v, p, why in zip(result.values, result.points, result.invalid):
        w.writerow([v] + [("" if p is None else p.get(m)) for m in cols] + [why or ""])


def _sweep_rf(p, axes) -> str:
    """A sweep point's field: one number (2-D: H; 1-D: L), or D x H x W where the axes differ."""
    sizes = [p["rf_" + a] for a in axes] if len(axes) > 1 else [p["rf"]]
    return str(sizes[0]) if len(set(sizes)) == 1 else "x".join(map(str, sizes))


def sweep_table(out: Out, result, metric: str) -> None:
    bar = "#" if out.ascii else BAR
    top = max((p[metric] for p in result.points if p), default=0) or 1
    swept = ",".join(result.symbols)
    cols = [Column(swept, "r"), Column("params", "r"), Column("MACs", "r"), Column("activations", "r", 2),
            Column("RF", "r", 3), Column(metric, "l", 1)]
    rows = []
    width = 24
    for v, p, why in zip(result.values, result.points, result.invalid):
        if p is None:
            rows.append([str(v), "-", "-", "-", "-", plain(why)])
            continue
        n = round(width * p[metric] / top)
        rows.append([str(v), exact(p["params"]), human(p["macs"]), human(p["activations"]),
                     "-" if p["rf"] is None else _sweep_rf(p, result.rf_axes),
                     bar * n + (" " if n else "") + human(p[metric], "B" if metric.endswith("bytes") else "")])
    print_table(out, cols, rows, title=f"sweep {plain(result.name)}: {swept}")
    if result.rf_layer:
        axis = {("l",): "L axis", ("d", "h", "w"): "D x H x W; charted: the H axis"}.get(tuple(result.rf_axes), "H axis")
        out.para(f"RF: receptive field size ({axis}) at '{plain(result.rf_layer)}', the last layer whose map depends on "
                 "the swept size; one symbolic analysis, its closed forms evaluated at each point")
