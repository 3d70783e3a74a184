import atexit
import functools
import compileall
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from archcalc.cli.main import main

ROOT = Path(__file__).resolve().parent.parent

# pytest-xdist's workers run with COLUMNS=80 and LINES set (from the controlling terminal writer):
# archcalc reads COLUMNS as the table's width, so each test sees the environment a plain
# `python -m pytest` gives it (tests that want a width set one themselves)
if os.environ.get("PYTEST_XDIST_WORKER"):
    os.environ.pop("COLUMNS", None)
    os.environ.pop("LINES", None)

# `archcalc list` keeps a cache (archcalc/spec/zoocache.py): the tests use one of their own, never the
# user's, and subprocesses inherit it; the folder goes when the session ends
_CACHE_DIR = tempfile.mkdtemp(prefix="archcalc-test-cache-")
os.environ["ARCHCALC_CACHE_DIR"] = _CACHE_DIR
atexit.register(shutil.rmtree, _CACHE_DIR, ignore_errors=True)
# The suite starts archcalc as a subprocess hundreds of times. Where PYTHONDONTWRITEBYTECODE is
# set (as on CI machines) each start would compile archcalc's modules again (60 ms a process):
# they are byte-compiled once here, into the usual __pycache__ folders (git ignores them).
compileall.compile_dir(str(ROOT / "archcalc"), quiet=1)
# Likewise pytest's rewritten test modules (its assertion rewriting caches them beside the tests,
# in __pycache__, only where bytecode may be written): each worker would rewrite all 250 modules
# again on every run (about 3 s each)
sys.dont_write_bytecode = False
REFERENCE = json.loads((ROOT / "tests" / "reference" / "torchvision.json").read_text())["models"]


@pytest.fixture
def cli(capsys):
    """Run the CLI in-process: returns (exit code, stdout, stderr)."""

    def run(*args):
        code = main(list(args))
        out = capsys.readouterr()
        return code, out.out, out.err

    return run


def run_subprocess(*args, env=None):
    """Run `python -m archcalc ARGS` in a fresh interpreter."""
    return subprocess.run(
        [sys.executable, "-m", "archcalc", *args],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={**os.environ, **(env or {})},
    )


# --------------------------------------------------------------------------- samples of the zoo

DEEP = os.environ.get("ARCHCALC_DEEP") == "1"


@functools.lru_cache(maxsize=None)
def _zoo_facts() -> dict:
    """Per zoo name (in the zoo's order), ``(its symbols, the symbols with a value, its layers)``:
    each spec loaded once per process. Test modules choose their specs from it at collection, which
    each of the two workers does: 111 loads, not 333."""
    from archcalc import load
    from archcalc.spec import zoo

    out = {}
    for name in zoo.names():
        net = load(name)
        out[name] = (frozenset(net.symbols), frozenset(net.values), len(net.nodes))
    return out


def randomise(model, seed=0, scale=0.2):
    """Non-trivial weights and BN statistics, so that equal outputs mean something: every floating
    tensor drawn (running variances in 0.5 .. 1.5, the rest normal times ``scale``), every other
    one (BN's num_batches_tracked) zeroed; a model made on the meta device and moved with
    to_empty needs no initialisation. Returns the model."""
    import torch

    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, t in list(model.named_parameters()) + list(model.named_buffers()):
            if not t.dtype.is_floating_point:
                t.zero_()
            elif name.endswith("running_var"):
                t.copy_(torch.rand(t.shape, generator=gen) + 0.5)
            else:
                t.copy_(torch.randn(t.shape, generator=gen) * scale)
    return model


def zoo_symbols() -> dict:
    """Per zoo name (in the zoo's order), ``(its symbols, the symbols with a value)``."""
    return {name: (symbols, values) for name, (symbols, values, _) in _zoo_facts().items()}


def zoo_sample(names):
    """The zoo names a whole-zoo torch or closed-form test runs by default: one per family (the
    name with its digits and suffix cut, and a size word: resnet, vgg, efficientnet_b, convnext,
    ...; the member with the
    fewest layers, the first in sorted order among equals), so every kind of construct is met
    while the suite stays within its 3 minutes. ``ARCHCALC_DEEP=1`` runs every name. The zoo's
    numbers themselves are checked for every network in the default run
    (tests/zoo/test_zoo_numbers.py, tests/zoo/test_zoo_*.py)."""
    import re

    names = sorted(names)
    if DEEP:
        return names
    layers = {name: facts[2] for name, facts in _zoo_facts().items()}
    best: dict = {}
    for name in names:
        family = re.sub(r"_(tiny|small|base|large)$", "", re.sub(r"[0-9].*$", "", name).rstrip("_-.") or name)
        if family not in best or layers.get(name, 0) < layers.get(best[family], 0):
            best[family] = name
    return sorted(best.values())
