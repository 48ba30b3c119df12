"""Resizing float images (area averaging to shrink, bicubic to enlarge)."""

from __future__ import annotations

import numpy as np


def resize_long_side(
    rgb: np.ndarray, max_size: int, alpha: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray | None]:
    """Downscale (never upscale) so that the longer side is at most ``max_size``, averaging areas; ``alpha``
    follows the same way. Returns the inputs themselves when they are already small enough."""
    new_h, new_w = long_side_shape(rgb.shape[:2], max_size)
    if (new_h, new_w) == rgb.shape[:2]:
        return rgb, alpha
    out = resize_to(rgb, new_h, new_w)
    return out, (None if alpha is None else resize_to(alpha, new_h, new_w))


def long_side_shape(shape: tuple[int, int], max_size: int | None) -> tuple[int, int]:
    """(height, width) of a picture of ``shape`` after :func:`resize_long_side` to ``max_size`` (None: as is)."""
    h, w = int(shape[0]), int(shape[1])
    if max_size is None:
        return h, w
    if max_size < 1:
        raise ValueError(f"max_size must be at least 1, not {max_size}")
    long_side = max(h, w)
    if long_side <= max_size:
        return h, w
    scale = max_size / long_side
    return (max_size if h == long_side else max(1, round(h * scale)),
            max_size if w == long_side else max(1, round(w * scale)))


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

