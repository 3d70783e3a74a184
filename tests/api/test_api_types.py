"""The public API is typed (issue 25): py.typed ships, every public function and method is
annotated, and mypy accepts archcalc/api, archcalc/__init__.py and a user's code against them
(tests/api/typed_usage.py), and rejects a wrong call. Skipped where mypy is not installed (it is
in the test extra)."""

from __future__ import annotations

import importlib.util
import inspect
import os
import subprocess
import sys
import tempfile

import pytest

import archcalc
from conftest import ROOT

MYPY = ["--follow-imports=silent", "--ignore-missing-imports", "--disallow-untyped-defs",
        "--disallow-incomplete-defs", "--no-error-summary", "--hide-error-context"]


def _mypy(*paths):
    if importlib.util.find_spec("mypy") is None:
        pytest.skip("mypy is not installed (pip install -e '.[test]'): the type check of the public API is skipped")
    cache = os.path.join(tempfile.gettempdir(), f"archcalc-mypy-cache-{os.getuid()}")
    return subprocess.run([sys.executable, "-m", "mypy", f"--cache-dir={cache}", *MYPY, *paths],
                          capture_output=True, text=True, cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)})


def test_py_typed_ships():
    assert (ROOT / "archcalc" / "py.typed").is_file()
    assert '"archcalc" = ["py.typed"]' in (ROOT / "pyproject.toml").read_text()


def test_every_public_name_is_annotated():
    for name in archcalc.__all__:
        obj = getattr(archcalc, name)
        if name == "check":  # the callable CI package: its call is archcalc.api.check
            from archcalc.api import check as obj
        if inspect.isfunction(obj):
            targets = [obj]
        elif inspect.isclass(obj) and obj.__module__.startswith("archcalc.api"):
            targets = [m for k, m in vars(obj).items() if inspect.isfunction(m) and (not k.startswith("_") or k in (
                "__init__", "__str__", "_repr_html_", "_repr_markdown_"))]
            targets += [p.fget for p in vars(obj).values() if isinstance(p, property)]
        else:
            continue
        for fn in targets:
            sig = inspect.signature(fn)
            missing = [p for p in sig.parameters if p not in ("self", "cls") and sig.parameters[p].annotation is inspect.Parameter.empty]
            assert not missing and sig.return_annotation is not inspect.Signature.empty, f"{name}.{fn.__name__}: {missing}"


def test_mypy_accepts_the_api_and_a_users_code():
    proc = _mypy("archcalc/api", "archcalc/__init__.py", "tests/api/typed_usage.py")
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_mypy_rejects_a_wrong_call(tmp_path):
    bad = tmp_path / "bad_usage.py"
    bad.write_text("import archcalc\n\nx: str = archcalc.summary('vgg16', batch=[8]).totals.layers_of_nothing\n")
    proc = _mypy(str(bad))
    assert proc.returncode == 1
    assert 'Argument "batch" to "summary" has incompatible type' in proc.stdout
    assert '"Totals" has no attribute "layers_of_nothing"' in proc.stdout
