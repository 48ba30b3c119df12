"""One small error tree. Each error carries its exit code; only the CLI turns them into messages and exits."""

from __future__ import annotations


class ArtfxError(Exception):
    """Base of every error artfx reports to a user: one line, an exit code, an optional hint."""

    exit_code = 1

    def __init__(self, message: str, hint: str | None = None):
        super().__init__(message)
        self.hint = hint

    def __str__(self) -> str:  # one line, hint appended
        msg = super().__str__()
        return f"{msg} ({self.hint})" if self.hint else msg


class UsageError(ArtfxError):
    """The user asked for something that cannot be done as written (exit 2)."""

    exit_code = 2


class SpecError(UsageError):
    """A pipeline spec or config that does not parse; `column` is 1-based where known."""

    def __init__(self, message: str, spec: str | None = None, column: int | None = None, hint: str | None = None):
        if spec is not None and column is not None:
            message = f"{message} at column {column} of {spec!r}"
        super().__init__(message, hint)
        self.spec = spec
        self.column = column


class UnknownStageError(UsageError):
    """A stage name that no installed plugin provides."""


class ParamError(UsageError):
    """A parameter value a stage does not accept."""


class InputError(UsageError):
    """An input file that does not exist or cannot be opened."""


class OutputError(UsageError):
    """An output that cannot or must not be written (not writable, would overwrite an input)."""


class ImageError(ArtfxError):
    """A file that exists but is not a readable image (corrupt, truncated, too large)."""


class StageError(ArtfxError):
    """A stage that failed while running."""


class Interrupted(ArtfxError):
    """Ctrl-C. The best image so far has been kept where that was possible."""

    exit_code = 130


class PipeClosed(ArtfxError):
    """The reader of standard output went away (``artfx ... -o - | head -c1``): stop quietly, as Unix tools do
    (exit 141, the shell's status for SIGPIPE)."""

    exit_code = 141


class Cancelled(Interrupted):
    """A run stopped on request (``Run.cancelled``, e.g. from the web page)."""


OUT_OF_MEMORY = "out of memory (try --max-size, or smaller sizes in the steps)"


def as_artfx_error(exc: BaseException) -> "ArtfxError":
    """Any failure as what a user is told: an ArtfxError as it is, running out of memory as :data:`OUT_OF_MEMORY`,
    anything else as an internal error (a bug to report) in one line."""
    if isinstance(exc, ArtfxError):
        return exc
    if isinstance(exc, MemoryError):
        return ArtfxError(OUT_OF_MEMORY)
    return ArtfxError(one_line(f"internal error: {type(exc).__name__}: {exc}", 400))


def one_line(e: object, limit: int = 200) -> str:
    """An exception or text as one line of at most ``limit`` characters (whitespace runs collapsed)."""
    text = " ".join(str(e).split())
    return text if len(text) <= limit else text[: limit - 3] + "..."
