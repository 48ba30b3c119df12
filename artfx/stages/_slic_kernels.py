"""numba kernels for the slic stage (imported lazily from ``slic.apply``; compiled once, cached on disk).

SLIC as in Achanta et al. 2012 (each centre searches a 2S x 2S window, distance = colour^2 + (m/S)^2 space^2),
written pixel-centric so that it runs in parallel over row bands and stays deterministic: every pixel row looks
at the centres of the nearby grid rows whose window covers it, and the inner loop over the window's x range is a
plain vectorisable loop. Sums for the update step go to per-band accumulators reduced in a fixed order, so the
result does not depend on the thread count. Connectivity is enforced on runs (row segments of one label) with a
union-find, which is O(runs) rather than O(pixels) apart from one scan.
"""

from __future__ import annotations


import numpy as np
from numba import njit, prange

from artfx.stages._kernels import paint, threads_for, to_space  # noqa: F401  (used by the stage)

NBANDS = 16  # fixed number of row bands for accumulations: results independent of the thread count
TABLE_BITS = 6  # colour -> Lab table: 64 levels per channel (half a step = 2/255, under ~1 Lab unit)


@njit(cache=True, parallel=True)
def features(img, table, lab):
    """Three float32 feature planes of ``img`` (H, W, 3 float32 [0,1]): CIELAB looked up in ``table``
    (3, 64**3; rounding each channel to 6 bits), or RGB on a 0..100 scale when ``lab`` is False."""
    H, W = img.shape[0], img.shape[1]
    F0 = np.empty((H, W), np.float32)
    F1 = np.empty((H, W), np.float32)
    F2 = np.empty((H, W), np.float32)
    top = (1 << TABLE_BITS) - 1
    for y in prange(H):
        for x in range(W):
            r = img[y, x, 0]
            g = img[y, x, 1]
            b = img[y, x, 2]
            if lab:
                ri = min(top, max(0, int(r * top + 0.5)))
                gi = min(top, max(0, int(g * top + 0.5)))
                bi = min(top, max(0, int(b * top + 0.5)))
                i = (ri << (2 * TABLE_BITS)) | (gi << TABLE_BITS) | bi
                F0[y, x] = table[0, i]
                F1[y, x] = table[1, i]
                F2[y, x] = table[2, i]
            else:
                F0[y, x] = r * 100.0
                F1[y, x] = g * 100.0
                F2[y, x] = b * 100.0
    return F0, F1, F2


@njit(cache=True, parallel=True)
def pool(F0, F1, F2, shift):
    """Average 2**shift x 2**shift blocks of three feature planes (partial blocks at the edges average what
    they have). Returns three planes."""
    H, W = F0.shape
    factor = 1 << shift
    h = (H + factor - 1) >> shift
    w = (W + factor - 1) >> shift
    P0 = np.empty((h, w), np.float32)
    P1 = np.empty((h, w), np.float32)
    P2 = np.empty((h, w), np.float32)
    for yy in prange(h):
        ya = yy << shift
        yb = min(H, ya + factor)
        s0 = np.zeros(w, np.float32)
        s1 = np.zeros(w, np.float32)
        s2 = np.zeros(w, np.float32)
        for y in range(ya, yb):
            for x in range(W):
                xx = x >> shift
                s0[xx] += F0[y, x]
                s1[xx] += F1[y, x]
                s2[xx] += F2[y, x]
        for xx in range(w):
            inv = np.float32(1.0 / ((yb - ya) * (min(W, (xx << shift) + factor) - (xx << shift))))
            P0[yy, xx] = s0[xx] * inv
            P1[yy, xx] = s1[xx] * inv
            P2[yy, xx] = s2[xx] * inv
    return P0, P1, P2


@njit(cache=True)
def grid_centres(F0, F1, F2, ny, nx):
    """Initial centres (k, 5) = [c0, c1, c2, y, x] at the middles of an ny x nx grid."""
    h, w = F0.shape
    C = np.empty((ny * nx, 5), np.float64)
    for gy in range(ny):
        for gx in range(nx):
            y = min(h - 1, int((gy + 0.5) * h / ny))
            x = min(w - 1, int((gx + 0.5) * w / nx))
            c = gy * nx + gx
            C[c, 0] = F0[y, x]
            C[c, 1] = F1[y, x]
            C[c, 2] = F2[y, x]
            C[c, 3] = y
            C[c, 4] = x
    return C


@njit(cache=True)
def init_labels(h, w, ny, nx):
    labels = np.empty((h, w), np.int32)
    for y in range(h):
        gy = min(ny - 1, y * ny // h)
        for x in range(w):
            labels[y, x] = gy * nx + min(nx - 1, x * nx // w)
    return labels


@njit(cache=True)
def _window(f0, f1, f2, dist, lab, xa, xb, c0, c1, c2, xc, wf, base, c):
    """Offer centre ``c`` to the pixels xa..xb-1 of one row. Written on slices with a zero-based index and no
    branch so that LLVM vectorises it (indexing with a possibly negative index does not: ~4x slower)."""
    g0 = f0[xa:xb]
    g1 = f1[xa:xb]
    g2 = f2[xa:xb]
    dd = dist[xa:xb]
    ll = lab[xa:xb]
    x0 = np.float32(xa) - xc
    ci = np.int32(c)
    for i in range(xb - xa):
        dx = np.float32(i) + x0
        d0 = g0[i] - c0
        d1 = g1[i] - c1
        d2 = g2[i] - c2
        d = d0 * d0 + d1 * d1 + d2 * d2 + base + wf * dx * dx
        old = dd[i]
        better = d < old
        dd[i] = d if better else old
        ll[i] = ci if better else ll[i]


@njit(cache=True)
def _window_sticky(f0, f1, f2, dist, lab, xa, xb, c0, c1, c2, xc, wf, base, c, pf, bonus):
    """:func:`_window` for a video frame: a pixel whose label on the previous frame (carried by the flow) was
    centre ``c`` finds it ``bonus`` closer, so boundaries stay put unless the picture moves them. A copy of
    _window on purpose: still images keep the loop without the extra load and compare (it is the hot loop)."""
    g0 = f0[xa:xb]
    g1 = f1[xa:xb]
    g2 = f2[xa:xb]
    dd = dist[xa:xb]
    ll = lab[xa:xb]
    pp = pf[xa:xb]
    x0 = np.float32(xa) - xc
    ci = np.int32(c)
    for i in range(xb - xa):
        dx = np.float32(i) + x0
        d0 = g0[i] - c0
        d1 = g1[i] - c1
        d2 = g2[i] - c2
        d = d0 * d0 + d1 * d1 + d2 * d2 + base + wf * dx * dx - (bonus if pp[i] == ci else np.float32(0))
        old = dd[i]
        better = d < old
        dd[i] = d if better else old
        ll[i] = ci if better else ll[i]


@njit(cache=True)
def iterate(F0, F1, F2, C, ny, nx, S, wgt, prev, shift, labels, update, row_start, prefer, bonus):
    """One SLIC assignment pass over the feature planes F0..F2 (and, if ``update``, the centre update, in place
    in ``C``), writing ``labels``.

    A pixel keeps its previous label (``prev[y >> shift, x >> shift]``: the last pass, perhaps on a pooled
    image) when no window covers it, as in the original algorithm.

    Centres are bucketed by grid row: those of row r are ``C[row_start[r]:row_start[r + 1]]`` (the grid's
    ``r * nx`` for a fresh grid; a video's centres carried along the flow are sorted into rows by their y).

    ``prefer`` (H, W int32, -1 = none) and ``bonus`` > 0: a video frame's labels carried from the previous frame,
    which its pixels keep unless another centre is closer by more than ``bonus`` (``bonus`` 0: no preference).

    Serial wrapper around one parallel pass: inside a parallel=True function every array expression (np.zeros,
    astype) becomes a parallel region of its own, and each region costs milliseconds when the cores are shared."""
    h = F0.shape[0]
    nb = min(NBANDS, h)
    acc = np.zeros((nb, C.shape[0], 6), np.float64)
    Cf = C.astype(np.float32)
    _assign_pass(F0, F1, F2, Cf, ny, nx, np.float32(S), np.float32(wgt), prev, shift, labels, update, acc,
                 row_start, prefer, np.float32(bonus))
    if update:
        _update(acc, C)


@njit(cache=True, parallel=True)
def _assign_pass(F0, F1, F2, Cf, ny, nx, Sf, wf, prev, shift, labels, update, acc, row_start, prefer, bonus):
    h, w = F0.shape
    nb = acc.shape[0]
    for band in prange(nb):
        y0 = band * h // nb
        y1 = (band + 1) * h // nb
        dist = np.empty(w, np.float32)
        lab = np.empty(w, np.int32)
        for y in range(y0, y1):
            pr = prev[y >> shift]
            for x in range(w):
                dist[x] = np.inf
                lab[x] = pr[x >> shift]
            gy = min(ny - 1, y * ny // h)
            yf = np.float32(y)
            f0 = F0[y]
            f1 = F1[y]
            f2 = F2[y]
            for c in range(row_start[max(0, gy - 2)], row_start[min(ny, gy + 3)]):
                dy = yf - Cf[c, 3]
                if dy > Sf or dy < -Sf:
                    continue
                xc = Cf[c, 4]
                xa = max(0, int(np.ceil(xc - Sf)))
                xb = min(w, int(np.floor(xc + Sf)) + 1)
                if xb > xa and bonus > 0:
                    _window_sticky(f0, f1, f2, dist, lab, xa, xb, Cf[c, 0], Cf[c, 1], Cf[c, 2], xc, wf,
                                   wf * dy * dy, c, prefer[y], bonus)
                elif xb > xa:
                    _window(f0, f1, f2, dist, lab, xa, xb, Cf[c, 0], Cf[c, 1], Cf[c, 2], xc, wf, wf * dy * dy, c)
            for x in range(w):
                c = lab[x]
                labels[y, x] = c
                if update:
                    acc[band, c, 0] += f0[x]
                    acc[band, c, 1] += f1[x]
                    acc[band, c, 2] += f2[x]
                    acc[band, c, 3] += y
                    acc[band, c, 4] += x
                    acc[band, c, 5] += 1.0


@njit(cache=True)
def _update(acc, C):
    """New centres = means of their pixels (bands summed in a fixed order). A separate serial function: inside a
    parallel=True function every small array expression becomes its own parallel region (one per centre here),
    which costs ~1000x when the cores are shared."""
    nb, k = acc.shape[0], acc.shape[1]
    s = np.zeros(6, np.float64)
    for c in range(k):
        s[:] = 0.0
        for band in range(nb):
            for t in range(6):
                s[t] += acc[band, c, t]
        if s[5] > 0:
            for t in range(5):
                C[c, t] = s[t] / s[5]


@njit(cache=True)
def _find(parent, i):
    root = i
    while parent[root] != root:
        root = parent[root]
    while parent[i] != root:
        nxt = parent[i]
        parent[i] = root
        i = nxt
    return root


@njit(cache=True, parallel=True)
def runs(labels):
    """Row runs of equal labels: (start, end, label, row) arrays and the first run of every row (h + 1)."""
    h, w = labels.shape
    cnt = np.empty(h, np.int64)
    for y in prange(h):
        n = 1
        for x in range(1, w):
            if labels[y, x] != labels[y, x - 1]:
                n += 1
        cnt[y] = n
    row0 = np.empty(h + 1, np.int64)
    row0[0] = 0
    for y in range(h):
        row0[y + 1] = row0[y] + cnt[y]
    nr = row0[h]
    rs = np.empty(nr, np.int32)
    re = np.empty(nr, np.int32)
    rl = np.empty(nr, np.int32)
    ry = np.empty(nr, np.int32)
    for y in prange(h):
        r = row0[y]
        rs[r] = 0
        rl[r] = labels[y, 0]
        ry[r] = y
        for x in range(1, w):
            if labels[y, x] != labels[y, x - 1]:
                re[r] = x
                r += 1
                rs[r] = x
                rl[r] = labels[y, x]
                ry[r] = y
        re[r] = w
    return rs, re, rl, ry, row0


@njit(cache=True)
def _components(rs, re, rl, ry, row0, w, min_size):
    """Union-find over runs: 4-connected runs of one label join; components under ``min_size`` pixels then join
    the neighbour left of (or above) their first pixel in scan order, as in the original SLIC. Returns the new
    label of every run (0..m-1, numbered in scan order) and m."""
    h = row0.shape[0] - 1
    nr = rs.shape[0]
    parent = np.arange(nr)
    for y in range(1, h):
        i, j = row0[y - 1], row0[y]
        ie, je = row0[y], row0[y + 1]
        while i < ie and j < je:  # runs of two rows both partition [0, w): the sweep visits overlapping pairs
            if rl[i] == rl[j]:
                a = _find(parent, i)
                b = _find(parent, j)
                if a != b:
                    if a < b:
                        parent[b] = a
                    else:
                        parent[a] = b
            if re[i] < re[j]:
                i += 1
            elif re[j] < re[i]:
                j += 1
            else:
                i += 1
                j += 1
    size = np.zeros(nr, np.int64)
    for r in range(nr):
        size[_find(parent, r)] += re[r] - rs[r]
    for r in range(nr):
        if parent[r] != r or size[r] >= min_size:
            continue
        # r is the first run of a small component (a root is its component's lowest run index)
        y = ry[r]
        if rs[r] > 0:
            nb = r - 1
        elif y > 0:
            nb = row0[y - 1]
        elif re[r] < w:
            nb = r + 1
        elif h > 1:
            nb = row0[1]
        else:
            continue
        t = _find(parent, nb)
        if t == r:
            continue
        if t < r:
            parent[r] = t
            size[t] += size[r]
        else:
            parent[t] = r
            size[r] += size[t]
    newid = np.full(nr, -1, np.int32)
    value = np.empty(nr, np.int32)
    m = 0
    for r in range(nr):
        root = _find(parent, r)
        if newid[root] < 0:
            newid[root] = m
            m += 1
        value[r] = newid[root]
    return value, m


@njit(cache=True, parallel=True)
def _fill(rs, re, value, row0, w):
    h = row0.shape[0] - 1
    out = np.empty((h, w), np.int32)
    for y in prange(h):
        for r in range(row0[y], row0[y + 1]):
            v = value[r]
            for x in range(rs[r], re[r]):
                out[y, x] = v
    return out


def connect(labels, min_size):
    """Relabel ``labels`` (H, W int32) so that every label is one 4-connected region, merging regions smaller
    than ``min_size`` pixels into a neighbour. Works on runs of equal labels (O(runs) after two parallel scans).
    Returns (new labels int32 0..m-1 numbered in scan order, m)."""
    rs, re, rl, ry, row0 = runs(labels)
    value, m = _components(rs, re, rl, ry, row0, labels.shape[1], min_size)
    return _fill(rs, re, value, row0, labels.shape[1]), m


@njit(cache=True)
def upsample_centres(C, ratio, H, W):
    """Centres found on an image pooled ``ratio`` times more, in the coordinates of this (H, W) one."""
    out = C.copy()
    for c in range(C.shape[0]):
        out[c, 3] = min(H - 1.0, (C[c, 3] + 0.5) * ratio - 0.5)
        out[c, 4] = min(W - 1.0, (C[c, 4] + 0.5) * ratio - 0.5)
    return out


@njit(cache=True, parallel=True)
def segment_means(img, labels, m):
    """Mean colour (m, 3) float64 of every segment of ``img``."""
    h, w = labels.shape
    nb = min(NBANDS, h)
    acc = np.zeros((nb, m, 4), np.float64)
    for band in prange(nb):
        for y in range(band * h // nb, (band + 1) * h // nb):
            for x in range(w):
                c = labels[y, x]
                acc[band, c, 0] += img[y, x, 0]
                acc[band, c, 1] += img[y, x, 1]
                acc[band, c, 2] += img[y, x, 2]
                acc[band, c, 3] += 1.0
    out = np.zeros((m, 3), np.float64)
    for c in range(m):
        n = 0.0
        for band in range(nb):
            n += acc[band, c, 3]
            for t in range(3):
                out[c, t] += acc[band, c, t]
        if n > 0:
            for t in range(3):
                out[c, t] /= n
    return out


@njit(cache=True)
def segment_medians(img, labels, m, batch):
    """Per-channel median colour (m, 3) of every segment, from 8-bit histograms (``batch`` segments at a time, so
    memory stays at batch x 768 counts)."""
    h, w = labels.shape
    out = np.zeros((m, 3), np.float64)
    for lo in range(0, m, batch):
        hi = min(m, lo + batch)
        hist = np.zeros((hi - lo, 3, 256), np.int32)
        count = np.zeros(hi - lo, np.int64)
        for y in range(h):
            for x in range(w):
                c = labels[y, x]
                if c < lo or c >= hi:
                    continue
                c -= lo
                count[c] += 1
                for t in range(3):
                    v = int(img[y, x, t] * 255.0 + 0.5)
                    v = 0 if v < 0 else (255 if v > 255 else v)
                    hist[c, t, v] += 1
        for c in range(hi - lo):
            half = (count[c] + 1) // 2
            for t in range(3):
                s = 0
                for v in range(256):
                    s += hist[c, t, v]
                    if s >= half:
                        out[lo + c, t] = v / 255.0
                        break
    return out


@njit(cache=True, parallel=True)
def draw_edges(labels, out, colour, width):
    """Paint ``width``-pixel boundaries: a pixel whose right or lower neighbour has another label is an edge
    pixel, and a width x width square around it takes ``colour``. Every write is the same colour, so the
    overlapping writes of parallel rows cannot change the result."""
    h, w = labels.shape
    before = (width - 1) // 2
    after = width // 2
    for y in prange(h):
        for x in range(w):
            v = labels[y, x]
            edge = (x + 1 < w and labels[y, x + 1] != v) or (y + 1 < h and labels[y + 1, x] != v)
            if not edge:
                continue
            for yy in range(max(0, y - before), min(h, y + after + 1)):
                for xx in range(max(0, x - before), min(w, x + after + 1)):
                    out[yy, xx, 0] = colour[0]
                    out[yy, xx, 1] = colour[1]
                    out[yy, xx, 2] = colour[2]
