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


def _clock(seconds: float) -> str:
    seconds = int(round(seconds))
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


LINE_EVERY_S = 15.0  # without a terminal, a progress line at most this often (and at each change of scale)
QUIET_S = 5.0  # ... once a step has run this long


class ProgressView:
    """Progress on stderr, fed by Context.progress: rich bars, one per step, on a terminal; without one (a log,
    a pipe, ``make demo`` in CI), a plain line when a step starts, when its ``scale`` changes, every
    LINE_EVERY_S seconds and when it ends. A step that reports ``left`` (seconds, its own estimate from what
    its work costs) shows that as the time left, instead of rich's average over uneven iterations."""

    def __init__(self, enabled: bool):
        self.terminal = console().is_terminal
        self.enabled = enabled and self.terminal
        self.lines = enabled and not self.terminal
        self.progress = None
        self.tasks: dict[str, Any] = {}
        self.last: dict[str, tuple] = {}  # lines mode: step -> (its start, its last line's time or None, scale)

    def __enter__(self) -> "ProgressView":
        if self.enabled:
            from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn,
                                       TimeRemainingColumn)
            from rich.text import Text

            class TimeLeft(TimeRemainingColumn):
                def render(self, task):  # the step's own estimate where it gives one
                    left = task.fields.get("left")
                    if left is None:
                        return super().render(task)
                    return Text(_clock(left), style="progress.remaining")

            self.progress = Progress(TextColumn("{task.description:>10}"), BarColumn(), MofNCompleteColumn(),
                                     TimeElapsedColumn(), TextColumn("left"), TimeLeft(),
                                     TextColumn("{task.fields[metrics]}"),
                                     console=console(), transient=False)
            self.progress.__enter__()
        return self

    def __exit__(self, *exc: Any) -> None:
        if self.progress is not None:
            self.progress.__exit__(*exc)

    def __call__(self, stage: str, done: float, total: float | None, metrics: dict) -> None:
        metrics = dict(metrics)
        left = metrics.pop("left", None)
        text = " ".join(f"{k}={_fmt_metric(v)}" for k, v in metrics.items() if v not in ("", None))
        if self.lines:
            self._line(stage, done, total, text, metrics.get("scale"), left)
        if self.progress is None:
            return
        if stage not in self.tasks:
            self.tasks[stage] = self.progress.add_task(stage, total=total, metrics=text, left=left)
        self.progress.update(self.tasks[stage], completed=done, total=total, metrics=text, left=left)

    def _line(self, stage: str, done: float, total: float | None, text: str, scale: Any, left: Any) -> None:
        import time

        now = time.monotonic()
        start, when, seen = self.last.setdefault(stage, (now, None, scale))
        end = total is not None and done >= total
        if now - start < QUIET_S and not (end and when is not None):  # quick steps stay silent
            return
        if when is not None and scale == seen and now - when < LINE_EVERY_S and not end:
            return
        self.last[stage] = (start, now, scale)
        count = f"{done:g}/{total:g}" if total is not None else f"{done:g}"
        tail = f", about {_clock(left)} left" if isinstance(left, (int, float)) and not end else ""
        say(f"artfx: {stage} {count} {text}{tail}".rstrip())
