"""archcalc: an architecture calculator for convolutional neural networks.

The Python API (docs/python.md):

>>> import archcalc
>>> report = archcalc.summary("vgg16")
>>> report.totals.params, report.totals.macs
(138357544, 15470264320)

The API lives in :mod:`archcalc.api` and is imported on first use, so ``import archcalc`` (and
every CLI start) stays light: no sympy, no torch.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .version import JSON_SCHEMA, __version__  # noqa: E402,F401
from .errors import ArchcalcError, CheckFailed, SpecError, UsageError  # noqa: E402

if TYPE_CHECKING:  # what a type checker sees; at run time module __getattr__ below imports them
    from .api import (Axis, CheckResult, Comparison, ReceptiveField, Report, Row, Totals, VerifyResult, analyze, check,
                      compare, load, summary, symbol, verify)

_API = frozenset({"summary", "compare", "check", "verify", "load", "analyze", "symbol", "Report", "Comparison", "Totals", "Row",
                  "ReceptiveField", "Axis", "CheckResult", "VerifyResult"})


def __getattr__(name: str) -> Any:
    """The API's names, imported from :mod:`archcalc.api` when first used (PEP 562)."""
    if name in _API:
        from . import api

        value = getattr(api, name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'archcalc' has no attribute {name!r}")


def __dir__() -> list:
    return sorted(set(globals()) | _API)


__all__ = ["summary", "compare", "check", "verify", "load", "analyze", "symbol", "Report", "Comparison", "Totals", "Row",
           "ReceptiveField", "Axis", "CheckResult", "VerifyResult", "ArchcalcError", "SpecError", "UsageError",
           "CheckFailed", "__version__"]
