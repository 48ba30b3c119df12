"""The work unit: one picture in, one result out. Every job (a still, a batch's files, a sequence's frames, a
sweep's cells, a replay, ``artfx.run`` from Python, the web page) and every executor turns its pictures into
results here and nowhere else, so a check added here reaches every job.

- :func:`admit`: what is checked before a picture's work: the decompression-bomb guard on its size, the size
  after ``--max-size``, and the memory estimate (a run that cannot fit is refused in one line naming the
  parameter). :func:`render` calls it on every picture; a job that knows a size before decoding (a video's
  declared frame size, a sweep's cells) calls it then too, so that it refuses before any work;
- :func:`render`: admit, shrink to ``--max-size``, run the pipeline (Ctrl-C keeps the best image so far), fit
  the alpha to the result, make the recipe (with the device the run used) and encode the output file;
- :func:`load_input`: an input file or standard input, read once: decoded (the bomb guard first) and hashed
  from the same bytes.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from artfx import recipe as recipes
from artfx import resources
from artfx.errors import InputError, Interrupted
from artfx.io import Picture, check_pixels, encode_image, read_image, resize_long_side, resize_to
from artfx.io.files import STDIO, read_stdin
from artfx.io.png import RECIPE_KEY, recipe_text
from artfx.io.resize import long_side_shape
from artfx.options import RunOptions
from artfx.pipeline import Pipeline
from artfx.stage import Context, Report, Run

log = logging.getLogger("artfx")


@dataclass
class Work:
    """What to do to pictures, everything but the pictures: shared by all the pictures of a job's piece."""

    pipeline: Pipeline
    opts: RunOptions
    protected: tuple[Path, ...] = ()
    image_format: str | None = None  # encode the result in this format (a PNG carries its recipe); None: no file
    own_format: str | None = None  # the side output that is the output file (primitive's "svg" for -o x.svg)
    inputs: list[dict[str, str]] | None = None  # the recipe's inputs; None: from the input read (load_input)
    recipe: dict[str, Any] | None = None  # a remote piece's recipe, made by the driver from the pipeline as the
    # user named its files (the worker's copies have other names): only the device used is filled in here
    sequence: Any = None  # a video's Sequence: each step sees the previous frame (artfx.video.temporal)
    keep_best: bool = True  # Ctrl-C: the best image so far becomes the result (False: the job stops)
    guard_pixels: bool = True  # the bomb guard (False for pictures that are arrays in memory already)
    side_force: bool = False  # side outputs go to a worker's scratch folder, written over freely
    said: set = field(default_factory=set)  # the job's warnings, each said once (a sweep's cells, a clip's frames)
    recipe_extra: dict[str, Any] = field(default_factory=dict)  # a job's own recipe keys (frame_rate)
    _admitted: tuple[int, int] | None = field(default=None, repr=False)
    _device: str | None = field(default=None, repr=False)


@dataclass
class Rendered:
    """One picture's result: the image, its alpha, the steps' side outputs, the recipe, the encoded file."""

    image: np.ndarray
    alpha: np.ndarray | None = None
    outputs: dict[str, Any] = field(default_factory=dict)
    recipe: dict[str, Any] = field(default_factory=dict)
    data: bytes | None = None  # the output file's bytes (Work.image_format or own_format), else None
    device: str = "cpu"
    interrupted: bool = False


def load_input(src: str | Path, allow_huge: bool, record_path: bool = False) -> tuple[Picture, dict[str, str]]:
    """(Picture, how the recipe names the input). ``-`` reads standard input. The file is read once: decoded
    (the bomb guard first) and hashed from the same bytes. Only regular files: a FIFO or a device could hang."""
    if str(src) == STDIO:
        data = read_stdin()
        if not data:
            raise InputError("no image on standard input")
        return read_image(data, allow_huge=allow_huge, name="standard input"), recipes.source_of(STDIO, data)
    path = Path(src)
    if not path.exists():
        raise InputError(f"input {str(path)!r} does not exist")
    data = path.read_bytes() if path.is_file() else b""
    picture = read_image(data if data else path, allow_huge=allow_huge, name=str(path))
    return picture, recipes.source_of(path, data, record_path)


def admit(work: Work, shape: tuple[int, int], name: str) -> tuple[int, int]:
    """The checks before a picture of ``shape`` (height, width) is worked on: the bomb guard on its pixels (a
    video frame's declared size as much as a photo's), then the memory estimate at its size after
    ``--max-size`` (``--allow-huge`` lifts both). Returns that size. A size already admitted is not estimated
    again (a video's frames)."""
    opts = work.opts
    if work.guard_pixels:
        check_pixels(int(shape[1]), int(shape[0]), name, opts.allow_huge)
    size = long_side_shape(shape, opts.max_size)
    if not opts.allow_huge and size != work._admitted:
        held = size[0] * size[1] * 3 * 4 * 2  # the input and alpha the run keeps
        resources.check(work.pipeline, size, opts.device, held=held)
        work._admitted = size
    return size


def render(work: Work, picture: Picture, report: Report | None = None, source: dict[str, str] | None = None,
           frame: int | None = None) -> Rendered:
    """Run ``work`` on one decoded picture and make its result (see the module's docstring). ``source``: how
    the recipe names this picture's input, unless ``work.inputs`` says; ``frame``: the picture's index in
    ``work.sequence`` (a video's frame, which the steps see with the previous one)."""
    opts = work.opts
    rgb, alpha = picture.rgb, picture.alpha
    admit(work, rgb.shape[:2], picture.source)
    if opts.max_size:
        rgb, alpha = resize_long_side(rgb, opts.max_size, alpha=alpha)
    if work.sequence is not None:
        work.sequence.begin(frame if frame is not None else work.sequence.index + 1, rgb)
    run = Run.from_options(opts, protected=work.protected, report=report if report is not None else Report(),
                           sequence=work.sequence, said=work.said)
    if work.side_force:
        run.force = True
    run.resolved_device = work._device
    interrupted = False
    try:
        out = work.pipeline.run(rgb, Context(run=run))
    except KeyboardInterrupt:
        if not work.keep_best:
            raise
        if run.best is None:
            raise Interrupted("interrupted; nothing was written") from None
        interrupted, out = True, run.best
    device = work._device = run.resolved_device or "cpu"
    if alpha is not None and alpha.shape[:2] != out.shape[:2]:
        alpha = resize_to(alpha, out.shape[0], out.shape[1])
    inputs = work.inputs if work.inputs is not None else [source] if source is not None else None
    if work.recipe is not None:
        recipe = {**work.recipe, "device": device, **({"interrupted": True} if interrupted else {})}
    elif inputs is not None:
        recipe = recipes.build(work.pipeline, opts, device, inputs, interrupted=interrupted, **work.recipe_extra)
    else:
        recipe = {}
    data = None
    if work.own_format is not None:  # a format the last stage makes itself (primitive: .svg)
        data = run.outputs[work.own_format]
        data = data.encode("utf-8") if isinstance(data, str) else bytes(data)
    elif work.image_format is not None:
        metadata = {RECIPE_KEY: recipe_text(recipe)} if recipe else None
        data = encode_image(out, alpha=alpha, depth=opts.depth, format=work.image_format, metadata=metadata,
                            quality=opts.quality)
    return Rendered(out, alpha, dict(run.outputs), recipe, data, device, interrupted)
