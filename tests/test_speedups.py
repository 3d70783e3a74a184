"""archcalc._speedups reaches into typer's and torch's private internals. Each test here fails when
those internals change (a name, a signature, what it does), so that an upgrade outside the pins in
pyproject.toml is caught here rather than making archcalc silently slower or its help different.
The checks of typer's and torch's own code run in a fresh process, before archcalc has patched
anything."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def _run(code: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, cwd=ROOT, timeout=300)


# ----------------------------------------------------------------------------------- typer

TYPER_INTERNALS = r"""
import dataclasses, inspect
import typer.core as core
import typer._coercion as coercion
from typer._click.exceptions import BadParameter
from typer.core import TyperArgument

def params(f):
    return list(inspect.signature(f).parameters)

# plain_argument_help replaces these two methods, and calls the originals
assert params(TyperArgument.display_type_rich) == ["self", "ctx"], params(TyperArgument.display_type_rich)
assert params(TyperArgument._usage_display_name) == ["self"], params(TyperArgument._usage_display_name)
# light_coercion wraps build_runtime_param(descriptor) and subclasses RuntimeParam
assert params(core.build_runtime_param) == ["descriptor"], params(core.build_runtime_param)
assert dataclasses.is_dataclass(coercion.RuntimeParam) and coercion.RuntimeParam.__dataclass_params__.frozen
assert {f.name for f in dataclasses.fields(coercion.RuntimeParam)} == {"annotation", "parameter_info"}
assert params(coercion.RuntimeParam._coerce_value) == ["self", "value", "param", "ctx"]
assert [f.name for f in dataclasses.fields(coercion.TypeDescriptor)] == ["annotation", "parameter_info", "file_annotation"]
assert {"message", "ctx", "param"} <= set(params(BadParameter))
# typer's own coercion of an int goes through pydantic: what light_coercion saves
import sys, typer
from typer._coercion import TypeDescriptor
before = "pydantic" in sys.modules
rp = core.build_runtime_param(TypeDescriptor(annotation=int, parameter_info=typer.Option(1), file_annotation=None))
assert isinstance(rp, coercion.RuntimeParam)
print(rp._coerce_value("12", param=None, ctx=None), before, "pydantic" in sys.modules)
"""


def test_typer_internals_are_as_the_speedups_assume():
    out = _run(TYPER_INTERNALS)
    assert out.returncode == 0, out.stderr[-3000:]
    assert out.stdout.split() == ["12", "False", "True"]


def test_both_typer_speedups_are_installed():
    from archcalc import _speedups
    from archcalc.cli import common  # noqa: F401  (installs both)

    import typer.core

    assert typer.core.TyperArgument._archcalc_plain is True
    assert typer.core.build_runtime_param._archcalc is True
    # installing again finds them installed (True), and does not wrap twice
    wrapped = typer.core.build_runtime_param
    assert _speedups.plain_argument_help() is True
    assert _speedups.light_coercion(common._converter, common._loud) is True
    assert typer.core.build_runtime_param is wrapped


SUMMARY_WITHOUT_PYDANTIC = r"""
import sys
from archcalc.cli.main import main
code = main(sys.argv[1:])
sys.stdout.flush()
print("EXIT", code, "pydantic" in sys.modules, file=sys.stderr)
"""


def test_light_coercion_converts_without_pydantic():
    out = _run(SUMMARY_WITHOUT_PYDANTIC, "summary", "vgg16", "-f", "json", "--max-rows", "3", "--batch", "2")
    assert out.stderr.strip().splitlines()[-1] == "EXIT 0 False", out.stderr[-3000:]
    assert '"batch": 2' in out.stdout


def test_light_coercion_errors_are_one_line():
    # an integer of 19 digits (above MAX_OPTION_DIGITS) and a wrong enum value
    out = _run(SUMMARY_WITHOUT_PYDANTIC, "summary", "vgg16", "--max-rows", "1" * 19)
    lines = out.stderr.strip().splitlines()
    assert lines[-1] == "EXIT 2 False", out.stderr[-3000:]
    assert lines[:-1] == [f"archcalc: error: --max-rows {'1' * 19}: expected an integer of at most 18 digits"]
    out = _run(SUMMARY_WITHOUT_PYDANTIC, "summary", "vgg16", "-f", "yaml")
    assert out.stderr.strip().splitlines()[-1] == "EXIT 2 False", out.stderr[-3000:]
    assert "'yaml' is not one of" in out.stderr


def test_plain_argument_help():
    out = _run(SUMMARY_WITHOUT_PYDANTIC, "summary", "--help")
    assert out.stdout.splitlines()[0] == "Usage: archcalc summary [OPTIONS] NAME|PATH", out.stdout[:500]
    assert "NAME|PATH  A zoo name" in out.stdout
    assert "{NAME|PATH}" not in out.stdout and "<str>" not in out.stdout


# ----------------------------------------------------------------------------------- torch

TORCH_INTERNALS = r"""
import sys
import torch
from archcalc import _speedups
import torch._decomp as decomp
import torch.utils.flop_counter as flop_counter

found = _speedups.disable_dynamo_code()
assert found is not None, "torch._compile._disable_dynamo is gone or no longer a closure over fn"
code, slot = found
from torch._compile import _disable_dynamo

calls = []
def f(x):
    calls.append(x)
    return x + 1

wrapper = _disable_dynamo(f)
assert wrapper.__code__ is code and wrapper.__closure__[slot].cell_contents is f
# the cache attribute the wrapper reads first: set, the wrapper calls it and imports nothing
f.__dynamo_disable = f
assert wrapper(1) == 2 and calls == [1]
assert "torch._dynamo" not in sys.modules, "the wrapper no longer reads fn.__dynamo_disable first"
assert isinstance(decomp.decomposition_table, dict) and isinstance(decomp.meta_table, dict)
assert "__torch_dispatch__" in flop_counter._FlopCounterMode.__dict__
seeded = _speedups.seed_dynamo_disable()
print(len(seeded) > 100, "torch._dynamo" in sys.modules)
"""


def test_torch_internals_are_as_the_speedups_assume():
    pytest.importorskip("torch")
    out = _run(TORCH_INTERNALS)
    assert out.returncode == 0, out.stderr[-3000:]
    assert out.stdout.split() == ["True", "False"]


def test_speedups_imports_neither_typer_nor_torch():
    out = _run("import sys, archcalc._speedups; print(sorted(m for m in ('typer', 'torch', 'rich') if m in sys.modules))")
    assert out.returncode == 0, out.stderr[-3000:]
    assert out.stdout.strip() == "[]"


def test_pins_match_what_was_verified():
    """pyproject.toml pins typer to the minor version these tests ran against, and the verify
    extra's torch to the range the dynamo seeding was checked on."""
    import re
    from importlib.metadata import version

    text = (ROOT / "pyproject.toml").read_text()
    pin = re.search(r'"typer>=([0-9.]+),<([0-9.]+)"', text)
    assert pin, "typer is not pinned to a range in pyproject.toml"
    low, high = (tuple(int(p) for p in v.split(".")) for v in pin.groups())
    installed = tuple(int(p) for p in re.findall(r"[0-9]+", version("typer"))[:3])
    assert low <= installed < high, (version("typer"), pin.group(0))
    torch_pin = re.search(r'verify = \["torch>=([0-9.]+),<([0-9.]+)"\]', text)
    assert torch_pin, "the verify extra does not pin torch to a range"
    try:
        tv = version("torch")
    except Exception:
        return
    low, high = (tuple(int(p) for p in v.split(".")) for v in torch_pin.groups())
    installed = tuple(int(p) for p in re.findall(r"[0-9]+", tv)[:2])
    assert low <= installed < high, (tv, torch_pin.group(0))
