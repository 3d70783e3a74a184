"""Issue 24: `archcalc check` on a team's own repository. Findings inside a block are annotated
at the line that calls the block (the block's own line a related location); a first run without
a baseline passes with a notice; reports are written on every exit code; folders skip YAML that
is not a spec; --exclude. Every line number below is counted by hand in the spec text beside it."""

import json
import xml.etree.ElementTree as ET

import pytest

from archcalc.check import checks

# line numbers:   1      2                 3       4        5             6
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
# the block's conv is line 7; d1 is called on line 11, d2 on line 12.
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
            "allowed +0%: d2.conv (line 12, block line 7) +2,320 params; fc (line 15) +160 params (in a block: layer at line 7)") in out
