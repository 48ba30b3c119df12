"""Jobs: what a user can ask for, one module each, over one work unit (:mod:`artfx.jobs.render`).

- :mod:`~artfx.jobs.still`: one input to one output; :mod:`~artfx.jobs.batch`: inputs to a folder (and which
  outputs an earlier run finished); :mod:`~artfx.jobs.sequence`: a video, an animated GIF or photos to one
  animation, in a work folder that survives; :mod:`~artfx.jobs.sweep`: a grid of parameter values on a contact
  sheet; :mod:`~artfx.jobs.replay`: an artfx PNG made again from its recipe;
- :mod:`~artfx.jobs.plan`: the one file planner (what each job reads and writes, checked before any work);
- :mod:`~artfx.jobs.render`: the work unit, one picture in, one result out, which every job and every executor
  calls: a check added there reaches every job;
- :mod:`~artfx.jobs.pieces`: a picture's work as it travels to a worker (local or on a Ray cluster) and back.

The executor is picked by :func:`artfx.executors.pick`; recipes are built by :mod:`artfx.recipe`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from artfx import executors
from artfx.devices import resolve_device
from artfx.errors import UsageError
from artfx.io.files import STDIO, check_name, stdout_buffer
from artfx.jobs import batch, plan, sequence, still
from artfx.options import RunOptions
from artfx.pipeline import Pipeline
from artfx.stage import Report


def run(pipeline: Pipeline, inputs: list[str], output: str | None, opts: RunOptions, report: Report) -> Any:
    """What ``artfx pipeline SPEC INPUT... -o OUTPUT`` does: run ``pipeline`` on the inputs (files, folders, or
    ``-``) and write ``output`` (a file, a folder for several inputs, a video or GIF for a clip or photos, or
    ``-``), choosing the job from them. Returns what the job wrote (:class:`artfx.jobs.batch.Written`, or a
    sequence's recipe)."""
    if not output:
        raise UsageError("no output given; add -o OUT (a file, a directory for several inputs, or -)")
    check_name(output, "output")
    if output == STDIO:
        stdout_buffer()  # closed standard output: said now, not after the work
    executors.check(opts)
    if opts.device not in ("auto", "cpu") and opts.executor == "local":  # an absent GPU: a usage error now
        resolve_device(opts.device)
    paths, many = plan.expand_inputs([str(i) for i in inputs])  # none given: a usage error there
    job = plan.kind(paths, many, output, opts.allow_huge)
    if job == "sequence":
        return sequence.run(pipeline, paths, output, opts, report)
    if job == "still":
        return still.run(pipeline, paths[0], output, opts, report)
    return batch.run(pipeline, paths, Path(output), opts, report)


__all__ = ["run"]
