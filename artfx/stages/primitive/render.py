"""Render a shape list at any size with the search's own anti-aliased coverage model (kernels.composite), and the
frames of a painting's history for the animation."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np


def _draw(canvas: np.ndarray, p, col, scale: tuple[float, float], ol: np.ndarray) -> None:
    from artfx.stages.primitive import geometry as g
    from artfx.stages.primitive import kernels as k

    g.outline(np.asarray(p, dtype=np.float64), ol)
    if scale != (1.0, 1.0):
        g.scale_outline(ol, *scale)
    col = np.asarray(col, dtype=np.float64)
    k.composite(canvas, ol, col[:3], float(col[3]))


def _blank(background, out_wh) -> np.ndarray:
    canvas = np.empty((out_wh[1], out_wh[0], 3))
    canvas[:] = np.asarray(background, dtype=np.float64)[:3]
    return canvas


def _u8(canvas: np.ndarray) -> np.ndarray:
    return (np.clip(canvas, 0, 1) * 255 + 0.5).astype(np.uint8)


def render(shapes, background, work_wh: tuple[int, int], out_wh: tuple[int, int] | None = None) -> np.ndarray:
    """The picture of ``shapes`` ([(vector, [r, g, b, a])...], working-canvas coordinates) over ``background``,
    at ``out_wh`` = (width, height) (default: the working size), float64 (H, W, 3) in [0, 1]."""
    from artfx.stages.primitive import geometry as g

    out_wh = out_wh or work_wh
    scale = (out_wh[0] / work_wh[0], out_wh[1] / work_wh[1])
    canvas = _blank(background, out_wh)
    ol = np.zeros(g.OL)
    for p, col in shapes:
        _draw(canvas, p, col, scale, ol)
    return canvas


def history_frames(events, background, work_wh, out_wh, count: int = 60) -> Iterator[np.ndarray]:
    """About ``count`` snapshots (uint8) of a painting's history: ``("add", (p, col))`` events (a shape added)
    and ``("set", [(p, col), ...])`` events (the whole list replaced by a refinement); the last one complete.
    The adding events are sampled evenly and the replacements are shown (at most ``count`` // 3 of them, the last
    ones kept), so the animation shows the shapes being added and then the refinement."""
    from artfx.stages.primitive import geometry as g

    scale = (out_wh[0] / work_wh[0], out_wh[1] / work_wh[1])
    sets = [i for i, (kind, _) in enumerate(events) if kind == "set"]
    shown_sets = set(sets[-max(1, count // 3) :]) if sets else set()
    adds = [i for i, (kind, _) in enumerate(events) if kind == "add"]
    every = max(1, -(-len(adds) // max(count - len(shown_sets), 1)))
    shown = shown_sets | {i for j, i in enumerate(adds) if (j + 1) % every == 0} | {len(events) - 1}
    canvas = _blank(background, out_wh)
    yield _u8(canvas)
    ol = np.zeros(g.OL)
    for i, (kind, item) in enumerate(events):
        if kind == "set":
            if i not in shown and i + 1 < len(events) and events[i + 1][0] == "set":
                continue  # replaced at once, unseen
            canvas = render(item, background, work_wh, out_wh)
        else:
            _draw(canvas, *item, scale, ol)
        if i in shown:
            yield _u8(canvas)
