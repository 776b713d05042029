"""Files: bounded reads of inputs, atomic writes (a temporary sibling, then ``os.replace``),
appends, a folder lock, and the package's data folders.

Every input path is read through :func:`read_input`: a regular file under a size
cap, or one line saying what it is instead (a FIFO would block, ``/dev/zero`` never
ends). A crash, a full disk or a bad input never leaves a half-written file where a
good one stood, and a path that cannot be written becomes one :class:`OutputError`
line, not a traceback. ``FXTRAIN_TEST_KILL=name:stage:n`` makes the process kill itself with
SIGKILL at the n-th time it reaches ``stage`` (before-rename, after-rename,
after-append) for a file called ``name``: the hook the crash tests use.
"""
import errno
import fcntl
import io
import json
import os
import signal
import stat
import tempfile
import zipfile
from pathlib import Path

from .errors import InputError, OutputError

_PACKAGE = Path(__file__).resolve().parent
TMP_SUFFIX = ".tmp"


def _current_umask():
    mask = os.umask(0)
    os.umask(mask)
    return mask


# mkstemp creates files 0600; written files get the usual 0666 & ~umask instead.
FILE_MODE = 0o666 & ~_current_umask()


def data_dir(name):
    """Path of a shipped data folder: ``targets`` or ``firmware_export``.

    A wheel carries them in ``fxtrain/_data/``; an editable install or a checkout
    reads them from the repository root beside the package.
    """
    for candidate in (_PACKAGE / "_data" / name, _PACKAGE.parent / name):
        if candidate.is_dir():
            return candidate
    raise FileNotFoundError(f"fxtrain data folder '{name}' is missing from the installation")


_NOT_REGULAR = ((stat.S_ISDIR, "a folder"), (stat.S_ISFIFO, "a FIFO (named pipe)"),
                (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket"))


def _kind(mode):
    """What a path that is not a regular file is, in words."""
    return next((name for test, name in _NOT_REGULAR if test(mode)), "not a plain file")


def _check_mode(path, st, what, limit, error):
    if not stat.S_ISREG(st.st_mode):
        kind = _kind(st.st_mode)
        raise error(f"{what} {path} is {kind}, not a regular file; pass a file")
    if st.st_size > limit:
        raise error(f"{what} {path} is {st.st_size:,} bytes, over the limit of {limit:,} for a {what}")


def check_input(path, what, limit, error=InputError):
    """Stat ``path`` without opening it: a regular file of at most ``limit`` bytes, else one ``error`` line.

    For readers that must open the file themselves (numpy's loader). FileNotFoundError
    passes through, since each caller says in its own words what it expected there.
    """
    try:
        st = os.stat(path)
    except FileNotFoundError:
        raise
    except OSError as exc:
        raise error(f"{what} {path} cannot be read: {exc.strerror}") from None
    _check_mode(path, st, what, limit, error)
    return st.st_size


def read_input(path, what, limit, error=InputError):
    """The bytes of ``path``, a regular file of at most ``limit`` bytes, or one ``error`` line naming it.

    The path is checked before it is opened, then opened non-blocking and checked
    again, so nothing swapped in between can block; at most ``limit + 1`` bytes are
    read, so a file that grows meanwhile is refused too. FileNotFoundError passes through.
    """
    check_input(path, what, limit, error)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
        with os.fdopen(fd, "rb") as f:
            _check_mode(path, os.fstat(f.fileno()), what, limit, error)
            data = f.read(limit + 1)
    except FileNotFoundError:
        raise
    except OSError as exc:
        raise error(f"{what} {path} cannot be read: {exc.strerror}") from None
    if len(data) > limit:
        raise error(f"{what} {path} is over the limit of {limit:,} bytes for a {what}")
    return data


def read_text_input(path, what, limit, error=InputError):
    """:func:`read_input` decoded as UTF-8 (a byte-order mark is dropped), or one line saying it is not."""
    data = read_input(path, what, limit, error)
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise error(f"{what} {path} is not UTF-8 text (byte 0x{data[exc.start]:02x} at offset {exc.start}); "
                    "save it as UTF-8") from None


def ensure_dir(path, what="output folder"):
    """Create ``path`` (and parents) or raise OutputError saying why it cannot be."""
    path = Path(path)
    try:
        path.mkdir(parents=True, exist_ok=True)
    except FileExistsError:
        raise OutputError(f"{what} {path} is a file, not a folder; choose another path") from None
    except NotADirectoryError:
        raise OutputError(f"{what} {path} lies under a plain file; choose another path") from None
    except PermissionError:
        raise OutputError(f"{what} {path} cannot be created: permission denied") from None
    except OSError as exc:
        raise OutputError(f"{what} {path} cannot be created: {exc.strerror}") from None
    if not path.is_dir():
        raise OutputError(f"{what} {path} is not a folder; choose another path")
    return path


_kill_counts = {}


def _test_kill(path, stage):
    """The crash tests' hook: SIGKILL this process at a chosen point (see the module docstring)."""
    spec = os.environ.get("FXTRAIN_TEST_KILL")
    if not spec:
        return
    name, at, n = spec.rsplit(":", 2)
    if Path(path).name == name and stage == at:
        _kill_counts[spec] = _kill_counts.get(spec, 0) + 1
        if _kill_counts[spec] == int(n):
            os.kill(os.getpid(), signal.SIGKILL)


def _same_file(a, b):
    """True when paths ``a`` and ``b`` name one file: the same real path, or the same device and inode."""
    try:
        sa, sb = os.stat(a), os.stat(b)
    except OSError:
        return os.path.realpath(a) == os.path.realpath(b)
    return (sa.st_dev, sa.st_ino) == (sb.st_dev, sb.st_ino)


def _check_replaceable(path):
    """Refuse to rename a file over anything but a regular file: a device node, a FIFO or a socket would
    be replaced by a plain file (as root, ``/dev/full``), and a folder cannot be."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return
    except OSError as exc:
        raise OutputError(f"cannot write {path}: {exc.strerror}") from None
    if stat.S_ISDIR(st.st_mode):
        raise OutputError(f"cannot write {path}: a folder of that name is in the way")
    if not stat.S_ISREG(st.st_mode):
        kind = _kind(st.st_mode)
        raise OutputError(f"cannot write {path}: it is {kind}; an output goes only to a regular file or a new path")


def check_output(path, what, inputs=(), owners=()):
    """Refuse, before any work, an output ``path`` that would destroy something; returns the path.

    Parameters
    ----------
    path : path
        Where the command will write.
    what : str
        Names the output in the message (e.g. "--dump file").
    inputs : iterable of (path, str)
        The command's inputs and their names: the output may be none of them (by real
        path or by inode, so a hard link or a symlink is caught too).
    owners : iterable of str
        File names that mark a folder fxtrain owns (a run's checkpoint, an export's
        manifest): the output may not lie in a folder that holds one of them.
    """
    path = Path(path)
    _check_replaceable(path)
    for src, name in inputs:
        if src is not None and _same_file(path, src):
            raise OutputError(f"{what} {path} is the {name} {src} this command reads; write it elsewhere")
    for marker in owners:
        if (path.parent / marker).exists():
            raise OutputError(f"{what} {path} lies in {path.parent}, a folder fxtrain owns (it holds {marker}); "
                              "write it elsewhere")
    return path


def write_bytes_atomic(path, data):
    """Write ``data`` to ``path`` through a temporary sibling, fsync and a rename (never over a device
    node, a FIFO or a socket)."""
    path = Path(path)
    ensure_dir(path.parent)
    _check_replaceable(path)
    try:
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=TMP_SUFFIX)
    except OSError as exc:
        raise OutputError(f"cannot write {path}: {exc.strerror}") from None
    try:
        with os.fdopen(fd, "wb") as f:
            os.fchmod(f.fileno(), FILE_MODE)
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        _test_kill(path, "before-rename")
        os.replace(tmp, path)
    except BaseException as exc:
        if os.path.exists(tmp):
            os.unlink(tmp)
        if isinstance(exc, IsADirectoryError):
            raise OutputError(f"cannot write {path}: a folder of that name is in the way") from None
        if isinstance(exc, OSError):  # a full disk (ENOSPC), a quota, permission: the old file stands
            raise OutputError(f"cannot write {path}: {exc.strerror or exc}; nothing was replaced") from None
        raise
    _test_kill(path, "after-rename")


def remove_file(path):
    """Delete ``path`` if it exists (an output about to be replaced), or one OutputError line."""
    try:
        Path(path).unlink(missing_ok=True)
    except IsADirectoryError:
        raise OutputError(f"cannot replace {path}: a folder of that name is in the way") from None
    except OSError as exc:
        raise OutputError(f"cannot replace {path}: {exc.strerror}") from None


def append_line(path, line):
    """Append one line to ``path`` and fsync it; a crash can leave at most a partial last line."""
    path = Path(path)
    try:
        with open(path, "a", encoding="utf-8") as f:
            f.write(line + "\n")
            f.flush()
            os.fsync(f.fileno())
    except OSError as exc:
        raise OutputError(f"cannot write {path}: {exc.strerror}") from None
    _test_kill(path, "after-append")


def remove_stale_temporaries(folder):
    """Delete the temporary files an interrupted atomic write left in ``folder``; returns their names."""
    removed = []
    for p in Path(folder).glob(f".*{TMP_SUFFIX}"):
        p.unlink(missing_ok=True)
        removed.append(p.name)
    return removed


class FolderLock:
    """An exclusive lock on an output folder (``.fxtrain.lock``), held while a job writes there.

    The lock is an ``flock`` on a file, so the kernel drops it when the process dies,
    even by SIGKILL: a crashed run never blocks the next one.
    """

    NAME = ".fxtrain.lock"

    def __init__(self, folder):
        self.path = ensure_dir(folder) / self.NAME
        self.fd = None

    def __enter__(self):
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, FILE_MODE)
        except OSError as exc:
            raise OutputError(f"cannot write {self.path}: {exc.strerror}") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            holder = os.read(fd, 64).decode(errors="replace").strip() or "?"
            os.close(fd)
            if exc.errno in (errno.EWOULDBLOCK, errno.EACCES):
                raise OutputError(f"another fxtrain process (pid {holder}) is writing to {self.path.parent}; "
                                  "wait for it to finish, or choose another --out") from None
            raise
        try:  # the holder's pid, for the message a second process gets; a full disk leaves it out
            os.ftruncate(fd, 0)
            os.write(fd, str(os.getpid()).encode())
        except OSError:
            pass
        self.fd = fd
        return self

    def __exit__(self, *exc):
        fcntl.flock(self.fd, fcntl.LOCK_UN)
        os.close(self.fd)
        self.fd = None


def write_text_atomic(path, text):
    write_bytes_atomic(path, text.encode("utf-8"))


def write_json_atomic(path, obj):
    write_text_atomic(path, json.dumps(obj, indent=2, sort_keys=False) + "\n")


def npz_bytes(arrays):
    """An uncompressed .npz of a dict of arrays, as bytes that depend on the arrays alone.

    ``numpy.savez`` stamps each member with the current time; a fixed stamp makes the
    same state give the same file, byte for byte. ``numpy.load`` reads it as usual.
    """
    import numpy as np
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_STORED) as z:
        for name, arr in arrays.items():
            info = zipfile.ZipInfo(f"{name}.npy", date_time=(1980, 1, 1, 0, 0, 0))
            with z.open(info, "w", force_zip64=True) as f:
                np.lib.format.write_array(f, np.asanyarray(arr), allow_pickle=False)
    return buf.getvalue()


def write_npz_atomic(path, arrays):
    """Save a dict of arrays as an uncompressed .npz, atomically."""
    write_bytes_atomic(path, npz_bytes(arrays))
