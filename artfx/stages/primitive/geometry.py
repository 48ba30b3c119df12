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
    cx = np.random.random() * W
    cy = np.random.random() * H
    _random_at(kind, W, H, spread, p, cx, cy)


@njit(cache=True, nogil=True)
def random_shape_near(kind_sel, W, H, spread, p, cdf, block, nbx):
    """``random_shape``, its centre drawn from a density over blocks of ``block`` px (``cdf``: the cumulative
    weights of the blocks, row-major, ``nbx`` a row; the last one 1), uniform inside the block."""
    kind = kind_sel
    if kind < 0:
        kind = np.random.randint(0, N_KINDS)
    b = np.searchsorted(cdf, np.random.random(), side="right")
    if b >= cdf.shape[0]:
        b = cdf.shape[0] - 1
    bx, by = b % nbx, b // nbx
    cx = min((bx + np.random.random()) * block, float(W))
    cy = min((by + np.random.random()) * block, float(H))
    _random_at(kind, W, H, spread, p, cx, cy)


@njit(cache=True, nogil=True)
def _random_at(kind, W, H, spread, p, cx, cy):
    p[:] = 0.0
    p[0] = kind
    s = SPAN * spread
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


@njit(cache=True, nogil=True)
def _ellipse_grad(rx, ry, th, gol, gp, i_rx, i_ry, i_th):
    c, s = math.cos(th), math.sin(th)
    ix, iy = 1.0 / (rx * rx), 1.0 / (ry * ry)
    g_ix = gol[3] * c * c + gol[4] * c * s + gol[5] * s * s
    g_iy = gol[3] * s * s - gol[4] * c * s + gol[5] * c * c
    gp[i_rx] += g_ix * -2.0 / (rx * rx * rx)
    gp[i_ry] += g_iy * -2.0 / (ry * ry * ry)
    if i_th > 0:
        gp[i_th] += (ix - iy) * (-2.0 * c * s * gol[3] + (c * c - s * s) * gol[4] + 2.0 * c * s * gol[5])


@njit(cache=True, nogil=True)
def outline_grad(p, gol, gp):
    """Chain rule through ``outline``: add d loss / d p to ``gp`` given d loss / d outline ``gol``."""
    kind = int(p[0])
    if kind == TRIANGLE:
        for i in range(6):
            gp[1 + i] += gol[2 + i]
        gp[5] += gol[8]
        gp[6] += gol[9]
    elif kind == POLYGON:
        for i in range(8):
            gp[1 + i] += gol[2 + i]
    elif kind == RECTANGLE:
        g_x0, g_x1 = gol[2] + gol[8], gol[4] + gol[6]
        g_y0, g_y1 = gol[3] + gol[5], gol[7] + gol[9]
        if p[1] <= p[3]:
            gp[1] += g_x0
            gp[3] += g_x1
        else:
            gp[3] += g_x0
            gp[1] += g_x1
        if p[2] <= p[4]:
            gp[2] += g_y0
            gp[4] += g_y1
        else:
            gp[4] += g_y0
            gp[2] += g_y1
    elif kind == ROT_RECT:
        c, s = math.cos(p[5]), math.sin(p[5])
        for i in range(4):
            su = 1.0 if (i == 1 or i == 2) else -1.0
            sv = 1.0 if i >= 2 else -1.0
            u, v = su * p[3], sv * p[4]
            gx, gy = gol[2 + 2 * i], gol[3 + 2 * i]
            gp[1] += gx
            gp[2] += gy
            gp[3] += gx * su * c + gy * su * s
            gp[4] += -gx * sv * s + gy * sv * c
            gp[5] += gx * (-u * s - v * c) + gy * (u * c - v * s)
    elif kind == ELLIPSE or kind == ROT_ELLIPSE or kind == CIRCLE:
        gp[1] += gol[1]
        gp[2] += gol[2]
        if kind == CIRCLE:
            tmp = np.zeros(NP)
            _ellipse_grad(p[3], p[3], 0.0, gol, tmp, 3, 4, 0)
            gp[3] += tmp[3] + tmp[4]
        elif kind == ELLIPSE:
            _ellipse_grad(p[3], p[4], 0.0, gol, gp, 3, 4, 0)
        else:
            _ellipse_grad(p[3], p[4], p[5], gol, gp, 3, 4, 5)
    else:  # BEZIER
        hw = 0.5 * p[7]
        gpt = np.zeros((BEZIER_SEGMENTS + 1, 2))  # gradients of the curve points
        px, py = p[1], p[2]
        for i in range(BEZIER_SEGMENTS):
            t = (i + 1) / BEZIER_SEGMENTS
            u = 1.0 - t
            qx = u * u * p[1] + 2 * u * t * p[3] + t * t * p[5]
            qy = u * u * p[2] + 2 * u * t * p[4] + t * t * p[6]
            b = 2 + 8 * i
            g0x, g0y, g1x, g1y = gol[b], gol[b + 1], gol[b + 2], gol[b + 3]
            g2x, g2y, g3x, g3y = gol[b + 4], gol[b + 5], gol[b + 6], gol[b + 7]
            gpt[i, 0] += g0x + g3x
            gpt[i, 1] += g0y + g3y
            gpt[i + 1, 0] += g1x + g2x
            gpt[i + 1, 1] += g1y + g2y
            gnx, gny = g0x + g1x - g2x - g3x, g0y + g1y - g2y - g3y
            dx, dy = qx - px, qy - py
            ln2 = dx * dx + dy * dy
            if ln2 > 1e-18:
                ln = math.sqrt(ln2)
                l3 = ln2 * ln
                gp[7] += 0.5 * (gnx * -dy / ln + gny * dx / ln)
                gdx = hw * (gnx * dy * dx / l3 + gny * dy * dy / l3)
                gdy = hw * (-gnx * dx * dx / l3 - gny * dx * dy / l3)
                gpt[i + 1, 0] += gdx
                gpt[i + 1, 1] += gdy
                gpt[i, 0] -= gdx
                gpt[i, 1] -= gdy
            px, py = qx, qy
        for i in range(BEZIER_SEGMENTS + 1):
            t = i / BEZIER_SEGMENTS
            u = 1.0 - t
            for d in range(2):
                gp[1 + d] += u * u * gpt[i, d]
                gp[3 + d] += 2 * u * t * gpt[i, d]
                gp[5 + d] += t * t * gpt[i, d]


@njit(cache=True, nogil=True)
def outlines_grad(ps, gols):
    """``outline_grad`` for every shape: (N, NP) gradients."""
    gp = np.zeros(ps.shape)
    for i in range(ps.shape[0]):
        outline_grad(ps[i], gols[i], gp[i])
    return gp
