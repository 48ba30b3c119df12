"""Encoding: the format follows the output's suffix; PNG outputs carry text metadata (the recipe)."""

from __future__ import annotations

import io
import logging
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

import numpy as np
from PIL import Image

from artfx.errors import OutputError
from artfx.io import png
from artfx.io.files import atomic_write, check_writable

log = logging.getLogger("artfx.io")

FORMATS = {
    ".png": "PNG",
    ".gif": "GIF",
    ".jpg": "JPEG",
    ".jpeg": "JPEG",
    ".tif": "TIFF",
    ".tiff": "TIFF",
    ".webp": "WEBP",
    ".bmp": "BMP",
}
"""Output suffixes and the format each one writes."""

_DEPTH16_FORMATS = ("PNG", "TIFF")
_ALPHA_FORMATS = ("PNG", "TIFF", "WEBP")
_FORMAT_ALIASES = {"JPG": "JPEG", "TIF": "TIFF"}


def output_format(dest: str | Path) -> str:
    """The format written for ``dest`` (from its suffix; ``"-"`` is PNG), or OutputError naming the choices."""
    if str(dest) == "-":
        return "PNG"
    suffix = Path(dest).suffix.lower()
    if suffix not in FORMATS:
        choices = " ".join(FORMATS)
        what = f"suffix {suffix!r}" if suffix else "no suffix"
        raise OutputError(f"{dest}: {what} is not an image format artfx writes (use one of {choices})")
    return FORMATS[suffix]


def write_image(
    dest: str | Path,
    rgb: np.ndarray,
    *,
    alpha: np.ndarray | None = None,
    depth: int = 8,
    metadata: dict[str, str] | None = None,
    protected: Iterable[Path] = (),
    force: bool = False,
    quality: int | None = None,
) -> None:
    """Encode ``rgb`` (float (H, W, 3) in [0, 1]) in the format of ``dest``'s suffix and write it atomically;
    ``"-"`` writes a PNG to standard output. ``metadata`` becomes PNG text chunks (ignored by other formats).

    >>> write_image("art.png", image, metadata={RECIPE_KEY: json.dumps(recipe)})   # doctest: +SKIP
    """
    fmt = output_format(dest)
    protected = tuple(protected)
    check_writable(dest, protected, force)  # before encoding, which may take a while
    data = encode_image(rgb, alpha=alpha, depth=depth, format=fmt, metadata=metadata, quality=quality)
    atomic_write(dest, data, protected=protected, force=force)


def encode_image(
    rgb: np.ndarray,
    *,
    alpha: np.ndarray | None = None,
    depth: int = 8,
    format: str = "PNG",
    metadata: dict[str, str] | None = None,
    quality: int | None = None,
) -> bytes:
    """The encoded file content. Values are clipped to [0, 1] and rounded to the nearest integer level. An 8-bit
    PNG of at most 256 colours (a quantized picture) is written as an indexed PNG, exactly; a GIF always is."""
    fmt = format.upper()
    fmt = _FORMAT_ALIASES.get(fmt, fmt)
    if fmt not in set(FORMATS.values()):
        raise OutputError(f"cannot write format {format!r} (artfx writes {', '.join(sorted(set(FORMATS.values())))})")
    if depth not in (8, 16):
        raise OutputError(f"bit depth {depth} is not supported (use 8 or 16)")
    if depth == 16 and fmt not in _DEPTH16_FORMATS:
        raise OutputError(f"16 bits per channel can only be written as PNG or TIFF, not {fmt}")
    quality = int(quality if quality is not None else (90 if fmt == "WEBP" else 95))
    if not 1 <= quality <= 100:
        raise OutputError(f"quality {quality} is out of range (1 to 100)")

    rgb = _as_unit_float(rgb, "rgb")
    if rgb.ndim == 2:
        rgb = np.repeat(rgb[:, :, None], 3, axis=2)
    if rgb.ndim != 3 or rgb.shape[2] != 3:
        raise ValueError(f"rgb must have shape (H, W, 3), not {rgb.shape}")
    if alpha is not None:
        alpha = _as_unit_float(alpha, "alpha")
        if alpha.ndim == 3 and alpha.shape[2] == 1:
            alpha = alpha[:, :, 0]
        if alpha.shape != rgb.shape[:2]:
            raise ValueError(f"alpha must have shape {rgb.shape[:2]}, not {alpha.shape}")
        if fmt not in _ALPHA_FORMATS:
            log.warning("%s cannot hold transparency: the alpha channel is flattened onto white", fmt)
            rgb = rgb * alpha[:, :, None] + (1 - alpha[:, :, None])
            alpha = None

    ints = _levels(rgb, depth)
    if alpha is not None:
        ints = np.concatenate([ints, _levels(alpha, depth)[:, :, None]], axis=2)

    if fmt == "GIF" or (fmt == "PNG" and depth == 8 and alpha is None):
        indexed = _indexed(ints)  # at most 256 colours: a palette image (a quarter of the bytes, exact)
        if fmt == "GIF":
            if indexed is None:
                log.warning("GIF holds at most 256 colours: the picture is reduced to 256 (median cut)")
                indexed = Image.fromarray(ints, "RGB").quantize(256, method=Image.Quantize.MEDIANCUT)
            return _save(indexed, "GIF")
        if indexed is not None:
            return png.insert_chunks(_save(indexed, "PNG", compress_level=6), png.text_chunks(metadata or {}))

    if fmt == "PNG":
        if depth == 16:
            import cv2

            bgr = ints[:, :, [2, 1, 0, 3]] if alpha is not None else ints[:, :, ::-1]
            # zlib level 3: on a 12 MP photo 3.7 s and 25.3 MB, against 9.6 s and 24.6 MB at level 6
            ok, buf = cv2.imencode(".png", np.ascontiguousarray(bgr), [cv2.IMWRITE_PNG_COMPRESSION, 3])
            if not ok:  # pragma: no cover - OpenCV failing on a plain uint16 array
                raise OutputError("OpenCV could not encode the 16-bit PNG")
            data = buf.tobytes()
        else:  # zlib level 3: a 12 MP photo in 2.8 s and 12.4 MB, against 6.1 s and 11.3 MB at level 6
            data = _pillow_bytes(ints, "PNG", compress_level=3)
        return png.insert_chunks(data, png.text_chunks(metadata or {}))
    if fmt == "TIFF":
        if depth == 16:
            import tifffile

            out = io.BytesIO()
            extra = {"extrasamples": ["unassalpha"]} if alpha is not None else {}
            tifffile.imwrite(out, ints, photometric="rgb", compression="zlib", predictor=True, **extra)
            return out.getvalue()
        return _pillow_bytes(ints, "TIFF", compression="tiff_adobe_deflate")
    if fmt == "JPEG":  # 4:4:4 chroma at high quality: sharp colour edges are common in artwork
        return _pillow_bytes(ints, "JPEG", quality=int(quality), subsampling=0 if quality >= 90 else 2)
    if fmt == "WEBP":  # quality 100 means lossless
        lossless = int(quality) == 100
        return _pillow_bytes(ints, "WEBP", quality=int(quality), lossless=lossless, exact=lossless)
    return _pillow_bytes(ints, "BMP")


def _as_unit_float(arr: np.ndarray, name: str) -> np.ndarray:
    """uint8, uint16, bool or float as float32 (NaN as 0; clipping to [0, 1] happens in :func:`_levels`)."""
    arr = np.asarray(arr)
    if arr.dtype == np.uint8:
        return arr.astype(np.float32) / np.float32(255)
    if arr.dtype == np.uint16:
        return arr.astype(np.float32) / np.float32(65535)
    if not np.issubdtype(arr.dtype, np.floating) and arr.dtype != np.bool_:
        raise ValueError(f"{name} must be a float array in [0, 1], not {arr.dtype}")
    arr = arr.astype(np.float32, copy=False)
    if not np.isfinite(arr.sum(dtype=np.float64)):  # one cheap pass; nan_to_num (a 0.7 s pass on 12 MP) only then
        arr = np.nan_to_num(arr, nan=0.0, posinf=1.0, neginf=0.0)
    return arr


def _levels(arr: np.ndarray, depth: int) -> np.ndarray:
    """Float [0, 1] -> the nearest integer level of ``depth`` bits (clipped), in three passes."""
    top = np.float32(65535 if depth == 16 else 255)
    scaled = arr * top
    np.clip(scaled, 0, top, out=scaled)
    np.rint(scaled, out=scaled)
    return scaled.astype(np.uint16 if depth == 16 else np.uint8)


def _indexed(ints: np.ndarray) -> Image.Image | None:
    """An RGB uint8 array with at most 256 colours as an exact palette ("P") image, or None when it has more.
    Pillow's getcolors stops counting at 257 colours, so a photo costs little."""
    img = Image.fromarray(np.ascontiguousarray(ints), "RGB")
    colours = img.getcolors(256)
    if colours is None:
        return None
    palette = np.array(sorted(c for _, c in colours), dtype=np.uint32)
    keys = (palette[:, 0] << 16) | (palette[:, 1] << 8) | palette[:, 2]
    packed = (ints[..., 0].astype(np.uint32) << 16) | (ints[..., 1].astype(np.uint32) << 8) | ints[..., 2]
    index = Image.fromarray(np.searchsorted(keys, packed).astype(np.uint8), "P")
    index.putpalette(palette.astype(np.uint8).ravel().tolist())
    return index


def _save(img: Image.Image, fmt: str, **options: Any) -> bytes:
    out = io.BytesIO()
    img.save(out, fmt, **options)
    return out.getvalue()


def _pillow_bytes(ints: np.ndarray, fmt: str, **options: Any) -> bytes:
    mode = "RGBA" if ints.shape[2] == 4 else "RGB"
    return _save(Image.fromarray(np.ascontiguousarray(ints), mode), fmt, **options)



def to_u8(img: np.ndarray) -> np.ndarray:
    """A float image in [0, 1] as uint8, rounded to the nearest level."""
    return (np.clip(img, 0, 1) * 255 + 0.5).astype(np.uint8)


def gif_writer(frames: Sequence[np.ndarray], duration_ms: int = 80, hold_ms: int | None = None
               ) -> Callable[[Path], None]:
    """A writer for ``atomic_write``/``ctx.save``: an animated GIF of uint8 RGB ``frames``, looping, each frame
    shown ``duration_ms`` and the last one ``hold_ms`` (default: as long as the others). Every frame gets its own
    255-colour median-cut palette."""

    def write(path: Path) -> None:
        imgs = [Image.fromarray(f).quantize(colors=255, method=Image.Quantize.MEDIANCUT) for f in frames]
        durations = [duration_ms] * (len(imgs) - 1) + [duration_ms if hold_ms is None else hold_ms]
        imgs[0].save(path, format="GIF", save_all=True, append_images=imgs[1:], duration=durations, loop=0,
                     optimize=False)

    return write
