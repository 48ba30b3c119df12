"""Numba kernels for the shape types: random init, mutation, validity and the outline each shape rasterises as.

A shape is a float64 vector of length ``NP``: ``p[0]`` is the type code (see ``shapes.KINDS``), the rest are its
parameters in working-canvas pixel coordinates (x right, y down, the canvas is ``[0, W] x [0, H]``). The search
only ever calls ``random_shape``, ``mutate_shape`` and ``outline``: it knows nothing about the types.

An outline is what the rasteriser understands (``OL`` float64 values):
- ``ol[0] = 0``: a union of ``ol[1]`` convex quadrilaterals, vertices ``ol[2 + 8 i : 10 + 8 i]`` (a triangle repeats
  its last vertex);
- ``ol[0] = 1``: an ellipse ``{a dx^2 + 2 b dx dy + c dy^2 <= 1}`` centred at ``(ol[1], ol[2])`` with
  ``(a, b, c) = ol[3:6]``; any affine scaling of the canvas keeps it exact.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

NP = 10  # shape vector length: kind + up to 9 parameters
BEZIER_SEGMENTS = 8
OL = 2 + 8 * BEZIER_SEGMENTS  # outline vector length

TRIANGLE, RECTANGLE, ROT_RECT, ELLIPSE, ROT_ELLIPSE, CIRCLE, POLYGON, BEZIER = 0, 1, 2, 3, 4, 5, 6, 7
N_KINDS = 8
COMBO = -1

# Random sizes and mutation steps, in pixels of a 256 px canvas (scaled by `spread`), as in fogleman/primitive.
SPAN = 16.0
STEP = 16.0
MIN_R = 0.5


@njit(cache=True, nogil=True)
def _clamp(v, lo, hi):
    return lo if v < lo else (hi if v > hi else v)


@njit(cache=True, nogil=True)
def _is_convex_quad(p):
    # p[1..8] = x1, y1, ..., x4, y4: strictly convex, consistently oriented, no zero-length edge
    sign = 0.0
    for i in range(4):
        x0, y0 = p[1 + 2 * i], p[2 + 2 * i]
        j = (i + 1) % 4
        k = (i + 2) % 4
        x1, y1 = p[1 + 2 * j], p[2 + 2 * j]
        x2, y2 = p[1 + 2 * k], p[2 + 2 * k]
        cr = (x1 - x0) * (y2 - y1) - (y1 - y0) * (x2 - x1)
        if abs(cr) < 1e-9:
            return False
        if sign == 0.0:
            sign = cr
        elif sign * cr < 0:
            return False
    # a convex, consistently turning quad can still wind twice; require total angle 2 pi via area sign
    area = 0.0
    for i in range(4):
        j = (i + 1) % 4
        area += p[1 + 2 * i] * p[2 + 2 * j] - p[1 + 2 * j] * p[2 + 2 * i]
    return area * sign > 0


@njit(cache=True, nogil=True)
def valid_shape(p):
    if int(p[0]) == POLYGON:
        return _is_convex_quad(p)
    return True


@njit(cache=True, nogil=True)
def _log_size(s):
    # log-uniform radius in [1, 4 s]: big shapes are as likely as small ones
    return math.exp(np.random.random() * math.log(4.0 * s))


@njit(cache=True, nogil=True)
def random_shape(kind_sel, W, H, spread, p):
    """Fill ``p`` with a random shape of type ``kind_sel`` (COMBO: any type) on a W x H canvas."""
    kind = kind_sel
    if kind < 0:
        kind = np.random.randint(0, N_KINDS)
    p[:] = 0.0
    p[0] = kind
    s = SPAN * spread
    cx = np.random.random() * W
    cy = np.random.random() * H
    if kind == TRIANGLE:
        p[1], p[2] = cx, cy
        for i in range(1, 3):
            p[1 + 2 * i] = _clamp(cx + (np.random.random() * 2 - 1) * s, 0.0, W)
            p[2 + 2 * i] = _clamp(cy + (np.random.random() * 2 - 1) * s, 0.0, H)
    elif kind == RECTANGLE:
        p[1], p[2] = cx, cy
        p[3] = _clamp(cx + (np.random.random() * 2 - 1) * s, 0.0, W)
        p[4] = _clamp(cy + (np.random.random() * 2 - 1) * s, 0.0, H)
    elif kind == ROT_RECT or kind == ROT_ELLIPSE:
        p[1], p[2] = cx, cy
        p[3] = MIN_R + np.random.random() * 2 * s
        p[4] = MIN_R + np.random.random() * 2 * s
        p[5] = np.random.random() * math.pi
    elif kind == ELLIPSE:
        p[1], p[2] = cx, cy
        p[3] = _log_size(s)
        p[4] = _log_size(s)
    elif kind == CIRCLE:
        p[1], p[2] = cx, cy
        p[3] = MIN_R + np.random.random() * 2 * s
    elif kind == POLYGON:
        for attempt in range(32):
            a0 = np.random.random() * 2 * math.pi
            for i in range(4):
                ang = a0 + (i + np.random.random() * 0.8) * (math.pi / 2)
                r = (0.3 + 0.7 * np.random.random()) * s
                p[1 + 2 * i] = _clamp(cx + r * math.cos(ang), 0.0, W)
                p[2 + 2 * i] = _clamp(cy + r * math.sin(ang), 0.0, H)
            if _is_convex_quad(p):
                return
        # fallback: an axis-aligned square around the centre, shifted inside the canvas
        h = max(s * 0.5, 1.0)
        x0 = _clamp(cx - h, 0.0, max(W - 2 * h, 0.0))
        y0 = _clamp(cy - h, 0.0, max(H - 2 * h, 0.0))
        x1 = min(x0 + 2 * h, W)
        y1 = min(y0 + 2 * h, H)
        p[1], p[2], p[3], p[4], p[5], p[6], p[7], p[8] = x0, y0, x1, y0, x1, y1, x0, y1
    else:  # BEZIER
        p[1], p[2] = cx, cy
        for i in range(1, 3):
            p[1 + 2 * i] = _clamp(cx + (np.random.random() * 2 - 1) * s, 0.0, W)
            p[2 + 2 * i] = _clamp(cy + (np.random.random() * 2 - 1) * s, 0.0, H)
        p[7] = (0.5 + np.random.random() * 1.5) * spread


@njit(cache=True, nogil=True)
def _move_point(p, i, W, H, d):
    p[i] = _clamp(p[i] + np.random.normal() * d, 0.0, W)
    p[i + 1] = _clamp(p[i + 1] + np.random.normal() * d, 0.0, H)


@njit(cache=True, nogil=True)
def mutate_shape(p, W, H, spread):
    """Change one random part of shape ``p`` in place (the type never changes)."""
    kind = int(p[0])
    d = STEP * spread * math.exp2(-4.0 * np.random.random())  # log-uniform step: coarse moves and fine tuning
    rmax = float(max(W, H))
    if kind == TRIANGLE:
        _move_point(p, 1 + 2 * np.random.randint(0, 3), W, H, d)
    elif kind == RECTANGLE:
        _move_point(p, 1 + 2 * np.random.randint(0, 2), W, H, d)
    elif kind == ROT_RECT or kind == ROT_ELLIPSE:
        r = np.random.randint(0, 4)
        if r == 0:
            _move_point(p, 1, W, H, d)
        elif r == 1 or r == 2:
            p[2 + r] = _clamp(p[2 + r] + np.random.normal() * d, MIN_R, rmax)
        else:
            p[5] = (p[5] + np.random.normal() * 0.5 * d / (STEP * spread)) % math.pi
    elif kind == ELLIPSE:
        d = (0.5 * (p[3] + p[4]) + 1.0) * math.exp2(-5.0 * np.random.random())
        r = np.random.randint(0, 5)
        if r == 0:
            _move_point(p, 1, W, H, d)
        elif r < 3:
            p[2 + r] = _clamp(p[2 + r] + np.random.normal() * d, MIN_R, rmax)
        else:
            # move one edge, the opposite one stays: radius and centre change together
            ax = r - 3  # 0: x (left/right), 1: y (top/bottom)
            side = 1.0 if np.random.random() < 0.5 else -1.0
            old = p[3 + ax]
            new = _clamp(old + 0.5 * np.random.normal() * d, MIN_R, rmax)
            p[3 + ax] = new
            p[1 + ax] = _clamp(p[1 + ax] + side * (new - old), 0.0, W if ax == 0 else H)
    elif kind == CIRCLE:
        if np.random.randint(0, 2) == 0:
            _move_point(p, 1, W, H, d)
        else:
            p[3] = _clamp(p[3] + np.random.normal() * d, MIN_R, rmax)
    elif kind == POLYGON:
        _move_point(p, 1 + 2 * np.random.randint(0, 4), W, H, d)
    else:  # BEZIER
        r = np.random.randint(0, 4)
        if r < 3:
            _move_point(p, 1 + 2 * r, W, H, d)
        else:
            p[7] = _clamp(p[7] + np.random.normal() * spread, 0.5 * spread, 8.0 * spread)


@njit(cache=True, nogil=True)
def _ellipse_outline(cx, cy, rx, ry, th, ol):
    c, s = math.cos(th), math.sin(th)
    ix, iy = 1.0 / (rx * rx), 1.0 / (ry * ry)
    ol[0] = 1.0
    ol[1], ol[2] = cx, cy
    ol[3] = c * c * ix + s * s * iy
    ol[4] = c * s * (ix - iy)
    ol[5] = s * s * ix + c * c * iy


@njit(cache=True, nogil=True)
def outline(p, ol):
    """Write the outline of shape ``p`` into ``ol`` (see the module docstring)."""
    kind = int(p[0])
    ol[:] = 0.0
    if kind == TRIANGLE:
        ol[0], ol[1] = 0.0, 1.0
        for i in range(6):
            ol[2 + i] = p[1 + i]
        ol[8], ol[9] = p[5], p[6]
    elif kind == RECTANGLE:
        x0, x1 = min(p[1], p[3]), max(p[1], p[3])
        y0, y1 = min(p[2], p[4]), max(p[2], p[4])
        ol[0], ol[1] = 0.0, 1.0
        ol[2], ol[3], ol[4], ol[5], ol[6], ol[7], ol[8], ol[9] = x0, y0, x1, y0, x1, y1, x0, y1
    elif kind == ROT_RECT:
        c, s = math.cos(p[5]), math.sin(p[5])
        ol[0], ol[1] = 0.0, 1.0
        for i in range(4):
            u = p[3] if (i == 1 or i == 2) else -p[3]
            v = p[4] if i >= 2 else -p[4]
            ol[2 + 2 * i] = p[1] + u * c - v * s
            ol[3 + 2 * i] = p[2] + u * s + v * c
    elif kind == ELLIPSE:
        _ellipse_outline(p[1], p[2], p[3], p[4], 0.0, ol)
    elif kind == ROT_ELLIPSE:
        _ellipse_outline(p[1], p[2], p[3], p[4], p[5], ol)
    elif kind == CIRCLE:
        _ellipse_outline(p[1], p[2], p[3], p[3], 0.0, ol)
    elif kind == POLYGON:
        ol[0], ol[1] = 0.0, 1.0
        for i in range(8):
            ol[2 + i] = p[1 + i]
    else:  # BEZIER: a quadratic curve as BEZIER_SEGMENTS butt-ended thick segments (their union)
        ol[0], ol[1] = 0.0, float(BEZIER_SEGMENTS)
        hw = 0.5 * p[7]
        px, py = p[1], p[2]
        for i in range(BEZIER_SEGMENTS):
            t = (i + 1) / BEZIER_SEGMENTS
            u = 1.0 - t
            qx = u * u * p[1] + 2 * u * t * p[3] + t * t * p[5]
            qy = u * u * p[2] + 2 * u * t * p[4] + t * t * p[6]
            dx, dy = qx - px, qy - py
            ln = math.sqrt(dx * dx + dy * dy)
            if ln < 1e-9:
                nx, ny = 0.0, 0.0
            else:
                nx, ny = -dy / ln * hw, dx / ln * hw
            b = 2 + 8 * i
            ol[b], ol[b + 1] = px + nx, py + ny
            ol[b + 2], ol[b + 3] = qx + nx, qy + ny
            ol[b + 4], ol[b + 5] = qx - nx, qy - ny
            ol[b + 6], ol[b + 7] = px - nx, py - ny
            px, py = qx, qy


@njit(cache=True, nogil=True)
def scale_outline(ol, sx, sy):
    """Scale an outline in place by (sx, sy): the same shape on a canvas resized by those factors."""
    if ol[0] == 0.0:
        n = int(ol[1])
        for i in range(4 * n):
            ol[2 + 2 * i] *= sx
            ol[3 + 2 * i] *= sy
    else:
        ol[1] *= sx
        ol[2] *= sy
        ol[3] /= sx * sx
        ol[4] /= sx * sy
        ol[5] /= sy * sy


@njit(cache=True, nogil=True)
def random_batch(seed, kind_sel, W, H, spread, count):
    """``count`` random shapes and their outlines (for the batch scorer)."""
    np.random.seed(seed)
    ps = np.zeros((count, NP))
    ols = np.zeros((count, OL))
    for i in range(count):
        random_shape(kind_sel, W, H, spread, ps[i])
        outline(ps[i], ols[i])
    return ps, ols


@njit(cache=True, nogil=True)
def mutate_batch(seed, parents, per_parent, W, H, spread):
    """``per_parent`` valid mutations of each parent shape (invalid ones are retried, then left unchanged)."""
    np.random.seed(seed)
    m = parents.shape[0] * per_parent
    ps = np.zeros((m, NP))
    ols = np.zeros((m, OL))
    for i in range(m):
        par = parents[i // per_parent]
        for attempt in range(16):
            ps[i, :] = par
            mutate_shape(ps[i], W, H, spread)
            if valid_shape(ps[i]):
                break
            ps[i, :] = par
        outline(ps[i], ols[i])
    return ps, ols
