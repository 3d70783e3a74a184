"""Issue 19, the remaining hostile cases: diff's git timeout, the torch memory guard under the
process's own limits, a 1,200-folder tree, hostile baselines, mathtext names in plot, integer
options of thousands of digits, and a corrupted zoo cache.

Each case runs the CLI (in this process through test_hostile's ``run``, which measures time and
added peak memory, or in a child where a process-wide limit is the point) and asserts the exit
code, exactly one line on stderr with no traceback, nothing stray left behind (files, processes),
within 5 s and 500 MB.
"""

from __future__ import annotations

import json
import os
import resource
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

from archcalc import limits, safejson
from conftest import ROOT
from test_hostile import MEMORY_LIMIT, TIME_LIMIT, assert_clean, run

TINY = "name: tiny\ninput: [3, 8, 8]\nlayers: [{conv: {out: 4, kernel: 3}}, relu]\n"


def _files(folder: Path) -> dict:
    """Every path below ``folder`` with its size and mtime (to see that nothing else changed)."""
    out, stack = {}, [str(folder)]
    while stack:  # iterative: os.walk recurses once per level (the 1,200-folder tree below)
        here = stack.pop()
        for entry in os.scandir(here):
            st = entry.stat(follow_symlinks=False)
            out[os.path.relpath(entry.path, folder)] = (stat.S_IFMT(st.st_mode), st.st_size, st.st_mtime_ns)
            if entry.is_dir(follow_symlinks=False):
                stack.append(entry.path)
    return out


def _bounded(seconds, peak):
    assert seconds < TIME_LIMIT, f"{seconds:.1f} s"
    assert peak < MEMORY_LIMIT, f"{peak / 2**20:.0f} MB"


def _gone(pid: int) -> bool:
    """No such process, or only a zombie (killed; this container's init may not reap it)."""
    try:
        with open(f"/proc/{pid}/stat") as fh:
            state = fh.read().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return True
    return state in ("Z", "X")


# --------------------------------------------------------------------------- diff: git killed as a group


def _fake_git(folder: Path, body: str) -> Path:
    folder.mkdir()
    git = folder / "git"
    git.write_text("#!/bin/sh\n" + body)
    git.chmod(0o755)
    return folder


def test_git_that_hangs_is_killed_with_its_children(tmp_path):
    """git (here a script standing in for it) starts a child and never answers: after the timeout
    (ARCHCALC_GIT_TIMEOUT, for tests) both are killed, one line, exit 2."""
    pids = tmp_path / "pids"
    bin_dir = _fake_git(tmp_path / "bin", f'sleep 1000 &\necho "$$ $!" > "{pids}"\nsleep 1000\n')
    (tmp_path / "s.yaml").write_text(TINY)
    before = _files(tmp_path)
    code, out, err, seconds, peak = run(["diff", "git:HEAD:s.yaml", "s.yaml"], tmp_path,
                                        env={"PATH": f"{bin_dir}:{os.environ['PATH']}", "ARCHCALC_GIT_TIMEOUT": "0.5"})
    assert_clean(code, out, err, 2, "git did not answer in 0.5 s (stopped, with everything it started)")
    _bounded(seconds, peak)
    git_pid, child_pid = map(int, pids.read_text().split())
    deadline = time.monotonic() + 2
    while not (_gone(git_pid) and _gone(child_pid)) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert _gone(git_pid) and _gone(child_pid), "git or the child it started is still running"
    assert _files(tmp_path).keys() - before.keys() == {"pids"}


def test_git_timeout_setting_is_checked(tmp_path):
    (tmp_path / "s.yaml").write_text(TINY)
    code, out, err, seconds, peak = run(["diff", "git:HEAD:s.yaml", "s.yaml"], tmp_path, env={"ARCHCALC_GIT_TIMEOUT": "nan"})
    assert_clean(code, out, err, 2, "ARCHCALC_GIT_TIMEOUT 'nan': expected a number of seconds from 0.1 to 3600")


def test_no_git_is_one_line(tmp_path):
    (tmp_path / "s.yaml").write_text(TINY)
    code, out, err, seconds, peak = run(["diff", "git:HEAD:s.yaml", "s.yaml"], tmp_path, env={"PATH": str(tmp_path / "none")})
    assert_clean(code, out, err, 2, "cannot run git")


# --------------------------------------------------------------------------- the memory guard's own limits


def _cgroup_tree(tmp_path, proc_cgroup: str, files: dict, status: str = "VmSize:\t1000 kB\nVmData:\t500 kB\n"):
    proc = tmp_path / "proc"
    proc.mkdir()
    (proc / "cgroup").write_text(proc_cgroup)
    (proc / "status").write_text(status)
    root = tmp_path / "cg"
    for rel, text in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)
    return str(proc), str(root)


@pytest.mark.parametrize("proc_cgroup, files, expect", [
    # v2: the tightest of the process's cgroup and its parents, less each one's usage
    ("0::/a/b\n", {"a/b/memory.max": "3221225472\n", "a/b/memory.current": "1073741824\n", "a/memory.max": "max\n",
                   "memory.max": "max\n"}, 2 * 2**30),
    ("0::/a/b\n", {"a/b/memory.max": "max\n", "a/memory.max": "1073741824\n", "a/memory.current": "536870912\n"}, 2**29),
    # v1: memory.limit_in_bytes less memory.usage_in_bytes; 2**63 rounded to a page is no limit
    ("4:memory:/x\n1:cpu:/\n", {"memory/x/memory.limit_in_bytes": "2147483648\n", "memory/x/memory.usage_in_bytes": "1073741824\n",
                                "memory/memory.limit_in_bytes": "9223372036854771712\n"}, 2**30),
    ("4:memory:/x\n", {"memory/memory.limit_in_bytes": "9223372036854771712\n"}, None),
    # a path in /proc that leaves the mount is read at the mount itself
    ("0::/../../etc\n", {"memory.max": "1000000\n", "memory.current": "garbage\n"}, 1_000_000),
    ("0::/\n", {}, None),
])
def test_cgroup_limits_are_read(tmp_path, monkeypatch, proc_cgroup, files, expect):
    monkeypatch.setattr(resource, "getrlimit", lambda which: (resource.RLIM_INFINITY, resource.RLIM_INFINITY))
    proc, root = _cgroup_tree(tmp_path, proc_cgroup, files)
    got = limits.process_memory_limit(proc, root)
    assert (None if got is None else int(got)) == expect
    if expect is not None:
        assert "cgroup" in got.source


def test_rlimits_less_what_the_process_uses(tmp_path, monkeypatch):
    proc, root = _cgroup_tree(tmp_path, "0::/\n", {}, status="VmSize:\t1048576 kB\nVmData:\t102400 kB\n")
    given = {resource.RLIMIT_AS: 3 * 2**30, resource.RLIMIT_DATA: 2**30}
    monkeypatch.setattr(resource, "getrlimit", lambda which: (given.get(which, resource.RLIM_INFINITY), resource.RLIM_INFINITY))
    got = limits.process_memory_limit(proc, root)
    # RLIMIT_AS leaves 3 GiB - 1 GiB = 2 GiB; RLIMIT_DATA leaves 1 GiB - 100 MiB, the least
    assert int(got) == 2**30 - 100 * 2**20 and "RLIMIT_DATA" in got.source
    given[resource.RLIMIT_DATA] = resource.RLIM_INFINITY
    got = limits.process_memory_limit(proc, root)
    assert int(got) == 2 * 2**30 and "RLIMIT_AS" in got.source


@pytest.mark.parametrize("extra", [[], ["--max-memory", "100GiB"]], ids=["default", "explicit-max-memory"])
def test_guard_refuses_above_the_process_limit(tmp_path, monkeypatch, extra):
    """With the process's own limit at 64 MiB, a 944 MiB verify is refused before torch is
    imported, even when --max-memory asks for more."""
    own = limits.MemoryLimit(64 * 2**20, "what this process's address-space limit, RLIMIT_AS (ulimit -v), leaves it",
                             "RLIMIT_AS (ulimit -v)")
    monkeypatch.setattr(limits, "process_memory_limit", lambda *a, **k: own)
    had_torch = "torch" in sys.modules
    code, out, err, seconds, peak = run(["verify", "vgg16", "--device", "cpu", "--input", "3x600x600", *extra], tmp_path)
    assert_clean(code, out, err, 2, "verify --device cpu would allocate about 944.37 MiB (990,245,696 bytes), above the limit of")
    assert "RLIMIT_AS" in err and "--max-memory" not in err  # the option cannot raise the process's limit
    assert had_torch or "torch" not in sys.modules
    _bounded(seconds, peak)


def test_guard_under_a_real_rlimit_as(tmp_path):
    """A child under RLIMIT_AS = 1 GiB (set before it starts): the 944 MiB estimate is above half
    of what that leaves, refused in one line before anything is allocated."""
    def limit():
        resource.setrlimit(resource.RLIMIT_AS, (2**30, 2**30))

    start = time.monotonic()
    proc = subprocess.run([sys.executable, "-m", "archcalc", "verify", "vgg16", "--device", "cpu", "--input", "3x600x600"],
                          capture_output=True, text=True, cwd=tmp_path, preexec_fn=limit, timeout=30,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert time.monotonic() - start < TIME_LIMIT
    assert_clean(proc.returncode, proc.stdout, proc.stderr, 2, "verify --device cpu would allocate about 944.37 MiB")
    assert "RLIMIT_AS (ulimit -v)" in proc.stderr
    assert list(tmp_path.iterdir()) == []


# --------------------------------------------------------------------------- a tree 1,200 folders deep

DEPTH = 1200


def _deep_tree(tmp_path) -> tuple[Path, Path]:
    """deep/a/a/.../a/s.yaml, 1,200 folders, made one level at a time by relative steps (each
    mkdir of a long path would look up every level again, and os.makedirs recurses)."""
    top = tmp_path / "deep"
    top.mkdir()
    cwd = os.getcwd()
    try:
        os.chdir(top)
        for _ in range(DEPTH):
            os.mkdir("a")
            os.chdir("a")
        Path("s.yaml").write_text(TINY)
    finally:
        os.chdir(cwd)
    return top, top / Path(*["a"] * DEPTH) / "s.yaml"  # about 2,400 characters: within PATH_MAX


def _remove_deep(top: Path, spec: Path):
    """Bottom up, by relative steps (shutil.rmtree recurses once per level)."""
    cwd = os.getcwd()
    try:
        os.chdir(spec.parent)
        os.unlink("s.yaml")
        for _ in range(DEPTH):
            os.chdir("..")
            os.rmdir("a")
    finally:
        os.chdir(cwd)
    top.rmdir()


@pytest.fixture
def fast_tmp(tmp_path):
    """A fresh folder on /dev/shm where there is one (1,200 mkdir and rmdir take 5 s on some
    disks, 0.05 s in memory), else tmp_path."""
    import tempfile

    shm = Path("/dev/shm")
    if not (shm.is_dir() and os.access(shm, os.W_OK)):
        yield tmp_path
        return
    folder = Path(tempfile.mkdtemp(prefix="archcalc-deep-", dir=shm))
    try:
        yield folder
    finally:
        os.rmdir(folder)  # emptied by the test; a leftover fails here, visibly


def test_tree_1200_folders_deep(fast_tmp):
    tmp_path = fast_tmp
    top, spec = _deep_tree(tmp_path)
    try:
        st = spec.stat()
        code, out, err, seconds, peak = run(["check", "deep"], tmp_path)
        assert_clean(code, out, err, 2, "'deep': folders nested more than 100 levels deep below it")
        _bounded(seconds, peak)
        rel = str(spec.relative_to(tmp_path))
        for args in (["summary", rel], ["check", rel]):  # the file itself, named: read as any other
            code, out, err, seconds, peak = run(args, tmp_path)
            assert code == 0 and err == "" and "Traceback" not in out, err[-500:]
            _bounded(seconds, peak)
        assert os.listdir(tmp_path) == ["deep"] and os.listdir(spec.parent) == ["s.yaml"]
        assert spec.stat().st_mtime_ns == st.st_mtime_ns
    finally:
        _remove_deep(top, spec)


def test_tree_100_folders_deep_is_walked(tmp_path):
    spec = tmp_path / "t" / Path(*["b"] * 99) / "s.yaml"
    spec.parent.mkdir(parents=True)
    spec.write_text(TINY)
    code, out, err, seconds, peak = run(["check", "t"], tmp_path)
    assert code == 0 and "1 spec: 1 passed" in out, (out, err)


# --------------------------------------------------------------------------- hostile baselines


def _baseline(tmp_path) -> dict:
    (tmp_path / "s.yaml").write_text(TINY)
    code, out, err, *_ = run(["check", "s.yaml", "--write-baseline", "b.json"], tmp_path)
    assert code == 0, err
    doc = json.loads((tmp_path / "b.json").read_text())
    (tmp_path / "b.json").unlink()
    return doc


def _edit(doc, path, value):
    d = json.loads(json.dumps(doc))
    target = d
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    return json.dumps(d)


BAD_BASELINES = [
    # (what, path to change or None for raw text, value, message)
    ("options-list", ("options",), [1, 2], "$.options: expected a mapping, found a list"),
    ("options-string", ("options",), "fp32", "$.options: expected a mapping, found a string"),
    ("set-list", ("options", "set"), ["H"], "$.options.set: expected a mapping, found a list"),
    ("input-zero", ("options", "input"), [3, 0, 8], "$.options.input[1]: expected an integer from 1 to 1,099,511,627,776, found 0"),
    ("input-long", ("options", "input"), [3] * 5, "$.options.input: expected a list of 1 to 3 items, found 5"),
    ("batch-bool", ("options", "batch"), True, "$.options.batch: expected an integer from 1 to 1,099,511,627,776 or a string, found a boolean"),
    ("specs-list", ("specs",), [], "$.specs: expected a mapping, found a list"),
    ("entry-null", ("specs", "s.yaml"), None, "$.specs['s.yaml']: expected a mapping, found null"),
    ("totals-float", ("specs", "s.yaml", "totals", "params"), 1.5, "$.specs['s.yaml'].totals.params: expected an integer from 0 to 2**256 - 1, found a number with a fraction"),
    ("totals-negative", ("specs", "s.yaml", "totals", "macs"), -1, "totals.macs: expected an integer from 0 to 2**256 - 1, found -1"),
    ("totals-huge", ("specs", "s.yaml", "totals", "macs"), 10**400, "found an integer of 1329 bits"),
    ("layer-short", ("specs", "s.yaml", "layers", "conv1"), [1, 2], "$.specs['s.yaml'].layers.conv1: expected a list of 3 items, found 2"),
    ("layer-string", ("specs", "s.yaml", "layers", "conv1"), [1, "2", 3], "$.specs['s.yaml'].layers.conv1[1]: expected an integer"),
    ("layers-list", ("specs", "s.yaml", "layers"), [[1, 2, 3]], "$.specs['s.yaml'].layers: expected a mapping, found a list"),
    ("unknown-key", ("specs", "s.yaml", "extra"), 1, "$.specs['s.yaml']: unknown key 'extra'"),
    ("name-number", ("specs", "s.yaml", "name"), 7, "$.specs['s.yaml'].name: expected a string, found an integer"),
    ("version-true", ("archcalc_baseline",), True, "not an archcalc baseline (version 1)"),
    ("deep-100k", None, "[" * 100_000 + "]" * 100_000, "nested 100,000 levels deep, more than the limit of 16"),
    ("deep-inside", None, '{"archcalc_baseline": 1, "specs": {"a": ' + "{\"x\": " * 50_000 + "1" + "}" * 50_000 + "}}",
     "nested 50,002 levels deep"),
    ("digits-5000", None, '{"archcalc_baseline": 1, "specs": {}, "archcalc": ' + "9" * 5000 + "}", "not JSON (an integer of more than 4,300 digits)"),
    ("binary", None, b"\xff\xfe\x00[", "not UTF-8 text (byte 0)"),
    ("truncated", None, '{"archcalc_baseline": 1, "specs": {"s.yaml": {"totals": {', "not JSON (Expecting"),
]


@pytest.mark.parametrize("what, path, value, message", BAD_BASELINES, ids=[b[0] for b in BAD_BASELINES])
def test_hostile_baseline(tmp_path, what, path, value, message):
    doc = _baseline(tmp_path)
    text = value if path is None else _edit(doc, path, value)
    base = tmp_path / "b.json"
    base.write_bytes(text if isinstance(text, bytes) else text.encode())
    before = _files(tmp_path)
    code, out, err, seconds, peak = run(["check", "s.yaml", "--baseline", "b.json"], tmp_path)
    assert_clean(code, out, err, 2, message)
    assert err.startswith("archcalc: error: --baseline 'b.json': ")
    _bounded(seconds, peak)
    assert _files(tmp_path) == before


def test_good_baseline_still_compares(tmp_path):
    doc = _baseline(tmp_path)
    (tmp_path / "b.json").write_text(json.dumps(doc))
    code, out, err, *_ = run(["check", "s.yaml", "--baseline", "b.json"], tmp_path)
    assert code == 0 and "1 spec: 1 passed" in out, (out, err)


def test_json_depth_scan_is_linear_and_ignores_strings():
    assert safejson.depth(b'{"a": "[[[[", "b": [["]]]]\\"[["]]}') == 3
    assert safejson.depth(b'"unterminated [[[[') == 0
    start = time.monotonic()
    for text in (b'"' + b'\\"' * 500_000, b'"' + b"\\" * 1_000_001, b"[" * 1_000_000):
        safejson.depth(text)
    assert time.monotonic() - start < 2.0  # no quadratic rescans of a string that never ends


# --------------------------------------------------------------------------- plot: mathtext in names


MATH_NAMES = ["$\\frac{}{}$", "$\\invalid$", "$x", "a$b$c$d", "\\$x$", "$$"]


def test_plot_draws_mathtext_names_literally(tmp_path):
    """Names that matplotlib would parse as mathtext ('$\\frac{}{}$' raised inside it) are drawn
    as the characters given: one network per name, compared in one figure, and one alone."""
    pytest.importorskip("matplotlib")
    specs = []
    for i, name in enumerate(MATH_NAMES):
        spec = tmp_path / f"m{i}.yaml"
        spec.write_text(f"name: {json.dumps(name)}\ntitle: {json.dumps(name)}\ninput: [3, 8, 8]\n"
                        "layers: [{conv: {out: 4, kernel: 3}}, relu]\n")
        specs.append(spec.name)
    code, out, err, seconds, peak = run(["plot", *specs, "--compare", "-o", "c.svg"], tmp_path)
    assert code == 0 and err == "wrote c.svg\n" and "Traceback" not in err, err[-2000:]
    _bounded(seconds, peak)
    svg = (tmp_path / "c.svg").read_text()
    assert "<!-- " + " vs ".join(MATH_NAMES) + ": MACs, summed from the input -->" in svg  # the title
    for name in MATH_NAMES:
        assert f"<!-- {name} (" in svg  # each legend entry, as given
    code, out, err, seconds, peak = run(["plot", specs[0], "-o", "m.png"], tmp_path)
    assert code == 0 and err == "wrote m.png\n", err[-2000:]
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(specs + ["c.svg", "m.png"])


# --------------------------------------------------------------------------- integer options

DIGITS = "9" * 5000  # over Python's 4,300-digit int <-> str limit
DIGITS_3000 = "9" * 3000  # under it: int() would take it, and an OverflowError followed


@pytest.mark.parametrize("args, message", [
    (["summary", "s.yaml", "--ensemble", DIGITS_3000], "--ensemble '9999"),
    (["summary", "s.yaml", "--ensemble", DIGITS], "--ensemble '9999"),
    (["summary", "s.yaml", "--crops", DIGITS_3000], "--crops '9999"),
    (["compare", "s.yaml", "s.yaml", "--crops", DIGITS_3000], "--crops '9999"),
    (["compare", "s.yaml", "s.yaml", "--ensemble", "-" + DIGITS], "--ensemble '-9999"),
    (["summary", "s.yaml", "--depth", DIGITS_3000], "--depth '9999"),
    (["summary", "s.yaml", "--max-rows", DIGITS], "--max-rows '9999"),
    (["graph", "s.yaml", "--depth", DIGITS_3000], "--depth '9999"),
    (["check", "s.yaml", "--jobs", DIGITS_3000], "--jobs '9999"),
    (["verify", "s.yaml", "--batch", DIGITS], "--batch '9999"),
    (["verify", "s.yaml", "--batch", DIGITS_3000], "--batch '9999"),
], ids=["ensemble-3000", "ensemble-5000", "crops", "compare-crops", "compare-negative", "depth", "max-rows",
        "graph-depth", "jobs", "verify-batch-5000", "verify-batch-3000"])
def test_integer_options_of_thousands_of_digits(tmp_path, args, message):
    (tmp_path / "s.yaml").write_text(TINY)
    code, out, err, seconds, peak = run(args, tmp_path)
    assert_clean(code, out, err, 2, message)
    assert "expected an integer of at most 18 digits" in err
    _bounded(seconds, peak)


@pytest.mark.parametrize("args, message", [
    (["summary", "s.yaml", "--ensemble", "1000001"], "--ensemble 1000001: expected an integer from 1 to 1,000,000"),
    (["summary", "s.yaml", "--crops", "0"], "--crops 0: expected an integer from 1 to 1,000,000"),
    (["summary", "s.yaml", "--crops", "x"], "--crops x: expected an integer"),
    (["verify", "s.yaml", "--batch", "0"], "--batch 0: expected an integer from 1 to 1,099,511,627,776"),
    (["verify", "s.yaml", "--batch", "1099511627777"], "--batch 1099511627777: expected an integer from 1 to"),
    (["summary", "s.yaml", "--tiling", "1:" + "9" * 40], "--tiling 1:9999"),
    (["sweep", "s.yaml", "--set", "H=1:" + "9" * 40], "--set H=1:9999"),
])
def test_integer_options_out_of_range(tmp_path, args, message):
    (tmp_path / "s.yaml").write_text(TINY)
    code, out, err, seconds, peak = run(args, tmp_path)
    assert_clean(code, out, err, 2, message)
    _bounded(seconds, peak)


def test_largest_multipliers_still_print(tmp_path):
    (tmp_path / "s.yaml").write_text(TINY)
    code, out, err, seconds, peak = run(["summary", "s.yaml", "--ensemble", "1000000", "--crops", "1000000",
                                         "--batch", str(2**40)], tmp_path)
    assert code == 0 and err == "", err  # the table (its ratios once met a float: OverflowError)
    _bounded(seconds, peak)
    code, out, err, seconds, peak = run(["summary", "s.yaml", "--ensemble", "1000000", "--crops", "1000000",
                                         "-f", "json"], tmp_path)
    totals = json.loads(out)["totals"]
    # conv: 4 x 27 + 4 = 112 params, x 10**6 models; 4 x 6 x 6 outputs x 27 = 3,888 MACs, x 10**6 x 10**6
    assert (totals["params"], totals["macs"]) == (112 * 10**6, 3888 * 10**12)


# --------------------------------------------------------------------------- a corrupted zoo cache


@pytest.fixture
def small_zoo(tmp_path, monkeypatch):
    """A zoo of one network and a cache folder of its own; returns the cache file's path."""
    from archcalc.spec import zoo
    from archcalc.spec import zoocache

    specs = tmp_path / "specs"
    specs.mkdir()
    (specs / "lenet5.yaml").write_bytes((zoo.specs_dir() / "lenet5.yaml").read_bytes())
    monkeypatch.setattr(zoo, "specs_dir", lambda: specs)
    folder = tmp_path / "cache"
    folder.mkdir()
    monkeypatch.setenv("ARCHCALC_CACHE_DIR", str(folder))
    monkeypatch.delenv("ARCHCALC_NO_CACHE", raising=False)
    return folder / f"zoo-{zoocache.code_digest()[:32]}.json"


def _good_cache(path: Path) -> dict:
    code, out, err, *_ = run(["list", "-f", "json"], path.parent.parent)
    assert code == 0 and err == ""
    doc = json.loads(path.read_text())
    path.unlink()
    return doc, out


def _cache_edit(doc, change):
    d = json.loads(json.dumps(doc))
    change(d)
    return json.dumps(d)


def _set(d, keys, value):
    for k in keys[:-1]:
        d = d[k]
    d[keys[-1]] = value


CORRUPTIONS = {
    "deep": lambda doc: '{"format": 1, "entries": ' + "[" * 200_000 + "]" * 200_000 + "}",
    "deep-in-entry": lambda doc: _cache_edit(doc, lambda d: _set(d, ["entries", "lenet5", "entry", "title"], "@"))
    .replace('"@"', "[" * 5000 + "]" * 5000),
    "format-string": lambda doc: _cache_edit(doc, lambda d: _set(d, ["format"], "1")),
    "entries-list": lambda doc: _cache_edit(doc, lambda d: _set(d, ["entries"], [])),
    "params-float": lambda doc: _cache_edit(doc, lambda d: _set(d, ["entries", "lenet5", "entry", "params"], 1.5)),
    "params-bool": lambda doc: _cache_edit(doc, lambda d: _set(d, ["entries", "lenet5", "entry", "params"], True)),
    "input-dict": lambda doc: _cache_edit(doc, lambda d: _set(d, ["entries", "lenet5", "entry", "input"], {"a": 1})),
    "title-huge": lambda doc: _cache_edit(doc, lambda d: _set(d, ["entries", "lenet5", "entry", "title"], "t" * 200_000)),
    "key-not-hex": lambda doc: _cache_edit(doc, lambda d: _set(d, ["entries", "lenet5", "key"], "z" * 64)),
    "extra-field": lambda doc: _cache_edit(doc, lambda d: _set(d, ["entries", "lenet5", "entry", "evil"], 1)),
    "digits": lambda doc: _cache_edit(doc, lambda d: _set(d, ["entries", "lenet5", "entry", "params"], 0))
    .replace('"params": 0', '"params": ' + "9" * 5000),
    "truncated": lambda doc: json.dumps(doc)[:40],
    "binary": lambda doc: bytes(range(256)) * 4,
    "empty": lambda doc: b"",
}


@pytest.mark.parametrize("kind", list(CORRUPTIONS))
def test_corrupted_cache_is_rebuilt(small_zoo, kind):
    doc, expected = _good_cache(small_zoo)
    data = CORRUPTIONS[kind](doc)
    small_zoo.write_bytes(data if isinstance(data, bytes) else data.encode())
    code, out, err, seconds, peak = run(["list", "-f", "json"], small_zoo.parent.parent)
    assert code == 0 and err == "" and out == expected, err[-2000:]
    _bounded(seconds, peak)
    assert json.loads(small_zoo.read_text()) == doc  # rebuilt as archcalc writes it


@pytest.mark.parametrize("kind", ["fifo", "symlink-dev-zero", "symlink-file", "directory"])
def test_cache_that_is_not_a_regular_file(small_zoo, tmp_path, kind):
    """Never opened blocking, never followed: the listing is computed, nothing outside changes."""
    doc, expected = _good_cache(small_zoo)
    victim = tmp_path / "victim.json"
    victim.write_text(json.dumps(doc).replace("LeNet", "Pwned"))
    if kind == "fifo":
        os.mkfifo(small_zoo)
    elif kind == "symlink-dev-zero":
        small_zoo.symlink_to("/dev/zero")
    elif kind == "symlink-file":
        small_zoo.symlink_to(victim)
    else:
        small_zoo.mkdir()
    before = victim.read_bytes()
    code, out, err, seconds, peak = run(["list", "-f", "json"], tmp_path, timeout=TIME_LIMIT)
    assert code == 0 and err == "" and out == expected, err[-2000:]
    assert "Pwned" not in out
    _bounded(seconds, peak)
    assert victim.read_bytes() == before
