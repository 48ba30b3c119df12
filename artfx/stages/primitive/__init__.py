"""primitive: recreate a picture from N geometric shapes (triangles, ellipses, ... or a mix), found by search.

For each new shape: many random candidates, the best refined by hill climbing, best of several restarts. The
colour (and optionally the opacity) of a candidate is solved exactly, and its score is computed from per-row
prefix sums over the pixels it covers, with the same anti-aliased coverage model the final render uses. The
shapes are rendered at any output size, and can be written as SVG, JSON and a GIF/MP4 of the shapes being added.

Modules: ``shapes`` (types, dict and SVG forms), ``geometry`` (numba: random, mutate, outline), ``kernels``
(numba: coverage, scoring, compositing), ``search`` (the search, shape-agnostic), ``batch`` (PyTorch batch
scoring for GPUs), ``render``, ``export``.
"""

from __future__ import annotations

import os
import re
import warnings
from pathlib import Path
from typing import Literal, Optional

import numpy as np
from pydantic import Field, field_validator

from artfx.stage import Params as _Params
from artfx.stage import output_file

from .shapes import CODE, SHAPE_NAMES

ShapeName = Literal[
    "triangle", "rectangle", "rotated-rectangle", "ellipse", "rotated-ellipse", "circle", "polygon", "bezier",
    "combo",
]
assert set(ShapeName.__args__) == set(SHAPE_NAMES)  # type: ignore[attr-defined]

_HEX = re.compile(r"^#?[0-9a-fA-F]{6}$")

with warnings.catch_warnings():
    warnings.filterwarnings("ignore", message='Field name "json"')

    class Params(_Params):
        n: int = Field(100, ge=1, le=100_000, description="Number of shapes.")
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
        size: int = Field(256, ge=8, le=4096, description="Working size (long side, px) the search runs at.")
        output_size: int = Field(
            0, ge=0, le=32768, description="Long side (px) of the rendered picture; 0: the input's size."
        )
        method: Literal["hill", "shrink"] = Field(
            "hill",
            description="hill: random candidates + hill climbing; shrink: random shapes with sampled colours "
            "and a shrinking maximum size (the source paper's variant).",
        )
        candidates: int = Field(200, ge=1, le=1_000_000, description="Random candidates per restart.")
        restarts: int = Field(8, ge=1, le=1024, description="Independent searches per shape; the best wins.")
        failures: int = Field(
            60, ge=0, le=1_000_000, description="Hill climbing stops after this many failed mutations in a row."
        )
        workers: int = Field(0, ge=0, le=1024, description="Threads for the search; 0: all cores.")
        frames: int = Field(60, ge=2, le=2000, description="Frames in the GIF/MP4 animation.")
        svg: Optional[Path] = output_file("Also write the shapes as an SVG file.")
        gif: Optional[Path] = output_file("Also write an animated GIF of the shapes being added.")
        mp4: Optional[Path] = output_file("Also write an MP4 of the shapes being added (where OpenCV can).")
        json: Optional[Path] = output_file("Also write the shape list as JSON.")

        @field_validator("background")
        @classmethod
        def _check_background(cls, v: str) -> str:
            v = v.strip()
            if v and not _HEX.match(v):
                raise ValueError(f"background must be empty (mean colour) or a colour #rrggbb, not {v!r}")
            return v


def _background(params: Params, target: np.ndarray) -> np.ndarray:
    if not params.background:
        mean = target.reshape(-1, 3).mean(axis=0)
        return np.floor(mean * 255 + 0.5) / 255  # what the SVG can say
    h = params.background.lstrip("#")
    return np.array([int(h[i : i + 2], 16) / 255 for i in (0, 2, 4)])


def _sizes(h: int, w: int, params: Params) -> tuple[tuple[int, int], tuple[int, int]]:
    long_in = max(h, w)
    work_long = min(params.size, long_in)
    s = work_long / long_in
    work = (max(1, round(w * s)), max(1, round(h * s)))
    if params.output_size == 0:
        out = (w, h)
    else:
        so = params.output_size / long_in
        out = (max(1, round(w * so)), max(1, round(h * so)))
    return work, out


def _use_torch(ctx) -> bool:
    if ctx.device == "cpu":
        return False
    if ctx.device == "auto":
        try:
            import torch
        except ImportError:  # pragma: no cover - torch is a dependency
            return False
        if not torch.cuda.is_available():
            return False
    return ctx.torch_device().type != "cpu"


class _Primitive:
    name = "primitive"
    summary = "Recreate the picture from N geometric shapes found by hill climbing (SVG, GIF, JSON too)."
    Params = Params

    def apply(self, image: np.ndarray, params: Params, ctx) -> np.ndarray:
        import cv2

        from artfx.stages.primitive import export, render, search
        from artfx.stages.primitive.shapes import to_dict

        h, w = image.shape[:2]
        (W, H), (Wo, Ho) = _sizes(h, w, params)
        src = np.asarray(image, dtype=np.float32)
        target = src if (W, H) == (w, h) else cv2.resize(src, (W, H), interpolation=cv2.INTER_AREA)
        target = np.clip(target.astype(np.float64), 0.0, 1.0)
        bg = _background(params, target)
        canvas = search.Canvas(target, bg)
        kind = CODE[params.shape]
        spread = max(W, H) / 256.0
        workers = params.workers or os.cpu_count() or 1
        n = params.n

        scorer = None
        if params.method == "hill" and _use_torch(ctx):
            from artfx.stages.primitive.batch import TorchSearch

            scorer = TorchSearch(canvas, ctx.torch_device())
            ctx.log.info("primitive: scoring candidates in batches on %s", ctx.torch_device())

        shapes: list[tuple[np.ndarray, np.ndarray]] = []
        size0 = max(W, H) / 4.0
        min_size = max(2.0, max(W, H) / 128.0)
        steps = 20
        pool = None
        if workers > 1 and scorer is None:
            from concurrent.futures import ThreadPoolExecutor

            pool = ThreadPoolExecutor(max_workers=workers)
        try:
            for i in range(n):
                seeds = ctx.rng.integers(0, 2**31 - 1, size=params.restarts)
                if params.method == "shrink":
                    every = max(1, -(-n // steps))
                    size = max(min_size, size0 - (size0 - min_size) / steps * (i // every))
                    p, col, delta = search.best_shrink(canvas, seeds, kind, size, params.candidates, params.alpha,
                                                       pool)
                elif scorer is not None:
                    p, col, delta = scorer.best_shape(seeds, kind, spread, params.candidates, params.failures,
                                                      params.alpha)
                else:
                    p, col, delta = search.best_shape(canvas, seeds, kind, spread, params.candidates,
                                                      params.failures, params.alpha, pool)
                if p is not None and delta < 0:
                    canvas.add(p, col, delta)
                    if scorer is not None:
                        scorer.sync()
                    shapes.append((p.copy(), col.copy()))
                ctx.progress(i + 1, n, rmse=round(canvas.rmse, 3))
                ctx.checkpoint(np.clip(canvas.cur, 0.0, 1.0).astype(np.float32))
        finally:
            if pool is not None:
                pool.shutdown()
        if len(shapes) < n:
            ctx.log.info("primitive: %d of %d shapes kept (no other shape lowered the error)", len(shapes), n)

        out = canvas.cur if (Wo, Ho) == (W, H) else render.render(shapes, bg, (W, H), (Wo, Ho))
        result = np.clip(out, 0.0, 1.0).astype(np.float32)

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
            frames = list(render.frames(shapes, bg, (W, H), anim_wh, params.frames))
            if params.gif is not None:
                ctx.save(params.gif, export.gif_writer(frames))
            if params.mp4 is not None:
                ctx.save(params.mp4, export.mp4_writer(frames))
        return result


stage = _Primitive()
