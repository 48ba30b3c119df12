"""Numba kernels: the anti-aliased coverage model, scoring with the exact least-squares colour, compositing.

Coverage model (used by the search and by every render, at any size): pixel ``(x, y)`` is the square
``[x, x+1] x [y, y+1]``. It is cut by ``SUB`` horizontal sub-scanlines at ``y + (j + 0.5) / SUB``; on each, the
shape is a set of exact intervals, and the pixel's coverage is the mean over sub-scanlines of the length of those
intervals inside ``[x, x+1]``. Per pixel row this gives a few *runs* ``(x0, x1, c)`` of constant coverage: the
pixels that hold an interval end get their own run, the pixels between them are runs of constant coverage (1 in
the interior). A run is scored in O(1) from per-row prefix sums, so a candidate costs O(rows), not O(area).

Compositing a shape of colour ``col`` and opacity ``a``: ``new = cur + a c (col - cur)``. For a run of ``n`` pixels
the change of squared error is a quadratic in ``(u = a col, a)`` whose coefficients are the run sums of ``r``,
``cur``, ``cur^2`` and ``r cur`` (``r = target - cur``): the colour (and, if asked, the alpha) that minimise it are
solved in closed form, then clamped and quantised to what the SVG can say (8-bit colour, alpha in 1/255).
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

SUB = 4  # sub-scanlines per pixel row
MAXINT = 8  # intervals per sub-scanline (a Bezier stroke is the union of up to 8 quads)
MAXEP = 2 * SUB * MAXINT  # interval ends per pixel row
MAXRUN = 2 * MAXEP + 2  # runs per pixel row
NSUM = 12  # prefix sums per pixel: for each channel r, cur, cur^2, r*cur
MIN_ALPHA = 1.0 / 255.0


@njit(cache=True, nogil=True)
def outline_rows(ol, H):
    """Pixel rows [y0, y1) the outline may touch, clipped to the canvas."""
    if ol[0] == 0.0:
        n = int(ol[1])
        lo, hi = 1e300, -1e300
        for i in range(4 * n):
            y = ol[3 + 2 * i]
            lo = min(lo, y)
            hi = max(hi, y)
    else:
        det = ol[3] * ol[5] - ol[4] * ol[4]
        if det <= 0:
            return 0, 0
        hh = math.sqrt(ol[3] / det)
        lo, hi = ol[2] - hh, ol[2] + hh
    y0 = int(math.floor(lo))
    y1 = int(math.ceil(hi))
    if y0 < 0:
        y0 = 0
    if y1 > H:
        y1 = H
    return y0, y1


@njit(cache=True, nogil=True)
def prepare(ol, ed):
    """Edge table of a polygon outline: per quad q, edges ed[4 q + e] = (y_low, y_high, x at y_low, dx/dy); a
    horizontal or empty edge gets y_low > y_high so that no scanline meets it."""
    if ol[0] != 0.0:
        return
    npoly = int(ol[1])
    for q in range(npoly):
        b = 2 + 8 * q
        for e in range(4):
            f = (e + 1) % 4
            x0, y0 = ol[b + 2 * e], ol[b + 2 * e + 1]
            x1, y1 = ol[b + 2 * f], ol[b + 2 * f + 1]
            r = 4 * q + e
            if y0 == y1:
                ed[r, 0], ed[r, 1] = 1.0, -1.0
                continue
            if y0 > y1:
                x0, y0, x1, y1 = x1, y1, x0, y0
            ed[r, 0], ed[r, 1], ed[r, 2], ed[r, 3] = y0, y1, x0, (x1 - x0) / (y1 - y0)


@njit(cache=True, nogil=True)
def _subrow_intervals(ol, ed, ys, W, iv, j):
    """Intervals of the outline on the line y = ys, clipped to [0, W], sorted and merged into iv[j]; count."""
    cnt = 0
    if ol[0] == 0.0:
        npoly = int(ol[1])
        for q in range(npoly):
            lo, hi = 1e300, -1e300
            for r in range(4 * q, 4 * q + 4):
                if ys < ed[r, 0] or ys > ed[r, 1]:
                    continue
                x = ed[r, 2] + (ys - ed[r, 0]) * ed[r, 3]
                lo = min(lo, x)
                hi = max(hi, x)
            if hi <= lo:
                continue
            if lo < 0.0:
                lo = 0.0
            if hi > W:
                hi = W
            if hi <= lo:
                continue
            # insert sorted by start, then merge below
            k = cnt
            while k > 0 and iv[j, k - 1, 0] > lo:
                iv[j, k, 0] = iv[j, k - 1, 0]
                iv[j, k, 1] = iv[j, k - 1, 1]
                k -= 1
            iv[j, k, 0] = lo
            iv[j, k, 1] = hi
            cnt += 1
        if cnt > 1:
            m = 0
            for k in range(1, cnt):
                if iv[j, k, 0] <= iv[j, m, 1]:
                    if iv[j, k, 1] > iv[j, m, 1]:
                        iv[j, m, 1] = iv[j, k, 1]
                else:
                    m += 1
                    iv[j, m, 0] = iv[j, k, 0]
                    iv[j, m, 1] = iv[j, k, 1]
            cnt = m + 1
    else:
        a, bq, c = ol[3], ol[4], ol[5]
        dy = ys - ol[2]
        disc = bq * bq * dy * dy - a * (c * dy * dy - 1.0)
        if disc > 0 and a > 0:
            sq = math.sqrt(disc)
            lo = ol[1] + (-bq * dy - sq) / a
            hi = ol[1] + (-bq * dy + sq) / a
            if lo < 0.0:
                lo = 0.0
            if hi > W:
                hi = W
            if hi > lo:
                iv[j, 0, 0] = lo
                iv[j, 0, 1] = hi
                cnt = 1
    return cnt


@njit(cache=True, nogil=True)
def row_runs(ol, ed, y, W, iv, cnt, ep, rx0, rx1, rc):
    """Runs of constant coverage of the outline on pixel row y: (rx0[i], rx1[i], rc[i]) for i < returned count."""
    nep = 0
    for j in range(SUB):
        ys = y + (j + 0.5) / SUB
        cnt[j] = _subrow_intervals(ol, ed, ys, W, iv, j)
        for k in range(cnt[j]):
            for e in range(2):
                px = int(math.floor(iv[j, k, e]))
                if px >= W:
                    px = W - 1
                # insertion into the sorted unique list of pixels holding an interval end
                pos = nep
                dup = False
                while pos > 0 and ep[pos - 1] >= px:
                    if ep[pos - 1] == px:
                        dup = True
                        break
                    pos -= 1
                if dup:
                    continue
                for m in range(nep, pos, -1):
                    ep[m] = ep[m - 1]
                ep[pos] = px
                nep += 1
    nr = 0
    prev = -1
    for i in range(nep):
        p = ep[i]
        if prev >= 0 and p > prev + 1:
            xm = 0.5 * (prev + 1 + p)
            hits = 0
            for j in range(SUB):
                for k in range(cnt[j]):
                    if iv[j, k, 0] <= xm and xm <= iv[j, k, 1]:
                        hits += 1
                        break
            if hits > 0:
                rx0[nr] = prev + 1
                rx1[nr] = p
                rc[nr] = hits / SUB
                nr += 1
        cov = 0.0
        for j in range(SUB):
            for k in range(cnt[j]):
                lo = max(iv[j, k, 0], float(p))
                hi = min(iv[j, k, 1], p + 1.0)
                if hi > lo:
                    cov += hi - lo
        if cov > 0:
            rx0[nr] = p
            rx1[nr] = p + 1
            rc[nr] = cov / SUB
            nr += 1
        prev = p
    return nr


@njit(cache=True, nogil=True)
def new_scratch():
    iv = np.zeros((SUB, MAXINT, 2))
    cnt = np.zeros(SUB, np.int64)
    ep = np.zeros(MAXEP, np.int64)
    rx0 = np.zeros(MAXRUN, np.int64)
    rx1 = np.zeros(MAXRUN, np.int64)
    rc = np.zeros(MAXRUN)
    ed = np.zeros((4 * MAXINT, 4))
    return iv, cnt, ep, rx0, rx1, rc, ed


@njit(cache=True, nogil=True)
def build_prefix(target, cur, pref, y0, y1):
    """Per-row prefix sums of r, cur, cur^2, r*cur (per channel) for rows [y0, y1)."""
    W = target.shape[1]
    for y in range(y0, y1):
        for k in range(NSUM):
            pref[y, 0, k] = 0.0
        for x in range(W):
            for ch in range(3):
                c = cur[y, x, ch]
                r = target[y, x, ch] - c
                b = 4 * ch
                pref[y, x + 1, b] = pref[y, x, b] + r
                pref[y, x + 1, b + 1] = pref[y, x, b + 1] + c
                pref[y, x + 1, b + 2] = pref[y, x, b + 2] + c * c
                pref[y, x + 1, b + 3] = pref[y, x, b + 3] + r * c


@njit(cache=True, nogil=True)
def _q(v):
    return math.floor(v * 255.0 + 0.5) / 255.0


@njit(cache=True, nogil=True)
def solve(sums, alpha, out):
    """Colour (and alpha when ``alpha <= 0``) minimising the error from the accumulated run sums.

    sums = [Q, P0, P1, P2, M0, M1, M2, R0, R1, R2, T0, T1, T2]. Writes out = [r, g, b, a]; returns the change of
    the sum of squared errors (0..1 scale) that compositing this shape would make.
    """
    Q = sums[0]
    if Q <= 1e-12:
        out[0] = out[1] = out[2] = 0.0
        out[3] = max(alpha, MIN_ALPHA)
        return 0.0
    if alpha > 0:
        a = alpha
    else:
        num = 0.0
        den = 0.0
        for k in range(3):
            P, M, R, T = sums[1 + k], sums[4 + k], sums[7 + k], sums[10 + k]
            num += P * R / Q - T
            den += M - P * P / Q
        a = num / den if den > 1e-12 else 1.0
        if not (a > MIN_ALPHA):  # also catches NaN
            a = MIN_ALPHA
        if a > 1.0:
            a = 1.0
        a = max(_q(a), MIN_ALPHA)
    delta = 0.0
    for k in range(3):
        P, M, R, T = sums[1 + k], sums[4 + k], sums[7 + k], sums[10 + k]
        col = (R + a * P) / (Q * a)
        if not (col > 0.0):
            col = 0.0
        if col > 1.0:
            col = 1.0
        col = _q(col)
        out[k] = col
        u = a * col
        delta += -2.0 * u * R + 2.0 * a * T + u * u * Q - 2.0 * a * u * P + a * a * M
    out[3] = a
    return delta


@njit(cache=True, nogil=True)
def delta_for(sums, col, a):
    """Change of the squared error for a given colour and alpha (no solving)."""
    Q = sums[0]
    delta = 0.0
    for k in range(3):
        P, M, R, T = sums[1 + k], sums[4 + k], sums[7 + k], sums[10 + k]
        u = a * col[k]
        delta += -2.0 * u * R + 2.0 * a * T + u * u * Q - 2.0 * a * u * P + a * a * M
    return delta


@njit(cache=True, nogil=True)
def accumulate(ol, pref, W, H, sums, iv, cnt, ep, rx0, rx1, rc, ed):
    """Accumulate the run sums of the outline's coverage against the prefix sums."""
    sums[:] = 0.0
    prepare(ol, ed)
    y0, y1 = outline_rows(ol, H)
    for y in range(y0, y1):
        nr = row_runs(ol, ed, y, W, iv, cnt, ep, rx0, rx1, rc)
        for i in range(nr):
            x0, x1, c = rx0[i], rx1[i], rc[i]
            c2 = c * c
            sums[0] += c2 * (x1 - x0)
            for ch in range(3):
                b = 4 * ch
                sr = pref[y, x1, b] - pref[y, x0, b]
                sc = pref[y, x1, b + 1] - pref[y, x0, b + 1]
                scc = pref[y, x1, b + 2] - pref[y, x0, b + 2]
                src = pref[y, x1, b + 3] - pref[y, x0, b + 3]
                sums[1 + ch] += c2 * sc
                sums[4 + ch] += c2 * scc
                sums[7 + ch] += c * sr
                sums[10 + ch] += c * src


@njit(cache=True, nogil=True)
def evaluate(ol, pref, W, H, alpha, out, sums, iv, cnt, ep, rx0, rx1, rc, ed):
    """Score of an outline: the change of squared error with its best colour (written to out)."""
    accumulate(ol, pref, W, H, sums, iv, cnt, ep, rx0, rx1, rc, ed)
    return solve(sums, alpha, out)


@njit(cache=True, nogil=True)
def composite(canvas, ol, col, a):
    """Draw an outline with colour col and opacity a onto canvas (H, W, 3) in place; returns rows [y0, y1)."""
    H, W = canvas.shape[0], canvas.shape[1]
    iv, cnt, ep, rx0, rx1, rc, ed = new_scratch()
    prepare(ol, ed)
    y0, y1 = outline_rows(ol, H)
    for y in range(y0, y1):
        nr = row_runs(ol, ed, y, W, iv, cnt, ep, rx0, rx1, rc)
        for i in range(nr):
            w = a * rc[i]
            for x in range(rx0[i], rx1[i]):
                for ch in range(3):
                    canvas[y, x, ch] += w * (col[ch] - canvas[y, x, ch])
    return y0, y1


@njit(cache=True, nogil=True)
def coverage(ol, W, H):
    """The dense coverage map (H, W) of an outline (for tests and the batch scorer's checks)."""
    out = np.zeros((H, W))
    iv, cnt, ep, rx0, rx1, rc, ed = new_scratch()
    prepare(ol, ed)
    y0, y1 = outline_rows(ol, H)
    for y in range(y0, y1):
        nr = row_runs(ol, ed, y, W, iv, cnt, ep, rx0, rx1, rc)
        for i in range(nr):
            for x in range(rx0[i], rx1[i]):
                out[y, x] = rc[i]
    return out
