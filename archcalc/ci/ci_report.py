r"""Renderers for ``archcalc check``: text, JSON, JUnit XML, GitHub workflow commands, SARIF 2.1.0.

Each takes a :class:`archcalc.ci.checks.Run` and returns a string; nothing here prints or reads
files. Spec text (names, titles, file names) is untrusted, and a report is read by a CI runner
(docs/security.md): every format shows control, bidi and zero-width characters and undecodable
file-name bytes as backslash escapes (:func:`archcalc.output.textout.escape`; JSON and SARIF by JSON's
own ``\uXXXX``); GitHub commands escape ``%``, CR, LF (and ``:`` ``,`` in properties) as the
Actions runner expects; and :func:`render` passes the whole report through
:func:`archcalc.output.textout.neutral`, so no line of any format starts with ``::`` or holds ``##[``
except ``--format github``'s own annotations. A file name that is not UTF-8 never stops a report.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING
from urllib.parse import quote

from ..version import __version__
from ..output.textout import Commands, escape, neutral

if TYPE_CHECKING:  # the renderers' argument types; checks itself is imported where a report is made, so the
    from .checks import Run, SpecResult  # CLI can build --format's choices from FORMATS without it

CHECK_SCHEMA = 1  # version of the JSON document (docs/ci.md)
SARIF_SCHEMA_URI = "https://docs.oasis-open.org/sarif/sarif/v2.1.0/errata01/os/schemas/sarif-schema-2.1.0.json"

def clean(text, limit: int = 200) -> str:
    """User text for one line of a report: control, bidi and zero-width characters and line
    breaks escaped (no escape sequence reaches the terminal, no workflow command the runner),
    at most ``limit`` characters."""
    text = escape(text)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _jsonable(value):
    from ..output.report import jsonable

    return jsonable(value)


def _msg(r: SpecResult, f) -> str:
    """A finding's message, naming the family member it is about (and, for a layer inside a block,
    the layer's own line there: the finding itself is at the block's call)."""
    return f"{r.variant}: {_located(f)}" if r.variant else _located(f)


def _located(f) -> str:
    """The message, with the layer's own line in its block where the finding is at the block's call
    (a baseline message names each grown layer's lines itself)."""
    if f.block_line and f.check != "baseline":
        return f"{f.message} (in a block: layer at line {f.block_line})"
    return f.message


def _live(result: SpecResult) -> list:
    """Findings that count (not silenced)."""
    return [f for f in result.findings if f.suppressed is None]


def summary_line(run: Run) -> str:
    n = len(run.results)
    parts = [f"{run.count('pass')} passed"]
    if run.count("warn"):
        parts.append(f"{run.count('warn')} with warnings")
    parts.append(f"{run.count('fail')} failed")
    parts.append(f"{run.count('error')} unreadable")
    ignored = sum(1 for r in run.results for f in r.findings if f.suppressed is not None)
    tail = f"; {ignored} lint finding{'s' if ignored != 1 else ''} ignored" if ignored else ""
    return f"{n} spec{'s' if n != 1 else ''}: " + ", ".join(parts) + tail


# --------------------------------------------------------------------------- text


def _headline(r: SpecResult) -> str:
    from ..output.report import exact

    head = f"{r.status.upper():5s} {clean(r.key)}"
    if r.status == "error":
        return head
    t = r.totals
    name = f"  {clean(r.name, 60)}:" if r.name else ""
    return f"{head}{name} {exact(t.get('params'))} params, {exact(t.get('macs'))} MACs"


def text(run: Run) -> str:
    lines = []
    for r in run.results:
        lines.append(_headline(r))
        for case in r.cases:
            if case.name.startswith("budget ") and case.status == "pass":
                lines.append(f"      ok   {clean(case.note, 1000)}")
            for f in case.findings:
                if f.suppressed is not None:
                    continue
                if f.check == "load":  # the loader's message names file and line itself
                    lines.append(f"      error: {clean(f.message, 1000)}")
                    continue
                where = clean(f.file) + (f":{f.line}" if f.line else "")
                lines.append(f"      {where}: {f.level} [{f.case}]: {clean(_located(f), 1000)}")
        if r.deltas:
            moved = [f"{k} {_delta(old, new)}" for k, (old, new) in r.deltas.items() if old != new]
            lines.append("      baseline: " + (", ".join(moved) if moved else "no change"))
        skipped = [c for c in r.cases if c.name == "baseline" and c.status == "skip"]
        for c in skipped:
            lines.append(f"      baseline: {clean(c.note, 1000)}")
        quiet = sorted({f.key for f in r.findings if f.suppressed is not None})
        if quiet:
            lines.append(f"      ignored: {', '.join(quiet)}")
    lines += [f"note: {clean(n, 1000)}" for n in run.notices]
    lines += [f"error: {clean(e, 1000)}" for e in run.errors]
    lines.append(summary_line(run))
    return "\n".join(lines) + "\n"


def _delta(old: int, new: int) -> str:
    from ..output.report import exact

    d = new - old
    if d == 0:
        return "unchanged"
    pct = f", {'+' if d > 0 else ''}{d * 100 / old:.2f}%" if old else ""
    return f"{exact(old)} -> {exact(new)} ({'+' if d > 0 else ''}{d:,}{pct})"


# --------------------------------------------------------------------------- JSON


def _finding_dict(f) -> dict:
    return {"check": f.check, "key": f.key, "level": f.level, "message": f.message, "file": f.file,
            "line": f.line, "block_line": f.block_line, "layer": f.layer, "suppressed": f.suppressed,
            "data": {k: _jsonable(v) for k, v in f.data.items()}}


def as_dict(run: Run) -> dict:
    from .checks import LINTS, METRICS, pct_text

    o = run.options
    specs = []
    for r in run.results:
        specs.append({
            "key": r.key,
            "file": r.file,
            "variant": r.variant,
            "ref": r.ref,
            "name": r.name or None,
            "title": r.title or None,
            "status": r.status,
            "totals": {k: _jsonable(v) for k, v in r.totals.items()},
            "checks": [{"name": c.name, "status": c.status, "note": c.note,
                        "findings": [_finding_dict(f) for f in c.findings]} for c in r.cases],
            "baseline": {k: {"old": old, "new": new, "change": new - old} for k, (old, new) in r.deltas.items()},
        })
    return {
        "archcalc": __version__,
        "schema": CHECK_SCHEMA,
        "command": "check",
        "options": {"strict": o.strict, "dtype": o.dtype, "batch": _jsonable(o.batch), "optimizer": o.optimizer,
                    "ignore": sorted(o.ignore), "budget": {k: v for k, (v, _) in o.limits.items()},
                    "max_growth": ({k: pct_text(v) for k, v in o.growth.items()} or {k: "0%" for k in METRICS})
                    if o.baseline is not None else None},
        "summary": {"specs": len(run.results), "pass": run.count("pass"), "warn": run.count("warn"),
                    "fail": run.count("fail"), "error": run.count("error"), "exit_code": run.exit_code},
        "specs": specs,
        "notices": list(run.notices),
        "errors": list(run.errors),
        "lints": {k: {"title": v.title, "help": v.help} for k, v in LINTS.items()},
        "metrics": {k: v[0] for k, v in METRICS.items()},
    }


def as_json(run: Run) -> str:
    return json.dumps(as_dict(run), indent=2) + "\n"


# --------------------------------------------------------------------------- JUnit XML

def _x(text) -> str:
    """Text for XML: every character XML 1.0 cannot hold, and every control, bidi and zero-width
    character, as a backslash escape (ElementTree escapes & < > and quotes itself); each line made
    safe on its own, so none starts a workflow command."""
    return escape(text, newlines=False)


def junit(run: Run) -> str:
    """One <testsuite> per spec, one <testcase> per check: load, each budget, each lint, each
    baseline figure. Failures carry file:line in their text; ignored lints are <skipped>."""
    import xml.etree.ElementTree as ET

    root = ET.Element("testsuites", name="archcalc check")
    totals = {"tests": 0, "failures": 0, "errors": 0}
    for r in run.results:
        suite = ET.SubElement(root, "testsuite", name=_x(r.key))
        counts = {"tests": 0, "failures": 0, "errors": 0, "skipped": 0}
        classname = _x(r.key.replace(".", "_"))
        for case in r.cases:
            tc = ET.SubElement(suite, "testcase", name=_x(case.name), classname=classname)
            counts["tests"] += 1
            live = [f for f in case.findings if f.suppressed is None]
            body = "\n".join(f"{escape(f.file)}:{f.line or 1}: {escape(_located(f))}" for f in live)
            if case.status == "error":
                counts["errors"] += 1
                ET.SubElement(tc, "error", message=_x(live[0].message if live else case.note), type=case.name).text = _x(body)
            elif case.status == "fail":
                counts["failures"] += 1
                ET.SubElement(tc, "failure", message=_x(live[0].message if live else case.note), type=case.name).text = _x(body)
            elif case.status == "skip":
                counts["skipped"] += 1
                ET.SubElement(tc, "skipped", message=_x(case.note))
            elif case.status == "warn":
                ET.SubElement(tc, "system-out").text = _x("\n".join(f"warning: {line}" for line in body.splitlines()))
            elif case.note:
                ET.SubElement(tc, "system-out").text = _x(case.note)
        for k, v in counts.items():
            suite.set(k, str(v))
        suite.set("file", _x(r.file))
        for k in totals:
            totals[k] += counts[k]
    if run.errors:  # the run stopped before any spec was checked: one suite saying why
        suite = ET.SubElement(root, "testsuite", name="archcalc", tests="1", failures="0", errors="1", skipped="0")
        tc = ET.SubElement(suite, "testcase", name="arguments", classname="archcalc")
        ET.SubElement(tc, "error", message=_x(run.errors[0]), type="usage").text = _x("\n".join(run.errors))
        totals["tests"] += 1
        totals["errors"] += 1
    for k, v in totals.items():
        root.set(k, str(v))
    ET.indent(root)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"


# --------------------------------------------------------------------------- GitHub Actions


def _gh_data(text) -> str:
    """A command's data: ``%``, CR and LF as the runner unescapes them, then every other unsafe
    character as a backslash escape (the runner would pass ESC or U+202E to the annotation)."""
    return escape(str(text).replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A"), markers=False)


def _gh_prop(text) -> str:
    """A command's property: as data, and ``:`` ``,`` escaped (they end a property)."""
    return _gh_data(text).replace(":", "%3A").replace(",", "%2C")


def github(run: Run) -> str:
    """Workflow commands: ``::error file=F,line=L,title=T::message`` per live finding (warnings
    as ``::warning``), then the plain summary line."""
    lines = []
    for r in run.results:
        for f in _live(r):
            cmd = "error" if f.level == "error" else "warning"
            props = f"file={_gh_prop(f.file)},line={f.line or 1},title={_gh_prop('archcalc ' + f.case)}"
            lines.append(f"::{cmd} {props}::{_gh_data(_msg(r, f))}")
    lines += [f"::notice title=archcalc check::{_gh_data(n)}" for n in run.notices]
    lines += [f"::error title=archcalc check::{_gh_data(e)}" for e in run.errors]
    lines.append("archcalc check: " + summary_line(run))
    return Commands("\n".join(lines) + "\n")


# --------------------------------------------------------------------------- SARIF 2.1.0

RULES = {
    "load": ("the spec can be read and analysed", "The spec file is read, validated and analysed; an error here "
             "is a spec that cannot be checked (exit code 2).", "error"),
    "budget": ("a total exceeds its budget", "A total (params, MACs, activations, memory, training memory) is "
               "above a limit from the spec's budget: mapping or --budget.", "error"),
    "baseline": ("a total grew beyond the baseline", "A total grew by more than --max-growth allows over the "
                 "baseline file given with --baseline.", "error"),
}


def sarif(run: Run) -> dict:
    from .checks import LINTS

    rules = [{"id": k, "name": k, "shortDescription": {"text": t}, "fullDescription": {"text": h},
              "defaultConfiguration": {"level": lvl}} for k, (t, h, lvl) in RULES.items()]
    rules += [{"id": lint.id, "name": lint.id, "shortDescription": {"text": lint.title},
               "fullDescription": {"text": lint.help},
               "defaultConfiguration": {"level": "error" if run.options.strict else "warning"}} for lint in LINTS.values()]
    index = {rule["id"]: i for i, rule in enumerate(rules)}
    notes = [{"level": "note", "message": {"text": escape(n, newlines=False)}} for n in run.notices] + \
            [{"level": "error", "message": {"text": escape(e, newlines=False)}} for e in run.errors]
    results = []
    for r in run.results:
        for f in r.findings:
            rule = f.key if f.check == "lint" else f.check
            # a file name that is not UTF-8 (os.fsdecode's surrogates) is its bytes, %-encoded
            uri = quote(f.file, safe="/", errors="surrogateescape")
            loc = {"physicalLocation": {"artifactLocation": {"uri": uri, "uriBaseId": "%SRCROOT%"}}}
            if f.line:
                loc["physicalLocation"]["region"] = {"startLine": f.line}
            if f.layer:
                loc["logicalLocations"] = [{"name": f.layer, "kind": "member"}]
            res = {"ruleId": rule, "ruleIndex": index[rule], "level": f.level, "message": {"text": escape(_msg(r, f), newlines=False)},
                   "locations": [loc]}
            if f.block_line:  # the layer's own line inside the block; the result is at the block's call
                res["relatedLocations"] = [{"id": 1, "message": {"text": f"{escape(f.layer or 'the layer', newlines=False)} in its block"},
                                            "physicalLocation": {"artifactLocation": {"uri": uri, "uriBaseId": "%SRCROOT%"},
                                                                 "region": {"startLine": f.block_line}}}]
            if f.check in ("budget", "baseline"):
                res["properties"] = {"key": f.key}
            if f.suppressed is not None:
                kind = "external" if f.suppressed == "ignored by --ignore" else "inSource"
                res["suppressions"] = [{"kind": kind, "justification": escape(f.suppressed, newlines=False)}]
            results.append(res)
    return {
        "$schema": SARIF_SCHEMA_URI,
        "version": "2.1.0",
        "runs": [{
            "tool": {"driver": {"name": "archcalc", "version": __version__, "rules": rules}},
            "invocations": [{"executionSuccessful": run.exit_code != 2, "exitCode": run.exit_code,
                             **({"toolExecutionNotifications": notes} if notes else {})}],
            "results": results,
        }],
    }


def render(run: Run, fmt: str) -> str:
    """The report in format ``fmt`` (a key of :data:`FORMATS`), every line harmless
    (:func:`archcalc.output.textout.neutral`): the same text goes to stdout and to ``--report``
    files. ``github``'s is a :class:`archcalc.output.textout.Commands`, whose annotation lines stay
    commands."""
    return FORMATS[getattr(fmt, "value", fmt)](run)


# ``archcalc check``'s renderer table (the shape of archcalc.output.views' tables): format name ->
# the whole report as text. ``--format`` and ``--report FORMAT=FILE`` offer exactly these keys.
FORMATS = {
    "text": lambda run: neutral(text(run)),
    "json": lambda run: neutral(as_json(run)),
    "junit": lambda run: neutral(junit(run)),
    "github": lambda run: Commands(neutral(github(run), commands=True)),
    "sarif": lambda run: neutral(json.dumps(sarif(run), indent=2) + "\n"),
}


def failure_text(run) -> str:
    """The one line a failed ``archcalc check`` ends with (the CLI's error and the API's CheckResult):
    per failed spec, what failed (budgets, lints under --strict, growth beyond the baseline), three at most."""
    parts = []
    for r in run.results:
        if r.status != "fail":
            continue
        bad = [c.name for c in r.cases if c.status == "fail"]
        budgets = [n.split(" ", 1)[1] for n in bad if n.startswith("budget ")]
        lints = [n.split(" ", 1)[1] for n in bad if n.startswith("lint ")]
        grown = [n.split(" ", 1)[1] for n in bad if n.startswith("baseline ")]
        what = ([f"over budget on {', '.join(budgets)}"] if budgets else []) + \
               ([f"lints {', '.join(lints)} (--strict)"] if lints else []) + \
               ([f"grew beyond the baseline on {', '.join(grown)}"] if grown else [])
        parts.append(f"{clean(r.name or r.key, 80)}: {'; '.join(what)}")
    if len(parts) > 3:
        parts = parts[:3] + [f"and {len(parts) - 3} more"]
    return "; ".join(parts)
