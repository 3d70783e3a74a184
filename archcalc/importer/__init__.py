"""``archcalc import``: a PyTorch model or an ONNX file as a readable spec.

A TARGET is ``package.module:factory`` (an importable module and a name in it: a function or
class that returns an ``nn.Module``, called with ``--arg KEY=VALUE`` keyword arguments, or a
module instance), ``path/to/file.py:Name`` (the same, from a file), or ``model.onnx``. Importing
a Python TARGET runs that code: the user names it on the command line. Whether an argument is a
TARGET is decided by :func:`archcalc.spec.refs.resolve` alone (an existing path or a ``.yaml`` name
never is one; ``archcalc check`` takes none). A spec can never name a TARGET (the loader reads
YAML only), and nothing here runs at archcalc's start-up: torch and onnx are imported inside the
functions that need them.

The PyTorch path traces with torch.fx (:mod:`.fx`), the ONNX path reads the graph with the onnx
package only (:mod:`.onnx_graph`); both give an :class:`~.ir.Graph`, written as YAML by
:mod:`.emit`. :mod:`.roundtrip` proves an import: the spec built by archcalc's builder takes the
original's ``state_dict`` and gives the same outputs, params, buffers and MACs.
"""

from __future__ import annotations

import ast
import importlib
import re
import sys
from pathlib import Path

from ..errors import UsageError, did_you_mean, short
from ..spec.refs import is_target  # noqa: F401 - the form of a TARGET; archcalc.spec.refs.resolve decides what an argument is
from .ir import ImportFailed, need  # noqa: F401 - need: archcalc.importer.need as before

DEFAULT_INPUT = (3, 224, 224)


def parse_args(items) -> dict:
    """``--arg KEY=VALUE`` as keyword arguments. Values are Python literals (ints, floats, strings,
    True/False/None, tuples, lists; ``ast.literal_eval``, which runs nothing), or else the text.

    >>> parse_args(["num_classes=10", "dropout=0.5", "aux_logits=False", "mode=bilinear", "k=true"])
    {'num_classes': 10, 'dropout': 0.5, 'aux_logits': False, 'mode': 'bilinear', 'k': True}
    """
    out: dict = {}
    for item in items or ():
        key, sep, text = str(item).partition("=")
        key = key.strip()
        if not sep or not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", key):
            raise UsageError(f"--arg {short(item)[1:-1]}: expected KEY=VALUE with KEY a Python name, e.g. num_classes=10")
        text = text.strip()
        words = {"true": True, "false": False, "none": None, "null": None}
        if text.lower() in words:
            out[key] = words[text.lower()]
            continue
        try:
            out[key] = ast.literal_eval(text)
        except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
            out[key] = text
    return out


def _load_module(left: str, target: str):
    if left.endswith(".py"):
        path = Path(left)
        if not path.is_file():
            raise ImportFailed(f"{short(target)[1:-1]}: no such file {short(left)}")
        name = "archcalc_import_" + re.sub(r"\W", "_", path.stem)
        spec = importlib.util.spec_from_file_location(name, path)
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        try:
            spec.loader.exec_module(module)
        except Exception as err:  # noqa: BLE001 - the user's file: report its error in one line
            sys.modules.pop(name, None)
            raise ImportFailed(f"{short(target)[1:-1]}: running {short(left)} failed: {_one_line(err)}") from None
        return module
    try:
        return importlib.import_module(left)
    except ModuleNotFoundError as err:
        if err.name and (left == err.name or left.startswith(err.name + ".")):
            raise ImportFailed(f"{short(target)[1:-1]}: no module named {short(err.name)}",
                               hint="install it, or give a path: path/to/file.py:Name") from None
        raise ImportFailed(f"{short(target)[1:-1]}: importing {short(left)} failed: {_one_line(err)}") from None
    except Exception as err:  # noqa: BLE001
        raise ImportFailed(f"{short(target)[1:-1]}: importing {short(left)} failed: {_one_line(err)}") from None


def _one_line(err) -> str:
    text = str(err).strip().splitlines()
    first = "".join(ch for ch in (text[0] if text else "") if ch.isprintable())
    return f"{type(err).__name__}: {first[:160]}" if first else type(err).__name__


def model_of(target: str, args: dict | None = None, device=None):
    """The nn.Module a Python TARGET names (built on ``device``, e.g. 'meta', when given)."""
    torch = need("torch", "importing a PyTorch model")
    left, _, right = target.rpartition(":")
    module = _load_module(left, target)
    obj = module
    for part in right.split("."):
        if not hasattr(obj, part):
            names = [n for n in dir(obj) if not n.startswith("_")]
            raise ImportFailed(f"{short(target)[1:-1]}: {short(left)} has no attribute {short(part)}",
                               hint=did_you_mean(part, names) or "give module:name of a function or class that returns an nn.Module")
        obj = getattr(obj, part)
    args = dict(args or {})
    if isinstance(obj, torch.nn.Module):
        if args:
            raise UsageError(f"{short(target)[1:-1]} is a module instance: --arg does not apply")
        return obj
    if not callable(obj):
        raise ImportFailed(f"{short(target)[1:-1]} is a {type(obj).__name__}, not a function or class returning an nn.Module")
    try:
        if device is not None:
            with torch.device(device):
                model = obj(**args)
        else:
            model = obj(**args)
    except Exception as err:  # noqa: BLE001 - the user's factory: report its error in one line
        shown = ", ".join(f"{k}={v!r}" for k, v in args.items())
        raise ImportFailed(f"{short(target)[1:-1]}({short(shown, 60)[1:-1]}) raised {_one_line(err)}",
                           hint="check the factory's keyword arguments (--arg KEY=VALUE)") from None
    if not isinstance(model, torch.nn.Module):
        raise ImportFailed(f"{short(target)[1:-1]} returned a {type(model).__name__}, not an nn.Module")
    return model


def versions(target: str, onnx=False) -> str:
    from ..version import __version__

    out = []
    if onnx:
        out.append(f"onnx {importlib.import_module('onnx').__version__}")
    else:
        torch = importlib.import_module("torch")
        out.append(f"torch {torch.__version__}")
        top = target.rpartition(":")[0].split(".")[0]
        if not target.rpartition(":")[0].endswith(".py") and top not in ("torch", "archcalc"):
            mod = sys.modules.get(top)
            v = getattr(mod, "__version__", None)
            if v:
                out.append(f"{top} {v}")
    out.append(f"archcalc {__version__}")
    return ", ".join(out)


def default_name(target: str) -> str:
    stem = Path(target).stem if target.lower().endswith(".onnx") else target.rpartition(":")[2].split(".")[-1]
    stem = re.sub(r"[^A-Za-z0-9_.\-]", "_", stem).strip("._-") or "imported"
    return stem if stem[0].isalnum() else "m" + stem


def graph_of(target: str, args=None, input_shape=None, model=None, device=None):
    """(Graph, model or None) for a TARGET (``model``: an already built module for a Python TARGET)."""
    shape = tuple(input_shape or DEFAULT_INPUT)
    if str(target).lower().endswith(".onnx"):
        if args:
            raise UsageError("--arg applies to Python targets, not to an ONNX file")
        from .onnx_graph import read

        return read(str(target), input_shape), None
    need("torch", "importing a PyTorch model")
    if model is None:
        model = model_of(target, args, device)
    from .fx import trace

    return trace(model, shape, target), model


def import_target(target: str, args=None, input_shape=None, name=None, model=None, device=None):
    """(spec YAML text, Graph, model or None) for a TARGET."""
    target = str(target)
    g, model = graph_of(target, args, input_shape, model, device)
    from .emit import to_yaml

    onnx = target.lower().endswith(".onnx")
    shown = target + "".join(f" --arg {k}={v!r}" for k, v in (args or {}).items())
    source = f"archcalc import {shown} ({versions(target, onnx)})"
    name = name or default_name(target)
    where = target if len(target) <= 60 else "…" + target[-59:]
    title = f"imported from {where}" + (" (ONNX)" if onnx else " (PyTorch, torch.fx)")
    return to_yaml(g, name, title, source), g, model


def load_ref(ref, values=None, input_override=None, free=(), targets=True):
    """A zoo name, a spec path, an ONNX file or (with ``targets``) a Python import target as a
    Network: :func:`archcalc.load`. :func:`archcalc.spec.refs.resolve` decides which it is."""
    from ..spec import refs

    r = refs.resolve(ref, targets=targets)
    if r.kind in (refs.ONNX, refs.TARGET):  # an ONNX file read as data, or the named Python
        return load_target(r, values, input_override, free)
    return refs.load_spec(r.text, values, input_override, free)


def load_target(ref, values=None, input_override=None, free=()):
    """A Network for a TARGET, imported in memory (no file written): archcalc.load's hook.
    ``ref`` is what :func:`archcalc.spec.refs.resolve` made of the argument (an ONNX file or a Python
    target); a plain string is resolved here by the same rule."""
    from ..spec.refs import ONNX, TARGET, resolve
    from ..spec.load import loads

    if isinstance(ref, str):
        ref = resolve(ref, targets=True)
    if ref.kind not in (ONNX, TARGET):
        raise UsageError(f"{short(ref.text)} is not an import target", hint="give pkg.module:factory, path/to/file.py:Name or model.onnx")
    shape = tuple(input_override) if input_override is not None and len(input_override) in (2, 3, 4) else None
    text, _, _ = import_target(ref.text, None, shape)
    return loads(text, ref.text, values, None, free)
