"""numba thread count per call, shared by the classical stages' kernels."""

from __future__ import annotations

from contextlib import contextmanager


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
