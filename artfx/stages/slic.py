"""slic: SLIC superpixels, each filled with its mean (or median) colour, boundaries optionally drawn.

scikit-image's ``slic`` takes ~0.48 s for 1000 segments on a 1.2-MP photo on the 2-core dev machine; this stage
runs its own numba SLIC (``_slic_kernels.py``) that iterates on a 2x/4x average-pooled image first (the centres
barely move at full resolution once settled there), then refines at full resolution, restricted to each centre's
2S x 2S window as in the original algorithm, in parallel over row bands, and enforces connectivity on runs.

Side output: ``labels`` (int32 HxW, 0..m-1, every label one 4-connected region, numbered in scan order).
"""

from __future__ import annotations

import math
from typing import Literal

import numpy as np
from pydantic import Field, field_validator

from artfx.colours import parse_hex
from artfx.stage import Context, Image, Params

class SlicParams(Params):
    n: int = Field(400, ge=1, le=1_000_000, description="Number of superpixels wanted (the result is close to it).")
    compactness: float = Field(
        10.0, gt=0, le=10_000, description="Shape vs colour: higher gives squarer superpixels, lower follows colour."
    )
    sigma: float = Field(0.0, ge=0, le=100, description="Gaussian blur (pixels) of the image used for clustering.")
    space: Literal["lab", "rgb"] = Field("lab", description="Colour space for clustering: lab or rgb.")
    iterations: int = Field(
        7, ge=1, le=100, description="SLIC iterations (all but the last on reduced images when segments are large; "
        "video frames after a shot's first: at most 3, at full size, from the previous frame's centres)."
    )
    fill: Literal["mean", "median"] = Field("mean", description="Colour of each superpixel: mean or median.")
    edges: bool = Field(False, description="Draw the superpixel boundaries.")
    edge_color: str = Field("#000000", description="Boundary colour, #rrggbb.")
    edge_width: int = Field(1, ge=1, le=100, description="Boundary width in pixels.")

    aliases = {"iters": "iterations"}  # 0.1's name, accepted with a warning until 0.3

    @field_validator("edge_color")
    @classmethod
    def _check_colour(cls, v: str) -> str:
        parse_hex(v)
        return v


_LAB_TABLE: np.ndarray | None = None


def lab_table() -> np.ndarray:
    """CIELAB of every colour on a 64-level-per-channel RGB grid, (3, 64**3) float32 (the shared kernels'
    conversion, built once per process). Per-pixel lookups are ~5x faster than converting 12 MP with OpenCV
    (0.2-0.3 s, plus 0.35 s to split the channels)."""
    global _LAB_TABLE
    if _LAB_TABLE is None:
        from artfx.stages._kernels import to_space

        levels = np.arange(64, dtype=np.float64) / 63.0
        r, g, b = np.meshgrid(levels, levels, levels, indexing="ij")
        grid = np.stack([r, g, b], axis=-1).reshape(-1, 3)
        _LAB_TABLE = np.ascontiguousarray(to_space(grid, True, 1.0).T.astype(np.float32))
    return _LAB_TABLE


def schedule(step: float, iterations: int) -> list[tuple[int, int]]:
    """Iterations per pooling level, coarse to fine, as [(factor, iterations), ...], ending at full resolution.

    SLIC's centres settle in a few iterations and move little afterwards, so the early iterations run on
    average-pooled images: first with ~4 pixels per grid step, then ~8, then one full-resolution assignment pass.
    Measured on the 1.2-MP photo, n=1000: 10 full-resolution iterations 21.27 dB; (8x: 3, 4x: 3, 1x: 1)
    21.42 dB in half the time."""
    fa = 1
    while fa < 16 and step / (2 * fa) >= 3.5:
        fa *= 2
    fb = 1
    while fb < 8 and step / (2 * fb) >= 7.0:
        fb *= 2
    if iterations == 1 or fa == 1:
        return [(1, iterations)]
    a = (iterations - 1) // 2
    levels = [(fa, a), (fb, iterations - 1 - a), (1, 1)]
    merged: list[tuple[int, int]] = []
    for f, n in levels:
        if n <= 0:
            continue
        if merged and merged[-1][0] == f:
            merged[-1] = (f, merged[-1][1] + n)
        else:
            merged.append((f, n))
    return merged


def segment(
    image: np.ndarray,
    n: int,
    compactness: float = 10.0,
    sigma: float = 0.0,
    lab: bool = True,
    iterations: int = 7,
    min_size_factor: float = 0.25,
    levels: list[tuple[int, int]] | None = None,
    carried: np.ndarray | None = None,
    centres_out: list | None = None,
    prefer: np.ndarray | None = None,
    noise: float = 0.0,
) -> tuple[np.ndarray, int]:
    """SLIC labels of ``image`` (float32 H, W, 3 in [0, 1]): (int32 HxW 0..m-1 contiguous segments, m).

    ``carried``: centres (k, 5) = [c0, c1, c2, y, x] from the previous video frame, already moved by the flow:
    the iterations start from them (gaps filled with new grid centres) at full resolution, and ``prefer``
    (H, W int32: each pixel's carried centre, index into ``carried``, -1 for none) makes pixels keep their centre
    unless another is clearly closer (by ``STICKY`` compactness^2, plus (``NOISE_STICKY`` ``noise``)^2 for an input
    that changes by ``noise`` CIELAB units on its own from frame to frame). ``centres_out``: a list that receives
    (the final centres that still own pixels, the labels as indices into them, -1 for the others), for the next
    frame."""
    from artfx.stages import _slic_kernels as K

    H, W = image.shape[:2]
    src = np.ascontiguousarray(image, np.float32)
    if sigma > 0:
        import cv2

        src = cv2.GaussianBlur(src, (0, 0), sigmaX=sigma, sigmaY=sigma, borderType=cv2.BORDER_REFLECT)
    n = max(1, min(n, H * W))
    step = math.sqrt(H * W / n)
    ny = max(1, min(H, round(H / step)))
    nx = max(1, min(W, round(W / step)))
    F = K.features(src, lab_table() if lab else np.zeros((3, 1), np.float32), lab)
    del src
    levels = schedule(step, iterations) if levels is None else levels
    C = None
    labels = None
    cur = 1
    row_start = np.arange(ny + 1, dtype=np.int64) * nx
    sticky, bonus = np.full((1, 1), -1, np.int32), 0.0
    if carried is not None:
        C, row_start, labels, origin = _start_from(carried, F, ny, nx, step)
        levels = [(1, min(iterations, CARRIED_ITERATIONS))]
        if prefer is not None and prefer.shape == (H, W):
            new_index = np.full(len(carried) + 1, -1, np.int32)  # carried index -> index in C (last: none)
            new_index[origin[origin >= 0]] = np.flatnonzero(origin >= 0).astype(np.int32)
            sticky = np.ascontiguousarray(new_index[np.where(prefer >= 0, prefer, len(carried))])
            bonus = STICKY * compactness**2 + (NOISE_STICKY * noise) ** 2
    for li, (factor, its) in enumerate(levels):
        last = li == len(levels) - 1
        # pool from the previous (finer-than-needed) level is not possible going coarse to fine: pool from F
        P = F if factor == 1 else K.pool(F[0], F[1], F[2], factor.bit_length() - 1)
        h, w = P[0].shape
        s = step / factor
        if C is None:
            C = K.grid_centres(P[0], P[1], P[2], ny, nx)
            labels = K.init_labels(h, w, ny, nx)
        elif factor != cur:
            C = K.upsample_centres(C, cur / factor, h, w)
        shift = (cur // factor).bit_length() - 1 if factor != cur else 0
        cur = factor
        for i in range(its):
            out = np.empty((h, w), np.int32)
            # the very last pass only assigns: its centres are not used again
            K.iterate(*P, C, ny, nx, s, (compactness / s) ** 2, labels, shift, out, not (last and i == its - 1),
                      row_start, sticky, bonus)
            labels, shift = out, 0
        del P
    del F
    min_size = max(1, int(min_size_factor * H * W / (ny * nx)))
    if centres_out is not None:
        alive = np.bincount(labels.ravel(), minlength=len(C)) >= max(1, min_size // 2)
        index = np.where(alive, np.cumsum(alive) - 1, -1).astype(np.int32)
        centres_out.append((C[alive].copy(), index[labels]))
    return K.connect(labels, min_size)


CARRIED_ITERATIONS = 3  # video: full-resolution iterations from the previous frame's centres
STICKY = 2.0  # video: a pixel keeps its carried centre unless another is closer by this times compactness^2...
# ...plus the square of this times the input's own frame-to-frame change (Temporal.noise, CIELAB units): on camera
# footage noise otherwise moves the boundaries. scripts/bench_video.py, slic n=150, 30 frames at 640x360, warping
# error x1000 / mean dE00 to the input: hand-held clip, frame by frame 3.43 / 5.70, carried labels by nearest
# neighbour 1.22 / 5.83, by Temporal.warp_labels 1.13 / 5.81, with this term at 5: 0.96 / 5.95 (before warp_labels,
# at 3: 1.12 / 5.88, at 10: 0.93 / 6.02); camera-like bunny 1.80 / 6.37, 0.72 / 6.52, 0.63 / 6.50, 0.51 / 6.55.
NOISE_STICKY = 5.0


def _start_from(carried: np.ndarray, F, ny: int, nx: int, step: float):
    """(centres sorted into grid rows, row_start, first labels) from centres carried along the flow: those that
    left the frame dropped, near-duplicates (closer than 0.4 grid steps, where the picture shrinks) merged, and
    a fresh grid centre added wherever no centre is within 0.75 grid steps (where new picture comes in)."""
    import cv2

    from artfx.stages import _slic_kernels as K

    H, W = F[0].shape
    origin = np.flatnonzero((carried[:, 3] >= 0) & (carried[:, 3] <= H - 1) & (carried[:, 4] >= 0)
                            & (carried[:, 4] <= W - 1))
    cell = max(1.0, 0.4 * step)
    _, first = np.unique(np.floor(carried[origin, 3:5] / cell).astype(np.int64), axis=0, return_index=True)
    origin = origin[np.sort(first)]
    C = carried[origin]
    grid = K.grid_centres(F[0], F[1], F[2], ny, nx)
    seeds = np.full((H, W), 255, np.uint8)
    seeds[np.rint(C[:, 3]).astype(int), np.rint(C[:, 4]).astype(int)] = 0
    dist = cv2.distanceTransform(seeds, cv2.DIST_L2, 3) if len(C) else np.full((H, W), np.inf, np.float32)
    gaps = grid[dist[grid[:, 3].astype(int), grid[:, 4].astype(int)] > 0.75 * step]
    C = np.concatenate([C, gaps]) if len(gaps) else C
    origin = np.concatenate([origin, np.full(len(gaps), -1, np.int64)])
    rows = np.minimum(ny - 1, (C[:, 3] * ny / H).astype(np.int64))
    order = np.argsort(rows, kind="stable")
    C, rows, origin = np.ascontiguousarray(C[order]), rows[order], origin[order]
    row_start = np.searchsorted(rows, np.arange(ny + 1)).astype(np.int64)
    seeds[:] = 255
    seeds[np.rint(C[:, 3]).astype(int), np.rint(C[:, 4]).astype(int)] = 0
    _, voronoi = cv2.distanceTransformWithLabels(seeds, cv2.DIST_L2, 3, labelType=cv2.DIST_LABEL_PIXEL)
    index = np.zeros(len(C) + 1, np.int32)  # label of the zero pixel -> centre (duplicates: the last one)
    index[voronoi[np.rint(C[:, 3]).astype(int), np.rint(C[:, 4]).astype(int)]] = np.arange(len(C), dtype=np.int32)
    return C, row_start, np.ascontiguousarray(index[voronoi]), origin


class SlicStage:
    name = "slic"
    summary = "SLIC superpixels filled with their mean or median colour, boundaries optionally drawn"
    Params = SlicParams

    def apply(self, image: Image, params: SlicParams, ctx: Context) -> Image:
        from artfx.stages import _slic_kernels as K
        from artfx.stages._kernels import first_run_notice

        first_run_notice(K.__file__, ctx.log, "slic")
        t = ctx.temporal
        carried, keep, prefer, noise = None, None, None, 0.0
        if t is not None:
            keep = []
            prev = t.state.get("centres")
            if not t.shot_start and prev is not None and len(prev):
                carried = prev.copy()  # video: the previous frame's centres and labels, moved by the flow
                carried[:, 3:5] = t.move(prev[:, 3:5], image.shape[0], image.shape[1])
                prefer = t.warp_labels(t.state["labels"]).astype(np.int32)
                prefer[t.mask_at(*prefer.shape) == 0] = -1
                from artfx.stages._kernels import to_space

                noise = t.noise(image, lambda rgb: to_space(rgb, params.space == "lab", 1.0))
        with K.threads_for(image.shape[0] * image.shape[1]):
            labels, m = segment(
                image, params.n, params.compactness, params.sigma, params.space == "lab", params.iterations,
                carried=carried, centres_out=keep, prefer=prefer, noise=noise,
            )
            if t is not None:
                t.state["centres"], t.state["labels"] = keep[0]
            ctx.progress(1, 2, segments=m)
            img = np.ascontiguousarray(image, np.float32)
            if params.fill == "median":
                colours = K.segment_medians(img, labels, m, 20_000)
            else:
                colours = K.segment_means(img, labels, m)
            out = np.empty(image.shape, np.float32)
            K.paint(labels, np.clip(colours, 0.0, 1.0).astype(np.float32), out)
            if params.edges:
                K.draw_edges(labels, out, parse_hex(params.edge_color), params.edge_width)
        ctx.progress(2, 2, segments=m)
        ctx.emit("labels", labels)
        return out


stage = SlicStage()
