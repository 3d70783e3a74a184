"""A file is a file (issue 19, items 1, 4 and 6): no code runs from a file *name*, and discovery
(folders, globs) is safe.

The attack: a pull request adds ``specs/evil.py`` and a file literally named
``specs/evil.py:Net.yaml``; the shell expands ``archcalc check specs/*.yaml`` (pre-commit passes
file names the same way) and archcalc used to take the second name for the import target
``specs/evil.py:Net``, import evil.py and run it. evil.py here writes a marker file when it is
imported: every case asserts the marker is absent, and one control asserts that naming the
target on purpose (``summary specs/evil.py:Net``, no such file) does import it, so the marker
check can fail. The rule is archcalc/spec/refs.py's; /work/notes/targets-security.md states it.
"""

from __future__ import annotations

import errno
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from conftest import ROOT
from test_hostile import MEMORY_LIMIT, TIME_LIMIT, assert_clean, run

EVIL = '''\
import pathlib

pathlib.Path(__file__).resolve().parent.parent.joinpath("MARKER").write_text("evil.py was imported")


class Net:
    yaml = staticmethod(lambda: __import__("torch").nn.Conv2d(3, 4, 3))
'''
SPEC = """\
name: fromyaml
input: [3, H, W]
symbols: {H: 16, W: 16}
layers:
  - {conv: {out: 4, kernel: 3}, name: c1}
  - relu
"""
NAME = "specs/evil.py:Net.yaml"


def _repo(tmp_path, content=SPEC):
    (tmp_path / "specs").mkdir()
    (tmp_path / "specs" / "evil.py").write_text(EVIL)
    (tmp_path / NAME).write_text(content)
    return tmp_path


def _clean_run(args, cwd, expect, message=None):
    code, out, err, seconds, peak = run(args, cwd)
    assert not (cwd / "MARKER").exists(), f"archcalc {' '.join(args)} imported evil.py"
    assert_clean(code, out, err, expect, message)
    assert seconds < TIME_LIMIT and peak < MEMORY_LIMIT, (seconds, peak)
    return out, err


# every command that takes a spec, with the attacker's file name; the file is read as YAML
COMMANDS = {
    "summary": ["summary", NAME],
    "compare": ["compare", NAME, "lenet5"],
    "explain": ["explain", NAME, "c1"],
    "graph": ["graph", NAME],
    "sweep": ["sweep", NAME, "--set", "H,W=8:16:8"],
    "verify": ["verify", NAME],
    "export": ["export", NAME, "--to", "torch"],
    "plot": ["plot", NAME, "-o", "{tmp}/plot.png"],
    "check": ["check", NAME],
}


# verify and export (torch), plot (matplotlib) and sweep (sympy) would spend seconds importing a package:
# the broken-spec case below runs them with the same file name
@pytest.mark.parametrize("command", ["summary", "compare", "explain", "graph", "check"])
def test_a_spec_named_like_a_target_is_read_as_a_spec(command, tmp_path):
    repo = _repo(tmp_path)
    args = [a.format(tmp=tmp_path) for a in COMMANDS[command]]
    out, err = _clean_run(args, repo, 0)
    if command in ("summary", "compare", "check"):
        assert "fromyaml" in out, out[:2000]


@pytest.mark.parametrize("command", list(COMMANDS))
def test_a_broken_spec_named_like_a_target_is_a_spec_error(command, tmp_path):
    repo = _repo(tmp_path, "layers: [\n")
    args = [a.format(tmp=tmp_path) for a in COMMANDS[command]]
    _clean_run(args, repo, 2, message="specs/evil.py:Net.yaml")
    assert not (tmp_path / "plot.png").exists()


def test_check_of_both_files_as_the_shell_expands_them(tmp_path):
    repo = _repo(tmp_path)
    code, out, err, _, _ = run(["check", "specs/evil.py", NAME], repo)
    assert not (repo / "MARKER").exists()
    # evil.py is read as a (broken) spec, never run; the .yaml is checked as a spec
    assert code == 2 and "Traceback" not in err
    assert err.splitlines() == ["archcalc: error: 1 of 2 specs could not be checked: specs/evil.py"], err
    assert "PASS  specs/evil.py:Net.yaml  fromyaml" in out
    # a glob the shell did not expand, and the folder: the same
    for args in (["check", "specs/*.yaml"], ["check", "specs"], ["check", "specs/**"], ["check", "."]):
        code, out, err, _, _ = run(args, repo)
        assert not (repo / "MARKER").exists(), args
        assert "fromyaml" in out and "Traceback" not in err, (args, out, err)


def test_check_never_imports_python_a_target_is_a_usage_error(tmp_path):
    repo = _repo(tmp_path)
    for target in ("specs/evil.py:Net", "this:s", "os.path:join"):
        out, err = _clean_run(["check", target], repo, 2, message="never imports Python")
        assert f"archcalc import {target} -o net.yaml" in err and f"archcalc summary {target}" in err
    # with a good spec beside it: still a usage error, before any work
    _clean_run(["check", NAME, "specs/evil.py:Net"], repo, 2, message="never imports Python")


def test_control_a_target_named_on_purpose_is_imported(tmp_path, monkeypatch):
    """The marker check can fail: summary of the target itself (no such file) imports evil.py.
    (A stand-in torch: the importer asks for torch before it imports the file, and the real one
    takes seconds to import.)"""
    import types

    fake = types.ModuleType("torch")
    fake.nn = types.SimpleNamespace(Module=type("Module", (), {}))
    monkeypatch.setitem(sys.modules, "torch", fake)
    repo = _repo(tmp_path)
    code, out, err, _, _ = run(["summary", "specs/evil.py:Net"], repo)
    assert (repo / "MARKER").exists()
    assert code == 2 and "not an nn.Module" in err and err.count("\n") == 1, err


def test_an_onnx_file_is_data_and_import_reads_no_spec(tmp_path):
    repo = _repo(tmp_path)
    (repo / "specs" / "evil.py:Net.onnx").write_bytes(b"\x08\x07garbage")
    _clean_run(["check", "specs/evil.py:Net.onnx"], repo, 2, message="is an ONNX file: check reads YAML specs")
    # `import` is the explicit form, and still a file is a file: a .yaml name is never imported
    for name in (NAME, "specs/evil.py"):
        _clean_run(["import", name], repo, 2, message="is a file, not an import target")
    _clean_run(["import", "specs/missing.py:Net.yaml"], repo, 2, message="is a file, not an import target")


def test_a_yaml_name_never_imports_an_installed_module(tmp_path):
    """``this:s.yaml`` (no such file) is a missing spec, never ``import this``: a fake module
    ``this`` on a PYTHONPATH of its own writes a marker when imported."""
    fake = tmp_path / "fake"
    fake.mkdir()
    marker = tmp_path / "MARKER"
    (fake / "this.py").write_text(f"open({str(marker)!r}, 'w').write('imported')\n")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(fake), str(ROOT)])}
    script = ("import sys\nfrom archcalc.cli.main import main\n"
              "codes = [main(a) for a in (['summary', 'this:s.yaml'], ['check', 'this:s.yaml'], ['check', 'this:s'],"
              " ['compare', 'this:s.yml', 'lenet5'], ['graph', 'this:S.YAML'])]\n"
              "print(codes, 'this' in sys.modules)\n")
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=tmp_path, env=env, timeout=60)
    assert proc.stdout.strip() == "[2, 2, 2, 2, 2] False", proc.stdout + proc.stderr
    assert not marker.exists()
    lines = proc.stderr.splitlines()
    assert lines[:2] == ["archcalc: error: no such file 'this:s.yaml'"] * 2, lines
    assert "never imports Python" in lines[2] and len(lines) == 5 and "Traceback" not in proc.stderr
    # control: the fake module is what `import this` finds here
    subprocess.run([sys.executable, "-c", "import this"], cwd=tmp_path, env=env, timeout=60, check=True)
    assert marker.exists()


def test_pre_commit_on_a_repository_with_evil_py_runs_no_python(tmp_path):
    """pre-commit itself, with the hook as .pre-commit-hooks.yaml declares it (a `repo: local`
    copy with every field kept but the language, which offline cannot be `python`: see
    test_ci_check.test_pre_commit_runs_the_hook_on_a_sample_repository)."""
    from pre_commit.all_languages import languages

    manifest = yaml.safe_load((ROOT / ".pre-commit-hooks.yaml").read_text())
    (hook,) = [h for h in manifest if h["id"] == "archcalc-check"]
    local = {**hook, "language": "unsupported" if "unsupported" in languages else "system"}
    (tmp_path / "repo").mkdir()
    repo = _repo(tmp_path / "repo")
    (repo / "specs" / "ok.yaml").write_text(SPEC.replace("fromyaml", "okspec"))
    (repo / ".pre-commit-config.yaml").write_text(yaml.safe_dump({"repos": [{"repo": "local", "hooks": [local]}]}))
    git_env = {**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t", "GIT_COMMITTER_NAME": "t",
               "GIT_COMMITTER_EMAIL": "t@t"}
    for cmd in (["init", "-q"], ["add", "."]):
        subprocess.run(["git", *cmd], cwd=repo, check=True, capture_output=True, env=git_env)
    env = {**git_env, "PRE_COMMIT_HOME": str(tmp_path / "cache"),
           "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
           "PATH": str(Path(sys.executable).parent) + os.pathsep + os.environ.get("PATH", "")}
    cmd = [sys.executable, "-m", "pre_commit", "run", "--all-files", "--color", "never", "--verbose"]
    proc = subprocess.run(cmd, cwd=repo, capture_output=True, text=True, env=env, timeout=120)
    assert not (repo / "MARKER").exists(), proc.stdout
    assert proc.returncode == 0, proc.stdout + proc.stderr
    # pre-commit passed the attacker's file name and archcalc read it as the spec it is
    assert "PASS  specs/evil.py:Net.yaml  fromyaml" in proc.stdout, proc.stdout
    assert "PASS  specs/ok.yaml  okspec" in proc.stdout


# --------------------------------------------------------------------------- discovery


def _tiny(folder: Path, name="a.yaml"):
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_text(SPEC)


def test_symlink_loops_are_not_descended(tmp_path):
    _tiny(tmp_path / "specs")
    _tiny(tmp_path / "specs" / "sub", "b.yaml")
    os.symlink("..", tmp_path / "specs" / "sub" / "up")  # a link to an ancestor
    os.symlink(".", tmp_path / "specs" / "sub" / "self")
    os.symlink(str(tmp_path), tmp_path / "specs" / "root")
    for args in (["check", "specs"], ["check", "specs/**/*.yaml"], ["check", "specs/**"], ["check", "**/*.yaml"]):
        code, out, err, seconds, _ = run(args, tmp_path)
        assert code == 0 and "Traceback" not in err, (args, out, err)
        assert [ln.split()[1] for ln in out.splitlines() if ln.startswith("PASS")] == ["specs/a.yaml", "specs/sub/b.yaml"], out
        assert seconds < TIME_LIMIT
    # a symlinked folder named on the command line is read (once); inside it, links are not descended
    code, out, err, _, _ = run(["check", "specs/root"], tmp_path)
    assert code == 0 and out.count("PASS") == 2, out
    # two links naming each other are a spec that cannot be read, not a hang
    os.symlink("loop2.yaml", tmp_path / "specs" / "loop1.yaml")
    os.symlink("loop1.yaml", tmp_path / "specs" / "loop2.yaml")
    code, out, err, _, _ = run(["check", "specs"], tmp_path)
    assert code == 2 and out.count("PASS") == 2 and "Traceback" not in err, (out, err)
    assert "error: cannot read 'specs/loop1.yaml': Too many levels of symbolic links" in out, out


def _deny(monkeypatch, folder: Path):
    """chmod 000 as seen by a process that is not root (the tests may run as root)."""
    real = os.scandir
    target = os.path.realpath(folder)

    def scandir(path="."):
        if os.path.realpath(path) == target:
            raise PermissionError(errno.EACCES, "Permission denied", os.fspath(path))
        return real(path)

    monkeypatch.setattr(os, "scandir", scandir)


@pytest.mark.parametrize("arg", ["specs", "specs/**/*.yaml", "specs/*/*.yaml"])
def test_an_unreadable_folder_is_an_error_naming_it(arg, tmp_path, monkeypatch):
    """Not skipped silently (the check would pass without seeing the specs in it)."""
    _tiny(tmp_path / "specs")
    _tiny(tmp_path / "specs" / "secret", "over_budget.yaml")
    _deny(monkeypatch, tmp_path / "specs" / "secret")
    code, out, err, _, _ = run(["check", arg], tmp_path)
    message = "cannot read the folder 'specs/secret': permission denied"
    if arg == "specs/*/*.yaml":  # the only result: one line
        assert_clean(code, out, err, 2, message)
        return
    assert code == 2, (out, err)
    assert f"error: {message}" in out and "PASS  specs/a.yaml" in out, out
    assert err.splitlines() == [f"archcalc: error: 1 of 2 specs could not be checked: {arg}"], err


def test_an_unreadable_folder_alone_is_one_line(tmp_path, monkeypatch):
    (tmp_path / "secret").mkdir()
    _deny(monkeypatch, tmp_path / "secret")
    code, out, err, _, _ = run(["check", "secret"], tmp_path)
    assert_clean(code, out, err, 2, "cannot read the folder 'secret': permission denied")


def test_check_of_an_onnx_file_says_how_to_analyse_it(tmp_path):
    (tmp_path / "m.onnx").write_bytes(b"\x08\x07\x12\x00\xff\xfe")
    code, out, err, _, _ = run(["check", "m.onnx"], tmp_path)
    assert_clean(code, out, err, 2, "'m.onnx' is an ONNX file: check reads YAML specs; analyse it with: archcalc summary m.onnx")
    assert "UTF-8" not in err and "archcalc import m.onnx" in err


@pytest.mark.parametrize("where", ["spec", "check", "folder", "baseline"])
def test_fifos_and_devices_are_not_regular_files(where, tmp_path):
    _tiny(tmp_path / "specs")
    fifo = tmp_path / "specs" / "pipe.yaml"
    os.mkfifo(fifo)  # opening it for reading would block without O_NONBLOCK: the alarm would fail the case
    args = {"spec": ["summary", "specs/pipe.yaml"], "check": ["check", "specs/pipe.yaml"],
            "folder": ["check", "specs"], "baseline": ["check", "specs/a.yaml", "--baseline", "specs/pipe.yaml"]}[where]
    code, out, err, seconds, _ = run(args, tmp_path, timeout=10)
    assert code == 2 and "no such file" not in err + out and "Traceback" not in err, (out, err)
    if where == "baseline":
        assert_clean(code, out, err, 2, "--baseline 'specs/pipe.yaml': a FIFO, not a regular file")
        code, out, err, _, _ = run(["check", "specs/a.yaml", "--baseline", "/dev/null"], tmp_path, timeout=10)
        assert_clean(code, out, err, 2, "--baseline '/dev/null': a device, not a regular file")
    elif where == "folder":
        assert "error: 'specs/pipe.yaml' is a FIFO, not a spec file" in out and "PASS  specs/a.yaml" in out
    else:
        assert_clean(code, out, err, 2, "'specs/pipe.yaml' is a FIFO, not a spec file")
    assert seconds < TIME_LIMIT


@pytest.mark.parametrize("args, message", [
    (["summary", "a" * 300], "(300 characters) is not in the zoo"),
    (["check", "a" * 300], "(300 characters) is not in the zoo"),
    (["summary", "specs/" + "a" * 300 + ".yaml"], "ile name too long"),
    (["check", "specs/" + "a" * 300 + ".yaml"], "ile name too long"),
    (["check", "specs/" + "a" * 300 + "/**/*.yaml"], "ile name too long"),
    (["check", "a.yaml", "--baseline", "b" * 300 + ".json"], "ile name too long"),
    (["diff", "specs/" + "a" * 300 + ".yaml", "a.yaml"], "ile name too long"),
    (["summary", "\udcff.yaml"], "no such file '\\udcff.yaml'"),
    (["check", "\udcff.yaml"], "no such file '\\udcff.yaml'"),
    (["summary", "\udcff"], "is not in the zoo"),
    (["check", "specs/\udcff*"], "no file matches 'specs/\\udcff*'"),
    (["summary", "x\udcff:Net"], "is not in the zoo"),
    (["import", "\udcff.yaml"], "is a file, not an import target"),
])
def test_long_and_undecodable_names_are_one_line(args, message, tmp_path):
    _tiny(tmp_path)
    _tiny(tmp_path / "specs")
    code, out, err, _, _ = run(args, tmp_path)
    assert_clean(code, out, err, 2, message)


def test_undecodable_file_names_on_disk_are_checked_not_tracebacks(tmp_path):
    _tiny(tmp_path / "specs")
    bad = os.fsdecode(b"specs/\xff\xfe.yaml")
    (tmp_path / bad).write_text(SPEC)
    script = ("import sys\nfrom archcalc.cli.main import main\n"
              f"sys.exit(max(main(a) for a in (['check', 'specs'], ['check', {bad!r}], ['summary', {bad!r}])))\n")
    proc = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, capture_output=True, timeout=60,
                          env={**os.environ, "PYTHONPATH": str(ROOT), "PYTHONIOENCODING": "utf-8"})
    assert proc.returncode == 0 and proc.stderr == b"", (proc.stdout[-500:], proc.stderr[-500:])
    assert proc.stdout.count(b"PASS") == 3, proc.stdout


def _deep(top: Path, depth: int, make: bool):
    """Make (or remove) top/d/d/.../d, ``depth`` folders, one relative step at a time (os.makedirs
    and shutil.rmtree recurse, and absolute paths make each step cost the whole depth)."""
    here = os.getcwd()
    try:
        os.chdir(top)
        if make:
            for _ in range(depth):
                os.mkdir("d")
                os.chdir("d")
            Path("a.yaml").write_text(SPEC)
        else:
            os.chdir(os.path.join(*(["d"] * depth)))
            os.remove("a.yaml")
            for _ in range(depth):
                os.chdir("..")
                os.rmdir("d")
    finally:
        os.chdir(here)


def test_a_spec_deeper_than_the_stack_is_found(tmp_path, monkeypatch):
    """The walk is a loop, not a recursion: os.walk recursed, a RecursionError on a spec 1,200
    folders deep. Here the stack is made short instead of the tree deep (each rmdir costs
    milliseconds on some file systems): 300 folders under a limit of 200 frames more than now,
    with the folder-depth limit (100, tests/security/test_hostile_misc.py) raised for the test."""
    import inspect

    import archcalc.limits

    monkeypatch.setattr(archcalc.limits, "MAX_FOLDER_DEPTH", 1000)

    _deep(tmp_path, 300, make=True)
    limit = sys.getrecursionlimit()
    try:
        sys.setrecursionlimit(len(inspect.stack(0)) + 200)
        with pytest.raises(RecursionError):  # the control: a recursive walk fails here
            list(os.walk(tmp_path))
        code, out, err, seconds, _ = run(["check", "."], tmp_path)
    finally:
        sys.setrecursionlimit(limit)
        _deep(tmp_path, 300, make=False)
    assert code == 0 and out.count("PASS") == 1 and "Traceback" not in err, (out[-500:], err[-500:])
    assert seconds < TIME_LIMIT


def test_a_bare_zoo_name_beside_a_folder_of_that_name_is_the_zoo_with_a_note(tmp_path):
    (tmp_path / "lenet5").mkdir()
    for command in ("summary", "check"):
        code, out, err, _, _ = run([command, "lenet5"], tmp_path)
        assert code == 0 and "60,840" in out, (out, err)
        assert err == "archcalc: note: 'lenet5' is the zoo's spec; to use the folder here, give its path: ./lenet5\n"
