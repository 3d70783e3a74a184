"""One place per layer type: no module outside archcalc/layers/ names a layer type; everything about
a type is declared with it in the registry (archcalc/layers/). The guard walks the whole package."""

from __future__ import annotations

import ast

import pytest

from archcalc import layers as L
from conftest import ROOT

PACKAGE = sorted(p.relative_to(ROOT).as_posix() for p in (ROOT / "archcalc").rglob("*.py")
                 if "layers" not in p.relative_to(ROOT / "archcalc").parts)
# a claim's field names (rows["x"].channels) that happen to equal a type's name
FIELDS_NOT_TYPES = {"archcalc/spec/claims.py": {"'channels'"}}


def _type_names():
    return set(L.REGISTRY) | set(L.ALIASES)


def _type_classes():
    return {n for n in dir(L) if isinstance(getattr(L, n), type) and issubclass(getattr(L, n), L.LayerType)} - {
        "LayerType", "Pointwise"}


def _mentions(source: str):
    """(line, what) for every string constant that is a layer type's name (a rule keyed on a
    type: `node.type == "flatten"`, a tuple of names) and every `L.<a layer class>`."""
    names, classes = _type_names(), _type_classes()
    out = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and node.value in names:
            out.append((node.lineno, repr(node.value)))
        elif (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id == "L"
              and node.attr in classes):
            out.append((node.lineno, f"L.{node.attr}"))
    return out


@pytest.mark.parametrize("path", PACKAGE)
def test_no_module_outside_the_registry_names_a_layer_type(path):
    found = [m for m in _mentions((ROOT / path).read_text()) if m[1] not in FIELDS_NOT_TYPES.get(path, ())]
    assert found == [], found


def test_the_guard_covers_the_whole_package():
    assert len(PACKAGE) >= 40 and "archcalc/analysis/engine.py" in PACKAGE and "archcalc/cli/main.py" in PACKAGE


def test_the_check_catches_what_it_is_for():
    # the rules the refactor removed, as they were written: each is caught
    for line in ('if node.type == "flatten":\n    pass\n', 'SIZE_DEPENDENT = ("adaptive_avgpool", "linear")\n',
                 "x = isinstance(t, L._Activation)\n", 'y = r.type in ("identity", "dropout")\n'):
        assert _mentions(line), line
    assert _mentions('x = "Identity" + "inplace" + "input"\n') == []  # torch classes and keys are fine


def test_a_new_activation_is_one_declaration():
    """Declare an activation in one line: the loader, the engine (in-place memory), the builder,
    the verifier (FlopCounterMode, values), the RF probe and the saved-bytes check all follow."""
    import torch  # noqa: F401  (a test extra)

    from archcalc import analyze
    from archcalc.layers.activation import _activation
    from archcalc.spec.load import loads
    from archcalc.torchside.verify import memory, receptive_fields, verify

    _activation("softplus_test", "Softplus", "log(1 + exp(x)).", saved="input", can_inplace=False)
    try:
        net = loads("input: [3, 12, 12]\nlayers:\n  - {conv: {out: 4, kernel: 3}}\n  - softplus_test\n"
                    "  - {conv: {out: 2, kernel: 3}}\n")
        report = analyze(net)
        assert report.rows[1].values == 4 * 10 * 10  # not in place: a new tensor
        assert verify(net, device="cpu")["ok"]
        assert [r["status"] for r in receptive_fields(net, ["conv2"], report)] == ["ok"]
        s = memory(net, report, device="cpu")["saved_bytes"]
        assert s["torch"] == s["engine"]
    finally:
        del L.REGISTRY["softplus_test"]


def test_the_registry_package_ships_in_the_wheel():
    """archcalc/layers/ is a package: setuptools' explicit package list must name it, or a
    non-editable install has no layer registry at all."""
    import tomllib

    packages = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"]
    assert "archcalc.layers" in packages
