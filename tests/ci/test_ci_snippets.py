"""docs/ci.md's CI snippets run as written: the block that builds archcalc's wheel, the GitHub
Actions job's steps, the GitLab job's commands and the other ```bash blocks, in a sample git
repository and a fresh virtual environment, with only the repository URL and commit the page
asks you to set replaced (by this checkout and its HEAD). With ARCHCALC_DEEP=1, the pre-commit
configuration too (pre-commit clones the commit and pip-installs it with its dependencies from
the package index).

The virtual environment is fresh (`python -m venv --without-pip`: nothing installed in it) and the
snippets' own `pip install` puts archcalc in it; archcalc's dependencies (typer, rich, PyYAML,
sympy, and what they need, as pyproject.toml declares them) are seen through a `.pth` file naming
a folder of links to those distributions as installed here (with pip and setuptools, to build and
install the wheel; archcalc's own left out), and `PIP_NO_INDEX=1`: so the test needs no network,
pip can neither download nor touch this environment, and the `archcalc` that runs is the wheel's,
not this checkout's (PATH and PYTHONPATH lead nowhere else). `pip` there is the venv's python
running pip from those links (no ensurepip: it costs seconds per run).

The wheel is built from the checkout's HEAD (a clone, as the page does it): uncommitted changes
are not in it.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest
import yaml

from conftest import DEEP, ROOT

DOC = ROOT / "docs" / "ci.md"
REPO_URL = "https://example.org/your-mirror-of/archcalc"  # what the page asks you to replace
COMMIT = "0123456789abcdef0123456789abcdef01234567"
DOC_SPECS = ("alexnet-paper", "resnet18", "resnet50", "resnet50-v1", "squeezenet1_0", "vgg16")
GIT_ENV = {"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.org", "GIT_COMMITTER_NAME": "t",
           "GIT_COMMITTER_EMAIL": "t@example.org", "GIT_CONFIG_NOSYSTEM": "1"}


def _page():
    text = DOC.read_text()
    bash = re.findall(r"```bash\n(.*?)```", text, re.S)
    yamls = [yaml.safe_load(b) for b in re.findall(r"```yaml\n(.*?)```", text, re.S)]
    return text, bash, yamls


def _head() -> str:
    proc = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "HEAD"], capture_output=True, text=True)
    if proc.returncode != 0:
        pytest.skip("the archcalc checkout is not a git repository: nothing to clone")
    return proc.stdout.strip()


def _ours(text: str, head: str) -> str:
    """A snippet with the two values the page asks you to set: this checkout and its HEAD."""
    return text.replace(REPO_URL, str(ROOT)).replace(COMMIT, head)


def test_the_page_names_no_index_entry_and_no_tag():
    text, bash, yamls = _page()
    assert not re.search(r"pip install archcalc(\s|$|\[)", text)  # nothing on any index by that name
    assert not re.search(r"rev:\s*v\d", text) and "@v0" not in text  # archcalc has no release tags
    revs = re.findall(r"^\s*rev:\s*(\S+)", text, re.M)
    assert revs == [COMMIT]  # pre-commit pins a full commit SHA
    assert re.fullmatch(r"[0-9a-f]{40}", COMMIT)


def _needed() -> list:
    """The installed files and folders of archcalc's dependencies, transitively (as pyproject.toml
    declares them, markers evaluated here), and of pip and setuptools (to build and install the
    wheel): each distribution's top-level entries, its .dist-info included."""
    import importlib.metadata as md

    from pip._vendor.packaging.requirements import Requirement

    def canon(name):
        return re.sub(r"[-_.]+", "-", name).lower()

    try:
        import tomllib  # Python 3.11+
    except ImportError:  # 3.10: the installed archcalc's metadata says the same
        declared = md.requires("archcalc") or []
    else:
        declared = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    todo = [Requirement(r) for r in declared]
    todo += [Requirement("pip"), Requirement("setuptools")]
    seen, out = set(), []
    while todo:
        req = todo.pop()
        if canon(req.name) in seen or (req.marker is not None and not req.marker.evaluate({"extra": ""})):
            continue
        seen.add(canon(req.name))
        dist = md.distribution(req.name)
        top = {Path(str(f)).parts[0] for f in dist.files or ()}
        root = Path(dist.locate_file(""))
        out += [root / t for t in sorted(top) if not t.endswith(".pth") and t != ".." and (root / t).exists()]
        todo += [Requirement(r) for r in dist.requires or ()]
    return out


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory):
    """(sample repository, environment for bash): a fresh venv whose `pip` and `archcalc` come first."""
    base = tmp_path_factory.mktemp("snippets")
    venv = base / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    bin_dir = venv / ("Scripts" if os.name == "nt" else "bin")
    site = Path(subprocess.run([str(bin_dir / "python"), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                               capture_output=True, text=True, check=True).stdout.strip())
    deps = base / "deps"  # links to the packages archcalc needs (pip and setuptools too), archcalc's own left out
    deps.mkdir()
    for entry in _needed():
        if not (deps / entry.name).exists():
            (deps / entry.name).symlink_to(entry)
    (site / "_archcalc_test_deps.pth").write_text(str(deps) + "\n")
    pip = bin_dir / "pip"  # the venv's own python runs pip from those links: it installs into the venv
    pip.write_text(f'#!/bin/sh\nexec "{bin_dir / "python"}" -m pip "$@"\n')
    pip.chmod(0o755)
    here = Path(sys.executable).parent
    path = [str(bin_dir)] + [p for p in os.environ.get("PATH", "").split(os.pathsep) if p and Path(p) != here]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "PIP_", "VIRTUAL_ENV", "ARCHCALC_"))}
    env.update(GIT_ENV, PATH=os.pathsep.join(path), VIRTUAL_ENV=str(venv), PYTHONUNBUFFERED="1",
               PIP_NO_INDEX="1", PIP_NO_BUILD_ISOLATION="0", PIP_DISABLE_PIP_VERSION_CHECK="1",
               HOME=str(base), XDG_CACHE_HOME=str(base / "cache"), PIP_CACHE_DIR=str(base / "cache" / "pip"))

    repo = base / "repo"
    (repo / "specs").mkdir(parents=True)
    for name in DOC_SPECS:
        shutil.copy(ROOT / "specs" / f"{name}.yaml", repo / "specs")
    for args in (["init", "-q"], ["add", "."], ["commit", "-qm", "specs"]):
        subprocess.run(["git", *args], cwd=repo, env=env, check=True, capture_output=True)
    with open(repo / "specs" / "resnet18.yaml", "a") as fh:
        fh.write("# a comment: no layer changes\n")
    subprocess.run(["git", "commit", "-qam", "comment"], cwd=repo, env=env, check=True, capture_output=True)
    return repo, env, venv


def _bash(sandbox, script):
    repo, env, _ = sandbox
    proc = subprocess.run(["bash", "-eo", "pipefail", "-c", script], cwd=repo, env=env,
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    return proc.returncode, proc.stdout


def _run_ok(sandbox, script):
    code, out = _bash(sandbox, script)
    assert code == 0, script + "\n" + out
    return out


def test_the_ci_snippets_run_as_written(sandbox):
    """The wheel block, the GitHub job (a first run without a baseline, then with one), the baseline
    block, the GitLab job and the `git:` diff block, one after another as a team would paste them."""
    repo, env, venv = sandbox
    head = _head()
    text, bash, yamls = _page()
    assert len(bash) == 3, "docs/ci.md's ```bash blocks: the git diff, the wheel, the baseline"
    diff_block, wheel_block, baseline_block = bash
    assert "git:HEAD~1:" in diff_block and REPO_URL in wheel_block and COMMIT in wheel_block
    assert "--write-baseline archcalc-baseline.json" in baseline_block

    # the wheel, built from this checkout's HEAD as the page says, and committed
    _run_ok(sandbox, _ours(wheel_block, head))
    wheels = sorted(p.name for p in (repo / "ci").iterdir())
    assert wheels == ["archcalc-0.1.0-py3-none-any.whl"]
    assert not (repo / "archcalc-src").exists()

    workflow = next(b for b in yamls if isinstance(b, dict) and "jobs" in b)
    steps = [s["run"] for s in workflow["jobs"]["specs"]["steps"] if "run" in s]
    install, check, diff = steps
    assert install == "pip install ./ci/archcalc-0.1.0-py3-none-any.whl"
    _run_ok(sandbox, install)
    where = _run_ok(sandbox, "command -v archcalc; python -c 'import archcalc; print(archcalc.__file__)'").split()
    assert where[0] == str(venv / "bin" / "archcalc")
    assert where[1].startswith(str(venv)) and "site-packages" in where[1]  # the wheel's copy, not this checkout

    # the first run: no baseline file yet, a notice, exit 0, and both report files for the upload steps
    out = _run_ok(sandbox, check)
    assert ("::notice title=archcalc check::no baseline file 'archcalc-baseline.json' yet, so no totals were compared; "
            "write one with `archcalc check specs/ --write-baseline archcalc-baseline.json` and commit it") in out
    assert out.endswith("archcalc check: 6 specs: 6 passed, 0 failed, 0 unreadable; 1 lint finding ignored\n")
    sarif = json.loads((repo / "archcalc.sarif").read_text())
    assert sarif["runs"][0]["invocations"][0]["exitCode"] == 0
    assert sarif["runs"][0]["results"][0]["suppressions"][0]["kind"] == "inSource"  # squeezenet1_0's tiling
    assert (repo / "archcalc-junit.xml").read_text().count("<testsuite ") == 6

    out = _run_ok(sandbox, baseline_block)
    assert out.endswith("archcalc: wrote archcalc-baseline.json: 6 specs\n")
    out = _run_ok(sandbox, check)
    assert "::notice" not in out and out.endswith("archcalc check: 6 specs: 6 passed, 0 failed, 0 unreadable; 1 lint finding ignored\n")

    out = _run_ok(sandbox, diff)
    assert "::group::archcalc diff specs/resnet18.yaml" in out and "no layer changed" in out
    assert "no layer changed" in _run_ok(sandbox, diff_block)

    gitlab = next(b for b in yamls if isinstance(b, dict) and "archcalc" in b and "script" in b["archcalc"])
    job = gitlab["archcalc"]
    assert job["before_script"] == ["pip install ./ci/archcalc-0.1.0-py3-none-any.whl"]
    (repo / "archcalc-junit.xml").unlink()
    for line in job["before_script"] + job["script"]:
        _run_ok(sandbox, line)
    assert (repo / job["artifacts"]["reports"]["junit"]).read_text().count("<testsuite ") == 6

    # the pre-commit blocks name the hook the manifest declares; the local variant keeps its fields
    manifest = yaml.safe_load((ROOT / ".pre-commit-hooks.yaml").read_text())[0]
    remote = next(b for b in yamls if isinstance(b, dict) and "repos" in b and b["repos"][0]["repo"] != "local")
    assert remote["repos"][0]["hooks"][0]["id"] == manifest["id"]
    local = next(b for b in yamls if isinstance(b, dict) and "repos" in b and b["repos"][0]["repo"] == "local")
    hook = local["repos"][0]["hooks"][0]
    assert {k: v for k, v in hook.items() if k != "language"} == {k: v for k, v in manifest.items() if k not in ("language", "description")}


TINY = """name: tiny
input: [3, 32, 32]
layers:
  - {conv: {out: 16, kernel: 3, padding: 1}, name: conv1}
  - global_avgpool
  - flatten
  - {linear: {out: 10}, name: fc}
"""


@pytest.mark.skipif(not DEEP, reason="pre-commit pip-installs the cloned commit and its dependencies from the index: ARCHCALC_DEEP=1")
def test_the_pre_commit_configuration_runs_as_written(tmp_path):
    """The remote pre-commit block, its repo and rev replaced by this checkout and its HEAD: pre-commit
    clones the commit, builds the hook's environment (network: the package index) and runs it."""
    head = _head()
    text, _, _ = _page()
    config = next(b for b in re.findall(r"```yaml\n(.*?)```", text, re.S) if "rev:" in b)
    repo = tmp_path / "repo"
    (repo / "models").mkdir(parents=True)  # the block's `files:` is for specs under models/
    (repo / ".pre-commit-config.yaml").write_text(_ours(config, head))
    (repo / "models" / "tiny.yaml").write_text(TINY + "budget: {params: 500}\n")  # 448 + 170 = 618 params
    env = {**os.environ, **GIT_ENV, "PRE_COMMIT_HOME": str(tmp_path / "cache")}
    env.pop("PYTHONPATH", None)
    for args in (["init", "-q"], ["add", "."]):
        subprocess.run(["git", *args], cwd=repo, env=env, check=True, capture_output=True)
    cmd = [sys.executable, "-m", "pre_commit", "run", "--all-files", "--color", "never"]
    proc = subprocess.run(cmd, cwd=repo, capture_output=True, text=True, env=env)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "models/tiny.yaml:8: error [budget params]: params 618 > 500 (limit)" in proc.stdout
    (repo / "models" / "tiny.yaml").write_text(TINY + "budget: {params: 1K}\n")
    subprocess.run(["git", "add", "."], cwd=repo, env=env, check=True, capture_output=True)
    proc = subprocess.run(cmd, cwd=repo, capture_output=True, text=True, env=env)
    assert proc.returncode == 0, proc.stdout + proc.stderr
