"""No conclusion is keyed on a network's name (issue 20): outside docstrings, no string in the
package names a zoo network. Printed figures are claims in the specs (archcalc/spec/claims.py);
what the package says about a network it computes from the spec."""

from __future__ import annotations

import ast
import re

from conftest import ROOT

from archcalc.spec import zoo


def _strings(tree):
    docs = set()
    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        if isinstance(body, list) and body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
            docs.add(id(body[0].value))
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docs:
            yield node


def test_the_package_names_no_zoo_network():
    names = zoo.names()
    assert len(names) > 90 and "inception-bottleneck" in names
    word = re.compile(r"(?<![A-Za-z0-9_\-])(" + "|".join(map(re.escape, sorted(names, key=len, reverse=True)))
                      + r")(?![A-Za-z0-9_\-])")
    found = []
    for path in sorted((ROOT / "archcalc").rglob("*.py")):
        for node in _strings(ast.parse(path.read_text())):
            m = word.search(node.value)
            if m:
                found.append(f"{path.relative_to(ROOT)}:{node.lineno}: {m.group(1)}")
    assert found == []


def test_the_check_finds_a_name_where_one_is_written():
    tree = ast.parse('"""docstring: vgg16 is fine here"""\nERRATA = {"inception-bottleneck": 1}\n')
    assert [n.value for n in _strings(tree)] == ["inception-bottleneck"]
