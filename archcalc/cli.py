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

from .errors import ArchcalcError, UsageError

CONVENTIONS_HELP = (
    "Conventions: params are learnable parameters (BN running statistics are buffers, apart); "
    "MACs are multiply-accumulates of conv and linear layers at inference (torchvision's 'GFLOPS' "
    "are GMACs; FLOPs = 2 x MACs); activations are the values of every new tensor per image, input "
    "included; RF is receptive field size / effective stride / effective padding. "
    "'archcalc explain NAME LAYER' shows every formula with its numbers."
)

app = typer.Typer(
    name="archcalc",
    help="Architecture calculator for convolutional networks: shapes, params, MACs, receptive "
    "fields and memory from a YAML spec.\n\n" + CONVENTIONS_HELP,
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _plain_argument_help():
    """Arguments with a metavar read as that metavar in help: ``NAME|PATH``, not ``{NAME|PATH}``
    in the usage line and ``NAME|PATH <str>`` in the list (typer 0.29's display). A display
    detail only: left alone if typer's internals differ."""
    try:
        from typer.core import TyperArgument
    except ImportError:  # pragma: no cover
        return
    base_type, base_usage = getattr(TyperArgument, "display_type_rich", None), getattr(TyperArgument, "_usage_display_name", None)
    if base_type is None or base_usage is None or getattr(TyperArgument, "_archcalc_plain", False):
        return

    def display_type_rich(self, ctx):
        return None if self.metavar else base_type(self, ctx)

    def usage_display_name(self):
        if not self.metavar:
            return base_usage(self)
        return self.metavar if self.required else f"[{self.metavar.strip('[]')}]"

    TyperArgument.display_type_rich = display_type_rich
    TyperArgument._usage_display_name = usage_display_name
    TyperArgument._archcalc_plain = True


_plain_argument_help()


MAX_OPTION_DIGITS = 18  # an integer option's digits (every one is a count; 10**18 is beyond every limit)


class _BadInt(ValueError):
    """An integer option's text that is not an integer of at most MAX_OPTION_DIGITS digits."""

    def __init__(self, text: str):
        from .errors import plain

        digits = re.fullmatch(r"[+-]?[0-9]+", text) is not None
        super().__init__(f"{plain(text)}: expected an integer" + (
            f" of at most {MAX_OPTION_DIGITS} digits" if digits else ""))


def _option_name(param) -> str:
    opts = list(getattr(param, "opts", None) or [])
    return next((o for o in opts if o.startswith("--")), opts[0] if opts else str(getattr(param, "name", "option")))


def _light_coercion():
    """Coerce archcalc's own parameter types without pydantic.

    typer 0.29 converts every parameter value through a pydantic ``TypeAdapter``, and importing
    pydantic for that costs 60-85 ms a run, more than the whole engine on resnet152 (issue 14).
    The annotations archcalc's commands use (str, int, bool, a str Enum, lists and Optionals of
    those) need none of it: they are converted here. Anything else (custom parsers or click
    types, ranges, paths, files) goes to typer's own builder, as does everything if typer's
    internals differ from what this expects."""
    try:
        from dataclasses import dataclass
        from enum import Enum as _Enum
        from typing import Any as _Any, Union, get_args, get_origin

        from typer import core as tcore
        from typer._click.exceptions import BadParameter
        from typer._coercion import RuntimeParam
    except ImportError:  # pragma: no cover
        return
    original = getattr(tcore, "build_runtime_param", None)
    if original is None or getattr(original, "_archcalc", False):
        return

    def _int(value):
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        text = str(value).strip()
        # checked on the text, before int() (thousands of digits: Python's conversion limit, then
        # an OverflowError wherever the number meets a float); every integer option is a count
        if not re.fullmatch(r"[+-]?[0-9]{1,%d}" % MAX_OPTION_DIGITS, text):
            raise _BadInt(text)
        return int(text)

    def _str(value):
        return value if isinstance(value, str) else str(value)

    def converter(annotation):
        """A function for one annotation, or None where typer should decide."""
        origin = get_origin(annotation)
        if origin is Union:
            rest = [a for a in get_args(annotation) if a is not type(None)]
            return converter(rest[0]) if len(rest) == 1 else None
        if origin is list:
            (item,) = get_args(annotation) or (str,)
            one = converter(item)
            return None if one is None else (lambda v: [one(x) for x in (v if isinstance(v, (list, tuple)) else [v])])
        if annotation is str:
            return _str
        if annotation is int:
            return _int
        if annotation is bool:
            return lambda v: v if isinstance(v, bool) else None
        if isinstance(annotation, type) and issubclass(annotation, _Enum) and issubclass(annotation, str):
            def enum(v, cls=annotation):
                if isinstance(v, cls):
                    return v
                try:
                    return cls(v)
                except ValueError:
                    raise ValueError(f"'{str(v)[:40]}' is not one of {', '.join(m.value for m in cls)}") from None
            return enum
        return None

    @dataclass(frozen=True)
    class _Light(RuntimeParam):
        convert: _Any = None

        def _coerce_value(self, value, param, ctx):
            try:
                out = self.convert(value)
            except _BadInt as err:  # one line, naming the option (not click's three-line usage text)
                raise UsageError(f"{_option_name(param)} {err}") from None
            except ValueError as err:
                raise BadParameter(str(err), ctx=ctx, param=param) from None
            if out is None and value is not None:  # not a value this converter knows: typer's way
                return original(_descriptor(self))._coerce_value(value, param=param, ctx=ctx)
            return out

    def _descriptor(light):
        from typer._coercion import TypeDescriptor

        return TypeDescriptor(annotation=light.annotation, parameter_info=light.parameter_info, file_annotation=None)

    def build(descriptor):
        info = descriptor.parameter_info
        plain = descriptor.file_annotation is None and all(
            getattr(info, k, None) is None for k in ("parser", "click_type", "min", "max"))
        convert = converter(descriptor.annotation) if plain else None
        if convert is None:
            return original(descriptor)
        return _Light(annotation=descriptor.annotation, parameter_info=info, convert=convert)

    build._archcalc = True
    tcore.build_runtime_param = build


_light_coercion()


def _version(value: bool):
    if value:
        from . import __version__

        sys.stdout.write(f"archcalc {__version__}\n")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True, help="Print the version and exit."),
):
    """Architecture calculator for convolutional networks: shapes, params, MACs, receptive fields
    and memory from a YAML spec."""


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


SpecArg = typer.Argument(..., metavar="NAME|PATH", help="A zoo name (archcalc list) or a path to a spec .yaml file.", show_default=False)
SetOpt = typer.Option(None, "--set", "-s", metavar="NAME=VALUE", help="Give a symbol a value (repeatable, or comma-separated).")
FreeOpt = typer.Option(None, "--symbolic", metavar="H,W", help="Keep these symbols symbolic (comma-separated): closed-form results.")
InputOpt = typer.Option(None, "--input", "-i", metavar="CxHxW", help="Input shape, e.g. 3x299x299 (replaces the spec's input).")
BatchOpt = typer.Option("1", "--batch", "-b", metavar="N", help="Batch size for the memory totals (an integer or a symbol name).")
DTypeOpt = typer.Option(DType.fp32, "--dtype", metavar="fp32|fp16|bf16|int8|fp64", help="Element type for bytes.")
OptimOpt = typer.Option(Optim.sgd, "--optimizer", metavar="sgd|momentum|adam", help="Optimizer state for the training-memory total.")
EnsembleOpt = typer.Option(1, "--ensemble", metavar="K", help="K models averaged: MACs, params and memory x K.")
CropsOpt = typer.Option(1, "--crops", metavar="N", help="N crops evaluated per image: MACs x N.")
FormatOpt = typer.Option(Format.table, "--format", "-f", metavar="table|json|csv|markdown", help="Output format.")


def _console():
    """A rich console (only the verify renderer in cli_torch still uses one): honest width when
    piped (COLUMNS, else wide enough that nothing is cut)."""
    from rich.console import Console

    from .textout import _int_env

    width = _int_env("COLUMNS") or (None if sys.stdout.isatty() else 1000)
    return Console(highlight=False, soft_wrap=False, width=width)


def _out():
    from .textout import Out

    return Out()


def _at_least_one(what: str, value: int) -> int:
    """--ensemble and --crops: an integer from 1 to limits.MAX_MULTIPLIER."""
    from .errors import short
    from .limits import MAX_MULTIPLIER

    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_MULTIPLIER:
        raise UsageError(f"{what} {short(value)}: expected an integer from 1 to {MAX_MULTIPLIER:,}")
    return value


def _positive(text: str):
    """A positive integer from ASCII digits within archcalc's size limit, else None."""
    from .limits import MAX_SIZE

    if not re.fullmatch(r"[0-9]{1,20}", text):
        return None
    value = int(text)
    return value if 0 < value <= MAX_SIZE else None


def _positive_number(text: str):
    """A positive integer or decimal (an exact Fraction: 1.4 is 7/5) within the size limit, else None."""
    if re.fullmatch(r"[0-9]{1,20}\.[0-9]{1,12}", text):
        from fractions import Fraction

        from .limits import MAX_SIZE

        value = Fraction(text)
        if 0 < value <= MAX_SIZE:
            return int(value) if value.denominator == 1 else value
        return None
    return _positive(text)


def parse_sets(items: Optional[List[str]]) -> dict:
    from .errors import plain
    from .limits import MAX_SIZE

    values: dict = {}
    for item in items or []:
        for part in item.split(","):
            part = part.strip()
            if not part:
                continue
            m = re.fullmatch(r"([A-Za-z_][A-Za-z_0-9]{0,63})\s*=\s*([^=]+)", part)
            value = _positive_number(m.group(2).strip()) if m else None
            if value is None:
                raise UsageError(f"--set {plain(part)}: expected NAME=VALUE with a number VALUE from 1 to {MAX_SIZE:,} (or a positive decimal), e.g. --set H=299")
            values[m.group(1)] = value
    return values


def parse_input(text: Optional[str]):
    if text is None:
        return None
    from .errors import plain
    from .limits import MAX_SIZE

    parts = re.split(r"[x,]", text.strip().lower())
    sizes = [_positive(p.strip()) for p in parts]
    if len(parts) not in (1, 3) or any(v is None for v in sizes):
        raise UsageError(f"--input {plain(text)}: expected CxHxW with integers from 1 to {MAX_SIZE:,}, e.g. 3x224x224")
    return tuple(sizes)


def parse_batch(text: str):
    from .errors import plain
    from .limits import MAX_SIZE

    text = str(text).strip()
    value = _positive(text)
    if value is not None:
        return value
    if re.fullmatch(r"[A-Za-z_][A-Za-z_0-9]{0,63}", text):
        from .expr import symbol

        return symbol(text)
    raise UsageError(f"--batch {plain(text)}: expected an integer from 1 to {MAX_SIZE:,} or a symbol name such as N")


def parse_free(text: Optional[str]) -> tuple:
    if not text:
        return ()
    names = tuple(p.strip() for p in text.split(",") if p.strip())
    for n in names:
        if not re.fullmatch(r"[A-Za-z_][A-Za-z_0-9]*", n):
            raise UsageError(f"--symbolic {text}: '{n}' is not a symbol name")
    return names


def resolve_ref(ref: str) -> str:
    """A spec argument, checked by the one rule (archcalc.refs: an existing path is that file, a
    Python target only where no such path exists). A bare zoo name that is also a file or folder
    here is the zoo's, with a note on stderr saying how to name the file."""
    from . import refs

    ref = str(ref)
    r = refs.resolve(ref, targets=True)
    if r.note:
        sys.stderr.write(f"archcalc: note: {r.note}\n")
    return ref


def load_net(ref, sets=None, input_=None, free=None):
    from . import load

    return load(resolve_ref(ref), parse_sets(sets), parse_input(input_), parse_free(free))


def analyze_net(net, batch="1", dtype=DType.fp32, optimizer=Optim.sgd, ensemble=1, crops=1):
    from .engine import analyze

    return analyze(net, dtype=_val(dtype), batch=parse_batch(batch), optimizer=_val(optimizer),
                   ensemble=_at_least_one("--ensemble", ensemble), crops=_at_least_one("--crops", crops))


def load_report(ref, sets=None, input_=None, batch="1", dtype=DType.fp32, optimizer=Optim.sgd, ensemble=1, crops=1, free=None):
    return net_and_report(ref, sets, input_, free, batch, dtype, optimizer, ensemble, crops)[1]


def net_and_report(ref, sets=None, input_=None, free=None, batch="1", dtype=DType.fp32, optimizer=Optim.sgd, ensemble=1, crops=1):
    """(Network, Report). Where --symbolic keeps a repeat count free the layer list depends on it:
    the totals are then closed forms in that count (archcalc.depth) and the network is the one at
    the first count that builds."""
    from .spec import SymbolicRepeat

    try:
        net = load_net(ref, sets, input_, free)
    except SymbolicRepeat as err:
        kept = parse_free(free)
        depth = tuple(s for s in err.symbols if s in kept)
        if not depth or len(depth) != len(err.symbols):
            raise
        from . import load
        from .depth import analyze_depth

        path, values, shape = resolve_ref(ref), parse_sets(sets), parse_input(input_)
        others = tuple(s for s in kept if s not in depth)

        def load_at(extra, free_):
            return load(path, {**values, **extra}, shape, free_)

        report = analyze_depth(load_at, others, depth, dtype=_val(dtype), batch=parse_batch(batch),
                               optimizer=_val(optimizer), ensemble=_at_least_one("--ensemble", ensemble),
                               crops=_at_least_one("--crops", crops))
        start = int(report.warnings[0].split(" = ")[1].split("..")[0])
        return load_at({depth[0]: start}, others), report
    report = analyze_net(net, batch, dtype, optimizer, ensemble, crops)
    if _EXITING["hard"]:
        _EXITING["keep"].append((net, report))  # freed by the process's end, not one by one (see entry)
    return net, report


def _val(x):
    return x.value if isinstance(x, Enum) else x


def depth_note(report, depth):
    """--depth that folds nothing says so (on stderr) instead of doing nothing silently."""
    if depth is None:
        return
    if depth < 1:  # at most 18 digits already (the integer converter)
        raise UsageError(f"--depth {depth}: expected a positive integer")
    if not any(r.name.count(".") >= depth for r in report.rows):
        sys.stderr.write(f"archcalc: note: --depth {depth} folds nothing: no layer name in {report.name!s:.80} has more "
                         f"than {depth} dotted part{'s' if depth > 1 else ''} (blocks name their layers 'block.layer')\n")


@app.command()
def summary(
    spec: str = SpecArg,
    format: Format = FormatOpt,
    input: Optional[str] = InputOpt,
    set: Optional[List[str]] = SetOpt,
    symbolic: Optional[str] = FreeOpt,
    batch: str = BatchOpt,
    dtype: DType = DTypeOpt,
    optimizer: Optim = OptimOpt,
    depth: Optional[int] = typer.Option(None, "--depth", "-d", metavar="N", help="Fold rows into blocks at this name depth (1: layer1, layer2, ...)."),
    fit: Optional[str] = typer.Option(None, "--fit", metavar="SIZE", help="A memory size (16GiB): report the largest training batch that fits."),
    inference: bool = typer.Option(False, "--inference", help="With --fit: the largest inference batch (no-grad forward) instead."),
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
    from . import render

    if min_input or tiling:
        return _sizes(spec, set, input, min_input, tiling, _val(format))

    net, report = net_and_report(spec, set, input, symbolic, batch, dtype, optimizer, ensemble, crops)
    depth_note(report, depth)
    fit_info = None
    if fit is not None:
        from .errors import short
        from .liveness import max_batch
        from .spec import parse_amount

        try:
            budget = parse_amount(fit)
        except ValueError:
            shown = fit if len(fit) <= 40 and fit.isprintable() else short(fit)
            raise UsageError(f"--fit {shown}: expected a size such as 16GiB or 80G") from None
        fit_info = (budget, max_batch(report, budget, inference), "inference" if inference else "training")
    elif inference:
        raise UsageError("--inference goes with --fit SIZE", hint="archcalc summary NAME --fit 16GiB --inference")
    fmt = _val(format)
    if fmt == "json":
        extra = {"fit": {"budget_bytes": fit_info[0], "max_batch": render.jsonable(fit_info[1]),
                         "for": fit_info[2]}} if fit_info else None
        chunks, size = [], 0
        for chunk in render.iter_summary_json(report, extra):  # pieces of up to 1,000 layers
            chunks.append(chunk)
            size += len(chunk)
            if size >= 1 << 20:  # written a megabyte at a time: never the whole document at once
                sys.stdout.write("".join(chunks))
                chunks, size = [], 0
        sys.stdout.write("".join(chunks))
    elif fmt == "csv":
        sys.stdout.write(render.summary_csv(report, depth, net))
    elif fmt == "markdown":
        sys.stdout.write(render.summary_markdown(report, depth, fit_info, net))
    else:
        if max_rows < 0:
            raise UsageError(f"--max-rows {max_rows}: expected 0 (every row) or a positive number")
        render.summary_table(_out(), report, depth, fit_info, net, max_rows)


def _sizes(spec, sets, input_, min_input, tiling, fmt):
    """--min-input and --tiling: input sizes read from the closed forms (archcalc.solve)."""
    import json

    from .solve import min_input as solve_min, parse_range, tiling_sizes

    net = load_net(spec, sets, input_)
    data: dict = {"network": net.name}
    lines = []
    if min_input:
        m = solve_min(net)
        data["min_input"] = {"size": list(m.size), "binding": list(m.binding), "method": m.method}
        where = ", ".join(f"{ax}: '{b}'" for ax, b in zip("HW", m.binding) if b) or "no layer limits it"
        lines.append(f"minimum input: {'x'.join(map(str, m.size))} (each layer's output at least 1x1 at inference; "
                     f"first to reach 1: {where}; {m.method})")
    if tiling:
        try:
            sizes = parse_range(tiling)
        except ValueError:
            raise UsageError(f"--tiling {plain_text(tiling)}: expected LO:HI, e.g. --tiling 200:300") from None
        found = tiling_sizes(net, sizes[0], sizes[-1])
        data["tiling"] = {"range": [sizes[0], sizes[-1]], "sizes": found}
        shown = ", ".join(map(str, found)) if found else "none"
        lines.append(f"input sizes {sizes[0]}..{sizes[-1]} at which every window tiles its input: {shown}")
    if fmt == "json":
        sys.stdout.write(json.dumps(data, indent=2) + "\n")
    else:
        from .textout import plain as shown

        sys.stdout.write(shown(net.name) + "\n" + "".join(f"  {shown(line)}\n" for line in lines))


def plain_text(text):
    from .errors import plain

    return plain(text)


@app.command()
def compare(
    specs: List[str] = typer.Argument(..., metavar="NAME|PATH...", help="Two or more zoo names or spec paths.", show_default=False),
    format: Format = FormatOpt,
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
        render.compare_table(_out(), reports)


@app.command("list")
def list_(format: Format = FormatOpt):
    """The bundled zoo with each network's totals."""
    from . import zoo, zoocache

    def compute(name):
        from . import load
        from .engine import analyze
        from .report import exact, jsonable, shape_text

        net = load(name)  # a family member (efficientnet_b3) with its own values
        r = analyze(net)
        t = r.totals
        return {"title": net.title, "input": jsonable(r.input), "input_text": shape_text(r.input),
                "params": jsonable(t["params"]), "macs": jsonable(t["macs"]), "activations": jsonable(t["activations"]),
                "params_text": exact(t["params"]), "macs_text": exact(t["macs"])}

    names = zoo.names()
    entries = zoocache.listing([(n, zoo.resolve(n)) for n in names], compute)
    rows = list(zip(names, entries))
    fmt = _val(format)
    if fmt == "json":
        import json

        data = [{"name": n, "title": e["title"], "input": e["input"], "params": e["params"], "macs": e["macs"],
                 "activations": e["activations"]} for n, e in rows]
        sys.stdout.write(json.dumps(data, indent=2) + "\n")
        return
    if fmt in ("csv", "markdown"):
        from .render import md
        from .textout import plain

        lines = ["name,input,params,macs,title"]
        if fmt == "markdown":
            lines = ["| name | input | params | macs | title |", "|---|---|---:|---:|---|"]
        for n, e in rows:
            cells = (n, e["input_text"], str(e["params"]), str(e["macs"]), e["title"])
            if fmt == "csv":
                import csv
                import io

                buf = io.StringIO()
                csv.writer(buf, lineterminator="").writerow([plain(c) for c in cells])
                lines.append(buf.getvalue())
            else:
                lines.append("| " + " | ".join(md(c) for c in cells) + " |")
        sys.stdout.write("\n".join(lines) + "\n")
        return
    from .render import list_table

    list_table(_out(), rows)


class LFormat(str, Enum):
    table = "table"
    markdown = "markdown"
    json = "json"


@app.command()
def layers(format: LFormat = typer.Option(LFormat.table, "--format", "-f", metavar="table|markdown|json",
                                          help="Output format (markdown is docs/layers.md).")):
    """Every layer type with its keys, defaults and formulas."""
    from . import render

    fmt = _val(format)
    if fmt == "markdown":
        sys.stdout.write(render.layers_markdown())
    elif fmt == "json":
        sys.stdout.write(render.layers_json())
    else:
        render.layers_text(_out())


from . import cli_torch  # noqa: E402  (registers verify and export; imports torch only when they run)

cli_torch.register(app)

from . import cli_check  # noqa: E402  (the CI command: check)

cli_check.register(app)

from . import cli_show  # noqa: E402  (explain, graph, plot)

cli_show.register(app)

from . import cli_sweep  # noqa: E402  (sweep: totals against a swept symbol)

cli_sweep.register(app)
__import__("archcalc.cli_import").cli_import.register(app)  # import: PyTorch / ONNX to a spec (torch only when it runs)


class _PipeClosed(Exception):
    """The reader of stdout went away (``archcalc summary vgg16 | head``)."""


class _Stdout:
    """stdout or stderr as given, made harmless and quiet: the one place archcalc's output leaves
    the process.

    * every text written goes through a :class:`archcalc.textout.Guard`: control, bidi and
      zero-width characters and undecodable bytes become escapes, no line can start a GitHub
      Actions workflow command (``::`` after blanks, ``##[`` anywhere) unless it is one of
      ``check --format github``'s own annotations (a :class:`archcalc.textout.Commands`); so
      whatever a command prints, and however a spec or file is named, a CI runner or terminal
      only ever shows it (docs/security.md);
    * on stdout, a closed pipe ends the command quietly: typer would turn the BrokenPipeError
      into exit code 1, archcalc's "check failed"."""

    def __init__(self, stream, pipe: bool = True):
        from .textout import Guard

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

    from .textout import plain

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


_EXITING = {"hard": False, "keep": []}


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
