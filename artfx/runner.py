"""Running a pipeline on files: read, validate outputs, run, write with the recipe, keep the best on Ctrl-C.

The recipe (pipeline with every parameter, seed, device, working size, artfx version, the input's hash) goes into
the output PNG's metadata; ``replay`` reads it back and reproduces the image on the same machine.
"""

from __future__ import annotations

import hashlib
import json
import logging
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from artfx import __version__
from artfx.errors import ArtfxError, InputError, Interrupted, OutputError, UsageError
from artfx.pipeline import Pipeline
from artfx.stage import INPUT_FILE, OUTPUT_DIR, OUTPUT_FILE, Context, ProgressCallback, field_kind

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".tif", ".tiff", ".webp", ".bmp", ".gif"}


@dataclass
class RunOptions:
    seed: int = 0
    device: str = "auto"
    max_size: int | None = None
    depth: int = 8
    force: bool = False
    allow_huge: bool = False
    on_progress: ProgressCallback | None = None
    extra_protected: tuple[Path, ...] = field(default_factory=tuple)


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def make_recipe(pipeline: Pipeline, opts: RunOptions, source: str, digest: str, interrupted: bool = False) -> dict:
    recipe = {
        "artfx": __version__,
        "pipeline": [{"stage": name, "params": params} for name, params in pipeline.raw()],
        "spec": pipeline.spec(),
        "seed": opts.seed,
        "device": opts.device,
        "max_size": opts.max_size,
        "depth": opts.depth,
        "input": {"path": source, "sha256": digest},
    }
    if interrupted:
        recipe["interrupted"] = True
    return recipe


def check_files(pipeline: Pipeline, dest: str | Path, protected: tuple[Path, ...], force: bool, depth: int) -> None:
    """Everything the run reads exists and everything it writes can be written: checked before any heavy work.
    Output directories named by stage parameters are created here."""
    from artfx.io import check_writable, output_format

    if str(dest) != "-":
        fmt = output_format(dest)  # an unknown suffix fails here, not after the work
        if depth == 16 and fmt not in ("PNG", "TIFF"):
            raise OutputError(f"--depth 16 needs a .png or .tif output, not {fmt}")
    check_writable(dest, protected=protected, force=force)
    written = {} if str(dest) == "-" else {Path(dest).resolve(): "the output image"}
    make_dirs = []
    for stage, name, path, kind in pipeline.files():
        what = f"{stage}: {name}={str(path)!r}"
        if kind == INPUT_FILE:
            if not path.is_file():
                raise InputError(f"{what}: no such file")
            continue
        key = path.resolve()
        if key in written:
            raise OutputError(f"{what} is also {written[key]}; give each output its own name")
        written[key] = f"{stage}: {name}"
        if kind == OUTPUT_DIR:
            if path.exists() and not path.is_dir():
                raise OutputError(f"{what} exists and is not a directory")
            make_dirs.append((what, path))
        else:
            check_writable(path, protected=protected, force=force)
    for what, path in make_dirs:  # only once every check has passed
        try:
            path.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise OutputError(f"{what}: cannot create the directory ({exc.strerror or exc})") from None


def read_input(src: str | Path, allow_huge: bool):
    """(Picture, sha256 of the file's bytes, source name as recorded)."""
    from artfx.io import read_image

    if str(src) == "-":
        data = sys.stdin.buffer.read()
        if not data:
            raise InputError("no image on standard input")
        return read_image(data, allow_huge=allow_huge, name="standard input"), hashlib.sha256(data).hexdigest(), "-"
    path = Path(src)
    if not path.exists():
        raise InputError(f"input {str(path)!r} does not exist")
    picture = read_image(path, allow_huge=allow_huge)
    return picture, sha256_file(path), str(path.resolve())


def run_file(pipeline: Pipeline, src: str | Path, dest: str | Path, opts: RunOptions) -> dict:
    """Run ``pipeline`` on one file and write ``dest``. Returns the recipe written."""
    from artfx.io import resize_long_side, resize_to, write_image

    protected = tuple(opts.extra_protected) + ((Path(src),) if str(src) != "-" else ())
    if str(src) != "-" and not Path(src).exists():  # a missing input is named before any other complaint
        raise InputError(f"input {str(src)!r} does not exist")
    check_files(pipeline, dest, protected, opts.force, opts.depth)
    picture, digest, source = read_input(src, opts.allow_huge)

    rgb, alpha = picture.rgb, picture.alpha
    if opts.max_size:
        rgb, alpha = resize_long_side(rgb, opts.max_size, alpha=alpha)

    ctx = Context(seed=opts.seed, device=opts.device, max_size=opts.max_size, on_progress=opts.on_progress,
                  protected=protected, force=opts.force)
    interrupted = False
    try:
        out = pipeline.run(rgb, ctx)
    except KeyboardInterrupt:
        if ctx.best is None:
            raise Interrupted("interrupted; nothing was written") from None
        interrupted, out = True, ctx.best

    if alpha is not None and alpha.shape[:2] != out.shape[:2]:
        alpha = resize_to(alpha, out.shape[0], out.shape[1])
    recipe = make_recipe(pipeline, opts, source, digest, interrupted)
    write_image(dest, out, alpha=alpha, depth=opts.depth, metadata={"artfx:recipe": json.dumps(recipe)},
                protected=protected, force=opts.force)
    if interrupted:
        raise Interrupted(f"interrupted; the best image so far was written to {dest}")
    return recipe


def batch_outputs(inputs: list[Path], out_dir: Path, suffix: str) -> list[tuple[Path, Path]]:
    """Output names for a batch: the input's stem, and its extension too where stems clash (a.jpg, a.png)."""
    from collections import Counter

    stems = Counter(src.stem for src in inputs)
    pairs = []
    for src in inputs:
        name = f"{src.stem}-{src.suffix.lstrip('.')}" if stems[src.stem] > 1 else src.stem
        pairs.append((src, out_dir / (name + suffix)))
    return pairs


def expand_inputs(inputs: list[str]) -> tuple[list[Path], bool]:
    """Files and directories (their image files, sorted) -> (paths, whether this is a batch)."""
    paths: list[Path] = []
    batch = len(inputs) > 1
    for item in inputs:
        p = Path(item)
        if item != "-" and p.is_dir():
            batch = True
            paths += sorted(c for c in p.iterdir() if c.is_file() and c.suffix.lower() in IMAGE_SUFFIXES)
        else:
            paths.append(p)
    if batch and any(str(p) == "-" for p in paths):
        raise UsageError("'-' (standard input) cannot be mixed with other inputs")
    return paths, batch


def per_input_pipeline(pipeline: Pipeline, stem: str) -> Pipeline:
    """In a batch, side-output files get the input's name: out.svg -> out-<stem>.svg, or {stem} replaced."""
    for index, step in enumerate(pipeline.steps):
        changes = {}
        for name, info in type(step.params).model_fields.items():
            value = getattr(step.params, name)
            if field_kind(info) == OUTPUT_FILE and value not in (None, ""):
                text = str(value)
                p = Path(text.replace("{stem}", stem)) if "{stem}" in text else \
                    Path(text).with_name(f"{Path(text).stem}-{stem}{Path(text).suffix}")
                changes[name] = type(value)(p) if not isinstance(value, str) else str(p)
        if changes:
            pipeline = pipeline.with_params(index, **changes)
    return pipeline


def run_batch(pipeline: Pipeline, inputs: list[Path], out_dir: Path, opts: RunOptions, suffix: str = ".png",
              on_file: Callable[[Path, Path, Exception | None], None] | None = None) -> list[tuple[Path, str]]:
    """Run on every input; a file that fails is reported and the others still run. Returns the failures."""
    out_dir.mkdir(parents=True, exist_ok=True)
    failures = []
    protected = tuple(inputs)
    for src, dest in batch_outputs(inputs, out_dir, suffix):
        try:
            run_file(per_input_pipeline(pipeline, src.stem), src, dest,
                     RunOptions(**{**opts.__dict__, "extra_protected": protected}))
            if on_file:
                on_file(src, dest, None)
        except Interrupted:
            raise
        except KeyboardInterrupt:
            raise Interrupted("interrupted") from None
        except Exception as exc:  # reported, and the other files go on
            if not isinstance(exc, ArtfxError):
                logging.getLogger("artfx").debug("%s failed", src, exc_info=True)
                exc = ArtfxError(f"internal error: {type(exc).__name__}: {exc}".splitlines()[0])
            failures.append((src, str(exc)))
            if on_file:
                on_file(src, dest, exc)
    return failures


def load_recipe(path: str | Path) -> dict[str, Any]:
    from artfx.io import read_image, read_recipe

    if not Path(path).exists():
        raise InputError(f"{str(path)!r} does not exist")
    recipe = read_recipe(read_image(path))
    if not recipe:
        raise UsageError(f"{str(path)!r} holds no artfx recipe (only PNGs written by artfx do)")
    return recipe


def replay_pipeline(recipe: dict[str, Any]) -> Pipeline:
    """The recorded pipeline, with side-output files switched off (replay writes only the image)."""
    pipeline = Pipeline.from_raw([(s["stage"], s["params"]) for s in recipe["pipeline"]])
    for index, step in enumerate(pipeline.steps):
        off = {n: None for n, i in type(step.params).model_fields.items()
               if field_kind(i) in (OUTPUT_FILE, OUTPUT_DIR)}
        if off:
            pipeline = pipeline.with_params(index, **off)
    return pipeline

