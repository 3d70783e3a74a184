"""``archcalc diff OLD NEW``: what changed between two versions of a spec, layer by layer.

Either side is a spec path, a zoo name, or ``git:REV:PATH`` (the file as committed at REV, read
with ``git cat-file blob`` run with an argument list, never a shell; at most limits.MAX_BYTES
bytes are read). Blob text is untrusted spec text like any other: it goes through
:func:`archcalc.spec.load.loads`. Pure apart from reading the two sides.
"""

from __future__ import annotations

import difflib
import subprocess
from pathlib import Path

from ..errors import SpecError, UsageError, short

GIT_TIMEOUT = 30.0  # seconds; ARCHCALC_GIT_TIMEOUT (seconds, for tests and slow disks) or timeout= overrides it


def _git_timeout(timeout) -> float:
    """The seconds a git run may take: ``timeout`` if given, else $ARCHCALC_GIT_TIMEOUT (a
    number of seconds from 0.1 to 3600, documented for tests), else GIT_TIMEOUT."""
    import os

    if timeout is not None:
        return float(timeout)
    text = os.environ.get("ARCHCALC_GIT_TIMEOUT", "").strip()
    if text:
        try:
            value = float(text) if len(text) <= 20 else float("nan")
        except ValueError:
            value = float("nan")
        if not 0.1 <= value <= 3600:  # NaN fails this too
            raise UsageError(f"ARCHCALC_GIT_TIMEOUT {short(text)}: expected a number of seconds from 0.1 to 3600")
        return value
    return GIT_TIMEOUT


def _kill_group(proc) -> None:
    """SIGKILL git's whole process group (git started in its own session: its children, a pager,
    a credential helper, a hook, go with it), then reap git."""
    import os
    import signal

    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        try:
            proc.kill()
        except OSError:
            pass
    proc.wait()


def git_blob(rev: str, path: str, timeout: float | None = None) -> str:
    """The text of PATH at REV in the git repository of the working directory.

    git runs in a session of its own; when it does not finish within the timeout (see
    :func:`_git_timeout`), or sends more than limits.MAX_BYTES bytes, its whole process group is
    killed and reaped before the error is raised: nothing it started keeps running."""
    import os
    import selectors
    import tempfile
    import time

    from ..limits import MAX_BYTES

    if not rev or rev.startswith("-") or "\x00" in rev or not path or "\x00" in path:
        raise UsageError(f"git:{short(rev)[1:-1]}:{short(path)[1:-1]}: expected git:REV:PATH such as git:HEAD:specs/net.yaml")
    limit = _git_timeout(timeout)
    err_file = tempfile.TemporaryFile()  # stderr to a file: a chatty git cannot block on a full pipe
    try:
        proc = subprocess.Popen(["git", "cat-file", "blob", f"{rev}:{path}"], stdin=subprocess.DEVNULL,
                                stdout=subprocess.PIPE, stderr=err_file, start_new_session=True,
                                env={**os.environ, "GIT_TERMINAL_PROMPT": "0"})
    except OSError as err:
        err_file.close()
        raise UsageError(f"git:{short(rev)[1:-1]}:{short(path)[1:-1]}: cannot run git ({err.strerror})") from None
    deadline = time.monotonic() + limit
    chunks, size, timed_out, too_big = [], 0, False, False
    sel = selectors.DefaultSelector()
    try:
        fd = proc.stdout.fileno()
        os.set_blocking(fd, False)
        sel.register(fd, selectors.EVENT_READ)
        while True:  # read until EOF, the byte limit or the deadline, never blocking past it
            left = deadline - time.monotonic()
            if left <= 0:
                timed_out = True
                break
            if not sel.select(min(left, 1.0)):
                continue
            try:
                chunk = os.read(fd, min(1 << 20, MAX_BYTES + 1 - size))
            except BlockingIOError:
                continue
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
            if size > MAX_BYTES:
                too_big = True
                break
        if timed_out or too_big:
            _kill_group(proc)
        else:
            try:
                proc.wait(max(deadline - time.monotonic(), 0.01))  # stdout closed: git is ending
            except subprocess.TimeoutExpired:
                timed_out = True
                _kill_group(proc)
        err_file.seek(0)
        err = err_file.read(4096)
    finally:
        sel.close()
        if proc.returncode is None:  # an exception above: never leave git behind
            _kill_group(proc)
        proc.stdout.close()
        err_file.close()
    data = b"".join(chunks)
    if timed_out:
        raise UsageError(f"git:{short(rev)[1:-1]}:{short(path)[1:-1]}: git did not answer in {limit:g} s "
                         "(stopped, with everything it started)")
    label = f"git:{rev}:{path}"
    if too_big:
        raise SpecError(f"{short(label)}: spec is larger than {MAX_BYTES:,} bytes")
    if proc.returncode != 0:
        first = err.decode("utf-8", "replace").strip().splitlines()[:1]
        raise UsageError(f"{short(label)}: git could not read it" + (f" ({short(first[0], 120)[1:-1]})" if first else ""))
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise SpecError(f"{short(label)}: not UTF-8 text (byte {e.start})") from None


def read_side(ref: str) -> tuple[str, str, str | None]:
    """(text, label, family member or None) for one side of a diff: PATH, NAME, git:REV:PATH,
    each PATH optionally followed by #MEMBER for a member of a family file."""
    from ..spec import zoo
    from .discover import read_text, shown

    member = None
    if ref.startswith("git:"):
        rev, sep, path = ref[4:].partition(":")
        if not sep:
            raise UsageError(f"{short(ref)}: expected git:REV:PATH such as git:HEAD:specs/net.yaml")
        if "#" in path:
            path, member = path.rsplit("#", 1)
        return git_blob(rev, path), f"git:{rev}:{path}", member or None
    if zoo.is_path(ref) or "#" in ref:
        text_ref, _, member = ref.partition("#") if "#" in ref else (ref, "", "")
        path = Path(text_ref)
    else:
        path, member = zoo.resolve_ref(ref)
    label = shown(path)  # read_text says "no such file", "file name too long", "a FIFO", ... in one line
    return read_text(path, label), label, member or None


def load_side(ref: str, values=None, input_override=None, batch=1):
    from .discover import members
    from ..analysis.engine import analyze
    from ..spec.load import loads

    text, label, member = read_side(ref)
    if member is None:
        names = members(text, label)
        if names:
            raise UsageError(f"{short(label)} is a family: name a member, e.g. {short(label + '#' + names[0])[1:-1]}",
                             hint="members: " + ", ".join(names[:12]) + (" ..." if len(names) > 12 else ""))
    shown_label = f"{label}#{member}" if member else label
    return shown_label, analyze(loads(text, label, values, input_override, variant=member), batch=batch)


FIELDS = ("type", "shape", "params", "macs")


def _facts(row) -> dict:
    return {"type": row.type, "shape": tuple(row.shape), "params": row.params, "macs": row.macs, "line": row.line}


def diff(old, new) -> dict:
    """Rows aligned by name (in order): each unchanged, changed, added or removed; totals."""
    a = [r.name for r in old.rows]
    b = [r.name for r in new.rows]
    rows_a = {r.name: r for r in old.rows}
    rows_b = {r.name: r for r in new.rows}
    layers = []
    matcher = difflib.SequenceMatcher(a=a, b=b, autojunk=False)
    for op, i1, i2, j1, j2 in matcher.get_opcodes():
        if op == "equal":
            for name in a[i1:i2]:
                fa, fb = _facts(rows_a[name]), _facts(rows_b[name])
                if any(fa[k] != fb[k] for k in FIELDS):
                    layers.append({"change": "changed", "name": name, "old": fa, "new": fb})
            continue
        gone = [n for n in a[i1:i2] if n not in rows_b]
        came = [n for n in b[j1:j2] if n not in rows_a]
        moved = [n for n in b[j1:j2] if n in rows_a]
        for name in gone:
            layers.append({"change": "removed", "name": name, "old": _facts(rows_a[name]), "new": None})
        for name in b[j1:j2]:
            if name in came:
                layers.append({"change": "added", "name": name, "old": None, "new": _facts(rows_b[name])})
            elif name in moved:
                fa, fb = _facts(rows_a[name]), _facts(rows_b[name])
                layers.append({"change": "moved" if all(fa[k] == fb[k] for k in FIELDS) else "changed",
                               "name": name, "old": fa, "new": fb})
    keys = ("params", "macs", "activations", "batch_activation_bytes", "batch_train_bytes", "layers")
    totals = {k: (old.totals.get(k), new.totals.get(k)) for k in keys}
    return {"layers": layers, "totals": totals}


def _num(v) -> str:
    from ..output.report import exact

    return exact(v)


def _change(old, new) -> str:
    from ..expr import is_symbolic

    if is_symbolic(old) or is_symbolic(new):
        return f"{_num(old)} -> {_num(new)}"
    d = new - old
    if d == 0:
        return f"{_num(new)} (unchanged)"
    pct = f", {'+' if d > 0 else ''}{d * 100 / old:.2f}%" if old else ""
    return f"{_num(old)} -> {_num(new)} ({'+' if d > 0 else ''}{d:,}{pct})"


def text(old_label: str, new_label: str, result: dict) -> str:
    from .ci_report import clean
    from ..output.report import shape_text

    lines = [f"--- {clean(old_label)}", f"+++ {clean(new_label)}"]
    for item in result["layers"]:
        name, o, n = item["name"], item["old"], item["new"]
        if item["change"] == "added":
            lines.append(f"+ {name} ({n['type']}, line {n['line']}): shape {shape_text(n['shape'])}; "
                         f"params {_num(n['params'])}; MACs {_num(n['macs'])}")
        elif item["change"] == "removed":
            lines.append(f"- {name} ({o['type']}, line {o['line']}): shape {shape_text(o['shape'])}; "
                         f"params {_num(o['params'])}; MACs {_num(o['macs'])}")
        else:
            parts = []
            if item["change"] == "moved":
                parts.append("moved")
            if o["type"] != n["type"]:
                parts.append(f"type {o['type']} -> {n['type']}")
            if o["shape"] != n["shape"]:
                parts.append(f"shape {shape_text(o['shape'])} -> {shape_text(n['shape'])}")
            for key, label in (("params", "params"), ("macs", "MACs")):
                if o[key] != n[key]:
                    parts.append(f"{label} {_change(o[key], n[key])}")
            lines.append(f"~ {name} ({n['type']}, line {n['line']}): " + "; ".join(parts))
    counts = {c: sum(1 for i in result["layers"] if i["change"] == c) for c in ("changed", "added", "removed", "moved")}
    if not result["layers"]:
        lines.append("no layer changed")
    lines.append("totals:")
    labels = {"params": "params", "macs": "MACs", "activations": "activations", "batch_activation_bytes": "memory",
              "batch_train_bytes": "train_memory", "layers": "layers"}
    for key, (o, n) in result["totals"].items():
        lines.append(f"  {labels[key]:13s} {_change(o, n)}")
    lines.append(", ".join(f"{v} {k}" for k, v in counts.items() if v or k != "moved") + " layer(s)")
    return "\n".join(lines) + "\n"


def as_dict(old_label: str, new_label: str, result: dict) -> dict:
    from ..version import __version__
    from ..output.report import jsonable

    def facts(f):
        return None if f is None else {k: jsonable(v) for k, v in f.items()}

    return {
        "archcalc": __version__,
        "schema": 1,
        "command": "diff",
        "old": old_label,
        "new": new_label,
        "layers": [{"change": i["change"], "name": i["name"], "old": facts(i["old"]), "new": facts(i["new"])}
                   for i in result["layers"]],
        "totals": {k: {"old": jsonable(o), "new": jsonable(n)} for k, (o, n) in result["totals"].items()},
    }
