"""archcalc: an architecture calculator for convolutional neural networks.

>>> from archcalc import load, analyze
>>> report = analyze(load("vgg16"))
>>> report.totals["params"]
138357544
"""

from __future__ import annotations

from .version import JSON_SCHEMA, __version__  # noqa: E402,F401
from .errors import ArchcalcError, CheckFailed, SpecError, UsageError  # noqa: E402


def load(ref, values=None, input_override=None, free=(), targets=True):
    """Load a zoo name or a spec path into a Network (``values`` sets symbols, ``free`` keeps
    the named symbols symbolic). An existing path is always that file (an ``.onnx`` file is read
    as data); a Python import target (``pkg.module:factory``, ``file.py:Name``; importing it runs
    its code) is taken only where no such path exists, and never with ``targets=False``
    (:mod:`archcalc.spec.refs` states the rule)."""
    from .importer import load_ref

    return load_ref(ref, values, input_override, free, targets=targets)


def analyze(net, **kwargs):
    """Run the engine on a Network; see :func:`archcalc.analysis.engine.analyze`."""
    from .analysis.engine import analyze as _analyze

    return _analyze(net, **kwargs)


__all__ = ["load", "analyze", "ArchcalcError", "SpecError", "UsageError", "CheckFailed", "__version__"]
