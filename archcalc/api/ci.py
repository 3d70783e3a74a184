"""``archcalc.check`` and ``archcalc.verify``: the CI check and the torch verifier as functions
returning :class:`CheckResult` and :class:`VerifyResult`. A failed check or verification is a
result (``.ok`` False), not an exception; ``raise_for_status()`` raises what the CLI exits with.
A spec that cannot be read raises at once in ``verify``, and is an ``error`` result in ``check``
(as on the command line, where it is exit code 2 among the other specs' results)."""

from __future__ import annotations

import io
import json
from typing import TYPE_CHECKING, Any, Dict, Iterable, List, Mapping, Optional, Sequence, Union

from . import _options as opt
from ._source import loader

if TYPE_CHECKING:
    from ..ci.checks import Run, SpecResult

Budget = Mapping[str, Union[int, str]]


class CheckResult:
    """What ``archcalc check`` found: one result per spec (budgets, lints, baseline cases)."""

    def __init__(self, run: "Run") -> None:
        self._run = run

    @property
    def run(self) -> "Run":
        """The underlying :class:`archcalc.ci.checks.Run`."""
        return self._run

    @property
    def results(self) -> List["SpecResult"]:
        return list(self._run.results)

    @property
    def exit_code(self) -> int:
        """The CLI's exit code: 0 every check passed, 1 a check failed, 2 a spec could not be read."""
        return int(self._run.exit_code)

    @property
    def ok(self) -> bool:
        return self.exit_code == 0

    def render(self, format: str = "text") -> str:
        """The report in one of ``archcalc check``'s formats: text, json, junit, github, sarif."""
        from ..ci.ci_report import FORMATS, render
        from ..errors import UsageError, expected_one_of

        name = getattr(format, "value", format)
        if name not in FORMATS:
            raise UsageError(f"format={name!r}: not a check format", hint=expected_one_of(str(name), FORMATS, "a format"))
        return str(render(self._run, name))

    def to_json(self) -> str:
        """``archcalc check -f json``."""
        return self.render("json")

    def to_dict(self) -> Dict[str, Any]:
        return json.loads(self.to_json())

    def raise_for_status(self) -> None:
        """Raise what ``archcalc check`` exits with: SpecError (exit 2) or CheckFailed (exit 1)."""
        from ..errors import CheckFailed, SpecError
        from ..ci.ci_report import clean

        run = self._run
        code = run.exit_code
        if code == 2:
            bad = [r for r in run.results if r.status == "error"]
            if len(run.results) == 1:
                raise SpecError(bad[0].findings[0].message)
            names = ", ".join(clean(r.key, 80) for r in bad[:3]) + (f" and {len(bad) - 3} more" if len(bad) > 3 else "")
            raise SpecError(f"{len(bad)} of {len(run.results)} specs could not be checked: {names}")
        if code == 1:
            raise CheckFailed(_failure_text(run))

    def __str__(self) -> str:
        return self.render("text")

    def __repr__(self) -> str:
        return f"<archcalc.CheckResult: {len(self._run.results)} spec(s), exit code {self.exit_code}>"

    def _repr_markdown_(self) -> str:
        return "```\n" + self.render("text").replace("```", "'''") + "```\n"


def _failure_text(run: "Run") -> str:
    """The one line ``archcalc check`` fails with (the same words as the CLI's)."""
    from ..ci.ci_report import failure_text

    return failure_text(run)


def _budgets(budget: Optional[Budget]) -> dict:
    from ..errors import UsageError, expected_one_of, short
    from ..spec.load import BUDGET_KEYS, parse_amount

    limits = {}
    for key, amount in (budget or {}).items():
        if key not in BUDGET_KEYS:
            raise UsageError(f"budget={{{short(key)}: ...}}: not a budget key", hint=expected_one_of(str(key)[:80], BUDGET_KEYS, "a key"))
        if isinstance(amount, int) and not isinstance(amount, bool) and amount >= 0:
            limits[key] = (amount, f"{amount:,}")
            continue
        try:
            limits[key] = (parse_amount(str(amount).strip()), str(amount).strip())
        except ValueError:
            raise UsageError(f"budget={{{short(key)}: {short(amount)}}}: cannot read the amount", hint="e.g. 25M, 4.1G, 16GiB") from None
    return limits


def _ignore(ignore: Union[str, Iterable[str], None]) -> frozenset:
    from ..ci.checks import LINTS
    from ..errors import UsageError, expected_one_of, short

    items = [p.strip() for p in ignore.split(",")] if isinstance(ignore, str) else list(ignore or ())
    for lint_id in items:
        if lint_id not in LINTS:
            raise UsageError(f"ignore={short(lint_id)}: not a lint id", hint=expected_one_of(str(lint_id), LINTS, "a lint id"))
    return frozenset(items)


def check(specs: Union[str, Any, Sequence[Any]], *, budget: Optional[Budget] = None, strict: bool = False,
          ignore: Union[str, Iterable[str], None] = None, baseline: Optional[str] = None,
          max_growth: Optional[Mapping[str, Union[int, float, str]]] = None, input: Any = None,
          set: Optional[Mapping[str, Any]] = None, batch: Union[int, str] = 1, dtype: str = "fp32",
          optimizer: str = "sgd", jobs: int = 1) -> CheckResult:
    """``archcalc check``: budgets, lints and baselines over specs (paths, folders, globs, zoo
    names; or spec YAML text or mappings). Import targets are refused, as on the command line.

    >>> import archcalc
    >>> result = archcalc.check("resnet18", budget={"params": "10M"})
    >>> result.ok, result.exit_code
    (False, 1)
    """
    from ..analysis.engine import DTYPES, OPTIMIZERS
    from ..ci import checks
    from ..errors import UsageError

    items = [specs] if isinstance(specs, (str, dict)) or not isinstance(specs, Sequence) else list(specs)
    if max_growth and not baseline:
        raise UsageError("max_growth= needs baseline=FILE")
    if isinstance(jobs, bool) or not isinstance(jobs, int) or not 0 <= jobs <= 256:
        raise UsageError(f"jobs={jobs!r}: expected 0 (automatic) or a number of processes from 1 to 256")
    growth = [f"{k}={v}" for k, v in (max_growth or {}).items()]
    opts = checks.Options(values=opt.sets(set), input=opt.input_shape(input), batch=opt.batch(batch),
                          dtype=opt.choice("dtype", dtype, list(DTYPES)),
                          optimizer=opt.choice("optimizer", optimizer, list(OPTIMIZERS)), limits=_budgets(budget),
                          ignore=_ignore(ignore), strict=bool(strict),
                          baseline=checks.load_baseline(baseline) if baseline else None,
                          growth=checks.parse_growth(growth), jobs=jobs)
    if opts.baseline is not None:
        checks.check_baseline_options(opts.baseline, opts, str(baseline))
    results: list = []
    refs: list = []

    def flush() -> None:
        if refs:
            results.extend(checks.run(list(refs), opts).results)
            refs.clear()

    for item in items:
        if isinstance(item, dict):
            import yaml

            flush()
            results.append(checks.check_spec("<dict>", None, opts, text=yaml.safe_dump(item, sort_keys=False), file="<dict>"))
        elif isinstance(item, str) and ("\n" in item or item.lstrip().startswith("{")):
            flush()
            results.append(checks.check_spec("<string>", None, opts, text=item, file="<string>"))
        else:
            import os

            if not isinstance(item, (str, os.PathLike)):
                raise UsageError(f"a {type(item).__name__}: check takes spec paths, zoo names, spec text or mappings")
            refs.append(os.fspath(item))
    flush()
    return CheckResult(checks.Run(results, opts))


class VerifyResult:
    """What ``archcalc verify`` found: per layer, the engine's numbers against torch's."""

    def __init__(self, result: Dict[str, Any]) -> None:
        self._result = result

    @property
    def ok(self) -> bool:
        return bool(self._result["ok"])

    @property
    def mismatches(self) -> int:
        return int(self._result["mismatches"])

    def to_dict(self) -> Dict[str, Any]:
        """The result as ``archcalc verify -f json`` writes it (as Python data)."""
        return json.loads(self.to_json())

    def to_json(self) -> str:
        """``archcalc verify -f json``."""
        return json.dumps(self._result, indent=2, default=str) + "\n"

    def raise_for_status(self) -> None:
        """Raise CheckFailed (the CLI's exit 1) on a mismatch."""
        if not self.ok:
            from ..errors import CheckFailed

            raise CheckFailed(f"{self._result['network']}: {self.mismatches} mismatch(es) between the engine and torch")

    def table(self, width: Optional[int] = None, ascii: bool = False) -> str:
        from ..output.render import verify_table
        from ..output.textout import Out

        buf = io.StringIO()
        verify_table(self._result, Out(buf, width=width, color=False, ascii=ascii))
        return buf.getvalue()

    def __str__(self) -> str:
        return self.table()

    def __repr__(self) -> str:
        return f"<archcalc.VerifyResult {self._result['network']!r}: {'ok' if self.ok else f'{self.mismatches} mismatch(es)'}>"


def verify(model: Any, *, device: str = "meta", batch: int = 1, rf: bool = False, rf_at: Optional[Iterable[str]] = None,
           memory: bool = False, max_memory: Optional[str] = None, input: Any = None,
           set: Optional[Mapping[str, Any]] = None, input_size: Any = None) -> VerifyResult:
    """``archcalc verify``: build the spec with torch and compare every layer's shape, params,
    buffers, MACs and values with the engine's (``device``: meta, cpu or cuda; ``rf=True`` also
    measures receptive fields). Needs torch. ``model`` is anything :func:`archcalc.summary` takes."""
    from ..errors import UsageError
    from ..limits import MAX_SIZE
    from ..torchside import preflight

    device = getattr(device, "value", device)
    if device not in ("meta", "cpu", "cuda"):
        raise UsageError(f"device={device!r}: expected one of meta, cpu, cuda")
    size_batch, traced_at = opt.input_size(input_size)
    n = size_batch or batch
    if isinstance(n, bool) or not isinstance(n, int) or not 1 <= n <= MAX_SIZE:
        raise UsageError(f"batch={n!r}: expected an integer from 1 to {MAX_SIZE:,}")
    shape = opt.input_shape(input)
    load, _ = loader(model, opt.sets(set), shape if shape is not None else traced_at, (), None, traced_at)
    net = load({}, ())
    names = [x.strip() for item in (rf_at or []) for x in str(item).split(",") if x.strip()]
    return VerifyResult(preflight.verify(net, device, n, rf, names or None, memory, max_memory))
