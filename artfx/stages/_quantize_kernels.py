"""numba kernels for the quantize stage (imported lazily from ``quantize.apply``; compiled once, cached).

The approach, and why: a full k-means over 12 million pixels costs ~10 s (scikit-learn, one thread). Here every
pixel is dropped into a 6-bit-per-channel colour histogram (262,144 cells, integer sums of the 8-bit values so the
result does not depend on thread count), k-means is run on the occupied cells' mean colours weighted by their
pixel counts (tens of thousands of points instead of millions, yet every pixel counts), and each pixel then takes
the palette index of its cell through a lookup table. Pixels of a cell are all given the cell's nearest colour;
cells where the nearest palette entry is ambiguous (a boundary runs through the cell) are resolved per pixel in
the chosen colour space, so the assignment is exact to the 8-bit input colour.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from artfx.stages._kernels import paint, rgb_to_lab_one, threads_for, to_space  # noqa: F401  (used by the stage)

BITS = 6
SHIFT = 8 - BITS
CELLS = 1 << (3 * BITS)


# ---- histogram ---------------------------------------------------------------------------------------------
@njit(cache=True, inline="always")
def _q8(v):
    x = int(v * 255.0 + 0.5)
    return 0 if x < 0 else (255 if x > 255 else x)


@njit(cache=True, parallel=True)
def histogram(img, code, stride, salt, nchunks):
    """Colour histogram of ``img`` (H, W, 3 float32 in [0,1]) over the 6-bit cells.

    Writes every pixel's 24-bit colour code ``cell << 6 | low bits`` into ``code`` (H, W int32), so later passes
    need not read the image again. Returns (acc, sampled): ``acc`` int64 [CELLS, 4] holds per cell the pixel count
    and the sums of the pixels' 8-bit R, G, B (integer sums: the result does not depend on the thread count);
    ``sampled`` int64 [CELLS] counts a pseudo-random 1-in-``stride`` sample (hashed with ``salt``; stride 1 = all
    pixels), used as the fitting weights.
    """
    h, w = img.shape[0], img.shape[1]
    nchunks = max(1, min(h, nchunks))
    # per-chunk int32 accumulators: a chunk sums at most 2**31 / 255 = 8.4 M pixels, so split large images more
    nchunks = max(nchunks, (h * w) // 8_000_000 + 1)
    acc = np.zeros((nchunks, CELLS, 4), np.int32)
    sampled = np.zeros((nchunks if stride > 1 else 0, CELLS), np.int32)
    for c in prange(nchunks):
        y0 = c * h // nchunks
        y1 = (c + 1) * h // nchunks
        for y in range(y0, y1):
            for x in range(w):
                r = _q8(img[y, x, 0])
                g = _q8(img[y, x, 1])
                b = _q8(img[y, x, 2])
                cell = ((r >> SHIFT) << (2 * BITS)) | ((g >> SHIFT) << BITS) | (b >> SHIFT)
                code[y, x] = (cell << 6) | ((r & 3) << 4) | ((g & 3) << 2) | (b & 3)
                acc[c, cell, 0] += 1
                acc[c, cell, 1] += r
                acc[c, cell, 2] += g
                acc[c, cell, 3] += b
                if stride > 1:
                    hv = (np.uint64(y * w + x) ^ np.uint64(salt)) * np.uint64(0x9E3779B97F4A7C15)
                    if (hv >> np.uint64(33)) % np.uint64(stride) == 0:
                        sampled[c, cell] += 1
    tot = np.zeros((CELLS, 4), np.int64)
    tsm = np.zeros(CELLS, np.int64)
    for i in prange(CELLS):
        for c in range(nchunks):
            for t in range(4):
                tot[i, t] += acc[c, i, t]
            if stride > 1:
                tsm[i] += sampled[c, i]
        if stride == 1:
            tsm[i] = tot[i, 0]
    return tot, tsm


# ---- weighted k-means ----------------------------------------------------------------------------------------
@njit(cache=True)
def _nearest(points, centers, labels, dist):
    """Nearest centre of every point, starting from its previous label (``labels`` < 0: none) and skipping any
    centre j with |c_a - c_j| >= 2 d(x, c_a), which cannot be nearer (the "compare-means" bound). Serial on
    purpose: a few ms per call, and a parallel region per iteration stalls when the cores are shared."""
    m, k = points.shape[0], centers.shape[0]
    cc = np.empty((k, k), np.float64)
    for a in range(k):
        for j in range(k):
            s = 0.0
            for c in range(3):
                t = centers[a, c] - centers[j, c]
                s += t * t
            cc[a, j] = 0.25 * s
    for i in range(m):
        p0, p1, p2 = points[i, 0], points[i, 1], points[i, 2]
        bi = labels[i] if labels[i] >= 0 else 0
        d0 = p0 - centers[bi, 0]
        d1 = p1 - centers[bi, 1]
        d2 = p2 - centers[bi, 2]
        best = d0 * d0 + d1 * d1 + d2 * d2
        a = bi
        da = best
        for j in range(k):
            if j == a or cc[a, j] >= da:
                continue
            d0 = p0 - centers[j, 0]
            d1 = p1 - centers[j, 1]
            d2 = p2 - centers[j, 2]
            d = d0 * d0 + d1 * d1 + d2 * d2
            if d < best:
                best = d
                bi = j
        labels[i] = bi
        dist[i] = best


@njit(cache=True)
def _pick(cum, u):
    """Index i with cum[i-1] <= u*cum[-1] < cum[i] (binary search)."""
    target = u * cum[-1]
    lo, hi = 0, cum.shape[0] - 1
    while lo < hi:
        mid = (lo + hi) // 2
        if cum[mid] <= target:
            lo = mid + 1
        else:
            hi = mid
    return lo


@njit(cache=True)
def kmeans_pp(points, weights, k, uniforms, n_local):
    """Greedy weighted k-means++ seeding (as scikit-learn's): ``n_local`` candidates per centre, the one that
    lowers the weighted potential most is kept. ``uniforms`` holds k*n_local draws in [0, 1). Stops early when
    every point is already a centre (fewer distinct colours than k)."""
    m = points.shape[0]
    centers = np.empty((k, 3), np.float64)
    cum = np.cumsum(weights)
    first = _pick(cum, uniforms[0])
    centers[0] = points[first]
    closest = np.empty(m, np.float64)
    for i in range(m):
        d = 0.0
        for c in range(3):
            t = points[i, c] - centers[0, c]
            d += t * t
        closest[i] = d
    n = 1
    cand_d = np.empty(m, np.float64)
    best_d = np.empty(m, np.float64)
    while n < k:
        wd = weights * closest
        cum = np.cumsum(wd)
        if cum[-1] <= 0.0:
            break
        best_pot = np.inf
        best_idx = -1
        for t in range(n_local):
            idx = _pick(cum, uniforms[n * n_local + t])
            pot = 0.0
            for i in range(m):
                d = 0.0
                for c in range(3):
                    s = points[i, c] - points[idx, c]
                    d += s * s
                if d > closest[i]:
                    d = closest[i]
                cand_d[i] = d
                pot += weights[i] * d
            if pot < best_pot:
                best_pot = pot
                best_idx = idx
                best_d[:] = cand_d
        centers[n] = points[best_idx]
        closest[:] = best_d
        n += 1
    return centers[:n].copy()


@njit(cache=True)
def lloyd(points, weights, centers, max_iter, tol):
    """Weighted Lloyd iterations from ``centers`` until no point changes cluster, the centres move less than
    ``tol`` (squared, summed), or ``max_iter``. Empty clusters are moved to the point that costs most.
    Returns (centers, labels, inertia, iterations)."""
    m, k = points.shape[0], centers.shape[0]
    labels = np.full(m, -1, np.int64)
    dist = np.empty(m, np.float64)
    prev = np.full(m, -1, np.int64)
    it = 0
    for it in range(1, max_iter + 1):
        _nearest(points, centers, labels, dist)
        if np.array_equal(labels, prev):
            break
        prev[:] = labels
        sums = np.zeros((k, 3), np.float64)
        wsum = np.zeros(k, np.float64)
        for i in range(m):
            j = labels[i]
            w = weights[i]
            wsum[j] += w
            sums[j, 0] += w * points[i, 0]
            sums[j, 1] += w * points[i, 1]
            sums[j, 2] += w * points[i, 2]
        shift = 0.0
        for j in range(k):
            if wsum[j] > 0:
                for c in range(3):
                    v = sums[j, c] / wsum[j]
                    shift += (v - centers[j, c]) ** 2
                    centers[j, c] = v
            else:
                worst = np.argmax(weights * dist)
                for c in range(3):
                    centers[j, c] = points[worst, c]
                dist[worst] = 0.0
                shift = np.inf
        if shift <= tol:
            _nearest(points, centers, labels, dist)
            break
    inertia = 0.0
    for i in range(m):
        inertia += weights[i] * dist[i]
    return centers, labels, inertia, it


# ---- assignment ----------------------------------------------------------------------------------------------
FTAB_N = 1 << 16


def lab_tables():
    """(lin, ftab): sRGB 8-bit -> linear (256), and the CIELAB f(t) sampled on [0, 1] in 2**16 steps (+2 guard
    entries) for linear interpolation (error < 1e-7 in f, far below one 8-bit step)."""
    c = np.arange(256) / 255.0
    lin = np.where(c <= 0.04045, c / 12.92, ((c + 0.055) / 1.055) ** 2.4)
    t = np.arange(FTAB_N + 2) / FTAB_N
    ftab = np.where(t > 0.008856451679035631, np.cbrt(t), t * 7.787037037037037 + 16.0 / 116.0)
    return lin, ftab


@njit(cache=True, inline="always")
def _fi(t, ftab):
    u = t * FTAB_N
    if u < 0.0:
        u = 0.0
    i = int(u)
    if i > FTAB_N:
        i = FTAB_N
    fr = u - i
    return ftab[i] + (ftab[i + 1] - ftab[i]) * fr


@njit(cache=True, inline="always")
def _space8(r, g, b, lab, lin, ftab, cw):
    """An 8-bit sRGB colour in the clustering space (Lab through tables, or RGB on a 0..100 scale)."""
    if not lab:
        return r * (100.0 / 255.0), g * (100.0 / 255.0), b * (100.0 / 255.0)
    lr, lg, lb = lin[r], lin[g], lin[b]
    fx = _fi((0.412453 * lr + 0.357580 * lg + 0.180423 * lb) / 0.950456, ftab)
    fy = _fi(0.212671 * lr + 0.715160 * lg + 0.072169 * lb, ftab)
    fz = _fi((0.019334 * lr + 0.119193 * lg + 0.950227 * lb) / 1.088754, ftab)
    return 116.0 * fy - 16.0, 500.0 * cw * (fx - fy), 200.0 * cw * (fy - fz)


@njit(cache=True, parallel=True)
def cell_lut(cells, cell_space, palette, lab, lin, ftab, cw):
    """Palette indices for the listed cells: ``lut[i]`` is the entry nearest to cell i's mean colour, and
    ``sub[i]`` (64 entries, one per 8-bit colour of the cell) is filled only where that is not the nearest for
    every colour of the cell (``sure[i]`` False). By the triangle inequality it is the nearest for all when the
    second-nearest entry is farther than the nearest by more than twice the cell's radius (largest distance from
    the mean to a corner of the cell). Boundary cells thus cost 64 exact look-ups, not one per pixel."""
    n, k = cells.shape[0], palette.shape[0]
    lut = np.zeros(n, np.int32)
    sure = np.ones(n, np.bool_)
    sub = np.zeros((n, 64), np.int16)
    step = (1 << SHIFT) - 1
    mask = (1 << BITS) - 1
    for i in prange(n):
        cell = cells[i]
        b1 = np.inf
        b2 = np.inf
        bi = 0
        for j in range(k):
            d0 = cell_space[i, 0] - palette[j, 0]
            d1 = cell_space[i, 1] - palette[j, 1]
            d2 = cell_space[i, 2] - palette[j, 2]
            d = d0 * d0 + d1 * d1 + d2 * d2
            if d < b1:
                b2 = b1
                b1 = d
                bi = j
            elif d < b2:
                b2 = d
        lut[i] = bi
        if k < 2:
            continue
        gap = np.sqrt(b2) - np.sqrt(b1)
        r0 = ((cell >> (2 * BITS)) & mask) << SHIFT
        g0 = ((cell >> BITS) & mask) << SHIFT
        bb0 = (cell & mask) << SHIFT
        rad = 0.0
        for corner in range(8):
            p0, p1, p2 = _space8(
                r0 + step * (corner & 1), g0 + step * ((corner >> 1) & 1), bb0 + step * ((corner >> 2) & 1), lab, lin, ftab, cw
            )
            d = (p0 - cell_space[i, 0]) ** 2 + (p1 - cell_space[i, 1]) ** 2 + (p2 - cell_space[i, 2]) ** 2
            if d > rad:
                rad = d
        if gap > 2.1 * np.sqrt(rad) + 1e-9:  # 5% slack: Lab is curved inside a cell
            continue
        sure[i] = False
        # only entries within d1 + 2r of the mean can be nearest to a colour of the cell
        limit = (np.sqrt(b1) + 2.1 * np.sqrt(rad) + 1e-9) ** 2
        cand = np.empty(k, np.int64)
        nc = 0
        for j in range(k):
            d0 = cell_space[i, 0] - palette[j, 0]
            d1 = cell_space[i, 1] - palette[j, 1]
            d2 = cell_space[i, 2] - palette[j, 2]
            if d0 * d0 + d1 * d1 + d2 * d2 <= limit:
                cand[nc] = j
                nc += 1
        for t in range(64):
            p0, p1, p2 = _space8(r0 + (t >> 4), g0 + ((t >> 2) & 3), bb0 + (t & 3), lab, lin, ftab, cw)
            best = np.inf
            bj = bi
            for c in range(nc):
                j = cand[c]
                d0 = p0 - palette[j, 0]
                d1 = p1 - palette[j, 1]
                d2 = p2 - palette[j, 2]
                d = d0 * d0 + d1 * d1 + d2 * d2
                if d < best:
                    best = d
                    bj = j
            sub[i, t] = bj
    return lut, sure, sub


@njit(cache=True, parallel=True)
def assign(code, cells, lut, sure, sub):
    """Overwrite ``code`` (H, W int32 colour codes from ``histogram``) in place with palette indices."""
    h, w = code.shape
    entry = np.zeros(CELLS, np.int32)  # >= 0: the cell's palette index; < 0: -(1 + row of sub)
    for i in range(cells.shape[0]):
        entry[cells[i]] = lut[i] if sure[i] else -1 - i
    for y in prange(h):
        for x in range(w):
            v = code[y, x]
            e = entry[v >> 6]
            code[y, x] = e if e >= 0 else sub[-1 - e, v & 63]


@njit(cache=True)
def floyd_steinberg(img, palette_rgb, palette_space, lab, cw, labels, out):
    """Floyd-Steinberg error diffusion in sRGB (serpentine scan); each pixel takes the palette entry nearest (in
    the clustering space) to its colour plus the diffused error. Sequential by nature."""
    h, w = img.shape[0], img.shape[1]
    k = palette_rgb.shape[0]
    err = np.zeros((2, w + 2, 3), np.float32)
    for y in range(h):
        cur = y & 1
        nxt = 1 - cur
        err[nxt, :, :] = 0.0
        forward = (y & 1) == 0
        for t in range(w):
            x = t if forward else w - 1 - t
            v0 = min(max(img[y, x, 0] + err[cur, x + 1, 0], 0.0), 1.0)
            v1 = min(max(img[y, x, 1] + err[cur, x + 1, 1], 0.0), 1.0)
            v2 = min(max(img[y, x, 2] + err[cur, x + 1, 2], 0.0), 1.0)
            if lab:
                p0, p1, p2 = rgb_to_lab_one(v0, v1, v2)
                p1 *= cw
                p2 *= cw
            else:
                p0, p1, p2 = v0 * 100.0, v1 * 100.0, v2 * 100.0
            best = np.inf
            bi = 0
            for j in range(k):
                d0 = p0 - palette_space[j, 0]
                d1 = p1 - palette_space[j, 1]
                d2 = p2 - palette_space[j, 2]
                d = d0 * d0 + d1 * d1 + d2 * d2
                if d < best:
                    best = d
                    bi = j
            labels[y, x] = bi
            e0 = v0 - palette_rgb[bi, 0]
            e1 = v1 - palette_rgb[bi, 1]
            e2 = v2 - palette_rgb[bi, 2]
            out[y, x, 0] = palette_rgb[bi, 0]
            out[y, x, 1] = palette_rgb[bi, 1]
            out[y, x, 2] = palette_rgb[bi, 2]
            d = 1 if forward else -1
            # error buffer index is x + 1 (one guard cell on each side)
            err[cur, x + 1 + d, 0] += e0 * 0.4375
            err[cur, x + 1 + d, 1] += e1 * 0.4375
            err[cur, x + 1 + d, 2] += e2 * 0.4375
            err[nxt, x + 1 - d, 0] += e0 * 0.1875
            err[nxt, x + 1 - d, 1] += e1 * 0.1875
            err[nxt, x + 1 - d, 2] += e2 * 0.1875
            err[nxt, x + 1, 0] += e0 * 0.3125
            err[nxt, x + 1, 1] += e1 * 0.3125
            err[nxt, x + 1, 2] += e2 * 0.3125
            err[nxt, x + 1 + d, 0] += e0 * 0.0625
            err[nxt, x + 1 + d, 1] += e1 * 0.0625
            err[nxt, x + 1 + d, 2] += e2 * 0.0625
