"""Batches: many inputs to an output folder, each picture a piece of the job's executor; a file that fails is
reported and the others still finish. Running the same command again skips the outputs an earlier run finished.

Which outputs an earlier run finished (after Ctrl-C, a lost driver, a crashed machine): outputs are written
atomically, the image after its side outputs, so an output image that exists is complete, and so are its side
outputs. Whether it is *this* job's output is told by its recipe (:func:`artfx.recipe.identity`: same pipeline,
seed and look options, same input bytes, same artfx). By default only those are skipped (with a message);
``--resume`` skips every output that is there with its side outputs, whatever made it; ``--no-resume`` makes
everything again.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from artfx import executors
from artfx import recipe as recipes
from artfx.errors import ArtfxError, Interrupted, as_artfx_error
from artfx.io import read_recipe
from artfx.io.files import STDIO
from artfx.jobs import plan as planner
from artfx.jobs.pieces import Delivered, Files, Shared, deliver, pack_files, picture_piece, render_piece
from artfx.options import RunOptions
from artfx.pipeline import Pipeline
from artfx.stage import OUTPUT_DIR, OUTPUT_FILE, Report

log = logging.getLogger("artfx")


@dataclass
class Written:
    """What a job of pictures wrote: (input, output, recipe) of each, and the inputs that failed, with why."""

    outputs: list[tuple[Path, Path, dict]] = field(default_factory=list)
    failures: list[tuple[Path, ArtfxError]] = field(default_factory=list)


def run_plans(plans: list[planner.Plan], opts: RunOptions, report: Report, single: bool = False) -> Written:
    """Run planned pictures on the executor the options pick and write their files here, each as it arrives.
    A failure is told to ``report.file`` and the others go on; ``single``: the first failure is raised as it
    came (a single still's own message and exit code)."""
    written = Written()
    if not plans:
        return written
    stages = list(dict.fromkeys(s.name for p in plans for s in p.pipeline.steps))
    failures = written.failures
    done = 0
    with executors.pick(opts, stages, len(plans)) as ex:
        table, files = pack_files([p.pipeline for p in plans]) if ex.remote else ({}, Files())
        slots: dict[int, list] = {}

        def piece(i: int):
            planner.make_dirs(plans[i])  # before the steps write their side-output folders
            made, slots[i] = picture_piece(plans[i], opts, ex.remote, table)
            return made

        shared = Shared(opts, ex.remote, files)
        began = time.monotonic()
        try:
            for outcome in ex.map(render_piece, len(plans), piece, shared, report):
                plan, done = plans[outcome.index], done + 1
                error = outcome.error
                if error is None:
                    delivered: Delivered = outcome.value
                    try:
                        deliver(plan, delivered, slots.pop(outcome.index, []), opts, report)
                    except ArtfxError as exc:
                        error = exc
                    else:
                        if delivered.rendered.interrupted:
                            raise Interrupted(f"interrupted; the best image so far was written to {plan.dest}")
                        written.outputs.append((Path(plan.src), Path(plan.dest), delivered.rendered.recipe))
                        report.file(Path(plan.src), Path(plan.dest), None)
                if error is not None:
                    if single or isinstance(error, Interrupted):  # Ctrl-C, a cancel: the batch stops
                        raise error
                    if not isinstance(error, ArtfxError):
                        log.debug("%s failed", plan.src, exc_info=error)
                    failures.append((Path(plan.src), as_artfx_error(error)))
                    report.file(Path(plan.src), Path(plan.dest), failures[-1][1])
                if not single:
                    rate = done / max(time.monotonic() - began, 1e-6)
                    report.progress("files", done, len(plans), {"files/s": round(rate, 2)} if ex.remote else {})
        except KeyboardInterrupt:
            raise Interrupted("interrupted") from None
        except Interrupted as exc:
            if single or done == len(plans):
                raise
            raise type(exc)(f"{exc}; {len(written.outputs)} of {len(plans)} files were done: the same command "
                              "makes the rest (it skips the finished ones)") from None
    return written


# ---- resuming ------------------------------------------------------------------------------------------------
def _files_there(plan: planner.Plan) -> bool:
    if not Path(plan.dest).is_file():
        return False
    for _, _, path, kind in plan.pipeline.files():
        if (kind == OUTPUT_FILE and not path.is_file()) or (kind == OUTPUT_DIR and not path.is_dir()):
            return False
    return True


def is_complete(plan: planner.Plan, opts: RunOptions, trust_existing: bool) -> bool:
    """Whether ``plan``'s outputs are all there and (unless ``trust_existing``) were made by this job."""
    if str(plan.src) == STDIO or str(plan.dest) == STDIO or not _files_there(plan):
        return False
    if trust_existing:
        return True
    try:
        recorded = read_recipe(plan.dest)
        source = recipes.source_of(plan.src, record_path=opts.record_path)
    except (ArtfxError, OSError):
        return False
    if recorded is None or recorded.get("interrupted"):  # the best so far of a stopped run: made again
        return False
    expected = recipes.build(plan.pipeline, opts, opts.device, [source])
    return recipes.identity(recorded) == recipes.identity(expected) and \
        recipes.same_device(recorded.get("device"), opts.device)


def pending(plans: list[planner.Plan], opts: RunOptions) -> list[planner.Plan]:
    """The plans still to run; says how many were skipped (and how to make them again)."""
    if opts.resume is False or not plans:
        return plans
    todo = [p for p in plans if not is_complete(p, opts, trust_existing=bool(opts.resume))]
    skipped = len(plans) - len(todo)
    if skipped:
        how = "there, --resume" if opts.resume else "made earlier by the same recipe"
        log.warning("%d of %d outputs are already complete (%s): skipped, %s; --no-resume makes them again",
                    skipped, len(plans), how, f"{len(todo)} to make" if todo else "nothing left to do")
    return todo


def run(pipeline: Pipeline, inputs: list[Path], out_dir: Path, opts: RunOptions, report: Report) -> Written:
    """Run ``pipeline`` on every input and write ``out_dir``; then an ArtfxError lists the files that failed."""
    plans = pending(planner.batch(pipeline, inputs, out_dir, opts), opts)
    written = run_plans(plans, opts, report)
    failures = written.failures
    if failures:
        names = ", ".join(str(p) for p, _ in failures)
        raise ArtfxError(f"{len(failures)} of {len(inputs)} files failed: {names}")
    return written
