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


def load(ref, values=None, input_override=None, free=()):
    """Load a zoo name or a spec path into a Network (``values`` sets symbols, ``free`` keeps
    the named symbols symbolic)."""
    from . import spec, zoo

    if ":" in str(ref) or str(ref).lower().endswith(".onnx"):  # an import TARGET (archcalc/importer/)
        from .importer import is_target, load_target

        if is_target(ref):
            return load_target(ref, values, input_override, free)
    path, variant = zoo.resolve_ref(str(ref))
    return spec.load(path, values, input_override, free, variant)


def analyze(net, **kwargs):
    """Run the engine on a Network; see :func:`archcalc.engine.analyze`."""
    from .engine import analyze as _analyze

    return _analyze(net, **kwargs)


__all__ = ["load", "analyze", "ArchcalcError", "SpecError", "UsageError", "CheckFailed", "__version__"]
