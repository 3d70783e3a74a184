"""The CI commands: ``archcalc check`` (budgets, lints, baselines over many specs) and
``archcalc diff`` (what changed between two versions of a spec). The logic lives in
:mod:`archcalc.ci.checks`, :mod:`archcalc.ci.ci_report` and :mod:`archcalc.ci.diff`; this module
parses arguments and writes what they return."""

import sys
from enum import Enum
from typing import List, Optional

import typer

from ..ci import ci_report
from .common import BatchOpt, DType, DTypeOpt, InputOpt, Optim, OptimOpt, SetOpt, format_choices, format_option
from ..errors import CheckFailed, SpecError, UsageError, short

BUDGET_HELP = (
    "A limit KEY=AMOUNT (repeatable or comma-separated): params, macs, activations (values per image), "
    "memory (activation bytes x batch), train_memory (saved activations x batch + weights, gradients, optimizer). "
    "AMOUNT takes K/M/G/T (x1000) or KiB/MiB/GiB (x1024). Replaces the spec's budget: for that key."
)


CheckFormat = format_choices("CheckFormat", ci_report.FORMATS)


class DiffFormat(str, Enum):
    text = "text"
    json = "json"


def parse_budgets(items) -> dict:
    from ..errors import expected_one_of
    from ..spec.load import BUDGET_KEYS, parse_amount

    limits = {}
    for item in items or []:
        for part in item.split(","):
            if not part.strip():
                continue
            key, sep, amount = part.partition("=")
            key = key.strip()
            shown = part if len(part) <= 80 and part.isprintable() else short(part)
            if not sep or key not in BUDGET_KEYS:
                raise UsageError(f"--budget {shown}: expected KEY=AMOUNT", hint=expected_one_of(key[:80], BUDGET_KEYS, "a key"))
            try:
                limits[key] = (parse_amount(amount.strip()), amount.strip())
            except ValueError:
                raise UsageError(f"--budget {key[:80]}: cannot read amount {short(amount.strip())}", hint="e.g. 25M, 4.1G, 16GiB") from None
    return limits


def parse_ignore(items) -> frozenset:
    from ..ci.checks import LINTS
    from ..errors import expected_one_of

    out = set()
    for item in items or []:
        for part in item.split(","):
            part = part.strip()
            if not part:
                continue
            if part not in LINTS:
                raise UsageError(f"--ignore {short(part)}: not a lint id", hint=expected_one_of(part, LINTS, "a lint id"))
            out.add(part)
    return frozenset(out)


def parse_reports(items) -> list:
    from ..ci.ci_report import FORMATS
    from ..errors import expected_one_of

    out = []
    for item in items or []:
        kind, sep, path = item.partition("=")
        kind = kind.strip()
        if not sep or not path.strip() or kind not in FORMATS:
            raise UsageError(f"--report {short(item)}: expected FORMAT=FILE such as sarif=archcalc.sarif",
                             hint=expected_one_of(kind, FORMATS, "a format"))
        out.append((kind, path.strip()))
    return out


def _failure_text(run) -> str:
    from ..ci.ci_report import failure_text

    return failure_text(run)


def _jobs(n: int) -> int:
    if n < 0 or n > 256:
        raise UsageError(f"--jobs {n}: expected 0 (automatic) or a number of processes from 1 to 256")
    return n


def _notes(specs):
    """The one rule (archcalc.spec.refs): a Python target is a usage error here, before any work."""
    from ..spec import refs

    for ref in specs:
        note = refs.resolve(ref, targets=False, globs=True, command="check").note
        if note:
            sys.stderr.write(f"archcalc: note: {note}\n")


def _not_there(path: str) -> bool:
    """No file of that name (a name too long, a folder that cannot be read: not "missing", but
    errors that load_baseline reports)."""
    import os

    try:
        os.lstat(path)
    except FileNotFoundError:
        return True
    except (OSError, ValueError):
        return False
    return False


def _options(set, input, batch, dtype, optimizer, budget, ignore, strict, baseline, max_growth, write_baseline, jobs,
             notices, specs=(), exclude=()):
    """check's options parsed into :class:`archcalc.ci.checks.Options` (the baseline read and checked).
    A --baseline file that does not exist yet (a repository's first run) is a notice, not an error:
    nothing is compared, and the notice says how to write one."""
    import shlex

    from ..ci import checks
    from .common import _val, parse_batch, parse_input, parse_sets

    if baseline and _not_there(baseline):
        command = shlex.join(["archcalc", "check", *specs, "--write-baseline", baseline])
        notices.append(f"no baseline file {short(baseline)} yet, so no totals were compared; write one with "
                       f"`{command}` and commit it")
        baseline = None
    opts = checks.Options(
        values=parse_sets(set), input=parse_input(input), batch=parse_batch(batch), dtype=_val(dtype),
        optimizer=_val(optimizer), limits=parse_budgets(budget), ignore=parse_ignore(ignore), strict=strict,
        baseline=checks.load_baseline(baseline) if baseline else None, growth=checks.parse_growth(max_growth),
        keep_layers=bool(write_baseline), jobs=_jobs(jobs), exclude=tuple(exclude or ()),
    )
    if opts.baseline is not None:
        checks.check_baseline_options(opts.baseline, opts, baseline)
    return opts


def _check_targets(extra, write_baseline):
    """reports and the baseline replace a regular file (CI rewrites them every run), never a link,
    folder, FIFO or device (archcalc/safeio.py): refused before the run."""
    from ..safeio import check_target

    for kind, path in extra:
        check_target(path, replace=True, option=f"--report {kind}")
    if write_baseline:
        check_target(write_baseline, replace=True, option="--write-baseline")


def _write_reports(run, extra):
    from ..safeio import write_file

    for kind, path in extra:
        write_file(path, ci_report.render(run, kind), replace=True, option=f"--report {kind}")


def _emit(run, fmt, extra, write_baseline):
    """The report files, the baseline, then the report on stdout (through ci_report.FORMATS)."""
    from ..ci import checks

    single_error = len(run.results) == 1 and run.results[0].status == "error"
    _write_reports(run, extra)
    if write_baseline:  # written before stdout: a failed write leaves no result printed
        checks.write_baseline(run, write_baseline)
    fmt = getattr(fmt, "value", fmt)
    if fmt not in ("text", "github"):  # those show the notices in the report itself
        for note in run.notices:
            sys.stderr.write(f"archcalc: note: {ci_report.clean(note, 1000)}\n")
    if not (single_error and fmt == "text"):
        sys.stdout.write(ci_report.render(run, fmt))
    elif run.notices:
        sys.stderr.write("".join(f"archcalc: note: {ci_report.clean(n, 1000)}\n" for n in run.notices))
    if write_baseline:
        kept = len(checks.baseline_document(run)["specs"])
        sys.stderr.write(f"archcalc: wrote {write_baseline}: {kept} spec{'s' if kept != 1 else ''}\n")


def _exit(run):
    """The run's exit code as the error that carries it: 2 a spec could not be read, 1 a check failed."""
    code = run.exit_code
    single_error = len(run.results) == 1 and run.results[0].status == "error"
    if code == 2:
        bad = [r for r in run.results if r.status == "error"]
        if single_error:
            raise SpecError(bad[0].findings[0].message)
        names = ", ".join(ci_report.clean(r.key, 80) for r in bad[:3]) + (f" and {len(bad) - 3} more" if len(bad) > 3 else "")
        raise SpecError(f"{len(bad)} of {len(run.results)} specs could not be checked: {names}")
    if code == 1:
        raise CheckFailed(_failure_text(run))


def register(app):
    @app.command()
    def check(
        specs: List[str] = typer.Argument(..., metavar="SPEC...", help="Spec files, directories (every *.yaml / *.yml below), globs or zoo names."),
        budget: Optional[List[str]] = typer.Option(None, "--budget", metavar="KEY=AMOUNT", help=BUDGET_HELP),
        strict: bool = typer.Option(False, "--strict", help="Lint warnings fail the check (exit 1)."),
        ignore: Optional[List[str]] = typer.Option(None, "--ignore", metavar="LINT", help="Lint ids to silence for this run (repeatable or comma-separated)."),
        format: CheckFormat = format_option(ci_report.FORMATS, help="Report format."),
        reports: Optional[List[str]] = typer.Option(None, "--report", metavar="FORMAT=FILE", help="Also write a report to a file, FORMAT=FILE (repeatable), e.g. sarif=archcalc.sarif, junit=archcalc.xml."),
        baseline: Optional[str] = typer.Option(None, "--baseline", metavar="FILE", help="Compare each spec's totals with this baseline file."),
        write_baseline: Optional[str] = typer.Option(None, "--write-baseline", metavar="FILE", help="Write the checked specs' totals and layers to this baseline file."),
        max_growth: Optional[List[str]] = typer.Option(None, "--max-growth", metavar="METRIC=PERCENT", help="Allowed growth over the baseline, METRIC=PERCENT (macs=2%, all=1%): only the metrics named are limited; without it every metric allows 0%."),
        input: Optional[str] = InputOpt,
        set: Optional[List[str]] = SetOpt,
        batch: str = BatchOpt,
        dtype: DType = DTypeOpt,
        optimizer: Optim = OptimOpt,
        exclude: Optional[List[str]] = typer.Option(None, "--exclude", metavar="GLOB", help="Skip files found in folders or by globs whose path (or name) matches GLOB (repeatable), e.g. 'specs/old/*'."),
        jobs: int = typer.Option(0, "--jobs", "-j", metavar="N", help="Worker processes for many files (0: one per CPU, up to 8, from 8 files; 1: none). Results and report are the same either way."),
    ):
        """Check specs in CI: budgets, lints and baselines; exit 0 all pass, 1 a check failed, 2 a spec could not be read."""
        from ..ci import checks

        extra = parse_reports(reports)
        _check_targets(extra, write_baseline)
        notices: list = []
        try:
            _notes(specs)
            if max_growth and not baseline:
                raise UsageError("--max-growth needs --baseline FILE")
            opts = _options(set, input, batch, dtype, optimizer, budget, ignore, strict, baseline, max_growth,
                            write_baseline, jobs, notices, specs, exclude)
            run = checks.run(specs, opts)
        except (UsageError, SpecError) as err:  # reports are written on every exit code, this one (2) too
            _write_reports(checks.Run([], checks.Options(), errors=[str(err)]), extra)
            raise
        run.notices[:0] = notices
        _emit(run, format, extra, write_baseline)
        _exit(run)

    @app.command()
    def diff(
        old: str = typer.Argument(..., metavar="OLD", help="The old spec: a path, a zoo name or git:REV:PATH (PATH#MEMBER for a family member)."),
        new: str = typer.Argument(..., metavar="NEW", help="The new spec: a path, a zoo name or git:REV:PATH (PATH#MEMBER for a family member)."),
        format: DiffFormat = typer.Option(DiffFormat.text, "--format", "-f", metavar="text|json", help="Output format."),
        input: Optional[str] = InputOpt,
        set: Optional[List[str]] = SetOpt,
        batch: str = BatchOpt,
    ):
        """What changed between two specs, layer by layer (shape, params, MACs) and in the totals."""
        import json

        from ..ci import diff as spec_diff
        from .common import _val, parse_batch, parse_input, parse_sets

        values, shape, b = parse_sets(set), parse_input(input), parse_batch(batch)
        old_label, old_report = spec_diff.load_side(old, values, shape, b)
        new_label, new_report = spec_diff.load_side(new, values, shape, b)
        result = spec_diff.diff(old_report, new_report)
        if _val(format) == "json":
            sys.stdout.write(json.dumps(spec_diff.as_dict(old_label, new_label, result), indent=2) + "\n")
        else:
            sys.stdout.write(spec_diff.text(old_label, new_label, result))
