"""The loaded network: its nodes (one per layer instance) and what the spec declares about it."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ..errors import SpecError, Where
from ..expr import is_symbolic


class SymbolicRepeat(SpecError):
    """A repeat count depends on a free symbol: the layer list itself depends on it. The totals can
    still be closed forms in that symbol (:mod:`archcalc.analysis.depth`)."""

    def __init__(self, fact, where, hint, symbols):
        super().__init__(fact, where, hint)
        self.symbols = symbols


@dataclass(slots=True)
class Node:
    """One layer instance. ``inputs`` are node indices; -1 is the network input."""

    name: str
    type: str
    args: dict
    inputs: tuple
    where: Where
    aux: bool = False
    trainable: bool = True  # False: `trainable: false` on the layer or an enclosing block/repeat
    call: int | None = None  # inside a block: the line of the outermost call (in the spec's own layers), where CI annotates


@dataclass
class Network:
    name: str
    title: str
    source: str
    file: str
    input: tuple
    symbols: dict  # declared name -> default (int or None)
    values: dict  # name -> int actually used (defaults and --set); the rest stay symbolic
    nodes: list = field(default_factory=list)
    output: int = -1
    outputs: tuple = ()  # further outputs (node indices) the model returns besides `output` (`outputs:`)
    budget: dict = field(default_factory=dict)
    notes: str = ""
    lint: Any = None  # the spec's raw `lint:` mapping (validated by the check command), or None
    lint_line: int | None = None
    variants: list = field(default_factory=list)  # member names a family spec declares
    budget_source: dict = field(default_factory=dict)  # budget key -> (amount as written, line)
    claims: tuple = ()  # printed figures (archcalc.spec.claims.Claim), compared by `explain`

    @property
    def symbolic(self) -> bool:
        return any(is_symbolic(d) for d in self.input) or any(
            v is None for k, v in self.values.items() if k in self.symbols
        )

    def free_symbols(self) -> list[str]:
        return sorted(k for k in self.symbols if self.values.get(k) is None)
