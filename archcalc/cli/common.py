"""What every command shares: the typer app, the shared options and their parsers, and the
service calls that load a spec and analyse it. The command modules (cli.main, cli.check,
cli.show, cli.sweep, cli.torch, cli.importer) import this module; it imports none of them."""

from __future__ import annotations

import re
import sys
from enum import Enum
from typing import List, Optional, Union, get_args, get_origin

import typer

from .. import _speedups
from ..errors import UsageError

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


_speedups.plain_argument_help()


MAX_OPTION_DIGITS = 18  # an integer option's digits (every one is a count; 10**18 is beyond every limit)


class _BadInt(ValueError):
    """An integer option's text that is not an integer of at most MAX_OPTION_DIGITS digits."""

    def __init__(self, text: str):
        from ..errors import plain

        digits = re.fullmatch(r"[+-]?[0-9]+", text) is not None
        super().__init__(f"{plain(text)}: expected an integer" + (
            f" of at most {MAX_OPTION_DIGITS} digits" if digits else ""))


def _option_name(param) -> str:
    opts = list(getattr(param, "opts", None) or [])
    return next((o for o in opts if o.startswith("--")), opts[0] if opts else str(getattr(param, "name", "option")))


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


def _converter(annotation):
    """How archcalc converts a parameter of one annotation (str, int, bool, a str Enum, lists and
    Optionals of those) without pydantic; None where typer should decide (see
    archcalc._speedups.light_coercion)."""
    origin = get_origin(annotation)
    if origin is Union:
        rest = [a for a in get_args(annotation) if a is not type(None)]
        return _converter(rest[0]) if len(rest) == 1 else None
    if origin is list:
        (item,) = get_args(annotation) or (str,)
        one = _converter(item)
        return None if one is None else (lambda v: [one(x) for x in (v if isinstance(v, (list, tuple)) else [v])])
    if annotation is str:
        return _str
    if annotation is int:
        return _int
    if annotation is bool:
        return lambda v: v if isinstance(v, bool) else None
    if isinstance(annotation, type) and issubclass(annotation, Enum) and issubclass(annotation, str):
        def enum(v, cls=annotation):
            if isinstance(v, cls):
                return v
            try:
                return cls(v)
            except ValueError:
                raise ValueError(f"'{str(v)[:40]}' is not one of {', '.join(m.value for m in cls)}") from None
        return enum
    return None


def _loud(err, param):
    """A bad integer is one line naming the option (not click's three-line usage text)."""
    return UsageError(f"{_option_name(param)} {err}") if isinstance(err, _BadInt) else None


_speedups.light_coercion(_converter, _loud)


def _version(value: bool):
    if value:
        from ..version import __version__

        sys.stdout.write(f"archcalc {__version__}\n")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True, help="Print the version and exit."),
):
    """Architecture calculator for convolutional networks: shapes, params, MACs, receptive fields
    and memory from a YAML spec."""


def format_choices(name: str, table) -> type:
    """The ``--format`` choices of one view: a str Enum made from its renderer table's keys
    (:mod:`archcalc.output.views`), in the table's order; so a format is one entry there."""
    return Enum(name, [(k, k) for k in table], type=str, module=__name__)


def format_option(table, help: str = "Output format."):
    """The ``--format`` / ``-f`` option of one view: default the table's first format, metavar
    its formats joined by ``|``."""
    first = next(iter(table))
    return typer.Option(first, "--format", "-f", metavar="|".join(table), help=help)


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


class Backend(str, Enum):  # whose working memory the peaks include (archcalc.analysis.liveness.BACKENDS)
    cudnn = "cudnn"
    native = "native"
    cpu = "cpu"


SpecArg = typer.Argument(..., metavar="NAME|PATH", help="A zoo name (archcalc list) or a path to a spec .yaml file.", show_default=False)
SetOpt = typer.Option(None, "--set", "-s", metavar="NAME=VALUE", help="Give a symbol a value (repeatable, or comma-separated).")
FreeOpt = typer.Option(None, "--symbolic", metavar="H,W", help="Keep these symbols symbolic (comma-separated): closed-form results.")
InputOpt = typer.Option(None, "--input", "-i", metavar="CxHxW", help="Input shape, e.g. 3x299x299 (replaces the spec's input).")
BatchOpt = typer.Option("1", "--batch", "-b", metavar="N", help="Batch size for the memory totals (an integer or a symbol name).")
DTypeOpt = typer.Option(DType.fp32, "--dtype", metavar="fp32|fp16|bf16|int8|fp64", help="Element type for bytes.")
OptimOpt = typer.Option(Optim.sgd, "--optimizer", metavar="sgd|momentum|adam", help="Optimizer state for the training-memory total.")
EnsembleOpt = typer.Option(1, "--ensemble", metavar="K", help="K models averaged: MACs, params and memory x K.")
CropsOpt = typer.Option(1, "--crops", metavar="N", help="N crops evaluated per image: MACs x N.")


def _console():
    """A rich console (only the verify renderer in cli_torch still uses one): honest width when
    piped (COLUMNS, else wide enough that nothing is cut)."""
    from rich.console import Console

    from ..output.textout import _int_env

    width = _int_env("COLUMNS") or (None if sys.stdout.isatty() else 1000)
    return Console(highlight=False, soft_wrap=False, width=width)


def _out():
    from ..output.textout import Out

    return Out()


def _at_least_one(what: str, value: int) -> int:
    """--ensemble and --crops: an integer from 1 to limits.MAX_MULTIPLIER."""
    from ..errors import short
    from ..limits import MAX_MULTIPLIER

    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_MULTIPLIER:
        raise UsageError(f"{what} {short(value)}: expected an integer from 1 to {MAX_MULTIPLIER:,}")
    return value


def _positive(text: str):
    """A positive integer from ASCII digits within archcalc's size limit, else None."""
    from ..limits import MAX_SIZE

    if not re.fullmatch(r"[0-9]{1,20}", text):
        return None
    value = int(text)
    return value if 0 < value <= MAX_SIZE else None


def _positive_number(text: str):
    """A positive integer or decimal (an exact Fraction: 1.4 is 7/5) within the size limit, else None."""
    if re.fullmatch(r"[0-9]{1,20}\.[0-9]{1,12}", text):
        from fractions import Fraction

        from ..limits import MAX_SIZE

        value = Fraction(text)
        if 0 < value <= MAX_SIZE:
            return int(value) if value.denominator == 1 else value
        return None
    return _positive(text)


def parse_sets(items: Optional[List[str]]) -> dict:
    from ..errors import plain
    from ..limits import MAX_SIZE

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


def parse_input(text: Optional[str], ranks=(1, 3)):
    """``--input`` as a tuple of sizes; ``ranks``: the numbers of entries accepted (the importer's:
    2, 3, 4 for CxL, CxHxW, CxDxHxW)."""
    if text is None:
        return None
    from ..errors import plain
    from ..limits import MAX_SIZE

    parts = re.split(r"[x,]", text.strip().lower())
    sizes = [_positive(p.strip()) for p in parts]
    if len(parts) not in ranks or any(v is None for v in sizes):
        what = "CxHxW" if tuple(ranks) == (1, 3) else "CxL, CxHxW or CxDxHxW"
        raise UsageError(f"--input {plain(text)}: expected {what} with integers from 1 to {MAX_SIZE:,}, e.g. 3x224x224")
    return tuple(sizes)


def parse_batch(text: str):
    from ..errors import plain
    from ..limits import MAX_SIZE

    text = str(text).strip()
    value = _positive(text)
    if value is not None:
        return value
    if re.fullmatch(r"[A-Za-z_][A-Za-z_0-9]{0,63}", text):
        from ..expr import symbol

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
    """A spec argument, checked by the one rule (archcalc.spec.refs: an existing path is that file, a
    Python target only where no such path exists). A bare zoo name that is also a file or folder
    here is the zoo's, with a note on stderr saying how to name the file."""
    from ..spec import refs

    ref = str(ref)
    r = refs.resolve(ref, targets=True)
    if r.note:
        sys.stderr.write(f"archcalc: note: {r.note}\n")
    return ref


def load_net(ref, sets=None, input_=None, free=None):
    from ..importer import load_ref as load

    return load(resolve_ref(ref), parse_sets(sets), parse_input(input_), parse_free(free))


def analyze_net(net, batch="1", dtype=DType.fp32, optimizer=Optim.sgd, ensemble=1, crops=1):
    from ..analysis.engine import analyze

    report = analyze(net, dtype=_val(dtype), batch=parse_batch(batch), optimizer=_val(optimizer),
                     ensemble=_at_least_one("--ensemble", ensemble), crops=_at_least_one("--crops", crops))
    return spec_ignores(net, report)


def spec_ignores(net, report):
    """The report without the findings the spec's ``lint: ignore`` silences, as ``archcalc check``
    does (archcalc.ci.checks.quiet_ignored). Nothing is printed for them: the spec says why."""
    if net.lint is not None:
        from ..ci.checks import quiet_ignored

        quiet_ignored(net, report)
    return report


def load_report(ref, sets=None, input_=None, batch="1", dtype=DType.fp32, optimizer=Optim.sgd, ensemble=1, crops=1, free=None):
    return net_and_report(ref, sets, input_, free, batch, dtype, optimizer, ensemble, crops)[1]


def net_and_report(ref, sets=None, input_=None, free=None, batch="1", dtype=DType.fp32, optimizer=Optim.sgd, ensemble=1, crops=1):
    """(Network, Report). Where --symbolic keeps a repeat count free the layer list depends on it:
    the totals are then closed forms in that count (archcalc.analysis.depth) and the network is the one at
    the first count that builds."""
    from ..spec.load import SymbolicRepeat

    try:
        net = load_net(ref, sets, input_, free)
    except SymbolicRepeat as err:
        kept = parse_free(free)
        depth = tuple(s for s in err.symbols if s in kept)
        if not depth or len(depth) != len(err.symbols):
            raise
        from ..importer import load_ref as load
        from ..analysis.depth import analyze_depth

        path, values, shape = resolve_ref(ref), parse_sets(sets), parse_input(input_)
        others = tuple(s for s in kept if s not in depth)

        def load_at(extra, free_):
            return load(path, {**values, **extra}, shape, free_)

        report = analyze_depth(load_at, others, depth, dtype=_val(dtype), batch=parse_batch(batch),
                               optimizer=_val(optimizer), ensemble=_at_least_one("--ensemble", ensemble),
                               crops=_at_least_one("--crops", crops))
        start = next(w.get("start") for w in report.warnings if w.code == "depth-start")
        net = load_at({depth[0]: start}, others)
        return net, spec_ignores(net, report)
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



_EXITING = {"hard": False, "keep": []}  # entry() sets "hard": see cli.main.entry
