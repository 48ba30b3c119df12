"""What every executor offers (:class:`Executor`) and what it yields (:class:`Outcome`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Iterator, Protocol


@dataclass
class Outcome:
    """What became of one piece (or, from ``stream``, one of its results): ``value``, or the ``error`` it raised."""

    index: int
    value: Any = None
    error: BaseException | None = None


class Executor(Protocol):
    remote: bool
    workers: int

    def __enter__(self) -> "Executor": ...

    def __exit__(self, *exc: Any) -> None: ...

    def map(self, fn: Callable[[Any, Any, Any], Any], count: int, piece: Callable[[int], Any], shared: Any,
            report: Any = None) -> Iterator[Outcome]: ...

    def stream(self, fn: Callable[[Any, Any, Any], Iterator[Any]], count: int, piece: Callable[[int], Any],
               shared: Any, report: Any = None) -> Iterator[Outcome]: ...
