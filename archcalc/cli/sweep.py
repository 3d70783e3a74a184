"""`archcalc sweep`: totals against a swept symbol (table, chart, JSON, CSV)."""

import sys
from typing import List, Optional

import typer

from ..errors import UsageError

BAR = "█"


def register(app):
    @app.command()
    def sweep(
        spec: str = typer.Argument(..., help="A zoo name or a spec path."),
        set: Optional[List[str]] = typer.Option(None, "--set", "-s", help="The swept symbol(s) and their values: H,W=96:512:32 (LO:HI:STEP) or H=224,256,299; other NAME=VALUE items fix symbols."),
        metric: str = typer.Option("macs", "--metric", "-m", help="The metric charted: params, macs, activations, activation_bytes, train_saved_bytes or rf."),
        format: str = typer.Option("table", "--format", "-f", help="table, json or csv."),
    ):
        """Params, MACs, activations and receptive field against a swept input size or symbol, from one
        symbolic analysis compiled once."""
        from ..importer import load_ref as load
        from .common import parse_sets
        from ..analysis.sweep import METRICS, parse_sweep, sweep as run

        if metric not in METRICS:
            raise UsageError(f"--metric {metric[:40]}: expected one of " + ", ".join(METRICS))
        if format not in ("table", "json", "csv"):
            raise UsageError(f"--format {format[:40]}: expected table, json or csv")
        ranges = [s for s in set or [] if ":" in s or "," in s]
        fixed = parse_sets([s for s in set or [] if s not in ranges])
        names, values = parse_sweep(ranges)
        for n in names:
            if n in fixed:
                raise UsageError(f"symbol '{n}' is both swept and fixed")
        result = run(lambda free: load(spec, fixed, None, free), names, values)
        if format == "json":
            import json

            data = {"network": result.name, "swept": list(result.symbols), "rf_layer": result.rf_layer,
                    "points": [{"value": v, **(p or {}), **({"invalid": why} if why else {})}
                               for v, p, why in zip(result.values, result.points, result.invalid)]}
            sys.stdout.write(json.dumps(data, indent=2, default=str) + "\n")
            return
        if format == "csv":
            import csv

            w = csv.writer(sys.stdout, lineterminator="\n")
            w.writerow([",".join(result.symbols)] + list(METRICS) + ["invalid"])
            for v, p, why in zip(result.values, result.points, result.invalid):
                w.writerow([v] + [("" if p is None else p[m]) for m in METRICS] + [why or ""])
            return
        _table(result, metric)


def _table(result, metric):
    from ..output.report import exact, human
    from ..output.textout import Column, Out, plain, print_table

    out = Out()
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
        rows.append([str(v), exact(p["params"]), human(p["macs"]), human(p["activations"]), str(p["rf"]),
                     bar * n + (" " if n else "") + human(p[metric], "B" if metric.endswith("bytes") else "")])
    print_table(out, cols, rows, title=f"sweep {plain(result.name)}: {swept}")
    if result.rf_layer:
        out.para(f"RF: receptive field size (H axis) at '{plain(result.rf_layer)}', the last layer whose map depends on "
                 "the swept size; one symbolic analysis, its closed forms evaluated at each point")
