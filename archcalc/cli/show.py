"""The commands that show the work: ``explain``, ``graph`` and ``plot``."""

import sys
from enum import Enum
from typing import List, Optional

import typer

from ..output import views
from .common import (BatchOpt, DType, DTypeOpt, FreeOpt, InputOpt, SetOpt, SpecArg, _out, analyze_net, format_choices,
                     format_option, load_net)
from ..errors import UsageError


GFormat = format_choices("GFormat", views.GRAPH)


class Metric(str, Enum):
    params = "params"
    macs = "macs"
    memory = "memory"
    rf = "rf"


class By(str, Enum):
    layer = "layer"
    block = "block"


def find_layer(report, name: str) -> int:
    """Index of a row by full name or by a unique suffix after a dot (``conv1_1``, ``b3x3.conv2``)."""
    from ..errors import expected_one_of, short

    for i, r in enumerate(report.rows):
        if r.name == name:
            return i
    hits = [i for i, r in enumerate(report.rows) if r.name.endswith("." + name)]
    if len(hits) == 1:
        return hits[0]
    if len(hits) > 1:
        names = ", ".join(report.rows[i].name for i in hits[:5])
        raise UsageError(f"layer {short(name)} is ambiguous in {short(report.name)}",
                         hint=f"give the full name: {names}{', ...' if len(hits) > 5 else ''}")
    raise UsageError(f"{short(report.name)} has no layer {short(name)}",
                     hint=expected_one_of(name, [r.name for r in report.rows][:2000], "a layer name (archcalc summary lists them)"))


def register(app):
    @app.command()
    def explain(
        spec: str = SpecArg,
        layer: Optional[str] = typer.Argument(None, metavar="[LAYER]", help="A layer name (or a unique last part of it); "
                                              "without it, how the network's totals add up.", show_default=False),
        input: Optional[str] = InputOpt,
        set: Optional[List[str]] = SetOpt,
        symbolic: Optional[str] = FreeOpt,
        dtype: DType = DTypeOpt,
    ):
        """The formulas with the numbers substituted, step by step: output size, params, MACs,
        receptive field, memory, and how they roll into the totals."""
        from ..output import explain as E

        net = load_net(spec, set, input, symbolic)
        report = analyze_net(net, "1", dtype)
        out = _out()
        if layer is None:
            lines = E.explain_network(net, report)
        else:
            lines = E.explain_layer(net, report, find_layer(report, layer))
        for line in lines:
            out.para(line, indent="  " if line.startswith("  ") else "")

    @app.command()
    def graph(
        spec: str = SpecArg,
        format: GFormat = format_option(views.GRAPH, help="mermaid (renders in GitHub Markdown) or dot (Graphviz)."),
        depth: Optional[int] = typer.Option(None, "--depth", "-d", metavar="N", help="Fold blocks below N name parts into one node."),
        direction: str = typer.Option("TD", "--direction", metavar="TD|LR", help="Mermaid: top-down or left-right."),
        input: Optional[str] = InputOpt,
        set: Optional[List[str]] = SetOpt,
        symbolic: Optional[str] = FreeOpt,
    ):
        """The architecture as a graph: blocks as subgraphs, shapes on the edges."""
        from .common import depth_note

        if direction not in ("TD", "LR"):
            raise UsageError(f"--direction {direction[:20]}: expected TD or LR")
        net = load_net(spec, set, input, symbolic)
        report = analyze_net(net)
        depth_note(report, depth)
        views.emit(views.GRAPH, format, views.GraphView(net, report, depth, direction))

    @app.command()
    def plot(
        specs: List[str] = typer.Argument(..., metavar="NAME|PATH...", help="A zoo name or spec path; several with --compare.",
                                          show_default=False),
        metric: Metric = typer.Option(Metric.macs, "--metric", "-m", metavar="params|macs|memory|rf", help="What to plot."),
        by: By = typer.Option(By.layer, "--by", metavar="layer|block", help="One bar per layer, or per block (name depth 1)."),
        output: str = typer.Option(..., "--output", "-o", metavar="FILE.png|FILE.svg", help="The image to write.",
                                   show_default=False),
        compare: bool = typer.Option(False, "--compare", help="Several networks on one figure (the metric summed from the input)."),
        force: bool = typer.Option(False, "--force", help="Overwrite an existing output file."),
        input: Optional[str] = InputOpt,
        set: Optional[List[str]] = SetOpt,
        batch: str = BatchOpt,
        dtype: DType = DTypeOpt,
    ):
        """A metric per layer or block as a PNG or SVG (needs matplotlib: pip install 'archcalc[plot]')."""
        from ..output import plot as P
        from .common import _val

        if len(specs) > 1 and not compare:
            raise UsageError("several networks need --compare", hint="archcalc plot A B --compare -o FILE.png")
        if compare and len(specs) < 2:
            raise UsageError("--compare needs at least two networks")
        reports = [analyze_net(load_net(s, set, input), batch, dtype) for s in specs]
        path = P.plot(reports, _val(metric), _val(by), output, compare, force)
        sys.stderr.write(f"wrote {path}\n")
