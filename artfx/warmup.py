"""Compile (and cache) the numba kernels of the built-in stages ahead of time: ``python -m artfx.warmup``.

The Makefile runs it after installing, so the first real run does not spend 10-30 s compiling. Each stage runs
on a tiny image with the options that reach each of its kernels."""

from __future__ import annotations

import time


def main() -> None:
    import numpy as np

    import artfx

    y, x = np.mgrid[0:40, 0:56] / 56.0
    photo = np.dstack([x, y, 1 - x]).astype(np.float32)
    runs = [
        ("quantize", {"k": 4}), ("quantize", {"k": 4, "dither": "floyd-steinberg"}),
        ("quantize", {"k": 4, "space": "rgb", "sample": 500}),
        ("slic", {"n": 12}), ("slic", {"n": 12, "fill": "median", "edges": True}),
        ("primitive", {"n": 2, "shape": "combo", "candidates": 8, "restarts": 2}),
        ("primitive", {"n": 2, "shape": "bezier", "method": "shrink", "candidates": 8, "restarts": 2}),
    ]
    start = time.perf_counter()
    for name, params in runs:
        getattr(artfx, name)(photo, device="cpu", **params)
    big = np.tile(photo, (12, 12, 1))  # above the one-thread threshold: the parallel paths too
    artfx.quantize(big, k=4)
    artfx.slic(big, n=50)
    print(f"artfx: kernels compiled and cached in {time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()
