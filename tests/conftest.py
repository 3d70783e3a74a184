import atexit
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

# `archcalc list` keeps a cache (archcalc/spec/zoocache.py): the tests use one of their own, never the
# user's, and subprocesses inherit it; the folder goes when the session ends
_CACHE_DIR = tempfile.mkdtemp(prefix="archcalc-test-cache-")
os.environ["ARCHCALC_CACHE_DIR"] = _CACHE_DIR
atexit.register(shutil.rmtree, _CACHE_DIR, ignore_errors=True)
# The suite starts archcalc as a subprocess hundreds of times. Where PYTHONDONTWRITEBYTECODE is
# set (as on CI machines) each start would compile archcalc's modules again (60 ms a process):
# they are byte-compiled once here, into the usual __pycache__ folders (git ignores them).
compileall.compile_dir(str(ROOT / "archcalc"), quiet=1)
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
