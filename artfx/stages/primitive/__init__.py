"""primitive: recreate a picture from N geometric shapes (triangles, ellipses, ... or a mix), found by search.

For each new shape: many random candidates, the best refined by hill climbing, best of several restarts. The
colour (and optionally the opacity) of a candidate is solved exactly, and its score is computed from per-row
prefix sums over the pixels it covers, with the same anti-aliased coverage model the final render uses. Every
few shapes, and at the end, all shapes are refined together by gradient descent through a soft version of that
coverage model (kept only when the exact error drops). Then a few large-neighbourhood moves undo early decisions: a
tenth of the shapes taken out, placed again by the search, all refined together, z-order swaps tried (each kept
only when the exact error drops). The shapes are rendered at any output size, and can be
written as SVG, JSON and a GIF/MP4 of the shapes being added and refined.

Modules: ``shapes`` (types, dict and SVG forms), ``geometry`` (numba: random, mutate, outline and its gradient),
``kernels`` (numba: coverage, scoring, compositing), ``search`` (the search, shape-agnostic), ``batch`` (PyTorch
batch scoring for GPUs), ``soft`` (the differentiable coverage model, PyTorch), ``scanline`` and ``adjoint`` (the
same model in numba, with its backward pass), ``refine`` (the joint optimiser), ``painter`` (search and
refinements within a count or a time), ``render``, ``export``.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import Literal, Optional

import numpy as np
from pydantic import Field, field_validator

from artfx.colours import parse_hex
from artfx.stage import Params as _Params
from artfx.stage import output_file

from .shapes import CODE, SHAPE_NAMES

ShapeName = Literal[
    "triangle", "rectangle", "rotated-rectangle", "ellipse", "rotated-ellipse", "circle", "polygon", "bezier",
    "combo",
]
assert set(ShapeName.__args__) == set(SHAPE_NAMES)  # type: ignore[attr-defined]


with warnings.catch_warnings():
    warnings.filterwarnings("ignore", message='Field name "json"')

    class Params(_Params):
        aliases = {"size": "work_size"}  # 0.1 called the working size "size", which is the result's size in style

        n: int = Field(100, ge=1, le=100_000, description="Number of shapes (unused when time is set).")
        shape: ShapeName = Field(
            "triangle",
            description="Shape type: triangle, rectangle, rotated-rectangle, ellipse, rotated-ellipse, circle, "
            "polygon (convex quadrilateral), bezier (quadratic stroke) or combo (any of them).",
        )
        alpha: float = Field(
            0.0,
            ge=0.0,
            le=1.0,
            description="Opacity of every shape (e.g. 0.5); 0: solve the best opacity for each shape (default).",
        )
        background: str = Field("", description="Background colour #rrggbb; empty: the input's mean colour.")
        work_size: int = Field(256, ge=8, le=4096, description="Working size (long side, px) the search runs at "
                               "(the picture is drawn at output_size).")
        output_size: int = Field(
            0, ge=0, le=32768, description="Long side (px) of the rendered picture; 0: the input's size."
        )
        method: Literal["hill", "shrink"] = Field(
            "hill",
            description="hill: random candidates + hill climbing; shrink: random shapes with sampled colours "
            "and a shrinking maximum size (the source paper's variant).",
        )
        candidates: int = Field(200, ge=1, le=1_000_000, description="Random candidates per restart.")
        # 4 restarts (one per size band of search.SIZE_BANDS): with the refinement on, restarts 5-8 bought less
        # than the refinement does with the time they cost (bench_primitive.py, 100 shapes: RMSE within 1%).
        restarts: int = Field(4, ge=1, le=1024, description="Independent searches per shape; the best wins.")
        focus: float = Field(
            0.0,
            ge=0.0,
            le=1.0,
            description="Share of each restart's random candidates centred where the error is (drawn from the "
            "current error map, in 8 px blocks); the rest anywhere on the canvas. 0: all uniform.",
        )
        failures: int = Field(
            60, ge=0, le=1_000_000, description="Hill climbing stops after this many failed mutations in a row."
        )
        refine: int = Field(
            60,
            ge=0,
            le=100_000,
            description="Steps of the final joint refinement: every shape's geometry, colour and opacity optimised "
            "together by gradient descent (kept only if the error drops); 0: greedy search only.",
        )
        refine_every: int = Field(
            5,
            ge=0,
            le=100_000,
            description="Also refine all shapes (10 steps) every this many shapes during the search (every 5% of "
            "them once that is more; not with a time budget); 0: never.",
        )
        rebuild: int = Field(
            3,
            ge=0,
            le=100_000,
            description="Rounds of large-neighbourhood moves after the final refinement: a tenth of the shapes (the "
            "ones whose removal costs least; after a failed round, a run of consecutive ones in the stack) taken "
            "out, placed again by the search, all refined together, z-order swaps tried; kept only if the error "
            "drops; 0: none. Not with refine=0, nor with a time budget (there the search's next shapes pay more).",
        )
        time: float = Field(
            0.0,
            ge=0.0,
            le=1e6,
            description="Seconds to spend instead of a shape count: shapes are added by the search for about "
            "four fifths of it, then all refined together for the rest (all of it while many tiny shapes pay more); "
            "not reproducible; 0: use n.",
        )
        workers: int = Field(0, ge=0, le=1024, description="Threads for the search; 0: all cores.")
        frames: int = Field(60, ge=2, le=2000, description="Frames in the GIF/MP4 animation.")
        svg: Optional[Path] = output_file("Also write the shapes as an SVG file.")
        gif: Optional[Path] = output_file("Also write an animated GIF of the shapes being added and refined.")
        mp4: Optional[Path] = output_file("Also write an MP4 of the shapes being added and refined (where OpenCV "
                                          "can).")
        json: Optional[Path] = output_file("Also write the shape list as JSON.")

        @field_validator("background")
        @classmethod
        def _check_background(cls, v: str) -> str:
            v = v.strip()
            if v:
                parse_hex(v)
            return v


def _background(params: Params, target: np.ndarray) -> np.ndarray:
    if not params.background:
        mean = target.reshape(-1, 3).mean(axis=0)
        return np.floor(mean * 255 + 0.5) / 255  # what the SVG can say
    return parse_hex(params.background).astype(np.float64)


def _sizes(h: int, w: int, params: Params) -> tuple[tuple[int, int], tuple[int, int]]:
    long_in = max(h, w)
    work_long = min(params.work_size, long_in)
    s = work_long / long_in
    work = (max(1, round(w * s)), max(1, round(h * s)))
    if params.output_size == 0:
        out = (w, h)
    else:
        so = params.output_size / long_in
        out = (max(1, round(w * so)), max(1, round(h * so)))
    return work, out


def _use_torch(ctx) -> bool:
    """The torch search and refinement run on a GPU (ctx.device is resolved: cuda, mps or cpu)."""
    return ctx.device != "cpu"


class _Primitive:
    name = "primitive"
    summary = "Recreate the picture from N geometric shapes found by hill climbing (SVG, GIF, JSON too)."
    Params = Params
    formats = {".svg": "svg"}  # -o shapes.svg writes the shapes themselves, as fogleman/primitive does

    def out_shape(self, params: Params, shape: tuple[int, int]) -> tuple[int, int]:
        (_, _), (wo, ho) = _sizes(shape[0], shape[1], params)
        return ho, wo

    def memory(self, params: Params, shape: tuple[int, int], device: str):
        """The output canvas (float64) and the image handed on dominate once output_size is large; the search's
        per-row prefix sums (12 float64 per working pixel) otherwise."""
        from artfx.resources import Need, image_bytes
        from artfx.stages.primitive.kernels import NSUM

        (w, h), (wo, ho) = _sizes(shape[0], shape[1], params)
        host = image_bytes((ho, wo), 1, itemsize=8) + image_bytes((ho, wo), 2) + w * h * (NSUM + 6) * 8
        why = f"output_size={params.output_size}" if params.output_size else f"work_size={params.work_size}"
        return Need(host=host, why=why)

    def apply(self, image: np.ndarray, params: Params, ctx) -> np.ndarray:
        import cv2

        from artfx.stages import _kernels
        from artfx.stages.primitive import kernels
        from artfx.stages.primitive.painter import Painter

        _kernels.first_run_notice(kernels.__file__, ctx.log, "primitive")

        h, w = image.shape[:2]
        (W, H), (Wo, Ho) = _sizes(h, w, params)
        src = np.asarray(image, dtype=np.float32)
        target = src if (W, H) == (w, h) else cv2.resize(src, (W, H), interpolation=cv2.INTER_AREA)
        target = np.clip(target.astype(np.float64), 0.0, 1.0)
        bg = _background(params, target)
        workers = params.workers or os.cpu_count() or 1

        pool = None
        if workers > 1 and not (params.method == "hill" and _use_torch(ctx)):
            from concurrent.futures import ThreadPoolExecutor

            pool = ThreadPoolExecutor(max_workers=workers)

        def report(done, total, rmse):
            ctx.progress(done, total, rmse=round(rmse, 3))
            if ctx.watched:  # a live view (the web page) watches the working canvas
                ctx.checkpoint(np.clip(painter.canvas.cur, 0.0, 1.0).astype(np.float32))

        painter = Painter(target, bg, kind=CODE[params.shape], spread=max(W, H) / 256.0, params=params,
                          workers=workers, pool=pool, progress=report)
        if params.method == "hill" and _use_torch(ctx):
            from artfx.stages.primitive.batch import TorchSearch

            painter.device = ctx.torch_device()
            painter.scorer = TorchSearch(painter.canvas, painter.device)
            ctx.log.info("primitive: scoring candidates and refining on %s", painter.device)
        if ctx.temporal is not None:  # a video frame: start from the previous frame's shapes, moved by the flow
            from artfx.stages.primitive import temporal

            start = temporal.carried(ctx.temporal, (W, H))
            if start:
                painter.start_from(start)
        what = f"for {params.time:g} s" if params.time else f"{params.n} x {params.shape}"
        ctx.log.info("primitive: searching %s at %dx%d px, output %dx%d px", what, W, H, Wo, Ho)
        # Ctrl-C: the shapes accepted so far are drawn at the output size and every side output is written before
        # the interrupt goes on (the shape list is always a complete picture: it is replaced, never edited).
        interrupted = False
        try:
            painter.paint(ctx.rng, params.time)
        except KeyboardInterrupt:
            interrupted = True
        finally:
            painter.close()
            if pool is not None:
                pool.shutdown()
        shapes = painter.shapes
        if ctx.temporal is not None:
            from artfx.stages.primitive import temporal

            temporal.keep(ctx.temporal, shapes)
        if not interrupted and params.n > len(shapes) and not params.time:
            ctx.log.info("primitive: %d of %d shapes kept (no other shape lowered the error)", len(shapes),
                         params.n)
        tried, kept = painter.refinements
        if tried:
            ctx.log.info("primitive: %d of %d refinements kept, RMSE %.3f", kept, tried, painter.rmse)
        tried, kept = painter.rebuilds
        if tried:
            ctx.log.info("primitive: %d of %d rebuilds kept, RMSE %.3f", kept, tried, painter.rmse)
        result = _finish(painter, params, ctx, (W, H), (Wo, Ho), interrupted=interrupted)
        if interrupted:
            raise KeyboardInterrupt
        return result


def _finish(painter, params: Params, ctx, work_wh, out_wh, interrupted: bool = False) -> np.ndarray:
    """The picture at the output size and every side output (SVG, JSON, GIF, MP4) of the painter's shapes.
    ``interrupted``: drawn from the shape list even at the working size (the canvas may be mid-update) and handed
    to ``ctx.checkpoint`` before the side outputs are written."""
    from artfx.stages.primitive import export, render
    from artfx.stages.primitive.shapes import to_dict

    shapes, bg = painter.shapes, painter.bg
    (W, H), (Wo, Ho) = work_wh, out_wh
    same = (Wo, Ho) == (W, H) and not interrupted
    out = painter.canvas.cur if same else render.render(shapes, bg, (W, H), (Wo, Ho))
    result = np.clip(out, 0.0, 1.0).astype(np.float32)
    if interrupted:
        ctx.checkpoint(result)
    dicts = [to_dict(p, c) for p, c in shapes]
    svg_text = export.svg(shapes, bg, (W, H), (Wo, Ho))
    ctx.emit("shapes", dicts)
    ctx.emit("svg", svg_text)
    if params.svg is not None:
        ctx.save(params.svg, svg_text)
    if params.json is not None:
        ctx.save(params.json, export.shapes_json(dicts, bg, (W, H), (Wo, Ho)))
    if params.gif is not None or params.mp4 is not None:
        s = min(1.0, 512.0 / max(Wo, Ho))  # animations at most 512 px on the long side
        anim_wh = (max(1, round(Wo * s)), max(1, round(Ho * s)))
        events = painter.events + ([("set", shapes)] if interrupted else [])  # ends on the picture written
        frames = list(render.history_frames(events, bg, (W, H), anim_wh, params.frames))
        if params.gif is not None:
            ctx.save(params.gif, export.gif_writer(frames))
        if params.mp4 is not None:
            ctx.save(params.mp4, export.mp4_writer(frames))
    return result


stage = _Primitive()
