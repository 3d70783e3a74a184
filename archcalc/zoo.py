"""The bundled zoo: spec files shipped in ``specs/`` (installed as ``archcalc/specs``)."""

from __future__ import annotations

from pathlib import Path

from .errors import SpecError, expected_one_of


def specs_dir() -> Path:
    here = Path(__file__).resolve().parent
    for candidate in (here / "specs", here.parent / "specs"):
        if candidate.is_dir():
            return candidate
    raise SpecError("the bundled zoo (specs/) is missing from this installation")


def _key(name: str) -> str:
    return name.lower().replace("-", "_")


def names() -> list[str]:
    return sorted(p.stem for p in specs_dir().glob("*.yaml"))


def is_path(ref: str) -> bool:
    return "/" in ref or "\\" in ref or ref.endswith((".yaml", ".yml"))


def resolve(ref: str) -> Path:
    """A zoo name (``-`` and ``_`` alike) or a path to a spec file."""
    if is_path(ref):
        path = Path(ref)
        if not path.is_file():
            raise SpecError(f"no such file '{ref}'")
        return path
    table = {_key(p.stem): p for p in specs_dir().glob("*.yaml")}
    hit = table.get(_key(ref))
    if hit is None:
        raise SpecError(
            f"'{ref}' is not in the zoo",
            hint=expected_one_of(_key(ref), list(table), "a zoo name (archcalc list) or a path to a .yaml file"),
        )
    return hit
