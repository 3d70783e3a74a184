"""One renderer table per view: format name -> render function.

Each table below is the whole list of formats a command offers; the CLI makes its ``--format``
choices, its metavar and its default (the first key) from the table's keys
(:func:`archcalc.cli.common.format_option`), so a new format is ONE entry here. A render function
takes the view's one value (a Report, a list of Reports, a :class:`Summary`, ...) and writes it to
stdout. The renderers themselves (:mod:`archcalc.output.render`) are imported when one runs: the
tables cost nothing to import, so every command's options can be built from them.

``check``'s table is :data:`archcalc.ci.ci_report.FORMATS` (it renders a
:class:`archcalc.ci.checks.Run`, which this layer may not import); it has the same shape.
"""

from __future__ import annotations

import sys
from typing import Any, Callable, Dict

Table = Dict[str, Callable[[Any], None]]


def emit(table: Table, fmt, value, default: str | None = None) -> None:
    """Render ``value`` in format ``fmt`` (a name or a str Enum member made from ``table``)."""
    name = getattr(fmt, "value", fmt)
    fn = table.get(name) if default is not None else table[name]
    (fn or table[default])(value)


def _write(text: str) -> None:
    sys.stdout.write(text)


def _json(data, **kw) -> None:
    import json

    _write(json.dumps(data, indent=2, **kw) + "\n")


def _out():
    from .textout import Out

    return Out()


# --------------------------------------------------------------------------- summary


class Summary:
    """What ``archcalc summary`` shows: the report and the options that shape it. (A plain slotted
    class, not a dataclass: this module is imported by every run, and a dataclass costs ~1 ms.)"""

    __slots__ = ("report", "net", "depth", "fit", "max_rows", "memory")

    def __init__(self, report, net=None, depth: int | None = None, fit: tuple | None = None, max_rows: int = 10_000,
                 memory: bool = False):
        self.report, self.net, self.depth, self.max_rows = report, net, depth, max_rows
        self.memory = memory  # --memory: every memory figure under the table
        self.fit = fit  # (budget bytes, max batch, "training" | "inference"), or None


def _summary_table(v: Summary) -> None:
    from ..errors import UsageError
    from .render import summary_table

    if v.max_rows < 0:
        raise UsageError(f"--max-rows {v.max_rows}: expected 0 (every row) or a positive number")
    summary_table(_out(), v.report, v.depth, v.fit, v.net, v.max_rows, v.memory)


def _summary_json(v: Summary) -> None:
    from .render import iter_summary_json, jsonable

    extra = {"fit": {"budget_bytes": v.fit[0], "max_batch": jsonable(v.fit[1]), "for": v.fit[2]}} if v.fit else None
    chunks, size = [], 0
    for chunk in iter_summary_json(v.report, extra):  # pieces of up to 1,000 layers
        chunks.append(chunk)
        size += len(chunk)
        if size >= 1 << 20:  # written a megabyte at a time: never the whole document at once
            _write("".join(chunks))
            chunks, size = [], 0
    _write("".join(chunks))


def _summary_csv(v: Summary) -> None:
    from .render import summary_csv

    _write(summary_csv(v.report, v.depth, v.net))


def _summary_markdown(v: Summary) -> None:
    from .render import summary_markdown

    _write(summary_markdown(v.report, v.depth, v.fit, v.net, v.memory))


SUMMARY: Table = {"table": _summary_table, "json": _summary_json, "csv": _summary_csv, "markdown": _summary_markdown}


def _sizes_json(s) -> None:
    from .render import sizes_dict

    _json(sizes_dict(s))


def _sizes_text(s) -> None:
    from .render import sizes_text

    _write(sizes_text(s))


# summary --min-input / --tiling: JSON, else the lines (every other summary format)
SIZES: Table = {"json": _sizes_json, "text": _sizes_text}


# --------------------------------------------------------------------------- compare


def _compare_table(reports) -> None:
    from .render import compare_table

    compare_table(_out(), reports)


def _compare_json(reports) -> None:
    from .render import compare_dict

    _json(compare_dict(reports))


def _compare_csv(reports) -> None:
    from .render import compare_csv

    _write(compare_csv(reports))


def _compare_markdown(reports) -> None:
    from .render import compare_markdown

    _write(compare_markdown(reports))


COMPARE: Table = {"table": _compare_table, "json": _compare_json, "csv": _compare_csv, "markdown": _compare_markdown}


# --------------------------------------------------------------------------- list (the zoo)


def _list_table(rows) -> None:
    from .render import list_table

    list_table(_out(), rows)


def _list_json(rows) -> None:
    _json([{"name": n, "title": e["title"], "input": e["input"], "params": e["params"], "macs": e["macs"],
            "activations": e["activations"]} for n, e in rows])


def _list_csv(rows) -> None:
    from .render import list_csv

    _write(list_csv(rows))


def _list_markdown(rows) -> None:
    from .render import list_markdown

    _write(list_markdown(rows))


LIST: Table = {"table": _list_table, "json": _list_json, "csv": _list_csv, "markdown": _list_markdown}


# --------------------------------------------------------------------------- layers (the registry)


def _layers_table(_=None) -> None:
    from .render import layers_text

    layers_text(_out())


def _layers_markdown(_=None) -> None:
    from .render import layers_markdown

    _write(layers_markdown())


def _layers_json(_=None) -> None:
    from .render import layers_json

    _write(layers_json())


LAYERS: Table = {"table": _layers_table, "markdown": _layers_markdown, "json": _layers_json}


# --------------------------------------------------------------------------- sweep


class SweepView:
    """What ``archcalc sweep`` shows: the :class:`archcalc.analysis.sweep.Sweep` and the charted metric."""

    __slots__ = ("result", "metric")

    def __init__(self, result, metric: str = "macs"):
        self.result, self.metric = result, metric


def _sweep_table(v: SweepView) -> None:
    from .render import sweep_table

    sweep_table(_out(), v.result, v.metric)


def _sweep_json(v: SweepView) -> None:
    from .render import sweep_dict

    _json(sweep_dict(v.result), default=str)


def _sweep_csv(v: SweepView) -> None:
    from .render import sweep_csv

    sweep_csv(sys.stdout, v.result)


SWEEP: Table = {"table": _sweep_table, "json": _sweep_json, "csv": _sweep_csv}


# --------------------------------------------------------------------------- graph


class GraphView:
    """What ``archcalc graph`` shows: the network, its report, the fold depth and Mermaid's direction."""

    __slots__ = ("net", "report", "depth", "direction")

    def __init__(self, net, report, depth=None, direction: str = "TD"):
        self.net, self.report, self.depth, self.direction = net, report, depth, direction


def _graph_mermaid(v: GraphView) -> None:
    from .graph import mermaid_fitting

    text, note = mermaid_fitting(v.net, v.report, v.depth, v.direction)
    if note:
        sys.stderr.write(f"archcalc: note: {note}\n")
    _write(text)


def _graph_dot(v: GraphView) -> None:
    from .graph import dot

    _write(dot(v.net, v.report, v.depth))


GRAPH: Table = {"mermaid": _graph_mermaid, "dot": _graph_dot}


# --------------------------------------------------------------------------- verify


def _verify_table(result) -> None:
    from .render import verify_table

    verify_table(result)


def _verify_json(result) -> None:
    _json(result, default=str)


VERIFY: Table = {"table": _verify_table, "json": _verify_json}
