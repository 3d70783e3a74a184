"""`archcalc check` over many specs (lints, budgets, baselines, reports) and `archcalc diff`.

Every lint has a small spec in tests/ci_fixtures/ made to trigger it; the numbers in the expected
messages are worked out by hand in each fixture's comment and again here. Report formats are
validated against the schemas CI servers read (tests/ci_schemas/README.md says where each
schema comes from).
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from archcalc.ci import checks
from archcalc.spec import zoo
from archcalc.ci.checks import LINTS, METRICS
from conftest import ROOT

FIX = ROOT / "tests" / "ci_fixtures"
SCHEMAS = ROOT / "tests" / "ci_schemas"


@pytest.fixture
def at_root(monkeypatch):
    monkeypatch.chdir(ROOT)


def lint_messages(path, **opts):
    run = checks.run([str(path)], checks.Options(**opts))
    (result,) = run.results
    return result, [(f.key, f.line, f.message) for f in result.findings if f.check == "lint"]


# --------------------------------------------------------------------------- each lint, exact message


def test_tiling_lint(at_root):
    # (10 + 0 - 3) mod 2 = 1 row (and column) left over; the head's receptive field is then
    # 3 + (4 - 1) x 2 = 9 rows: rows 0-8 of 10, so rf-coverage fires too (the same lost row)
    result, found = lint_messages("tests/ci_fixtures/lint_tiling.yaml")
    assert found == [
        ("tiling", 5, "conv1 (conv): 3x3/2 window does not tile its 10x10 input (padding 0+0, 0+0): the last 1 row and 1 column of real input are never seen"),
        ("rf-coverage", 8, "fc (linear): the output's receptive field reaches input rows 0-8 and columns 0-8 of the 10x10 input: the last 1 row and 1 column never reach the output"),
    ]
    assert result.status == "warn"


def test_alexnet_paper_at_224_triggers_tiling_and_at_227_does_not(at_root):
    # conv1 11x11/4: (224 - 11) mod 4 = 213 mod 4 = 1; at 227: 216 mod 4 = 0 (the paper's
    # Figure 2 size 55 = 216 / 4 + 1). Then 54 -> pool1 3x3/2: (54 - 3) mod 2 = 1, and so on.
    run = checks.run(["alexnet-paper"], checks.Options(input=(3, 224, 224)))
    tiling = [f for f in run.results[0].findings if f.key == "tiling"]
    assert [f.layer for f in tiling] == ["conv1", "pool1", "pool2", "pool5"]
    assert tiling[0].message == ("conv1 (conv): 11x11/4 window does not tile its 224x224 input (padding 0+0, 0+0): "
                                 "the last 1 row and 1 column of real input are never seen")
    assert tiling[0].line == 17 and tiling[0].file == "specs/alexnet-paper.yaml"
    run = checks.run(["alexnet-paper"], checks.Options())
    assert run.results[0].findings == [] and run.results[0].status == "pass"


def test_alignment_lint(at_root):
    # 2x2/2: first window rows 0-1, centre 0.5; 1x1/2: row 0, centre 0
    _, found = lint_messages("tests/ci_fixtures/lint_alignment.yaml")
    assert found == [("alignment", 6, "join (add): branches are not centre-aligned: 'join.b2.skip' is centred "
                                      "1/2 pixel before 'join.b1.down' on rows and columns, at every position; change "
                                      "the padding or stride of join.b1.down (conv 2x2/2, padding 0 before: centred "
                                      "1/2 pixel after its position)")]


def test_rf_coverage_lint(at_root):
    # 1x1/4 conv: r 1, stride 4; global pool over 8x8: r = 1 + 7 x 4 = 29 < 32 -> rows 29, 30, 31
    _, found = lint_messages("tests/ci_fixtures/lint_rf_coverage.yaml")
    assert found == [("rf-coverage", 9, "fc (linear): the output's receptive field reaches input rows 0-28 and columns 0-28 of the 32x32 input: the last 3 rows and 3 columns never reach the output")]


def test_rf_excess_lint(at_root):
    # 65, then 65 + 64 = 129, then the 8x8 global pool: 129 + 7 = 136 = 17.0 x 8 > 16 x 8
    _, found = lint_messages("tests/ci_fixtures/lint_rf_excess.yaml")
    assert found == [("rf-excess", 10, "fc (linear): the output's receptive field is 136x136, 17.0 times the 8x8 input (more than 16x)")]


def test_collapse_lint(at_root):
    # 8 -> 4 -> 2 -> 1 ((n + 2 - 3) // 2 + 1); conv4 and conv5 then run 3x3 windows on 1x1
    _, found = lint_messages("tests/ci_fixtures/lint_collapse.yaml")
    assert found == [("collapse", 8, "conv3 (conv): the map is 1x1 from here (8x1x1), yet conv4 (conv, line 9) and 1 more layer still use 3x3 windows that see only padding around the centre")]


def test_unused_lint(at_root):
    # dead: 8 x 8 x 9 + 8 = 584 params; 8 outputs x 8 x 8 positions x 72 = 36,864 MACs
    _, found = lint_messages("tests/ci_fixtures/lint_unused.yaml")
    assert found == [("unused", 6, "dead (conv): its output is never used (no later layer reads it and it is not the network's output); its 584 params and 36,864 MACs still count")]


def test_budget_units_lint(at_root):
    # linear 1000 -> 1000: 1,000,000 + 1,000 = 1,001,000 params = 500,500 x 2; 2M is the nearest
    result, found = lint_messages("tests/ci_fixtures/lint_budget_units.yaml")
    assert found == [("budget-units", 7, "budget params: 2 has no unit and is 500,500x below the actual 1,001,000; did you mean 2M?")]
    budget = [f for f in result.findings if f.check == "budget"]
    assert [(f.key, f.line, f.message) for f in budget] == [("params", 7, "params 1,001,000 > 2 (limit)")]
    assert result.status == "fail"  # the budget itself fails; macs 1,000,000 <= 2M passes


def test_unused_ignore_lint(at_root):
    _, found = lint_messages("tests/ci_fixtures/lint_unused_ignore.yaml")
    assert found == [("unused-ignore", 11, "lint.ignore: 'tiling' silences nothing in this spec")]


def test_layer_lint_from_a_layer_types_own_warning(tmp_path):
    spec = tmp_path / "up.yaml"
    spec.write_text("input: [3, 4, 4]\nlayers:\n  - {adaptive_avgpool: {size: 7}, name: pool}\n")
    _, found = lint_messages(spec)
    assert [(k, line) for k, line, _ in found] == [("layer", 3)]
    assert found[0][2].startswith("pool (adaptive_avgpool): adaptive_avgpool to 7x7 is larger than its 4x4 input")


def test_every_lint_has_a_fixture_and_is_documented():
    fixtures = {p.stem[len("lint_"):].replace("_", "-") for p in FIX.glob("lint_*.yaml")}
    assert fixtures == set(LINTS) - {"layer"}  # 'layer' is tested above with a spec written inline
    doc = (ROOT / "docs" / "ci.md").read_text()
    for lint_id in LINTS:
        assert f"`{lint_id}`" in doc, lint_id


# --------------------------------------------------------------------------- silencing, strict


def test_spec_ignore_with_reason_silences_and_reports_the_reason(tmp_path, cli, monkeypatch):
    text = (FIX / "lint_tiling.yaml").read_text() + "lint:\n  ignore:\n    tiling: the 10x10 crop is on purpose\n    rf-coverage: same\n"
    (tmp_path / "t.yaml").write_text(text)
    monkeypatch.chdir(tmp_path)
    code, out, err = cli("check", "t.yaml", "--strict", "--format", "json")
    assert code == 0, err
    doc = json.loads(out)
    (spec,) = doc["specs"]
    tiling = next(c for c in spec["checks"] if c["name"] == "lint tiling")
    assert tiling["status"] == "skip" and tiling["note"] == "ignored by the spec: the 10x10 crop is on purpose"
    assert tiling["findings"][0]["suppressed"] == "ignored by the spec: the 10x10 crop is on purpose"


def test_run_ignore_and_strict(cli, at_root):
    code, out, err = cli("check", "tests/ci_fixtures/lint_unused.yaml")
    assert code == 0 and "WARN  tests/ci_fixtures/lint_unused.yaml" in out
    code, out, err = cli("check", "tests/ci_fixtures/lint_unused.yaml", "--strict")
    assert code == 1
    assert "tests/ci_fixtures/lint_unused.yaml:6: error [lint unused]: dead (conv)" in out
    assert err == "archcalc: error: lint-unused: lints unused (--strict)\n"
    code, out, err = cli("check", "tests/ci_fixtures/lint_unused.yaml", "--strict", "--ignore", "unused")
    assert code == 0 and "ignored: unused" in out


@pytest.mark.parametrize("lint,message", [
    ("lint: [tiling]", "x.yaml:3: lint is a mapping such as {ignore: [tiling]} or {ignore: {tiling: \"why\"}}, got a list of 1 item"),
    ("lint: {skip: [tiling]}", "x.yaml:3: lint: unknown lint key 'skip'; expected one of: ignore"),
    ("lint:\n  ignore: [tilling]", "x.yaml:4: lint.ignore: unknown lint 'tilling'; did you mean 'tiling'?"),
    ("lint:\n  ignore:\n    tiling: 5", "x.yaml:5: lint.ignore: the reason for ignoring 'tiling' is text, got 5"),
    ("lint: {ignore: tiling}", "x.yaml:3: lint.ignore: lint.ignore is a list of lint ids or a mapping of lint id to reason, got 'tiling'"),
])
def test_bad_lint_mapping_is_a_spec_error(tmp_path, cli, monkeypatch, lint, message):
    (tmp_path / "x.yaml").write_text(f"input: [3, 8, 8]\nlayers: [relu]\n{lint}\n")
    monkeypatch.chdir(tmp_path)
    code, out, err = cli("check", "x.yaml")
    assert (code, out) == (2, "")
    assert err == f"archcalc: error: {message}\n"


def test_unknown_ignore_and_growth_options_are_usage_errors(cli, at_root):
    assert cli("check", "vgg16", "--ignore", "tilling")[2] == "archcalc: error: --ignore 'tilling': not a lint id; did you mean 'tiling'?\n"
    assert cli("check", "vgg16", "--max-growth", "macs=2%")[2] == "archcalc: error: --max-growth needs --baseline FILE\n"
    with pytest.raises(Exception, match="expected METRIC=PERCENT"):
        checks.parse_growth(["flops=2%"])
    assert checks.parse_growth(["macs=2%,params=0.5"]) == {"macs": 2, "params": checks.Fraction(1, 2)}


# --------------------------------------------------------------------------- the zoo


def test_the_zoo_passes_strict_or_declares_each_exception_with_a_reason():
    """Every spec (and family member) in specs/ passes --strict; every exception has a reason and
    still silences something (the unused-ignore lint would fire otherwise). Not a fixed count:
    specs are being added."""
    run = checks.run([str(zoo.specs_dir())], checks.Options(strict=True))
    files = sorted(zoo.specs_dir().glob("*.yaml"))
    assert len({r.file for r in run.results}) == len(files)
    bad = [(r.key, [f.message for f in r.findings if f.suppressed is None]) for r in run.results if r.status != "pass"]
    assert bad == []
    for r in run.results:
        for lint_id, (reason, line) in r.ignored.items():
            assert len(reason) > 20, f"{r.key}:{line}: lint.ignore {lint_id} needs a reason"
    declared = {Path(r.file).name for r in run.results if r.ignored}
    assert {"squeezenet1_0.yaml", "xception.yaml", "resnet110.yaml"} <= declared


def test_zoo_check_in_ci_script():
    lines = (ROOT / ".ci" / "run").read_text().strip().splitlines()
    assert any("archcalc check specs/ --strict" in line for line in lines[:-1])


# --------------------------------------------------------------------------- many specs, exit codes


def test_directories_globs_zoo_names_and_unreadable_specs(tmp_path, cli, monkeypatch):
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "one.yaml").write_text("input: [3, 8, 8]\nlayers: [relu]\n")
    (tmp_path / "a" / "two.yml").write_text("input: [3, 8, 8]\nlayers:\n  - {conv: {out: 4, kernel: 3, padding: 1}}\n")
    (tmp_path / "a" / ".hidden").mkdir()
    (tmp_path / "a" / ".hidden" / "skip.yaml").write_text("not: a spec\n")
    (tmp_path / "bad.yaml").write_text("input: [3, 8, 8]\nlayers:\n  - {conv: {out: 4, kernal: 3}}\n")
    monkeypatch.chdir(tmp_path)
    code, out, err = cli("check", "a", "a/*.yaml", "resnet18", "bad.yaml", "missing.yaml")
    lines = out.splitlines()
    assert lines[0] == "PASS  a/one.yaml  one: 0 params, 0 MACs"
    # conv 3->4, 3x3: 4 x 27 + 4 = 112 params; 4 x 8 x 8 x 27 = 6,912 MACs
    assert lines[1] == "PASS  a/two.yml  two: 112 params, 6,912 MACs"
    assert lines[2].startswith("PASS  ") and lines[2].endswith("resnet18: 11,689,512 params, 1,814,073,344 MACs")
    assert lines[3] == "ERROR bad.yaml"
    assert lines[4] == "      error: bad.yaml:3: layers[0] 'conv1' (conv): unknown key 'kernal'; did you mean 'kernel'?"
    assert lines[5:7] == ["ERROR missing.yaml", "      error: no such file 'missing.yaml'"]
    assert lines[-1] == "5 specs: 3 passed, 0 failed, 2 unreadable"
    assert code == 2
    assert err == "archcalc: error: 2 of 5 specs could not be checked: bad.yaml, missing.yaml\n"


def test_budget_comparison_is_spelled_right(cli, at_root):
    # vgg16: 138,357,544 params (torchvision's table, tests/reference/torchvision.json)
    code, out, err = cli("check", "vgg16", "--budget", "params=100M,macs=16G")
    assert code == 1
    assert "specs/vgg16.yaml: error [budget params]: params 138,357,544 > 100,000,000 (limit)" in out
    assert "      ok   macs 15,470,264,320 <= 16,000,000,000 (limit)" in out
    assert err == "archcalc: error: vgg16: over budget on params\n"


def test_budget_on_a_symbolic_spec_cannot_be_checked(cli, at_root):
    code, out, err = cli("check", "stack3x3", "--budget", "params=1M")
    assert (code, out) == (2, "")
    assert err == "archcalc: error: budget params: the figure is symbolic ('27*C**2'); give the spec's symbols values with --set\n"


def test_metrics_cover_every_budget_key():
    from archcalc.spec.load import BUDGET_KEYS

    assert set(BUDGET_KEYS) <= set(METRICS), "a new budget key needs a METRICS entry (archcalc/ci/checks.py)"


def test_family_members_are_checked_one_by_one(tmp_path, cli, monkeypatch):
    (tmp_path / "fam.yaml").write_text(
        "input: [3, 8, 8]\nsymbols: {w: 4}\nvariants:\n  small: {w: 4}\n  big: {w: 8}\n"
        "layers:\n  - {conv: {out: w, kernel: 3, padding: 1}, name: conv}\n")
    monkeypatch.chdir(tmp_path)
    code, out, _ = cli("check", "fam.yaml")
    # 4 x 27 + 4 = 112 and 8 x 27 + 8 = 224 params
    assert out.splitlines()[:2] == ["PASS  fam.yaml#small  small: 112 params, 6,912 MACs",
                                    "PASS  fam.yaml#big  big: 224 params, 13,824 MACs"]
    assert code == 0


def test_text_output_never_interprets_spec_text(tmp_path, cli, monkeypatch):
    (tmp_path / "m.yaml").write_text('name: "[bold red]x[/bold red]"\ninput: [3, 8, 8]\nlayers: [relu]\n')
    monkeypatch.chdir(tmp_path)
    code, out, _ = cli("check", "m.yaml")
    assert out.splitlines()[0] == "PASS  m.yaml  [bold red]x[/bold red]: 0 params, 0 MACs"
    from archcalc.ci.ci_report import clean

    assert clean("a\x1b[2Jb\nc") == "a\\x1b[2Jb\\x0ac"


# --------------------------------------------------------------------------- report formats


def _reports(*args):
    from archcalc.ci import ci_report

    run = checks.run(list(args), checks.Options(limits={"params": (1_000, "1K")}))
    return run, ci_report


def test_json_report_is_versioned(at_root):
    run, ci_report = _reports("tests/ci_fixtures/lint_tiling.yaml", "vgg16")
    doc = json.loads(ci_report.as_json(run))
    assert doc["schema"] == 1 and doc["command"] == "check"
    assert doc["summary"] == {"specs": 2, "pass": 0, "warn": 1, "fail": 1, "error": 0, "exit_code": 1}
    tiling, vgg = doc["specs"]
    assert vgg["totals"]["params"] == 138_357_544
    budget = next(c for c in vgg["checks"] if c["name"] == "budget params")
    assert budget["findings"][0]["data"] == {"actual": 138_357_544, "limit": 1_000, "what": "params", "from": "--budget"}
    assert [c["name"] for c in tiling["checks"]] == ["load", "budget params"] + [f"lint {k}" for k in LINTS]


def test_junit_validates_against_the_jenkins_schema(at_root):
    import xml.etree.ElementTree as ET

    import xmlschema

    run, ci_report = _reports("tests/ci_fixtures/lint_tiling.yaml", "tests/ci_fixtures/lint_unused_ignore.yaml", "nope.yaml")
    text = ci_report.junit(run)
    xmlschema.XMLSchema(str(SCHEMAS / "junit-10.xsd")).validate(text)
    root = ET.fromstring(text)
    suites = root.findall("testsuite")
    assert [s.get("name") for s in suites] == ["tests/ci_fixtures/lint_tiling.yaml", "tests/ci_fixtures/lint_unused_ignore.yaml", "nope.yaml"]
    # one testcase per check: load, budget params, one per lint; the unreadable spec has 'load' only
    n = 2 + len(LINTS)
    assert [s.get("tests") for s in suites] == [str(n), str(n), "1"]
    assert root.get("tests") == str(2 * n + 1) and root.get("errors") == "1"
    # lint_tiling: conv 3->4 3x3: 112 + linear 4->2: 10 = 122 params, under 1,000: passes
    assert suites[0].find("testcase[@name='budget params']/failure") is None
    out = suites[0].find("testcase[@name='lint tiling']/system-out").text
    assert out.startswith("warning: tests/ci_fixtures/lint_tiling.yaml:5: conv1 (conv): 3x3/2 window")
    skipped = suites[1].find("testcase[@name='lint tiling']/skipped")
    assert skipped.get("message") == "ignored by the spec: kept from an older version of this spec"
    assert suites[2].find("testcase[@name='load']/error").get("message") == "no such file 'nope.yaml'"


def test_github_lines_carry_file_and_line(at_root):
    run, ci_report = _reports("tests/ci_fixtures/lint_collapse.yaml", "tests/ci_fixtures/lint_budget_units.yaml")
    lines = ci_report.github(run).splitlines()
    assert lines == [
        "::error file=tests/ci_fixtures/lint_collapse.yaml,line=1,title=archcalc budget params::params 2,578 > 1,000 (limit)",
        "::warning file=tests/ci_fixtures/lint_collapse.yaml,line=8,title=archcalc lint collapse::conv3 (conv): the map is 1x1 from here (8x1x1), yet conv4 (conv, line 9) and 1 more layer still use 3x3 windows that see only padding around the centre",
        "::error file=tests/ci_fixtures/lint_budget_units.yaml,line=1,title=archcalc budget params::params 1,001,000 > 1,000 (limit)",
        "archcalc check: 2 specs: 0 passed, 2 failed, 0 unreadable",
    ]
    # 2,578 = conv1 (3->8: 224) + conv2..5 (8->8: 4 x 584) + fc (8->2: 18)


def test_github_escaping():
    from archcalc.ci.ci_report import _gh_data, _gh_prop

    assert _gh_prop("a,b:c%\nd") == "a%2Cb%3Ac%25%0Ad"
    assert _gh_data("50%\r\n::x") == "50%25%0D%0A::x"


def test_sarif_validates_against_the_oasis_schema(at_root):
    import jsonschema

    run, ci_report = _reports("tests/ci_fixtures/lint_unused.yaml", "squeezenet1_0", "nope.yaml")
    doc = ci_report.sarif(run)
    schema = json.loads((SCHEMAS / "sarif-schema-2.1.0.json").read_text())
    jsonschema.Draft4Validator(schema).validate(doc)
    json.loads(json.dumps(doc))
    results = doc["runs"][0]["results"]
    by_rule = {}
    for res in results:
        by_rule.setdefault(res["ruleId"], []).append(res)
    unused = by_rule["unused"][0]
    assert unused["level"] == "warning"
    assert unused["locations"][0]["physicalLocation"] == {
        "artifactLocation": {"uri": "tests/ci_fixtures/lint_unused.yaml", "uriBaseId": "%SRCROOT%"}, "region": {"startLine": 6}}
    assert unused["locations"][0]["logicalLocations"] == [{"name": "dead", "kind": "member"}]
    tiling = by_rule["tiling"][0]  # squeezenet1_0 declares it: a suppressed result with the reason
    assert tiling["suppressions"][0]["kind"] == "inSource"
    assert "(227 - 7) / 2 = 110" in tiling["suppressions"][0]["justification"]
    assert by_rule["load"][0]["level"] == "error"
    assert doc["runs"][0]["invocations"][0]["exitCode"] == 2


def test_report_files_beside_the_stdout_format(tmp_path, cli, at_root):
    xml, sarif = tmp_path / "r.xml", tmp_path / "r.sarif"
    code, out, _ = cli("check", "tests/ci_fixtures/lint_unused.yaml", "--format", "github",
                       "--report", f"junit={xml}", "--report", f"sarif={sarif}")
    assert code == 0 and out.startswith("::warning file=tests/ci_fixtures/lint_unused.yaml,line=6,")
    assert xml.read_text().startswith('<?xml version="1.0" encoding="UTF-8"?>\n<testsuites')
    assert json.loads(sarif.read_text())["version"] == "2.1.0"
    assert cli("check", "vgg16", "--report", "pdf=x.pdf")[2] == (
        "archcalc: error: --report 'pdf=x.pdf': expected FORMAT=FILE such as sarif=archcalc.sarif; "
        "expected a format: github, json, junit, sarif, text\n")


# --------------------------------------------------------------------------- baselines


TINY = """name: tiny
input: [3, 32, 32]
layers:
  - {conv: {out: 16, kernel: 3, padding: 1}, name: conv1}
  - relu
  - {conv: {out: 16, kernel: 3, padding: 1}, name: conv2}
  - relu
  - global_avgpool
  - flatten
  - {linear: {out: 10}, name: fc}
"""


def test_baseline_flow(tmp_path, cli, monkeypatch):
    """Write a baseline, widen one layer, and the check fails naming the layer and its growth."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "specs").mkdir()
    spec = tmp_path / "specs" / "tiny.yaml"
    spec.write_text(TINY)
    code, out, err = cli("check", "specs/", "--write-baseline", "base.json")
    assert code == 0 and err == "archcalc: wrote base.json: 1 spec\n"
    base = json.loads((tmp_path / "base.json").read_text())
    # conv1 16 x 27 + 16 = 448; conv2 16 x 144 + 16 = 2,320; fc 16 x 10 + 10 = 170
    assert base["specs"]["specs/tiny.yaml"]["totals"]["params"] == 448 + 2320 + 170 == 2938
    assert base["specs"]["specs/tiny.yaml"]["layers"]["conv2"] == [2320, 16 * 32 * 32 * 144, 16 * 32 * 32]

    spec.write_text(TINY.replace("out: 16, kernel: 3, padding: 1}, name: conv2", "out: 32, kernel: 3, padding: 1}, name: conv2"))
    code, out, err = cli("check", "specs/", "--baseline", "base.json")
    assert code == 1
    # conv2: 32 x 144 + 32 = 4,640 (+2,320); fc: 32 x 10 + 10 = 330 (+160); 2,938 -> 5,418 = +84.41%
    assert ("specs/tiny.yaml:6: error [baseline params]: params grew 2,938 -> 5,418 (+2,480, +84.41%), more than the "
            "allowed +0%: conv2 (line 6) +2,320 params; fc (line 10) +160 params") in out
    # MACs: conv2 32 x 1024 x 144 = 4,718,592 (+2,359,296); fc 320 (+160)
    assert ("specs/tiny.yaml:6: error [baseline macs]: macs grew 2,801,824 -> 5,161,280 (+2,359,456, +84.21%), more "
            "than the allowed +0%: conv2 (line 6) +2,359,296 MACs; fc (line 10) +160 MACs") in out
    assert err == "archcalc: error: tiny: grew beyond the baseline on params, macs, activations, memory, train_memory\n"

    # --max-growth limits only the metrics it names: MACs grew 84.21%
    code, out, err = cli("check", "specs/", "--baseline", "base.json", "--max-growth", "macs=84%")
    assert code == 1 and err == "archcalc: error: tiny: grew beyond the baseline on macs\n"
    assert "more than the allowed +84%: conv2 (line 6) +2,359,296 MACs" in out
    code, out, _ = cli("check", "specs/", "--baseline", "base.json", "--max-growth", "macs=85%")
    assert code == 0
    assert "      baseline: params 2,938 -> 5,418 (+2,480, +84.41%), macs 2,801,824 -> 5,161,280 (+2,359,456, +84.21%)" in out
    code, out, _ = cli("check", "specs/", "--baseline", "base.json", "--max-growth", "all=85%")
    assert code == 0


def test_baseline_under_other_options_or_malformed(tmp_path, cli, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "t.yaml").write_text(TINY)
    assert cli("check", "t.yaml", "--write-baseline", "b.json")[0] == 0
    code, _, err = cli("check", "t.yaml", "--baseline", "b.json", "--dtype", "fp16")
    assert code == 2 and err.startswith("archcalc: error: --baseline 'b.json' was written with dtype \"fp32\", this run has \"fp16\"")
    (tmp_path / "x.json").write_text('{"specs": []}')
    code, _, err = cli("check", "t.yaml", "--baseline", "x.json")
    assert code == 2 and "not an archcalc baseline" in err


# --------------------------------------------------------------------------- diff


def _git(repo, *args):
    subprocess.run(["git", *args], cwd=repo, check=True, capture_output=True,
                   env={**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.org",
                        "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@example.org"})


def test_diff_against_a_git_revision(tmp_path, cli, monkeypatch):
    _git(tmp_path, "init", "-q")
    (tmp_path / "specs").mkdir()
    spec = tmp_path / "specs" / "tiny.yaml"
    spec.write_text(TINY)
    _git(tmp_path, "add", "specs/tiny.yaml")
    _git(tmp_path, "commit", "-qm", "tiny")
    spec.write_text(TINY.replace("out: 16, kernel: 3, padding: 1}, name: conv2", "out: 32, kernel: 3, padding: 1}, name: conv2"))
    monkeypatch.chdir(tmp_path)
    code, out, err = cli("diff", "git:HEAD:specs/tiny.yaml", "specs/tiny.yaml")
    assert code == 0, err
    assert out.splitlines() == [
        "--- git:HEAD:specs/tiny.yaml",
        "+++ specs/tiny.yaml",
        "~ conv2 (conv, line 6): shape 16x32x32 -> 32x32x32; params 2,320 -> 4,640 (+2,320, +100.00%); MACs 2,359,296 -> 4,718,592 (+2,359,296, +100.00%)",
        "~ relu2 (relu, line 7): shape 16x32x32 -> 32x32x32",
        "~ global_avgpool1 (global_avgpool, line 8): shape 16x1x1 -> 32x1x1",
        "~ flatten1 (flatten, line 9): shape 16 -> 32",
        "~ fc (linear, line 10): params 170 -> 330 (+160, +94.12%); MACs 160 -> 320 (+160, +100.00%)",
        "totals:",
        "  params        2,938 -> 5,418 (+2,480, +84.41%)",
        "  MACs          2,801,824 -> 5,161,280 (+2,359,456, +84.21%)",
        # activations: input 3,072 + 4 x 16,384 + 16 + 10 (+ the views: 0) -> conv2 and relu2 double
        "  activations   35,866 -> 52,266 (+16,400, +45.73%)",
        "  memory        143,464 -> 209,064 (+65,600, +45.73%)",
        "  train_memory  166,928 -> 252,368 (+85,440, +51.18%)",
        "  layers        7 (unchanged)",
        "5 changed, 0 added, 0 removed layer(s)",
    ]
    data = json.loads(cli("diff", "git:HEAD:specs/tiny.yaml", "specs/tiny.yaml", "-f", "json")[1])
    assert data["layers"][0] == {"change": "changed", "name": "conv2",
                                 "old": {"type": "conv", "shape": [16, 32, 32], "params": 2320, "macs": 2359296, "line": 6},
                                 "new": {"type": "conv", "shape": [32, 32, 32], "params": 4640, "macs": 4718592, "line": 6}}


def test_diff_git_errors_and_size_limit(tmp_path, cli, monkeypatch):
    from archcalc.limits import MAX_BYTES

    _git(tmp_path, "init", "-q")
    (tmp_path / "big.yaml").write_text("#" * (MAX_BYTES + 10) + "\n")
    _git(tmp_path, "add", "big.yaml")
    _git(tmp_path, "commit", "-qm", "big")
    (tmp_path / "t.yaml").write_text(TINY)
    monkeypatch.chdir(tmp_path)
    code, out, err = cli("diff", "git:HEAD:big.yaml", "t.yaml")
    assert (code, out) == (2, "") and f"spec is larger than {MAX_BYTES:,} bytes" in err
    code, out, err = cli("diff", "git:HEAD:nope.yaml", "t.yaml")
    assert code == 2 and err.startswith("archcalc: error: 'git:HEAD:nope.yaml': git could not read it (fatal: path 'nope.yaml' does not exist in 'HEAD')")
    code, out, err = cli("diff", "git:--output=x:t.yaml", "t.yaml")
    assert code == 2 and "expected git:REV:PATH" in err and not (tmp_path / "x").exists()


def test_diff_zoo_names(cli, at_root):
    code, out, _ = cli("diff", "resnet50", "resnet50-v1")
    assert code == 0
    # torchvision's resnet50 puts the stride on the 3x3 conv, v1 on the first 1x1: same params,
    # 4,089,184,256 vs 3,857,973,248 MACs (each checked against its reference in test_zoo_resnet)
    assert "  params        25,557,032 (unchanged)" in out
    assert "  MACs          4,089,184,256 -> 3,857,973,248 (-231,211,008, -5.65%)" in out


# --------------------------------------------------------------------------- pre-commit


def test_pre_commit_runs_the_hook_on_a_sample_repository(tmp_path):
    """The hook from .pre-commit-hooks.yaml, run by pre-commit itself on a fresh repository.

    Offline, pre-commit cannot build the hook's `language: python` environment (it would pip
    install archcalc and its dependencies), so the sample repository uses the manifest's hook
    as a `repo: local` hook with every field kept except the language, which runs the archcalc
    already installed here (docs/ci.md says the same)."""
    from pre_commit.all_languages import languages

    check = subprocess.run([sys.executable, "-m", "pre_commit", "validate-manifest", str(ROOT / ".pre-commit-hooks.yaml")],
                           capture_output=True, text=True)
    assert check.returncode == 0, check.stdout + check.stderr
    manifest = yaml.safe_load((ROOT / ".pre-commit-hooks.yaml").read_text())
    (hook,) = [h for h in manifest if h["id"] == "archcalc-check"]
    assert hook["language"] == "python" and hook["entry"] == "archcalc check"
    local = {**hook, "language": "unsupported" if "unsupported" in languages else "system"}
    repo = tmp_path / "repo"
    (repo / "specs").mkdir(parents=True)
    (repo / ".pre-commit-config.yaml").write_text(yaml.safe_dump({"repos": [{"repo": "local", "hooks": [local]}]}))
    (repo / "specs" / "ok.yaml").write_text(TINY)
    (repo / "specs" / "big.yaml").write_text(TINY.replace("name: tiny", "name: big") + "budget: {params: 2K}\n")
    (repo / "settings.yaml").write_text("not: a spec\n")  # outside specs/: the hook's `files` skips it
    _git(repo, "init", "-q")
    _git(repo, "add", ".")
    env = {**os.environ, "PRE_COMMIT_HOME": str(tmp_path / "cache"),
           "PATH": str(Path(sys.executable).parent) + os.pathsep + os.environ.get("PATH", "")}
    cmd = [sys.executable, "-m", "pre_commit", "run", "--all-files", "--color", "never"]
    proc = subprocess.run(cmd, cwd=repo, capture_output=True, text=True, env=env)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    # big: 2,938 params (see test_baseline_flow) > 2,000
    assert "specs/big.yaml:11: error [budget params]: params 2,938 > 2,000 (limit)" in proc.stdout
    assert "PASS  specs/ok.yaml  tiny: 2,938 params" in proc.stdout
    assert "settings.yaml" not in proc.stdout
    (repo / "specs" / "big.yaml").write_text(TINY.replace("name: tiny", "name: big") + "budget: {params: 3K}\n")
    _git(repo, "add", ".")
    proc = subprocess.run(cmd, cwd=repo, capture_output=True, text=True, env=env)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "archcalc check" in proc.stdout and "Passed" in proc.stdout


# docs/ci.md's bash blocks and CI configurations run in tests/ci/test_ci_snippets.py


def test_diff_family_members(tmp_path, cli, monkeypatch):
    (tmp_path / "fam.yaml").write_text(
        "input: [3, 8, 8]\nsymbols: {w: 4}\nvariants:\n  small: {w: 4}\n  big: {w: 8}\n"
        "layers:\n  - {conv: {out: w, kernel: 3, padding: 1}, name: conv}\n")
    monkeypatch.chdir(tmp_path)
    code, out, err = cli("diff", "fam.yaml#small", "fam.yaml#big")
    assert code == 0, err
    # 4 x 27 + 4 = 112 -> 8 x 27 + 8 = 224 params; 4 x 64 x 27 = 6,912 -> 13,824 MACs
    assert out.splitlines()[:3] == [
        "--- fam.yaml#small", "+++ fam.yaml#big",
        "~ conv (conv, line 7): shape 4x8x8 -> 8x8x8; params 112 -> 224 (+112, +100.00%); MACs 6,912 -> 13,824 (+6,912, +100.00%)"]
    code, out, err = cli("diff", "fam.yaml", "fam.yaml#big")
    assert (code, out) == (2, "")
    assert err == "archcalc: error: 'fam.yaml' is a family: name a member, e.g. fam.yaml#small; members: small, big\n"
