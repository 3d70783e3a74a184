"""The command line: parses arguments, calls the engine, renders. Nothing else.

Errors: every :class:`ArchcalcError` is caught in :func:`main` (the one boundary) and printed as
one line; exit codes 0 ok, 1 a check or verification failed, 2 bad input or usage.
"""

from __future__ import annotations

import re
import sys
from typing import List, Optional

import typer

from ..errors import ArchcalcError, UsageError

from ..output import views
from .common import (  # noqa: F401
    Backend,
    BatchOpt,
    CropsOpt,
    DType,
    DTypeOpt,
    EnsembleOpt,
    FreeOpt,
    InputOpt,
    Optim,
    OptimOpt,
    SetOpt,
    SpecArg,
    _EXITING,
    _val,
    app,
    depth_note,
    format_choices,
    format_option,
    load_net,
    load_report,
    net_and_report,
)

SFormat = format_choices("SFormat", views.SUMMARY)
CFormat = format_choices("CFormat", views.COMPARE)
ZFormat = format_choices("ZFormat", views.LIST)
LFormat = format_choices("LFormat", views.LAYERS)


@app.command()
def summary(
    spec: str = SpecArg,
    format: SFormat = format_option(views.SUMMARY),
    input: Optional[str] = InputOpt,
    set: Optional[List[str]] = SetOpt,
    symbolic: Optional[str] = FreeOpt,
    batch: str = BatchOpt,
    dtype: DType = DTypeOpt,
    optimizer: Optim = OptimOpt,
    depth: Optional[int] = typer.Option(None, "--depth", "-d", metavar="N", help="Fold rows into blocks at this name depth (1: layer1, layer2, ...)."),
    fit: Optional[str] = typer.Option(None, "--fit", metavar="SIZE", help="A memory size (16GiB): report the largest training batch that fits."),
    inference: bool = typer.Option(False, "--inference", help="With --fit: the largest inference batch (no-grad forward) instead."),
    backend: Backend = typer.Option(Backend.cudnn, "--backend", metavar="cudnn|native|cpu", help="Whose working memory the "
                                    "peaks, --fit and the JSON include: cudnn (CUDA, PyTorch's default), native (CUDA "
                                    "without cuDNN), cpu (live tensors only). docs/memory.md."),
    memory: bool = typer.Option(False, "--memory", help="Every memory figure under the table (per image, at the batch, "
                                "sizes as torchinfo prints them), not only the peaks."),
    ensemble: int = EnsembleOpt,
    crops: int = CropsOpt,
    max_rows: int = typer.Option(10_000, "--max-rows", metavar="N", help="Table: over N rows, fold the middle ones into "
                                 "one line, saying so (0: every row; other formats list every row)."),
    min_input: bool = typer.Option(False, "--min-input", help="Instead of the table: the smallest input every layer accepts "
                                   "(each output at least 1x1, joins agreeing), solved from the closed forms."),
    tiling: Optional[str] = typer.Option(None, "--tiling", metavar="LO:HI", help="Instead of the table: the square input "
                                         "sizes in LO..HI at which no window leaves a row or column of real input unseen."),
):
    """Per-layer table and totals for one network."""
    if min_input or tiling:
        from ..analysis.solve import input_sizes

        return views.emit(views.SIZES, format, input_sizes(load_net(spec, set, input), min_input, tiling), default="text")
    net, report = net_and_report(spec, set, input, symbolic, batch, dtype, optimizer, ensemble, crops)
    from ..analysis.liveness import use_backend

    use_backend(report, backend.value)
    depth_note(report, depth)
    views.emit(views.SUMMARY, format, views.Summary(report, net, depth, _fit(report, fit, inference), max_rows, memory))


def _fit(report, fit, inference):
    """--fit SIZE [--inference]: (budget bytes, the largest batch that fits, for what), or None."""
    if fit is None:
        if inference:
            raise UsageError("--inference goes with --fit SIZE", hint="archcalc summary NAME --fit 16GiB --inference")
        return None
    from ..errors import short
    from ..analysis.liveness import max_batch
    from ..spec.load import parse_amount

    try:
        budget = parse_amount(fit)
    except ValueError:
        shown = fit if len(fit) <= 40 and fit.isprintable() else short(fit)
        raise UsageError(f"--fit {shown}: expected a size such as 16GiB or 80G") from None
    return (budget, max_batch(report, budget, inference), "inference" if inference else "training")


@app.command()
def compare(
    specs: List[str] = typer.Argument(..., metavar="NAME|PATH...", help="Two or more zoo names or spec paths.", show_default=False),
    format: CFormat = format_option(views.COMPARE),
    input: Optional[str] = InputOpt,
    set: Optional[List[str]] = SetOpt,
    symbolic: Optional[str] = FreeOpt,
    batch: str = BatchOpt,
    dtype: DType = DTypeOpt,
    ensemble: int = EnsembleOpt,
    crops: int = CropsOpt,
):
    """Totals side by side with ratios to the first; per-layer differences where layers line up."""
    if len(specs) < 2:
        raise UsageError("compare needs at least two specs")
    reports = [load_report(s, set, input, batch, dtype, Optim.sgd, ensemble, crops, symbolic) for s in specs]
    views.emit(views.COMPARE, format, reports)


@app.command("list")
def list_(format: ZFormat = format_option(views.LIST)):
    """The bundled zoo with each network's totals."""
    from ..output.render import zoo_rows

    views.emit(views.LIST, format, zoo_rows())


@app.command()
def layers(format: LFormat = format_option(views.LAYERS, help="Output format (markdown is docs/layers.md).")):
    """Every layer type with its keys, defaults and formulas."""
    views.emit(views.LAYERS, format, None)


from . import torch as cli_torch  # noqa: E402  (registers verify and export; imports torch only when they run)

cli_torch.register(app)

from . import check as cli_check  # noqa: E402  (the CI command: check)

cli_check.register(app)

from . import show as cli_show  # noqa: E402  (explain, graph, plot)

cli_show.register(app)

from . import sweep as cli_sweep  # noqa: E402  (sweep: totals against a swept symbol)

cli_sweep.register(app)
from . import importer as cli_import  # noqa: E402  (import: PyTorch / ONNX to a spec; torch only when it runs)

cli_import.register(app)  # import: PyTorch / ONNX to a spec (torch only when it runs)


class _PipeClosed(Exception):
    """The reader of stdout went away (``archcalc summary vgg16 | head``)."""


class _Stdout:
    """stdout or stderr as given, made harmless and quiet: the one place archcalc's output leaves
    the process.

    * every text written goes through a :class:`archcalc.output.textout.Guard`: control, bidi and
      zero-width characters and undecodable bytes become escapes, no line can start a GitHub
      Actions workflow command (``::`` after blanks, ``##[`` anywhere) unless it is one of
      ``check --format github``'s own annotations (a :class:`archcalc.output.textout.Commands`); so
      whatever a command prints, and however a spec or file is named, a CI runner or terminal
      only ever shows it (docs/security.md);
    * on stdout, a closed pipe ends the command quietly: typer would turn the BrokenPipeError
      into exit code 1, archcalc's "check failed"."""

    def __init__(self, stream, pipe: bool = True):
        from ..output.textout import Guard

        self._stream = stream
        self._pipe = pipe
        try:
            tty = bool(stream.isatty())
        except (AttributeError, ValueError):
            tty = False
        self._guard = Guard(tty)

    def write(self, text):
        if isinstance(text, str):
            text = self._guard(text)
        try:
            return self._stream.write(text)
        except BrokenPipeError:
            if not self._pipe:
                raise
            raise _PipeClosed() from None

    def flush(self):
        try:
            return self._stream.flush()
        except BrokenPipeError:
            if not self._pipe:
                raise
            raise _PipeClosed() from None

    def __getattr__(self, name):
        return getattr(self._stream, name)


def _clean_usage_message(text: str) -> str:
    """typer/pydantic wording made plain: no "Value error, ", choices without quotes."""
    text = text.replace("Value error, ", "")
    text = re.sub(r"is not one of ((?:'[^']*'(?:, )?)+)\.?", lambda m: "is not one of " + m.group(1).replace("'", ""), text)
    text = re.sub(r"^Invalid value for ('[^']*')(?: / '[^']*')?: ", lambda m: m.group(1).strip("'") + ": ", text)
    return text


def _quiet_pipe():
    """After a closed pipe: point stdout at /dev/null so the interpreter's final flush is quiet."""
    import os

    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.__stdout__.fileno())
    except (OSError, AttributeError, ValueError):
        pass


def _app_for(args):
    """The app to run: for `archcalc COMMAND ...`, a copy that holds only that command (typer
    builds every registered command's click parameters when it runs, about 5 ms for the whole
    CLI; issue 14). Help and usage read the same, since they come from the one command; anything
    else (no command, an option first, an unknown name) gets the whole app and its messages."""
    if not args or args[0].startswith("-"):
        return app
    want = args[0]
    hits = [c for c in app.registered_commands
            if (c.name or getattr(c.callback, "__name__", "").lower().replace("_", "-")) == want]
    if len(hits) != 1 or app.registered_callback is None:
        return app
    import copy

    one = copy.copy(app)
    one.registered_commands = hits
    return one


def main(argv=None) -> int:
    """Run the CLI; returns the exit code. The one place where ArchcalcError is caught.

    Also: usage errors as one clean message (exit 2); a closed stdout pipe is a quiet exit 0;
    a stream that cannot encode a character gets an escape instead of a UnicodeEncodeError;
    stdout and stderr are written through :class:`_Stdout` (nothing a CI runner obeys)."""
    real_err = sys.stderr
    if not isinstance(real_err, _Stdout):
        sys.stderr = _Stdout(real_err, pipe=False)
    try:
        return _main(argv)
    finally:
        sys.stderr = real_err


def _main(argv=None) -> int:
    from typer import Abort, TyperException

    from ..output.textout import plain

    for stream in (sys.stdout, sys.stderr):
        try:
            if getattr(stream, "errors", "strict") == "strict":
                stream.reconfigure(errors="backslashreplace")
        except (AttributeError, ValueError, OSError):
            pass
    real = sys.stdout
    sys.stdout = _Stdout(real)
    # A run makes objects by the hundred thousand and almost no reference cycles: the cyclic
    # collector would only rescan the growing heap (quadratic time on a 200,000-layer network,
    # issue 14). Off for the run, as it was after.
    import gc

    collecting = gc.isenabled()
    gc.disable()
    try:
        try:
            rv = _app_for(sys.argv[1:] if argv is None else argv)(args=argv, prog_name="archcalc", standalone_mode=False)
            sys.stdout.flush()
            return rv if isinstance(rv, int) else 0
        finally:
            sys.stdout = real
            if collecting:
                gc.enable()
    except _PipeClosed:
        _quiet_pipe()
        return 0
    except BrokenPipeError:
        _quiet_pipe()
        return 0
    except ArchcalcError as err:
        sys.stderr.write(f"archcalc: error: {plain(err)}\n")
        return err.exit_code
    except TyperException as err:
        if type(err).__name__ == "NoArgsIsHelpError":  # `archcalc` alone: the help
            err.show()
            return 0
        ctx = getattr(err, "ctx", None)
        if ctx is not None:
            sys.stderr.write(ctx.get_usage() + "\n")
            sys.stderr.write(f"Try '{ctx.command_path} -h' for help.\n")
        message = err.format_message() if hasattr(err, "format_message") else str(err)
        sys.stderr.write(f"archcalc: error: {plain(_clean_usage_message(message))}\n")
        return getattr(err, "exit_code", 2)
    except Abort:
        return 130
    except SystemExit as e:
        if e.code is None:
            return 0
        return e.code if isinstance(e.code, int) else 1
    except KeyboardInterrupt:
        return 130


def entry():  # console script
    """``archcalc``: :func:`main`, then, once the output is flushed, a hard exit. The process ends
    without freeing its objects one by one and without tearing down every module it imported
    (typer, rich): 10-15 ms of a 0.12 s summary, 50 ms after 200,000 layers (issue 14; mypy ends
    the same way). Nothing is left to do at exit: files are closed where they are written."""
    import os

    _EXITING["hard"] = True
    code = main()
    code = code if isinstance(code, int) else 1
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    except (OSError, ValueError):  # a pipe closed at the very end: quiet, as main() does
        _quiet_pipe()
    os._exit(code)
