"""Decoding image files into what stages take: float32 (H, W, 3) sRGB in [0, 1], alpha beside it.

- EXIF orientation is applied; greyscale, palette, CMYK (Adobe-inverted JPEGs included) become RGB; alpha is
  split off and carried beside the image; embedded ICC profiles are converted to sRGB (:mod:`artfx.io.colour`);
- 16-bit PNG and TIFF keep their 16 bits (Pillow truncates 16-bit RGB to 8 bits, so those go through OpenCV);
- Pillow's decompression-bomb guard stays on unless the caller passes ``allow_huge=True`` for one read;
- truncated or corrupt files are errors, never half-grey pictures. Only failures inside the decoders become
  "corrupt image" errors: a bug in artfx's own code surfaces as what it is.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import struct
import sys
import threading
import warnings
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

import numpy as np
from PIL import Image

from artfx.errors import ImageError, InputError, one_line
from artfx.io import colour, jsonlimits, png
from artfx.io.files import check_name, read_stdin

log = logging.getLogger("artfx.io")

_GREY16_MODES = ("I;16", "I;16B", "I;16L", "I;16N", "I")
_CV2_MODES = ("RGB", "RGBA", "RGBX", "LA")  # Pillow modes whose 16-bit files are read through OpenCV
_pillow_lock = threading.RLock()  # around what changes process-wide state: the bomb limit, warning filters, fd 2
# What Pillow's and OpenCV's decoders raise for broken data. Caught only around calls into the decoders.
_DECODE_ERRORS = (
    OSError, SyntaxError, ValueError, EOFError, struct.error, zlib.error, IndexError, KeyError, TypeError,
    OverflowError, ZeroDivisionError,
)


class _Collect(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@contextlib.contextmanager
def _pillow_quiet(source: str) -> Iterator[None]:
    """Around a call into Pillow: what it says about a damaged file (UserWarnings such as "Tag data larger than
    file. Skipping tag 530", one per tag, and log lines such as "More samples per pixel than can be decoded") is
    said once at debug level as artfx's, not printed on standard error: a user sees artfx's one line, or a clean
    read. Under a lock, as warning filters and logging handlers are the whole process's."""
    handler = _Collect()
    pil = logging.getLogger("PIL")
    with _pillow_lock, warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        pil.addHandler(handler)  # found before logging's last resort, which would print it on stderr
        try:
            yield
        finally:
            pil.removeHandler(handler)
    said = [str(w.message) for w in caught] + [r.getMessage() for r in handler.records]
    if said:
        log.debug("%s: Pillow said: %s", source, one_line("; ".join(dict.fromkeys(said)), 600))


@contextlib.contextmanager
def _decoding(source: str) -> Iterator[None]:
    """Around a call into a decoder: its failures on broken data become one ImageError line."""
    try:
        yield
    except MemoryError as e:
        raise ImageError(f"{source}: not enough memory to decode this image") from e
    except _DECODE_ERRORS as e:
        raise ImageError(f"{source}: corrupt or truncated image ({one_line(e)})") from e


@dataclass
class Picture:
    """A decoded image, ready for the stages, and what was learnt about its file on the way."""

    rgb: np.ndarray  # float32 (H, W, 3) sRGB in [0, 1], EXIF orientation applied, ICC converted to sRGB
    alpha: np.ndarray | None  # float32 (H, W) in [0, 1], or None
    depth: int  # 8 or 16: bits per channel of the source
    format: str  # "PNG", "JPEG", "TIFF", ... (Pillow's name)
    source: str  # path as given, or "-" for stdin
    text: dict[str, str] = field(default_factory=dict)  # PNG text chunks (tEXt/iTXt/zTXt), {} otherwise



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
    img = _open(data, source, allow_huge)
    return _decode(img, data, source)


def image_size(data: bytes) -> tuple[int, int] | None:
    """(width, height) as the file's header declares them, without decoding any pixels and whatever their number
    (None when Pillow cannot tell: :func:`read_image` then says what is wrong with the file)."""
    limit = Image.MAX_IMAGE_PIXELS
    with _pillow_quiet("<bytes>"):
        Image.MAX_IMAGE_PIXELS = None  # only the header is read here: the guard is read_image's
        try:
            with Image.open(io.BytesIO(data)) as probe:
                return probe.size
        except Exception:  # noqa: BLE001 - any failure here is read_image's to report, in its words
            return None
        finally:
            Image.MAX_IMAGE_PIXELS = limit


def read_recipe(path_or_picture: Any) -> dict | None:
    """The recipe stored in a PNG written by artfx (``json.loads`` of the :data:`png.RECIPE_KEY` text chunk), or
    None when there is none. Accepts a :class:`Picture`, a path or the encoded bytes."""
    if isinstance(path_or_picture, Picture):
        text = path_or_picture.text.get(png.RECIPE_KEY)
        source = path_or_picture.source
    else:
        data, source = _read_source(path_or_picture)
        try:
            text = png.read_text(data).get(png.RECIPE_KEY) if data.startswith(png.SIGNATURE) else None
        except ValueError as e:
            raise ImageError(f"{source}: corrupt PNG ({e})") from e
    if text is None:
        return None
    try:
        recipe = jsonlimits.loads(png.recipe_json(text))
    except jsonlimits.JSONLimitError as e:
        raise ImageError(f"bad recipe: {source}: the stored recipe is {e}") from None
    except (ValueError, zlib.error) as e:
        raise ImageError(f"bad recipe: {source}: the stored recipe is not valid JSON ({one_line(e)})") from e
    if not isinstance(recipe, dict):
        raise ImageError(f"bad recipe: {source}: the stored recipe is not a JSON object")
    return recipe


def _read_source(src: Any) -> tuple[bytes, str]:
    if isinstance(src, (bytes, bytearray, memoryview)):
        return bytes(src), "<bytes>"
    source = str(src)
    if source == "-":
        return read_stdin(), "-"
    check_name(source, "image file")
    path = Path(src)
    if path.is_dir():
        raise InputError(f"{source} is a directory, not an image file")
    if path.exists() and not path.is_file():  # a FIFO or a device (/dev/zero) could hang or never end
        raise InputError(f"{source} is not a regular file")
    try:
        return path.read_bytes(), source
    except FileNotFoundError:
        raise InputError(f"{source}: no such file") from None
    except PermissionError:
        raise InputError(f"{source}: permission denied") from None
    except OSError as e:
        raise InputError(f"cannot read {source}: {e.strerror or e}") from None


@contextlib.contextmanager
def pillow_guard(source: str, allow_huge: bool) -> Iterator[None]:
    """Around a Pillow call that may check an image's size again (seeking an animated GIF's frames): with
    ``allow_huge`` the limit is lifted for that call only; Pillow's words on a damaged file are kept quiet."""
    limit = Image.MAX_IMAGE_PIXELS
    with _pillow_quiet(source):
        if allow_huge:
            Image.MAX_IMAGE_PIXELS = None
        try:
            yield
        finally:
            Image.MAX_IMAGE_PIXELS = limit


def open_image(path: str | Path, allow_huge: bool = False) -> Image.Image:
    """A file opened by Pillow (its header read, no pixels decoded) behind artfx's decompression-bomb guard, for
    readers that go on frame by frame (an animated GIF): ImageError for what is not an image or is too large."""
    data, source = _read_source(path)
    return _open(data, source, allow_huge)


def _open(data: bytes, source: str, allow_huge: bool) -> Image.Image:
    """Image.open with the decompression-bomb guard as artfx wants it: any image over MAX_IMAGE_PIXELS is an
    error (Pillow only warns between 1x and 2x), and ``allow_huge`` lifts the limit for this call only. Pillow
    checks the size inside Image.open alone, so the global is changed (under a lock) just around that call."""
    limit = Image.MAX_IMAGE_PIXELS
    with _pillow_quiet(source):
        if allow_huge:
            Image.MAX_IMAGE_PIXELS = None
        try:
            img = Image.open(io.BytesIO(data))
        except Image.UnidentifiedImageError:
            raise ImageError(f"{source}: not an image, or a format artfx cannot read") from None
        except Image.DecompressionBombError as e:
            raise _bomb_error(source, str(e)) from None
        except _DECODE_ERRORS as e:
            raise ImageError(f"{source}: corrupt or truncated image ({one_line(e)})") from e
        finally:
            if allow_huge:
                Image.MAX_IMAGE_PIXELS = limit
    check_pixels(img.width, img.height, source, allow_huge)
    return img


def check_pixels(width: int, height: int, source: str, allow_huge: bool = False) -> None:
    """The decompression-bomb guard on a picture's size, for pictures not opened through Pillow (a video's
    frames, from the stream's declared size before decoding): ImageError over Pillow's MAX_IMAGE_PIXELS unless
    ``allow_huge``."""
    limit = Image.MAX_IMAGE_PIXELS
    if not allow_huge and limit is not None and width * height > limit:
        raise _bomb_error(source, f"{width}x{height} is more than {limit} pixels")


def _bomb_error(source: str, detail: str) -> ImageError:
    return ImageError(
        f"{source}: image too large, possibly a decompression bomb ({one_line(detail)})",
        hint="pass --allow-huge if you trust this file",
    )


def _decode(img: Image.Image, data: bytes, source: str) -> Picture:
    fmt = img.format or "?"
    tiff16 = fmt == "TIFF" and _tiff_bits(img) == 16
    if not tiff16:
        # Full decode first: truncated or corrupt data raises here (with PIL.ImageFile.LOAD_TRUNCATED_IMAGES left
        # False, as it must stay), which also validates the files whose pixels OpenCV then reads.
        with _decoding(source), _quiet_decoder(fmt == "TIFF", source):
            img.load()
    with _pillow_quiet(source):
        orientation = _orientation(img)
    icc = img.info.get("icc_profile") or None
    text = _pillow_text(img) if fmt == "PNG" else {}

    if tiff16:
        # 16-bit TIFF in all its layouts (planar or interleaved, strips or tiles, premultiplied alpha or not)
        # through tifffile: Pillow reads 16-bit RGB as 8 bits and OpenCV ignores planar data and associated alpha.
        rgb, alpha = _decode_tiff16(data, source, icc)
        depth = 16
    elif _is_16bit(img, data):
        # Pillow reads 16-bit RGB(A) and grey+alpha as 8 bits: take the pixels from OpenCV instead.
        rgb, alpha = _decode_cv2(data, source)
        depth = 16
        if icc is not None:
            converted = colour.icc_to_srgb_float(rgb, icc, source)
            rgb = rgb if converted is None else converted
    else:
        rgb, alpha, depth = _decode_pillow(img, icc, source)

    rgb, alpha = _apply_orientation(rgb, orientation), _apply_orientation(alpha, orientation)
    rgb = np.ascontiguousarray(rgb, dtype=np.float32)
    if alpha is not None:
        alpha = np.ascontiguousarray(alpha, dtype=np.float32)
    return Picture(rgb=rgb, alpha=alpha, depth=depth, format=fmt, source=source, text=text)


def _tiff_bits(img: Image.Image) -> int:
    bits = getattr(img, "tag_v2", {}).get(258, (8,))
    bits = bits if isinstance(bits, tuple) else (bits,)
    return max(bits) if bits else 8


def _decode_tiff16(data: bytes, source: str, icc: bytes | None) -> tuple[np.ndarray, np.ndarray | None]:
    """A 16-bit grey, RGB or CMYK TIFF, with or without alpha, as float sRGB (H, W, 3) and alpha: premultiplied
    (associated) alpha divided out, min-is-white grey inverted, CMYK through its ICC profile (else the ink
    formula), an embedded RGB profile converted."""
    import tifffile

    try:
        with _decoding(source), _pillow_quiet(source):  # tifffile warns about odd tags; a real failure raises
            with tifffile.TiffFile(io.BytesIO(data)) as tif:
                page = tif.pages[0]
                arr = page.asarray()
                axes = page.axes
                extra = tuple(int(e) for e in (getattr(page, "extrasamples", ()) or ()))
                photometric = int(page.photometric)
                inkset = page.tags.valueof(332, 1)  # InkSet: 1 CMYK, 2 other inks
    except RuntimeError as e:  # imagecodecs' codec errors (DeflateError, LzwError...) on broken strips
        if not type(e).__module__.startswith("imagecodecs"):
            raise
        raise ImageError(f"{source}: corrupt or truncated image ({one_line(e)})") from e
    if arr.dtype != np.uint16:
        raise ImageError(f"{source}: unsupported 16-bit TIFF sample type {arr.dtype}")
    if "S" in axes and axes.index("S") < axes.index("Y"):  # planar: samples first
        arr = np.moveaxis(arr, axes.index("S"), -1)
    arr = arr.reshape(arr.shape[-3:] if arr.ndim >= 3 and "S" in axes else arr.shape[-2:])
    arr = arr.astype(np.float32) / np.float32(65535)
    if arr.ndim == 2:
        arr = arr[:, :, None]
    if photometric == _SEPARATED:
        if inkset != 1 or arr.shape[2] < 4:
            raise ImageError(f"{source}: a 16-bit TIFF of {arr.shape[2]} inks other than CMYK, which artfx cannot "
                             "read")
        colour_samples = 4
    else:
        colour_samples = 1 if arr.shape[2] in (1, 2) else 3
    values = arr[:, :, :colour_samples]
    alpha = arr[:, :, colour_samples] if arr.shape[2] > colour_samples else None
    if alpha is not None and extra[:1] == (1,):  # associated alpha: stored colours are premultiplied
        safe = np.where(alpha > 0, alpha, 1)[:, :, None]
        values = np.where(alpha[:, :, None] > 0, np.clip(values / safe, 0, 1), 0)
    if photometric == _MIN_IS_WHITE:
        values = 1 - values
    if colour_samples == 4:
        return _cmyk16_to_srgb(values, icc, source), alpha
    rgb = np.repeat(values, 3, axis=2) if colour_samples == 1 else values
    if icc is not None:
        converted = colour.icc_to_srgb_float(rgb, icc, source)
        rgb = rgb if converted is None else converted
    return rgb, alpha


_MIN_IS_WHITE, _SEPARATED = 0, 5  # TIFF PhotometricInterpretation values


def _cmyk16_to_srgb(cmyk: np.ndarray, icc: bytes | None, source: str) -> np.ndarray:
    """CMYK in [0, 1] as sRGB: through the file's profile where it has one (at 8 bits, as LittleCMS takes CMYK
    through Pillow), else with the ink formula, as for 8-bit CMYK files without a profile."""
    if icc is not None:
        levels = np.rint(cmyk * 255).astype(np.uint8)
        converted = colour.icc_to_srgb(Image.fromarray(levels, "CMYK"), icc, source)
        if converted is not None:
            return np.asarray(converted, dtype=np.float32) / np.float32(255)
    return (1 - cmyk[:, :, :3]) * (1 - cmyk[:, :, 3:4])


@contextlib.contextmanager
def _quiet_decoder(active: bool, source: str) -> Iterator[None]:
    """libtiff prints its own warnings on file descriptor 2 (hundreds of lines for a damaged TIFF), and Pillow its
    UserWarnings: while Pillow decodes a TIFF the first go to /dev/null and the others to the debug log, so that a
    user sees artfx's one line. One TIFF at a time: file descriptor 2 is the whole process's."""
    if not active:
        yield
        return
    with _pillow_quiet(source), _quiet_stderr():
        yield


@contextlib.contextmanager
def _quiet_stderr() -> Iterator[None]:
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError, AttributeError):
        yield
        return
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


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
    if mode in _GREY16_MODES:  # 16-bit grey (PNG, TIFF): exact; a tRNS grey value is transparent
        values = np.asarray(img, dtype=np.float32)
        grey = np.clip(values, 0, 65535) / np.float32(65535)
        transparent = img.info.get("transparency")
        alpha = None if transparent is None else (values != np.float32(transparent)).astype(np.float32)
        return np.repeat(grey[:, :, None], 3, axis=2), alpha, 16
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
        img = colour.lab_to_srgb(img, source)
        icc = None
    elif mode not in ("L", "RGB", "CMYK"):  # RGBX, YCbCr, HSV, ...
        img = img.convert("RGB")

    alpha = None
    if img.mode in ("RGBA", "LA"):
        alpha = _float(img.getchannel("A"))
        img = img.convert(img.mode[:-1])  # drop the alpha band (no compositing)

    if icc is not None:
        converted = colour.icc_to_srgb(img, icc, source)
        if converted is not None:
            img = converted
    if img.mode == "CMYK":  # no usable profile: the naive ink formula
        cmyk = np.asarray(img, dtype=np.float32) / np.float32(255)
        rgb = (1 - cmyk[:, :, :3]) * (1 - cmyk[:, :, 3:4])
    elif img.mode == "L":
        rgb = np.repeat(_float(img)[:, :, None], 3, axis=2)
    else:
        rgb = _float(img if img.mode == "RGB" else img.convert("RGB"))
    return rgb, alpha, 8


def _float(img: Image.Image) -> np.ndarray:
    """An 8-bit image as float32 in [0, 1], divided in place: for a 40-megapixel photo the out-of-place division
    held a second 480 MB array (and convert("RGB") of an RGB image a copy of the pixels)."""
    out = np.asarray(img, dtype=np.float32)
    if not out.flags.writeable:
        out = out.copy()
    out /= np.float32(255)
    return out


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


