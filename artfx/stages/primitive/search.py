"""The search for the next shape: random candidates, then hill climbing, best of several restarts.

It works on an abstract shape interface (``geometry.random_shape``, ``mutate_shape``, ``valid_shape`` and
``outline``): a shape is an opaque float vector and a type selector it passes through; it knows nothing about
triangles or ellipses. Scoring is ``kernels.evaluate`` (anti-aliased coverage, exact least-squares colour).

Restarts are independent and each has its own seed (drawn by the caller from ``ctx.rng``), so they can run on any
number of threads (the kernels release the GIL) and the winner, taken in restart order, is the same for any
thread count.
"""

from __future__ import annotations

import math
from concurrent.futures import ThreadPoolExecutor

import numpy as np
from numba import njit

from artfx.stages.primitive import geometry as g
from artfx.stages.primitive import kernels as k


@njit(cache=True, nogil=True)
def climb(seed, kind_sel, W, H, spread, size, n_cand, max_fail, alpha, pref, best, cdf, block, nbx, near):
    """One restart: the best of ``n_cand`` random shapes (drawn at ``size`` times the usual size), hill-climbed
    until ``max_fail`` failures in a row. A share ``near`` of the candidates is centred where the error is
    (``cdf`` over blocks of ``block`` px, ``nbx`` a row: see ``error_cdf``), the rest anywhere.

    Writes the shape into ``best`` and returns its score (change of squared error; lower is better)."""
    np.random.seed(seed)
    iv, cnt, ep, rx0, rx1, rc, ed = k.new_scratch()
    sums = np.zeros(13)
    col = np.zeros(4)
    p = np.zeros(g.NP)
    ol = np.zeros(g.OL)
    best_score = math.inf
    n_near = int(n_cand * near + 0.5) if cdf.shape[0] > 0 else 0
    for i in range(n_cand):
        if i < n_near:
            g.random_shape_near(kind_sel, W, H, spread * size, p, cdf, block, nbx)
        else:
            g.random_shape(kind_sel, W, H, spread * size, p)
        g.outline(p, ol)
        s = k.evaluate(ol, pref, W, H, alpha, col, sums, iv, cnt, ep, rx0, rx1, rc, ed)
        if s < best_score:
            best_score = s
            best[:] = p
    fails = 0
    while fails < max_fail:
        p[:] = best
        g.mutate_shape(p, W, H, spread)
        if not g.valid_shape(p):
            fails += 1
            continue
        g.outline(p, ol)
        s = k.evaluate(ol, pref, W, H, alpha, col, sums, iv, cnt, ep, rx0, rx1, rc, ed)
        if s < best_score:
            best_score = s
            best[:] = p
            fails = 0
        else:
            fails += 1
    return best_score


@njit(cache=True, nogil=True)
def shrink_try(seed, kind_sel, W, H, size, tries, alpha, target, pref, best, col_out):
    """The source paper's variant: ``tries`` random shapes of maximum size ``size`` (px), each coloured with the
    input's colour at its centre; the one that lowers the error most (or none) goes to ``best``; returns its score.
    """
    np.random.seed(seed)
    iv, cnt, ep, rx0, rx1, rc, ed = k.new_scratch()
    sums = np.zeros(13)
    col = np.zeros(3)
    p = np.zeros(g.NP)
    ol = np.zeros(g.OL)
    best_score = 0.0
    a = alpha if alpha > 0 else 0.5
    for i in range(tries):
        g.random_shape(kind_sel, W, H, size / g.SPAN, p)
        g.outline(p, ol)
        cx = min(max(int(p[1]), 0), W - 1)
        cy = min(max(int(p[2]), 0), H - 1)
        for ch in range(3):
            col[ch] = math.floor(target[cy, cx, ch] * 255.0 + 0.5) / 255.0
        k.accumulate(ol, pref, W, H, sums, iv, cnt, ep, rx0, rx1, rc, ed)
        s = k.delta_for(sums, col, a)
        if s < best_score:
            best_score = s
            best[:] = p
            col_out[:3] = col
            col_out[3] = a
    return best_score


@njit(cache=True, nogil=True)
def score_shape(p, pref, W, H, alpha, col):
    """Score and colour (col = [r, g, b, a]) of one shape."""
    iv, cnt, ep, rx0, rx1, rc, ed = k.new_scratch()
    sums = np.zeros(13)
    ol = np.zeros(g.OL)
    g.outline(p, ol)
    return k.evaluate(ol, pref, W, H, alpha, col, sums, iv, cnt, ep, rx0, rx1, rc, ed)


# Restart i draws its random candidates at size factor SIZE_BANDS[i % 4] (1, 1/2, 1/4, 1/8 of the shape type's
# random size): the restarts explore big and small shapes alike instead of all starting from the biggest
# candidate. Measured (100 shapes, 1 thread): chelsea triangles RMSE 12.48 -> 12.35 (mean of 3 seeds), 25% faster.
SIZE_BANDS = (1.0, 0.5, 0.25, 0.125)
NEAR_BLOCK = 8  # px (of a 256 px canvas) of the blocks the error map is summed over for ``near`` sampling


class Canvas:
    """The working picture: target, current render, per-row prefix sums and the running squared error."""

    def __init__(self, target: np.ndarray, background: np.ndarray):
        self.target = np.ascontiguousarray(target, dtype=np.float64)
        self.H, self.W = target.shape[:2]
        self.cur = np.empty_like(self.target)
        self.cur[:] = background
        self.pref = np.zeros((self.H, self.W + 1, k.NSUM))
        k.build_prefix(self.target, self.cur, self.pref, 0, self.H)
        self.sse = float(((self.target - self.cur) ** 2).sum())

    def reset(self, picture: np.ndarray) -> None:
        """Start again from ``picture`` (the render of a changed shape list)."""
        self.cur[:] = picture
        k.build_prefix(self.target, self.cur, self.pref, 0, self.H)
        self.sse = float(((self.target - self.cur) ** 2).sum())

    @property
    def rmse(self) -> float:
        return math.sqrt(max(self.sse, 0.0) / (self.H * self.W * 3)) * 255.0

    def add(self, p: np.ndarray, col: np.ndarray, delta: float) -> None:
        ol = np.zeros(g.OL)
        g.outline(p, ol)
        y0, y1 = k.composite(self.cur, ol, col[:3], col[3])
        k.build_prefix(self.target, self.cur, self.pref, y0, y1)
        self.sse += delta


def error_cdf(canvas: Canvas, block: int) -> tuple[np.ndarray, int]:
    """Where the error is: the cumulative share of the squared error in each block of ``block`` x ``block`` px
    (row-major), and the blocks a row. Empty when there is no error (a flat picture)."""
    H, W = canvas.H, canvas.W
    nbx, nby = -(-W // block), -(-H // block)
    pad = np.zeros((nby * block, nbx * block, 3))
    pad[:H, :W] = canvas.target - canvas.cur
    w = (pad.reshape(nby, block, nbx, block, 3).sum(axis=(1, 3)) ** 2).sum(axis=2).ravel()
    total = float(w.sum())
    if not total > 0:
        return np.zeros(0), nbx
    cdf = np.cumsum(w) / total
    cdf[-1] = 1.0
    return cdf, nbx


def best_shape(canvas: Canvas, seeds, kind_sel: int, spread: float, n_cand: int, max_fail: int, alpha: float,
               pool: ThreadPoolExecutor | None, near: float = 0.0):
    """Run one restart per seed (on the pool's threads if given); the best, first in seed order on ties. A share
    ``near`` of each restart's random candidates is centred where the error is (``error_cdf``)."""
    outs = [np.zeros(g.NP) for _ in seeds]
    block = max(1, round(NEAR_BLOCK * spread))
    cdf, nbx = error_cdf(canvas, block) if near > 0 else (np.zeros(0), 1)

    def run(i):
        return climb(int(seeds[i]), kind_sel, canvas.W, canvas.H, spread, SIZE_BANDS[i % len(SIZE_BANDS)], n_cand,
                     max_fail, alpha, canvas.pref, outs[i], cdf, block, nbx, near)

    scores = np.zeros(len(seeds))
    if pool is not None:
        # costliest first (largest size band), so the threads finish together; the result does not depend on it
        order = sorted(range(len(seeds)), key=lambda i: i % len(SIZE_BANDS))
        for i, s in zip(order, pool.map(run, order)):
            scores[i] = s
    else:
        for i in range(len(seeds)):
            scores[i] = run(i)
    best = int(np.argmin(scores))  # argmin returns the first minimum: deterministic
    p = outs[best]
    col = np.zeros(4)
    delta = score_shape(p, canvas.pref, canvas.W, canvas.H, alpha, col)
    return p, col, delta


def best_shrink(canvas: Canvas, seeds, kind_sel: int, size: float, tries: int, alpha: float,
                pool: ThreadPoolExecutor | None):
    """method=shrink: one batch of ``tries`` random shapes (max size ``size``) per seed; the best or None."""
    outs = [np.zeros(g.NP) for _ in seeds]
    cols = [np.zeros(4) for _ in seeds]

    def run(i):
        return shrink_try(int(seeds[i]), kind_sel, canvas.W, canvas.H, size, tries, alpha, canvas.target,
                          canvas.pref, outs[i], cols[i])

    idx = range(len(seeds))
    scores = list(pool.map(run, idx)) if pool is not None else [run(i) for i in idx]
    best = int(np.argmin(np.asarray(scores)))
    if not scores[best] < 0:
        return None, None, 0.0
    return outs[best], cols[best], float(scores[best])


def swap_gains(items, background, final: np.ndarray, target: np.ndarray) -> np.ndarray:
    """The change of the squared error that swapping shapes i and i + 1 in the stack would make, for every i
    (``inf`` where they do not overlap): shapes below them are untouched, and shapes above them change the final
    pixel linearly (their transmittance ``T``), so each swap is computed exactly on the pixels the two share.
    ``final`` is the picture of ``items`` over ``background``. The transmittances are kept in float32: an
    estimate, which the caller checks with the exact render."""
    n = len(items)
    H, W = target.shape[:2]
    est = np.full(max(n - 1, 0), np.inf)
    if n < 2:
        return est
    ol = np.zeros(g.OL)
    crops = []  # (y0, y1, x0, x1, coverage inside that box)
    for p, _ in items:
        g.outline(np.asarray(p, np.float64), ol)
        y0, y1 = k.outline_rows(ol, H)
        cov = k.coverage(ol, W, H)[y0:y1]
        cols = np.nonzero(cov.any(axis=0))[0]
        if len(cols) == 0:
            crops.append((0, 0, 0, 0, np.zeros((0, 0))))
        else:
            x0, x1 = int(cols[0]), int(cols[-1]) + 1
            crops.append((y0, y1, x0, x1, cov[:, x0:x1]))
    T = np.ones((H, W))
    above = np.empty((n, H, W), np.float32)  # above[j]: transmittance of the shapes over shape j
    for j in range(n - 1, -1, -1):
        above[j] = T
        y0, y1, x0, x1, cov = crops[j]
        T[y0:y1, x0:x1] *= 1.0 - float(items[j][1][3]) * cov
    C = np.empty((H, W, 3))
    C[:] = np.asarray(background, np.float64)[:3]
    res2 = 2.0 * (final - target)
    for i in range(n - 1):
        (ay0, ay1, ax0, ax1, ca), (by0, by1, bx0, bx1, cb) = crops[i], crops[i + 1]
        y0, y1, x0, x1 = max(ay0, by0), min(ay1, by1), max(ax0, bx0), min(ax1, bx1)
        if y0 < y1 and x0 < x1:
            wa = (float(items[i][1][3]) * ca[y0 - ay0 : y1 - ay0, x0 - ax0 : x1 - ax0])[..., None]
            wb = (float(items[i + 1][1][3]) * cb[y0 - by0 : y1 - by0, x0 - bx0 : x1 - bx0])[..., None]
            if (wa > 0).any() and (wb > 0).any():
                ka, kb = np.asarray(items[i][1][:3], np.float64), np.asarray(items[i + 1][1][:3], np.float64)
                c0 = C[y0:y1, x0:x1]
                a = c0 + wa * (ka - c0)
                b = a + wb * (kb - a)
                a2 = c0 + wb * (kb - c0)
                b2 = a2 + wa * (ka - a2)
                d = (b2 - b) * above[i + 1, y0:y1, x0:x1, None]
                est[i] = float((res2[y0:y1, x0:x1] * d + d * d).sum())
        if ay0 < ay1 and ax0 < ax1:
            c0 = C[ay0:ay1, ax0:ax1]
            c0 += (float(items[i][1][3]) * ca)[..., None] * (np.asarray(items[i][1][:3], np.float64) - c0)
    return est
