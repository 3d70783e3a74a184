"""What a command-line argument names: a file, a zoo name or an import target (issue 19).

One rule, decided here and nowhere else (:func:`resolve`):

1. **A file is a file.** An argument that names an existing path is that path: a spec (or a
   folder of specs, for ``check``), or an ``.onnx`` file, which is read as data. A name ending in
   ``.yaml`` or ``.yml`` is a spec path, never anything else.
2. A bare zoo name (``resnet50``) is the zoo's spec, also where a file or folder of that name
   lies here (the caller says so in a note: give ``./resnet50`` for the file).
3. A Python import target (``pkg.module:factory``, ``path/to/file.py:Name``) is recognised only
   where no such path exists, and only by a caller that accepts one (the commands that take a
   spec from the command line). ``archcalc check`` never does: a target given to it is a usage
   error. Glob matches, folder walks and pre-commit's file lists are existing paths, so by rule 1
   they are never targets.
4. Anything else with a path separator is a (missing) file; anything else a zoo name.

Nothing here imports, opens or reads a file: it looks at names and ``lstat``s paths.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass

from ..errors import UsageError, short
from ..safeio import exists  # noqa: F401 - spec.refs.exists as before

FILE = "file"  # a spec path (existing or not), or a folder
ONNX = "onnx"  # an .onnx file, read as data by archcalc/importer/onnx_graph.py
ZOO = "zoo"  # a name in the bundled zoo (or a name that is in nothing: the zoo says so)
TARGET = "target"  # a Python import target: importing it runs code
GLOB = "glob"  # a pattern (only where the caller expands globs, and only when no such path exists)

GLOB_CHARS = frozenset("*?[")
_MODULE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*")
_BARE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.\-]*")


@dataclass(frozen=True)
class Ref:
    text: str
    kind: str
    note: str | None = None  # for the CLI to print on stderr (the library prints nothing)


def is_target(ref) -> bool:
    """Has ``ref`` the form of an import TARGET (``pkg.module:factory``, ``file.py:Name``, ``m.onnx``)?
    The form only: :func:`resolve` decides what an argument is.

    >>> [is_target(r) for r in ("torchvision.models:resnet50", "nets/my.py:Net", "m.onnx", "resnet50", "a.yaml")]
    [True, True, True, False, False]
    >>> is_target("specs/evil.py:Net.yaml")
    False
    """
    ref = str(ref)
    if ref.lower().endswith(".onnx"):
        return True
    return _python_target(ref)


def _python_target(ref: str) -> bool:
    if is_spec_name(ref):
        return False
    left, sep, right = ref.rpartition(":")
    if not sep or not _MODULE.fullmatch(right or "-"):
        return False
    return left.endswith(".py") or bool(_MODULE.fullmatch(left))


def is_spec_name(ref: str) -> bool:
    """A name ending in .yaml or .yml (any case): a spec path, never a target."""
    return ref.lower().endswith((".yaml", ".yml"))


def _is_dir(path: str) -> bool:
    try:
        return os.path.isdir(path)
    except (OSError, ValueError):
        return False


def resolve(ref, *, targets: bool, globs: bool = False, command: str = "this command") -> Ref:
    """What ``ref`` names, by the module's rule. ``targets``: the caller accepts a Python import
    target (else one is a usage error that says how to analyse it); ``globs``: the caller expands
    a pattern that names no existing path."""
    text = os.fspath(ref) if isinstance(ref, os.PathLike) else str(ref)
    low = text.lower()
    here = exists(text)
    if _BARE.fullmatch(text) and not is_spec_name(text) and not low.endswith(".onnx"):
        from . import zoo

        if zoo.has(text):
            note = None
            local = text if here else next((text + e for e in (".yaml", ".yml") if exists(text + e)), None)
            if local is not None:
                note = f"'{text}' is the zoo's spec; to use the {'folder' if _is_dir(local) else 'file'} here, give its path: ./{local}"
            return Ref(text, ZOO, note)
    if here:
        return Ref(text, ONNX if low.endswith(".onnx") else FILE)
    if globs and GLOB_CHARS & set(text):
        return Ref(text, GLOB)
    if is_spec_name(text):
        return Ref(text, FILE)
    if low.endswith(".onnx"):
        return Ref(text, ONNX)
    if _python_target(text):
        if not targets:
            raise UsageError(
                f"{short(text)} is not a file here and looks like a Python import target: {command} reads spec "
                f"files and zoo names and never imports Python",
                hint=f"write the model's spec with: archcalc import {_quoted(text)} -o net.yaml "
                     f"(or analyse it with: archcalc summary {_quoted(text)})")
        return Ref(text, TARGET)
    if "/" in text or "\\" in text or (os.altsep and os.altsep in text):
        return Ref(text, FILE)
    return Ref(text, ZOO)  # not in the zoo: zoo.lookup says so, with the names it has


def _quoted(text: str) -> str:
    shown = short(text)[1:-1]
    return shown if re.fullmatch(r"[\w./:\-]+", shown) else f"'{shown}'"


def load_spec(ref, values=None, input_override=None, free=(), command: str = "this"):
    """A zoo name or a spec path as a Network (the spec layer's part of :func:`archcalc.load`: an
    ONNX file or a Python import target needs archcalc.importer, above this layer)."""
    from . import load as spec, zoo

    r = resolve(ref, targets=False, command=command)
    if r.kind == ONNX:
        raise UsageError(f"{short(r.text)} is an ONNX file; {command} takes a spec (archcalc.load reads ONNX)")
    if r.kind == ZOO:
        path, variant = zoo.lookup(r.text)
        return spec.load(path, values, input_override, free, variant)
    return spec.load(r.text, values, input_override, free)
