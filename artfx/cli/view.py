"""What the command line shows: the stderr console, log messages, progress bars and one-line errors."""

from __future__ import annotations

import logging
import sys
from typing import Any

_console = None


def console():
    global _console
    if _console is None:
        from rich.console import Console

        _console = Console(stderr=True)
    return _console


def setup_logging(quiet: bool, verbose: bool, debug: bool) -> None:
    level = logging.ERROR if quiet else logging.DEBUG if debug else logging.INFO if verbose else logging.WARNING
    logger = logging.getLogger("artfx")
    if console().is_terminal:  # cooperates with the live progress bars
        from rich.logging import RichHandler

        handler: logging.Handler = RichHandler(console=console(), show_time=False, show_path=False, markup=False)
    else:  # one plain line per message for logs and pipes
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("artfx: %(levelname)s: %(message)s"))
    handler.addFilter(_shown)
    logger.handlers[:] = [handler]
    logger.setLevel(level)
    logger.propagate = False


def _shown(record: logging.LogRecord) -> bool:
    """Log messages, like :func:`say`'s lines, with file names in their safe form."""
    from artfx.io.files import shown_name

    message = record.getMessage()
    safe = shown_name(message)
    if safe != message:
        record.msg, record.args = safe, None
    return True


def say(text: str) -> None:
    """A plain line on stderr (what was written, and so on), file names in it in their safe form (bytes that are
    not UTF-8 as \\xff, control and bidirectional characters escaped: :func:`artfx.io.files.shown_name`)."""
    from artfx.io.files import shown_name

    console().print(shown_name(text), markup=False, highlight=False, soft_wrap=True)


def error_line(message: str) -> None:
    say(f"artfx: error: {message}")


def _fmt_metric(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


class ProgressView:
    """Rich progress bars on stderr, one per step, fed by Context.progress."""

    def __init__(self, enabled: bool):
        self.enabled = enabled and console().is_terminal
        self.progress = None
        self.tasks: dict[str, Any] = {}

    def __enter__(self) -> "ProgressView":
        if self.enabled:
            from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn,
                                       TimeRemainingColumn)

            self.progress = Progress(TextColumn("{task.description:>10}"), BarColumn(), MofNCompleteColumn(),
                                     TimeElapsedColumn(), TextColumn("left"), TimeRemainingColumn(),
                                     TextColumn("{task.fields[metrics]}"),
                                     console=console(), transient=False)
            self.progress.__enter__()
        return self

    def __exit__(self, *exc: Any) -> None:
        if self.progress is not None:
            self.progress.__exit__(*exc)

    def __call__(self, stage: str, done: float, total: float | None, metrics: dict) -> None:
        if self.progress is None:
            return
        text = " ".join(f"{k}={_fmt_metric(v)}" for k, v in metrics.items())
        if stage not in self.tasks:
            self.tasks[stage] = self.progress.add_task(stage, total=total, metrics=text)
        self.progress.update(self.tasks[stage], completed=done, total=total, metrics=text)
