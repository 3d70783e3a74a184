"""Every file archcalc writes goes through :func:`write_file` (or, for a writer that must be given
a path, :func:`staged`): one place that decides what may be written and how.

The rules (issue 19; docs/security.md, "What archcalc writes"):

* The target's last component is never followed: it is examined with ``lstat``. A symbolic link,
  a directory, a FIFO, a device node or a socket is refused; only a regular file is replaced, and
  it is never opened (a FIFO is never opened, so nothing blocks; a device is never written).
* The folders of a *relative* target are walked one by one from the current directory with
  ``O_NOFOLLOW``: a folder that is a symbolic link is refused (in CI the current directory is a
  checkout, and a pull request can commit links). The folder of an *absolute* target is taken as
  the operating system resolves it: whoever typed the path chose it. Either way the folder is
  opened once and every later step is relative to that descriptor.
* The data goes to a temporary file in the target's own folder, created exclusively
  (``O_CREAT|O_EXCL|O_NOFOLLOW``, a random name, mode 0o666 less the umask), written, fsynced,
  then moved into place: ``link`` where the target must not exist (so a file that appears
  meanwhile is not replaced either), ``rename`` where it may be replaced. A planted ``F.tmp`` or
  any other name is irrelevant. On any failure the temporary file is removed.
* An existing regular file is replaced only with ``replace=True`` (``--force``; ``check``'s
  ``--report`` and ``--write-baseline`` pass it always: CI rewrites them every run).
* Every ``OSError`` and encoding error becomes one :class:`UsageError` naming the path (exit 2).

No heavy imports: this module is imported by commands that must stay fast.
"""

from __future__ import annotations

import contextlib
import errno
import os
import secrets
import stat

from .errors import UsageError, short

_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_DIRECTORY = getattr(os, "O_DIRECTORY", 0)
_NONBLOCK = getattr(os, "O_NONBLOCK", 0)
_CLOEXEC = getattr(os, "O_CLOEXEC", 0)
_BINARY = getattr(os, "O_BINARY", 0)
# descriptor-relative calls (openat, fstatat, linkat, renameat, unlinkat): every POSIX system
_AT = all(f in os.supports_dir_fd for f in (os.open, os.stat, os.link, os.rename, os.unlink, os.mkdir, os.rmdir)) \
    and bool(_NOFOLLOW and _DIRECTORY)
_TRIES = 20  # random temporary names tried before giving up (a clash is ~2**-64 each)
# link() not available on this file system: fall back to rename after a last lstat
_NO_LINK = {errno.EPERM, errno.EXDEV, errno.EMLINK, getattr(errno, "ENOTSUP", -1), getattr(errno, "EOPNOTSUPP", -1),
            getattr(errno, "ENOSYS", -1)}


def _kind(mode: int) -> str | None:
    """What a non-regular write target is, in a refusal's words; None for a regular file."""
    if stat.S_ISLNK(mode):
        return "it is a symbolic link (archcalc never writes through a link)"
    kind = kind_of(mode)
    if kind is None or kind == "a directory":
        return kind and "it is a directory"
    return "it is not a regular file" if kind == "not a regular file" else f"it is {kind}, not a regular file"


class _Target:
    """A target checked and its folder opened: ``fd`` (None without descriptor-relative calls),
    ``name`` (the last component), ``where(n)`` (what to pass for a name in the folder)."""

    def __init__(self, path, option: str | None):
        self.path = path
        self.option = option
        self.fd = None
        text = os.fspath(path)
        if isinstance(text, bytes):
            text = os.fsdecode(text)
        self.text = text
        self.folder, self.name = os.path.split(text)
        self.folder = self.folder or os.curdir

    def fail(self, reason: str, hint: str | None = None) -> UsageError:
        head = f"{self.option}: " if self.option else ""
        return UsageError(f"{head}cannot write {short(self.text)}: {reason}", hint=hint)

    def os_error(self, err: OSError) -> UsageError:
        return self.fail(err.strerror or type(err).__name__)

    def value_error(self, err: ValueError) -> UsageError:
        """A name the operating system cannot take (a NUL character, an unencodable one)."""
        return self.fail(f"not a usable file name ({short(str(err), 60)[1:-1]})")

    def where(self, name: str):
        return name if self.fd is not None else os.path.join(self.folder, name)

    def open_folder(self) -> None:
        """Open the target's folder (``fd``), refusing a link among a relative path's folders."""
        if not self.name or self.name in (os.curdir, os.pardir):
            raise self.fail("it is a directory" if self.name else "it names a folder, not a file")
        if not _AT:
            if not os.path.isdir(self.folder):
                raise self.fail(f"the folder {short(self.folder)} does not exist or is not a directory")
            return
        flags = os.O_RDONLY | _DIRECTORY | _NONBLOCK | _CLOEXEC
        if os.path.isabs(self.folder):
            self.fd = os.open(self.folder, flags)
            return
        self.fd = os.open(os.curdir, flags)
        walked = []
        for part in self.folder.split(os.sep):
            if part in ("", os.curdir):
                continue
            walked.append(part)
            try:
                nfd = os.open(part, flags | _NOFOLLOW, dir_fd=self.fd)
            except OSError as err:
                if err.errno in (errno.ELOOP, errno.ENOTDIR):
                    try:
                        is_link = stat.S_ISLNK(os.stat(part, dir_fd=self.fd, follow_symlinks=False).st_mode)
                    except OSError:
                        is_link = False
                    if is_link:
                        raise self.fail(f"the folder {short(os.path.join(*walked))} is a symbolic link",
                                        hint="the folders of a relative output path must be real folders "
                                             "(give an absolute path to write through a link)") from None
                raise
            os.close(self.fd)
            self.fd = nfd

    def close(self) -> None:
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None

    def lstat(self, name: str | None = None):
        """The target's (or a name's) lstat, or None when nothing is there."""
        try:
            return os.stat(self.where(name or self.name), dir_fd=self.fd, follow_symlinks=False)
        except FileNotFoundError:
            return None

    def check(self, replace: bool, name: str | None = None) -> None:
        """Refuse a link or non-regular file at the target, and an existing file unless ``replace``."""
        st = self.lstat(name)
        if st is None:
            return
        what = _kind(st.st_mode)
        target = self if name is None else _Target(os.path.join(self.folder, name), self.option)
        if what:
            raise target.fail(what)
        if not replace:
            raise UsageError(f"{(self.option + ': ') if self.option else ''}{short(target.text)} exists",
                             hint="pass --force to overwrite it")

    def place(self, tmp: str, replace: bool, src_fd=None, name: str | None = None) -> None:
        """Move ``tmp`` (in this folder, or in the folder ``src_fd``) to the target (or to ``name``)."""
        dest = name or self.name
        src_dir = self.fd if src_fd is None else src_fd
        if not replace:
            try:
                os.link(tmp if self.fd is not None else self.where(tmp), self.where(dest),
                        src_dir_fd=src_dir, dst_dir_fd=self.fd)
            except FileExistsError:
                self.check(False, name)  # names what is there
                raise
            except OSError as err:
                if err.errno not in _NO_LINK:
                    raise
            else:
                os.unlink(tmp if self.fd is not None else self.where(tmp), dir_fd=src_dir)
                return
        self.check(replace, name)  # the last look before the rename (rename never follows a link)
        os.rename(tmp if self.fd is not None else self.where(tmp), self.where(dest),
                  src_dir_fd=src_dir, dst_dir_fd=self.fd)

    def sync_folder(self) -> None:
        if self.fd is not None:
            with contextlib.suppress(OSError):
                os.fsync(self.fd)


def _encode(data, target: _Target) -> bytes:
    if isinstance(data, str):
        try:
            return data.encode("utf-8")
        except UnicodeEncodeError as err:
            raise target.fail(f"the text cannot be written as UTF-8 ({err.reason} at character {err.start})") from None
    return bytes(data)


def check_target(path, *, replace: bool = False, option: str | None = None) -> None:
    """Refuse now what :func:`write_file` would refuse (before slow work: an export, a render)."""
    target = _Target(path, option)
    try:
        target.open_folder()
        target.check(replace)
    except OSError as err:
        raise target.os_error(err) from None
    except ValueError as err:
        raise target.value_error(err) from None
    finally:
        target.close()


def write_file(path, data, *, replace: bool = False, option: str | None = None, mode: int = 0o666) -> None:
    """Write ``data`` (str, as UTF-8, or bytes) to ``path`` by the rules above.

    ``replace``: an existing regular file may be replaced (``--force``). ``option``: the flag
    the path came from, for the message (``--report sarif``). ``mode``: the new file's mode,
    less the umask."""
    target = _Target(path, option)
    payload = _encode(data, target)
    tmp = None
    try:
        target.open_folder()
        target.check(replace)
        tmp, fd = _create_temp(target, mode)
        try:
            view = memoryview(payload)
            while view:
                view = view[os.write(fd, view):]
            os.fsync(fd)
        finally:
            os.close(fd)
        target.place(tmp, replace)
        tmp = None
        target.sync_folder()
    except OSError as err:
        raise target.os_error(err) from None
    except ValueError as err:
        raise target.value_error(err) from None
    finally:
        if tmp is not None:
            with contextlib.suppress(OSError):
                os.unlink(target.where(tmp), dir_fd=target.fd)
        target.close()


def _create_temp(target: _Target, mode: int):
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | _NOFOLLOW | _CLOEXEC | _BINARY
    for _ in range(_TRIES):
        name = f".{target.name[:40]}.{secrets.token_hex(8)}.tmp"
        try:
            return name, os.open(target.where(name), flags, mode, dir_fd=target.fd)
        except FileExistsError:
            continue
    raise target.fail("no free temporary name in its folder")


@contextlib.contextmanager
def staged(path, *, replace: bool = False, option: str | None = None, companions=()):
    """For a writer that must be given a path (torch's ONNX exporter): yields a path inside a
    fresh private folder (mode 0o700, created exclusively in the target's folder) with the
    target's own file name; when the block ends without an error, that file and each companion
    it wrote there (``companions``: suffixes such as ``.data``, kept beside it) are moved to the
    target's folder by the rules above, and the private folder is removed, on failure too.
    The targets are checked before the block runs. Yields a list that, after the block, holds the
    paths written."""
    target = _Target(path, option)
    names = [target.name] + [target.name + s for s in companions]
    written: list = []
    sub = None
    sub_fd = None
    try:
        try:
            target.open_folder()
            for n in names:
                target.check(replace, None if n == target.name else n)
            for _ in range(_TRIES):
                sub = f".{target.name[:40]}.{secrets.token_hex(8)}.tmpdir"
                try:
                    os.mkdir(target.where(sub), 0o700, dir_fd=target.fd)
                    break
                except FileExistsError:
                    sub = None
            if sub is None:
                raise target.fail("no free temporary name in its folder")
            if target.fd is not None:
                sub_fd = os.open(sub, os.O_RDONLY | _DIRECTORY | _NOFOLLOW | _CLOEXEC, dir_fd=target.fd)
        except OSError as err:
            raise target.os_error(err) from None
        except ValueError as err:
            raise target.value_error(err) from None
        yield os.path.join(target.folder, sub, target.name), written
        try:
            for n in reversed(names):  # companions first: the main file appears last
                inner = os.path.join(sub, n) if sub_fd is None else n
                try:
                    st = os.stat(inner if sub_fd is not None else target.where(inner), dir_fd=sub_fd,
                                 follow_symlinks=False)
                except FileNotFoundError:
                    if n == target.name:
                        raise target.fail("the writer left no file") from None
                    continue
                if not stat.S_ISREG(st.st_mode):
                    raise target.fail("the writer left something that is not a regular file")
                target.place(inner, replace, src_fd=sub_fd, name=None if n == target.name else n)
                written.insert(0, os.path.join(os.path.dirname(target.text), n))
            target.sync_folder()
        except OSError as err:
            raise target.os_error(err) from None
    finally:
        if sub is not None:
            _remove_folder(target, sub, sub_fd)
        target.close()


def _remove_folder(target: _Target, sub: str, sub_fd) -> None:
    """Remove the private folder and what is left in it (plain files only: the writer's)."""
    with contextlib.suppress(OSError):
        if sub_fd is not None:
            for n in os.listdir(sub_fd):
                with contextlib.suppress(OSError):
                    os.unlink(n, dir_fd=sub_fd)
            os.close(sub_fd)
        else:
            folder = target.where(sub)
            for n in os.listdir(folder):
                with contextlib.suppress(OSError):
                    os.unlink(os.path.join(folder, n))
        os.rmdir(target.where(sub), dir_fd=target.fd)


def exists(path: str) -> bool:
    """Does ``path`` name something (a dangling symlink and a FIFO included)? Never raises: a name
    too long or with a NUL byte names nothing; a path that cannot be examined (a folder on the way
    that cannot be searched) counts as existing, so that it is read (and refused) as a file."""
    try:
        os.lstat(path)
    except (FileNotFoundError, NotADirectoryError, ValueError):
        return False
    except OSError as err:
        return err.errno not in (errno.ENAMETOOLONG, errno.ENOENT, errno.ENOTDIR)
    return True


# --------------------------------------------------------------------------- reading


class NotRegular(OSError):
    """An existing path that is not a regular file; ``kind`` says what it is: "a directory",
    "a FIFO", "a device", "a socket" or "not a regular file"."""

    def __init__(self, kind: str):
        super().__init__(kind)
        self.kind = kind


def kind_of(mode: int) -> str | None:
    """What a file of ``mode`` is, in words; None for a regular file."""
    if stat.S_ISREG(mode):
        return None
    if stat.S_ISDIR(mode):
        return "a directory"
    if stat.S_ISFIFO(mode):
        return "a FIFO"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    if stat.S_ISSOCK(mode):
        return "a socket"
    return "not a regular file"


def open_regular(path, *, nofollow: bool = False):
    """(fd, fstat result) of a regular file, opened without blocking (opening a FIFO to read waits
    for a writer forever) and checked with ``fstat`` before anything is read. Raises
    :class:`NotRegular` for anything else, OSError (FileNotFoundError, ...) or ValueError (a NUL in
    the name) as ``os.open`` does; with ``nofollow`` a final symbolic link is ELOOP."""
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0)
    if nofollow:
        flags |= getattr(os, "O_NOFOLLOW", 0)
    try:
        fd = os.open(os.fspath(path), flags)
    except IsADirectoryError:
        raise NotRegular("a directory") from None
    try:
        st = os.fstat(fd)
        kind = kind_of(st.st_mode)
        if kind is not None:
            raise NotRegular(kind)
    except BaseException:
        os.close(fd)
        raise
    return fd, st


def read_fd(fd: int, limit: int) -> bytes:
    """At most ``limit + 1`` bytes from ``fd`` (more than ``limit`` tells the caller the file is
    too large, also one that grew after it was looked at)."""
    chunks, size = [], 0
    while size <= limit:
        chunk = os.read(fd, min(limit + 1 - size, 1 << 24))
        if not chunk:
            break
        chunks.append(chunk)
        size += len(chunk)
    return b"".join(chunks)


def read_regular(path, limit: int, *, nofollow: bool = False) -> bytes:
    """The bytes of a regular file, at most ``limit + 1`` of them (see :func:`read_fd`); the
    errors of :func:`open_regular`."""
    fd, _ = open_regular(path, nofollow=nofollow)
    try:
        return read_fd(fd, limit)
    finally:
        os.close(fd)
