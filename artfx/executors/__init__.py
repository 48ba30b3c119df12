"""Where a job's pieces of work run: ``--executor local`` (this process, a loop) or ``--executor ray`` (the workers
of a Ray cluster, actors that keep their models loaded). Same pieces, same seed, same bytes out.

Executors know no jobs. A job (:mod:`artfx.jobs`) hands down the function a worker runs on each piece,
``fn(piece, shared, report)``, and how to make the pieces; an executor offers two ways to run them:

- ``map(fn, count, piece, shared, report)``: ``fn`` returns one result per piece;
- ``stream(fn, count, piece, shared, report)``: ``fn`` yields results as it makes them (a video's frames);

both yield :class:`Outcome` objects, in any order, as pieces finish. ``piece(i)`` is called only when piece ``i``
is sent. An executor is a context manager (a Ray cluster is joined or started on entry, left on exit) and says
whether its pieces travel to other machines (``remote``: then they must be plain values, files as bytes) and how
many workers it has. :func:`pick` is the one place that chooses.

Importing this package imports neither Ray nor torch.
"""

from __future__ import annotations

from typing import Any

from artfx.errors import UsageError
from artfx.executors.base import Executor, Outcome

EXECUTORS = ("local", "ray")


def check(opts: Any) -> None:
    """Option combinations refused before any work: --ray-address without --executor ray."""
    if getattr(opts, "ray_address", None) and getattr(opts, "executor", "local") != "ray":
        raise UsageError("--ray-address is for --executor ray; add --executor ray (or drop --ray-address)")


def pick(opts: Any, stages: list[str], pieces: int) -> Executor:
    """The executor a job's options ask for (the only place that chooses): ``stages`` are the stage names its
    workers load once, ``pieces`` the most pieces the job will hand out (no more workers than that)."""
    check(opts)
    if opts.executor == "ray":
        from artfx.executors.ray import RayExecutor

        return RayExecutor(opts.ray_address, opts.device, stages, pieces)
    from artfx.executors.local import Local

    return Local()


__all__ = ["EXECUTORS", "Executor", "Outcome", "check", "pick"]
