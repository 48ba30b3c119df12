"""Colour management: embedded ICC profiles converted to sRGB.

8-bit pixels go through LittleCMS (Pillow's ImageCms). 16-bit pixels, which ImageCms cannot transform, are
converted exactly in float for matrix/TRC RGB profiles (read from their tags), and through a sampled LUT for
anything else. A profile that cannot be used is reported once and the values are kept as they are.
"""

from __future__ import annotations

import io
import logging
import struct
from typing import Any, Callable

import numpy as np
from PIL import Image

from artfx.errors import ImageError, one_line

log = logging.getLogger("artfx.io")


def srgb_profile() -> Any:
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


def icc_to_srgb(img: Image.Image, icc: bytes, source: str) -> Image.Image | None:
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
        return ImageCms.profileToProfile(img, profile, srgb_profile(), outputMode="RGB")
    except Exception as e:
        log.warning(
            "%s: could not convert colour profile %r to sRGB (%s); using the values as they are",
            source, description, one_line(e),
        )
        return None


def icc_to_srgb_float(rgb: np.ndarray, icc: bytes, source: str) -> np.ndarray | None:
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
    converted = icc_to_srgb(Image.fromarray(lattice, "RGB"), icc, source)
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
    srgb = _icc_tags(srgb_profile().tobytes())
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


def lab_to_srgb(img: Image.Image, source: str) -> Image.Image:
    from PIL import ImageCms

    try:
        return ImageCms.profileToProfile(img, ImageCms.createProfile("LAB"), srgb_profile(), outputMode="RGB")
    except Exception as e:
        raise ImageError(f"{source}: cannot convert its CIELab pixels to sRGB ({one_line(e)})") from e

