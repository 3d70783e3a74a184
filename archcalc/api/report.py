"""The Python API's results: :class:`Report` (one network), :class:`Totals` (its typed totals),
:class:`Row` (one layer) and :class:`Comparison` (several networks side by side).

They wrap the engine's :class:`archcalc.analysis.engine.Report` without copying it: every
rendering is the CLI's own (``to_json()`` is ``archcalc summary -f json``, ``str(report)`` the
terminal table, ``to_markdown()`` and ``to_csv()`` the Markdown and CSV formats), and
``_repr_html_`` comes from :mod:`archcalc.output.html`. Numbers are Python ints where sizes are
concrete and sympy expressions where they are closed forms (``to_json()`` writes those as text)."""

from __future__ import annotations

import io
import json
from dataclasses import dataclass, field, fields
from fractions import Fraction
from typing import TYPE_CHECKING, Any, Dict, List, Mapping, Optional, Sequence, Tuple, Union

if TYPE_CHECKING:  # sympy is imported only where a result is symbolic
    import pandas
    from sympy import Expr

    from ..analysis.engine import Report as EngineReport

#: A count or a size: an int, or a closed form (a sympy expression) where symbols stay free.
Number = Union[int, Fraction, "Expr"]


def _value(v: Any) -> Any:
    """An engine value as the API gives it: ints as ints, closed forms simplified."""
    if v is None or isinstance(v, (bool, str, float)) or type(v) is int:
        return v
    from ..expr import as_int, is_symbolic, simplify

    v = as_int(v)
    return simplify(v) if is_symbolic(v) else v


@dataclass(frozen=True)
class Totals:
    """A network's totals: the ``totals`` object of the JSON document (docs/json.md), one field
    per key, same names. Counts are per image unless named ``batch_*``/``size_*``/peaks (at the
    report's batch); bytes are in the report's dtype. Peaks are None where sizes are symbolic.

    A key the engine adds before this class names it is kept in :attr:`extra` (and a test fails
    until it gets its field here: one line)."""

    params: Number
    params_aux: Number
    buffers: Number
    macs: Number
    macs_aux: Number
    activations: Number
    activation_bytes: Number
    train_saved_bytes: Number
    param_bytes: Number
    train_state_bytes: Number
    layers: Number
    ensemble: int
    crops: int
    batch_activation_bytes: Number
    batch_train_bytes: Number
    params_trainable: Number
    params_frozen: Number
    size_input_bytes: Number
    size_param_bytes: Number
    size_activation_bytes: Number
    size_total_bytes: Number
    inference_peak_bytes: Optional[Number] = None
    inference_live_bytes: Optional[Number] = None
    inference_peak_layer: Optional[str] = None
    train_peak_bytes: Optional[Number] = None
    train_live_bytes: Optional[Number] = None
    train_peak_layer: Optional[str] = None
    train_peak_phase: Optional[str] = None
    train_total_bytes: Optional[Number] = None
    train_macs: Optional[Number] = None
    memory_backend: Optional[str] = None
    extra: Mapping[str, Any] = field(default_factory=dict)

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any]) -> "Totals":
        """From the totals mapping (JSON names): known keys become fields, others go to ``extra``."""
        names = [f.name for f in fields(cls) if f.name != "extra"]
        known = {k: _value(values.get(k)) for k in names}  # a key the engine no longer gives: None
        extra = {k: _value(v) for k, v in values.items() if k not in names}
        return cls(**known, extra=extra)

    def to_dict(self) -> Dict[str, Any]:
        """Every total by its JSON name (``extra`` merged in), values as in Python."""
        out = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "extra"}
        out.update(self.extra)
        return out

    def subs(self, **values: int) -> "Totals":
        """The totals with symbols given values (``totals.subs(H=224, W=224)``): closed forms
        become ints. (sympy's own ``expr.subs`` needs archcalc's symbols, which are integer and
        positive: ``archcalc.symbol("H")``, not a plain ``Symbol("H")``.)"""
        from dataclasses import replace

        from ..expr import substitute

        def at(v: Any) -> Any:
            if v is None or isinstance(v, (str, bool)) or type(v) is int:
                return v
            return _value(substitute(v, values))

        changed = {f.name: at(getattr(self, f.name)) for f in fields(self) if f.name != "extra"}
        return replace(self, **changed, extra={k: at(v) for k, v in self.extra.items()})

    def __getitem__(self, key: str) -> Any:
        """``totals["params"]``, as on the engine's dict."""
        d = self.to_dict()
        if key not in d:
            raise KeyError(key)
        return d[key]


@dataclass(frozen=True)
class Axis:
    """The receptive field along one axis: size, effective stride, effective padding."""

    size: Number
    stride: Number
    padding: Number


@dataclass(frozen=True)
class ReceptiveField:
    """Per spatial axis: ``h`` and ``w`` (a 1-D map's one axis, its length, is both; a 3-D one has
    ``d`` too); ``axes`` holds every axis in order (D, H, W; H, W; L)."""

    h: Axis
    w: Axis
    d: Optional[Axis] = None
    axes: Tuple[Axis, ...] = ()

    def __str__(self) -> str:
        """As the table shows it: size/stride/padding ('619/224/213'), per axis where they differ."""
        if len(self.axes) not in (0, 2):
            a = self.axes
            if len(set(a)) == 1:
                return f"{a[0].size}/{a[0].stride}/{a[0].padding}"
            return "/".join("x".join(str(getattr(x, f)) for x in a) for f in ("size", "stride", "padding"))
        if self.h == self.w:
            return f"{self.h.size}/{self.h.stride}/{self.h.padding}"
        return f"{self.h.size}x{self.w.size}/{self.h.stride}x{self.w.stride}/{self.h.padding}x{self.w.padding}"

    def __repr__(self) -> str:
        """ReceptiveField(h=..., w=...) in 2-D (d= first in 3-D; l= alone in 1-D)."""
        if len(self.axes) == 1:
            return f"ReceptiveField(l={self.w!r})"
        parts = [f"{k}={v!r}" for k, v in (("d", self.d), ("h", self.h), ("w", self.w)) if v is not None]
        return f"ReceptiveField({', '.join(parts)})"


@dataclass(frozen=True)
class Row:
    """One layer, per image: as a line of the summary table and a layer of the JSON document."""

    name: str
    type: str
    inputs: Tuple[str, ...]
    output: Tuple[Number, ...]
    params: Number
    buffers: Number
    macs: Number
    activations: Number  # new values the layer produces (0 for views and in-place layers)
    rf: Optional[ReceptiveField]  # None on flat vectors
    aux: bool
    trainable: bool
    line: Optional[int]  # the spec line the layer comes from
    warnings: Tuple[str, ...]
    details: str  # the settings shown in the table ('7x7/2 p3', 'g=32')
    params_share: Optional[float]  # of the total params (None: symbolic)
    macs_share: Optional[float]  # of the total MACs (None: symbolic or an aux head)


class Report:
    """One network analysed: what ``archcalc summary`` shows, as Python values.

    ``print(report)`` gives the terminal table; in a notebook the report renders as HTML."""

    def __init__(self, raw: "EngineReport", network: Any = None, *, depth: Optional[int] = None,
                 max_rows: int = 10_000, fit: Optional[tuple] = None) -> None:
        self._raw = raw
        self._net = network
        self._depth = depth
        self._max_rows = max_rows
        self._fit = fit
        self._totals: Optional[Totals] = None
        self._rows: Optional[Tuple[Row, ...]] = None

    # ------------------------------------------------------------------ data

    @property
    def raw(self) -> "EngineReport":
        """The engine's report (:class:`archcalc.analysis.engine.Report`)."""
        return self._raw

    @property
    def network(self) -> Any:
        """The loaded :class:`archcalc.spec.network.Network` (layers with their arguments)."""
        return self._net

    @property
    def name(self) -> str:
        return self._raw.name

    @property
    def title(self) -> str:
        return self._raw.title

    @property
    def source(self) -> str:
        return self._raw.source

    @property
    def input(self) -> Tuple[Number, ...]:
        """The input shape (C, H, W), per image."""
        return tuple(_value(v) for v in self._raw.input)

    @property
    def output(self) -> Tuple[Number, ...]:
        return tuple(_value(v) for v in self._raw.output)

    @property
    def dtype(self) -> str:
        return self._raw.dtype

    @property
    def batch(self) -> Number:
        return _value(self._raw.batch)

    @property
    def symbols(self) -> Dict[str, Any]:
        """The spec's symbols and their values (None: kept symbolic)."""
        return {k: _value(self._raw.values.get(k)) for k in self._raw.symbols}

    @property
    def warnings(self) -> Tuple[str, ...]:
        return tuple(str(w) for w in self._raw.warnings)

    @property
    def symbolic(self) -> bool:
        """Are the totals closed forms (some symbol kept free)?"""
        return bool(self._raw.symbolic)

    @property
    def fit(self) -> Optional[Dict[str, Any]]:
        """With ``fit=``: ``{"budget_bytes", "max_batch", "for"}``, as in the JSON document."""
        if self._fit is None:
            return None
        return {"budget_bytes": self._fit[0], "max_batch": _value(self._fit[1]), "for": self._fit[2]}

    @property
    def totals(self) -> Totals:
        """The totals, typed (:class:`Totals`)."""
        if self._totals is None:
            self._totals = Totals.from_mapping(totals_mapping(self._raw))
        return self._totals

    @property
    def rows(self) -> Tuple[Row, ...]:
        """Every layer, in order (not folded; ``depth=`` folds the renderings only)."""
        if self._rows is None:
            self._rows = tuple(_rows(self._raw, self._net))
        return self._rows

    def row(self, name: str) -> Row:
        """A layer by full name, or by a unique suffix after a '.' (KeyError otherwise)."""
        target = self._raw.row(name)
        for r, raw in zip(self.rows, self._raw.rows):
            if raw is target:
                return r
        raise KeyError(name)  # pragma: no cover - row() found it among the same rows

    # ------------------------------------------------------------------ renderings

    def to_json(self) -> str:
        """The JSON document, exactly as ``archcalc summary -f json`` writes it (docs/json.md)."""
        from ..output.render import iter_summary_json

        return "".join(iter_summary_json(self._raw, _fit_extra(self._fit)))

    def to_dict(self) -> Dict[str, Any]:
        """The JSON document as Python data (closed forms as their text)."""
        return json.loads(self.to_json())

    def to_markdown(self) -> str:
        """``archcalc summary -f markdown``."""
        from ..output.render import summary_markdown

        return summary_markdown(self._raw, self._depth, self._fit, self._net)

    def to_csv(self) -> str:
        """``archcalc summary -f csv``: one line per layer (folded with ``depth=``), then the total."""
        from ..output.render import summary_csv

        return summary_csv(self._raw, self._depth, self._net)

    def to_pandas(self) -> "pandas.DataFrame":
        """The layers as a pandas DataFrame, one row per layer (needs pandas)."""
        try:
            import pandas as pd
        except ImportError:
            from ..errors import UsageError

            raise UsageError("to_pandas() needs pandas", hint="pip install pandas") from None
        records = []
        for r in self.rows:
            records.append({
                "name": r.name, "type": r.type, "details": r.details, "output": "x".join(map(str, r.output)),
                "params": r.params, "params_share": r.params_share, "buffers": r.buffers, "macs": r.macs,
                "macs_share": r.macs_share, "activations": r.activations,
                "rf_size": None if r.rf is None else r.rf.h.size, "rf_stride": None if r.rf is None else r.rf.h.stride,
                "rf_padding": None if r.rf is None else r.rf.h.padding, "aux": r.aux, "trainable": r.trainable,
            })
        return pd.DataFrame.from_records(records).set_index("name")

    def table(self, width: Optional[int] = None, ascii: bool = False) -> str:
        """The terminal table (``archcalc summary``), fitted to ``width`` characters (None: COLUMNS,
        else never cut)."""
        from ..output.render import summary_table
        from ..output.textout import Out

        buf = io.StringIO()
        summary_table(Out(buf, width=width, color=False, ascii=ascii), self._raw, self._depth, self._fit, self._net,
                      self._max_rows)
        return buf.getvalue()

    def __str__(self) -> str:
        return self.table()

    def __repr__(self) -> str:
        t = self._raw.totals
        from ..output.report import exact

        return (f"<archcalc.Report {self.name!r}: {exact(t['params'])} params, {exact(t['macs'])} MACs, "
                f"{len(self._raw.rows):,} layers>")

    def _repr_html_(self) -> str:
        from ..output.html import summary_html

        return summary_html(self._raw, self._depth, self._fit, self._net, self._max_rows)

    def _repr_markdown_(self) -> str:
        return self.to_markdown()


class Comparison:
    """Several reports side by side (``archcalc compare``): totals with ratios to the first, and the
    layers that differ where the layer lists line up."""

    def __init__(self, reports: Sequence[Report]) -> None:
        self._reports = tuple(reports)

    @property
    def reports(self) -> Tuple[Report, ...]:
        return self._reports

    def __getitem__(self, i: int) -> Report:
        return self._reports[i]

    def __len__(self) -> int:
        return len(self._reports)

    @property
    def _raw(self) -> List["EngineReport"]:
        return [r.raw for r in self._reports]

    def ratios(self, metric: str = "macs") -> Tuple[Any, ...]:
        """Each network's ``metric`` divided by the first's (a float, a sympy number for closed
        forms, None where the first is 0)."""
        base = self._reports[0].totals[metric]
        out = []
        for r in self._reports:
            v = r.totals[metric]
            if isinstance(v, int) and isinstance(base, int):
                out.append(None if base == 0 else v / base)
            else:
                out.append(v / base)
        return tuple(out)

    def to_json(self) -> str:
        """``archcalc compare -f json``."""
        from ..output.render import compare_dict

        return json.dumps(compare_dict(self._raw), indent=2) + "\n"

    def to_dict(self) -> Dict[str, Any]:
        return json.loads(self.to_json())

    def to_markdown(self) -> str:
        """``archcalc compare -f markdown``, then the layers that differ and the warnings."""
        from ..output.html import compare_text_markdown

        return compare_text_markdown(self._raw)

    def to_csv(self) -> str:
        """``archcalc compare -f csv``."""
        from ..output.render import compare_csv

        return compare_csv(self._raw)

    def table(self, width: Optional[int] = None, ascii: bool = False) -> str:
        from ..output.render import compare_table
        from ..output.textout import Out

        buf = io.StringIO()
        compare_table(Out(buf, width=width, color=False, ascii=ascii), self._raw)
        return buf.getvalue()

    def __str__(self) -> str:
        return self.table()

    def __repr__(self) -> str:
        return f"<archcalc.Comparison of {', '.join(repr(r.name) for r in self._reports)}>"

    def _repr_html_(self) -> str:
        from ..output.html import compare_html

        return compare_html(self._raw)

    def _repr_markdown_(self) -> str:
        return self.to_markdown()


def totals_mapping(raw: "EngineReport") -> Dict[str, Any]:
    """The totals the JSON document holds, by its names, as Python values: the engine's totals,
    then the param split, torchinfo's sizes and the liveness peaks (as :func:`archcalc.output.report.to_dict`
    composes them); a key the document has beyond these comes from the document itself."""
    from ..output.report import _peaks, param_split, sizes, to_dict

    out: Dict[str, Any] = dict(raw.totals)
    out.update(zip(("params_trainable", "params_frozen"), param_split(raw)))
    out.update({f"size_{k}": v for k, v in sizes(raw).items()})
    out.update(_peaks(raw))
    for k, v in to_dict(raw)["totals"].items():
        out.setdefault(k, v)
    return out


def _fit_extra(fit: Optional[tuple]) -> Optional[dict]:
    if not fit:
        return None
    from ..output.report import jsonable

    return {"fit": {"budget_bytes": fit[0], "max_batch": jsonable(fit[1]), "for": fit[2]}}


def _rows(raw: "EngineReport", net: Any) -> List[Row]:
    from ..output.report import details, share

    nodes = list(net.nodes) if net is not None and len(net.nodes) == len(raw.rows) else None
    tp, tm = raw.totals["params"], raw.totals["macs"]
    out = []
    for i, r in enumerate(raw.rows):
        rf = None
        if r.rf is not None:
            axes = tuple(Axis(_value(a.size), _value(a.stride), _value(a.padding)) for a in r.rf)
            if len(axes) == 2:
                rf = ReceptiveField(axes[0], axes[1], axes=axes)
            else:  # 1-D: the length as w; 3-D: d, h, w
                rf = ReceptiveField(axes[-2] if len(axes) > 1 else axes[0], axes[-1], axes[0] if len(axes) == 3 else None, axes)
        out.append(Row(
            name=r.name, type=r.type, inputs=tuple(r.inputs), output=tuple(_value(d) for d in r.shape),
            params=_value(r.params), buffers=_value(r.buffers), macs=_value(r.macs), activations=_value(r.values),
            rf=rf, aux=bool(r.aux), trainable=bool(r.trainable), line=r.line, warnings=tuple(str(w) for w in r.warnings),
            details=details(nodes[i]) if nodes is not None else "",
            params_share=share(r.params, tp), macs_share=None if r.aux else share(r.macs, tm),
        ))
    return out
