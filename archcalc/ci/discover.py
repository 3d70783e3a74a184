"""What ``archcalc check`` is given: references (files, folders, globs, zoo names) turned into the
spec files to check, by loops that never follow a symlinked folder and report every folder they
cannot read (docs/security.md: discovery)."""

from __future__ import annotations

import os
import re
from pathlib import Path

from ..errors import ArchcalcError, SpecError, UsageError, short


GLOB_CHARS = frozenset("*?[")


def shown(path: str | Path) -> str:
    """A path as reports show it: relative to the working directory where it lies below it."""
    text = os.fspath(path)
    absolute = os.path.abspath(text)
    try:
        rel = os.path.relpath(absolute)
    except ValueError:  # another drive (Windows)
        rel = absolute
    if not rel.startswith(".." + os.sep) and rel != "..":
        text = rel
    return Path(text).as_posix()


# Discovery (a folder, a glob): hidden names are skipped; a symlinked folder is never descended
# (a link to an ancestor cannot loop), while a symlinked file is read as the file it names; a
# folder that cannot be listed is an error naming it (never silently skipped, so a check cannot
# pass by not seeing specs); FIFOs, devices and other non-regular files are kept, so that reading
# them refuses them by name (archcalc.spec.load.read_spec_file never opens one blocking).


def _scan(folder: str, errors: list) -> list:
    """The entries of ``folder`` sorted by name ([] and a message in ``errors`` when it cannot be
    listed; [] alone when it does not exist or is not a folder)."""
    try:
        with os.scandir(folder or ".") as it:
            return sorted(it, key=lambda e: e.name)
    except (FileNotFoundError, NotADirectoryError):
        return []
    except OSError as err:
        errors.append(f"cannot read the folder {short(shown(folder or '.'))}: {_reason(err)}")
        return []


def _real_dir(entry) -> bool:
    """A folder, not a symlink to one (symlinked folders are never descended)."""
    try:
        return entry.is_dir(follow_symlinks=False)
    except OSError:
        return False


def _linked_dir(entry) -> bool:
    try:
        return entry.is_symlink() and entry.is_dir()
    except OSError:
        return False


def _walk(root, errors: list | None = None) -> list[Path]:
    """Every ``*.yaml`` / ``*.yml`` below ``root`` in walk order (a folder's files, then its
    sub-folders'), iteratively (no recursion). Folders that cannot be listed go to ``errors``
    (raised as a SpecError when no list is given). A tree deeper than limits.MAX_FOLDER_DEPTH is
    refused with one line before it is entered (such paths outgrow PATH_MAX)."""
    from ..limits import MAX_FOLDER_DEPTH

    own = errors is None
    errors = [] if own else errors
    out: list[Path] = []
    top = os.fspath(root)
    stack = [(top, 0)]
    while stack:
        folder, depth = stack.pop()
        subdirs = []
        for entry in _scan(folder, errors):
            if entry.name.startswith("."):
                continue
            if _real_dir(entry):
                subdirs.append(os.path.join(folder, entry.name))
            elif entry.name.endswith((".yaml", ".yml")) and not _linked_dir(entry):
                out.append(Path(folder) / entry.name)
        if subdirs and depth >= MAX_FOLDER_DEPTH:
            raise UsageError(f"{short(shown(top))}: folders nested more than {MAX_FOLDER_DEPTH} levels deep below it "
                             f"(at {short(shown(subdirs[0]), 60)})",
                             hint="check the folders nearer the specs, or name the spec files")
        stack.extend((d, depth + 1) for d in reversed(subdirs))
    if own and errors:
        raise SpecError(errors[0])
    return out


def _glob(pattern: str, errors: list) -> list[str]:
    """The existing non-folder paths ``pattern`` matches (``*``, ``?``, ``[...]`` in any part,
    ``**`` for any number of folders), sorted. As glob.glob(recursive=True) for what it finds,
    except that ``**`` never enters a symlinked folder (so a link loop ends) and a folder that
    cannot be listed is reported in ``errors``."""
    import fnmatch

    seps = os.sep + (os.altsep or "")
    anchor = ""
    while pattern[:1] and pattern[0] in seps:
        anchor, pattern = os.sep, pattern[1:]
    parts = [p for p in re.split("[" + re.escape(seps) + "]", pattern) if p not in ("", ".")] or ["."]
    candidates = [anchor]
    for i, part in enumerate(parts):
        last = i == len(parts) - 1
        if part == "**":
            found = []
            for base in candidates:
                stack = [base]
                while stack:
                    folder = stack.pop()
                    found.append(folder)
                    subdirs = []
                    for entry in _scan(folder, errors):
                        if entry.name.startswith("."):
                            continue
                        path = os.path.join(folder, entry.name)
                        if _real_dir(entry):
                            subdirs.append(path)
                        elif last:
                            found.append(path)
                    stack.extend(reversed(subdirs))
            candidates = [c for c in found if c] if last else found
        elif GLOB_CHARS & set(part):
            hidden = part.startswith(".")
            candidates = [os.path.join(base, e.name) for base in candidates for e in _scan(base, errors)
                          if (hidden or not e.name.startswith(".")) and fnmatch.fnmatch(e.name, part)]
        else:
            candidates = [os.path.join(base, part) for base in candidates]
    return sorted({c for c in candidates if c and _refs().exists(c) and not os.path.isdir(c)})


def _refs():
    from ..spec import refs

    return refs


def excluded(path, patterns) -> bool:
    """Whether ``--exclude`` patterns drop a found file: a pattern matches the path as reports show
    it (fnmatch: ``*`` matches ``/`` too, so ``specs/old/*`` drops everything below specs/old) or
    the file's name alone (``*.ci.yml``)."""
    import fnmatch

    if not patterns:
        return False
    text = shown(path)
    name = text.rsplit("/", 1)[-1]
    return any(fnmatch.fnmatchcase(text, p) or fnmatch.fnmatchcase(name, p) for p in patterns)


def expand(refs: list[str], exclude=()) -> list[tuple[str, Path | None, str | None, str | None, bool]]:
    """Each reference as (ref, path, variant, error, found): files, directories (``*.yaml``/``*.yml``
    below them, hidden folders skipped), globs, zoo names (a family member's name gives its file
    and the member). ``found`` is true for a file found in a folder or by a glob (rather than
    named): such a file may turn out not to be a spec (a CI workflow), and ``exclude`` patterns
    (:func:`excluded`) drop such files. A reference that finds nothing is one entry with an error
    message; the same file (and member) named twice is checked once. What a reference names is
    decided by archcalc.spec.refs.resolve: an existing path is that file, and a Python import target
    is a usage error (check never imports Python)."""
    from ..spec import zoo

    R = _refs()
    out: list = []
    seen: set = set()

    def add(ref, path, variant=None, found=False):
        try:
            key = (os.path.realpath(path), variant)
        except (OSError, ValueError, RecursionError):
            key = (os.path.abspath(path), variant)
        if key in seen:
            return
        seen.add(key)
        if variant is None and os.fspath(path).lower().endswith(".onnx"):
            out.append((ref, None, None, onnx_message(path), found))
        else:
            out.append((ref, path, variant, None, found))

    def found(ref, paths, errors, none):
        for message in dict.fromkeys(errors):  # each folder once
            out.append((ref, None, None, message, False))
        if not paths and not errors:
            out.append((ref, None, None, none, False))
        for p in paths:
            if not excluded(p, exclude):
                add(ref, Path(p), found=True)

    for ref in refs:
        r = R.resolve(ref, targets=False, globs=True, command="check")
        if r.kind == R.ZOO:
            try:
                p, variant = zoo.lookup(ref)
            except ArchcalcError as err:
                out.append((ref, None, None, str(err), False))
            else:
                add(ref, p, variant)
        elif r.kind == R.GLOB:
            errors: list = []
            found(ref, _glob(ref, errors), errors, f"no file matches {short(ref)}")
        elif not R.exists(ref):
            out.append((ref, None, None, _missing(ref), False))
        elif os.path.isdir(ref):
            errors = []
            found(ref, _walk(ref, errors), errors, f"no .yaml or .yml files under {short(ref)}")
        else:
            add(ref, Path(ref))
    return out


def _missing(ref: str) -> str:
    try:
        os.lstat(ref)
    except (OSError, ValueError) as err:
        if isinstance(err, OSError) and not isinstance(err, (FileNotFoundError, NotADirectoryError)):
            return f"cannot read {short(ref)}: {_reason(err)}"
    return f"no such file {short(ref)}"


def onnx_message(path) -> str:
    name = short(shown(path))[1:-1]
    return (f"{short(shown(path))} is an ONNX file: check reads YAML specs; analyse it with: archcalc summary {name} "
            f"(or write its spec with: archcalc import {name} -o spec.yaml, and check that)")


def is_spec(doc) -> bool:
    """A parsed YAML document that is meant as a spec: a mapping with ``input`` or ``layers`` (the
    two keys every spec has). A CI workflow (``on:``, ``jobs:``), a pre-commit config (``repos:``)
    or a list is not; a spec with a mistake in it still is, and is reported."""
    return isinstance(doc, dict) and ("input" in doc or "layers" in doc)


def read_text(path: Path, name: str | None = None) -> str:
    """A spec file's text, read by the loader's own safe reader (regular files only, at most
    limits.MAX_BYTES bytes, UTF-8 checked)."""
    from ..spec.load import read_spec_file

    return read_spec_file(path)


def members(text: str, file: str, doc=None) -> list[str]:
    """The members a family file declares under ``variants:`` ([] for a plain spec)."""
    if not (text.startswith("variants:") or "\nvariants:" in text):
        return []
    from ..spec.load import family

    return list(family(text, file, doc))


def _reason(err) -> str:
    """An OSError's reason, lower case, for a one-line message."""
    import errno

    if getattr(err, "errno", None) == errno.ENAMETOOLONG:
        return "file name too long"
    text = getattr(err, "strerror", None) or type(err).__name__
    return text[:1].lower() + text[1:]
