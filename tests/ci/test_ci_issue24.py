"""Issue 24: `archcalc check` on a team's own repository. Findings inside a block are annotated
at the line that calls the block (the block's own line a related location); a first run without
a baseline passes with a notice; reports are written on every exit code; folders skip YAML that
is not a spec; --exclude; summary and the other views honour the spec's lint: ignore. Every line
number below is counted by hand in the spec text beside it."""

import json
import xml.etree.ElementTree as ET

import pytest

from archcalc.ci import checks

BLOCKS = """name: blk
input: [3, 32, 32]
blocks:
  down:
    args: [out]
    layers:
      - {conv: {out: $out, kernel: 3, stride: 2}, name: conv}
      - relu
layers:
  - {conv: {out: 8, kernel: 3, padding: 1}, name: stem}
  - {down: {out: 16}, name: d1}
  - {down: {out: 16}, name: d2}
  - global_avgpool
  - flatten
  - {linear: {out: 10}, name: fc}
"""
# line 1 is "name: blk": the block's conv is line 7, stem line 10; d1 is called on line 11, d2 on
# line 12; fc is line 15.
# d1.conv: 3x3/2 on 32x32, no padding: (32 - 3) mod 2 = 1 row and column never seen (tiling);
# d2.conv: 3x3/2 on 15x15: (15 - 3) mod 2 = 0, it tiles.


def test_a_finding_in_a_block_is_at_the_call(tmp_path, cli, monkeypatch):
    (tmp_path / "blk.yaml").write_text(BLOCKS)
    monkeypatch.chdir(tmp_path)
    run = checks.run(["blk.yaml"], checks.Options())
    (tiling,) = [f for f in run.results[0].findings if f.key == "tiling"]
    assert (tiling.line, tiling.block_line, tiling.layer) == (11, 7, "d1.conv")

    code, out, _ = cli("check", "blk.yaml")
    assert code == 0
    assert out.splitlines()[1] == (
        "      blk.yaml:11: warning [lint tiling]: d1.conv (conv): 3x3/2 window does not tile its 32x32 input "
        "(padding 0+0, 0+0): the last 1 row and 1 column of real input are never seen (in a block: layer at line 7)")
    code, out, _ = cli("check", "blk.yaml", "--format", "github", "--report", "sarif=a.sarif", "--report", "junit=a.xml")
    assert out.splitlines()[0].startswith("::warning file=blk.yaml,line=11,title=archcalc lint tiling::d1.conv (conv)")
    sarif = json.loads((tmp_path / "a.sarif").read_text())
    (res,) = [r for r in sarif["runs"][0]["results"] if r["ruleId"] == "tiling"]
    assert res["locations"][0]["physicalLocation"]["region"] == {"startLine": 11}
    assert res["relatedLocations"][0]["physicalLocation"]["region"] == {"startLine": 7}
    junit = ET.parse(tmp_path / "a.xml").getroot()
    (case,) = [c for c in junit.iter("testcase") if c.get("name") == "lint tiling"]
    assert case.find("system-out").text.startswith("warning: blk.yaml:11: d1.conv (conv)")


def test_a_top_level_layer_has_no_block_line(tmp_path, monkeypatch):
    # stem (line 10) is not in a block: 3x3/1 with padding 1 tiles; widen its stride to 2 without
    # padding to make it fire there: (32 - 3) mod 2 = 1
    (tmp_path / "blk.yaml").write_text(BLOCKS.replace("{out: 8, kernel: 3, padding: 1}", "{out: 8, kernel: 3, stride: 2}"))
    monkeypatch.chdir(tmp_path)
    run = checks.run(["blk.yaml"], checks.Options())
    found = sorted((f.layer, f.line, f.block_line) for f in run.results[0].findings if f.key == "tiling")
    # stem 32 -> 15; d1.conv on 15: (15 - 3) mod 2 = 0 tiles -> 7; d2.conv on 7: (7 - 3) mod 2 = 0
    assert found == [("stem", 10, None)]


def test_baseline_growth_in_a_block_names_the_call(tmp_path, cli, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "blk.yaml").write_text(BLOCKS)
    assert cli("check", "blk.yaml", "--write-baseline", "b.json")[0] == 0
    (tmp_path / "blk.yaml").write_text(BLOCKS.replace("{down: {out: 16}, name: d2}", "{down: {out: 32}, name: d2}"))
    code, out, err = cli("check", "blk.yaml", "--baseline", "b.json", "--max-growth", "params=0%")
    assert code == 1
    # d2.conv: 16 in, 3x3: 16 x 144 + 16 = 2,320 -> 32 x 144 + 32 = 4,640 (+2,320); fc: 16 x 10 + 10 = 170
    # -> 330 (+160); total before 224 (stem) + 1,168 (d1.conv: 16 x 72 + 16) + 2,320 + 170 = 3,882
    assert ("blk.yaml:12: error [baseline params]: params grew 3,882 -> 6,362 (+2,480, +63.88%), more than the "
            "allowed +0%: d2.conv (line 12, block line 7) +2,320 params; fc (line 15) +160 params\n") in out
    code, out, err = cli("check", "blk.yaml", "--baseline", "b.json", "--max-growth", "params=0%", "--format", "sarif")
    (res,) = [r for r in json.loads(out)["runs"][0]["results"] if r["ruleId"] == "baseline"]
    assert res["locations"][0]["physicalLocation"]["region"] == {"startLine": 12}
    assert res["relatedLocations"][0]["physicalLocation"]["region"] == {"startLine": 7}


# --------------------------------------------------------------------------- first run, reports on every exit code

TINY = """name: tiny
input: [3, 32, 32]
layers:
  - {conv: {out: 16, kernel: 3, padding: 1}, name: conv1}
  - global_avgpool
  - flatten
  - {linear: {out: 10}, name: fc}
"""
# conv1: 16 x 27 + 16 = 448 params; fc: 16 x 10 + 10 = 170; 618 in all


def _schemas():
    from conftest import ROOT

    return ROOT / "tests" / "ci_schemas"


def test_first_run_without_a_baseline_passes_with_a_notice(tmp_path, cli, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "specs").mkdir()
    (tmp_path / "specs" / "tiny.yaml").write_text(TINY)
    note = ("no baseline file 'base.json' yet, so no totals were compared; write one with "
            "`archcalc check specs/ --write-baseline base.json` and commit it")
    code, out, err = cli("check", "specs/", "--strict", "--baseline", "base.json", "--max-growth", "params=2%",
                         "--report", "sarif=a.sarif", "--report", "junit=a.xml")
    assert (code, err) == (0, "")
    # MACs: conv1 16 x 32 x 32 x 27 = 442,368; fc 16 x 10 = 160; 442,528
    assert out.splitlines() == ["PASS  specs/tiny.yaml  tiny: 618 params, 442,528 MACs", f"note: {note}",
                                "1 spec: 1 passed, 0 failed, 0 unreadable"]
    sarif = json.loads((tmp_path / "a.sarif").read_text())
    assert sarif["runs"][0]["invocations"][0]["toolExecutionNotifications"] == [{"level": "note", "message": {"text": note}}]
    assert (tmp_path / "a.xml").exists()
    code, out, err = cli("check", "specs/", "--baseline", "base.json", "--format", "github")
    assert out.splitlines()[0] == f"::notice title=archcalc check::{note}"
    code, out, err = cli("check", "specs/", "--baseline", "base.json", "--format", "json")
    assert json.loads(out)["notices"] == [note] and err == f"archcalc: note: {note}\n"
    # written as the notice says, the next run compares against it
    assert cli("check", "specs/", "--write-baseline", "base.json")[0] == 0
    code, out, err = cli("check", "specs/", "--baseline", "base.json")
    assert code == 0 and "note:" not in out and "      baseline: no change" in out


def test_reports_are_written_on_exit_code_2_and_name_every_unreadable_spec(tmp_path, cli, monkeypatch):
    import xmlschema
    import jsonschema

    monkeypatch.chdir(tmp_path)
    (tmp_path / "specs").mkdir()
    (tmp_path / "specs" / "tiny.yaml").write_text(TINY)
    for k in range(1, 6):  # five unreadable specs: stderr names three, the reports all five
        (tmp_path / "specs" / f"bad{k}.yaml").write_text("input: [3, 8, 8]\nlayers:\n  - {conv: {out: 4, kernal: 3}}\n")
    code, out, err = cli("check", "specs/", "--report", "junit=a.xml", "--report", "sarif=a.sarif", "--report", "json=a.json")
    assert code == 2
    assert err == "archcalc: error: 5 of 6 specs could not be checked: specs/bad1.yaml, specs/bad2.yaml, specs/bad3.yaml and 2 more\n"
    text = (tmp_path / "a.xml").read_text()
    xmlschema.XMLSchema(str(_schemas() / "junit-10.xsd")).validate(text)
    root = ET.fromstring(text)
    errors = [s.get("name") for s in root.findall("testsuite") if s.find("testcase/error") is not None]
    assert errors == [f"specs/bad{k}.yaml" for k in range(1, 6)]
    sarif = json.loads((tmp_path / "a.sarif").read_text())
    assert sorted(r["locations"][0]["physicalLocation"]["artifactLocation"]["uri"] for r in sarif["runs"][0]["results"]
                  if r["ruleId"] == "load") == [f"specs/bad{k}.yaml" for k in range(1, 6)]
    assert json.loads((tmp_path / "a.json").read_text())["summary"]["error"] == 5

    # an argument error stops the run before any spec: the reports still say why
    code, out, err = cli("check", "specs/", "--budget", "parms=1M", "--report", "junit=b.xml", "--report", "sarif=b.sarif",
                         "--report", "json=b.json")
    message = ("--budget parms=1M: expected KEY=AMOUNT; did you mean 'params'?")
    assert (code, out, err) == (2, "", f"archcalc: error: {message}\n")
    text = (tmp_path / "b.xml").read_text()
    xmlschema.XMLSchema(str(_schemas() / "junit-10.xsd")).validate(text)
    assert ET.fromstring(text).find("testsuite/testcase/error").get("message") == message
    sarif = json.loads((tmp_path / "b.sarif").read_text())
    jsonschema.Draft4Validator(json.loads((_schemas() / "sarif-schema-2.1.0.json").read_text())).validate(sarif)
    assert sarif["runs"][0]["invocations"][0] == {"executionSuccessful": False, "exitCode": 2,
                                                  "toolExecutionNotifications": [{"level": "error", "message": {"text": message}}]}
    doc = json.loads((tmp_path / "b.json").read_text())
    assert (doc["errors"], doc["summary"]["exit_code"]) == ([message], 2)

    # a malformed baseline (not a missing one) is still an error, reported the same way
    (tmp_path / "bad.json").write_text("{}")
    code, _, err = cli("check", "specs/tiny.yaml", "--baseline", "bad.json", "--report", "junit=c.xml")
    assert code == 2 and "not an archcalc baseline" in err
    assert "not an archcalc baseline" in ET.parse(tmp_path / "c.xml").getroot().find("testsuite/testcase/error").get("message")


# --------------------------------------------------------------------------- folders: YAML that is not a spec, --exclude


def _tree(root):
    (root / "specs" / "old").mkdir(parents=True)
    (root / "specs" / "tiny.yaml").write_text(TINY)
    (root / "specs" / "old" / "tiny_v0.yaml").write_text(TINY.replace("name: tiny", "name: tiny_v0"))
    (root / "specs" / "ci.yml").write_text("name: archcalc\non: [push]\njobs:\n  specs: {runs-on: ubuntu-latest}\n")
    (root / "specs" / "hooks.yaml").write_text("repos:\n  - repo: local\n    hooks: []\n")
    (root / "specs" / "list.yaml").write_text("- a\n- b\n")
    (root / "specs" / "typo.yaml").write_text("input: [3, 8, 8]\nlayer: [relu]\n")  # a spec with a mistake: reported


@pytest.mark.parametrize("jobs", ["1", "2"])
def test_a_folder_walk_skips_yaml_that_is_not_a_spec_saying_so_once(tmp_path, cli, monkeypatch, jobs):
    _tree(tmp_path)
    monkeypatch.chdir(tmp_path)
    code, out, err = cli("check", "specs", "--jobs", jobs)
    assert out.splitlines() == [
        "PASS  specs/tiny.yaml  tiny: 618 params, 442,528 MACs",
        "ERROR specs/typo.yaml",
        "      error: specs/typo.yaml:2: unknown top-level key 'layer'; did you mean 'layers'?",
        "PASS  specs/old/tiny_v0.yaml  tiny_v0: 618 params, 442,528 MACs",
        "note: skipped 3 YAML files that are not specs (no input: or layers:): specs/ci.yml, specs/hooks.yaml, "
        "specs/list.yaml; --exclude GLOB keeps them out of the walk",
        "3 specs: 2 passed, 0 failed, 1 unreadable",
    ]
    assert code == 2
    # a file named on the command line is always read as a spec
    code, out, err = cli("check", "specs/ci.yml")
    assert code == 2 and err.startswith("archcalc: error: specs/ci.yml:2: unknown top-level key True")  # YAML 1.1 reads 'on' as true


def test_exclude(tmp_path, cli, monkeypatch):
    _tree(tmp_path)
    monkeypatch.chdir(tmp_path)
    code, out, err = cli("check", "specs", "--exclude", "specs/old/*", "--exclude", "typo.yaml", "--exclude", "*.yml",
                         "--exclude", "hooks.yaml", "--exclude", "list.yaml")
    assert (code, out) == (0, "PASS  specs/tiny.yaml  tiny: 618 params, 442,528 MACs\n1 spec: 1 passed, 0 failed, 0 unreadable\n")
    code, out, _ = cli("check", "specs/**/*.yaml", "--exclude", "specs/t*")
    assert out.splitlines()[0] == "PASS  specs/old/tiny_v0.yaml  tiny_v0: 618 params, 442,528 MACs"
    # a file named is checked whatever --exclude says
    code, out, _ = cli("check", "specs/tiny.yaml", "--exclude", "*")
    assert code == 0 and out.startswith("PASS  specs/tiny.yaml")


# --------------------------------------------------------------------------- ignores honoured everywhere

# a 3x3/2 conv on 10x10: (10 - 3) mod 2 = 1 row and column never seen: the engine's tiling finding,
# which summary, compare, explain and --fit print as a warning unless the spec ignores it
TILING = """name: tl
input: [3, 10, 10]
layers:
  - {conv: {out: 4, kernel: 3, stride: 2}, name: conv1}
  - global_avgpool
  - flatten
  - {linear: {out: 2}, name: fc}
"""
IGNORE = "lint:\n  ignore:\n    tiling: the 10x10 crop is on purpose\n    rf-coverage: the same lost row\n"


@pytest.mark.parametrize("command", [["summary", "tl.yaml"], ["summary", "tl.yaml", "--fit", "1GiB"],
                                     ["compare", "tl.yaml", "tl.yaml"], ["explain", "tl.yaml", "conv1"],
                                     ["summary", "tl.yaml", "-f", "json"]])
def test_what_the_spec_ignores_no_command_warns_about(tmp_path, cli, monkeypatch, command):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "tl.yaml").write_text(TILING)
    code, out, err = cli(*command)
    assert code == 0 and "does not tile" in out  # it warns without the exception
    (tmp_path / "tl.yaml").write_text(TILING + IGNORE)
    code, out, err = cli(*command)
    assert code == 0 and "does not tile" not in out and "warning:" not in out.lower()
    if "json" in command:
        assert all(r["warnings"] == [] for r in json.loads(out)["layers"])
    assert err == ""
    # check still reports it, as ignored
    code, out, err = cli("check", "tl.yaml", "--strict")
    assert code == 0 and "      ignored: rf-coverage, tiling" in out
