"""Render a shape list at any size with the search's own anti-aliased coverage model (kernels.composite)."""

from __future__ import annotations

from typing import Iterator, Sequence

import numpy as np


def _frames(shapes: Sequence[tuple[np.ndarray, np.ndarray]], background, work_wh, out_wh, every: int
            ) -> Iterator[tuple[int, np.ndarray]]:
    from artfx.stages.primitive import geometry as g
    from artfx.stages.primitive import kernels as k

    (W, H), (Wo, Ho) = work_wh, out_wh
    sx, sy = Wo / W, Ho / H
    canvas = np.empty((Ho, Wo, 3))
    canvas[:] = np.asarray(background, dtype=np.float64)[:3]
    ol = np.zeros(g.OL)
    if every:
        yield 0, canvas
    for i, (p, col) in enumerate(shapes):
        g.outline(np.asarray(p, dtype=np.float64), ol)
        if sx != 1.0 or sy != 1.0:
            g.scale_outline(ol, sx, sy)
        col = np.asarray(col, dtype=np.float64)
        k.composite(canvas, ol, col[:3], float(col[3]))
        if every and ((i + 1) % every == 0 or i + 1 == len(shapes)):
            yield i + 1, canvas
    if not every:
        yield len(shapes), canvas


def render(shapes, background, work_wh: tuple[int, int], out_wh: tuple[int, int] | None = None) -> np.ndarray:
    """The picture of ``shapes`` ([(vector, [r, g, b, a])...], working-canvas coordinates) over ``background``,
    at ``out_wh`` = (width, height) (default: the working size), float64 (H, W, 3) in [0, 1]."""
    out_wh = out_wh or work_wh
    for _, canvas in _frames(shapes, background, work_wh, out_wh, 0):
        return canvas
    raise AssertionError("unreachable")


def frames(shapes, background, work_wh, out_wh, count: int = 60) -> Iterator[np.ndarray]:
    """About ``count`` snapshots (as uint8 arrays) of the shapes being added, the last one complete."""
    every = max(1, -(-len(shapes) // max(count, 1)))
    for _, canvas in _frames(shapes, background, work_wh, out_wh, every):
        yield (np.clip(canvas, 0, 1) * 255 + 0.5).astype(np.uint8)
