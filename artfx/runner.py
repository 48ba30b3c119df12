"""One home for running a pipeline on files: inputs checked, outputs planned and checked before any work, the
run itself, the recipe, batches, Ctrl-C keeping the best image so far, and replay.

The recipe (:mod:`artfx.replay`) goes into every PNG written; ``replay`` reads it back and reproduces the image
on the same machine.
"""

from __future__ import annotations

import hashlib
import logging
import os
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from artfx.errors import ArtfxError, InputError, Interrupted, OutputError, UsageError
from artfx.io.files import STDIO
from artfx.options import RunOptions
from artfx.pipeline import Pipeline
from artfx.replay import make_recipe
from artfx.stage import INPUT_FILE, OUTPUT_DIR, OUTPUT_FILE, Context, ProgressCallback, Run, field_kind

log = logging.getLogger("artfx")

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".tif", ".tiff", ".webp", ".bmp", ".gif"}


# ---- reading -------------------------------------------------------------------------------------------------
def read_input(src: str | Path, allow_huge: bool, record_path: bool = False):
    """(Picture, {"name", "sha256"} of the file, and "path" with ``record_path``). ``-`` reads standard input.
    The file is read once: decoded (the bomb guard first) and hashed from the same bytes."""
    from artfx.io import read_image
    from artfx.io.files import read_stdin, shown_name

    if str(src) == STDIO:
        data = read_stdin()
        if not data:
            raise InputError("no image on standard input")
        picture = read_image(data, allow_huge=allow_huge, name="standard input")
        return picture, {"name": STDIO, "sha256": hashlib.sha256(data).hexdigest()}
    path = Path(src)
    if not path.exists():
        raise InputError(f"input {str(path)!r} does not exist")
    data = path.read_bytes() if path.is_file() else b""
    picture = read_image(data if data else path, allow_huge=allow_huge, name=str(path))
    source = {"name": shown_name(path.name), "sha256": hashlib.sha256(data).hexdigest()}
    if record_path:
        source["path"] = shown_name(path.resolve())
    return picture, source


# ---- planning: every file read and written, checked before any work ------------------------------------------
@dataclass
class Plan:
    """One input's run: where it comes from, where its picture and side outputs go, what must not be written."""

    src: str | Path
    dest: str | Path
    pipeline: Pipeline
    protected: tuple[Path, ...] = ()
    make_dirs: list[Path] = field(default_factory=list)
    expect_sha256: str | None = None  # replay: the recorded input's hash (a warning when it differs)


def files_read(pipeline: Pipeline) -> list[tuple[str, Path]]:
    """(what, path) of every file the steps will read (parameter files), as named by their parameters."""
    return [(f"{stage}: {name}={str(path)!r}", path) for stage, name, path, kind in pipeline.files()
            if kind == INPUT_FILE]


def _check_reads(pipeline: Pipeline) -> None:
    from artfx.io.files import check_name

    for what, path in files_read(pipeline):
        check_name(path, what)
        if not path.is_file():
            raise InputError(f"{what}: no such file")


def stage_format(pipeline: Pipeline, dest: str | Path) -> str | None:
    """The side-output key of a format the last step's stage writes itself (its ``formats``, e.g. primitive's
    ``{".svg": "svg"}``) when ``dest`` asks for it, else None."""
    formats = getattr(pipeline.steps[-1].stage, "formats", None) or {}
    return formats.get(Path(str(dest)).suffix.lower())


def plan_outputs(plan: Plan, depth: int, force: bool, make_parents: bool = False) -> list[tuple[Path, str]]:
    """Check that everything this run writes can be written without replacing an input; returns the
    (path, what) of every file and directory it will write. ``make_parents``: the output image's folder may
    not exist yet (a batch's output folder), as long as it can be made."""
    from artfx.io import check_writable, output_format
    from artfx.io.files import check_name

    dest = plan.dest
    check_name(dest, "output")
    for _, _, path, _ in plan.pipeline.files():
        check_name(path, "parameter file")
    if str(dest) != STDIO and stage_format(plan.pipeline, dest) is None:
        fmt = output_format(dest)  # an unknown suffix fails here, not after the work
        if depth == 16 and fmt not in ("PNG", "TIFF"):
            raise OutputError(f"--depth 16 needs a .png or .tif output, not {fmt}")
    check_writable(dest, protected=plan.protected, force=force, make_parents=make_parents)
    written = [] if str(dest) == STDIO else [(Path(dest), "the output image")]
    for stage, name, path, kind in plan.pipeline.files():
        if kind == INPUT_FILE:
            continue
        what = f"{stage}: {name}={str(path)!r}"
        if kind == OUTPUT_DIR:
            if path.exists() and not path.is_dir():
                raise OutputError(f"{what} exists and is not a directory")
            plan.make_dirs.append(path)
        else:
            check_writable(path, protected=plan.protected, force=force)
        written.append((path, what))
    seen: dict[Path, str] = {}
    for path, what in written:
        key = path.resolve()
        if key in seen:
            raise OutputError(f"{what} is also {seen[key]}; give each output its own name")
        seen[key] = what
    return written


def _make_dirs(plan: Plan) -> None:
    for path in plan.make_dirs:  # only once every check has passed
        try:
            path.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise OutputError(f"cannot create the directory {path} ({exc.strerror or exc})") from None


# ---- running one input -----------------------------------------------------------------------------------------
def prepare(plan: Plan, rgb, alpha, opts: RunOptions):
    """The last steps before the work: the picture shrunk to --max-size, its memory estimated (a run that cannot
    fit is refused, naming the parameter), the output folders made. Returns (rgb, alpha) as the run takes them."""
    from artfx.io import resize_long_side

    if opts.max_size:
        rgb, alpha = resize_long_side(rgb, opts.max_size, alpha=alpha)
    if not opts.allow_huge:
        from artfx import resources

        resources.check(plan.pipeline, rgb.shape[:2], opts.device, held=rgb.nbytes * 2)
    _make_dirs(plan)
    return rgb, alpha


def run_plan(plan: Plan, opts: RunOptions, on_progress: ProgressCallback | None = None,
             on_saved: Callable[[Path], None] | None = None) -> dict:
    """Run one planned input and write its picture. Returns the recipe written."""
    from artfx.io import resize_to, write_image
    from artfx.io.png import RECIPE_KEY, recipe_text

    picture, source = read_input(plan.src, opts.allow_huge, opts.record_path)
    if plan.expect_sha256 and source["sha256"] != plan.expect_sha256:
        log.warning("%s differs from the recorded input; the result will differ", plan.src)
    rgb, alpha = prepare(plan, picture.rgb, picture.alpha, opts)

    run = Run.from_options(opts, protected=plan.protected, on_progress=on_progress, on_saved=on_saved)
    interrupted = False
    try:
        out = plan.pipeline.run(rgb, Context(run=run))
    except KeyboardInterrupt:
        if run.best is None:
            raise Interrupted("interrupted; nothing was written") from None
        interrupted, out = True, run.best

    if alpha is not None and alpha.shape[:2] != out.shape[:2]:
        alpha = resize_to(alpha, out.shape[0], out.shape[1])
    recipe = make_recipe(plan.pipeline, opts, run.resolved_device or "cpu", source, interrupted)
    key = stage_format(plan.pipeline, plan.dest) if str(plan.dest) != STDIO else None
    if key is not None:  # a format the last stage makes itself (primitive: .svg)
        from artfx.io.files import atomic_write

        atomic_write(plan.dest, run.outputs[key], protected=plan.protected, force=opts.force)
    else:
        write_image(plan.dest, out, alpha=alpha, depth=opts.depth, metadata={RECIPE_KEY: recipe_text(recipe)},
                    protected=plan.protected, force=opts.force, quality=opts.quality)
    if interrupted:
        raise Interrupted(f"interrupted; the best image so far was written to {plan.dest}")
    return recipe


def run_file(pipeline: Pipeline, src: str | Path, dest: str | Path, opts: RunOptions,
             on_progress: ProgressCallback | None = None, extra_protected: tuple[Path, ...] = (),
             on_saved: Callable[[Path], None] | None = None, expect_sha256: str | None = None) -> dict:
    """Run ``pipeline`` on one file and write ``dest``: every check first, then the work. Returns the recipe."""
    if str(src) != STDIO and not Path(src).exists():  # a missing input is named before any other complaint
        raise InputError(f"input {str(src)!r} does not exist")
    _check_reads(pipeline)
    protected = inputs_of(pipeline, [src]) + tuple(extra_protected)
    plan = Plan(src, dest, pipeline, protected, expect_sha256=expect_sha256)
    plan_outputs(plan, opts.depth, opts.force)
    return run_plan(plan, opts, on_progress, on_saved)


def inputs_of(pipeline: Pipeline, sources: list[str | Path]) -> tuple[Path, ...]:
    """Every file a run reads: the inputs and every file a step names (palette, style, mask, init, weights),
    protected alike from being overwritten."""
    paths = [Path(s) for s in sources if str(s) != STDIO]
    paths += [p for _, p in files_read(pipeline)]
    for step in pipeline.steps:
        reads = getattr(step.stage, "reads", None)  # files named in free-form parameters (e.g. style names)
        if callable(reads):
            paths += [Path(p) for p in reads(step.params)]
    return tuple(dict.fromkeys(paths))


# ---- batches ---------------------------------------------------------------------------------------------------
def expand_inputs(inputs: list[str]) -> tuple[list[Path], bool]:
    """Files and directories (their image files, sorted) -> (paths, whether this is a batch)."""
    paths: list[Path] = []
    batch = len(inputs) > 1
    for item in inputs:
        p = Path(item)
        if item != STDIO and p.is_dir():
            batch = True
            paths += sorted(c for c in p.iterdir() if c.is_file() and c.suffix.lower() in IMAGE_SUFFIXES)
        else:
            paths.append(p)
    if batch and any(str(p) == STDIO for p in paths):
        raise UsageError("'-' (standard input) cannot be mixed with other inputs")
    return paths, batch


def batch_names(inputs: list[Path]) -> list[str]:
    """A unique name (no suffix) per input: its path relative to the folder all inputs share, so that inputs
    from different folders keep their folders (A/x.jpg, B/x.jpg -> A/x, B/x); where two inputs still share a
    name (a.jpg, a.png), their extension is added (a-jpg, a-png)."""
    parents = [p.resolve().parent for p in inputs]
    common = Path(os.path.commonpath(parents)) if parents else Path(".")
    rel = [p.resolve().parent.relative_to(common) / p.stem for p in inputs]
    counts = Counter(r.as_posix() for r in rel)
    out = []
    for p, r in zip(inputs, rel):
        name = r.as_posix()
        out.append(f"{name}-{p.suffix.lstrip('.').lower()}" if counts[name] > 1 else name)
    return out


def per_input_pipeline(pipeline: Pipeline, tag: str) -> Pipeline:
    """In a batch, side outputs get the input's name: out.svg -> out-<tag>.svg ({stem} is replaced instead where
    the name has it), and output directories get a folder per input (frames/ -> frames/<tag>/)."""
    flat = tag.replace("/", "-")
    for index, step in enumerate(pipeline.steps):
        changes = {}
        for name, info in type(step.params).model_fields.items():
            value = getattr(step.params, name)
            kind = field_kind(info)
            if kind not in (OUTPUT_FILE, OUTPUT_DIR) or value in (None, ""):
                continue
            text = str(value)
            if "{stem}" in text:
                p = Path(text.replace("{stem}", flat))
            elif kind == OUTPUT_DIR:
                p = Path(text) / tag
            else:
                p = Path(text).with_name(f"{Path(text).stem}-{flat}{Path(text).suffix}")
            changes[name] = p if not isinstance(value, str) else str(p)
        if changes:
            pipeline = pipeline.with_params(index, **changes)
    return pipeline


def plan_batch(pipeline: Pipeline, inputs: list[Path], out_dir: Path, opts: RunOptions, suffix: str = ".png"
               ) -> list[Plan]:
    """A plan per input, every output checked and no two outputs the same; refuses before any work, listing
    the clashes."""
    _check_reads(pipeline)
    protected = inputs_of(pipeline, list(inputs))
    plans = [Plan(src, out_dir / (tag + suffix), per_input_pipeline(pipeline, tag), protected)
             for src, tag in zip(inputs, batch_names(inputs))]
    owners: dict[Path, list[str]] = {}
    for plan in plans:
        for path, what in plan_outputs(plan, opts.depth, opts.force, make_parents=True):
            owners.setdefault(path.resolve(), []).append(f"{plan.src} ({what})")
    clashes = [f"{path}: {', '.join(who)}" for path, who in owners.items() if len(who) > 1]
    if clashes:
        raise OutputError(f"{len(clashes)} output(s) would be written twice: " + "; ".join(clashes[:5]),
                          hint="give each output its own name, e.g. with {stem}")
    return plans


def run_batch(pipeline: Pipeline, inputs: list[Path], out_dir: Path, opts: RunOptions,
              on_progress: ProgressCallback | None = None,
              on_file: Callable[[Path, Path, Exception | None], None] | None = None,
              on_saved: Callable[[Path], None] | None = None) -> list[tuple[Path, str]]:
    """Run on every input; a file that fails is reported and the others still run. Returns the failures."""
    from artfx.executors.resume import pending

    plans = pending(plan_batch(pipeline, inputs, out_dir, opts), opts)  # outputs an earlier run finished: skipped
    if opts.executor == "ray" and plans:  # the files spread over a Ray cluster's workers
        from artfx.executors.batch import run_plans

        return [(src, str(exc)) for src, exc in run_plans(plans, opts, on_progress, on_file, on_saved)]
    failures = []
    for done, plan in enumerate(plans, 1):
        try:
            Path(plan.dest).parent.mkdir(parents=True, exist_ok=True)
            run_plan(plan, opts, on_progress, on_saved)
            if on_file:
                on_file(Path(plan.src), Path(plan.dest), None)
        except Interrupted:
            raise
        except KeyboardInterrupt:
            raise Interrupted("interrupted") from None
        except Exception as exc:  # reported, and the other files go on
            if not isinstance(exc, ArtfxError):
                log.debug("%s failed", plan.src, exc_info=True)
                exc = ArtfxError(f"internal error: {type(exc).__name__}: {exc}".splitlines()[0])
            failures.append((Path(plan.src), str(exc)))
            if on_file:
                on_file(Path(plan.src), Path(plan.dest), exc)
        if on_progress is not None:
            on_progress("files", done, len(plans), {})
    return failures


# ---- a whole job, as the command line gives it ------------------------------------------------------------------
def execute(pipeline: Pipeline, inputs: list[str], output: str | None, opts: RunOptions,
            on_progress: ProgressCallback | None = None,
            on_file: Callable[[Path, Path, Exception | None], None] | None = None,
            on_saved: Callable[[Path], None] | None = None) -> None:
    """Run ``pipeline`` on the inputs (files, directories, or ``-``) and write ``output`` (a file, a directory
    for several inputs, or ``-``). ``on_file(src, dest, error)`` after each input; in a batch, a file that fails
    is reported there and the others still run, then an ArtfxError lists the failures."""
    from artfx.io import FORMATS

    from artfx.io.files import check_name, stdout_buffer

    if not inputs:
        raise UsageError("no input image given")
    if not output:
        raise UsageError("no output given; add -o OUT (a file, a directory for several inputs, or -)")
    for item in [*inputs, output]:
        check_name(item, "input" if item != output else "output")
    if output == STDIO:
        stdout_buffer()  # closed standard output: said now, not after the work
    from artfx import executors

    executors.check(opts)
    if opts.device not in ("auto", "cpu") and opts.executor == "local":  # an absent GPU: a usage error now
        from artfx.devices import resolve_device

        resolve_device(opts.device)
    paths, batch = expand_inputs(inputs)
    from artfx.video import wants_sequence

    if wants_sequence(paths, batch, output):  # a video, an animated GIF, or photos -> one animation
        from artfx.video.job import run_sequence

        _check_reads(pipeline)
        run_sequence(pipeline, paths, output, opts, inputs_of(pipeline, list(paths)), on_progress, on_file)
        return
    if not batch and opts.executor == "ray":  # one file, on a worker of the cluster (a GPU this machine lacks)
        from artfx.executors.batch import run_plans

        if str(paths[0]) != STDIO and not paths[0].exists():
            raise InputError(f"input {str(paths[0])!r} does not exist")
        _check_reads(pipeline)
        plan = Plan(paths[0], output, pipeline, inputs_of(pipeline, [paths[0]]))
        plan_outputs(plan, opts.depth, opts.force)
        for _, exc in run_plans([plan], opts, on_progress, None, on_saved):
            raise exc
        if on_file:
            on_file(paths[0], Path(output), None)
        return
    if not batch:
        run_file(pipeline, paths[0], output, opts, on_progress, on_saved=on_saved)
        if on_file:
            on_file(paths[0], Path(output), None)
        return
    if not paths:
        raise UsageError(f"no image files in {', '.join(inputs)}")
    out_dir = Path(output)
    if output == STDIO or (out_dir.exists() and not out_dir.is_dir()) or out_dir.suffix.lower() in FORMATS:
        raise UsageError(f"several inputs need an output directory, not {output!r}")
    failures = run_batch(pipeline, paths, out_dir, opts, on_progress, on_file, on_saved)
    if failures:
        names = ", ".join(str(p) for p, _ in failures)
        raise ArtfxError(f"{len(failures)} of {len(paths)} files failed: {names}")
