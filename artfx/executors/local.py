"""``--executor local``: the pieces run one after the other in this process, with the job's report (progress
bars, live images, cancel) handed to each. A piece that fails is an :class:`Outcome` with its error, exactly as
raised (so a single still fails with its own message and exit code); Ctrl-C stops the loop."""

from __future__ import annotations

from typing import Any, Callable, Iterator

from artfx.executors.base import Outcome


class Local:
    remote = False
    workers = 1

    def __enter__(self) -> "Local":
        return self

    def __exit__(self, *exc: Any) -> None:
        pass

    def map(self, fn: Callable[[Any, Any, Any], Any], count: int, piece: Callable[[int], Any], shared: Any,
            report: Any = None) -> Iterator[Outcome]:
        for i in range(count):
            try:
                value = fn(piece(i), shared, report)
            except Exception as exc:  # noqa: BLE001 - the job decides what a failed piece means
                yield Outcome(i, error=exc)
            else:
                yield Outcome(i, value)

    def stream(self, fn: Callable[[Any, Any, Any], Iterator[Any]], count: int, piece: Callable[[int], Any],
               shared: Any, report: Any = None) -> Iterator[Outcome]:
        for i in range(count):
            try:
                for value in fn(piece(i), shared, report):
                    yield Outcome(i, value)
            except Exception as exc:  # noqa: BLE001
                yield Outcome(i, error=exc)
