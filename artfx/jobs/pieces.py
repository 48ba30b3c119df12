"""Pieces of pictures' work, as they travel to a worker and back: values only, never a path on the driver's disk
when the executor is remote, so that workers need no shared filesystem.

- The files a pipeline reads (a palette, style images, masks, a weights file) travel once per job as bytes
  (:class:`Files`); in the pipeline a remote worker builds, their parameters name its own copies.
- Side outputs (a palette, an SVG, a GIF, a folder of frames) are written by the stage into a scratch folder on
  a remote worker and come back as bytes with the result; the driver writes every file, atomically, so a worker
  that dies can never leave a half-written file. A local piece's steps write their side outputs themselves.
- The recipe is made where the picture is made (:func:`artfx.jobs.render.render`), with the device used there,
  from the input's name and hash as the driver read it: the bytes written are a local run's.

:func:`render_piece` is what a worker (local or remote) runs on one picture's piece: it calls the work unit.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from artfx.errors import InputError
from artfx.io import Picture, atomic_write, read_image
from artfx.io.files import STDIO, read_stdin
from artfx.jobs.plan import Plan, make_dirs
from artfx.jobs.render import Rendered, Work, load_input, render
from artfx.options import RunOptions
from artfx.pipeline import Pipeline
from artfx.recipe import build, source_of
from artfx.stage import OUTPUT_DIR, OUTPUT_FILE, Report, field_kind

IN = "@artfx-in@"    # stands for the worker's copy of the job's parameter files
OUT = "@artfx-out@"  # stands for the worker's scratch folder of one piece's side outputs


@dataclass
class Files:
    """Files shipped once per job: (name under the worker's folder, bytes)."""

    items: list[tuple[str, bytes]] = field(default_factory=list)

    @property
    def key(self) -> str:
        h = hashlib.sha256()
        for name, data in self.items:
            h.update(name.encode() + b"\0" + hashlib.sha256(data).digest())
        return h.hexdigest()[:16]


@dataclass
class Shared:
    """What every piece of one job shares (sent once to each worker)."""

    opts: RunOptions
    remote: bool = False
    files: Files = field(default_factory=Files)  # remote: the files the steps read
    input: bytes | Picture | None = None  # a sweep's one input: its bytes (remote) or its picture (local)
    source: dict[str, str] | None = None  # how the recipe names that input
    inputs: Files = field(default_factory=Files)  # remote: a sequence's input files
    said: set = field(default_factory=set)  # the job's warnings so far (each said once)


@dataclass
class Piece:
    """One picture's work: its pipeline (packed when remote), its input, what comes back."""

    name: str  # the input as the user named it, for messages
    raw: list  # remote: Pipeline.raw(only_set=True) with IN/... and OUT/<slot>/... placeholders
    pipeline: Pipeline | None = None  # local: the pipeline itself
    src: str | None = None  # local: the input file the worker reads (None: the job's shared input)
    data: bytes | None = None  # remote: the input's bytes
    source: dict[str, str] | None = None  # remote: how the recipe names the input
    slots: list[str] = field(default_factory=list)  # remote: each side output's kind (OUTPUT_FILE / OUTPUT_DIR)
    protected: tuple[Path, ...] = ()  # local: what the steps must never write over
    image_format: str | None = None
    own_format: str | None = None
    keep: tuple[str, ...] = ()  # remote: what travels back besides the file ("image", "outputs")
    keep_best: bool = True  # Ctrl-C: the best image so far is the result (False: it stops the job)
    recipe: dict[str, Any] | None = None  # remote: the recipe as the driver names the files (device left out)


@dataclass
class Delivered:
    """What a worker gives back for a piece: the result, and (remote) the side-output files' bytes."""

    rendered: Rendered
    side: list[tuple[int, str, bytes]] = field(default_factory=list)  # (slot, path under the slot, bytes)


# ---- the driver's side: packing --------------------------------------------------------------------------------
def _swap(value: Any, table: dict[Path, str]) -> Any:
    if isinstance(value, list):
        return [_swap(v, table) for v in value]
    if isinstance(value, str) and value and "\0" not in value:
        try:
            resolved = Path(value).expanduser().resolve()
        except (OSError, RuntimeError, ValueError):
            return value
        return table.get(resolved, value)
    return value


def _flat(values: Any) -> list[str]:
    out: list[str] = []
    for v in values:
        out += _flat(v) if isinstance(v, list) else [v] if isinstance(v, str) else []
    return out


def pack_files(pipelines: list[Pipeline]) -> tuple[dict[Path, str], Files]:
    """(how the steps' parameters name each file they read on a remote worker, those files' bytes), for the
    pipelines of one job. A name that is not a file here (a built-in style, a hex palette) is left for the
    worker to resolve."""
    table: dict[Path, str] = {}
    files = Files()
    for pipeline in pipelines:
        for path in pipeline.reads():
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


def pack(pipeline: Pipeline, table: dict[Path, str]) -> tuple[list, list[tuple[str, Path]]]:
    """(the pipeline's raw steps with the files it reads named as on a remote worker (``table``) and every
    side-output file or folder under OUT/<slot>/, [(kind, path here)] per slot)."""
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


def read_bytes(src: str | Path) -> bytes:
    """An input's bytes, for a remote piece (``-``: standard input)."""
    if str(src) == STDIO:
        data = read_stdin()
        if not data:
            raise InputError("no image on standard input")
        return data
    try:
        return Path(src).read_bytes()
    except OSError as exc:
        raise InputError(f"cannot read {src}: {exc.strerror or exc}") from None


def picture_piece(plan: Plan, opts: RunOptions, remote: bool, table: dict[Path, str], keep: tuple[str, ...] = (),
                  shared_input: bool = False, shared_source: dict[str, str] | None = None, keep_best: bool = True
                  ) -> tuple[Piece, list[tuple[str, Path]]]:
    """The piece of one planned picture, and its side-output slots (remote: where each comes back to).
    ``shared_input``: the picture is the job's one input (named ``shared_source`` in recipes), sent once
    (:attr:`Shared.input`), not with the piece."""
    fmt, own = plan.image_format, (plan.pipeline.own_format(plan.dest) if plan.dest is not None else None)
    if not remote:
        return Piece(str(plan.src), [], plan.pipeline, src=None if shared_input else str(plan.src),
                     protected=plan.protected, image_format=fmt, own_format=own, keep_best=keep_best), []
    raw, slots = pack(plan.pipeline, table)
    data = None if shared_input else read_bytes(plan.src)
    source = source_of(plan.src, data, opts.record_path) if data is not None else shared_source
    recipe = build(plan.pipeline, opts, opts.device, [source]) if source is not None else None
    return Piece(str(plan.src), raw, data=data, source=source, slots=[kind for kind, _ in slots],
                 image_format=fmt, own_format=own, keep=keep, recipe=recipe, keep_best=keep_best), slots


def deliver(plan: Plan, delivered: Delivered, slots: list[tuple[str, Path]], opts: RunOptions,
            report: Report) -> None:
    """Write a piece's files here: its folders, its side outputs (from a remote worker) first, then its output
    file, each atomically; an output file there means all of it is there."""
    make_dirs(plan)
    for slot, rel, data in delivered.side:
        kind, path = slots[slot]
        target = path / rel if kind == OUTPUT_DIR else path
        target.parent.mkdir(parents=True, exist_ok=True)
        report.saved(atomic_write(target, data, protected=plan.protected, force=opts.force))
    if plan.dest is not None and delivered.rendered.data is not None:
        atomic_write(plan.dest, delivered.rendered.data, protected=plan.protected, force=opts.force)


# ---- the worker's side -----------------------------------------------------------------------------------------
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
    """The folder holding this worker's copy of a job's shipped files (written once per worker process)."""
    where = _materialised.get(files.key)
    if where is None or not os.path.isdir(where):
        where = tempfile.mkdtemp(prefix="artfx-in-")
        for name, data in files.items:
            path = Path(where, name)
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)
        _materialised[files.key] = where
    return where


def build_pipeline(raw: list, files: Files, out_dir: str = "") -> Pipeline:
    """The pipeline of a piece, its shipped files and scratch folder in place of the placeholders."""
    in_dir = materialise(files) if files.items else ""
    return Pipeline.from_raw([(s, {k: _unpack(v, in_dir, out_dir) for k, v in p.items()}) for s, p in raw])


def _collect(scratch: str, slots: int) -> list[tuple[int, str, bytes]]:
    side = []
    for slot in range(slots):
        root = Path(scratch, str(slot))
        side += [(slot, p.relative_to(root).as_posix(), p.read_bytes()) for p in sorted(root.rglob("*"))
                 if p.is_file()]
    return side


_decoded: dict[str, Picture] = {}


def _shared_picture(shared: Shared) -> Picture:
    """A job's one shared input (a sweep's), decoded once per worker."""
    if isinstance(shared.input, Picture):
        return shared.input
    data = shared.input or b""
    key = hashlib.sha256(data).hexdigest()
    if key not in _decoded:
        _decoded.clear()
        _decoded[key] = read_image(data, allow_huge=shared.opts.allow_huge, name=shared.source["name"])
    return _decoded[key]


def render_piece(piece: Piece, shared: Shared, report: Report | None) -> Delivered:
    """On a worker: one picture's piece through the work unit. Side outputs of a remote piece are written into
    a scratch folder and come back as bytes."""
    opts = shared.opts
    scratch = tempfile.mkdtemp(prefix="artfx-out-") if piece.slots else ""
    try:
        for slot in range(len(piece.slots)):
            os.makedirs(os.path.join(scratch, str(slot)))
        pipeline = piece.pipeline if piece.pipeline is not None else build_pipeline(piece.raw, shared.files, scratch)
        work = Work(pipeline, opts, protected=piece.protected, image_format=piece.image_format,
                    own_format=piece.own_format, keep_best=piece.keep_best, side_force=shared.remote,
                    said=shared.said, recipe=piece.recipe)
        if piece.data is not None:
            picture, source = read_image(piece.data, allow_huge=opts.allow_huge, name=piece.name), piece.source
        elif piece.src is not None:
            picture, source = load_input(piece.src, opts.allow_huge, opts.record_path)
        else:
            picture, source = _shared_picture(shared), shared.source
        rendered = render(work, picture, report, source)
        if shared.remote:  # only what the driver needs travels back
            if "image" not in piece.keep:
                rendered.image, rendered.alpha = rendered.image[:0, :0], None
            if "outputs" not in piece.keep:
                rendered.outputs = {}
        return Delivered(rendered, _collect(scratch, len(piece.slots)) if scratch else [])
    finally:
        if scratch:
            shutil.rmtree(scratch, ignore_errors=True)
