"""primitive on videos and photo sequences: the previous frame's shapes, moved along the optical flow, are the
start; the painter refines them all together, replaces those that no longer help and tops the list up to ``n``.

The shapes travel in the step's temporal state as two arrays (so a resumed job continues exactly), ``shapes``
(N, 10 shape vectors in working-canvas pixels) and ``colours`` (N, 4: r, g, b, alpha)."""

from __future__ import annotations

import numpy as np

from artfx.stages.primitive import geometry as g
from artfx.stages.primitive.shapes import KINDS, PARAMS

# indices of the x and y coordinates in each kind's vector (1-based: index 0 is the kind)
_XS = {code: [1 + i for i, n in enumerate(PARAMS[kind]) if n.startswith(("x", "cx"))] for code, kind in enumerate(KINDS)}
_YS = {code: [1 + i for i, n in enumerate(PARAMS[kind]) if n.startswith(("y", "cy"))] for code, kind in enumerate(KINDS)}


def carried(temporal, work_wh: tuple[int, int]) -> list[tuple[np.ndarray, np.ndarray]]:
    """The previous frame's shapes moved by the flow at their centres (each shape keeps its form), or [] at the
    start of a shot. Shapes that leave the canvas or stop being drawable are left out (the search replaces them)."""
    state = temporal.state
    if temporal.shot_start or "shapes" not in state:
        return []
    W, H = work_wh
    shapes, colours = np.asarray(state["shapes"], np.float64), np.asarray(state["colours"], np.float64)
    if len(shapes) == 0 or shapes.shape[1] != g.NP:
        return []
    centres = np.array([[p[_YS[int(p[0])]].mean(), p[_XS[int(p[0])]].mean()] for p in shapes])
    moved = temporal.move(centres, H, W) - centres
    out = []
    for p, col, (dy, dx) in zip(shapes, colours, moved):
        q = p.copy()
        q[_XS[int(p[0])]] += dx
        q[_YS[int(p[0])]] += dy
        cy, cx = q[_YS[int(q[0])]].mean(), q[_XS[int(q[0])]].mean()
        if 0 <= cx <= W and 0 <= cy <= H and g.valid_shape(q):
            out.append((q, col.copy()))
    return out


def keep(temporal, shapes: list[tuple[np.ndarray, np.ndarray]]) -> None:
    """This frame's shapes, for the next frame."""
    temporal.state["shapes"] = np.array([p for p, _ in shapes], np.float64).reshape(-1, g.NP)
    temporal.state["colours"] = np.array([c for _, c in shapes], np.float64).reshape(-1, 4)
