"""Every zoo number kept (issue 20): the redesign and every later change leave each network's
totals and per-layer names, shapes, params, MACs and receptive fields as recorded.

The reference, tests/reference/zoo_numbers.json.gz, was written by tools/record_zoo_numbers.py
from commit 76827f6, the tree before the redesign; the zoo's torchvision numbers themselves are
checked against torchvision in tests/test_zoo_*.py. A change meant to alter a number regenerates
the file and says which number and why in its commit message.
"""

from __future__ import annotations

import gzip
import json
import sys

import pytest

from conftest import ROOT

sys.path.insert(0, str(ROOT / "tools"))
from record_zoo_numbers import numbers  # noqa: E402

RECORDED = json.loads(gzip.decompress((ROOT / "tests" / "reference" / "zoo_numbers.json.gz").read_bytes()))


def test_every_zoo_name_is_recorded():
    from archcalc.spec import zoo

    assert sorted(RECORDED) == sorted(zoo.names())


@pytest.mark.parametrize("name", sorted(RECORDED))
def test_zoo_numbers_unchanged(name):
    now = numbers(name)
    then = RECORDED[name]
    assert now["totals"] == then["totals"]
    assert len(now["layers"]) == len(then["layers"])
    for new, old in zip(now["layers"], then["layers"]):
        assert new == old, f"{name}: layer {old[0]}"
