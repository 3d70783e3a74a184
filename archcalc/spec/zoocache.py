"""A cache of the zoo listing (`archcalc list`): each network's totals, kept between runs.

Listing the zoo loads and analyses every bundled network, about 1.5 s; the figures change only
when a spec file or archcalc's own code changes. So each entry is stored under a key made of

* the digest of archcalc's source (every ``.py`` file of the package, and its version): any
  change to the code, an engine fix or a new layer type, starts a new cache file;
* the digest of the spec file's bytes and the member's name (a family file lists many members).

An entry is used only when both match, so a cached figure is always the figure the code would
compute now. The cache lives in ``$ARCHCALC_CACHE_DIR``, else ``$XDG_CACHE_HOME/archcalc``, else
``~/.cache/archcalc``; ``ARCHCALC_NO_CACHE=1`` turns it off. A cache that cannot be read or
written is ignored (the listing is computed); a file read back is checked whole (a regular file,
bounded size and nesting, every key and value of the declared shape), else it is ignored and
rebuilt. No path in it comes from a spec.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

FORMAT = 1
FIELDS = {"title": str, "input": list, "input_text": str, "params": (int, str), "macs": (int, str),
          "activations": (int, str), "params_text": str, "macs_text": str}


def cache_dir() -> Path | None:
    if os.environ.get("ARCHCALC_NO_CACHE", "") not in ("", "0"):
        return None
    given = os.environ.get("ARCHCALC_CACHE_DIR")
    if given:
        return Path(given)
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "archcalc"


def code_digest() -> str:
    """sha256 of archcalc's version and the bytes of every .py file of the package."""
    from ..version import __version__

    root = Path(__file__).resolve().parent.parent  # the whole package, archcalc/
    h = hashlib.sha256(f"archcalc {__version__} format {FORMAT}\n".encode())
    for path in sorted(root.rglob("*.py")):
        rel = path.relative_to(root).as_posix()
        if "__pycache__" in rel:
            continue
        h.update(rel.encode() + b"\0")
        h.update(path.read_bytes())
        h.update(b"\0")
    return h.hexdigest()


def entry_key(name: str, spec_bytes: bytes) -> str:
    return hashlib.sha256(name.encode() + b"\0" + spec_bytes).hexdigest()


def _valid(entry) -> bool:
    if not isinstance(entry, dict) or set(entry) != set(FIELDS):
        return False
    for k, kind in FIELDS.items():
        v = entry[k]
        if isinstance(v, bool) or not isinstance(v, kind):
            return False
    return all(isinstance(d, (int, str)) and not isinstance(d, bool) for d in entry["input"])


MAX_CACHE_BYTES = 4_000_000  # the cache file read back (the whole zoo takes about 40 kB)


def _shape():
    """The cache file as :func:`_write` writes it, declared (archcalc.safejson): every key and
    value is checked on read, and a file that differs anywhere is ignored and rebuilt."""
    from ..limits import MAX_SIZE
    from ..safejson import Const, Either, Int, ListOf, MapOf, Record, Str

    figure = Either(Int(0, 2**256 - 1), Str(10_000))  # a number, or a closed form's text
    entry = Record({"title": Str(10_000), "input": ListOf(Either(Int(1, MAX_SIZE), Str(1_000)), 1, 3),
                    "input_text": Str(1_000), "params": figure, "macs": figure, "activations": figure,
                    "params_text": Str(1_000), "macs_text": Str(1_000)}, required=tuple(FIELDS))
    item = Record({"key": Str(64, r"[0-9a-f]{64}", "a sha256 digest"), "entry": entry}, required=("key", "entry"))
    return Record({"format": Const(FORMAT), "entries": MapOf(item, key=Str(1_000), max_len=100_000)},
                  required=("format", "entries"))


def _read_bytes(path: Path) -> bytes | None:
    """The cache file's bytes, or None unless it is a regular file (never a link, a FIFO or a
    device: those are not even opened blocking) of at most MAX_CACHE_BYTES bytes."""
    import stat

    from ..safeio import open_regular, read_fd

    try:
        before = os.lstat(path)
        if not stat.S_ISREG(before.st_mode) or before.st_size > MAX_CACHE_BYTES:
            return None
        fd, st = open_regular(path, nofollow=True)
        try:
            if (st.st_dev, st.st_ino) != (before.st_dev, before.st_ino):  # the file opened is the one looked at
                return None
            data = read_fd(fd, MAX_CACHE_BYTES)
        finally:
            os.close(fd)
    except (OSError, ValueError):
        return None
    return None if len(data) > MAX_CACHE_BYTES else data


def _read(path: Path) -> dict:
    """The cached entries, or {} (everything recomputed and the file rewritten) when the file is
    missing, unreadable, not a regular file, too large, nested too deep, not JSON, or not exactly
    the shape :func:`_write` writes, anywhere in it."""
    from ..limits import MAX_CACHE_DEPTH
    from ..safejson import JSONError, check, loads

    data = _read_bytes(path)
    if data is None:
        return {}
    try:
        doc = loads(data, MAX_CACHE_DEPTH)
    except JSONError:
        return {}
    if check(doc, _shape()) is not None:
        return {}
    return doc["entries"]


def _write(path: Path, entries: dict) -> None:
    """Through archcalc/safeio.py (a private file, mode 0o600, replacing only a regular file: a
    link or device planted at the cache's name is left alone and nothing is cached)."""
    from ..errors import ArchcalcError
    from ..safeio import write_file

    try:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        text = json.dumps({"format": FORMAT, "entries": entries}, separators=(",", ":"))
        write_file(path, text, replace=True, mode=0o600)
        for old in path.parent.glob("zoo-*.json"):  # made by other versions of the code
            if old.name != path.name:
                old.unlink()
    except (OSError, ArchcalcError):
        pass  # a read-only home, a full disk: the listing was computed and is printed all the same


def listing(items, compute) -> list[dict]:
    """The entries for ``items`` ((name, spec file path) pairs), in order: from the cache where
    both digests match, else from ``compute(name)``, and the cache updated."""
    folder = cache_dir()
    path = folder / f"zoo-{code_digest()[:32]}.json" if folder is not None else None
    cached = _read(path) if path is not None else {}
    out, fresh, changed = [], {}, False
    for name, spec_path in items:
        key = entry_key(name, Path(spec_path).read_bytes())
        hit = cached.get(name)
        if isinstance(hit, dict) and hit.get("key") == key and _valid(hit.get("entry")):
            entry = hit["entry"]
        else:
            entry = compute(name)
            changed = True
        fresh[name] = {"key": key, "entry": entry}
        out.append(entry)
    if path is not None and (changed or set(fresh) != set(cached)):
        _write(path, fresh)
    return out
