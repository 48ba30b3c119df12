"""Reading and writing images: the edges of every pipeline.

Everything odd about image files is handled here and nowhere else, so that stages only ever see a float32
(H, W, 3) sRGB array in [0, 1]:

- EXIF orientation is applied; greyscale, palette, CMYK (Adobe-inverted JPEGs included) become RGB; alpha is
  split off and carried beside the image; embedded ICC profiles are converted to sRGB;
- 16-bit PNG and TIFF keep their 16 bits (Pillow truncates 16-bit RGB to 8 bits, so those go through OpenCV);
- Pillow's decompression-bomb guard stays on unless the caller passes ``allow_huge=True`` for one read;
- truncated or corrupt files are errors, never half-grey pictures;
- writes are atomic (temporary file in the same directory, fsync, rename) and never replace an input unless
  forced; PNG outputs carry text metadata (the recipe under :data:`RECIPE_KEY`), at 8 and at 16 bits.

OpenCV, tifffile and ImageCms are imported inside the functions that need them: importing artfx stays cheap.
"""

from __future__ import annotations

import io
import json
import logging
import os
import secrets
import struct
import sys
import threading
import warnings
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable

import numpy as np
from PIL import Image

from artfx.errors import ImageError, InputError, OutputError

log = logging.getLogger("artfx.io")

RECIPE_KEY = "artfx:recipe"
"""The PNG text chunk holding the JSON recipe (pipeline, parameters, seed, artfx version) of an output."""

FORMATS = {
    ".png": "PNG",
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

_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_LONG_TEXT = 1024  # PNG text values longer than this (in bytes) are zlib-compressed

_GREY16_MODES = ("I;16", "I;16B", "I;16L", "I;16N", "I")
_CV2_MODES = ("RGB", "RGBA", "RGBX", "LA")  # Pillow modes whose 16-bit files are read through OpenCV
_bomb_lock = threading.Lock()
_DECODE_ERRORS = (
    OSError, SyntaxError, ValueError, EOFError, struct.error, zlib.error, IndexError, KeyError, TypeError,
    OverflowError, ZeroDivisionError,
)


@dataclass
class Picture:
    """A decoded image, ready for the stages, and what was learnt about its file on the way."""

    rgb: np.ndarray  # float32 (H, W, 3) sRGB in [0, 1], EXIF orientation applied, ICC converted to sRGB
    alpha: np.ndarray | None  # float32 (H, W) in [0, 1], or None
    depth: int  # 8 or 16: bits per channel of the source
    format: str  # "PNG", "JPEG", "TIFF", ... (Pillow's name)
    source: str  # path as given, or "-" for stdin
    text: dict[str, str] = field(default_factory=dict)  # PNG text chunks (tEXt/iTXt/zTXt), {} otherwise


# ==== reading ==============================================================================================


def read_image(src: str | Path | bytes, *, allow_huge: bool = False, name: str | None = None) -> Picture:
    """Decode an image file (a path, ``"-"`` for standard input, or the encoded bytes themselves; ``name`` is
    how messages call encoded bytes, e.g. "standard input").

    Raises :class:`~artfx.errors.InputError` when the file cannot be opened at all and
    :class:`~artfx.errors.ImageError` when it is not a readable image (unknown format, corrupt, truncated,
    or larger than ``PIL.Image.MAX_IMAGE_PIXELS`` without ``allow_huge``).

    >>> pic = read_image("photo.jpg")                      # doctest: +SKIP
    >>> pic.rgb.shape, pic.rgb.dtype, pic.depth            # doctest: +SKIP
    ((900, 1200, 3), dtype('float32'), 8)
    """
    data, source = _read_source(src)
    if name is not None:
        source = name
    if not data:
        raise ImageError(f"{source}: the file is empty, not an image")
    try:
        img = _open(data, source, allow_huge)
        return _decode(img, data, source)
    except ImageError:
        raise
    except Image.DecompressionBombError as e:  # pragma: no cover - _open turns these into ImageError already
        raise _bomb_error(source, str(e)) from e
    except MemoryError as e:
        raise ImageError(f"{source}: not enough memory to decode this image") from e
    except _DECODE_ERRORS as e:  # what Pillow's decoders raise for broken data (bugs of ours still surface)
        raise ImageError(f"{source}: corrupt or truncated image ({_one_line(e)})") from e


def read_recipe(path_or_picture: Any) -> dict | None:
    """The recipe stored in a PNG written by artfx (``json.loads`` of the :data:`RECIPE_KEY` text chunk), or
    None when there is none. Accepts a :class:`Picture`, a path or the encoded bytes."""
    if isinstance(path_or_picture, Picture):
        text = path_or_picture.text.get(RECIPE_KEY)
        source = path_or_picture.source
    else:
        data, source = _read_source(path_or_picture)
        try:
            text = _png_text(data).get(RECIPE_KEY) if data.startswith(_PNG_SIGNATURE) else None
        except ValueError as e:
            raise ImageError(f"{source}: corrupt PNG ({e})") from e
    if text is None:
        return None
    try:
        recipe = json.loads(text)
    except ValueError as e:
        raise ImageError(f"{source}: the stored recipe is not valid JSON ({_one_line(e)})") from e
    if not isinstance(recipe, dict):
        raise ImageError(f"{source}: the stored recipe is not a JSON object")
    return recipe


def _read_source(src: Any) -> tuple[bytes, str]:
    if isinstance(src, (bytes, bytearray, memoryview)):
        return bytes(src), "<bytes>"
    source = str(src)
    if source == "-":
        return sys.stdin.buffer.read(), "-"
    path = Path(src)
    if path.is_dir():
        raise InputError(f"{source} is a directory, not an image file")
    try:
        return path.read_bytes(), source
    except FileNotFoundError:
        raise InputError(f"{source}: no such file") from None
    except PermissionError:
        raise InputError(f"{source}: permission denied") from None
    except OSError as e:
        raise InputError(f"cannot read {source}: {e.strerror or e}") from None


def _open(data: bytes, source: str, allow_huge: bool) -> Image.Image:
    """Image.open with the decompression-bomb guard as artfx wants it: any image over MAX_IMAGE_PIXELS is an
    error (Pillow only warns between 1x and 2x), and ``allow_huge`` lifts the limit for this call only. Pillow
    checks the size inside Image.open alone, so the global is changed (under a lock) just around that call."""
    limit = Image.MAX_IMAGE_PIXELS
    with _bomb_lock, warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        if allow_huge:
            Image.MAX_IMAGE_PIXELS = None
        try:
            img = Image.open(io.BytesIO(data))
        except Image.UnidentifiedImageError:
            raise ImageError(f"{source}: not an image, or a format artfx cannot read") from None
        except Image.DecompressionBombError as e:
            raise _bomb_error(source, str(e)) from None
        finally:
            if allow_huge:
                Image.MAX_IMAGE_PIXELS = limit
    if not allow_huge and limit is not None and img.width * img.height > limit:
        raise _bomb_error(source, f"{img.width}x{img.height} is more than {limit} pixels")
    return img


def _bomb_error(source: str, detail: str) -> ImageError:
    return ImageError(
        f"{source}: image too large, possibly a decompression bomb ({_one_line(detail)})",
        hint="pass --allow-huge if you trust this file",
    )


def _decode(img: Image.Image, data: bytes, source: str) -> Picture:
    fmt = img.format or "?"
    # Full decode first: truncated or corrupt data raises here (with PIL.ImageFile.LOAD_TRUNCATED_IMAGES left
    # False, as it must stay), which also validates the files whose pixels OpenCV then reads.
    img.load()
    orientation = _orientation(img)
    icc = img.info.get("icc_profile") or None
    text = _pillow_text(img) if fmt == "PNG" else {}

    if _is_16bit(img, data):
        # Pillow reads 16-bit RGB(A) and grey+alpha as 8 bits: take the pixels from OpenCV instead.
        rgb, alpha = _decode_cv2(data, source)
        depth = 16
        if icc is not None:
            converted = _icc_to_srgb_float(rgb, icc, source)
            rgb = rgb if converted is None else converted
    else:
        rgb, alpha, depth = _decode_pillow(img, icc, source)

    rgb, alpha = _apply_orientation(rgb, orientation), _apply_orientation(alpha, orientation)
    rgb = np.ascontiguousarray(rgb, dtype=np.float32)
    if alpha is not None:
        alpha = np.ascontiguousarray(alpha, dtype=np.float32)
    return Picture(rgb=rgb, alpha=alpha, depth=depth, format=fmt, source=source, text=text)


def _is_16bit(img: Image.Image, data: bytes) -> bool:
    """True where the file has 16 bits per channel and Pillow would truncate them (it keeps only 16-bit grey)."""
    if img.mode not in _CV2_MODES:  # 16-bit grey is exact in Pillow; CMYK, premultiplied alpha are not for cv2
        return False
    if img.format == "PNG":
        return data[12:16] == b"IHDR" and data[24] == 16
    if img.format == "TIFF":
        tags = getattr(img, "tag_v2", {})
        bits = tags.get(258, ())
        bits = bits if isinstance(bits, tuple) else (bits,)
        return 16 in bits and tags.get(262) in (1, 2)  # photometric grey or RGB
    return False


def _decode_cv2(data: bytes, source: str) -> tuple[np.ndarray, np.ndarray | None]:
    import cv2

    level = cv2.utils.logging.getLogLevel()
    cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_SILENT)  # errors are reported by us, in one line
    try:
        arr = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    finally:
        cv2.utils.logging.setLogLevel(level)
    if arr is None:
        raise ImageError(f"{source}: corrupt or truncated image (OpenCV could not decode it)")
    scale = 65535.0 if arr.dtype == np.uint16 else 255.0 if arr.dtype == np.uint8 else None
    if scale is None:
        raise ImageError(f"{source}: unsupported sample type {arr.dtype}")
    arr = arr.astype(np.float32) / np.float32(scale)
    if arr.ndim == 2:
        return np.repeat(arr[:, :, None], 3, axis=2), None
    channels = arr.shape[2]
    if channels == 1:
        return np.repeat(arr, 3, axis=2), None
    if channels == 2:
        return np.repeat(arr[:, :, :1], 3, axis=2), arr[:, :, 1]
    rgb = arr[:, :, 2::-1]  # BGR -> RGB
    return rgb, (arr[:, :, 3] if channels >= 4 else None)


def _decode_pillow(img: Image.Image, icc: bytes | None, source: str) -> tuple[np.ndarray, np.ndarray | None, int]:
    """Pixels of an 8-bit (or 16-bit grey) Pillow image as float RGB + alpha, colour-managed to sRGB."""
    mode = img.mode
    if mode in _GREY16_MODES:  # 16-bit grey (PNG, TIFF): exact
        grey = np.clip(np.asarray(img, dtype=np.float32), 0, 65535) / np.float32(65535)
        return np.repeat(grey[:, :, None], 3, axis=2), None, 16
    if mode == "F":  # floating-point TIFF: taken as [0, 1] data
        grey = np.clip(np.nan_to_num(np.asarray(img, dtype=np.float32)), 0, 1)
        return np.repeat(grey[:, :, None], 3, axis=2), None, 16

    if "transparency" in img.info and mode in ("1", "L", "P", "RGB"):
        img = img.convert("RGBA")
    elif mode in ("P", "PA"):
        img = img.convert("RGBA" if mode == "PA" else "RGB")
    elif mode == "1":
        img = img.convert("L")
    elif mode in ("La", "LA"):
        img = img.convert("LA")
    elif mode in ("RGBa", "RGBA"):
        img = img.convert("RGBA")
    elif mode == "LAB":
        img = _lab_to_srgb(img, source)
        icc = None
    elif mode not in ("L", "RGB", "CMYK"):  # RGBX, YCbCr, HSV, ...
        img = img.convert("RGB")

    alpha = None
    if img.mode in ("RGBA", "LA"):
        alpha = np.asarray(img.getchannel("A"), dtype=np.float32) / np.float32(255)
        img = img.convert(img.mode[:-1])  # drop the alpha band (no compositing)

    if icc is not None:
        converted = _icc_to_srgb(img, icc, source)
        if converted is not None:
            img = converted
    if img.mode == "CMYK":  # no usable profile: the naive ink formula
        cmyk = np.asarray(img, dtype=np.float32) / np.float32(255)
        rgb = (1 - cmyk[:, :, :3]) * (1 - cmyk[:, :, 3:4])
    elif img.mode == "L":
        grey = np.asarray(img, dtype=np.float32) / np.float32(255)
        rgb = np.repeat(grey[:, :, None], 3, axis=2)
    else:
        rgb = np.asarray(img.convert("RGB"), dtype=np.float32) / np.float32(255)
    return rgb, alpha, 8


def _pillow_text(img: Image.Image) -> dict[str, str]:
    try:
        return {str(k): str(v) for k, v in getattr(img, "text", {}).items() if isinstance(v, str)}
    except Exception as e:  # a broken text chunk must not make the picture unreadable
        log.debug("ignoring unreadable PNG text chunks: %s", e)
        return {}


# ---- EXIF orientation ------------------------------------------------------------------------------------


def _orientation(img: Image.Image) -> int:
    try:
        value = img.getexif().get(0x0112, 1)
        value = int(value)
    except Exception as e:  # broken EXIF: ignore it, like every viewer does
        log.debug("ignoring unreadable EXIF data: %s", e)
        return 1
    return value if 1 <= value <= 8 else 1


def _apply_orientation(arr: np.ndarray | None, orientation: int) -> np.ndarray | None:
    """Turn stored pixels into displayed pixels for EXIF orientation 1..8 (rows are y, columns are x)."""
    if arr is None or orientation == 1:
        return arr
    if orientation == 2:  # mirrored left-right
        return arr[:, ::-1]
    if orientation == 3:  # rotated 180
        return arr[::-1, ::-1]
    if orientation == 4:  # mirrored top-bottom
        return arr[::-1]
    if orientation == 5:  # transposed
        return arr.swapaxes(0, 1)
    if orientation == 6:  # needs a 90 degree clockwise turn
        return np.rot90(arr, k=-1)
    if orientation == 7:  # transversed
        return arr[::-1, ::-1].swapaxes(0, 1)
    return np.rot90(arr, k=1)  # 8: needs a 90 degree counter-clockwise turn


# ---- colour management -----------------------------------------------------------------------------------


def _srgb_profile() -> Any:
    from PIL import ImageCms

    global _SRGB
    if _SRGB is None:
        _SRGB = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB"))
    return _SRGB


_SRGB: Any = None


def _open_profile(icc: bytes) -> tuple[Any, str] | None:
    """The profile and its description, or None when it is broken or already sRGB (nothing to do)."""
    from PIL import ImageCms

    try:
        profile = ImageCms.ImageCmsProfile(io.BytesIO(icc))
        description = (ImageCms.getProfileDescription(profile) or "").strip()
    except Exception as e:
        log.debug("ignoring an unreadable ICC profile: %s", e)
        return None
    if "srgb" in description.lower():
        return None
    return profile, description


_ICC_SPACE = {"L": "GRAY", "RGB": "RGB", "CMYK": "CMYK"}


def _icc_to_srgb(img: Image.Image, icc: bytes, source: str) -> Image.Image | None:
    """An L, RGB or CMYK image converted from its embedded profile to sRGB RGB, or None to keep its values."""
    from PIL import ImageCms

    opened = _open_profile(icc)
    if opened is None:
        return None
    profile, description = opened
    try:
        space = profile.profile.xcolor_space.strip()
        if space != _ICC_SPACE.get(img.mode):
            raise ValueError(f"a {space} profile on a {img.mode} image")
        return ImageCms.profileToProfile(img, profile, _srgb_profile(), outputMode="RGB")
    except Exception as e:
        log.warning(
            "%s: could not convert colour profile %r to sRGB (%s); using the values as they are",
            source, description, _one_line(e),
        )
        return None


def _icc_to_srgb_float(rgb: np.ndarray, icc: bytes, source: str) -> np.ndarray | None:
    """ICC conversion for 16-bit pixels, which Pillow's ImageCms cannot transform (it takes 8-bit RGB only).

    Matrix/TRC RGB profiles (Adobe RGB, ProPhoto, Display P3, Rec. 2020: what 16-bit files nearly always carry)
    are applied exactly in float from their tags. Other profiles (LUT-based) are sampled by LittleCMS on a 52^3
    lattice of 8-bit colours and applied by trilinear interpolation: gradients stay smooth, but colours near the
    gamut boundary may be off by several levels out of 255."""
    opened = _open_profile(icc)
    if opened is None:
        return None
    shaper = _matrix_shaper(icc)
    if shaper is not None:
        matrix, curves = shaper
        lin = np.stack([curve(rgb[:, :, i]) for i, curve in enumerate(curves)], axis=-1)
        out = np.clip(lin @ matrix.T, 0, 1)
        return np.where(out <= 0.0031308, out * 12.92, 1.055 * out ** (1 / 2.4) - 0.055).astype(np.float32)
    steps = np.arange(0, 256, 5, dtype=np.uint8)  # 52 levels, 255 included
    n = len(steps)
    lattice = np.stack(np.meshgrid(steps, steps, steps, indexing="ij"), axis=-1).reshape(n * n, n, 3)
    converted = _icc_to_srgb(Image.fromarray(lattice, "RGB"), icc, source)
    if converted is None:
        return None
    lut = np.asarray(converted, dtype=np.float32).reshape(n, n, n, 3) / np.float32(255)
    return _trilinear(lut, rgb)


def _matrix_shaper(icc: bytes) -> tuple[np.ndarray, list[Callable[[np.ndarray], np.ndarray]]] | None:
    """(source linear RGB -> linear sRGB matrix, three decoding curves) for a matrix/TRC RGB profile with an
    XYZ connection space and no LUT tags (which LittleCMS would prefer); None for anything else."""
    tags = _icc_tags(icc)
    if tags is None or icc[16:20] != b"RGB " or icc[20:24] != b"XYZ " or b"A2B0" in tags:
        return None
    srgb = _icc_tags(_srgb_profile().tobytes())
    try:
        to_pcs = np.stack([_icc_xyz(tags[k]) for k in (b"rXYZ", b"gXYZ", b"bXYZ")], axis=1)
        srgb_to_pcs = np.stack([_icc_xyz(srgb[k]) for k in (b"rXYZ", b"gXYZ", b"bXYZ")], axis=1)  # type: ignore
        curves = [_icc_curve(tags[k]) for k in (b"rTRC", b"gTRC", b"bTRC")]
        matrix = np.linalg.inv(srgb_to_pcs) @ to_pcs
    except (KeyError, ValueError, struct.error, np.linalg.LinAlgError):
        return None
    if any(c is None for c in curves) or not np.all(np.isfinite(matrix)):
        return None
    return matrix.astype(np.float32), curves  # type: ignore[return-value]


def _icc_tags(icc: bytes) -> dict[bytes, bytes] | None:
    try:
        (count,) = struct.unpack(">I", icc[128:132])
        tags = {}
        for i in range(min(count, 200)):
            sig, offset, size = struct.unpack(">4sII", icc[132 + 12 * i : 144 + 12 * i])
            tags[sig] = icc[offset : offset + size]
        return tags
    except struct.error:
        return None


def _icc_xyz(tag: bytes) -> np.ndarray:
    if tag[:4] != b"XYZ ":
        raise ValueError("not an XYZ tag")
    return np.array(struct.unpack(">3i", tag[8:20]), dtype=np.float64) / 65536


def _icc_curve(tag: bytes) -> Callable[[np.ndarray], np.ndarray] | None:
    """A tone curve tag (curv: identity, gamma or table; para: the five ICC parametric functions) as a function
    from encoded [0, 1] values to linear ones."""
    if tag[:4] == b"curv":
        (n,) = struct.unpack(">I", tag[8:12])
        if n == 0:
            return lambda x: x
        if n == 1:
            gamma = struct.unpack(">H", tag[12:14])[0] / 256
            return lambda x: np.power(x, np.float32(gamma))
        table = np.array(struct.unpack(f">{n}H", tag[12 : 12 + 2 * n]), dtype=np.float32) / np.float32(65535)
        grid = np.linspace(0, 1, n, dtype=np.float32)
        return lambda x: np.interp(x, grid, table).astype(np.float32)
    if tag[:4] == b"para":
        kind = struct.unpack(">H", tag[8:10])[0]
        count = {0: 1, 1: 3, 2: 4, 3: 5, 4: 7}.get(kind)
        if count is None or len(tag) < 12 + 4 * count:
            return None
        p = [v / 65536 for v in struct.unpack(f">{count}i", tag[12 : 12 + 4 * count])]
        g = p[0]
        if kind == 0:  # Y = X^g
            return lambda x: np.power(x, np.float32(g))
        a, b = p[1], p[2]
        if a == 0:
            return None
        # one form for types 1-4: Y = (aX + b)^g + offset for X >= d, else slope * X + floor
        if kind == 1:
            d, offset, slope, floor = -b / a, 0.0, 0.0, 0.0
        elif kind == 2:
            d, offset, slope, floor = -b / a, p[3], 0.0, p[3]
        elif kind == 3:
            d, offset, slope, floor = p[4], 0.0, p[3], 0.0
        else:
            d, offset, slope, floor = p[4], p[5], p[3], p[6]

        def curve(x: np.ndarray) -> np.ndarray:
            above = np.power(np.maximum(a * x + b, 0), g) + offset
            return np.where(x >= d, above, slope * x + floor).astype(np.float32)

        return curve
    return None


def _trilinear(lut: np.ndarray, rgb: np.ndarray, chunk: int = 1 << 20) -> np.ndarray:
    n = lut.shape[0]
    flat = rgb.reshape(-1, 3)
    out = np.empty(flat.shape, dtype=np.float32)
    table = lut.reshape(-1, 3)
    for start in range(0, len(flat), chunk):
        p = np.clip(flat[start : start + chunk], 0, 1) * np.float32(n - 1)
        i0 = np.minimum(p.astype(np.int64), n - 2)
        f = p - i0
        acc = np.zeros((len(p), 3), np.float32)
        for dr in (0, 1):
            wr = f[:, 0] if dr else 1 - f[:, 0]
            for dg in (0, 1):
                wg = f[:, 1] if dg else 1 - f[:, 1]
                for db in (0, 1):
                    wb = f[:, 2] if db else 1 - f[:, 2]
                    idx = ((i0[:, 0] + dr) * n + (i0[:, 1] + dg)) * n + (i0[:, 2] + db)
                    acc += (wr * wg * wb)[:, None] * table[idx]
        out[start : start + chunk] = acc
    return np.clip(out, 0, 1).reshape(rgb.shape)


def _lab_to_srgb(img: Image.Image, source: str) -> Image.Image:
    from PIL import ImageCms

    try:
        return ImageCms.profileToProfile(img, ImageCms.createProfile("LAB"), _srgb_profile(), outputMode="RGB")
    except Exception as e:
        raise ImageError(f"{source}: cannot convert its CIELab pixels to sRGB ({_one_line(e)})") from e


# ==== writing ==============================================================================================


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
    quality: int = 95,
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
    quality: int = 95,
) -> bytes:
    """The encoded file content. Values are clipped to [0, 1] and rounded to the nearest integer level."""
    fmt = format.upper()
    fmt = _FORMAT_ALIASES.get(fmt, fmt)
    if fmt not in set(FORMATS.values()):
        raise OutputError(f"cannot write format {format!r} (artfx writes {', '.join(sorted(set(FORMATS.values())))})")
    if depth not in (8, 16):
        raise OutputError(f"bit depth {depth} is not supported (use 8 or 16)")
    if depth == 16 and fmt not in _DEPTH16_FORMATS:
        raise OutputError(f"16 bits per channel can only be written as PNG or TIFF, not {fmt}")
    if not 1 <= int(quality) <= 100:
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

    pixels = rgb if alpha is None else np.concatenate([rgb, alpha[:, :, None]], axis=2)
    levels = np.float32(65535 if depth == 16 else 255)
    ints = np.rint(pixels * levels).astype(np.uint16 if depth == 16 else np.uint8)

    if fmt == "PNG":
        if depth == 16:
            import cv2

            bgr = ints[:, :, [2, 1, 0, 3]] if alpha is not None else ints[:, :, ::-1]
            # zlib level 3: on a 12 MP photo 3.7 s and 25.3 MB, against 9.6 s and 24.6 MB at level 6
            ok, buf = cv2.imencode(".png", np.ascontiguousarray(bgr), [cv2.IMWRITE_PNG_COMPRESSION, 3])
            if not ok:  # pragma: no cover - OpenCV failing on a plain uint16 array
                raise OutputError("OpenCV could not encode the 16-bit PNG")
            png = buf.tobytes()
        else:
            png = _pillow_bytes(ints, "PNG", compress_level=6)
        return _insert_png_chunks(png, _png_text_chunks(metadata or {}))
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
    arr = np.asarray(arr)
    if arr.dtype == np.uint8:
        return arr.astype(np.float32) / np.float32(255)
    if arr.dtype == np.uint16:
        return arr.astype(np.float32) / np.float32(65535)
    if not np.issubdtype(arr.dtype, np.floating) and arr.dtype != np.bool_:
        raise ValueError(f"{name} must be a float array in [0, 1], not {arr.dtype}")
    return np.clip(np.nan_to_num(arr.astype(np.float32, copy=False)), 0, 1)


def _pillow_bytes(ints: np.ndarray, fmt: str, **options: Any) -> bytes:
    mode = "RGBA" if ints.shape[2] == 4 else "RGB"
    out = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(ints), mode).save(out, fmt, **options)
    return out.getvalue()


# ---- PNG text chunks -------------------------------------------------------------------------------------


def _png_chunk(kind: bytes, payload: bytes) -> bytes:
    return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))


def _png_text_chunks(metadata: dict[str, str]) -> list[bytes]:
    """tEXt (or zTXt when long) for Latin-1 text, iTXt (compressed when long) for anything else."""
    chunks = []
    for key, value in metadata.items():
        try:
            keyword = str(key).encode("latin-1")
        except UnicodeEncodeError:
            keyword = b""
        if not 1 <= len(keyword) <= 79 or b"\0" in keyword or keyword != keyword.strip():
            raise OutputError(f"metadata key {key!r} is not a valid PNG keyword (1 to 79 Latin-1 characters)")
        value = str(value)
        try:
            raw = value.encode("latin-1")
            if len(raw) > _LONG_TEXT:
                chunks.append(_png_chunk(b"zTXt", keyword + b"\0\0" + zlib.compress(raw)))
            else:
                chunks.append(_png_chunk(b"tEXt", keyword + b"\0" + raw))
        except UnicodeEncodeError:
            raw = value.encode("utf-8")
            compressed = len(raw) > _LONG_TEXT
            body = zlib.compress(raw) if compressed else raw
            # keyword, NUL, compression flag, method, empty language tag + NUL, empty translation + NUL, text
            chunks.append(_png_chunk(b"iTXt", keyword + b"\0" + bytes([compressed, 0]) + b"\0\0" + body))
    return chunks


def _insert_png_chunks(png: bytes, chunks: list[bytes]) -> bytes:
    """Put ancillary chunks right after IHDR (before the pixels, where readers look first)."""
    if not chunks:
        return png
    if not png.startswith(_PNG_SIGNATURE) or png[12:16] != b"IHDR":
        raise OutputError("internal error: the encoder did not produce a PNG")
    end_of_ihdr = 8 + 4 + 4 + struct.unpack(">I", png[8:12])[0] + 4
    return png[:end_of_ihdr] + b"".join(chunks) + png[end_of_ihdr:]


def _png_text(data: bytes) -> dict[str, str]:
    """The text chunks of a PNG, read from its chunk list without decoding any pixels."""
    text: dict[str, str] = {}
    pos = 8
    while pos + 8 <= len(data):
        length, kind = struct.unpack(">I4s", data[pos : pos + 8])
        payload = data[pos + 8 : pos + 8 + length]
        if len(payload) != length:
            raise ValueError("truncated chunk")
        pos += 12 + length
        if kind == b"IEND":
            break
        if kind not in (b"tEXt", b"zTXt", b"iTXt"):
            continue
        keyword, _, rest = payload.partition(b"\0")
        key = keyword.decode("latin-1")
        try:
            if kind == b"tEXt":
                text[key] = rest.decode("latin-1")
            elif kind == b"zTXt":
                text[key] = _inflate(rest[1:]).decode("latin-1")
            else:
                compressed, rest = rest[0], rest[2:]
                _language, _, rest = rest.partition(b"\0")
                _translated, _, body = rest.partition(b"\0")
                text[key] = (_inflate(body) if compressed else body).decode("utf-8")
        except (zlib.error, UnicodeDecodeError, IndexError) as e:
            log.debug("ignoring a broken %s chunk %r: %s", kind.decode(), key, e)
    return text


def _inflate(data: bytes, limit: int = 64 << 20) -> bytes:
    d = zlib.decompressobj()
    out = d.decompress(data, limit)
    if d.unconsumed_tail:
        raise zlib.error("text chunk too large")
    return out


# ---- atomic writes ---------------------------------------------------------------------------------------


def check_writable(path: str | Path, protected: Iterable[Path] = (), force: bool = False) -> None:
    """OutputError unless ``path`` can be written: its directory exists and is writable, it is not a directory,
    and it is not one of the ``protected`` inputs (unless ``force``). ``"-"`` (standard output) is always fine."""
    if str(path) == "-":
        return
    path = Path(path)
    if path.is_dir():
        raise OutputError(f"{path} is a directory; give a file name to write")
    parent = path.parent if str(path.parent) else Path(".")
    if not parent.exists():
        raise OutputError(f"cannot write {path}: directory {parent} does not exist")
    if not parent.is_dir():
        raise OutputError(f"cannot write {path}: {parent} is not a directory")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise OutputError(f"cannot write {path}: directory {parent} is not writable")
    if force:
        return
    for other in protected:
        if str(other) != "-" and _same_file(path, Path(other)):
            raise OutputError(f"writing {path} would overwrite the input {other}; pass --force to allow it")


def _same_file(a: Path, b: Path) -> bool:
    try:
        if a.exists() and b.exists():
            return os.path.samefile(a, b)
        return a.resolve() == b.resolve()
    except OSError:
        return False


def atomic_write(
    path: str | Path,
    data: bytes | str | Callable[[Path], None],
    *,
    protected: Iterable[Path] = (),
    force: bool = False,
) -> Path:
    """Write ``data`` (bytes, text as UTF-8, or a function that writes the temporary Path it is given) to a
    hidden temporary file beside ``path``, fsync it and rename it onto ``path``. Whatever goes wrong, Ctrl-C
    included, the temporary file is removed and ``path`` is left as it was. ``"-"`` writes to standard output."""
    if str(path) == "-":
        _write_stdout(data)
        return Path("-")
    path = Path(path)
    check_writable(path, protected, force)
    tmp, fd = _create_temp(path)
    try:
        try:
            if callable(data):
                os.close(fd)
                fd = -1
                data(tmp)
                if not tmp.is_file():
                    raise OutputError(f"cannot write {path}: the writer did not create its file")
                fd = os.open(tmp, os.O_RDONLY)
            else:
                payload = data.encode("utf-8") if isinstance(data, str) else bytes(data)
                with os.fdopen(fd, "wb", closefd=False) as f:
                    f.write(payload)
            os.fsync(fd)
            os.close(fd)
            fd = -1
            if path.exists():  # keep the permissions of the file being replaced
                os.chmod(tmp, path.stat().st_mode & 0o7777)
            os.replace(tmp, path)
        except OSError as e:
            raise OutputError(f"cannot write {path}: {e.strerror or e}") from e
    except BaseException:
        if fd >= 0:
            os.close(fd)
        tmp.unlink(missing_ok=True)
        raise
    _fsync_dir(path.parent)
    return path


def _create_temp(path: Path) -> tuple[Path, int]:
    """A new hidden file beside ``path`` that keeps its suffix (encoders choose the format from it); created
    with os.open so that the umask applies, as for any new file."""
    parent = path.parent if str(path.parent) else Path(".")
    for _ in range(100):
        tmp = parent / f".{path.stem}.artfx-tmp-{secrets.token_hex(4)}{path.suffix}"
        try:
            return tmp, os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        except FileExistsError:
            continue
        except OSError as e:
            raise OutputError(f"cannot write {path}: {e.strerror or e}") from e
    raise OutputError(f"cannot write {path}: no free temporary file name")  # pragma: no cover


def _fsync_dir(directory: Path) -> None:
    try:
        fd = os.open(directory if str(directory) else ".", os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass  # some file systems do not fsync directories; the rename itself is still atomic
    finally:
        os.close(fd)


def _write_stdout(data: bytes | str | Callable[[Path], None]) -> None:
    if callable(data):
        import tempfile

        with tempfile.TemporaryDirectory(prefix="artfx-tmp-") as d:
            tmp = Path(d) / "stdout"
            data(tmp)
            data = tmp.read_bytes()
    payload = data.encode("utf-8") if isinstance(data, str) else bytes(data)
    out = sys.stdout.buffer
    out.write(payload)
    out.flush()


# ==== resizing =============================================================================================


def resize_long_side(
    rgb: np.ndarray, max_size: int, alpha: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray | None]:
    """Downscale (never upscale) so that the longer side is at most ``max_size``, averaging areas; ``alpha``
    follows the same way. Returns the inputs themselves when they are already small enough."""
    if max_size < 1:
        raise ValueError(f"max_size must be at least 1, not {max_size}")
    h, w = rgb.shape[:2]
    long_side = max(h, w)
    if long_side <= max_size:
        return rgb, alpha
    scale = max_size / long_side
    new_h = max_size if h == long_side else max(1, round(h * scale))
    new_w = max_size if w == long_side else max(1, round(w * scale))
    out = resize_to(rgb, new_h, new_w)
    return out, (None if alpha is None else resize_to(alpha, new_h, new_w))


def resize_to(rgb_or_alpha: np.ndarray, height: int, width: int) -> np.ndarray:
    """Resize a float image (H, W) or (H, W, C) to any size: area averaging when shrinking, bicubic when
    enlarging. Returns float32 clipped to [0, 1] (bicubic overshoots)."""
    import cv2

    if height < 1 or width < 1:
        raise ValueError(f"cannot resize to {height}x{width}")
    arr = np.ascontiguousarray(rgb_or_alpha, dtype=np.float32)
    h, w = arr.shape[:2]
    if (h, w) == (height, width):
        return arr.copy() if arr is rgb_or_alpha else arr
    shrink = height <= h and width <= w
    out = cv2.resize(arr, (width, height), interpolation=cv2.INTER_AREA if shrink else cv2.INTER_CUBIC)
    if arr.ndim == 3 and out.ndim == 2:  # OpenCV drops a single channel axis
        out = out[:, :, None]
    return np.clip(out, 0, 1, out=out)


def _one_line(e: object) -> str:
    text = " ".join(str(e).split())
    return text if len(text) <= 200 else text[:197] + "..."
