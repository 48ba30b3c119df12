"""A still: one input (a file or standard input) to one output (a file or standard output), on the executor the
options pick (``--executor ray`` runs it on a worker of the cluster: a GPU this machine lacks)."""

from __future__ import annotations

from pathlib import Path

from artfx.jobs import plan as planner
from artfx.jobs.batch import Written, run_plans
from artfx.options import RunOptions
from artfx.pipeline import Pipeline
from artfx.stage import Report


def run(pipeline: Pipeline, src: str | Path, dest: str | Path, opts: RunOptions, report: Report,
        extra_protected: tuple[Path, ...] = ()) -> Written:
    """Run ``pipeline`` on ``src`` and write ``dest``: every check first, then the work. A failure is raised as
    it came (its own message and exit code)."""
    return run_plans([planner.still(pipeline, src, dest, opts, extra_protected)], opts, report, single=True)
