"""The docs match the code: README's commands and example, the zoo table."""

import re

from archcalc import analyze, load, zoo
from archcalc.report import exact
from archcalc.spec import loads
from conftest import ROOT

README = (ROOT / "README.md").read_text()


def test_readme_quick_start_matches_ci():
    blocks = re.findall(r"```bash\n(.*?)\n```", README.split("## A tour")[0], re.S)
    assert blocks[:2] == ['pip install . && archcalc summary vgg16', 'pip install torch==2.13.0 -e ".[test]" && python -m pytest']
    ci = (ROOT / ".ci" / "run").read_text()
    assert ci.strip().splitlines()[-1] == blocks[1]


def test_readme_example_spec():
    text = re.search(r"## Writing a spec\n\n```yaml\n(.*?)```", README, re.S).group(1)
    r = analyze(loads(text, "tiny.yaml"))
    # conv 3->16: 432 + BN 32; two convs 16->16: 2 x (2304 + 32); linear 16*10 + 10
    assert r.totals["params"] == 432 + 32 + 2 * (2304 + 32) + 170 == 5306
    assert r.output == (10,)


def test_zoo_doc_lists_every_spec_with_its_numbers():
    doc = (ROOT / "docs" / "zoo.md").read_text()
    for name in zoo.names():
        row = next((line for line in doc.splitlines() if line.startswith(f"| `{name}` |")), None)
        assert row is not None, f"{name} missing from docs/zoo.md"
        t = analyze(load(name)).totals
        assert f"| {exact(t['params'])} | {exact(t['macs'])} |" in row, name


def test_readme_summary_output_is_current(cli):
    """The README's resnet18 example is what the command prints now (title and caption aside)."""
    block = README.split("$ archcalc summary resnet18 --depth 1\n", 1)[1].split("```", 1)[0]
    code, out, _ = cli("summary", "resnet18", "--depth", "1")
    assert code == 0
    printed = [line.rstrip() for line in out.splitlines()]
    for line in block.splitlines():
        assert line.rstrip() in printed, line
