"""Bad input never gives a traceback (issue 7): random YAML documents, structured mutations of every
zoo spec and line mutations of spec text either load and analyze, or raise ArchcalcError (which the
CLI prints as one line). This property found the block-cycle bug.

Seeded: in CI (and by default) hypothesis is derandomized, so a run's time and result never depend
on luck; ``ARCHCALC_FUZZ=deep`` runs a randomized profile ten times larger. Together the default
profiles run 620 cases.
"""

from __future__ import annotations

import copy
import functools
import json
import os
import re
import time

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from archcalc import layers as L
from archcalc.spec import zoo
from archcalc.analysis.engine import analyze
from archcalc.errors import ArchcalcError
from archcalc.output.report import to_dict
from archcalc.spec.load import loads

DEEP = os.environ.get("ARCHCALC_FUZZ") == "deep"
SCALE = 10 if DEEP else 1
CASE_SECONDS = 10  # CPU seconds: a hang detector, far above any case's real time (milliseconds), whatever the load


def profile(n):
    return settings(max_examples=n * SCALE, derandomize=not DEEP, deadline=None, database=None,
                    suppress_health_check=list(HealthCheck))


def survives(text):
    """Load, analyze and render; only ArchcalcError (one line, naming the file) may come out."""
    start = time.process_time()
    try:
        net = loads(text, "fuzz.yaml")
        report = analyze(net)
        if not report.symbolic:
            to_dict(report)
    except ArchcalcError as err:
        message = str(err)
        assert message.startswith("fuzz.yaml"), message
        assert "\n" not in message
        assert len(message) < 1000, message[:300]
    assert time.process_time() - start < CASE_SECONDS


# --------------------------------------------------------------------------- random documents

WORDS = sorted(set(L.all_names()) | {"repeat", "aux", "layers", "name", "from", "identity", "same", "depthwise", "input",
                                     "symbols", "blocks", "args", "budget", "variants", "trainable", "$i", "$x", "H", "W"})
KEYS = sorted({k.name for t in L.REGISTRY.values() for k in t.keys} | {"out", "kernel", "stride", "padding", "layers", "repeat"})
SCALARS = st.one_of(
    st.integers(-5, 300), st.sampled_from([0, 1, 2, 3, 2**40, 2**41, 10**30]), st.floats(allow_nan=True, allow_infinity=True),
    st.booleans(), st.none(), st.sampled_from(WORDS), st.sampled_from(["2*C", "H//2", "ceil(1.5)", "1/0", "9**9**9", "$x", "[/]",
                                                                       "max(1, 2) if H > 2 else 3", "x" * 100]),
    st.text(max_size=8),
)


def documents():
    value = st.recursive(
        SCALARS,
        lambda inner: st.one_of(
            st.lists(inner, max_size=4),
            st.dictionaries(st.sampled_from(KEYS + WORDS), inner, max_size=3),
        ),
        max_leaves=12,
    )
    layer = st.one_of(st.sampled_from(WORDS), st.dictionaries(st.sampled_from(WORDS), value, min_size=1, max_size=2))
    return st.fixed_dictionaries(
        {"input": st.one_of(st.just([3, 8, 8]), st.lists(SCALARS, max_size=4)), "layers": st.lists(layer, max_size=5)},
        optional={"symbols": st.dictionaries(st.sampled_from(["H", "W", "C", "k"]), SCALARS, max_size=3),
                  "blocks": st.dictionaries(st.sampled_from(["b", "blk", "$x"]), value, max_size=2),
                  "budget": st.dictionaries(st.sampled_from(["params", "macs", "x"]), SCALARS, max_size=2),
                  "name": SCALARS, "title": SCALARS},
    )


@profile(400)
@given(documents())
def test_random_documents_fail_cleanly(doc):
    survives(yaml.safe_dump(doc, allow_unicode=True))


# --------------------------------------------------------------------------- structured mutations of the zoo

ZOO = {name: zoo.resolve(name).read_text() for name in zoo.names()}


@functools.lru_cache(maxsize=None)
def zoo_docs() -> dict:
    """The zoo's specs parsed, once, when a test first draws one (not at collection, which each
    worker does). Plain trees: aliases in a spec would make its parsed document share nodes, and a
    mutation of a shared node could close a cycle (the strategy must draw the same way every time)."""
    return {name: json.loads(json.dumps(yaml.safe_load(text), default=str)) for name, text in ZOO.items()}
REPLACEMENTS = [0, -1, 1, 7, 2**41, 1.5, float("nan"), None, True, "", "same", "depthwise", "identity", "$i", "$nope",
                "1/0", "2**100", "H", [], {}, [1, 2, 3], {"a": 1}, "[/]", "x" * 200]


def _paths(node, path=()):
    yield path
    if isinstance(node, dict):
        for k, v in node.items():
            yield from _paths(v, path + (k,))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            yield from _paths(v, path + (i,))


@st.composite
def structured(draw):
    name = draw(st.sampled_from(sorted(ZOO)))
    doc = copy.deepcopy(zoo_docs()[name])
    for _ in range(draw(st.integers(1, 3))):
        paths = [p for p in _paths(doc) if p]
        if not paths:
            break
        path = draw(st.sampled_from(paths))
        parent = doc
        for step in path[:-1]:
            parent = parent[step]
        op = draw(st.sampled_from(["replace", "delete", "duplicate", "wrap"]))
        key = path[-1]
        if op == "replace":
            parent[key] = copy.deepcopy(draw(st.sampled_from(REPLACEMENTS)))  # never share (mutable) samples
        elif op == "delete":
            del parent[key]
        elif op == "duplicate" and isinstance(parent, list):
            parent.insert(key, copy.deepcopy(parent[key]))
        else:
            parent[key] = [parent[key]] if draw(st.booleans()) else {"repeat": 2, "layers": [parent[key]]}
    return yaml.safe_dump(doc, sort_keys=False)


@profile(120)
@given(structured())
def test_structured_zoo_mutations_fail_cleanly(text):
    survives(text)


# --------------------------------------------------------------------------- line mutations of spec text

TOKENS = ["", "-1", "0", "[]", "{}", "null", "true", "1.5", "'x'", "$", "$i", "[1, 2, 3]", "same", "depthwise",
          "{a: 1}", "- relu", ":", "[", "}", "2**100", "1/0", "identity", "from: x", "&a", "*a", "!!python/object:os.system",
          "1:00", "017", "'ℌ'", "\"\\e[2J\"", "'9**9**9'", ".nan", "'[/]'"]


@st.composite
def mutated(draw):
    lines = draw(st.sampled_from(sorted(ZOO.values()))).split("\n")
    for _ in range(draw(st.integers(1, 3))):
        i = draw(st.integers(0, len(lines) - 1))
        op = draw(st.sampled_from(["delete", "token", "duplicate", "number"]))
        if op == "delete":
            del lines[i]
        elif op == "token":
            words = lines[i].split(" ")
            words[draw(st.integers(0, len(words) - 1))] = draw(st.sampled_from(TOKENS))
            lines[i] = " ".join(words)
        elif op == "duplicate":
            lines.insert(i, lines[draw(st.integers(0, len(lines) - 1))])
        else:
            value = draw(st.sampled_from(["0", "1", "7", "1000", "-3", "99999", "9" * 120]))
            lines[i] = re.sub(r"\d+", value, lines[i], count=1)
        if not lines:
            lines = [""]
    return "\n".join(lines)


@profile(100)
@given(mutated())
def test_mutated_specs_fail_cleanly(text):
    survives(text)
