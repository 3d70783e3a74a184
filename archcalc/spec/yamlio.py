"""Read YAML safely and remember where every mapping, sequence and key came from.

Only the safe loader is used. Aliases are capped (a "billion laughs" document is an error, not a
hang), nesting is capped (no RecursionError), integers are read as decimal only (YAML 1.1 would
read ``1:00`` as 60 and ``017`` as 15) and bounded in length, and every mapping/sequence records the
1-based line of itself and of each of its entries.
"""

from __future__ import annotations

import yaml

from ..errors import SpecError, Where
from ..limits import MAX_ALIASES, MAX_BYTES, MAX_YAML_DEPTH

MAX_INT_DIGITS = 100
PURE_PYTHON = False  # tests set it to check that both loaders read every spec alike

# The pure-Python safe loader counts aliases and depth as it composes. With libyaml (the usual
# case) the C loader is about five times faster: its events are scanned first, in C and without
# recursion, to enforce the same limits before anything is composed or constructed.
_Base = yaml.SafeLoader
_CBase = getattr(yaml, "CSafeLoader", None)


class LMap(dict):
    """A dict that knows its line and the line of each key."""

    line: int = 0
    lines: dict


class LList(list):
    """A list that knows its line and the line of each item."""

    line: int = 0
    lines: list


class _Loader(_Base):
    def __init__(self, stream):
        super().__init__(stream)
        self._aliases = 0

    def compose_node(self, parent, index):
        if self.check_event(yaml.AliasEvent):
            self._aliases += 1
            if self._aliases > MAX_ALIASES:
                mark = self.peek_event().start_mark
                raise SpecError(f"invalid YAML: more than {MAX_ALIASES} aliases", Where(line=mark.line + 1))
        self._depth = getattr(self, "_depth", 0) + 1
        try:
            if self._depth > MAX_YAML_DEPTH:
                mark = self.peek_event().start_mark
                raise SpecError(f"invalid YAML: nested more than {MAX_YAML_DEPTH} levels deep", Where(line=mark.line + 1))
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1


def _map(loader, node):
    out = LMap()
    out.line = node.start_mark.line + 1
    out.lines = {}
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node, deep=True)
        if not isinstance(key, (str, int, float, bool)) and key is not None:
            raise SpecError("a mapping key must be a plain value", Where(line=key_node.start_mark.line + 1))
        if key in out:
            raise SpecError(
                f"key '{key}' appears twice in one mapping",
                Where(line=key_node.start_mark.line + 1),
                hint=f"first at line {out.lines[key]}",
            )
        out[key] = loader.construct_object(value_node, deep=True)
        out.lines[key] = key_node.start_mark.line + 1
    return out


def _seq(loader, node):
    out = LList(loader.construct_object(child, deep=True) for child in node.value)
    out.line = node.start_mark.line + 1
    out.lines = [child.start_mark.line + 1 for child in node.value]
    return out


def _int(loader, node):
    text = loader.construct_scalar(node)
    line = node.start_mark.line + 1
    plain = text.replace("_", "")
    body = plain.lstrip("+-")
    if ":" in body:
        raise SpecError(
            f"{text[:40]!r} reads as a base-60 number in YAML 1.1", Where(line=line), "quote it, or write the integer itself"
        )
    if len(body) > MAX_INT_DIGITS:
        raise SpecError(f"an integer of {len(body)} digits is longer than the limit of {MAX_INT_DIGITS}", Where(line=line))
    if len(body) > 1 and body[0] == "0" and body[1] in "0123456789":
        raise SpecError(
            f"{text[:40]!r} starts with 0, which YAML 1.1 reads as octal", Where(line=line), "write it without the leading 0"
        )
    return yaml.SafeLoader.construct_yaml_int(loader, node)


def _float(loader, node):
    text = loader.construct_scalar(node)
    if ":" in text:
        raise SpecError(
            f"{text[:40]!r} reads as a base-60 number in YAML 1.1", Where(line=node.start_mark.line + 1), "quote it, or write the number itself"
        )
    if len(text) > 200:
        raise SpecError(f"a number of {len(text)} characters is longer than the limit of 200", Where(line=node.start_mark.line + 1))
    return yaml.SafeLoader.construct_yaml_float(loader, node)


LOADERS = [_Loader]
if _CBase is not None:

    class _CLoader(_CBase):
        """libyaml's safe loader with archcalc's constructors (limits are checked by :func:`_prescan`)."""

    LOADERS.append(_CLoader)

for _cls in LOADERS:
    _cls.add_constructor("tag:yaml.org,2002:int", _int)
    _cls.add_constructor("tag:yaml.org,2002:float", _float)
    _cls.add_constructor("tag:yaml.org,2002:map", _map)
    _cls.add_constructor("tag:yaml.org,2002:seq", _seq)


def _prescan(text: str) -> None:
    """The alias and nesting limits, on libyaml's event stream (flat: no recursion, nothing built)."""
    aliases = depth = 0
    for event in yaml.parse(text, Loader=_CBase):
        if isinstance(event, yaml.AliasEvent):
            aliases += 1
            if aliases > MAX_ALIASES:
                raise SpecError(f"invalid YAML: more than {MAX_ALIASES} aliases", Where(line=event.start_mark.line + 1))
        elif isinstance(event, (yaml.MappingStartEvent, yaml.SequenceStartEvent)):
            depth += 1
            if depth > MAX_YAML_DEPTH:
                raise SpecError(f"invalid YAML: nested more than {MAX_YAML_DEPTH} levels deep", Where(line=event.start_mark.line + 1))
        elif isinstance(event, (yaml.MappingEndEvent, yaml.SequenceEndEvent)):
            depth -= 1


def load_text(text: str, file: str):
    """Parse YAML text; errors become :class:`SpecError` with file and line."""
    if len(text) > MAX_BYTES:
        raise SpecError(f"spec is larger than {MAX_BYTES:,} bytes", Where(file=file))
    loader = None
    try:
        if _CBase is not None and not PURE_PYTHON:
            _prescan(text)
            loader = _CLoader(text)
        else:
            loader = _Loader(text)  # the reader checks for non-printable characters here
        return loader.get_single_data()
    except SpecError as err:
        raise SpecError(err.fact, Where(file=file, line=err.where.line if err.where else None), err.hint) from None
    except yaml.reader.ReaderError as err:
        line = text[: err.position].count("\n") + 1 if isinstance(err.position, int) else None
        char = err.character
        num = ord(char) if isinstance(char, str) and len(char) == 1 else char if isinstance(char, int) else None
        code = f"U+{num:04X}" if num is not None else "?"
        raise SpecError(f"invalid YAML: the non-printable character {code} is not allowed", Where(file=file, line=line),
                        "YAML text holds printable characters only; write it as an escape in a double-quoted string if you mean it") from None
    except yaml.MarkedYAMLError as err:
        mark = err.problem_mark or err.context_mark
        line = mark.line + 1 if mark else None
        what = " ".join(x for x in (err.context, err.problem) if x)
        raise SpecError(f"invalid YAML: {what[:200]}", Where(file=file, line=line)) from None
    except yaml.YAMLError as err:
        raise SpecError(f"invalid YAML: {str(err)[:200]}", Where(file=file)) from None
    except (RecursionError, MemoryError):
        raise SpecError("invalid YAML: nested too deeply", Where(file=file)) from None
    except (ValueError, OverflowError, TypeError) as err:  # a scalar the safe constructors cannot build
        raise SpecError(f"invalid YAML: {str(err)[:200]}", Where(file=file)) from None
    finally:
        if loader is not None:
            loader.dispose()
