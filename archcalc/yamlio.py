"""Read YAML safely and remember where every mapping, sequence and key came from.

Only the safe loader is used. Aliases are capped (a "billion laughs" document is an error, not a
hang) and every mapping/sequence records the 1-based line of itself and of each of its entries.
"""

from __future__ import annotations

import yaml

from .errors import SpecError, Where

MAX_ALIASES = 100
MAX_BYTES = 2_000_000

# The pure-Python safe loader: libyaml's composer would bypass the alias count below.
_Base = yaml.SafeLoader


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
        return super().compose_node(parent, index)


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


_Loader.add_constructor("tag:yaml.org,2002:map", _map)
_Loader.add_constructor("tag:yaml.org,2002:seq", _seq)


def load_text(text: str, file: str):
    """Parse YAML text; errors become :class:`SpecError` with file and line."""
    if len(text) > MAX_BYTES:
        raise SpecError(f"spec is larger than {MAX_BYTES} bytes", Where(file=file))
    loader = _Loader(text)
    try:
        return loader.get_single_data()
    except SpecError as err:
        raise SpecError(err.fact, Where(file=file, line=err.where.line if err.where else None), err.hint) from None
    except yaml.MarkedYAMLError as err:
        mark = err.problem_mark or err.context_mark
        line = mark.line + 1 if mark else None
        what = " ".join(x for x in (err.context, err.problem) if x)
        raise SpecError(f"invalid YAML: {what}", Where(file=file, line=line)) from None
    except yaml.YAMLError as err:
        raise SpecError(f"invalid YAML: {err}", Where(file=file)) from None
    finally:
        loader.dispose()
