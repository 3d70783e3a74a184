"""The command line: parses arguments, calls the engine, renders. Nothing else.

Errors: every :class:`ArchcalcError` is caught in :func:`main` (the one boundary) and printed as
one line; exit codes 0 ok, 1 a check or verification failed, 2 bad input or usage.
"""

from __future__ import annotations

import re
import sys
from enum import Enum
from typing import List, Optional

import typer

from .errors import ArchcalcError, CheckFailed, UsageError

CONVENTIONS_HELP = (
    "Conventions: params are learnable parameters (BN running statistics are buffers, apart); "
    "MACs are multiply-accumulates of conv and linear layers at inference (torchvision's 'GFLOPS' "
    "are GMACs; FLOPs = 2 x MACs); activations are the values of every new tensor per image, input "
    "included; RF is receptive field size / effective stride / effective padding. See docs/conventions.md."
)

app = typer.Typer(
    name="archcalc",
    help="Architecture calculator for convolutional networks: shapes, params, MACs, receptive "
    "fields and memory from a YAML spec.\n\n" + CONVENTIONS_HELP,
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)


class Format(str, Enum):
    table = "table"
    json = "json"
    csv = "csv"
    markdown = "markdown"


class DType(str, Enum):
    fp32 = "fp32"
    fp16 = "fp16"
    bf16 = "bf16"
    int8 = "int8"
    fp64 = "fp64"


class Optim(str, Enum):
    sgd = "sgd"
    momentum = "momentum"
    adam = "adam"


SetOpt = typer.Option(None, "--set", "-s", help="Give a symbol a value, NAME=VALUE (repeatable, or comma-separated).")
FreeOpt = typer.Option(None, "--symbolic", help="Keep these symbols symbolic (comma-separated), e.g. H,W: closed-form results.")
InputOpt = typer.Option(None, "--input", "-i", help="Input shape CxHxW, e.g. 3x299x299 (replaces the spec's input).")
BatchOpt = typer.Option("1", "--batch", "-b", help="Batch size for the memory totals (an integer or a symbol name).")
DTypeOpt = typer.Option(DType.fp32, "--dtype", help="Element type for bytes.")
OptimOpt = typer.Option(Optim.sgd, "--optimizer", help="Optimizer state for the training-memory total.")
EnsembleOpt = typer.Option(1, "--ensemble", min=1, help="K models averaged: MACs, params and memory x K.")
CropsOpt = typer.Option(1, "--crops", min=1, help="N crops evaluated per image: MACs x N.")


def _console():
    from rich.console import Console

    return Console(highlight=False, soft_wrap=False, width=None if sys.stdout.isatty() else 200)


def parse_sets(items: Optional[List[str]]) -> dict:
    values: dict = {}
    for item in items or []:
        for part in item.split(","):
            part = part.strip()
            if not part:
                continue
            m = re.fullmatch(r"([A-Za-z_][A-Za-z_0-9]*)\s*=\s*([0-9]+)", part)
            if not m or int(m.group(2)) < 1:
                raise UsageError(f"--set {part}: expected NAME=VALUE with a positive integer VALUE, e.g. --set H=299")
            values[m.group(1)] = int(m.group(2))
    return values


def parse_input(text: Optional[str]):
    if text is None:
        return None
    parts = re.split(r"[x,]", text.strip().lower())
    if len(parts) not in (1, 3) or not all(p.isdigit() and int(p) > 0 for p in parts):
        raise UsageError(f"--input {text}: expected CxHxW with positive integers, e.g. 3x224x224")
    return tuple(int(p) for p in parts)


def parse_batch(text: str):
    text = str(text).strip()
    if text.isdigit() and int(text) > 0:
        return int(text)
    if re.fullmatch(r"[A-Za-z_][A-Za-z_0-9]*", text):
        from .expr import symbol

        return symbol(text)
    raise UsageError(f"--batch {text}: expected a positive integer or a symbol name such as N")


def parse_free(text: Optional[str]) -> tuple:
    if not text:
        return ()
    names = tuple(p.strip() for p in text.split(",") if p.strip())
    for n in names:
        if not re.fullmatch(r"[A-Za-z_][A-Za-z_0-9]*", n):
            raise UsageError(f"--symbolic {text}: '{n}' is not a symbol name")
    return names


def load_report(ref, sets=None, input_=None, batch="1", dtype=DType.fp32, optimizer=Optim.sgd, ensemble=1, crops=1, free=None):
    from . import load
    from .engine import analyze

    net = load(ref, parse_sets(sets), parse_input(input_), parse_free(free))
    return analyze(net, dtype=_val(dtype), batch=parse_batch(batch), optimizer=_val(optimizer), ensemble=ensemble, crops=crops)


def _val(x):
    return x.value if isinstance(x, Enum) else x


@app.command()
def summary(
    spec: str = typer.Argument(..., help="A zoo name (archcalc list) or a path to a spec .yaml file."),
    format: Format = typer.Option(Format.table, "--format", "-f", help="Output format."),
    input: Optional[str] = InputOpt,
    set: Optional[List[str]] = SetOpt,
    symbolic: Optional[str] = FreeOpt,
    batch: str = BatchOpt,
    dtype: DType = DTypeOpt,
    optimizer: Optim = OptimOpt,
    depth: Optional[int] = typer.Option(None, "--depth", "-d", min=1, help="Fold rows into blocks at this name depth."),
    fit: Optional[str] = typer.Option(None, "--fit", help="A memory size (16GiB): report the largest training batch that fits."),
    ensemble: int = EnsembleOpt,
    crops: int = CropsOpt,
):
    """Per-layer table and totals for one network."""
    from . import render

    report = load_report(spec, set, input, batch, dtype, optimizer, ensemble, crops, symbolic)
    fit_info = None
    if fit is not None:
        from .engine import max_batch
        from .spec import parse_amount

        try:
            budget = parse_amount(fit)
        except ValueError:
            raise UsageError(f"--fit {fit}: expected a size such as 16GiB or 80G") from None
        fit_info = (budget, max_batch(report, budget))
    fmt = _val(format)
    if fmt == "json":
        out = render.summary_json(report)
        if fit_info:
            import json

            data = json.loads(out)
            data["fit"] = {"budget_bytes": fit_info[0], "max_batch": render.jsonable(fit_info[1])}
            out = json.dumps(data, indent=2) + "\n"
        sys.stdout.write(out)
    elif fmt == "csv":
        sys.stdout.write(render.summary_csv(report, depth))
    elif fmt == "markdown":
        sys.stdout.write(render.summary_markdown(report, depth, fit_info))
    else:
        render.summary_table(_console(), report, depth, fit_info)


@app.command()
def compare(
    specs: List[str] = typer.Argument(..., help="Two or more zoo names or spec paths."),
    format: Format = typer.Option(Format.table, "--format", "-f"),
    input: Optional[str] = InputOpt,
    set: Optional[List[str]] = SetOpt,
    symbolic: Optional[str] = FreeOpt,
    batch: str = BatchOpt,
    dtype: DType = DTypeOpt,
    ensemble: int = EnsembleOpt,
    crops: int = CropsOpt,
):
    """Totals side by side with ratios to the first; per-layer differences where layers line up."""
    from . import render

    if len(specs) < 2:
        raise UsageError("compare needs at least two specs")
    reports = [load_report(s, set, input, batch, dtype, Optim.sgd, ensemble, crops, symbolic) for s in specs]
    fmt = _val(format)
    if fmt == "json":
        import json

        sys.stdout.write(json.dumps(render.compare_dict(reports), indent=2) + "\n")
    elif fmt == "csv":
        sys.stdout.write(render.compare_csv(reports))
    elif fmt == "markdown":
        sys.stdout.write(render.compare_markdown(reports))
    else:
        render.compare_table(_console(), reports)


@app.command("list")
def list_(format: Format = typer.Option(Format.table, "--format", "-f")):
    """The bundled zoo with each network's totals."""
    from . import zoo
    from .engine import analyze
    from .report import both, jsonable, shape_text
    from .spec import load

    rows = []
    for name in zoo.names():
        net = load(zoo.resolve(name))
        r = analyze(net)
        rows.append((name, net.title, r))
    fmt = _val(format)
    if fmt == "json":
        import json

        data = [{"name": n, "title": t, "input": jsonable(r.input), "params": jsonable(r.totals["params"]),
                 "macs": jsonable(r.totals["macs"]), "activations": jsonable(r.totals["activations"])} for n, t, r in rows]
        sys.stdout.write(json.dumps(data, indent=2) + "\n")
        return
    if fmt in ("csv", "markdown"):
        sep = "," if fmt == "csv" else " | "
        lines = [sep.join(("name", "input", "params", "macs", "title"))]
        if fmt == "markdown":
            lines = ["| " + lines[0] + " |", "|---|---|---:|---:|---|"]
        for n, t, r in rows:
            cells = (n, shape_text(r.input), str(jsonable(r.totals["params"])), str(jsonable(r.totals["macs"])), t)
            if fmt == "csv":
                import csv
                import io

                buf = io.StringIO()
                csv.writer(buf, lineterminator="").writerow(cells)
                lines.append(buf.getvalue())
            else:
                lines.append("| " + " | ".join(cells) + " |")
        sys.stdout.write("\n".join(lines) + "\n")
        return
    from rich.table import Table

    table = Table(title="archcalc zoo", header_style="bold")
    for col, just in (("name", "left"), ("input", "left"), ("params", "right"), ("MACs", "right"), ("title", "left")):
        table.add_column(col, justify=just)
    for n, t, r in rows:
        table.add_row(n, shape_text(r.input), both(r.totals["params"]), both(r.totals["macs"]), t)
    _console().print(table)


@app.command()
def layers(format: Format = typer.Option(Format.table, "--format", "-f", help="table or markdown (docs/layers.md).")):
    """Every layer type with its keys, defaults and formulas."""
    from . import render

    if _val(format) in ("markdown", "csv", "json"):
        if _val(format) != "markdown":
            raise UsageError("layers supports --format table or markdown")
        sys.stdout.write(render.layers_markdown())
    else:
        render.layers_table(_console())


BUDGET_HELP = (
    "A limit KEY=AMOUNT (repeatable or comma-separated): params, macs, activations (values per image), "
    "memory (activation bytes x batch), train_memory (saved activations x batch + weights, gradients, optimizer). "
    "AMOUNT takes K/M/G/T (x1000) or KiB/MiB/GiB (x1024)."
)


@app.command()
def check(
    spec: str = typer.Argument(..., help="A zoo name or a spec path."),
    budget: Optional[List[str]] = typer.Option(None, "--budget", help=BUDGET_HELP),
    input: Optional[str] = InputOpt,
    set: Optional[List[str]] = SetOpt,
    batch: str = BatchOpt,
    dtype: DType = DTypeOpt,
    optimizer: Optim = OptimOpt,
):
    """Enforce a budget (from --budget and the spec's `budget:`); exit 1 when over."""
    from .report import exact
    from .spec import BUDGET_KEYS, parse_amount

    report = load_report(spec, set, input, batch, dtype, optimizer)
    limits = dict(report.budget)
    for item in budget or []:
        for part in item.split(","):
            if not part.strip():
                continue
            key, sep, amount = part.partition("=")
            key = key.strip()
            if not sep or key not in BUDGET_KEYS:
                from .errors import expected_one_of

                raise UsageError(f"--budget {part}: expected KEY=AMOUNT", hint=expected_one_of(key, BUDGET_KEYS, "a key"))
            try:
                limits[key] = parse_amount(amount.strip())
            except ValueError:
                raise UsageError(f"--budget {part}: cannot read amount '{amount}'", hint="e.g. 25M, 4.1G, 16GiB") from None
    if not limits:
        raise UsageError("no budget to check", hint="give --budget params=25M (or a budget: mapping in the spec)")
    if report.symbolic:
        raise UsageError("a budget needs concrete sizes", hint="give the spec's symbols values with --set")
    t = report.totals
    actual = {"params": t["params"], "macs": t["macs"], "activations": t["activations"],
              "memory": t["batch_activation_bytes"], "train_memory": t["batch_train_bytes"]}
    failed = []
    for key in BUDGET_KEYS:
        if key in limits:
            ok = actual[key] <= limits[key]
            mark = "ok  " if ok else "OVER"
            sys.stdout.write(f"{mark} {key:13s} {exact(actual[key]):>22s} <= {exact(limits[key])}\n")
            if not ok:
                failed.append(key)
    if failed:
        raise CheckFailed(f"{report.name}: over budget on {', '.join(failed)}")
    sys.stdout.write(f"{report.name}: within budget\n")


from . import cli_torch  # noqa: E402  (registers verify and export; imports torch only when they run)

cli_torch.register(app)


def main(argv=None) -> int:
    """Run the CLI; returns the exit code. The one place where ArchcalcError is caught."""
    try:
        app(args=argv, prog_name="archcalc")  # typer/click handle usage errors themselves (exit 2)
    except ArchcalcError as err:
        sys.stderr.write(f"archcalc: error: {err}\n")
        return err.exit_code
    except SystemExit as e:
        if e.code is None:
            return 0
        return e.code if isinstance(e.code, int) else 1
    except KeyboardInterrupt:
        return 130
    return 0


def entry():  # console script
    sys.exit(main())
