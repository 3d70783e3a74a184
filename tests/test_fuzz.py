"""Bad input never gives a traceback: mutated zoo specs either load and analyze, or raise
ArchcalcError (which the CLI prints as one line). This property found the block-cycle bug."""

import re

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from archcalc import zoo
from archcalc.engine import analyze
from archcalc.errors import ArchcalcError
from archcalc.report import to_dict
from archcalc.spec import loads

TEXTS = [zoo.resolve(n).read_text() for n in ("vgg16", "resnet18", "googlenet", "fractalnet", "mobilenet_v2", "stack3x3")]
TOKENS = ["", "-1", "0", "[]", "{}", "null", "true", "1.5", "'x'", "$", "$i", "[1, 2, 3]", "same", "depthwise",
          "{a: 1}", "- relu", ":", "[", "}", "2**100", "1/0", "identity", "from: x", "&a", "*a", "!!python/object:os.system"]


@st.composite
def mutated(draw):
    lines = draw(st.sampled_from(TEXTS)).split("\n")
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
            value = draw(st.sampled_from(["0", "1", "7", "1000", "-3", "99999"]))
            lines[i] = re.sub(r"\d+", value, lines[i], count=1)
        if not lines:
            lines = [""]
    return "\n".join(lines)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutated())
def test_mutated_specs_fail_cleanly(text):
    try:
        to_dict(analyze(loads(text, "fuzz.yaml")))
    except ArchcalcError as err:
        assert str(err).startswith("fuzz.yaml")
        assert "\n" not in str(err)
