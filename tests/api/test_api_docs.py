"""docs/python.md (issue 25): its examples run as doctests, its list of the public API is
exactly ``archcalc.__all__``, and docs/examples/quickstart.ipynb runs from top to bottom (with
nbclient, when installed: the test extra has it)."""

from __future__ import annotations

import doctest
import os
import re

import pytest

import archcalc
from conftest import ROOT

PAGE = ROOT / "docs" / "python.md"
NOTEBOOK = ROOT / "docs" / "examples" / "quickstart.ipynb"


def test_public_api_list_is_all():
    text = PAGE.read_text()
    section = text.split("\n## Public API\n", 1)[1].split("\n## ", 1)[0]
    listed = re.findall(r"^- `([A-Za-z_][A-Za-z0-9_]*)`", section, re.M)
    assert listed == list(archcalc.__all__)
    for name in archcalc.__all__:
        assert getattr(archcalc, name) is not None


def test_doc_examples_run(monkeypatch):
    pytest.importorskip("torchvision", reason="docs/python.md traces torchvision's resnet50")
    monkeypatch.chdir(ROOT)  # the check example names specs/resnet18.yaml relative to here
    monkeypatch.delenv("COLUMNS", raising=False)
    failures, tried = doctest.testfile(str(PAGE), module_relative=False, verbose=False, report=True,
                                       optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert tried >= 25
    assert failures == 0, "docs/python.md: an example prints something else now (the doctest report is above)"


def test_quickstart_notebook_runs():
    nbformat = pytest.importorskip("nbformat", reason="nbformat is not installed (the test extra has it): the notebook is not run")
    nbclient = pytest.importorskip("nbclient", reason="nbclient is not installed (the test extra has it): the notebook is not run")
    pytest.importorskip("ipykernel", reason="ipykernel is not installed (the test extra has it): the notebook is not run")
    nb = nbformat.read(str(NOTEBOOK), as_version=4)
    env_path = os.environ.get("PYTHONPATH", "")
    os.environ["PYTHONPATH"] = os.pathsep.join([str(ROOT)] + ([env_path] if env_path else []))
    try:
        client = nbclient.NotebookClient(nb, timeout=120, kernel_name="python3", resources={"metadata": {"path": str(ROOT)}})
        client.execute()
    finally:
        if env_path:
            os.environ["PYTHONPATH"] = env_path
        else:
            os.environ.pop("PYTHONPATH", None)
    outputs = [o for cell in nb.cells if cell.cell_type == "code" for o in cell.get("outputs", [])]
    assert not [o for o in outputs if o.get("output_type") == "error"]
    html = [o["data"]["text/html"] for o in outputs if "text/html" in o.get("data", {})]
    assert any("138,357,544" in h for h in html), "the vgg16 report renders as HTML with torchvision's 138,357,544 params"
    texts = "".join(o.get("text", "") + o.get("data", {}).get("text/plain", "") for o in outputs)
    assert "(138357544, 15470264320)" in texts
