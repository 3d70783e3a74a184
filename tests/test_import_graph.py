"""The layers of the package (issue 20): every import inside archcalc, at module level or inside a
function, points down the stack, and no two modules import each other through any path.

    core (errors, limits, expr, safeio, findings) < layers < spec < analysis < output < ci
    < torchside < importer < api < cli < the package's __init__ and __main__

A module may import its own folder and any folder below it; a lazy import (inside a function)
counts the same, since it is a dependency all the same.
"""

from __future__ import annotations

import ast
from pathlib import Path

from conftest import ROOT

PKG = ROOT / "archcalc"
RANK = {"core": 0, "layers": 1, "spec": 2, "analysis": 3, "output": 4, "ci": 5, "torchside": 6, "importer": 7,
        "api": 8, "cli": 9, "top": 10}
FLAT = {"errors", "limits", "expr", "safeio", "safejson", "version", "findings", "_speedups"}  # core modules directly under archcalc/


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def layer(mod: str) -> str:
    parts = mod.split(".")
    if len(parts) == 1 or parts[1] == "__main__":
        return "top"
    if parts[1] in FLAT:
        return "core"
    return parts[1]


def imports(path: Path) -> set[str]:
    """Every archcalc module ``path`` imports (absolute names), wherever the import stands."""
    mod = module_name(path)
    pkg = mod if path.name == "__init__.py" else mod.rsplit(".", 1)[0]
    known = KNOWN
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = pkg.split(".")[: len(pkg.split(".")) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            elif node.module and node.module.split(".")[0] == "archcalc":
                target = node.module
            else:
                continue
            for alias in node.names:  # `from . import zoo` names a module
                sub = f"{target}.{alias.name}"
                out.add(sub if sub in known else target)
        elif isinstance(node, ast.Import):
            out.update(a.name for a in node.names if a.name.split(".")[0] == "archcalc")
    out.discard(mod)
    return {m for m in out if m in known}


KNOWN = {module_name(p) for p in PKG.rglob("*.py")}  # every archcalc module, found once
GRAPH = {module_name(p): imports(p) for p in PKG.rglob("*.py")}


def test_the_layout_has_few_flat_modules():
    flat = sorted(p.name for p in PKG.glob("*.py"))
    assert len(flat) <= 10, flat


def test_imports_point_down():
    wrong = [(a, b) for a, deps in GRAPH.items() for b in deps
             if RANK[layer(b)] > RANK[layer(a)]]
    assert not wrong, "imports that point up the stack: " + ", ".join(f"{a} -> {b}" for a, b in sorted(wrong))


def test_no_import_circles():
    state: dict = {}
    cycles = []

    def visit(node, stack):
        state[node] = 1
        stack.append(node)
        for dep in sorted(GRAPH.get(node, ())):
            if state.get(dep) == 1:
                cycles.append(stack[stack.index(dep):] + [dep])
            elif dep not in state:
                visit(dep, stack)
        stack.pop()
        state[node] = 2

    for node in sorted(GRAPH):
        if node not in state:
            visit(node, [])
    # a package's __init__ importing its own submodules and them importing a sibling through the
    # package is still a circle: none is allowed
    assert not cycles, "import circles: " + "; ".join(" -> ".join(c) for c in cycles)


def test_the_graph_sees_lazy_imports():
    """The walker finds imports inside functions."""
    assert "archcalc.api" in GRAPH["archcalc"]  # archcalc's module __getattr__ imports it inside the function
    assert "archcalc.analysis.engine" in GRAPH["archcalc.api.core"]  # archcalc.analyze imports it inside the function
