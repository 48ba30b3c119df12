"""What a worker does with one piece of a job, and how the driver packs that piece: values only, never a path on
the driver's disk, so that workers need no shared filesystem.

- The files a pipeline reads (a palette, style images, masks, a weights file) travel once per job as bytes
  (:class:`Files`); in the pipeline a worker builds, their parameters name the worker's own copies.
- Side outputs (a palette, an SVG, a GIF, a folder of frames) are written by the stage into a scratch folder on
  the worker and come back as bytes with the output image; the driver writes every file, atomically, so a worker
  that dies can never leave a half-written file.
- The recipe is made by the driver (the parameters as the user named them, the input's name and hash) and only
  the device the worker used is filled in here: the bytes written are those of a local run.

Nothing here imports Ray: the same functions run in a Ray actor and in the tests.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from artfx.stage import OUTPUT_DIR, OUTPUT_FILE, field_kind

IN = "@artfx-in@"    # stands for the worker's copy of the job's parameter files
OUT = "@artfx-out@"  # stands for the worker's scratch folder of one piece's side outputs


@dataclass
class Files:
    """The files a job's steps read, shipped once: (name under the worker's folder, bytes)."""

    items: list[tuple[str, bytes]] = field(default_factory=list)

    @property
    def key(self) -> str:
        h = hashlib.sha256()
        for name, data in self.items:
            h.update(name.encode() + b"\0" + hashlib.sha256(data).digest())
        return h.hexdigest()[:16]


@dataclass
class Shared:
    """What every piece of one job shares (put once in the cluster's object store)."""

    opts: Any  # RunOptions
    files: Files = field(default_factory=Files)
    input: bytes | None = None  # a sweep's one input, sent once for all its cells
    inputs: Files = field(default_factory=Files)  # a video's input files


@dataclass
class Piece:
    """One piece of a batch: an input's bytes, its pipeline (placeholders for files), where its side outputs go."""

    name: str  # the input as the user named it, for messages
    data: bytes
    raw: list  # Pipeline.raw(only_set=True), with IN/... and OUT/... placeholders
    slots: list[str]  # per side output, its kind (OUTPUT_FILE or OUTPUT_DIR); placeholder OUT/<slot>/...
    recipe: dict  # made by the driver; "device" is filled in by the worker
    fmt: str | None  # the output image's format, or None when the last stage writes it (stage_key)
    stage_key: str | None = None


# ---- the driver's side: packing --------------------------------------------------------------------------------
def _swap(value: Any, table: dict[Path, str]) -> Any:
    if isinstance(value, list):
        return [_swap(v, table) for v in value]
    if isinstance(value, str) and value and "\0" not in value:
        try:
            key = Path(value).expanduser().resolve()
        except (OSError, RuntimeError, ValueError):
            return value
        return table.get(key, value)
    return value


def pack_files(pipelines: list) -> tuple[dict[Path, str], Files]:
    """(how the steps' parameters name each file they read on a worker, those files' bytes), for the pipelines of
    one job. A name that is not a file here (a built-in style, a hex palette) is left for the worker to resolve."""
    from artfx.runner import inputs_of

    table: dict[Path, str] = {}
    files = Files()
    for pipeline in pipelines:
        for path in inputs_of(pipeline, []):
            resolved = path.expanduser().resolve()
            if resolved in table or not resolved.is_file():
                continue
            name = f"{len(files.items)}/{resolved.name}"
            table[resolved] = f"{IN}/{name}"
            files.items.append((name, resolved.read_bytes()))
    used = {v[len(IN) + 1:] for p in pipelines for _, params in p.raw(only_set=True)
            for v in _flat([_swap(x, table) for x in params.values()]) if v.startswith(IN + "/")}
    files.items = [(n, d) for n, d in files.items if n in used]
    return table, files


def _flat(values: Any) -> list[str]:
    out: list[str] = []
    for v in values:
        out += _flat(v) if isinstance(v, list) else [v] if isinstance(v, str) else []
    return out


def pack(pipeline: Any, table: dict[Path, str]) -> tuple[list, list[tuple[str, Path]]]:
    """(the pipeline's raw steps with the files it reads named as on a worker (``table``) and every side-output
    file or folder under OUT/<slot>/, [(kind, path here)] per slot)."""
    slots: list[tuple[str, Path]] = []
    out = []
    for step, (stage, params) in zip(pipeline.steps, pipeline.raw(only_set=True)):
        params = {k: _swap(v, table) for k, v in params.items()}
        for name, info in type(step.params).model_fields.items():
            kind, value = field_kind(info), getattr(step.params, name)
            if kind not in (OUTPUT_FILE, OUTPUT_DIR) or value in (None, ""):
                continue
            path = Path(str(value))
            params[name] = f"{OUT}/{len(slots)}" + ("" if kind == OUTPUT_DIR else f"/{path.name}")
            slots.append((kind, path))
        out.append((stage, params))
    return out, slots


# ---- the worker's side ---------------------------------------------------------------------------------------
_materialised: dict[str, str] = {}


def _unpack(value: Any, in_dir: str, out_dir: str) -> Any:
    if isinstance(value, list):
        return [_unpack(v, in_dir, out_dir) for v in value]
    if isinstance(value, str):
        if value.startswith(IN + "/"):
            return in_dir + value[len(IN):]
        if value.startswith(OUT + "/"):
            if not out_dir:
                raise ValueError("a side output with nowhere to go")
            return out_dir + value[len(OUT):]
    return value


def materialise(files: Files) -> str:
    """The folder holding this worker's copy of a job's parameter files (written once per worker process)."""
    where = _materialised.get(files.key)
    if where is None or not os.path.isdir(where):
        where = tempfile.mkdtemp(prefix="artfx-in-")
        for name, data in files.items:
            path = Path(where, name)
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)
        _materialised[files.key] = where
    return where


def build_pipeline(raw: list, files: Files, out_dir: str = "") -> Any:
    from artfx.pipeline import Pipeline

    in_dir = materialise(files) if files.items else ""
    return Pipeline.from_raw([(s, {k: _unpack(v, in_dir, out_dir) for k, v in p.items()}) for s, p in raw])


def failure(exc: BaseException) -> dict:
    """An error as data: Ray retries only when a worker dies, never for a file that cannot be done."""
    from artfx.errors import ArtfxError, one_line

    if isinstance(exc, ArtfxError):
        return {"error": one_line(exc, 400), "usage": exc.exit_code == 2}
    if isinstance(exc, MemoryError):
        return {"error": "out of memory on the worker (try --max-size, or smaller sizes in the steps)"}
    return {"error": one_line(f"internal error: {type(exc).__name__}: {exc}", 400)}


def collect(scratch: str, slots: int) -> list[tuple[int, str, bytes]]:
    """The side-output files the steps wrote into ``scratch``: (slot, path under the slot, bytes)."""
    side = []
    for slot in range(slots):
        root = Path(scratch, str(slot))
        side += [(slot, p.relative_to(root).as_posix(), p.read_bytes()) for p in sorted(root.rglob("*"))
                 if p.is_file()]
    return side


def batch_piece(piece: Piece, shared: Shared) -> dict:
    """Run one input of a batch: {"data": the output file's bytes, "side": [(slot, relative path, bytes)],
    "device", "seconds"}, or {"error": one line}. Mirrors :func:`artfx.runner.run_plan` step for step."""
    from artfx.io import encode_image, read_image, resize_long_side, resize_to
    from artfx.io.png import RECIPE_KEY, recipe_text
    from artfx.stage import Context, Run

    began = time.perf_counter()
    opts = shared.opts
    scratch = tempfile.mkdtemp(prefix="artfx-out-")
    try:
        for slot, _ in enumerate(piece.slots):
            os.makedirs(os.path.join(scratch, str(slot)))
        pipeline = build_pipeline(piece.raw, shared.files, scratch)
        picture = read_image(piece.data, allow_huge=opts.allow_huge, name=piece.name)
        rgb, alpha = picture.rgb, picture.alpha
        if opts.max_size:
            rgb, alpha = resize_long_side(rgb, opts.max_size, alpha=alpha)
        if not opts.allow_huge:
            from artfx import resources

            resources.check(pipeline, rgb.shape[:2], opts.device, held=rgb.nbytes * 2)
        run = Run.from_options(opts, force=True)
        out = pipeline.run(rgb, Context(run=run))
        if alpha is not None and alpha.shape[:2] != out.shape[:2]:
            alpha = resize_to(alpha, out.shape[0], out.shape[1])
        device = run.resolved_device or "cpu"
        recipe = {**piece.recipe, "device": device}
        if piece.stage_key is not None:
            data = run.outputs[piece.stage_key]
        else:
            data = encode_image(out, alpha=alpha, depth=opts.depth, format=piece.fmt or "PNG",
                                metadata={RECIPE_KEY: recipe_text(recipe)}, quality=opts.quality)
        return {"data": data, "side": collect(scratch, len(piece.slots)), "device": device,
                "seconds": time.perf_counter() - began}
    except Exception as exc:  # noqa: BLE001 - reported for this file; the others go on
        return failure(exc)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def cell_image(cell: tuple[list, int], shared: Shared) -> dict:
    """Run one cell of a sweep (its packed pipeline, its number of side outputs) on the shared input:
    {"image": float32 array, "device", "side"} or {"error"}."""
    from artfx.io import read_image, resize_long_side
    from artfx.stage import Context, Run

    raw, slots = cell
    opts = shared.opts
    scratch = tempfile.mkdtemp(prefix="artfx-out-")
    try:
        for slot in range(slots):
            os.makedirs(os.path.join(scratch, str(slot)))
        pipeline = build_pipeline(raw, shared.files, scratch)
        rgb = read_image(shared.input, allow_huge=opts.allow_huge).rgb
        if opts.max_size:
            rgb, _ = resize_long_side(rgb, opts.max_size)
        run = Run.from_options(opts, force=True)
        image = pipeline.run(rgb, Context(run=run))
        return {"image": image, "device": run.resolved_device or "cpu", "side": collect(scratch, slots)}
    except Exception as exc:  # noqa: BLE001
        return failure(exc)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
