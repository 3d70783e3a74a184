"""Text renderings of reports: rich tables, JSON, CSV, Markdown. Only the CLI calls this."""

from __future__ import annotations

import csv
import io
import json

from .engine import Report
from .expr import is_symbolic
from .report import both, exact, fold, human, jsonable, ratio, rf_text, shape_text, to_dict

COLUMNS = ("#", "layer", "type", "output", "params", "MACs", "activations", "RF size/stride/pad")
CONVENTIONS = (
    "params: learnable parameters (BN running statistics are buffers, counted apart). "
    "MACs: multiply-accumulates of conv and linear layers at inference (aux heads apart); "
    "FLOPs = 2 x MACs. activations: values of every new tensor per image, input included "
    "(views and in-place layers add none). RF: receptive field size, effective stride and "
    "effective padding (Araujo et al., Distill 2019)."
)


# --------------------------------------------------------------------------- summary


def summary_json(report: Report) -> str:
    return json.dumps(to_dict(report), indent=2) + "\n"


def summary_csv(report: Report, depth=None) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(
        ["name", "type", "inputs", "output", "params", "buffers", "macs", "activations",
         "rf_h", "rf_w", "rf_stride_h", "rf_stride_w", "rf_padding_h", "rf_padding_w", "aux", "warnings"]
    )
    for r in fold(report.rows, depth):
        rf = r.rf
        rfv = ["", "", "", "", "", ""] if rf is None else [
            jsonable(rf[0].size), jsonable(rf[1].size), jsonable(rf[0].stride),
            jsonable(rf[1].stride), jsonable(rf[0].padding), jsonable(rf[1].padding),
        ]
        w.writerow(
            [r.name, r.type, " ".join(r.inputs), shape_text(r.shape), jsonable(r.params), jsonable(r.buffers),
             jsonable(r.macs), jsonable(r.values), *rfv, int(r.aux), "; ".join(r.warnings)]
        )
    t = report.totals
    w.writerow(["total", "", "", shape_text(report.output), jsonable(t["params"]), jsonable(t["buffers"]),
                jsonable(t["macs"]), jsonable(t["activations"]), "", "", "", "", "", "", "", ""])
    return buf.getvalue()


def _total_lines(report: Report, fit=None):
    t = report.totals
    lines = [
        ("params", both(t["params"])
         + (f", of which aux heads {exact(t['params_aux'])}" if t["params_aux"] else "")),
        ("buffers", f"{exact(t['buffers'])} (BN running statistics)"),
        ("MACs", both(t["macs"]) + "; FLOPs = 2 x MACs"
         + (f"; aux heads add {exact(t['macs_aux'])} in training" if t["macs_aux"] else "")),
        ("activations / image", f"{exact(t['activations'])} values = {both(t['activation_bytes'], 'B')}, "
         f"{report.dtype}"),
        ("saved for backward / image", f"{both(t['train_saved_bytes'], 'B')}"),
        (f"weights+grads+optimizer ({report.optimizer})", f"{both(t['train_state_bytes'], 'B')}"),
    ]
    if str(report.batch) != "1":
        lines.append((f"training, batch {report.batch}", f"{both(t['batch_train_bytes'], 'B')}"))
    if t.get("ensemble", 1) != 1 or t.get("crops", 1) != 1:
        lines.append(("test-time cost", f"ensemble of {t['ensemble']} x {t['crops']} crop(s): MACs x{t['ensemble'] * t['crops']}, "
                      f"params and memory x{t['ensemble']}"))
    if fit is not None:
        budget, batch = fit
        lines.append(("fits in " + human(budget, "B"), f"training batch of at most {exact(batch)}"))
    return lines


def summary_markdown(report: Report, depth=None, fit=None) -> str:
    out = [f"# {report.name}" + (f": {report.title}" if report.title else ""), ""]
    if report.source:
        out += [f"Source: {report.source}", ""]
    out += [f"Input {shape_text(report.input)}, {report.dtype}, batch {report.batch}.", ""]
    out.append("| " + " | ".join(COLUMNS) + " |")
    out.append("|" + "|".join("---:" if c in ("#", "params", "MACs", "activations") else "---" for c in COLUMNS) + "|")
    for i, r in enumerate(fold(report.rows, depth), 1):
        name = r.name + (" (aux)" if r.aux else "")
        out.append(f"| {i} | {name} | {r.type} | {shape_text(r.shape)} | {exact(r.params)} | {exact(r.macs)} | "
                   f"{exact(r.values)} | {rf_text(r.rf)} |")
    out.append("")
    for k, v in _total_lines(report, fit):
        out.append(f"- **{k}**: {v}")
    for w in report.warnings:
        out.append(f"- warning: {w}")
    return "\n".join(out) + "\n"


def summary_table(console, report: Report, depth=None, fit=None):
    from rich.table import Table

    title = f"[bold]{report.name}[/]" + (f" — {report.title}" if report.title else "")
    table = Table(title=title, caption=report.source or None, show_footer=True, header_style="bold")
    t = report.totals
    footer = {"layer": "total", "output": shape_text(report.output), "params": exact(t["params"]),
              "MACs": exact(t["macs"]), "activations": exact(t["activations"])}
    for col in COLUMNS:
        table.add_column(col, footer=footer.get(col, ""), justify="right" if col in ("#", "params", "MACs", "activations") else "left",
                         no_wrap=col != "layer")
    for i, r in enumerate(fold(report.rows, depth), 1):
        style = "dim" if r.aux else ("yellow" if r.warnings else None)
        table.add_row(str(i), r.name + (" (aux)" if r.aux else ""), r.type, shape_text(r.shape), exact(r.params),
                      exact(r.macs), exact(r.values), rf_text(r.rf), style=style)
    console.print(table)
    console.print(f"input {shape_text(report.input)}, dtype {report.dtype}, batch {report.batch}"
                  + (f", symbols {', '.join(f'{k}={v}' for k, v in report.values.items())}" if report.values else ""))
    for k, v in _total_lines(report, fit):
        console.print(f"  [bold]{k}[/]: {v}")
    for w in report.warnings:
        console.print(f"  [yellow]warning[/]: {w}")


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
    from . import JSON_SCHEMA, __version__

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
    head = ["metric"] + [r.name for r in reports] + [f"{r.name} / {reports[0].name}" for r in reports[1:]]
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
    w.writerow(["metric"] + [r.name for r in reports])
    w.writerow(["output"] + [shape_text(r.output) for r in reports])
    for key, _ in METRICS:
        w.writerow([key] + [jsonable(r.totals[key]) for r in reports])
    return buf.getvalue()


def compare_table(console, reports):
    from rich.table import Table

    table = Table(title="compare", header_style="bold")
    table.add_column("metric")
    for r in reports:
        table.add_column(r.name, justify="right")
    for r in reports[1:]:
        table.add_column(f"{r.name} / {reports[0].name}", justify="right")
    table.add_row("input", *[shape_text(r.input) for r in reports], *[""] * (len(reports) - 1))
    table.add_row("output", *[shape_text(r.output) for r in reports], *[""] * (len(reports) - 1))
    for key, label in METRICS:
        table.add_row(label, *[exact(r.totals[key]) for r in reports],
                      *[ratio(reports[0].totals[key], r.totals[key]) for r in reports[1:]])
    last = [r.rows[-1].rf for r in reports]
    table.add_row("final receptive field", *[rf_text(x) for x in last], *[""] * (len(reports) - 1))
    console.print(table)
    diffs = layer_diffs(reports)
    if diffs is None:
        console.print("[dim]The layer lists do not line up (different layers); totals only.[/]")
    elif not diffs:
        console.print("Every layer agrees.")
    else:
        lt = Table(title="layers that differ", header_style="bold")
        lt.add_column("layer")
        for r in reports:
            lt.add_column(f"{r.name}: output / params / MACs")
        for group in diffs:
            lt.add_row(group[0].name, *[f"{shape_text(x.shape)} / {exact(x.params)} / {exact(x.macs)}" for x in group])
        console.print(lt)
    for r in reports:
        for w in r.warnings:
            console.print(f"  [yellow]warning[/] {r.name}: {w}")


# --------------------------------------------------------------------------- layers listing


def layers_markdown() -> str:
    """docs/layers.md, generated from the registry (a test keeps the file in step)."""
    from .layers import KIND_TEXT, REQUIRED, describe

    out = [
        "# Layer types",
        "",
        "Generated from the layer registry (`archcalc layers --format markdown`); do not edit by hand.",
        "Size keys accept integers or expressions (`2*C`, `$width // 2`).",
        "",
    ]
    for info in describe():
        title = f"## `{info.name}`" + (f" (also {', '.join(f'`{a}`' for a in info.aliases)})" if info.aliases else "")
        out += [title, "", info.doc, ""]
        if info.keys:
            out += ["| key | kind | default | meaning |", "|---|---|---|---|"]
            for k in info.keys:
                default = "required" if k.default is REQUIRED else ("-" if k.default is None else str(k.default).lower() if isinstance(k.default, bool) else str(k.default))
                out.append(f"| `{k.name}` | {KIND_TEXT[k.kind]} | {default} | {k.doc} |")
            out.append("")
        for name, text in info.formulas.items():
            out.append(f"- {name}: `{text}`")
        out.append("")
    return "\n".join(out).rstrip() + "\n"


def layers_table(console):
    from rich.table import Table

    from .layers import REQUIRED, describe

    table = Table(title="layer types", header_style="bold", show_lines=True)
    for col in ("type", "keys (default)", "shape / params / MACs"):
        table.add_column(col)
    for info in describe():
        keys = "\n".join(
            f"{k.name} ({'required' if k.default is REQUIRED else k.default})" for k in info.keys
        ) or "-"
        forms = "\n".join(f"{k}: {v}" for k, v in info.formulas.items())
        name = info.name + (f"\n({', '.join(info.aliases)})" if info.aliases else "")
        table.add_row(name, keys, forms)
    console.print(table)
