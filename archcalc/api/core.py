"""``archcalc.summary``, ``compare``, ``load`` and ``analyze``: the CLI's summary and compare as
functions returning :class:`~archcalc.api.report.Report` and :class:`~archcalc.api.report.Comparison`.

The first argument is anything :mod:`archcalc.api._source` reads (a zoo name, a spec path or
text or mapping, an import target, a Network, a live ``torch.nn.Module`` with ``input_size=``);
the keyword arguments are the CLI's options. Errors are the CLI's :class:`~archcalc.errors.ArchcalcError`
family with the same one-line messages; nothing is printed."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Iterable, Mapping, Optional, Tuple, Union

from . import _options as opt
from ._source import loader
from .report import Comparison, Report

if TYPE_CHECKING:
    from sympy import Expr

    from ..analysis.engine import Report as EngineReport
    from ..spec.network import Network

Symbols = Union[str, Iterable[str], None]


def _prepare(model: Any, input: Any, set: Optional[Mapping[str, Any]], symbolic: Symbols, input_size: Any,
             batch: Any, name: Optional[str] = None) -> Tuple[Any, tuple, Any]:
    """(loader, free symbols, batch) for a model and the options that shape its loading."""
    shape = opt.input_shape(input)
    size_batch, traced_at = opt.input_size(input_size)
    if traced_at is not None and shape is not None and tuple(shape) != tuple(traced_at):
        from ..errors import UsageError

        raise UsageError(f"input={tuple(shape)} and input_size={tuple(input_size)} disagree: give one")
    if size_batch is not None and batch is not None and opt.batch(batch) != size_batch:
        from ..errors import UsageError

        raise UsageError(f"batch={batch} and input_size={tuple(input_size)} disagree: give one")
    free = opt.symbolic(symbolic)
    values = opt.sets(set)
    load, _ = loader(model, values, shape if shape is not None else traced_at, free, name, traced_at)
    b = opt.batch(batch if batch is not None else (size_batch or 1))
    return load, free, b


def _network_and_report(load: Any, free: tuple, batch: Any, dtype: str, optimizer: str, ensemble: int,
                        crops: int) -> Tuple[Any, "EngineReport"]:
    """(Network, engine Report), as ``archcalc summary`` makes them: where ``symbolic=`` keeps a
    repeat count free, the totals are closed forms in it (archcalc.analysis.depth)."""
    from ..analysis.engine import DTYPES, OPTIMIZERS, analyze as _analyze
    from ..spec.network import SymbolicRepeat

    kw = dict(dtype=opt.choice("dtype", dtype, list(DTYPES)), batch=batch,
              optimizer=opt.choice("optimizer", optimizer, list(OPTIMIZERS)),
              ensemble=opt.at_least_one("ensemble", ensemble), crops=opt.at_least_one("crops", crops))
    try:
        net = load({}, free)
    except SymbolicRepeat as err:
        depth = tuple(s for s in err.symbols if s in free)
        if not depth or len(depth) != len(err.symbols):
            raise
        from ..analysis.depth import analyze_depth

        others = tuple(s for s in free if s not in depth)
        report = analyze_depth(load, others, depth, **kw)
        start = next(w.get("start") for w in report.warnings if w.code == "depth-start")
        return load({depth[0]: start}, others), report
    return net, _analyze(net, **kw)


def summary(model: Any, *, input_size: Any = None, input: Any = None, set: Optional[Mapping[str, Any]] = None,
            symbolic: Symbols = None, batch: Union[int, str, None] = None, dtype: str = "fp32",
            optimizer: str = "sgd", ensemble: int = 1, crops: int = 1, depth: Optional[int] = None,
            max_rows: int = 10_000, fit: Union[str, int, None] = None, inference: bool = False,
            name: Optional[str] = None) -> Report:
    """One network's layers and totals: ``archcalc summary`` as a :class:`Report`.

    ``model``: a zoo name (``"resnet50"``), a spec path, spec YAML text or a mapping, an import
    target (``"torchvision.models:resnet50"``; importing it runs its code), a Network from
    :func:`load`, or a live ``torch.nn.Module`` with ``input_size=(N, C, H, W)`` (traced in
    memory with torch.fx; ``N`` is the batch). The CLI's options: ``input=(C, H, W)``,
    ``set={"H": 299}``, ``symbolic=("H", "W")`` (closed forms), ``batch=`` (an int or a symbol
    name), ``dtype=``, ``optimizer=``, ``ensemble=``, ``crops=``, ``depth=`` (fold blocks in the
    renderings), ``max_rows=`` (the table's folding; 0: every row), ``fit="16GiB"`` (the largest
    training batch that fits; with ``inference=True`` the inference batch); ``name=`` names a
    traced module's spec.

    >>> import archcalc
    >>> r = archcalc.summary("resnet18")
    >>> r.totals.params, r.totals.macs
    (11689512, 1814073344)
    >>> r.row("fc").output
    (1000,)
    """
    load, free, b = _prepare(model, input, set, symbolic, input_size, batch, name)
    net, raw = _network_and_report(load, free, b, dtype, optimizer, ensemble, crops)
    return Report(raw, net, depth=opt.depth(depth), max_rows=opt.max_rows(max_rows), fit=_fit(raw, fit, inference))


def _fit(raw: "EngineReport", fit: Union[str, int, None], inference: bool) -> Optional[tuple]:
    from ..errors import UsageError, short

    if fit is None:
        if inference:
            raise UsageError("inference=True goes with fit=SIZE", hint="archcalc.summary(NAME, fit='16GiB', inference=True)")
        return None
    from ..analysis.liveness import max_batch
    from ..spec.load import parse_amount

    if isinstance(fit, bool) or not isinstance(fit, (int, str)):
        raise UsageError(f"fit={short(fit)}: expected a size such as '16GiB' or 80e9")
    try:
        budget = fit if isinstance(fit, int) else parse_amount(fit)
    except ValueError:
        raise UsageError(f"fit={short(fit)}: expected a size such as '16GiB' or '80G'") from None
    return (budget, max_batch(raw, budget, inference), "inference" if inference else "training")


def compare(*models: Any, input: Any = None, set: Optional[Mapping[str, Any]] = None, symbolic: Symbols = None,
            batch: Union[int, str, None] = None, dtype: str = "fp32", ensemble: int = 1, crops: int = 1,
            input_size: Any = None) -> Comparison:
    """Two or more networks side by side (``archcalc compare``): totals with ratios to the first,
    per-layer differences where the layer lists line up. Each model is anything :func:`summary`
    takes (Reports too); the options apply to every one.

    >>> import archcalc
    >>> c = archcalc.compare("resnet18", "resnet34")
    >>> [r.totals.params for r in c.reports]
    [11689512, 21797672]
    """
    if len(models) == 1 and isinstance(models[0], (list, tuple)):
        models = tuple(models[0])
    if len(models) < 2:
        from ..errors import UsageError

        raise UsageError("compare needs at least two specs")
    reports = [m if isinstance(m, Report) else summary(m, input=input, set=set, symbolic=symbolic, batch=batch,
                                                         dtype=dtype, ensemble=ensemble, crops=crops, input_size=input_size)
               for m in models]
    return Comparison(reports)


def load(model: Any, values: Optional[Mapping[str, Any]] = None, input_override: Any = None,
         free: Symbols = (), targets: bool = True, *, input: Any = None, set: Optional[Mapping[str, Any]] = None,
         symbolic: Symbols = None, input_size: Any = None, name: Optional[str] = None) -> "Network":
    """The loaded Network (layers with their arguments), from anything :func:`summary` takes.
    ``values``/``set`` give symbols values, ``input_override``/``input`` replace the input,
    ``free``/``symbolic`` keep symbols symbolic. A Python import target is taken only where no
    such path exists, and never with ``targets=False`` (:mod:`archcalc.spec.refs` states the rule).

    >>> import archcalc
    >>> net = archcalc.load("vgg16")
    >>> len(net.nodes), net.input
    (40, (3, 224, 224))
    """
    if not targets and isinstance(model, str):
        from ..spec.refs import load_spec

        return load_spec(model, opt.sets({**(values or {}), **(set or {})}),
                         opt.input_shape(input if input is not None else input_override),
                         opt.symbolic(symbolic) or opt.symbolic(free))
    fn, _, _ = _prepare(model, input if input is not None else input_override, {**(values or {}), **(set or {})},
                        symbolic or free, input_size, None, name)
    return fn({}, opt.symbolic(symbolic or free))


def symbol(name: str) -> "Expr":
    """The sympy Symbol archcalc uses for a size named ``name`` (integer and positive): what a
    closed form's ``.subs({...})`` needs (a plain ``sympy.Symbol("H")`` is another symbol).

    >>> import archcalc
    >>> macs = archcalc.summary("vgg16", symbolic=("H", "W")).totals.macs
    >>> macs.subs({archcalc.symbol("H"): 224, archcalc.symbol("W"): 224})
    15470264320
    """
    from ..expr import symbol as _symbol

    return _symbol(name)


def analyze(net: "Network", **kwargs: Any) -> "EngineReport":
    """The engine on a loaded Network: :func:`archcalc.analysis.engine.analyze` (its raw report:
    ``totals`` a dict). :func:`summary` is the documented way; this stays for existing code."""
    from ..analysis.engine import analyze as _analyze

    return _analyze(net, **kwargs)
