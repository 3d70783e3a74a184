"""`archcalc sweep`: totals against a swept symbol (table, chart, JSON, CSV)."""

from __future__ import annotations

from typing import List, Optional

import typer

from ..errors import UsageError
from ..output import views
from .common import format_choices, format_option

WFormat = format_choices("WFormat", views.SWEEP)


def register(app):
    @app.command()
    def sweep(
        spec: str = typer.Argument(..., help="A zoo name or a spec path."),
        set: Optional[List[str]] = typer.Option(None, "--set", "-s", help="The swept symbol(s) and their values: H,W=96:512:32 (LO:HI:STEP) or H=224,256,299; other NAME=VALUE items fix symbols."),
        metric: str = typer.Option("macs", "--metric", "-m", help="The metric charted: params, macs, activations, activation_bytes, train_saved_bytes or rf."),
        format: WFormat = format_option(views.SWEEP),
    ):
        """Params, MACs, activations and receptive field against a swept input size or symbol, from one
        symbolic analysis compiled once."""
        from ..importer import load_ref as load
        from .common import parse_sets
        from ..analysis.sweep import METRICS, parse_sweep, sweep as run

        if metric not in METRICS:
            raise UsageError(f"--metric {metric[:40]}: expected one of " + ", ".join(METRICS))
        ranges = [s for s in set or [] if ":" in s or "," in s]
        fixed = parse_sets([s for s in set or [] if s not in ranges])
        names, values = parse_sweep(ranges)
        for n in names:
            if n in fixed:
                raise UsageError(f"symbol '{n}' is both swept and fixed")
        result = run(lambda free: load(spec, fixed, None, free), names, values)
        if metric == "rf" and result.rf_layer is None:
            raise UsageError("--metric rf: no layer whose map depends on the swept size has a known receptive field",
                             hint="chart another metric (--metric macs)")
        views.emit(views.SWEEP, format, views.SweepView(result, metric))
