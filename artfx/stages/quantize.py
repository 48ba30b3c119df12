"""quantize: k-means colour quantization to ``k`` colours (or to a given palette), optionally dithered.

How it runs (figures on the 2-core dev machine, 12-MP photo, k=16): every pixel goes into a 6-bit-per-channel
colour histogram, a weighted k-means (greedy k-means++ seeding, Lloyd to convergence) runs on the occupied cells in
CIELAB, and pixels take their palette index through a per-cell lookup table, resolved exactly per pixel only
where a palette boundary crosses the cell. scikit-learn's KMeans on all pixels takes ~10 s for the same quality;
on a 100k-pixel sample it still spends ~0.26 s in the fit alone, so the stage uses its own numba kernels
(``_quantize_kernels.py``).

The palette is rounded to the output's steps (8-bit, or 16-bit with ``--depth 16``), so a PNG written from the
output holds exactly the palette's colours. Side outputs: ``palette`` (float32 Kx3 sRGB in [0, 1]) and ``labels`` (int32 HxW indices into it).
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal, Optional

import numpy as np
from pydantic import Field, field_validator

from artfx.colours import is_hex_list, parse_hex_list
from artfx.stage import Context, Image, Params, output_file

PALETTE_SUFFIXES = (".png", ".gpl")
CHROMA = 0.8  # weight of a*, b* against L* in the clustering distance (space=lab); see _fit


class QuantizeParams(Params):
    k: int = Field(8, ge=2, le=256, description="Number of colours (2..256); ignored when palette lists colours.")
    space: Literal["lab", "rgb"] = Field(
        "lab", description="Colour space for clustering and matching: lab (perceptual) or rgb."
    )
    dither: Literal["none", "floyd-steinberg"] = Field(
        "none", description="Dithering: none, or floyd-steinberg error diffusion (slower, sequential)."
    )
    palette: str = Field(
        "",
        description="Fixed palette: an image to take k colours from (palette transfer), or colours "
        "#rrggbb|#rrggbb|...; empty = fit k colours to the input.",
    )
    sample: int = Field(
        0,
        ge=0,
        description="Pixels used to fit the palette (a seeded random sample); 0 = every pixel.",
    )
    iterations: int = Field(100, ge=1, le=1000,
                            description="Most k-means (Lloyd) iterations; stops earlier on convergence.")
    inits: int = Field(1, ge=1, le=50, description="k-means restarts from new seeds; the lowest-error palette is kept.")
    palette_out: Optional[Path] = output_file(
        "Write the palette to this file: .png (a swatch) or .gpl (a GIMP palette)."
    )

    aliases = {"iters": "iterations"}  # 0.1's name, accepted with a warning until 0.3

    @field_validator("palette")
    @classmethod
    def _check_palette(cls, v: str) -> str:
        v = v.strip()
        if not v:
            return v
        if is_hex_list(v):
            parse_hex_list(v)
        elif not Path(v).expanduser().is_file():
            raise ValueError(f"no such image file {v!r} (give an image path or colours like #ff8800|#004488)")
        return v

    @field_validator("palette_out")
    @classmethod
    def _check_palette_out(cls, v: Optional[Path]) -> Optional[Path]:
        if v is not None and Path(v).suffix.lower() not in PALETTE_SUFFIXES:
            raise ValueError(f"{str(v)!r} must end in .png (swatch) or .gpl (GIMP palette)")
        return v


# ---- the algorithm -------------------------------------------------------------------------------------------
def _to_space(rgb: np.ndarray, lab: bool) -> np.ndarray:
    from artfx.stages import _quantize_kernels as K

    return K.to_space(np.ascontiguousarray(rgb, np.float64), lab, CHROMA)


def _histogram(image: np.ndarray, sample: int, salt: int):
    """(colour code per pixel HxW int32, occupied cells, their mean sRGB (float64), their fitting weights)."""
    from artfx.stages import _quantize_kernels as K

    h, w = image.shape[:2]
    img = np.ascontiguousarray(image, np.float32)
    cell_of_pixel = np.empty((h, w), np.int32)
    stride = 1 if sample <= 0 or sample >= h * w else max(1, (h * w) // sample)
    import numba

    # chunks = threads: the accumulators are per chunk, and integer sums make the result thread-count independent
    acc, sampled = K.histogram(img, cell_of_pixel, stride, salt & 0x7FFFFFFF, numba.get_num_threads())
    cells = np.flatnonzero(acc[:, 0]).astype(np.int64)
    mean_rgb = acc[cells, 1:] / (255.0 * acc[cells, :1])
    weights = sampled[cells].astype(np.float64)
    if weights.sum() == 0:  # a tiny sample of a tiny image can miss every pixel: fit on all of them
        weights = acc[cells, 0].astype(np.float64)
    return cell_of_pixel, cells, mean_rgb, weights


def fit_palette(
    image: np.ndarray, k: int, lab: bool, rng: np.random.Generator, sample: int = 0, iters: int = 100, inits: int = 1,
    depth: int = 8,
) -> np.ndarray:
    """k colours of ``image`` by weighted k-means on its colour histogram: float32 (<=k, 3) sRGB, on the steps
    of ``depth`` bits."""
    _, cells, mean_rgb, weights = _histogram(image, sample, int(rng.integers(0, 2**31 - 1)))
    return _fit(cells, mean_rgb, weights, k, lab, rng, iters, inits, depth)


def _fit(cells, mean_rgb, weights, k, lab, rng, iters, inits=1, depth=8) -> np.ndarray:
    from artfx.stages import _quantize_kernels as K

    # Clustering runs in CIELAB with a* and b* weighted by CHROMA = 0.8: plain Lab distances (CIE76) overweight
    # chroma against CIEDE2000, which users judge by. Mean dE00 on the 12-MP bench photo, mean of 3 seeds,
    # k = 8 / 16: weight 1.0: 7.82 / 5.79; 0.8: 7.69 / 5.73 (scikit-learn full RGB k-means: 5.97 at k=16).
    keep = weights > 0
    pts_rgb, w = mean_rgb[keep], weights[keep]
    pts = _to_space(pts_rgb, lab)
    n_local = 2 + int(np.log(k))
    # stop when the centres move less than scikit-learn's default tolerance (1e-4 of the data's mean variance)
    mean = np.average(pts, axis=0, weights=w)
    tol = 1e-4 * float(np.mean(np.average((pts - mean) ** 2, axis=0, weights=w)))
    best, best_err = None, np.inf
    for _ in range(inits):  # restarts: local optima differ by up to ~0.3 dE00 (but Lab error != dE00)
        seeds = K.kmeans_pp(pts, w, k, rng.random(k * n_local), n_local)
        centers, _, err, _ = K.lloyd(pts, w, seeds, iters, tol)
        if err < best_err:
            best, best_err = centers, err
    centers = best
    rgb = _lab_to_rgb(centers) if lab else np.clip(centers / 100.0, 0.0, 1.0)
    return _round_palette(rgb, depth)


def _lab_to_rgb(lab: np.ndarray) -> np.ndarray:
    """CIELAB (D65) -> sRGB in [0, 1] (clipped), float64, inverse of the kernels' conversion."""
    L, a, b = lab[:, 0], lab[:, 1] / CHROMA, lab[:, 2] / CHROMA
    fy = (L + 16.0) / 116.0
    fx = fy + a / 500.0
    fz = fy - b / 200.0

    def finv(t):
        return np.where(t > 6.0 / 29.0, t**3, (t - 16.0 / 116.0) / 7.787037037037037)

    xyz = np.stack([finv(fx) * 0.950456, finv(fy), finv(fz) * 1.088754], axis=1)
    m = np.array(
        [[0.412453, 0.357580, 0.180423], [0.212671, 0.715160, 0.072169], [0.019334, 0.119193, 0.950227]]
    )
    lin = np.clip(xyz @ np.linalg.inv(m).T, 0.0, 1.0)
    return np.where(lin <= 0.0031308, 12.92 * lin, 1.055 * lin ** (1 / 2.4) - 0.055)


def _round_palette(rgb: np.ndarray, depth: int = 8) -> np.ndarray:
    """Round to the output's steps (8 or 16 bits, so a PNG written from the output has exactly these colours)
    and drop duplicates, keeping first-seen order."""
    top = 65535.0 if depth == 16 else 255.0
    q = np.clip(np.rint(np.asarray(rgb, np.float64) * top), 0, top).astype(np.int64)
    _, first = np.unique(q, axis=0, return_index=True)
    q = q[np.sort(first)]
    return (q / top).astype(np.float32)


def quantize(
    image: np.ndarray,
    palette: np.ndarray,
    lab: bool,
    dither: bool = False,
    cells: tuple | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Map every pixel to its nearest palette colour (in Lab or RGB). Returns (image float32, labels int32)."""
    from artfx.stages import _quantize_kernels as K

    h, w = image.shape[:2]
    img = np.ascontiguousarray(image, np.float32)
    pal64 = palette.astype(np.float64)
    pal_space = _to_space(pal64, lab)
    out = np.empty((h, w, 3), np.float32)
    if dither:
        labels = np.empty((h, w), np.int32)
        K.floyd_steinberg(img, pal64, pal_space, lab, CHROMA, labels, out)
        return out, labels
    if cells is None:
        cells = _histogram(img, 0, 0)
    labels, occ, mean_rgb, _ = cells
    lut, sure, sub = K.cell_lut(occ, _to_space(mean_rgb, lab), pal_space, lab, *K.lab_tables(), CHROMA)
    K.assign(labels, occ, lut, sure, sub)  # labels overwrite the cell indices in place
    K.paint(labels, palette.astype(np.float32), out)
    return out, labels


STICKY = 2.0  # video: a pixel keeps last frame's colour unless another is closer by this much (Lab units)...
NOISE_STICKY = 3.0  # ...or by this many times the input's own frame-to-frame change (Temporal.noise), if more,
NOISE_CAP = 0.3  # but never more than this share of the typical distance between neighbouring palette colours


def _sticky(image, palette, labels, lab, temporal) -> tuple[np.ndarray, np.ndarray]:
    """Video: where the flow is reliable, a pixel keeps the palette colour it had on the previous frame (its
    label carried along the flow) unless the nearest colour is closer by more than a margin: pixels near the
    boundary between two palette colours stop flickering between them, at a cost of at most the margin in error.

    The margin is ``STICKY``, or ``NOISE_STICKY`` times how much the input itself changes between the frames
    where the flow is trusted (:meth:`Temporal.noise`: sensor noise and compression on camera footage, 1.2-2
    Lab units on the benchmark's camera-like clips, 0.15 on the render), whichever is more, but at most
    ``NOISE_CAP`` of the median distance from a palette colour to its nearest neighbour (where noise is as large
    as the palette's steps, a wider margin would freeze every pixel). Noise alone then does not flip a pixel; a
    real change does. Labels travel by :meth:`Temporal.warp_labels` (boundaries move by fractions of a pixel).

    scripts/bench_video.py, quantize k=6, 30 frames at 640x360, warping error x1000 / mean dE00 to the input:
    hand-held clip, frame by frame 3.45 / 7.40; margin 2 with nearest-neighbour labels 2.33 / 7.46; margin 2
    2.29 / 7.46; noise-scaled 1.31 / 7.58. Camera-like bunny: 5.58 / 8.98; 2.43 / 9.30; 2.39 / 9.30; 1.40 /
    9.41. Tried and left out: a wider margin (5x noise: 1.15 / 7.75), keeping the carried label wherever the
    input did not change, a temporally filtered input (both no better for more error), and deciding on a
    slightly blurred input (0.95 / 7.71 on the clip, but +11-16 % dE00 on small textured clips)."""
    h, w = labels.shape
    prev = temporal.warp_labels(temporal.state["labels"]).astype(np.int64)
    valid = temporal.mask_at(h, w) > 0
    prev = np.clip(prev, 0, len(palette) - 1)
    px = _to_space(image.reshape(-1, 3), lab)
    pal = _to_space(palette.astype(np.float64), lab)
    gaps = np.sqrt(((pal[:, None] - pal[None]) ** 2).sum(-1)) + np.diag(np.full(len(pal), np.inf))
    spacing = float(np.median(gaps.min(1))) if len(pal) > 1 else 0.0
    noise = temporal.noise(image, lambda rgb: _to_space(rgb, lab))
    margin = max(STICKY, min(NOISE_STICKY * noise, NOISE_CAP * spacing))
    flat_new, flat_prev = labels.ravel(), prev.ravel()
    d_new = np.sqrt(((px - pal[flat_new]) ** 2).sum(1))
    d_prev = np.sqrt(((px - pal[flat_prev]) ** 2).sum(1))
    keep = valid.ravel() & (d_prev <= d_new + margin)
    new = np.where(keep, flat_prev, flat_new).astype(np.int32).reshape(h, w)
    return palette[new].astype(np.float32), new


# ---- side-output files ---------------------------------------------------------------------------------------
def gpl_text(palette: np.ndarray, name: str = "artfx") -> str:
    """A GIMP palette (.gpl) for ``palette`` (float (N, 3) in [0, 1])."""
    lines = ["GIMP Palette", f"Name: {name}", "Columns: 8", "#"]
    for r, g, b in np.rint(np.asarray(palette, np.float64) * 255).astype(int):
        lines.append(f"{r:3d} {g:3d} {b:3d}\t#{r:02x}{g:02x}{b:02x}")
    return "\n".join(lines) + "\n"


def swatch_image(palette: np.ndarray, cell: int = 32, columns: int = 8) -> np.ndarray:
    """A uint8 swatch image: one ``cell``-pixel square per colour, ``columns`` per row."""
    n = len(palette)
    cols = min(columns, n)
    rows = -(-n // cols)
    q = np.rint(np.asarray(palette, np.float64) * 255).astype(np.uint8)
    out = np.full((rows * cell, cols * cell, 3), 255, np.uint8)
    for i, c in enumerate(q):
        y, x = divmod(i, cols)
        out[y * cell : (y + 1) * cell, x * cell : (x + 1) * cell] = c
    return out


def _write_palette(ctx: Context, path: Path, palette: np.ndarray) -> None:
    if path.suffix.lower() == ".gpl":
        ctx.save(path, gpl_text(palette, name=path.stem))
        return
    from PIL import Image as PILImage

    sw = swatch_image(palette)
    ctx.save(path, lambda tmp: PILImage.fromarray(sw).save(tmp, format="PNG"))


# ---- the stage -----------------------------------------------------------------------------------------------
class QuantizeStage:
    name = "quantize"
    summary = "k-means colour quantization to k colours or a given palette, optionally dithered"
    Params = QuantizeParams

    def reads(self, params: QuantizeParams) -> list[Path]:
        """Files this step reads (protected from being overwritten like the input)."""
        spec = params.palette.strip()
        return [Path(spec).expanduser()] if spec and not is_hex_list(spec) else []

    def apply(self, image: Image, params: QuantizeParams, ctx: Context) -> Image:
        from artfx.stages import _quantize_kernels as K
        from artfx.stages._kernels import first_run_notice

        first_run_notice(K.__file__, ctx.log, "quantize")
        with K.threads_for(image.shape[0] * image.shape[1]):
            return self._apply(image, params, ctx)

    def _apply(self, image: Image, params: QuantizeParams, ctx: Context) -> Image:
        lab = params.space == "lab"
        dither = params.dither == "floyd-steinberg"
        rng = ctx.rng
        cells = None
        temporal = ctx.temporal
        spec = params.palette.strip()
        if is_hex_list(spec):
            palette = _round_palette(parse_hex_list(spec), ctx.depth)
        elif temporal is not None and not temporal.shot_start and "palette" in temporal.state:
            palette = temporal.state["palette"]  # video: one palette per shot, so colours do not jump
        elif spec:
            other = ctx.read_image(spec).rgb
            palette = fit_palette(other, params.k, lab, rng, params.sample, params.iterations, params.inits, ctx.depth)
        else:
            salt = int(rng.integers(0, 2**31 - 1))
            cells = _histogram(image, params.sample, salt)
            occ, mean_rgb, weights = cells[1], cells[2], cells[3]
            palette = _fit(occ, mean_rgb, weights, params.k, lab, rng, params.iterations, params.inits, ctx.depth)
            if dither:
                cells = None
        ctx.progress(1, 2)
        out, labels = quantize(image, palette, lab, dither, cells)
        if temporal is not None:
            if not dither and not temporal.shot_start and "labels" in temporal.state:
                out, labels = _sticky(image, palette, labels, lab, temporal)
            temporal.state["palette"], temporal.state["labels"] = palette, labels
        ctx.progress(2, 2, colours=len(palette))
        ctx.emit("palette", palette)
        ctx.emit("labels", labels)
        if params.palette_out is not None:
            _write_palette(ctx, Path(params.palette_out), palette)
        return out


stage = QuantizeStage()
