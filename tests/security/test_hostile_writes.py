"""Hostile output paths (issue 19, item 2): no write follows a link or replaces a device, FIFO or
folder; nothing is overwritten without --force (but check's reports and baselines, which CI
rewrites every run, replace a regular file); OS errors are one line, exit 2.

Every case runs the CLI in-process (tests/security/test_hostile.py's harness: a SIGALRM fails a hang) and
asserts its exit code, exactly one stderr line, no traceback, and that nothing in the scratch
folder changed but the target. Every writer goes through archcalc/safeio.py.
"""

from __future__ import annotations

import errno
import json
import os
import stat

import pytest

from test_hostile import assert_clean, run

SPEC = "name: tiny\ninput: [3, 8, 8]\nlayers:\n  - conv: {out: 4, kernel: 3}\n  - relu\n"
TIMEOUT = 5  # seconds per case: a FIFO opened for writing would block forever


def snapshot(root):
    """Every entry under root (links not followed): kind and content."""
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for n in dirnames + filenames:
            p = os.path.join(dirpath, n)
            st = os.lstat(p)
            if stat.S_ISLNK(st.st_mode):
                v = ("link", os.readlink(p))
            elif stat.S_ISREG(st.st_mode):
                with open(p, "rb") as fh:
                    v = ("file", fh.read())
            else:
                v = (stat.S_IFMT(st.st_mode), st.st_rdev)
            out[os.path.relpath(p, root)] = v
    return out


def changed(before, after):
    return {k for k in set(before) | set(after) if before.get(k) != after.get(k)}


@pytest.fixture
def repo(tmp_path):
    """A checkout (tmp/repo) holding a spec, beside a victim file outside it (tmp/victim.txt)."""
    (tmp_path / "victim.txt").write_text("victim\n")
    (tmp_path / "repo").mkdir()
    (tmp_path / "repo" / "spec.yaml").write_text(SPEC)
    return tmp_path / "repo"


def _tiny_onnx(path):
    onnx = pytest.importorskip("onnx")
    import numpy as np
    from onnx import TensorProto, helper, numpy_helper

    w = numpy_helper.from_array(np.zeros((4, 3, 3, 3), np.float32), "w")
    graph = helper.make_graph(
        [helper.make_node("Conv", ["input", "w"], ["c"], kernel_shape=[3, 3]), helper.make_node("Relu", ["c"], ["output"])],
        "g", [helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, 3, 8, 8])],
        [helper.make_tensor_value_info("output", TensorProto.FLOAT, [1, 4, 6, 6])], [w])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))


def _device(path):
    """A character device node (the null device's numbers) at path, or skip where not allowed."""
    try:
        os.mknod(path, 0o600 | stat.S_IFCHR, os.makedev(1, 3))
    except (PermissionError, AttributeError, OSError) as err:
        pytest.skip(f"cannot make a device node here: {err}")


def _plant(kind, path):
    """Something that is not a regular file at path."""
    if kind == "link":
        os.symlink("../victim.txt", path)
    elif kind == "fifo":
        os.mkfifo(path)
    elif kind == "dir":
        os.mkdir(path)
        (path / "keep").write_text("keep\n")
    else:
        _device(path)


REFUSAL = {
    "link": "it is a symbolic link (archcalc never writes through a link)",
    "fifo": "it is a FIFO, not a regular file",
    "dir": "it is a directory",
    "device": "it is a device, not a regular file",
}


def _refused(args, repo, message, env=None):
    before = snapshot(repo.parent)
    code, out, err, seconds, _ = run(args, repo, env=env, timeout=TIMEOUT)
    assert_clean(code, out, err, 2, message)
    assert changed(before, snapshot(repo.parent)) == set(), "nothing changed, the victim least of all"
    assert seconds < TIMEOUT


# --------------------------------------------------------------------------- check: reports, baselines


def test_report_to_a_committed_symlink_leaves_the_victim_alone(repo):
    """The documented workflow step, with archcalc.sarif a link committed in the checkout."""
    os.symlink("../victim.txt", repo / "archcalc.sarif")
    _refused(["check", "spec.yaml", "--report", "sarif=archcalc.sarif"], repo,
             "archcalc: error: --report sarif: cannot write 'archcalc.sarif': " + REFUSAL["link"])
    assert (repo.parent / "victim.txt").read_text() == "victim\n"


def test_baseline_ignores_a_planted_tmp_link(repo):
    os.symlink("../victim.txt", repo / "b.json.tmp")
    before = snapshot(repo.parent)
    code, out, err, _, _ = run(["check", "spec.yaml", "--write-baseline", "b.json"], repo, timeout=TIMEOUT)
    assert code == 0 and err == "archcalc: wrote b.json: 1 spec\n", err
    assert changed(before, snapshot(repo.parent)) == {"repo/b.json"}
    assert stat.S_ISREG(os.lstat(repo / "b.json").st_mode)
    assert json.loads((repo / "b.json").read_text())["specs"]["spec.yaml"]["totals"]["params"] == 112  # 4*27 + 4


@pytest.mark.parametrize("kind", ["link", "fifo", "dir", "device"])
@pytest.mark.parametrize("flag", ["--write-baseline", "--report"])
def test_check_outputs_that_are_not_regular_files_are_refused(repo, flag, kind):
    _plant(kind, repo / "out")
    args = ["check", "spec.yaml", flag, "out" if flag == "--write-baseline" else "junit=out"]
    option = "--write-baseline" if flag == "--write-baseline" else "--report junit"
    _refused(args, repo, f"archcalc: error: {option}: cannot write 'out': {REFUSAL[kind]}")


def test_reports_and_baselines_replace_a_regular_file(repo):
    """The documented exception: CI rewrites them every run, so no --force is needed."""
    (repo / "r.xml").write_text("old\n")
    (repo / "b.json").write_text("old\n")
    (repo / "r.xml").chmod(0o444)  # a read-only file is replaced too: it is the folder that is written
    code, out, err, _, _ = run(["check", "spec.yaml", "--report", "junit=r.xml", "--write-baseline", "b.json"], repo,
                               timeout=TIMEOUT)
    assert code == 0 and "Traceback" not in err
    assert (repo / "r.xml").read_text().startswith("<?xml") and json.loads((repo / "b.json").read_text())


def test_a_linked_folder_in_a_relative_path_is_refused(repo, tmp_path):
    (tmp_path / "elsewhere").mkdir()
    os.symlink("../elsewhere", repo / "out")
    _refused(["check", "spec.yaml", "--report", "sarif=out/archcalc.sarif"], repo,
             "archcalc: error: --report sarif: cannot write 'out/archcalc.sarif': the folder 'out' is a symbolic link; "
             "the folders of a relative output path must be real folders (give an absolute path to write through a link)")
    # an absolute path is the caller's own choice: its folders are resolved as the system does
    code, _, err, _, _ = run(["check", "spec.yaml", "--report", f"sarif={repo / 'out' / 'a.sarif'}"], repo, timeout=TIMEOUT)
    assert code == 0 and (tmp_path / "elsewhere" / "a.sarif").is_file(), err


# --------------------------------------------------------------------------- import, plot, export -o


def _import_args(repo):
    _tiny_onnx(repo / "tiny.onnx")
    return ["import", "tiny.onnx"]


def _plot_args(repo):
    pytest.importorskip("matplotlib")
    return ["plot", "spec.yaml", "--metric", "params"]


def _export_args(repo):
    return ["export", "spec.yaml", "--to", "torch"]


COMMANDS = {"import": (_import_args, "out.yaml", b"name: tiny"), "plot": (_plot_args, "out.png", b"\x89PNG"),
            "export": (_export_args, "out.py", b"class Tiny(nn.Module)")}


@pytest.mark.parametrize("command", list(COMMANDS))
def test_output_files_need_force(repo, command):
    make, name, content = COMMANDS[command]
    args = make(repo) + ["-o", name]
    (repo / name).write_text("keep me\n")
    _refused(args, repo, f"archcalc: error: '{name}' exists; pass --force to overwrite it")
    if command == "export":
        return  # export --force replacing a file: tests/security/test_hostile.py (torch's import here would cost 5 s)
    before = snapshot(repo.parent)
    code, out, err, _, _ = run(args + ["--force"], repo, timeout=30)
    assert code == 0 and "Traceback" not in err, err
    assert changed(before, snapshot(repo.parent)) == {f"repo/{name}"}
    assert content in (repo / name).read_bytes()


@pytest.mark.parametrize("command", list(COMMANDS))
@pytest.mark.parametrize("kind", ["link", "fifo", "dir", "device"])
def test_output_files_that_are_not_regular_are_refused_even_with_force(repo, command, kind):
    make, name, _ = COMMANDS[command]
    _plant(kind, repo / name)
    _refused(make(repo) + ["-o", name, "--force"], repo, f"archcalc: error: cannot write '{name}': {REFUSAL[kind]}")


@pytest.mark.parametrize("command", list(COMMANDS))
def test_output_to_the_full_device_or_a_long_name(repo, command):
    make, name, _ = COMMANDS[command]
    args = make(repo)
    device = "-o /dev/full: the file name must end in .png or .svg" if command == "plot" else \
        f"cannot write '/dev/full': {REFUSAL['device']}"
    _refused(args + ["-o", "/dev/full"], repo, f"archcalc: error: {device}")
    assert stat.S_ISCHR(os.lstat("/dev/full").st_mode)
    long = "x" * 300 + "." + name.split(".")[1]
    _refused(args + ["-o", long], repo, ": File name too long")


def test_onnx_export_refuses_a_link_at_the_file_or_its_data(repo):
    """Refused before torch is imported; the export itself writes into a private folder beside
    the target and moves the file (and PATH.data) into place (tests/torchside/test_export.py runs it)."""
    os.symlink("../victim.txt", repo / "m.onnx")
    _refused(["export", "spec.yaml", "--to", "onnx", "-o", "m.onnx", "--force"], repo,
             "archcalc: error: cannot write 'm.onnx': " + REFUSAL["link"])
    os.unlink(repo / "m.onnx")
    os.symlink("../victim.txt", repo / "m.onnx.data")
    _refused(["export", "spec.yaml", "--to", "onnx", "-o", "m.onnx", "--force"], repo,
             "archcalc: error: cannot write 'm.onnx.data': " + REFUSAL["link"])


# --------------------------------------------------------------------------- OS errors


def _write_fails(monkeypatch, code):
    real = os.write

    def write(fd, data):
        if fd > 2:  # the file being written, not a standard stream
            raise OSError(code, os.strerror(code))
        return real(fd, data)

    monkeypatch.setattr(os, "write", write)


ALL_WRITERS = [
    (["check", "spec.yaml", "--report", "sarif=r.sarif"], "--report sarif: cannot write 'r.sarif'"),
    (["check", "spec.yaml", "--write-baseline", "b.json"], "--write-baseline: cannot write 'b.json'"),
    (["import", "tiny.onnx", "-o", "t.yaml"], "cannot write 't.yaml'"),
    (["plot", "spec.yaml", "--metric", "params", "-o", "p.svg"], "cannot write 'p.svg'"),
]


@pytest.mark.parametrize("args, message", ALL_WRITERS, ids=["report", "baseline", "import", "plot"])
def test_a_full_disk_is_one_line_and_leaves_no_temporary_file(repo, monkeypatch, args, message):
    if args[0] == "import":
        _tiny_onnx(repo / "tiny.onnx")
    if args[0] == "plot":
        pytest.importorskip("matplotlib")
    _write_fails(monkeypatch, errno.ENOSPC)
    _refused(args, repo, f"archcalc: error: {message}: No space left on device")


@pytest.mark.parametrize("args, message", ALL_WRITERS, ids=["report", "baseline", "import", "plot"])
def test_permission_denied_is_one_line(repo, monkeypatch, args, message):
    """Tests run as root here, so the refusal is simulated: creating any file is denied."""
    if args[0] == "import":
        _tiny_onnx(repo / "tiny.onnx")
    if args[0] == "plot":
        pytest.importorskip("matplotlib")
    real = os.open

    def open_(path, flags, *a, **k):
        if flags & os.O_CREAT:
            raise PermissionError(errno.EACCES, os.strerror(errno.EACCES))
        return real(path, flags, *a, **k)

    monkeypatch.setattr(os, "open", open_)
    _refused(args, repo, f"archcalc: error: {message}: Permission denied")


def test_missing_folder_and_file_as_folder(repo):
    (repo / "f").write_text("x\n")
    _refused(["check", "spec.yaml", "--report", "sarif=no/such/r.sarif"], repo,
             "archcalc: error: --report sarif: cannot write 'no/such/r.sarif': No such file or directory")
    _refused(["check", "spec.yaml", "--report", "sarif=f/r.sarif"], repo,
             "archcalc: error: --report sarif: cannot write 'f/r.sarif': Not a directory")


# --------------------------------------------------------------------------- the function itself


def test_text_that_cannot_be_utf8_is_one_error(tmp_path):
    from archcalc.errors import UsageError
    from archcalc.safeio import write_file

    with pytest.raises(UsageError, match="cannot write '.*x.txt': the text cannot be written as UTF-8"):
        write_file(tmp_path / "x.txt", "bad \udcff name")
    assert os.listdir(tmp_path) == []


def test_a_file_that_appears_while_writing_is_not_replaced(tmp_path, monkeypatch):
    """Without replace the file is put in place with link(), which fails if anything is there:
    no window between the check and the move."""
    from archcalc.errors import UsageError
    from archcalc.safeio import write_file

    real = os.fsync

    def fsync(fd):
        real(fd)
        if not (tmp_path / "x.txt").exists():
            (tmp_path / "x.txt").write_text("theirs\n")

    monkeypatch.setattr(os, "fsync", fsync)
    with pytest.raises(UsageError, match="'.*x.txt' exists; pass --force"):
        write_file(tmp_path / "x.txt", "mine\n")
    assert (tmp_path / "x.txt").read_text() == "theirs\n" and os.listdir(tmp_path) == ["x.txt"]


def test_staged_writer_leaves_nothing_on_failure(tmp_path):
    from archcalc.safeio import staged

    with pytest.raises(RuntimeError):
        with staged(tmp_path / "m.onnx", companions=(".data",)) as (inner, _):
            with open(inner, "w") as fh:
                fh.write("half")
            raise RuntimeError("the exporter failed")
    assert os.listdir(tmp_path) == []
    with staged(tmp_path / "m.onnx", companions=(".data",)) as (inner, written):
        for p in (inner, inner + ".data"):
            with open(p, "w") as fh:
                fh.write("x")
    assert written == [str(tmp_path / "m.onnx"), str(tmp_path / "m.onnx.data")]
    assert sorted(os.listdir(tmp_path)) == ["m.onnx", "m.onnx.data"]


def test_zoo_cache_writer_never_follows_a_link(tmp_path):
    from archcalc.spec import zoocache

    (tmp_path / "victim.txt").write_text("victim\n")
    os.symlink(tmp_path / "victim.txt", tmp_path / "zoo-x.json")
    zoocache._write(tmp_path / "zoo-x.json", {"a": 1})  # silent: a cache that cannot be written is skipped
    assert (tmp_path / "victim.txt").read_text() == "victim\n" and os.path.islink(tmp_path / "zoo-x.json")
    (tmp_path / "cache").mkdir()
    zoocache._write(tmp_path / "cache" / "zoo-y.json", {"a": 1})
    path = tmp_path / "cache" / "zoo-y.json"
    assert json.loads(path.read_text())["entries"] == {"a": 1} and stat.S_IMODE(os.stat(path).st_mode) & 0o077 == 0
