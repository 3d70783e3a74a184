"""Reading a spec file: only a regular file, within the size limit, UTF-8 (archcalc.safeio), then
safe YAML with line numbers (archcalc.spec.yamlio)."""

from __future__ import annotations


from ..errors import SpecError, Where, short
from ..limits import MAX_BYTES
from .yamlio import load_text


def read_spec_file(path) -> str:
    """The text of a spec file, read safely: only regular files (never a directory, FIFO or device,
    which could block or never end), at most MAX_BYTES + 1 bytes read, UTF-8 checked."""
    import errno

    from ..safeio import NotRegular, read_regular

    shown = short(str(path))
    try:
        data = read_regular(path, MAX_BYTES)
    except FileNotFoundError:
        raise SpecError(f"no such file {shown}") from None
    except NotRegular as err:
        raise SpecError(f"{shown} is {err.kind}, not a spec file") from None
    except (OSError, ValueError) as err:
        reason = getattr(err, "strerror", None) or (
            "file name too long" if getattr(err, "errno", None) == errno.ENAMETOOLONG else str(err)
        )
        raise SpecError(f"cannot read {shown}: {short(reason)[1:-1]}") from None
    if len(data) > MAX_BYTES:
        raise SpecError(f"{shown} is larger than the limit of {MAX_BYTES:,} bytes")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as err:
        line = data[: err.start].count(b"\n") + 1
        raise SpecError(f"not UTF-8 text (byte 0x{data[err.start]:02x})", Where(file=str(path), line=line)) from None


def parse_doc(text: str, file: str = "<spec>"):
    """The YAML document of a spec text (a :class:`LMap` with line numbers), for callers that build
    several networks from one file (a family's members) and parse it once."""
    return load_text(text, file)
