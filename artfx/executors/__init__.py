"""Where a job's work runs: ``--executor local`` (this process, a loop) or ``--executor ray`` (the workers of a Ray
cluster, actors that keep their models loaded). Same inputs, same seed, same bytes out.

- :mod:`artfx.executors.work`: what a worker does with one piece (an input of a batch, a cell of a sweep, a
  chunk of a video) and how the driver packs it: bytes in, bytes out, no shared filesystem;
- :mod:`artfx.executors.ray`: the cluster (connect, or start one on this machine), the actors, the pieces handed
  out with ``ray.wait`` and retried by Ray when a worker dies, the results written atomically by the driver;
- :mod:`artfx.executors.batch`: a batch's files; :mod:`artfx.executors.cells`: a sweep's cells;
  :mod:`artfx.executors.chunks`: a video's chunks;
- :mod:`artfx.executors.resume`: which outputs of a batch an earlier run already finished.

Importing this package imports neither Ray nor torch.
"""

from __future__ import annotations

from artfx.errors import UsageError

EXECUTORS = ("local", "ray")


def check(opts) -> None:
    """Option combinations refused before any work: --ray-address without --executor ray."""
    if getattr(opts, "ray_address", None) and getattr(opts, "executor", "local") != "ray":
        raise UsageError("--ray-address is for --executor ray; add --executor ray (or drop --ray-address)")


def ray_cells(pipelines: list, src, opts, on_progress=None) -> list:
    """A sweep's cells on a Ray cluster: see :func:`artfx.executors.cells.ray_cells`."""
    from artfx.executors.cells import ray_cells as run

    return run(pipelines, src, opts, on_progress)


__all__ = ["EXECUTORS", "check", "ray_cells"]
