"""Files: atomic writes (temporary file, fsync, rename), checks that an output can be written and never replaces
an input, and hashing of inputs."""

from __future__ import annotations

import hashlib
import os
import re
import secrets
import sys
import unicodedata
from pathlib import Path
from typing import Any, Callable, Iterable

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
    view, start = memoryview(payload), 0
    try:
        # In pieces, each written to the end: unbuffered (python -u, PYTHONUNBUFFERED) standard output is a raw
        # file whose write() returns what the pipe took (64 KB) when its reader goes away in the middle; the
        # next write then raises BrokenPipeError. Ignoring the count would end with exit 0 and half a PNG.
        while start < len(view):
            written = out.write(view[start : start + (1 << 20)])
            if written is None:  # a non-blocking stream that is full: wait for it, as a blocking one would
                import select

                select.select([], [out.fileno()], [])
                continue
            if written <= 0:
                raise OutputError(f"cannot write to standard output: {start} of {len(view)} bytes written")
            start += written
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



# ---- names as messages and recipes show them ---------------------------------------------------------------------
_HIDDEN = ("Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp")  # controls, formatting (bidi overrides, zero-width), unassigned
_ESCAPE_RE = re.compile(r"\\x([0-9a-f]{2})|\\u([0-9a-f]{4})|\\U([0-9a-f]{8})")


def hidden_character(ch: str) -> bool:
    """Whether a character would be invisible or misleading in a name: a control character, a formatting one (a
    right-to-left override, a zero-width space), a surrogate (a byte that was not UTF-8), a line separator."""
    return unicodedata.category(ch) in _HIDDEN


def shown_name(path: str | Path) -> str:
    """The safe form of a path for messages and recipes: valid UTF-8 with nothing hidden in it.

    Bytes of the name that are not UTF-8 (Python keeps them as surrogate escapes: ``b"\\xff"`` is ``"\\udcff"``)
    become ``\\xff``; control and formatting characters (a newline, an escape, a right-to-left override)
    ``\\x0a`` or ``\\u202e``. Everything else is kept, so an ordinary name (``photo.jpg``, ``café.png``) comes
    back as it is. :func:`name_from_shown` turns the form back into the name.

    >>> shown_name(os.fsdecode(b"\\xff\\xfe.png")), shown_name("a\\u202egnp.jpg"), shown_name("café.png")
    ('\\\\xff\\\\xfe.png', 'a\\\\u202egnp.jpg', 'café.png')
    """
    text = os.fspath(path) if isinstance(path, os.PathLike) else str(path)
    if text.isprintable():
        return text
    out = []
    for ch in text:
        code = ord(ch)
        if 0xDC80 <= code <= 0xDCFF:  # a byte that was not UTF-8 (surrogateescape)
            out.append(f"\\x{code - 0xDC00:02x}")
        elif not hidden_character(ch):
            out.append(ch)
        elif code < 0x80:
            out.append(f"\\x{code:02x}")
        else:
            out.append(f"\\u{code:04x}" if code <= 0xFFFF else f"\\U{code:08x}")
    return "".join(out)


def name_from_shown(text: Any) -> Any:
    """The name a :func:`shown_name` form stands for (anything that is not a string is returned as it is)."""
    if not isinstance(text, str) or "\\" not in text:
        return text

    def one(m: re.Match) -> str:
        if m.group(1):
            code = int(m.group(1), 16)
            return chr(code) if code < 0x80 else chr(0xDC00 + code)
        return chr(int(m.group(2) or m.group(3), 16))

    return _ESCAPE_RE.sub(one, text)
