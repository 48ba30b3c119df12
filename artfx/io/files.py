"""Files: atomic writes (temporary file, fsync, rename), checks that an output can be written and never replaces
an input, and hashing of inputs."""

from __future__ import annotations

import hashlib
import os
import secrets
import sys
from pathlib import Path
from typing import Callable, Iterable

from artfx.errors import OutputError

STDIO = "-"
"""The name of standard input (as an input) or standard output (as -o)."""


def sha256_file(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def check_writable(path: str | Path, protected: Iterable[Path] = (), force: bool = False,
                   make_parents: bool = False) -> None:
    """OutputError unless ``path`` can be written: its directory exists (or, with ``make_parents``, can be made
    in its nearest existing ancestor) and is writable, it is not a directory, and it is not one of the
    ``protected`` inputs (unless ``force``). ``"-"`` (standard output) is always fine."""
    if str(path) == "-":
        return
    path = Path(path)
    if path.is_dir():
        raise OutputError(f"{path} is a directory; give a file name to write")
    parent = path.parent if str(path.parent) else Path(".")
    if make_parents:
        while not parent.exists() and parent != parent.parent:
            parent = parent.parent
    if not parent.exists():
        raise OutputError(f"cannot write {path}: directory {parent} does not exist")
    if not parent.is_dir():
        raise OutputError(f"cannot write {path}: {parent} is not a directory")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise OutputError(f"cannot write {path}: directory {parent} is not writable")
    if force:
        return
    for other in protected:
        if str(other) != "-" and same_file(path, Path(other)):
            raise OutputError(f"writing {path} would overwrite the input {other}; pass --force to allow it")


def same_file(a: Path, b: Path) -> bool:
    try:
        if a.exists() and b.exists():
            return os.path.samefile(a, b)
        return a.resolve() == b.resolve()
    except OSError:
        return False


def atomic_write(
    path: str | Path,
    data: bytes | str | Callable[[Path], None],
    *,
    protected: Iterable[Path] = (),
    force: bool = False,
) -> Path:
    """Write ``data`` (bytes, text as UTF-8, or a function that writes the temporary Path it is given) to a
    hidden temporary file beside ``path``, fsync it and rename it onto ``path``. Whatever goes wrong, Ctrl-C
    included, the temporary file is removed and ``path`` is left as it was. ``"-"`` writes to standard output."""
    if str(path) == "-":
        _write_stdout(data)
        return Path("-")
    path = Path(path)
    check_writable(path, protected, force)
    tmp, fd = _create_temp(path)
    try:
        try:
            if callable(data):
                os.close(fd)
                fd = -1
                data(tmp)
                if not tmp.is_file():
                    raise OutputError(f"cannot write {path}: the writer did not create its file")
                fd = os.open(tmp, os.O_RDONLY)
            else:
                payload = data.encode("utf-8") if isinstance(data, str) else bytes(data)
                with os.fdopen(fd, "wb", closefd=False) as f:
                    f.write(payload)
            os.fsync(fd)
            os.close(fd)
            fd = -1
            if path.exists():  # keep the permissions of the file being replaced
                os.chmod(tmp, path.stat().st_mode & 0o7777)
            os.replace(tmp, path)
        except OSError as e:
            raise OutputError(f"cannot write {path}: {e.strerror or e}") from e
    except BaseException:
        if fd >= 0:
            os.close(fd)
        tmp.unlink(missing_ok=True)
        raise
    _fsync_dir(path.parent)
    return path


def _create_temp(path: Path) -> tuple[Path, int]:
    """A new hidden file beside ``path`` that keeps its suffix (encoders choose the format from it); created
    with os.open so that the umask applies, as for any new file."""
    parent = path.parent if str(path.parent) else Path(".")
    for _ in range(100):
        tmp = parent / f".{path.stem}.artfx-tmp-{secrets.token_hex(4)}{path.suffix}"
        try:
            return tmp, os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        except FileExistsError:
            continue
        except OSError as e:
            raise OutputError(f"cannot write {path}: {e.strerror or e}") from e
    raise OutputError(f"cannot write {path}: no free temporary file name")  # pragma: no cover


def _fsync_dir(directory: Path) -> None:
    try:
        fd = os.open(directory if str(directory) else ".", os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass  # some file systems do not fsync directories; the rename itself is still atomic
    finally:
        os.close(fd)


def _write_stdout(data: bytes | str | Callable[[Path], None]) -> None:
    if callable(data):
        import tempfile

        with tempfile.TemporaryDirectory(prefix="artfx-tmp-") as d:
            tmp = Path(d) / "stdout"
            data(tmp)
            data = tmp.read_bytes()
    payload = data.encode("utf-8") if isinstance(data, str) else bytes(data)
    out = stdout_buffer()
    try:
        for start in range(0, len(payload), 1 << 20):  # in pieces: a reader that goes away is noticed
            out.write(payload[start : start + (1 << 20)])
            out.flush()
    except BrokenPipeError:
        from artfx.errors import PipeClosed

        raise PipeClosed("standard output was closed by its reader") from None
    except OSError as e:
        raise OutputError(f"cannot write to standard output: {e.strerror or e}") from None


def stdout_buffer():
    """The binary standard output, or OutputError when it is closed (``-o - >&-``)."""
    stream = getattr(sys.stdout, "buffer", None)
    if stream is None:
        raise OutputError("standard output is closed; give -o FILE")
    return stream


def read_stdin() -> bytes:
    """All of standard input, or InputError when it is closed (``- <&-``) or unreadable."""
    stream = getattr(sys.stdin, "buffer", None)
    if stream is None:
        from artfx.errors import InputError

        raise InputError("standard input is closed; give an input file")
    try:
        return stream.read()
    except OSError as e:
        from artfx.errors import InputError

        raise InputError(f"cannot read standard input: {e.strerror or e}") from None


NAME_MAX = 255  # bytes in one path component (Linux, macOS, Windows)
PATH_MAX = 4096


def check_name(path: str | Path, what: str = "file") -> None:
    """UsageError for a path the operating system would refuse: a NUL byte, or a name too long."""
    from artfx.errors import UsageError

    text = str(path)
    if "\0" in text:
        raise UsageError(f"{what} name {text!r} contains a NUL byte")
    encoded = os.fsencode(text)
    if len(encoded) > PATH_MAX or any(len(part) > NAME_MAX for part in encoded.split(b"/")):
        raise UsageError(f"{what} name too long: {text[:40]}... ({len(encoded)} bytes)")

