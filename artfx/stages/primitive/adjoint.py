"""The soft coverage model of ``soft`` as numba kernels, with its backward pass written by hand (the CPU path).

Forward: the shapes are composited in order, each only over its own box of rows and columns (its pieces on each
sub-scanline from ``scanline``); the canvas under each shape's box, its coverage and its pieces are kept.
Backward: the shapes are walked in reverse with the adjoint of the canvas (``G`` = d loss / d canvas): per pixel
it gives the gradient of the shape's colour, opacity and coverage, and the coverage gradient reaches the geometry
only through the interval ends on each sub-scanline (the pixels of their ramps), then through the edge (or the
ellipse) that made each end. The work is about that of rendering the shapes twice.

The canvas is cut into ``NBANDS`` fixed bands of rows, run on any number of threads (the kernels release the
GIL); each band keeps its own gradient sums, added in band order, so the result does not depend on the thread
count. Every formula matches ``soft`` (the tests compare the two, and both against finite differences).
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from artfx.stages.primitive import geometry as g
from artfx.stages.primitive import scanline as sl
from artfx.stages.primitive.scanline import INFO, MAXI, SUB

NBANDS = 8


@njit(cache=True, nogil=True)
def forward(ols, cols, alphas, bg, target, sigma, boxes, offs, store, rows, tab, canvas, ya, yb):
    """Composite every shape over rows [ya, yb) of ``canvas`` (filled with ``bg`` first), keeping for the backward
    pass the canvas under each shape's box and its raw coverage in ``store`` (4 values a pixel from ``offs[i]``)
    and each of its rows' pieces in ``tab`` (row ``rows[i] + y - y0``); returns the squared error of those rows."""
    W = canvas.shape[1]
    LP, LPS, LINFO, LN, RS = tab
    for y in range(ya, yb):
        for x in range(W):
            for ch in range(3):
                canvas[y, x, ch] = bg[ch]
    raw, et, qt, _, _, sc, ss = sl.scratch(W)
    for i in range(ols.shape[0]):
        y0, y1, x0, x1 = boxes[i, 0], boxes[i, 1], boxes[i, 2], boxes[i, 3]
        bw = x1 - x0
        a = alphas[i]
        if max(y0, ya) < min(y1, yb):
            sl.edge_table(ols[i], sigma, et, qt)
        for y in range(max(y0, ya), min(y1, yb)):
            r = rows[i] + y - y0
            sl.row_pieces(ols[i], y, sigma, LP[r], LPS[r], LINFO[r], LN[r], sc, ss, et, qt)
            xa, xb = sl.row_coverage(LP[r], LINFO[r], LN[r], x0, x1, raw)
            RS[r, 0], RS[r, 1] = xa, xb
            base = offs[i] + (y - y0) * bw * 4
            for x in range(xa, xb):
                c = min(max(raw[x], 0.0), 1.0)
                o = base + (x - x0) * 4
                store[o + 3] = raw[x]
                for ch in range(3):
                    cur = canvas[y, x, ch]
                    store[o + ch] = cur
                    canvas[y, x, ch] = cur + a * c * (cols[i, ch] - cur)
    err = 0.0
    for y in range(ya, yb):
        for x in range(W):
            for ch in range(3):
                d = canvas[y, x, ch] - target[y, x, ch]
                err += d * d
    return err


@njit(cache=True, nogil=True)
def backward(ols, cols, alphas, target, sigma, boxes, offs, store, rows, tab, canvas, G, T, ya, yb, gol, gcol, ga,
             gain, want_gain):
    """The adjoint pass over rows [ya, yb) (after ``forward`` on them): adds d SSE / d outlines, colours, alphas
    to gol, gcol, ga, and (if ``want_gain``) to gain[i] the change of SSE that removing shape i alone would make
    (``T`` holds the transmittance of the shapes above)."""
    W = canvas.shape[1]
    for y in range(ya, yb):
        for x in range(W):
            T[y, x] = 1.0
            for ch in range(3):
                G[y, x, ch] = 2.0 * (canvas[y, x, ch] - target[y, x, ch])
    LP, LPS, LINFO, LN, RS = tab
    gc = np.zeros(W)
    for i in range(ols.shape[0] - 1, -1, -1):
        ol = ols[i]
        y0, y1, x0, x1 = boxes[i, 0], boxes[i, 1], boxes[i, 2], boxes[i, 3]
        bw = x1 - x0
        a = alphas[i]
        single = ol[0] == 0.0 and int(ol[1]) == 1
        for y in range(max(y0, ya), min(y1, yb)):
            row = rows[i] + y - y0
            lp, lps, linfo, ln = LP[row], LPS[row], LINFO[row], LN[row]
            sa, sb = RS[row, 0], RS[row, 1]
            if sb <= sa:
                continue
            # outside [sa, sb) the coverage is 0; the end loops below may look one pixel beyond it
            gc[max(sa - 1, x0)] = 0.0
            gc[min(sb, x1 - 1)] = 0.0
            base = offs[i] + (y - y0) * bw * 4
            for x in range(sa, sb):
                o = base + (x - x0) * 4
                r = store[o + 3]
                c = min(max(r, 0.0), 1.0)
                al = a * c
                g_al = 0.0
                dsse = 0.0
                for ch in range(3):
                    below = store[o + ch]
                    diff = cols[i, ch] - below
                    gcol[i, ch] += G[y, x, ch] * al
                    g_al += G[y, x, ch] * diff
                    if want_gain:  # removing the shape moves the final pixel by -T * al * diff
                        dl = -T[y, x] * al * diff
                        dsse += 2.0 * (canvas[y, x, ch] - target[y, x, ch]) * dl + dl * dl
                    G[y, x, ch] *= 1.0 - al
                if want_gain:
                    gain[i] += dsse
                    T[y, x] *= 1.0 - al
                ga[i] += g_al * c
                gc[x] = g_al * a if (r >= 0.0 and r <= 1.0) else 0.0
            for j in range(SUB):
                v = y + (j + 0.5) / SUB
                info = linfo[j]
                w = info[0] / SUB
                if w != 0.0:
                    for m in range(ln[j]):
                        lo, hi, hl, hr = lp[j, m, 0], lp[j, m, 1], lp[j, m, 2], lp[j, m, 3]
                        g_lo = 0.0
                        xa = max(int(math.floor(lo - hl)) - 1, x0)
                        xb = min(int(math.ceil(lo + hl)) + 1, x1)
                        for x in range(xa, xb):
                            g_lo -= gc[x] * (sl.ramp(x + 1.0 - lo, hl) - sl.ramp(x - lo, hl))
                        g_hi = 0.0
                        xa = max(int(math.floor(hi - hr)) - 1, x0)
                        xb = min(int(math.ceil(hi + hr)) + 1, x1)
                        for x in range(xa, xb):
                            g_hi += gc[x] * (sl.ramp(hi - x, hr) - sl.ramp(hi - x - 1.0, hr))
                        sl.end_grad(ol, lps[j, m, 0], v, sigma, info, g_lo * w, gol[i])
                        sl.end_grad(ol, lps[j, m, 1], v, sigma, info, g_hi * w, gol[i])
                if not (single and sigma > 0):
                    continue
                # the line's weight: a gradient only where the top or bottom ramp is not flat
                it, ib = 3 + 2 * int(info[4]), 3 + 2 * int(info[5])
                tt = (v - ol[it]) / sigma + 0.5
                tb = (ol[ib] - v) / sigma + 0.5
                on_t = tt >= 0.0 and tt <= 1.0
                on_b = tb >= 0.0 and tb <= 1.0
                if not (on_t or on_b):
                    continue
                g_w = 0.0
                for m in range(ln[j]):
                    lo, hi, hl, hr = lp[j, m, 0], lp[j, m, 1], lp[j, m, 2], lp[j, m, 3]
                    xa, xb = sl.span(lo, hi, hl, hr, x0, x1)
                    for x in range(xa, xb):
                        g_w += gc[x] * sl.area(float(x), lo, hi, hl, hr)
                g_w /= SUB
                if on_t:
                    sl.to_extreme(ol, int(info[4]), g_w * info[2] * (-1.0 / sigma), gol[i])
                if on_b:
                    sl.to_extreme(ol, int(info[5]), g_w * info[1] * (1.0 / sigma), gol[i])


class Renderer:
    """Forward and backward passes of the soft model over a fixed list of shapes' outlines, on ``workers``
    threads (results independent of it)."""

    def __init__(self, target: np.ndarray, background: np.ndarray, workers: int = 1):
        self.target = np.ascontiguousarray(target, dtype=np.float64)
        self.bg = np.asarray(background, dtype=np.float64)[:3].copy()
        self.H, self.W = self.target.shape[:2]
        self.canvas = np.zeros_like(self.target)
        self.G = np.zeros_like(self.target)
        self.T = np.zeros((self.H, self.W))
        nb = max(1, min(NBANDS, self.H))
        edges = np.linspace(0, self.H, nb + 1).round().astype(int)
        self.bands = [(int(a), int(b)) for a, b in zip(edges[:-1], edges[1:])]
        self.workers = max(1, workers)
        self._pool = None
        self.store = np.zeros(0)  # per shape: the canvas under its box and its raw coverage
        self.tab = (np.zeros((0, SUB, MAXI, 4)),)  # per shape row: its pieces (see forward)

    def _map(self, fn):
        if self.workers == 1 or len(self.bands) == 1:
            return [fn(b) for b in range(len(self.bands))]
        if self._pool is None:
            from concurrent.futures import ThreadPoolExecutor

            self._pool = ThreadPoolExecutor(max_workers=self.workers)
        return list(self._pool.map(fn, range(len(self.bands))))

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown()
            self._pool = None

    def forward(self, ols: np.ndarray, cols: np.ndarray, alphas: np.ndarray, sigma: float) -> float:
        """Sum of squared errors of the soft render (and the state the backward pass needs)."""
        ols = np.ascontiguousarray(ols, dtype=np.float64)
        n = len(ols)
        self.boxes = np.zeros((n, 4), np.int64)
        for i in range(n):
            self.boxes[i] = sl.box(ols[i], sigma, self.W, self.H)
        heights = self.boxes[:, 1] - self.boxes[:, 0]
        area = heights * (self.boxes[:, 3] - self.boxes[:, 2])
        self.offs = np.concatenate([[0], np.cumsum(area * 4)]).astype(np.int64)
        self.rows = np.concatenate([[0], np.cumsum(heights)]).astype(np.int64)
        if len(self.store) < self.offs[-1]:
            self.store = np.zeros(int(self.offs[-1] * 1.25) + 16)
        if len(self.tab[0]) < self.rows[-1]:
            R = int(self.rows[-1] * 1.25) + 16
            self.tab = (np.zeros((R, SUB, MAXI, 4)), np.zeros((R, SUB, MAXI, 2), np.int64), np.zeros((R, SUB, INFO)),
                        np.zeros((R, SUB), np.int64), np.zeros((R, 2), np.int64))
        self.state = (ols, np.ascontiguousarray(cols, dtype=np.float64),
                      np.ascontiguousarray(alphas, dtype=np.float64), float(sigma))
        errs = self._map(lambda b: forward(ols, self.state[1], self.state[2], self.bg, self.target, sigma, self.boxes,
                                           self.offs, self.store, self.rows, self.tab, self.canvas, *self.bands[b]))
        return float(sum(errs))

    def backward(self, want_gain: bool = False):
        """(d SSE / d outlines, d colours, d alphas, removal gain per shape if asked) for the last ``forward``."""
        ols, cols, alphas, sigma = self.state
        n = len(ols)
        nb = len(self.bands)
        gol = np.zeros((nb, n, g.OL))
        gcol = np.zeros((nb, n, 3))
        ga = np.zeros((nb, n))
        gain = np.zeros((nb, n))
        self._map(lambda b: backward(ols, cols, alphas, self.target, sigma, self.boxes, self.offs, self.store,
                                     self.rows, self.tab, self.canvas, self.G, self.T, *self.bands[b], gol[b],
                                     gcol[b], ga[b], gain[b], want_gain))
        return gol.sum(0), gcol.sum(0), ga.sum(0), gain.sum(0)
