"""archcalc's Python API (docs/python.md): :func:`summary`, :func:`compare`, :func:`check`,
:func:`verify` and :func:`load`, and the results they return. Re-exported by ``archcalc``
itself, which imports this folder only when one of them is first used (``import archcalc``
stays light: no sympy, no torch).

Layering: above the importer (it traces live modules) and below the CLI; it renders through
:mod:`archcalc.output` and prints nothing."""

from __future__ import annotations

from .ci import CheckResult, VerifyResult, check, verify
from .core import analyze, compare, load, summary, symbol
from .report import Axis, Comparison, ReceptiveField, Report, Row, Totals

__all__ = ["summary", "compare", "check", "verify", "load", "analyze", "symbol", "Report", "Comparison", "Totals", "Row",
           "ReceptiveField", "Axis", "CheckResult", "VerifyResult"]
