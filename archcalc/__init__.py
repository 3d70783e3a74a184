"""archcalc: an architecture calculator for convolutional neural networks.

>>> from archcalc import load, analyze
>>> report = analyze(load("vgg16"))
>>> report.totals["params"]
138357544
"""

from __future__ import annotations

__version__ = "0.1.0"
JSON_SCHEMA = 1

from .errors import ArchcalcError, CheckFailed, SpecError, UsageError  # noqa: E402


def load(ref, values=None, input_override=None, free=(), targets=True):
    """Load a zoo name or a spec path into a Network (``values`` sets symbols, ``free`` keeps
    the named symbols symbolic). An existing path is always that file (an ``.onnx`` file is read
    as data); a Python import target (``pkg.module:factory``, ``file.py:Name``; importing it runs
    its code) is taken only where no such path exists, and never with ``targets=False``
    (:mod:`archcalc.refs` states the rule)."""
    from . import refs, spec, zoo

    r = refs.resolve(ref, targets=targets)
    if r.kind in (refs.ONNX, refs.TARGET):  # archcalc/importer/: ONNX read as data, or the named Python
        from .importer import load_target

        return load_target(r, values, input_override, free)
    if r.kind == refs.ZOO:
        path, variant = zoo.lookup(r.text)
        return spec.load(path, values, input_override, free, variant)
    return spec.load(r.text, values, input_override, free)


def analyze(net, **kwargs):
    """Run the engine on a Network; see :func:`archcalc.engine.analyze`."""
    from .engine import analyze as _analyze

    return _analyze(net, **kwargs)


__all__ = ["load", "analyze", "ArchcalcError", "SpecError", "UsageError", "CheckFailed", "__version__"]
