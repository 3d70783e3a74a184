"""The docs match the code: every command block in README.md and docs/*.md is run and compared.

The convention (for every page, whoever writes it):

* A fenced code block whose first line starts with ``$ `` and whose command is ``archcalc ...``
  (optionally after ``NAME=VALUE`` environment settings, e.g. ``$ COLUMNS=80 archcalc ...``) is a
  *command block*. Every line in it that starts with ``$ `` is a command; the lines after it, up
  to the next command, are what it prints: stdout, then stderr.
* ``$ echo $?`` prints the previous command's exit code. ``| head -N`` after a command keeps the
  first N lines (and, as in a shell, ``$?`` is then head's: 0).
* A line that is exactly ``...`` stands for any number of lines (none included). Trailing spaces
  do not count; the scratch directory's path prints as ``.``. Nothing else is normalised.
* Commands run in a scratch directory holding ``specs/`` (the zoo) and an empty ``docs/img/``,
  with ``COLUMNS`` unset and output piped (so tables are as wide as they need to be); ``verify``,
  ``export`` and anything with ``PYTHONIOENCODING`` run as a separate process, the rest in-process.
  A fenced block whose first line is ``# file: NAME`` is written there as NAME first, so a page
  can show a spec and then run it. A file a command writes (``-o docs/img/x.png``) must also be
  committed at that path in the repository, where the page shows it.
* A command shown without the ``$ `` prompt (a ```` ```bash ```` block of plain commands) is not
  run: use that for what cannot run here (a GPU, the network, installing).

Pages are discovered, never listed: a new page under docs/ is covered the moment it is written.
``ARCHCALC_UPDATE_DOCS=1 python -m pytest tests/cli/test_docs.py`` rewrites stale blocks that have no
``...`` in place (and still fails, so that the change is looked at).
"""

from __future__ import annotations

import io
import os
import re
import shlex
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from archcalc import analyze, load
from archcalc.spec import zoo
from archcalc.output.report import exact
from archcalc.spec.load import loads
from conftest import ROOT

README = (ROOT / "README.md").read_text()
PAGES = [ROOT / "README.md"] + sorted((ROOT / "docs").rglob("*.md"))
FENCE = re.compile(r"^(```+|~~~+)([^\n`]*)\n(.*?)^\1[ \t]*$", re.S | re.M)
ENV = re.compile(r"^(?:[A-Z_][A-Z0-9_]*=\S*\s+)*archcalc(?:\s|$)")


@dataclass
class Block:
    page: Path
    line: int  # 1-based line of the fence
    start: int  # offsets of the block body in the page text
    end: int
    steps: list = field(default_factory=list)  # (command, expected lines)
    index: int = 0  # among the page's command blocks


def blocks(page: Path):
    """(command blocks, file blocks) of a page."""
    text = page.read_text()
    cmds, files = [], []
    for m in FENCE.finditer(text):
        body = m.group(3)
        first = body.split("\n", 1)[0]
        line = text.count("\n", 0, m.start()) + 1
        fm = re.match(r"#\s*file:\s*(\S+)\s*$", first)
        if fm:
            files.append((fm.group(1), body.split("\n", 1)[1] if "\n" in body else ""))
            continue
        if not (first.startswith("$ ") and ENV.match(first[2:])):
            continue
        b = Block(page, line, m.start(3), m.end(3), index=len(cmds))
        for raw in body.rstrip("\n").split("\n"):
            if raw.startswith("$ "):
                b.steps.append((raw[2:].strip(), []))
            else:
                b.steps[-1][1].append(raw.rstrip())
        cmds.append(b)
    return cmds, files


ALL = [b for p in PAGES for b in blocks(p)[0]]


def _run(command, scratch: Path, last_code):
    """Run one documented command; returns (code, printed lines)."""
    if command == "echo $?":
        return 0, [str(last_code)]
    head = None
    m = re.fullmatch(r"(.*?)\s*\|\s*head -(\d+)", command)
    if m:
        command, head = m.group(1), int(m.group(2))
    words = shlex.split(command)
    env = {}
    while words and re.fullmatch(r"[A-Z_][A-Z0-9_]*=.*", words[0]):
        k, v = words.pop(0).split("=", 1)
        env[k] = v
    assert words and words[0] == "archcalc", f"not an archcalc command: {command}"
    # a real process where the stream's encoding is fixed at start-up, and for the torch-backed
    # commands (torch would stay in this process's memory, which later tests' children inherit)
    if "PYTHONIOENCODING" in env or words[1:2] in (["verify"], ["export"]):
        full = {**os.environ, **env}
        full.pop("COLUMNS", None) if "COLUMNS" not in env else None
        proc = subprocess.run([sys.executable, "-m", "archcalc", *words[1:]], capture_output=True, text=True,
                              cwd=scratch, env=full, errors="replace")
        code, out, err = proc.returncode, proc.stdout, proc.stderr
    else:
        from archcalc.cli.main import main

        saved_env = {k: os.environ.get(k) for k in ("COLUMNS", "NO_COLOR", *env)}
        os.environ.pop("COLUMNS", None)
        os.environ.update(env)
        old = sys.stdout, sys.stderr, os.getcwd()
        bo, be = io.BytesIO(), io.BytesIO()
        so = io.TextIOWrapper(bo, encoding="utf-8", newline="\n", write_through=True)
        se = io.TextIOWrapper(be, encoding="utf-8", newline="\n", write_through=True)
        sys.stdout, sys.stderr = so, se
        os.chdir(scratch)
        try:
            code = main(words[1:])
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            sys.stdout, sys.stderr = old[0], old[1]
            os.chdir(old[2])
            for k, v in saved_env.items():
                if v is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = v
        so.flush()
        se.flush()
        out, err = bo.getvalue().decode(), be.getvalue().decode()
        so.detach()
        se.detach()
    text = (out + err).replace(str(scratch), ".").replace(str(ROOT), ".")
    lines = [x.rstrip() for x in text.split("\n")]
    if lines and lines[-1] == "":
        lines.pop()
    if head is not None:
        lines, code = lines[:head], 0
    return code, lines


_TORCH_VERSION = re.compile(r"torch \d+\.\d+\.\d+(?:\+\w+)?")


def _same_line(expected: str, actual: str) -> bool:
    """Equal, or equal but for the installed torch's version (a title such as 'engine vs torch
    2.13.0+cpu on meta', centred, so its indent moves with the version's length)."""
    if expected == actual:
        return True
    if not _TORCH_VERSION.search(expected):
        return False
    return _TORCH_VERSION.sub("torch V", expected).strip() == _TORCH_VERSION.sub("torch V", actual).strip()


def matches(expected, actual) -> bool:
    """``...`` matches any run of lines; every other line must be equal (see :func:`_same_line`)."""
    if not expected:
        return not actual
    if expected[0] == "...":
        return any(matches(expected[1:], actual[k:]) for k in range(len(actual) + 1))
    return bool(actual) and _same_line(expected[0], actual[0]) and matches(expected[1:], actual[1:])


@pytest.fixture
def scratch(tmp_path):
    (tmp_path / "specs").symlink_to(ROOT / "specs")
    (tmp_path / "docs" / "img").mkdir(parents=True)
    return tmp_path


def test_every_command_block_is_found():
    """The discovery itself: the README's blocks are there, and a page without blocks adds none."""
    readme = [b for b in ALL if b.page.name == "README.md"]
    assert len(readme) >= 8
    assert any(s[0].startswith("summary") or s[0].startswith("archcalc summary") for b in readme for s in b.steps)
    tutorial = [b for b in ALL if b.page.name == "tutorial.md"]
    assert len(tutorial) >= 8, "docs/tutorial.md shows its commands as command blocks"


@pytest.mark.parametrize("block", ALL, ids=[f"{b.page.relative_to(ROOT)}:{b.line}" for b in ALL])
def test_command_block_is_current(block, scratch):
    for name, text in blocks(block.page)[1]:
        target = scratch / name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text)
    code = 0
    stale = []
    actual_all = []
    for command, expected in block.steps:
        code, actual = _run(command, scratch, code)
        actual_all.append((command, actual))
        if not matches(expected, actual):
            stale.append((command, expected, actual))
        for m in re.finditer(r"(?:-o|--output)\s+(\S+)", command):
            made = scratch / m.group(1)
            assert made.is_file(), f"{command}: wrote nothing at {m.group(1)}"
            committed = ROOT / m.group(1)
            assert committed.is_file(), f"{m.group(1)} is shown by the page but not committed"
            assert made.read_bytes()[:8] == committed.read_bytes()[:8]  # same kind of file
    if stale and os.environ.get("ARCHCALC_UPDATE_DOCS") and not any("..." in s[1] for s in stale):
        text = block.page.read_text()
        now = blocks(block.page)[0][block.index]  # offsets as the page is now (earlier blocks may have moved)
        body = "".join(f"$ {c}\n" + "".join(x + "\n" for x in a) for c, a in actual_all)
        block.page.write_text(text[: now.start] + body + text[now.end:])
    for command, expected, actual in stale:
        pytest.fail(f"{block.page.name}:{block.line}: `{command}` prints something else now.\n--- page\n"
                    + "\n".join(expected) + "\n--- archcalc\n" + "\n".join(actual))


def test_matcher_fails_on_stale_output():
    """The comparison can fail: a changed digit, a missing line, a line too many."""
    assert matches(["a", "...", "z"], ["a", "b", "c", "z"])
    assert matches(["a", "...", "z"], ["a", "z"])
    assert not matches(["a", "...", "z"], ["a", "b"])
    assert not matches(["params 1,792"], ["params 1,793"])
    assert not matches(["a"], ["a", "b"])


def test_readme_quick_start_matches_ci():
    blocks_ = re.findall(r"```bash\n(.*?)\n```", README.split("## A tour")[0], re.S)
    assert blocks_[:2] == ['pip install . && archcalc summary vgg16',
                           'pip install torch==2.14.1 torchvision==0.29.1 timm==1.0.31 -e ".[test]" && python -m pytest']
    ci = (ROOT / ".ci" / "run").read_text()
    assert ci.strip().splitlines()[-1] == blocks_[1]


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


def test_json_doc_sample_is_vgg16():
    """docs/json.md's sample: the numbers and the line of conv5_3 are vgg16's."""
    import json

    doc = (ROOT / "docs" / "json.md").read_text()
    sample = re.search(r"```json\n(.*?)```", doc, re.S).group(1)
    r = analyze(load("vgg16"))
    row = r.row("conv5_3")
    assert f'"line": {row.line},' in sample
    t = r.totals
    for key in ("params", "macs", "activations", "activation_bytes", "train_saved_bytes", "param_bytes",
                "train_state_bytes", "batch_train_bytes"):
        assert f'"{key}": {t[key]},' in sample, key
    from archcalc.output.report import to_dict

    doc_keys = set(re.findall(r'"([a-z_]+)":', sample))
    actual = to_dict(r)
    assert set(actual["totals"]) <= doc_keys, set(actual["totals"]) - doc_keys
    assert set(actual["layers"][0]) <= doc_keys | {"h", "w"}, set(actual["layers"][0]) - doc_keys
    json.dumps(actual)


def test_tutorial_images_are_committed():
    """Every image a page shows exists (the tutorial's plots, the Mermaid graph's page)."""
    for page in PAGES:
        for m in re.finditer(r"!\[[^\]]*\]\(([^)]+)\)", page.read_text()):
            assert (page.parent / m.group(1)).is_file(), f"{page.name} shows {m.group(1)}, which is missing"
