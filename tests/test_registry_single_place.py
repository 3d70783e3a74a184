"""One place per layer type: the engine, the torch builder and the verifier name no layer type;
everything about a type is declared with it in the registry (archcalc/layers/)."""

from __future__ import annotations

import ast

import pytest

from archcalc import layers as L
from conftest import ROOT

CONSUMERS = ("archcalc/engine.py", "archcalc/torch.py", "archcalc/verify.py")


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


@pytest.mark.parametrize("path", CONSUMERS)
def test_consumers_name_no_layer_type(path):
    assert _mentions((ROOT / path).read_text()) == []


def test_the_check_catches_what_it_is_for():
    # the rules the refactor removed, as they were written: each is caught
    for line in ('if node.type == "flatten":\n    pass\n', 'SIZE_DEPENDENT = ("adaptive_avgpool", "linear")\n',
                 "x = isinstance(t, L._Activation)\n", 'y = r.type in ("identity", "dropout")\n'):
        assert _mentions(line), line
    assert _mentions('x = "Identity" + "inplace" + "input"\n') == []  # torch classes and keys are fine


def test_registry_is_split_by_family():
    files = sorted(p.name for p in (ROOT / "archcalc" / "layers").glob("*.py"))
    assert files == ["__init__.py", "activation.py", "base.py", "channel.py", "conv.py", "join.py", "norm.py",
                     "pool.py", "resample.py"]
    assert not (ROOT / "archcalc" / "layers.py").exists()
    for name in files:
        assert len((ROOT / "archcalc" / "layers" / name).read_text().splitlines()) < 400, name


def test_analyze_is_a_short_walk():
    tree = ast.parse((ROOT / "archcalc" / "engine.py").read_text())
    fn = next(n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == "analyze")
    assert fn.end_lineno - fn.lineno + 1 <= 45
    walk = next(n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == "_Walk")
    for method in walk.body:
        if isinstance(method, ast.FunctionDef):
            assert method.end_lineno - method.lineno + 1 <= 60, method.name


def test_a_new_activation_is_one_declaration():
    """Declare an activation in one line: the loader, the engine (in-place memory), the builder,
    the verifier (FlopCounterMode, values), the RF probe and the saved-bytes check all follow."""
    import torch  # noqa: F401  (a test extra)

    from archcalc import analyze
    from archcalc.layers.activation import _activation
    from archcalc.spec import loads
    from archcalc.verify import memory, receptive_fields, verify

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
