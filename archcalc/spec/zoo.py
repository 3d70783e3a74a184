"""The bundled zoo: spec files shipped in ``specs/`` (installed as ``archcalc/specs``).

A file is one network named after the file, or a family: a file with ``variants:`` whose members
(``efficientnet_b0`` ... ``efficientnet_b7``) are zoo names of their own.
"""

from __future__ import annotations

import re
from functools import lru_cache
from pathlib import Path

from ..errors import SpecError, expected_one_of, short


def specs_dir() -> Path:
    here = Path(__file__).resolve().parent.parent  # archcalc/
    for candidate in (here / "specs", here.parent / "specs"):
        if candidate.is_dir():
            return candidate
    raise SpecError("the bundled zoo (specs/) is missing from this installation")


def _key(name: str) -> str:
    return name.lower().replace("-", "_")


def _declares_variants(text: str) -> bool:
    return text.startswith("variants:") or "\nvariants:" in text


_MEMBER_LINE = re.compile(r"^  ([A-Za-z0-9][A-Za-z0-9_.\-]*):", re.M)


def members(text: str) -> list[str]:
    """The member names of a zoo family file, read without parsing the YAML (fast: resolving one
    zoo name must not parse every family). Zoo families write ``variants:`` in block style, one
    member per line indented by two spaces; a test checks this equals the full parse for every
    zoo file."""
    m = re.search(r"^variants:[ \t]*(#.*)?\n((?:(?:[ \t].*|[ \t]*|#.*)\n)*)", text + "\n", re.M)
    return _MEMBER_LINE.findall(m.group(2)) if m else []


@lru_cache(maxsize=4)
def _index(folder: str) -> dict:
    """key -> (path, variant or None, display name, listed?) for every zoo name."""
    table: dict = {}
    for path in sorted(Path(folder).glob("*.yaml")):
        text = path.read_text(encoding="utf-8")
        found = members(text) if _declares_variants(text) else []
        if found:
            table.setdefault(_key(path.stem), (path, None, path.stem, False))
            for member in found:
                table[_key(member)] = (path, member, member, True)
        else:
            table[_key(path.stem)] = (path, None, path.stem, True)
    return table


def names() -> list[str]:
    """Every zoo name: one per plain spec file, one per member of each family."""
    return sorted(name for _, _, name, listed in _index(str(specs_dir())).values() if listed)


def families() -> dict:
    """Family file stem -> its member names."""
    out: dict = {}
    for path, variant, name, _ in _index(str(specs_dir())).values():
        if variant is not None:
            out.setdefault(path.stem, []).append(name)
    return {k: sorted(v) for k, v in out.items()}


def is_path(ref: str) -> bool:
    return "/" in ref or "\\" in ref or ref.endswith((".yaml", ".yml"))


def has(name: str) -> bool:
    """Is ``name`` a zoo name (``-`` and ``_`` alike, any case)?"""
    return _key(name) in _index(str(specs_dir()))


def lookup(name: str):
    """(path, variant) of a zoo name; a SpecError listing the zoo's names when it is none (and
    pointing at ``./NAME.yaml`` where such a file lies here)."""
    table = _index(str(specs_dir()))
    hit = table.get(_key(name))
    if hit is None:
        from ..safeio import exists

        local = next((name + e for e in (".yaml", ".yml") if exists(name + e)), None)
        if local is not None:
            raise SpecError(f"{short(name)} is not in the zoo", hint=f"to read the file here, give its path: ./{short(local)[1:-1]}")
        what = "a zoo name (archcalc list) or a path to a .yaml file"
        if len(name) > 100:  # longer than any zoo name: no list of near names
            raise SpecError(f"{short(name)} is not in the zoo", hint=f"expected {what}")
        raise SpecError(f"{short(name)} is not in the zoo", hint=expected_one_of(_key(name), [k for k, v in table.items() if v[3]], what))
    return hit[0], hit[1]


def resolve_ref(ref: str):
    """(path, variant) for a zoo name (``-`` and ``_`` alike) or a path to a spec file."""
    if is_path(ref):
        return Path(ref), None
    return lookup(ref)


def resolve(ref: str) -> Path:
    """The spec file of a zoo name or path (a family member's file for a member)."""
    return resolve_ref(ref)[0]
