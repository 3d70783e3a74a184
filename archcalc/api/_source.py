"""What the Python API's first argument names, as a Network: a zoo name, a spec path, an ONNX file
or an import target (by :func:`archcalc.spec.refs.resolve`'s one rule, as on the command line), a
spec as YAML text or as a Python mapping, a Network from :func:`archcalc.load`, or a live
``torch.nn.Module`` traced in memory by the importer at ``input_size`` (no file written).

torch is never imported here: a module is recognised by its class's ancestry, and the importer
imports torch when it traces."""

from __future__ import annotations

import os
import sys
from typing import Any, Callable, Optional, Tuple

from ..errors import UsageError, short

Loader = Callable[[dict, Tuple[str, ...]], Any]  # (extra symbol values, free symbols) -> Network


def is_module(model: Any) -> bool:
    """Is ``model`` a torch.nn.Module? (Without importing torch: a module object exists only
    where torch is imported already.)"""
    torch = sys.modules.get("torch")
    nn = getattr(torch, "nn", None) if torch is not None else None
    return nn is not None and isinstance(model, nn.Module)


def is_network(model: Any) -> bool:
    from ..spec.network import Network

    return isinstance(model, Network)


def _is_text(model: str) -> bool:
    """Spec text rather than a reference: it spans lines or is a YAML flow mapping."""
    return "\n" in model or model.lstrip().startswith("{")


def describe(model: Any) -> str:
    """What a model argument is, for a message."""
    if isinstance(model, str):
        return "spec text" if _is_text(model) else short(model)
    if isinstance(model, os.PathLike):
        return short(os.fspath(model))
    return f"a {type(model).__name__}"


def loader(model: Any, values: dict, shape: Optional[tuple], free: tuple, name: Optional[str] = None,
           traced_at: Optional[tuple] = None) -> Tuple[Loader, str]:
    """(load(extra values, free) -> Network, a label). ``shape`` is the ``input=`` override (C, H,
    W); ``traced_at`` the (C, H, W) a live module is traced at."""
    from ..spec.load import loads

    if is_network(model):
        if values or shape is not None or free:
            raise UsageError("a loaded Network takes no input=, set= or symbolic=: give them to archcalc.load")

        def ready(extra: dict, free_: tuple) -> Any:
            if extra:
                raise UsageError(f"{short(model.name)}: a loaded Network cannot be loaded again at other symbol values; "
                                 "pass the spec instead")
            return model

        return ready, model.name
    if is_module(model):
        at = traced_at or shape
        if at is None or len(at) != 3:
            raise UsageError(f"a live {type(model).__name__} needs input_size=(N, C, H, W) to be traced at, "
                             "e.g. input_size=(1, 3, 224, 224)")
        from ..importer import import_target

        cls = type(model)
        label = f"{cls.__module__}:{cls.__qualname__}"
        spec_name = name or cls.__name__.lower()
        text, _, _ = import_target(label, None, tuple(at), spec_name, model=model)
        return (lambda extra, free_: loads(text, f"<{cls.__name__}>", {**values, **extra}, shape, free_)), label
    if isinstance(model, dict):
        import yaml

        text = yaml.safe_dump(model, sort_keys=False, default_flow_style=False)
        return (lambda extra, free_: loads(text, "<dict>", {**values, **extra}, shape, free_)), str(model.get("name", "<dict>"))
    if isinstance(model, str) and _is_text(model):
        text = model
        return (lambda extra, free_: loads(text, "<string>", {**values, **extra}, shape, free_)), "<string>"
    if isinstance(model, (str, os.PathLike)):
        from ..importer import load_ref

        ref = os.fspath(model)
        return (lambda extra, free_: load_ref(ref, {**values, **extra}, shape, free_, targets=True)), ref
    raise UsageError(f"{describe(model)}: expected a zoo name, a spec path, spec text or mapping, an import target, "
                     "a Network or a torch.nn.Module")
