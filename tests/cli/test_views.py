"""One renderer table per view (archcalc/output/views.py, archcalc/ci/ci_report.FORMATS): every
command's --format choices, metavar and default come from its table's keys, so a format is one
entry; sweep's --format is a typed choice like the others."""

import subprocess
import sys

import pytest

from archcalc.ci import ci_report
from archcalc.output import views
from conftest import ROOT, run_subprocess

# command -> (its renderer table, the metavar the help showed before the tables)
TABLES = {
    "summary": (views.SUMMARY, "table|json|csv|markdown"),
    "compare": (views.COMPARE, "table|json|csv|markdown"),
    "list": (views.LIST, "table|json|csv|markdown"),
    "layers": (views.LAYERS, "table|markdown|json"),
    "sweep": (views.SWEEP, "table|json|csv"),
    "verify": (views.VERIFY, "table|json"),
    "graph": (views.GRAPH, "mermaid|dot"),
    "check": (ci_report.FORMATS, "text|json|junit|github|sarif"),
}


def _format_param(command):
    import typer.main

    from archcalc.cli.common import app

    click_app = typer.main.get_command(app)
    return next(p for p in click_app.commands[command].params if p.name == "format")


@pytest.mark.parametrize("command", sorted(TABLES))
def test_choices_metavar_and_default_are_the_tables_keys(command):
    table, metavar = TABLES[command]
    param = _format_param(command)
    choices = [m.value for m in param.type_descriptor.annotation]
    assert choices == list(table) == metavar.split("|")
    assert param.metavar == metavar
    assert param.default == metavar.split("|")[0]


_ADD_TSV = """
import sys
from archcalc.output import views
views.SUMMARY["tsv"] = lambda v: sys.stdout.write("".join(f"{r.name}\\t{r.params}\\n" for r in v.report.rows))
from archcalc.cli.main import main
sys.exit(main(sys.argv[1:]))
"""


def test_a_new_format_is_one_entry_in_the_table():
    """A "tsv" entry added to views.SUMMARY (and nothing else) is a --format choice, in the help's
    metavar, and renders."""
    run = lambda *a: subprocess.run([sys.executable, "-c", _ADD_TSV, *a], capture_output=True, text=True, cwd=ROOT)
    proc = run("summary", "vgg16", "-f", "tsv")
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    # conv1_1: 64 filters of 3x3x3 and a bias each; fc8: 4096 x 1000 weights and 1000 biases
    assert "conv1_1\t1792" in lines and "fc8\t4097000" in lines
    assert "table|json|csv|markdown|tsv" in run("summary", "-h").stdout


def test_sweep_format_is_a_typed_choice():
    proc = run_subprocess("sweep", "resnet18", "--set", "H,W=64:128:64", "-f", "yaml")
    assert proc.returncode == 2
    assert proc.stderr.splitlines()[-1] == "archcalc: error: --format: 'yaml' is not one of table, json, csv"
    assert "-f, --format table|json|csv" in run_subprocess("sweep", "-h").stdout


def test_building_the_cli_imports_no_check_machinery():
    """check's choices come from ci_report.FORMATS without importing archcalc.ci.checks (every
    command would pay for it)."""
    code = "import sys, archcalc.cli.main; print('archcalc.ci.checks' in sys.modules, 'archcalc.output.render' in sys.modules)"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert proc.stdout.split() == ["False", "False"], proc.stderr
