"""numba kernels and helpers shared by the classical stages: sRGB -> CIELAB, painting labels with colours, and
the thread count per call."""

from __future__ import annotations

from contextlib import contextmanager

import numpy as np
from numba import njit, prange


# ---- colour conversion (float64, sRGB in [0,1] -> CIELAB D65) -------------------------------------------------
@njit(cache=True, inline="always")
def _lin(c):
    if c <= 0.04045:
        return c / 12.92
    return ((c + 0.055) / 1.055) ** 2.4


@njit(cache=True, inline="always")
def _f(t):
    if t > 0.008856451679035631:
        return t ** (1.0 / 3.0)
    return t * 7.787037037037037 + 16.0 / 116.0


@njit(cache=True)
def rgb_to_lab_one(r, g, b):
    r, g, b = _lin(r), _lin(g), _lin(b)
    x = (0.412453 * r + 0.357580 * g + 0.180423 * b) / 0.950456
    y = 0.212671 * r + 0.715160 * g + 0.072169 * b
    z = (0.019334 * r + 0.119193 * g + 0.950227 * b) / 1.088754
    fx, fy, fz = _f(x), _f(y), _f(z)
    return 116.0 * fy - 16.0, 500.0 * (fx - fy), 200.0 * (fy - fz)


@njit(cache=True)
def to_space(rgb, lab, cw):
    """(m, 3) float64 sRGB in [0,1] -> (m, 3) float64 in the clustering space (Lab, or RGB on a 0..100 scale)."""
    m = rgb.shape[0]
    out = np.empty((m, 3), np.float64)
    for i in range(m):
        if lab:
            L, a, b = rgb_to_lab_one(rgb[i, 0], rgb[i, 1], rgb[i, 2])
            out[i, 0], out[i, 1], out[i, 2] = L, a * cw, b * cw
        else:
            out[i, 0], out[i, 1], out[i, 2] = rgb[i, 0] * 100.0, rgb[i, 1] * 100.0, rgb[i, 2] * 100.0
    return out


@njit(cache=True, parallel=True)
def paint(labels, colours, out):
    """out[y, x] = colours[labels[y, x]] for an int label map and a (n, 3) colour table."""
    h, w = labels.shape
    for y in prange(h):
        for x in range(w):
            c = labels[y, x]
            out[y, x, 0] = colours[c, 0]
            out[y, x, 1] = colours[c, 1]
            out[y, x, 2] = colours[c, 2]


@contextmanager
def threads_for(pixels: int, min_pixels: int = 1 << 18):
    """Pick numba's thread count for one call, like OpenMP's dynamic threads: one thread for small images (below
    ~260k pixels a parallel region costs more than it saves) and when the machine's other load leaves no core
    free (each parallel region then waits for a preempted thread: 1.2-MP slic measured 0.18 s on 2 threads vs
    0.08 s on 1 with two other busy processes). Results do not depend on the thread count."""
    import os

    import numba

    before = numba.get_num_threads()
    n = before
    if pixels < min_pixels:
        n = 1
    else:
        try:  # the 1-minute load includes this process: count it as one
            free = (os.cpu_count() or 1) - os.getloadavg()[0] + 1.0
            n = max(1, min(before, int(free + 0.5)))
        except OSError:
            pass
    numba.set_num_threads(n)
    try:
        yield
    finally:
        numba.set_num_threads(before)


def first_run_notice(module_file: str, log, what: str) -> None:
    """Say once, before numba compiles a kernel module that has no cache yet, that the first run is slow
    (10-30 s on a laptop) so that nobody thinks artfx hangs. ``make`` compiles them at install
    (``python -m artfx.warmup``)."""
    from pathlib import Path

    path = Path(module_file)
    cache = path.with_name("__pycache__")
    if not any(cache.glob(f"{path.stem}.*.nbi")):
        log.warning("first run: compiling %s's numba kernels (once; 10-30 s)", what)
