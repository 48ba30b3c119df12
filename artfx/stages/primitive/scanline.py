"""The soft coverage model on one sub-scanline, as numba kernels: a shape's disjoint soft pieces on a line, their
integral over each pixel, and the derivative of a piece's end with respect to the outline (``soft`` in numba).

On the line y = v a shape is a few intervals (one per quad of its outline, or the ellipse's chord); each end is
a linear ramp of half-width h along the line (``soft``); the intervals, sorted by start and clipped by the
running end of the earlier ones, are disjoint pieces. A pixel's coverage on the line is the integral of
``ramp(lo) + ramp(hi) - 1`` over it: closed-form, and exactly 1 between the two ramps.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from artfx.stages.primitive import kernels as k
from artfx.stages.primitive.soft import EPS_DISC, FAR, HMAX

SUB = k.SUB
MAXI = k.MAXINT  # intervals per sub-scanline
INFO = 8  # per-line info: omega, top, bot, clamp (-1, 0, 1), top vertex, bottom vertex, -, -


@njit(cache=True, nogil=True)
def edge_table(ol, sigma, et, qt):
    """What every scanline of a quad outline needs, computed once: per edge ``et[4 q + e]`` = (y low, y high,
    x0, y0, dx/dy, ramp half-width) (a horizontal edge gets y low > y high: no line meets it), per quad
    ``qt[q]`` = (top y, bottom y, top vertex, bottom vertex) (the first vertex at that height)."""
    if ol[0] != 0.0:
        return
    for q in range(int(ol[1])):
        b = 2 + 8 * q
        yt, yb = 1e300, -1e300
        it, ib = 0, 0
        for e in range(4):
            y = ol[b + 2 * e + 1]
            if y < yt:
                yt, it = y, e
            if y > yb:
                yb, ib = y, e
        qt[q, 0], qt[q, 1], qt[q, 2], qt[q, 3] = yt, yb, it, ib
        for e in range(4):
            f = (e + 1) % 4
            x0, y0 = ol[b + 2 * e], ol[b + 2 * e + 1]
            x1, y1 = ol[b + 2 * f], ol[b + 2 * f + 1]
            dx, dy = x1 - x0, y1 - y0
            r = 4 * q + e
            if dy == 0.0:
                et[r, 0], et[r, 1] = 1.0, -1.0
                continue
            et[r, 0], et[r, 1] = min(y0, y1), max(y0, y1)
            et[r, 2], et[r, 3], et[r, 4] = x0, y0, dx / dy
            et[r, 5] = min(0.5 * sigma * math.sqrt(dx * dx + dy * dy) / abs(dy), HMAX * sigma)


@njit(cache=True, nogil=True)
def line_pieces(ol, v, sigma, pc, ps, info, raw, rs, et, qt):
    """The disjoint soft pieces of outline ``ol`` on the line y = v: ``pc[m] = (lo, hi, hl, hr)`` and
    ``ps[m] = (source of lo, source of hi)`` (quad * 4 + edge; ellipse: 0 left, 1 right); ``info`` as INFO;
    ``et``, ``qt`` its ``edge_table``; ``raw`` (MAXI, 4) and ``rs`` (MAXI, 2) are scratch. Returns the number of
    pieces."""
    info[0] = 1.0
    info[3] = 0.0
    n = 0
    if ol[0] == 1.0:
        cx, cy, a, bq, c = ol[1], ol[2], ol[3], ol[4], ol[5]
        d = v - cy
        disc = bq * bq * d * d - a * (c * d * d - 1.0)
        if not (disc > 0.0 and a > 0.0):
            return 0
        sq = math.sqrt(max(disc, EPS_DISC))
        lean = d * (bq * bq - a * c) / sq
        sl = (-bq - lean) / a
        sr = (-bq + lean) / a
        pc[0, 0] = cx + (-bq * d - sq) / a
        pc[0, 1] = cx + (-bq * d + sq) / a
        pc[0, 2] = min(0.5 * sigma * math.sqrt(1.0 + sl * sl), HMAX * sigma)
        pc[0, 3] = min(0.5 * sigma * math.sqrt(1.0 + sr * sr), HMAX * sigma)
        ps[0, 0], ps[0, 1] = 0, 1
        return 1
    nq = int(ol[1])
    single = nq == 1
    for q in range(nq):
        yt, yb = qt[q, 0], qt[q, 1]
        if single:
            vc = min(max(v, yt), yb)
            info[3] = -1.0 if v < yt else (1.0 if v > yb else 0.0)
            info[4], info[5] = qt[q, 2], qt[q, 3]
            if sigma > 0:
                top = min(max((v - yt) / sigma + 0.5, 0.0), 1.0)
                bot = min(max((yb - v) / sigma + 0.5, 0.0), 1.0)
            else:
                top = 1.0 if v >= yt else 0.0
                bot = 1.0 if v <= yb else 0.0
            info[0], info[1], info[2] = top * bot, top, bot
        else:
            if v < yt or v > yb:
                continue
            vc = v
        lo, hi = math.inf, -math.inf
        elo, ehi = -1, -1
        for e in range(4):
            r = 4 * q + e
            if vc < et[r, 0] or vc > et[r, 1]:
                continue
            x = et[r, 2] + (vc - et[r, 3]) * et[r, 4]
            if x < lo:
                lo, elo = x, e
            if x > hi:
                hi, ehi = x, e
        if elo < 0:
            continue
        # insert sorted by start (stable: after equal starts)
        m = n
        while m > 0 and raw[m - 1, 0] > lo:
            raw[m] = raw[m - 1]
            rs[m] = rs[m - 1]
            m -= 1
        raw[m, 0], raw[m, 1] = lo, hi
        raw[m, 2], raw[m, 3] = et[4 * q + elo, 5], et[4 * q + ehi, 5]
        if hi - lo <= 1e-9 * (1.0 + abs(lo)):  # a point: one ramp width for both ends (as soft.py)
            raw[m, 2] = raw[m, 3] = max(raw[m, 2], raw[m, 3])
        rs[m, 0], rs[m, 1] = 4 * q + elo, 4 * q + ehi
        n += 1
    # disjoint pieces: each interval clipped by the running end of the earlier ones
    M, hM, sM = FAR, 0.0, -1
    cnt = 0
    for m in range(n):
        lo, hi, hl, hr = raw[m, 0], raw[m, 1], raw[m, 2], raw[m, 3]
        in_lo = lo >= M
        in_hi = hi >= M
        if in_lo or in_hi:
            pc[cnt, 0] = lo if in_lo else M
            pc[cnt, 2] = hl if in_lo else hM
            ps[cnt, 0] = rs[m, 0] if in_lo else sM
            pc[cnt, 1] = hi if in_hi else M
            pc[cnt, 3] = hr if in_hi else hM
            ps[cnt, 1] = rs[m, 1] if in_hi else sM
            cnt += 1
        if in_hi:
            M, hM, sM = hi, hr, rs[m, 1]
    return cnt


@njit(cache=True, nogil=True)
def ramp_area(t, h):
    """Integral up to t of a ramp from 0 at -h to 1 at h (h = 0: max(t, 0))."""
    if t >= h:
        return t
    if t <= -h:
        return 0.0
    return (t + h) * (t + h) / (4.0 * h)


@njit(cache=True, nogil=True)
def ramp(t, h):
    """The ramp itself (the derivative of ``ramp_area``)."""
    if t >= h:
        return 1.0
    if t <= -h:
        return 0.0
    return (t + h) / (2.0 * h)


@njit(cache=True, nogil=True)
def area(x, lo, hi, hl, hr):
    """Coverage of pixel [x, x + 1] by the piece (lo, hi) with ramp half-widths (hl, hr) on its line."""
    if x >= lo + hl and x + 1.0 <= hi - hr:
        return 1.0
    return (ramp_area(x + 1.0 - lo, hl) - ramp_area(x - lo, hl) + ramp_area(hi - x, hr)
            - ramp_area(hi - x - 1.0, hr) - 1.0)


@njit(cache=True, nogil=True)
def span(lo, hi, hl, hr, x0, x1):
    """Pixels [a, b) within [x0, x1) where the piece's coverage may be nonzero."""
    a = int(math.floor(min(lo - hl, hi - hr)))
    b = int(math.ceil(max(hi + hr, lo + hl)))
    return max(a, x0), min(b, x1)


@njit(cache=True, nogil=True)
def box(ol, sigma, W, H):
    """Rows and columns ``(y0, y1, x0, x1)`` outside which the soft coverage of ``ol`` is zero (clipped)."""
    m = HMAX * sigma + 1.0
    if ol[0] == 1.0:
        det = ol[3] * ol[5] - ol[4] * ol[4]
        if det <= 0 or ol[3] <= 0:
            return 0, 0, 0, 0
        hx, hy = math.sqrt(ol[5] / det), math.sqrt(ol[3] / det)
        xa, xb, ya, yb = ol[1] - hx - m, ol[1] + hx + m, ol[2] - hy - 1.0, ol[2] + hy + 1.0
    else:
        n = int(ol[1])
        xa, xb, ya, yb = 1e300, -1e300, 1e300, -1e300
        for i in range(4 * n):
            xa = min(xa, ol[2 + 2 * i])
            xb = max(xb, ol[2 + 2 * i])
            ya = min(ya, ol[3 + 2 * i])
            yb = max(yb, ol[3 + 2 * i])
        xa, xb = xa - m, xb + m
        ya, yb = ya - 0.5 * sigma - 1.0, yb + 0.5 * sigma + 1.0
    y0 = min(max(int(math.floor(ya)), 0), H)
    y1 = min(max(int(math.ceil(yb)), 0), H)
    x0 = min(max(int(math.floor(xa)), 0), W)
    x1 = min(max(int(math.ceil(xb)), 0), W)
    if y1 <= y0 or x1 <= x0:
        return 0, 0, 0, 0
    return y0, y1, x0, x1


@njit(cache=True, nogil=True)
def row_pieces(ol, y, sigma, lp, lps, linfo, ln, sc, ss, et, qt):
    """The pieces of every sub-scanline of row y: lp[j], lps[j], linfo[j] and their count ln[j]."""
    for j in range(SUB):
        ln[j] = line_pieces(ol, y + (j + 0.5) / SUB, sigma, lp[j], lps[j], linfo[j], sc, ss, et, qt)


@njit(cache=True, nogil=True)
def row_coverage(lp, linfo, ln, x0, x1, raw):
    """Raw (unclamped) soft coverage of a row's pieces into raw[xa:xb], the columns within [x0, x1) where it may
    be nonzero; returns (xa, xb)."""
    xa, xb = x1, x0
    for j in range(SUB):
        if linfo[j, 0] == 0.0:
            continue
        for m in range(ln[j]):
            a, b = span(lp[j, m, 0], lp[j, m, 1], lp[j, m, 2], lp[j, m, 3], x0, x1)
            if a < b:
                xa, xb = min(xa, a), max(xb, b)
    for x in range(xa, xb):
        raw[x] = 0.0
    for j in range(SUB):
        w = linfo[j, 0] / SUB
        if w == 0.0:
            continue
        for m in range(ln[j]):
            lo, hi, hl, hr = lp[j, m, 0], lp[j, m, 1], lp[j, m, 2], lp[j, m, 3]
            a, b = span(lo, hi, hl, hr, x0, x1)
            # the pixels inside both ramps are fully covered: a plain run between the two ramps' pixels
            ia = min(max(int(math.ceil(lo + hl)), a), b)
            ib = min(max(int(math.floor(hi - hr)), ia), b)
            for x in range(a, ia):
                raw[x] += w * area(float(x), lo, hi, hl, hr)
            for x in range(ia, ib):
                raw[x] += w
            for x in range(ib, b):
                raw[x] += w * area(float(x), lo, hi, hl, hr)
    return xa, xb


@njit(cache=True, nogil=True)
def scratch(W):
    """Work arrays: a row buffer, an edge table and a quad table, one row's line info and counts, sort space."""
    return (np.zeros(W), np.zeros((4 * MAXI, 6)), np.zeros((MAXI, 4)), np.zeros((SUB, INFO)),
            np.zeros(SUB, np.int64), np.zeros((MAXI, 4)), np.zeros((MAXI, 2), np.int64))


@njit(cache=True, nogil=True)
def end_grad(ol, src, v, sigma, info, gx, gol):
    """Add gx * d(position of the end made by ``src`` on line v) / d(outline) to gol."""
    if ol[0] == 1.0:
        cy, a, bq, c = ol[2], ol[3], ol[4], ol[5]
        d = v - cy
        disc = bq * bq * d * d - a * (c * d * d - 1.0)
        sq = math.sqrt(max(disc, EPS_DISC))
        live = 1.0 if disc >= EPS_DISC else 0.0  # the floor stops the gradient, as torch.clamp does
        sgn = -1.0 if src == 0 else 1.0
        x_rel = (-bq * d + sgn * sq) / a
        dsq_dd = live * (bq * bq - a * c) * d / sq
        dsq_da = live * -(c * d * d - 1.0) / (2.0 * sq)
        dsq_db = live * bq * d * d / sq
        dsq_dc = live * -a * d * d / (2.0 * sq)
        gol[1] += gx
        gol[2] -= gx * (-bq + sgn * dsq_dd) / a
        gol[3] += gx * (-x_rel / a + sgn * dsq_da / a)
        gol[4] += gx * (-d + sgn * dsq_db) / a
        gol[5] += gx * sgn * dsq_dc / a
        return
    q, e = src // 4, src % 4
    b = 2 + 8 * q
    f = (e + 1) % 4
    x0, y0 = ol[b + 2 * e], ol[b + 2 * e + 1]
    x1, y1 = ol[b + 2 * f], ol[b + 2 * f + 1]
    dy = y1 - y0
    dx = x1 - x0
    single = int(ol[1]) == 1
    vc = v
    if single:
        if info[3] < 0:
            vc = ol[b + 2 * int(info[4]) + 1]
        elif info[3] > 0:
            vc = ol[b + 2 * int(info[5]) + 1]
    t = (vc - y0) / dy
    gol[b + 2 * e] += gx * (1.0 - t)
    gol[b + 2 * f] += gx * t
    gol[b + 2 * e + 1] += gx * dx * (t - 1.0) / dy
    gol[b + 2 * f + 1] += gx * -dx * t / dy
    if single and info[3] != 0:
        iv = int(info[4]) if info[3] < 0 else int(info[5])
        to_extreme(ol, iv, gx * dx / dy, gol)


@njit(cache=True, nogil=True)
def to_extreme(ol, iv, gy, gol):
    """Add gy to the y of vertex iv of a single quad, shared evenly with the vertices at the same height (as the
    gradient of torch.amin / amax is)."""
    y = ol[3 + 2 * iv]
    ties = 0
    for e in range(4):
        if ol[3 + 2 * e] == y:
            ties += 1
    for e in range(4):
        if ol[3 + 2 * e] == y:
            gol[3 + 2 * e] += gy / ties
