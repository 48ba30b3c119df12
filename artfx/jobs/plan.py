"""The one file planner: every file a job reads and writes, checked before any work.

- what a job is: :func:`kind` (a still, a batch, or a sequence: a video, an animated GIF, photos -> one
  animation), from the inputs as given (:func:`expand_inputs`) and the output's name;
- what it reads: the inputs, the steps' parameter files (:func:`check_reads`), all of them protected from being
  overwritten (:func:`protected`);
- what it writes: :class:`Plan` per picture (:func:`still`, :func:`batch`, :func:`cell`), or
  :class:`SequencePlan` (:func:`sequence`): the output, side-output files and folders, checked writable, never an
  input, no two the same (a batch's clashes are listed before any work); folders are made only once every check
  has passed (:func:`make_dirs`).
"""

from __future__ import annotations

import os
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from artfx.errors import InputError, OutputError, UsageError
from artfx.io import check_writable, output_format
from artfx.io.files import STDIO, check_name
from artfx.options import RunOptions
from artfx.pipeline import Pipeline
from artfx.stage import INPUT_FILE, OUTPUT_DIR, OUTPUT_FILE, field_kind
from artfx.video import GIF_SUFFIX, VIDEO_SUFFIXES

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".tif", ".tiff", ".webp", ".bmp", ".gif"}
FRAMES, VIDEO, GIF = "frames", "video", "gif"


# ---- what the job is ----------------------------------------------------------------------------------------------
def expand_inputs(inputs: list[str]) -> tuple[list[Path], bool]:
    """Files and directories (their image files, sorted) -> (paths, whether this is a batch)."""
    if not inputs:
        raise UsageError("no input image given")
    for item in inputs:
        check_name(item, "input")
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
    if batch and not paths:
        raise UsageError(f"no image files in {', '.join(inputs)}")
    return paths, batch


def output_kind(output: str) -> str | None:
    """``video``, ``gif`` or ``frames`` (a folder: an existing directory, or a name ending in / or without a
    suffix), or None for a still-image output."""
    path = Path(output)
    suffix = path.suffix.lower()
    if suffix in VIDEO_SUFFIXES:
        return VIDEO
    if suffix == GIF_SUFFIX:
        return GIF
    if output.endswith(("/", os.sep)) or path.is_dir() or (not suffix and output != STDIO):
        return FRAMES
    return None


def _is_animated_gif(path: Path, allow_huge: bool) -> bool:
    from artfx.video.media import is_animated_gif

    return is_animated_gif(path, allow_huge)


def kind(paths: list[Path], batch: bool, output: str, allow_huge: bool = False) -> str:
    """``sequence`` (a video input, whatever the output: a still output is refused there; an animated GIF to a
    moving output; several photos to a video or GIF), ``batch`` or ``still``. One still photo to a .gif is a
    still (an indexed GIF)."""
    out = output_kind(output)
    for p in paths:
        if p.suffix.lower() in VIDEO_SUFFIXES and not p.exists():
            raise InputError(f"input {str(p)!r} does not exist")
    if len(paths) == 1 and paths[0].suffix.lower() in VIDEO_SUFFIXES:
        return "sequence"
    if len(paths) > 1 and any(p.suffix.lower() in VIDEO_SUFFIXES for p in paths):
        raise UsageError("give one video at a time (several photos, or one video or GIF, make one animation)")
    if len(paths) == 1 and out is not None and paths[0].suffix.lower() == GIF_SUFFIX and \
            _is_animated_gif(paths[0], allow_huge):
        return "sequence"
    if out in (VIDEO, GIF) and batch:
        return "sequence"
    if out == VIDEO and not batch:
        raise UsageError(f"{output}: a video needs a video, an animated GIF or several photos as input")
    return "batch" if batch else "still"


# ---- what it reads ------------------------------------------------------------------------------------------------
def check_reads(pipeline: Pipeline) -> None:
    """Every file a step's parameters name as an input exists (checked before any work)."""
    for what, path in pipeline.parameter_files():
        check_name(path, what)
        if not path.is_file():
            raise InputError(f"{what}: no such file")


def protected(pipeline: Pipeline, sources: list[str | Path]) -> tuple[Path, ...]:
    """Every file a job reads: its inputs and every file a step names (palette, style, mask, init, weights),
    protected alike from being overwritten."""
    paths = [Path(s) for s in sources if str(s) != STDIO] + pipeline.reads()
    return tuple(dict.fromkeys(paths))


# ---- what it writes -----------------------------------------------------------------------------------------------
@dataclass
class Plan:
    """One picture's run: where it comes from, where its picture and side outputs go, what must not be written."""

    src: str | Path
    dest: str | Path
    pipeline: Pipeline
    protected: tuple[Path, ...] = ()
    make_dirs: list[Path] = field(default_factory=list)
    written: list[tuple[Path, str]] = field(default_factory=list)  # (path, what) of every file and folder

    @property
    def image_format(self) -> str | None:
        """The format the output image is encoded in (PNG for standard output), or None where the last stage
        writes the output itself (primitive's SVG) or there is no output image (a sweep's cell)."""
        if self.dest is None or self.pipeline.own_format(self.dest) is not None:
            return None
        return "PNG" if str(self.dest) == STDIO else output_format(self.dest)


def _plan_outputs(plan: Plan, opts: RunOptions, make_parents: bool = False) -> Plan:
    """Check that everything ``plan`` writes can be written without replacing an input, and note it in
    ``plan.written``. ``make_parents``: the output image's folder may not exist yet (a batch's output folder),
    as long as it can be made."""
    dest = plan.dest
    for _, _, path, _ in plan.pipeline.files():
        check_name(path, "parameter file")
    if dest is not None:
        check_name(dest, "output")
        if str(dest) != STDIO and plan.pipeline.own_format(dest) is None:
            fmt = output_format(dest)  # an unknown suffix fails here, not after the work
            if opts.depth == 16 and fmt not in ("PNG", "TIFF"):
                raise OutputError(f"--depth 16 needs a .png or .tif output, not {fmt}")
        check_writable(dest, protected=plan.protected, force=opts.force, make_parents=make_parents)
        if str(dest) != STDIO:
            plan.written.append((Path(dest), "the output image"))
    for stage, name, path, file_kind in plan.pipeline.files():
        if file_kind == INPUT_FILE:
            continue
        what = f"{stage}: {name}={str(path)!r}"
        if file_kind == OUTPUT_DIR:
            if path.exists() and not path.is_dir():
                raise OutputError(f"{what} exists and is not a directory")
            plan.make_dirs.append(path)
        else:
            check_writable(path, protected=plan.protected, force=opts.force, make_parents=make_parents)
        plan.written.append((path, what))
    seen: dict[Path, str] = {}
    for path, what in plan.written:
        resolved = path.resolve()
        if resolved in seen:
            raise OutputError(f"{what} is also {seen[resolved]}; give each output its own name")
        seen[resolved] = what
    return plan


def make_dirs(plan: Plan) -> None:
    """The plan's folders: its output image's and its side-output folders (only once every check has passed)."""
    folders = list(plan.make_dirs)
    if plan.dest is not None and str(plan.dest) != STDIO:
        folders.insert(0, Path(plan.dest).parent)
    for path in folders:
        try:
            path.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise OutputError(f"cannot create the directory {path} ({exc.strerror or exc})") from None


def still(pipeline: Pipeline, src: str | Path, dest: str | Path, opts: RunOptions,
          extra_protected: tuple[Path, ...] = ()) -> Plan:
    """The plan of one input to one output (``-`` for standard input or output), every check made."""
    if str(src) != STDIO and not Path(src).exists():  # a missing input is named before any other complaint
        raise InputError(f"input {str(src)!r} does not exist")
    check_reads(pipeline)
    return _plan_outputs(Plan(src, dest, pipeline, protected(pipeline, [src]) + tuple(extra_protected)), opts)


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


def tagged(pipeline: Pipeline, tag: str, out_dir: Path | None = None) -> Pipeline:
    """The pipeline of one input of a batch (or one cell of a sweep): side outputs get its name (out.svg ->
    out-<tag>.svg; {stem} is replaced instead where the name has it), output folders a folder per input (frames/ ->
    frames/<tag>/), and a side file named without a folder lands beside the outputs in ``out_dir``."""
    flat = tag.replace("/", "-")
    for index, step in enumerate(pipeline.steps):
        changes = {}
        for name, info in type(step.params).model_fields.items():
            value = getattr(step.params, name)
            file_kind = field_kind(info)
            if file_kind not in (OUTPUT_FILE, OUTPUT_DIR) or value in (None, ""):
                continue
            text = str(value)
            if "{stem}" in text:
                p = Path(text.replace("{stem}", flat))
            elif file_kind == OUTPUT_DIR:
                p = Path(text) / tag
            else:
                p = Path(text).with_name(f"{Path(text).stem}-{flat}{Path(text).suffix}")
            if out_dir is not None and not p.is_absolute() and len(Path(text).parts) == 1:
                p = out_dir / p
            changes[name] = p if not isinstance(value, str) else str(p)
        if changes:
            pipeline = pipeline.with_params(index, **changes)
    return pipeline


def batch(pipeline: Pipeline, inputs: list[Path], out_dir: Path, opts: RunOptions, suffix: str = ".png"
          ) -> list[Plan]:
    """A plan per input, every output checked and no two outputs the same; refuses before any work, listing
    the clashes."""
    from artfx.io import FORMATS

    if (out_dir.exists() and not out_dir.is_dir()) or out_dir.suffix.lower() in FORMATS or str(out_dir) == STDIO:
        raise UsageError(f"several inputs need an output directory, not {str(out_dir)!r}")
    check_reads(pipeline)
    guarded = protected(pipeline, list(inputs))
    plans = [_plan_outputs(Plan(src, out_dir / (tag + suffix), tagged(pipeline, tag, out_dir), guarded), opts,
                           make_parents=True)
             for src, tag in zip(inputs, batch_names(inputs))]
    owners: dict[Path, list[str]] = {}
    for plan in plans:
        for path, what in plan.written:
            owners.setdefault(path.resolve(), []).append(f"{plan.src} ({what})")
    clashes = [f"{path}: {', '.join(who)}" for path, who in owners.items() if len(who) > 1]
    if clashes:
        raise OutputError(f"{len(clashes)} output(s) would be written twice: " + "; ".join(clashes[:5]),
                          hint="give each output its own name, e.g. with {stem}")
    return plans


def cell(pipeline: Pipeline, src: str | Path, dest: Path | None, opts: RunOptions,
         extra_protected: tuple[Path, ...] = ()) -> Plan:
    """The plan of one cell of a sweep: its side outputs (and its own PNG in ``--cells``, ``dest``) checked."""
    check_reads(pipeline)
    guarded = protected(pipeline, [src]) + tuple(extra_protected)
    return _plan_outputs(Plan(src, dest, pipeline, guarded), opts, make_parents=True)


def sheet(output: str, opts: RunOptions, guarded: tuple[Path, ...]) -> None:
    """A sweep's contact sheet can be written."""
    check_name(output, "output")
    output_format(output)
    check_writable(output, protected=guarded, force=opts.force)


# ---- sequences --------------------------------------------------------------------------------------------------
@dataclass
class SequencePlan:
    """A sequence job's files: the output (a video, a GIF or a folder of frames), its work folder, the inputs."""

    pipeline: Pipeline  # without side-output files (not written per frame)
    paths: list[Path]
    kind: str  # VIDEO, GIF or FRAMES
    dest: Path
    work: Path
    protected: tuple[Path, ...]


def _check_dir_creatable(path: Path, what: str) -> None:
    if path.exists():
        if not path.is_dir():
            raise OutputError(f"the {what} {path} exists and is not a directory")
        if not os.access(path, os.W_OK | os.X_OK):
            raise OutputError(f"the {what} {path} is not writable")
        return
    parent = path.parent
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent
    if not parent.is_dir() or not os.access(parent, os.W_OK | os.X_OK):
        raise OutputError(f"cannot create the {what} {path}: {parent} is not a writable directory")


def sequence(pipeline: Pipeline, paths: list[Path], output: str, opts: RunOptions) -> SequencePlan:
    """The plan of a sequence job: the output can hold a video and be written, no input is replaced, the work
    folder (``.NAME.artfx-work`` beside the output, or ``--work-dir``) can be made and holds no input."""
    import logging

    check_name(output, "output")
    out_kind = output_kind(output)
    if out_kind is None:
        raise UsageError(f"{output} cannot hold a video; write .mp4, .webm, .mov, .mkv, .gif or a folder "
                         "for PNG frames")
    check_reads(pipeline)
    pipeline, dropped = pipeline.without_side_files()  # not written per video frame
    if dropped:
        logging.getLogger("artfx").warning("%s: not written for a video", "; ".join(dropped))
    guarded = protected(pipeline, list(paths))
    dest = Path(output.rstrip("/" + os.sep) if out_kind == FRAMES else output)
    if out_kind == FRAMES:
        if dest.exists() and not dest.is_dir():
            raise OutputError(f"{dest} exists and is not a directory")
        _check_dir_creatable(dest, "output folder")
        strangers = [p.name for p in dest.iterdir()] if dest.is_dir() else []
        if strangers and not (dest / "recipe.json").is_file() and not opts.force:
            raise OutputError(f"the output folder {dest} holds files artfx did not write "
                              f"({', '.join(sorted(strangers)[:3])}...); give an empty or new folder, or --force")
    else:
        check_writable(dest, protected=guarded, force=opts.force)
    work = Path(opts.work_dir) if opts.work_dir else dest.parent / f".{dest.name}.artfx-work"
    w, d = work.resolve(), dest.resolve()
    if w == d or d in w.parents or (out_kind == FRAMES and w in d.parents):
        raise OutputError(f"the work folder {work} is the output {dest}, or inside it or around it: its files are "
                          "removed when the job is done", hint="give --work-dir another folder")
    _check_dir_creatable(work, "work folder")
    for p in paths:
        if p.resolve() == work.resolve() or work.resolve() in p.resolve().parents:
            raise OutputError(f"the work folder {work} holds an input")
    return SequencePlan(pipeline, list(paths), out_kind, dest, work, guarded)
