"""Checked by mypy in tests/api/test_api_types.py (never run): a user's code against archcalc's
public API, as a type checker sees it. A wrong annotation in archcalc/api makes this fail."""

from __future__ import annotations

from typing import Optional, Tuple

import archcalc


def counts(name: str) -> Tuple[int, int]:
    report: archcalc.Report = archcalc.summary(name, input=(3, 224, 224), set={"H": 224}, batch=8, dtype="fp16")
    totals: archcalc.Totals = report.totals
    rows: Tuple[archcalc.Row, ...] = report.rows
    first: archcalc.Row = rows[0]
    rf: Optional[archcalc.ReceptiveField] = first.rf
    text: str = report.to_json() + report.to_markdown() + report.to_csv() + str(report) + report._repr_html_()
    assert rf is None or rf.h.size is not None
    assert text and first.name
    return int(totals.params), int(totals.macs)


def compared() -> float:
    c: archcalc.Comparison = archcalc.compare("vgg16", "vgg19")
    ratio = c.ratios("params")[1]
    return float(ratio)


def checked() -> bool:
    result: archcalc.CheckResult = archcalc.check("resnet18", budget={"params": "12M"})
    return result.ok and result.exit_code == 0


def verified() -> bool:
    result: archcalc.VerifyResult = archcalc.verify("vgg16", device="meta")
    return result.ok
