"""CI checks over many spec files: budgets, lints and baselines (``archcalc check``).

Pure logic, no printing: :func:`run` turns a list of references (files, directories, globs, zoo
names) into a :class:`Run` of :class:`SpecResult` s; :mod:`archcalc.ci.ci_report` renders a Run as
text, JSON, JUnit XML, GitHub workflow commands or SARIF. A spec that cannot be read is one
result with status ``error``; the others are still checked.

Every check is one declaration: the lints in :data:`LINTS` (id, title, help, check; declared one
per function with :func:`lint`, and selecting the engine's findings by code, never by text) drive the checker,
the `lint:` validation, the SARIF rules and docs/ci.md; the budget and baseline figures in
:data:`METRICS` (key -> how to read it from a report's totals) drive budgets, baselines and
``--max-growth``.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any, Callable

from ..errors import ArchcalcError, SpecError, UsageError, Where, expected_one_of, short
from ..expr import is_symbolic
from .discover import _reason, expand, is_spec, members, read_text, shown

# --------------------------------------------------------------------------- declarations


@dataclass(frozen=True)
class Lint:
    """A lint: its id (what `lint: ignore` and --ignore name), a title, one paragraph of help, and
    the check that finds it on an analysed spec (None: it fires elsewhere, see its declaration)."""

    id: str
    title: str
    help: str
    check: Callable | None = None


# Every lint, in the order checks and reports list them: declared one per function in the lints
# section below (:func:`lint`), as yamllint declares its rules.
LINTS: dict[str, Lint] = {}
RF_EXCESS = 16  # rf-excess fires above this many times the input's side
MAX_REASON = 1000  # characters of a `lint: ignore` reason

# Budget and baseline figures: key -> (what it is, how to read it from a report's totals). A key
# the loader accepts (spec.BUDGET_KEYS) but this table cannot read is reported as an error, not
# skipped. Issue 12's peak-memory budgets add `peak_memory` / `train_peak_memory` here, each reading
# the engine's peak figure once it exists.
METRICS: dict[str, tuple[str, Callable[[dict], Any]]] = {
    "params": ("params", lambda t: t.get("params")),
    "macs": ("MACs", lambda t: t.get("macs")),
    "activations": ("activation values per image", lambda t: t.get("activations")),
    "memory": ("activation bytes x batch", lambda t: t.get("batch_activation_bytes")),
    "train_memory": ("training bytes x batch", lambda t: t.get("batch_train_bytes")),
    # the live-tensor peaks at the batch (archcalc.analysis.liveness, docs/memory.md), weights and input
    # apart: budgets only (they read archcalc.analysis.liveness.totals, not the report's totals, so a
    # baseline neither writes nor compares them)
    "peak_memory": ("inference peak bytes x batch", lambda t: t.get("inference_peak_bytes")),
    "train_peak_memory": ("training peak bytes x batch", lambda t: t.get("train_peak_bytes")),
}
PEAK_METRICS = ("peak_memory", "train_peak_memory")
BYTE_METRICS = ("memory", "train_memory", "peak_memory", "train_peak_memory")  # suggested units: KiB, MiB, ...
# which per-layer figures explain a metric's growth (for naming the layers in a baseline failure)
LAYER_FIELDS = {"params": ("params",), "macs": ("macs",), "activations": ("values",),
                "memory": ("values",), "train_memory": ("params", "values")}
BASELINE_VERSION = 1
MAX_BASELINE_BYTES = 64 * 2**20


@dataclass
class Finding:
    """One observation about one spec: a failed budget, a lint, a baseline growth, a read error."""

    check: str  # 'load', 'budget', 'baseline' or 'lint'
    key: str  # the budget / baseline metric, the lint id; 'load' for read errors
    level: str  # 'error' (fails the spec) or 'warning'
    message: str
    file: str
    line: int | None = None
    layer: str | None = None
    suppressed: str | None = None  # why it is ignored ('' when no reason was given)
    data: dict = field(default_factory=dict)
    block_line: int | None = None  # a layer inside a block: its own line there (``line`` is the block's call)

    @property
    def case(self) -> str:
        return self.check if self.check == "load" else f"{self.check} {self.key}"


@dataclass
class Case:
    """One test case of one spec (a JUnit testcase): 'load', 'budget params', 'lint tiling', ..."""

    name: str
    status: str  # pass, fail, warn, skip, error
    findings: list = field(default_factory=list)
    note: str = ""  # for a pass: what was compared; for a skip: why


@dataclass
class SpecResult:
    ref: str  # what the user named
    file: str  # the path shown (relative to the working directory where it can be)
    name: str = ""
    title: str = ""
    status: str = "pass"  # pass, warn, fail, error
    totals: dict = field(default_factory=dict)  # metric -> value (int or sympy)
    cases: list = field(default_factory=list)
    layers: dict = field(default_factory=dict)  # name -> (params, macs, values, line, block line) for baselines
    deltas: dict = field(default_factory=dict)  # metric -> (old, new) against the baseline
    symbolic: bool = False
    variant: str | None = None  # the member checked, for a family file (`variants:`)
    fired: set = field(default_factory=set)  # lint ids that fired (before ignores)
    ignored: dict = field(default_factory=dict)  # the spec's `lint: ignore` (id -> (reason, line))
    lint_line: int | None = None

    @property
    def key(self) -> str:
        """The spec's identity in reports and baselines: its file, plus '#member' for a family member."""
        return f"{self.file}#{self.variant}" if self.variant else self.file

    @property
    def findings(self) -> list:
        return [f for c in self.cases for f in c.findings]


@dataclass
class Options:
    values: dict = field(default_factory=dict)
    input: tuple | None = None
    batch: Any = 1
    dtype: str = "fp32"
    optimizer: str = "sgd"
    limits: dict = field(default_factory=dict)  # key -> (amount, text as given)
    ignore: frozenset = frozenset()
    strict: bool = False
    baseline: dict | None = None  # a loaded baseline document
    growth: dict = field(default_factory=dict)  # metric -> allowed growth in percent (Fraction)
    keep_layers: bool = False  # keep per-layer figures (for --write-baseline)
    jobs: int = 0  # worker processes: 0 = one per CPU (up to 8) for 8 files or more, 1 = none
    exclude: tuple = ()  # --exclude GLOB: files found in folders or by globs that are not checked


@dataclass
class Run:
    results: list
    options: Options
    notices: list = field(default_factory=list)  # one-line notes for the run (no baseline yet, files skipped)
    errors: list = field(default_factory=list)  # what stopped the run before any spec was checked (exit 2)

    def count(self, status: str) -> int:
        return sum(r.status == status for r in self.results)

    @property
    def exit_code(self) -> int:
        if self.errors or any(r.status == "error" for r in self.results):
            return 2
        if any(r.status == "fail" for r in self.results):
            return 1
        return 0


# --------------------------------------------------------------------------- lint configuration


def lint_config(net) -> dict:
    """The spec's ``lint:`` mapping as {lint id: (reason ('' when none given), line)}.

    ``lint: {ignore: [tiling, unused]}`` or, with reasons, ``lint: {ignore: {tiling: "why"}}``.
    Anything else is a SpecError naming file and line."""
    raw = net.lint
    if raw is None:
        return {}
    file, line = net.file, net.lint_line
    form = "lint is a mapping such as {ignore: [tiling]} or {ignore: {tiling: \"why\"}}"
    if not isinstance(raw, dict):
        raise SpecError(f"{form}, got {short(raw)}", Where(file=file, line=line))
    lines = getattr(raw, "lines", {})
    for key in raw:
        if key != "ignore":
            raise SpecError(f"unknown lint key {short(key)}", Where(file=file, line=lines.get(key, line), path="lint"),
                            hint=expected_one_of(str(key), ["ignore"]))
    ignore = raw.get("ignore")
    iline = lines.get("ignore", line)
    if ignore is None:
        return {}
    if isinstance(ignore, list):
        items = [(v, "", ln) for v, ln in zip(ignore, getattr(ignore, "lines", [iline] * len(ignore)))]
    elif isinstance(ignore, dict):
        ilines = getattr(ignore, "lines", {})
        items = [(k, v, ilines.get(k, iline)) for k, v in ignore.items()]
    else:
        raise SpecError(f"lint.ignore is a list of lint ids or a mapping of lint id to reason, got {short(ignore)}",
                        Where(file=file, line=iline, path="lint.ignore"))
    out = {}
    for lint_id, reason, ln in items:
        where = Where(file=file, line=ln, path="lint.ignore")
        if not isinstance(lint_id, str) or lint_id not in LINTS:
            raise SpecError(f"unknown lint {short(lint_id)}", where, hint=expected_one_of(str(lint_id), LINTS, "a lint id"))
        if reason is None:
            reason = ""
        if not isinstance(reason, str):
            raise SpecError(f"the reason for ignoring '{lint_id}' is text, got {short(reason)}", where)
        reason = " ".join(reason.split())  # one line, whatever the YAML folding
        if len(reason) > MAX_REASON:
            raise SpecError(f"the reason for ignoring '{lint_id}' is longer than {MAX_REASON} characters", where)
        out[lint_id] = (reason, ln)
    return out


def quiet_ignored(net, report) -> int:
    """Drop from ``report`` the engine's findings that the spec's ``lint: ignore`` silences (a lint id
    selects the findings of the family of the same name: ``tiling``, ``alignment``, ``layer``), so that
    summary, compare, explain and --fit do not warn about what ``check`` is told to ignore. Returns how
    many were dropped. A ``lint:`` mapping ``check`` would refuse silences nothing here."""
    if net.lint is None:
        return 0
    try:
        ignored = tuple(lint_config(net))
    except SpecError:
        return 0
    if not ignored:
        return 0

    def kept(findings):
        return [w for w in findings if not any(w.is_a(i) for i in ignored)]

    dropped = 0
    for row in report.rows:
        if row.warnings:
            keep = kept(row.warnings)
            dropped += len(row.warnings) - len(keep)
            if len(keep) != len(row.warnings):
                row.warnings = keep
    report.warnings = kept(report.warnings)
    return dropped


# --------------------------------------------------------------------------- lints


def _concrete(*values) -> bool:
    return not any(is_symbolic(v) for v in values)


def _plural(n: int, word: str) -> str:
    return f"{n:,} {word}{'' if n == 1 else 's'}"


@dataclass
class Linted:
    """What a lint's check reads: the spec's network, its report and its file."""

    net: Any
    report: Any
    file: str
    calls: dict = field(default_factory=dict)  # block_calls(net)

    def found(self, lint_id: str, message: str, row=None, line=None, **data) -> Finding:
        """A finding at ``row``: at the line that calls the block the row's layer belongs to (the
        line a pull request changes), with the layer's own line in the block as ``block_line``."""
        block_line = None
        if line is None and row is not None:
            line, block_line = layer_lines(self.calls, row.name, row.line)
        return Finding("lint", lint_id, "warning", message, self.file, line,
                       row.name if row is not None else None, data=data, block_line=block_line)


def block_calls(net) -> dict:
    """Layer name -> the line of the block call it was expanded from (archcalc.spec.network.Node.call)."""
    return {n.name: n.call for n in net.nodes if n.call is not None}


def layer_lines(calls: dict, name: str, line: int | None) -> tuple:
    """(the line to annotate, the layer's own line inside its block or None) for layer ``name``,
    whose own line is ``line``: a layer expanded from a block is annotated at the block's call."""
    call = calls.get(name)
    if call is None or call == line:
        return line, None
    return call, line


def lint(lint_id: str, title: str, help: str):
    """Declare a lint: decorates its check, a function of a :class:`Linted` giving its findings."""

    def declare(check):
        if lint_id in LINTS:
            raise ValueError(f"lint {lint_id!r} is declared twice")
        LINTS[lint_id] = Lint(lint_id, title, help, check)
        return check

    return declare


def lints(net, report, file: str) -> list[Finding]:
    """Every lint that fires on one analysed spec (before any ignore is applied)."""
    spec = Linted(net, report, file, block_calls(net))
    out: list[Finding] = []
    for declared in LINTS.values():
        if declared.check is not None:
            out.extend(declared.check(spec))
    return out


def _row_findings(spec: Linted, lint_id: str, family: str) -> list[Finding]:
    """The lint ``lint_id`` for each of the rows' findings (archcalc.findings) of code ``family``."""
    return [spec.found(lint_id, f"{row.name} ({row.type}): {w.message}", row)
            for row in spec.report.rows for w in row.warnings if w.is_a(family)]


@lint("tiling", "a window does not tile its input",
      "A conv or pool window whose stride does not divide (input + padding - kernel): the last "
      "rows or columns of real input are never seen (AlexNet's 11x11/4 conv at 224x224).")
def _tiling(spec: Linted) -> list[Finding]:
    return _row_findings(spec, "tiling", "tiling")


@lint("alignment", "branches are centred apart by a constant offset",
      "Two spatial branches joined by add, concat, mean or mul have receptive fields whose centres "
      "differ by the same amount at every output position: the joined features describe places of "
      "the image that many pixels apart (a 2x2/2 pool shortcut beside a 3x3/2 conv: half a pixel). "
      "The finding gives the offset per axis in input pixels and the off-centre windows whose "
      "padding or stride to change. A gate that multiplies a global value in (squeeze-excitation, "
      "ECA, attention: a 1x1 map) is not a spatial branch; offsets that vary with the position "
      "(different effective strides, a U-Net's half pixel one way then the other) are not reported.")
def _alignment(spec: Linted) -> list[Finding]:
    def number(v):  # JSON keeps ints; a half pixel is the text "1/2"
        return v if isinstance(v, int) else str(v)

    out = []
    for row in spec.report.rows:
        for w in row.warnings:
            if w.is_a("alignment"):
                data = {"offset_h": number(w.get("offset_h", 0)), "offset_w": number(w.get("offset_w", 0)),
                        "layers": list(w.get("layers", ()))}
                for key in ("branches_h", "branches_w"):
                    if w.get(key) is not None:
                        data[key] = list(w.get(key))
                out.append(spec.found("alignment", f"{row.name} ({row.type}): {w.message}", row, **data))
    return out


def _head(spec: Linted):
    """The output row, its receptive field and the input's H and W, where all are concrete (else None)."""
    net, report = spec.net, spec.report
    rows = report.rows
    head = rows[net.output] if 0 <= net.output < len(rows) else None
    inp = report.input
    if head is None or head.rf is None or len(inp) != 3 or not _concrete(*inp):
        return None
    rf_h, rf_w = head.rf
    if not _concrete(rf_h.size, rf_h.padding, rf_w.size, rf_w.padding):
        return None
    return head, rf_h, rf_w, inp[1], inp[2]


@lint("rf-coverage", "the head does not see the whole input",
      "The receptive field at the network's flat (or 1x1) output does not reach every row and "
      "column of the input: a classifier that cannot see the whole image.")
def _rf_coverage(spec: Linted) -> list[Finding]:
    at = _head(spec)
    if at is None:
        return []
    head, rf_h, rf_w, h_in, w_in = at
    out_shape = spec.report.output
    classifier = len(out_shape) == 1 or (len(out_shape) == 3 and out_shape[1:] == (1, 1))
    reach = (rf_h.size - rf_h.padding, rf_w.size - rf_w.padding)  # first row past the union of windows
    missed = (max(h_in - reach[0], 0), max(w_in - reach[1], 0))
    if not (classifier and any(missed)):
        return []
    parts = [_plural(n, w) for n, w in zip(missed, ("row", "column")) if n]
    return [spec.found(
        "rf-coverage",
        f"{head.name} ({head.type}): the output's receptive field reaches input rows 0-{min(reach[0], h_in) - 1} "
        f"and columns 0-{min(reach[1], w_in) - 1} of the {h_in}x{w_in} input: the last {' and '.join(parts)} "
        f"never reach the output", head, missed=list(missed))]


@lint("rf-excess", "the head's receptive field exceeds the input 16 times",
      "The receptive field at the output is more than 16 times the input's height or width: at "
      "most 1/16 of the last layers' theoretical window lies on the image, the rest on zero "
      "padding (often an input far smaller than the network was made for).")
def _rf_excess(spec: Linted) -> list[Finding]:
    from ..output.report import exact

    at = _head(spec)
    if at is None:
        return []
    head, rf_h, rf_w, h_in, w_in = at
    big = max(Fraction(rf_h.size, h_in), Fraction(rf_w.size, w_in))
    if big <= RF_EXCESS:
        return []
    return [spec.found(
        "rf-excess",
        f"{head.name} ({head.type}): the output's receptive field is {exact(rf_h.size)}x{exact(rf_w.size)}, "
        f"{float(big):.1f} times the {h_in}x{w_in} input (more than {RF_EXCESS}x)", head, ratio=float(big))]


@lint("collapse", "the map collapses to 1x1 before the spatial layers end",
      "A layer brings the map to 1x1 while later layers still use windows larger than 1: those "
      "windows see only padding apart from their centre tap.")
def _collapse(spec: Linted) -> list[Finding]:
    from .. import layers as L
    from ..output.report import shape_text

    net, rows = spec.net, spec.report.rows
    shapes = {r.name: r.shape for r in rows}
    shapes["input"] = tuple(spec.report.input)
    by_name = {r.name: r for r in rows}
    groups: dict = {}  # the layer that made the map 1x1 -> the layers that waste windows on it
    for i, row in enumerate(rows):
        if row.aux or not row.inputs:
            continue
        x = shapes[row.inputs[0]]
        if len(x) != 3 or type(x[1]) is not int or type(x[2]) is not int or x[1] != 1 or x[2] != 1:
            continue
        win = L.REGISTRY[row.type].window(net.nodes[i].args, [shapes[n] for n in row.inputs], row.shape)
        # Axis windows only (a resampling window has no kernel: it reads 1 or 2 positions)
        if isinstance(win, tuple) and any(isinstance(getattr(a, "k", None), int) and a.k > 1 for a in win):
            origin = _collapse_origin(row, by_name, shapes)
            if origin is not None:
                groups.setdefault(origin.name, []).append((row, win))
    out = []
    for origin_name, wasted in groups.items():
        origin = by_name[origin_name]
        row, win = wasted[0]
        rest = len(wasted) - 1
        who = f"{row.name} ({row.type}, line {row.line})" + (f" and {_plural(rest, 'more layer')}" if rest else "")
        verb = "still use" if rest else "still uses"
        out.append(spec.found(
            "collapse",
            f"{origin.name} ({origin.type}): the map is 1x1 from here ({shape_text(origin.shape)}), yet {who} {verb} "
            f"{getattr(win[0], 'k', 1)}x{getattr(win[1], 'k', 1)} windows that see only padding around the centre", origin,
            layers=[r.name for r, _ in wasted]))
    return out


@lint("unused", "a layer's output is never used",
      "No later layer reads the output and it is not the network's output (nor an auxiliary "
      "head's): its params and MACs still count in the totals.")
def _unused(spec: Linted) -> list[Finding]:
    from ..output.report import exact

    net, rows = spec.net, spec.report.rows
    read = set()
    for node in net.nodes:
        read.update(node.inputs)
    return [spec.found(
        "unused",
        f"{row.name} ({row.type}): its output is never used (no later layer reads it and it is not "
        f"the network's output); its {exact(row.params)} params and {exact(row.macs)} MACs still count", row)
        for i, (node, row) in enumerate(zip(net.nodes, rows))
        if i != net.output and i not in read and not node.aux and i not in net.outputs]


# budget-units fires where the budgets are checked (budget_unit_lints, from _check): it reads the
# amounts as written, which the report does not hold
LINTS["budget-units"] = Lint(
    "budget-units", "a budget without a unit looks like a mistake",
    "A budget amount written without a unit is 1,000 times or more below the actual figure: "
    "probably 25 where 25M was meant.")


@lint("layer", "a layer type's own warning",
      "A fact the layer type itself flags for this use of it, e.g. an adaptive average pool to a "
      "size larger than its input (an upsample, not a pool).")
def _layer(spec: Linted) -> list[Finding]:
    return _row_findings(spec, "layer", "layer")


# unused-ignore fires once per file, over every checked member of a family (_stale_ignores)
LINTS["unused-ignore"] = Lint(
    "unused-ignore", "a lint exception silences nothing",
    "The spec's `lint: {ignore: ...}` names a lint that does not fire on this spec (at the "
    "sizes checked): the exception is stale.")


def _collapse_origin(row, by_name, shapes):
    """The layer whose output first became the 1x1 map ``row`` reads (None: the input is 1x1)."""
    cur = row
    for _ in range(len(by_name) + 1):
        name = cur.inputs[0] if cur.inputs else "input"
        if name == "input":
            return None
        src = by_name[name]
        before = shapes[src.inputs[0]] if src.inputs else None
        if before is None or len(before) != 3 or tuple(before[1:]) != (1, 1):
            return src
        cur = src
    return None


def _unit_suggestion(key: str, value: int, actual: int) -> str | None:
    """The unit that brings a unitless amount nearest to the actual figure (on a log scale)."""
    import math

    units = (("KiB", 2**10), ("MiB", 2**20), ("GiB", 2**30), ("TiB", 2**40)) if key in BYTE_METRICS or key.endswith("memory") \
        else (("K", 10**3), ("M", 10**6), ("G", 10**9), ("T", 10**12))
    if value <= 0 or actual <= 0:
        return None
    best = min(units, key=lambda u: abs(math.log(value * u[1]) - math.log(actual)))
    return f"{value}{best[0]}"


def budget_unit_lints(key, raw, amount, actual, file, line, origin) -> list[Finding]:
    """budget-units: an amount with no unit, 1,000x or more below the actual figure."""
    from ..output.report import exact

    text = str(raw).strip()
    has_unit = isinstance(raw, str) and any(c.isalpha() for c in text)
    if has_unit or isinstance(raw, bool) or not isinstance(actual, int) or amount <= 0 or actual < 1000 * amount:
        return []
    hint = _unit_suggestion(key, amount, actual)
    return [Finding("lint", "budget-units", "warning",
                    f"{origin} {key}: {text} has no unit and is {actual // amount:,}x below the actual "
                    f"{exact(actual)}" + (f"; did you mean {hint}?" if hint else ""), file, line,
                    data={"key": key, "amount": amount, "actual": actual})]


# --------------------------------------------------------------------------- one spec


def _metric_values(report) -> dict:
    return {key: getter(report.totals) for key, (_, getter) in METRICS.items() if key not in PEAK_METRICS}


def _peak_values(report) -> dict:
    from ..analysis.liveness import totals as peaks

    t = peaks(report)
    return {key: METRICS[key][1](t) for key in PEAK_METRICS}


def _budget_source(net) -> tuple[dict, dict]:
    """The spec's `budget:` amounts as written and their lines (the loader keeps both)."""
    source = net.budget_source or {}
    return {k: v for k, (v, _) in source.items()}, {k: line for k, (_, line) in source.items()}


def check_spec(ref: str, path: Path | None, opts: Options, text: str | None = None, file: str | None = None,
               variant: str | None = None, doc=None) -> SpecResult:
    """Load, analyse and check one spec (one member of a family); every ArchcalcError becomes an
    'error' result."""
    file = file or shown(path)
    result = SpecResult(ref=ref, file=file, variant=variant, name=variant or "")
    try:
        _check(result, path, opts, text, doc)
    except ArchcalcError as err:
        return error_result(ref, file, str(err), err.where.line if err.where else None, variant)
    return result


def error_result(ref: str, file: str, message: str, line: int | None = None, variant: str | None = None) -> SpecResult:
    """A spec that could not be read or analysed: one 'load' case in error."""
    return SpecResult(ref=ref, file=file, variant=variant, name=variant or "", status="error",
                      cases=[Case("load", "error", [Finding("load", "load", "error", message, file, line)])])


def _check(result: SpecResult, path, opts: Options, text, doc=None):
    from ..analysis.engine import analyze
    from ..output.report import exact
    from ..spec.load import loads

    file = result.file
    if text is None:
        text = read_text(path, file)
    net = loads(text, file, opts.values, opts.input, variant=result.variant, doc=doc)
    ignored = lint_config(net)
    report = analyze(net, dtype=opts.dtype, batch=opts.batch, optimizer=opts.optimizer)
    result.name, result.title = net.name, net.title
    result.symbolic = report.symbolic
    values = _metric_values(report)
    result.totals = values
    if opts.keep_layers or opts.baseline is not None:
        calls = block_calls(net)
        result.layers = {r.name: (r.params, r.macs, r.values, *layer_lines(calls, r.name, r.line)) for r in report.rows}
    cases = [Case("load", "pass", note=f"{len(report.rows):,} layers")]

    # budgets: the spec's, then --budget (which replaces a spec limit of the same key)
    limits: dict = {}
    if net.budget:
        raw, lines = _budget_source(net)
        for key, amount in net.budget.items():
            limits[key] = (amount, raw.get(key, amount), lines.get(key), "budget")
    for key, (amount, given) in opts.limits.items():
        limits[key] = (amount, given, None, "--budget")
    unit_findings = []
    budget_values = {**values, **_peak_values(report)} if any(k in PEAK_METRICS for k in limits) else values
    for key, (amount, raw, line, origin) in limits.items():
        case = Case(f"budget {key}", "pass")
        actual = budget_values.get(key)
        what = METRICS.get(key, (key,))[0]
        if key not in METRICS or actual is None:
            case.status = "error"
            case.findings.append(Finding("budget", key, "error", f"budget {key}: archcalc does not compute this figure yet",
                                         file, line))
        elif is_symbolic(actual):
            case.status = "error"
            case.findings.append(Finding("budget", key, "error",
                                         f"budget {key}: the figure is symbolic ({short(exact(actual))}); give the spec's "
                                         "symbols values with --set", file, line))
        elif actual > amount:
            case.status = "fail"
            case.findings.append(Finding("budget", key, "error",
                                         f"{key} {exact(actual)} > {exact(amount)} (limit)",
                                         file, line, data={"actual": actual, "limit": amount, "what": what, "from": origin}))
        else:
            case.note = f"{key} {exact(actual)} <= {exact(amount)} (limit)"
        cases.append(case)
        if actual is not None and not is_symbolic(actual):
            unit_findings += budget_unit_lints(key, raw, amount, actual, file, line,
                                               "budget" if origin == "budget" else "--budget")

    # lints
    found = lints(net, report, file) + unit_findings
    result.fired = {f.key for f in found}
    result.ignored = ignored
    result.lint_line = net.lint_line
    for lint_id in LINTS:
        case = Case(f"lint {lint_id}", "pass")
        mine = [f for f in found if f.key == lint_id]
        if lint_id in ignored or lint_id in opts.ignore:
            reason = ignored[lint_id][0] if lint_id in ignored else None
            why = f"ignored by the spec: {reason}" if reason else ("ignored by the spec" if lint_id in ignored else "ignored by --ignore")
            for f in mine:
                f.suppressed = why
            case.status, case.note = "skip", why
        elif mine:
            for f in mine:
                f.level = "error" if opts.strict else "warning"
            case.status = "fail" if opts.strict else "warn"
        case.findings = mine
        cases.append(case)

    # baseline
    if opts.baseline is not None:
        cases.extend(_baseline_cases(result, opts, values))
    result.cases = cases
    result.status = _status(cases)


def _status(cases) -> str:
    states = {c.status for c in cases}
    for status in ("error", "fail", "warn"):
        if status in states:
            return status
    return "pass"


# --------------------------------------------------------------------------- baselines


def parse_growth(items) -> dict:
    """``--max-growth macs=2%,params=0`` -> {metric: Fraction(percent)}; ``all=1%`` sets every
    metric. Only the metrics named are limited; with no --max-growth every metric allows 0%."""
    out: dict = {}
    for item in items or []:
        for part in str(item).split(","):
            part = part.strip()
            if not part:
                continue
            key, sep, value = part.partition("=")
            key = key.strip()
            keys = list(METRICS) if key in ("all", "*") else [key]
            if not sep or any(k not in METRICS for k in keys):
                raise UsageError(f"--max-growth {short(part)}: expected METRIC=PERCENT such as macs=2%",
                                 hint=expected_one_of(key, list(METRICS) + ["all"], "a metric"))
            text = value.strip().rstrip("%").strip()
            try:
                pct = Fraction(text)
            except (ValueError, ZeroDivisionError):
                raise UsageError(f"--max-growth {short(part)}: cannot read the percentage {short(value.strip())}",
                                 hint="e.g. macs=2% or params=0.5") from None
            if pct < 0 or len(text) > 20:
                raise UsageError(f"--max-growth {short(part)}: expected a percentage from 0 up, e.g. 2%")
            for k in keys:
                out[k] = pct
    return out


def pct_text(value: Fraction) -> str:
    text = f"{float(value):.2f}".rstrip("0").rstrip(".")
    return text + "%"


def _baseline_cases(result: SpecResult, opts: Options, values: dict) -> list[Case]:
    from ..output.report import exact

    entry = opts.baseline.get("specs", {}).get(result.key)
    if entry is None:
        return [Case("baseline", "skip", note="not in the baseline (write one with --write-baseline)")]
    if result.symbolic:
        return [Case("baseline", "skip", note="symbolic totals are not compared")]
    old_totals = entry.get("totals", {})
    old_layers = entry.get("layers", {})
    cases = []
    for key in METRICS:
        if key in PEAK_METRICS:  # budgets only
            continue
        old, new = old_totals.get(key), values.get(key)
        case = Case(f"baseline {key}", "pass")
        if not isinstance(old, int) or isinstance(old, bool) or not isinstance(new, int):
            case.status, case.note = "skip", "not in the baseline"
            cases.append(case)
            continue
        result.deltas[key] = (old, new)
        growth = new - old
        case.note = f"{key} {exact(old)} -> {exact(new)} ({_signed(growth)}{_pct_of(growth, old)})"
        if opts.growth and key not in opts.growth:  # --max-growth names the metrics it limits
            case.note += ", not limited"
            cases.append(case)
            continue
        allowed = opts.growth.get(key, Fraction(0))
        if growth > 0 and Fraction(growth) * 100 > allowed * old:
            layers = _grown_layers(key, old_layers, result.layers)
            named = "; ".join(layers[:3]) + (f"; and {len(layers) - 3} more" if len(layers) > 3 else "")
            line = block_line = None
            for lname, *_ in _layer_growth(key, old_layers, result.layers)[:1]:
                line, block_line = result.layers[lname][3:5]
            case.status = "fail"
            case.findings.append(Finding(
                "baseline", key, "error",
                f"{key} grew {exact(old)} -> {exact(new)} ({_signed(growth)}{_pct_of(growth, old)}), more than the "
                f"allowed +{pct_text(allowed)}" + (f": {named}" if named else ""),
                result.file, line or 1,
                layer=(_layer_growth(key, old_layers, result.layers) or [(None,)])[0][0],
                data={"old": old, "new": new, "allowed_percent": float(allowed)}, block_line=block_line))
        cases.append(case)
    return cases


def _signed(n: int) -> str:
    return f"+{n:,}" if n >= 0 else f"{n:,}"


def _pct_of(growth: int, old: int) -> str:
    if old == 0:
        return ""
    return f", {'+' if growth >= 0 else ''}{float(Fraction(growth * 100, old)):.2f}%"


def _layer_growth(key, old_layers: dict, new_layers: dict) -> list:
    """(layer, growth) for each layer whose figures behind ``key`` grew or that is new; largest first."""
    fields = LAYER_FIELDS.get(key, ())
    index = {"params": 0, "macs": 1, "values": 2}
    grown = []
    for name, figures in new_layers.items():
        new = sum(figures[index[f]] for f in fields if isinstance(figures[index[f]], int))
        old_fig = old_layers.get(name)
        if old_fig is None:
            if new > 0:
                grown.append((name, new, True))
            continue
        old = sum(old_fig[index[f]] for f in fields if isinstance(old_fig[index[f]], int))
        if new > old:
            grown.append((name, new - old, False))
    grown.sort(key=lambda g: -g[1])
    return grown


def _grown_layers(key, old_layers, new_layers) -> list[str]:
    """'conv2 (line 5) +1,024 params', 'extra (new, line 7) +2,048 params', largest first."""
    from ..output.report import exact

    label = {"params": "params", "macs": "MACs", "train_memory": "params + values"}.get(key, "values")
    out = []
    for name, growth, new in _layer_growth(key, old_layers, new_layers):
        line, block_line = new_layers[name][3:5]
        tags = (["new"] if new else []) + ([f"line {line}"] if line else []) + ([f"block line {block_line}"] if block_line else [])
        out.append(f"{name}{' (' + ', '.join(tags) + ')' if tags else ''} +{exact(growth)} {label}")
    return out


def run_options(o: Options) -> dict:
    """The options that change the figures; a baseline is only compared under the same ones."""
    return {"dtype": o.dtype, "batch": o.batch if isinstance(o.batch, int) else str(o.batch),
            "optimizer": o.optimizer, "input": list(o.input) if o.input else None,
            # a decimal --set value (a Fraction) as its text, 17/2: JSON has no exact fractions
            "set": {k: v if isinstance(v, int) else str(v) for k, v in sorted(o.values.items())}}


def check_baseline_options(doc: dict, o: Options, path: str) -> None:
    """A UsageError when the baseline was written under other figure-changing options."""
    now = run_options(o)
    then = doc.get("options") or {}
    for key, value in now.items():
        if key in then and then[key] != value:
            raise UsageError(f"--baseline {short(path)} was written with {key} {json.dumps(then[key])[:80]}, "
                             f"this run has {json.dumps(value)[:80]}", hint="compare under the same options, or write a new baseline")


def baseline_document(run: Run) -> dict:
    """The baseline file: per spec its totals and per-layer figures (deterministic: no dates)."""
    from ..version import __version__

    specs = {}
    for r in run.results:
        if r.status == "error" or r.symbolic:
            continue
        specs[r.key] = {
            "name": r.name,
            "totals": {k: v for k, v in r.totals.items() if isinstance(v, int)},
            "layers": {n: [p, m, v] for n, (p, m, v, *_) in r.layers.items()
                       if all(isinstance(x, int) for x in (p, m, v))},
        }
    o = run.options
    return {
        "archcalc_baseline": BASELINE_VERSION,
        "archcalc": __version__,
        "options": run_options(o),
        "specs": dict(sorted(specs.items())),
    }


def load_baseline(path: str) -> dict:
    """Read and validate a baseline file (a UsageError, exit 2, when it is not one)."""
    data = _read_regular(path, MAX_BASELINE_BYTES + 1, "--baseline", "write one with --write-baseline FILE")
    if len(data) > MAX_BASELINE_BYTES:
        raise UsageError(f"--baseline {short(path)}: larger than {MAX_BASELINE_BYTES:,} bytes")
    return parse_baseline(data, path)


def _baseline_shape():
    """The baseline document as baseline_document writes it, declared (archcalc.safejson)."""
    from ..limits import MAX_BASELINE_DEPTH, MAX_SIZE
    from ..safejson import Const, Either, Int, ListOf, MapOf, Null, Record, Str

    count = Int(0, 2**256 - 1)  # a total or a layer's figure (far above any archcalc computes)
    size = Int(1, MAX_SIZE)
    options = Record({"dtype": Str(20), "batch": Either(size, Str(64)), "optimizer": Str(20),
                      "input": Either(Null(), ListOf(size, 1, 3)), "set": MapOf(Either(size, Str(64)), key=Str(64))})
    entry = Record({"name": Str(10_000), "totals": MapOf(count, key=Str(100)),
                    "layers": MapOf(ListOf(count, 3, 3), key=Str(10_000))})
    assert MAX_BASELINE_DEPTH >= 4  # document > specs > entry > layers > figures
    return Record({"archcalc_baseline": Const(BASELINE_VERSION), "archcalc": Str(100), "options": options,
                   "specs": MapOf(entry, key=Str(10_000))}, required=("archcalc_baseline", "specs"))


def parse_baseline(data: bytes, path: str) -> dict:
    """A baseline document from the file's bytes: nesting bounded before parsing, then every key
    and value checked against :func:`_baseline_shape`; a UsageError (exit 2) naming the first
    wrong place by its JSON path (``$.specs['a.yaml'].layers.conv1[2]``)."""
    from ..limits import MAX_BASELINE_DEPTH
    from ..safejson import JSONError, check, loads

    try:
        doc = loads(data, MAX_BASELINE_DEPTH)
    except JSONError as err:
        raise UsageError(f"--baseline {short(path)}: {err}") from None
    version = doc.get("archcalc_baseline") if isinstance(doc, dict) else None
    if type(version) is not int or version != BASELINE_VERSION:
        raise UsageError(f"--baseline {short(path)}: not an archcalc baseline (version {BASELINE_VERSION})",
                         hint="write one with --write-baseline FILE")
    problem = check(doc, _baseline_shape())
    if problem:
        raise UsageError(f"--baseline {short(path)}: {problem}", hint="write a new one with --write-baseline FILE")
    return doc


def _read_regular(path: str, limit: int, option: str, hint: str | None = None) -> bytes:
    """At most ``limit`` bytes of a regular file. A FIFO or device is refused as not a regular file
    without blocking (opened O_NONBLOCK, checked with fstat before any read); OS errors are one line."""
    from ..safeio import NotRegular, read_regular

    shown_path = short(str(path))
    try:
        return read_regular(path, limit - 1)
    except FileNotFoundError:
        raise UsageError(f"{option} {shown_path}: no such file", hint=hint) from None
    except NotRegular as err:
        raise UsageError(f"{option} {shown_path}: {err.kind}, not a regular file") from None
    except (OSError, ValueError) as err:
        raise UsageError(f"{option} {shown_path}: {_reason(err)}") from None


def baseline_text(doc: dict) -> str:
    """The baseline as JSON with one line per layer (small diffs when a layer changes)."""
    lines = ["{"]
    for key in ("archcalc_baseline", "archcalc", "options"):
        lines.append(f" {json.dumps(key)}: {json.dumps(doc[key])},")
    lines.append(' "specs": {')
    items = list(doc["specs"].items())
    for i, (name, entry) in enumerate(items):
        lines.append(f"  {json.dumps(name)}: {{")
        lines.append(f'   "name": {json.dumps(entry["name"])},')
        lines.append(f'   "totals": {json.dumps(entry["totals"])},')
        lines.append('   "layers": {')
        layers = list(entry["layers"].items())
        for j, (lname, figures) in enumerate(layers):
            lines.append(f"    {json.dumps(lname)}: {json.dumps(figures)}{',' if j < len(layers) - 1 else ''}")
        lines.append("   }")
        lines.append("  }" + ("," if i < len(items) - 1 else ""))
    lines.append(" }")
    lines.append("}")
    return "\n".join(lines) + "\n"


def write_baseline(run: Run, path: str) -> None:
    """Write the baseline through archcalc/safeio.py: a regular file is replaced (CI rewrites it),
    a link, folder, FIFO or device is refused, a planted ``F.tmp`` is never touched."""
    from ..safeio import write_file

    write_file(path, baseline_text(baseline_document(run)), replace=True, option="--write-baseline")


# --------------------------------------------------------------------------- the run


def run(refs: list[str], opts: Options) -> Run:
    return _run(refs, opts)


MAX_SKIPPED_SHOWN = 3


def _run(refs: list[str], opts: Options) -> Run:
    items = list(expand(refs, opts.exclude))
    jobs = _jobs(opts.jobs, len(items))
    if jobs > 1:
        groups = _in_parallel(items, opts, jobs)
    else:
        groups = (_check_item(item, opts) for item in items)
    results = [r for group in groups for r in group]
    kept = [r for r in results if r.status != "skipped"]
    skipped = [r.file for r in results if r.status == "skipped"]
    notices = []
    if skipped:  # said once for the run
        names = ", ".join(short(f, 80)[1:-1] for f in skipped[:MAX_SKIPPED_SHOWN])
        more = len(skipped) - MAX_SKIPPED_SHOWN
        what = "1 YAML file that is not a spec" if len(skipped) == 1 else f"{len(skipped):,} YAML files that are not specs"
        notices.append(f"skipped {what} (no input: or layers:): {names}" + (f" and {more} more" if more > 0 else "")
                       + "; --exclude GLOB keeps them out of the walk")
    return Run(kept, opts, notices)


def _check_item(item, opts: Options) -> list:
    """The results of one expanded argument: every member of one spec file, or its error."""
    from ..spec.load import parse_doc

    ref, path, variant, error, found = item
    if error is not None:
        return [error_result(ref, ref, error)]
    file = shown(path)
    try:
        text = read_text(path, file)
        doc = parse_doc(text, file)  # once per file: a family's members share it
        if found and not is_spec(doc):  # a workflow or a pre-commit config beside the specs
            return [SpecResult(ref=ref, file=file, status="skipped")]
        wanted = [variant] if variant else (members(text, file, doc) or [None])
    except ArchcalcError as err:
        return [error_result(ref, file, str(err), err.where.line if err.where else None, variant)]
    group = [check_spec(ref, path, opts, text=text, file=file, variant=v, doc=doc) for v in wanted]
    _stale_ignores(group, opts)
    return group


# Many files are checked by forked workers, one file at a time, results in the order given. Only
# where fork is safe: a POSIX fork start method, and a process with no other threads (torch, for
# one, starts threads: then the files are checked one after another).
_PARALLEL_MIN_FILES = 8
_WORK: tuple = ()


def _jobs(asked: int, n_items: int) -> int:
    import multiprocessing
    import threading

    if asked == 1 or n_items < 2:
        return 1
    if asked == 0:  # automatic
        if n_items < _PARALLEL_MIN_FILES:
            return 1
        try:
            cpus = len(os.sched_getaffinity(0))
        except (AttributeError, OSError):
            cpus = os.cpu_count() or 1
        asked = min(cpus, 8)
    if asked < 2 or "fork" not in multiprocessing.get_all_start_methods() or threading.active_count() > 1:
        return 1
    return min(asked, n_items)


def _one(k):
    """One file, in a worker. A spec that needs sympy (a symbol without a value) comes back as None:
    the parent checks it, for it imports sympy anyway to read and show such a result, so sympy is
    imported once rather than once more in each worker that meets one."""
    from ..expr import SympyBlocked, block_sympy

    items, opts = _WORK
    block_sympy()
    try:
        return _check_item(items[k], opts)
    except SympyBlocked:
        return None


def _in_parallel(items, opts, jobs) -> list:
    import multiprocessing
    from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait

    global _WORK
    _WORK = (items, opts)  # inherited by the forked workers: nothing of it is pickled
    out: list = [None] * len(items)
    try:
        with ProcessPoolExecutor(jobs, mp_context=multiprocessing.get_context("fork")) as pool:
            index = {pool.submit(_one, k): k for k in range(len(items))}
            pending = set(index)
            while pending:
                done, pending = wait(pending, return_when=FIRST_COMPLETED)
                for fut in done:
                    k = index[fut]
                    group = fut.result()
                    # handed back (needs sympy): checked here while the workers go on
                    out[k] = _check_item(items[k], opts) if group is None else group
    finally:
        _WORK = ()
    return out


def _stale_ignores(group: list, opts: Options) -> None:
    """unused-ignore: a `lint: ignore` entry that fires in none of a file's checked members (a
    whole family is judged together; its first member carries the finding)."""
    ok = [r for r in group if r.status != "error"]
    if not ok:
        return
    first = ok[0]
    fired = set().union(*(r.fired for r in ok))
    stale = [(lint_id, line) for lint_id, (_, line) in first.ignored.items() if lint_id not in fired and lint_id != "unused-ignore"]
    if not stale:
        return
    case = next(c for c in first.cases if c.name == "lint unused-ignore")
    for lint_id, line in stale:
        f = Finding("lint", "unused-ignore", "warning", f"lint.ignore: '{lint_id}' silences nothing in this spec",
                    first.file, line or first.lint_line, data={"lint": lint_id})
        if case.status == "skip":
            f.suppressed = case.note
        else:
            f.level = "error" if opts.strict else "warning"
            case.status = "fail" if opts.strict else "warn"
        case.findings.append(f)
    first.status = _status(first.cases)
