"""Region masks for per-region styles: from mask image files, or from an earlier step's labels.

``regions=a.png|b.png``: one greyscale mask per style image (white = this style, black = none, grey = partial),
resized to the content. Pixels no mask covers get no style loss (they only follow the content).

``regions=labels``: the ``labels`` side output of an earlier step (``slic``, ``quantize``). Its regions are
ordered by their mean brightness in the content image and split into as many groups as there are style images,
of about equal area: the first style paints the darkest group, the last the brightest. With two styles and a
``quantize:k=2`` step each colour gets its own style; with a ``slic`` step, dark and bright superpixels do.
"""

from __future__ import annotations

from typing import Callable

import numpy as np

from artfx.errors import ParamError

LUMA = np.array([0.299, 0.587, 0.114], dtype=np.float32)


def _resize_nearest(labels: np.ndarray, h: int, w: int) -> np.ndarray:
    ys = (np.arange(h) * labels.shape[0] / h).astype(np.int64)
    xs = (np.arange(w) * labels.shape[1] / w).astype(np.int64)
    return labels[ys][:, xs]


def masks_from_labels(labels, content: np.ndarray, n_styles: int) -> np.ndarray:
    """Group an int label map into ``n_styles`` masks by mean brightness; returns float32 (n, H, W)."""
    if labels is None:
        raise ParamError(
            "regions=labels needs an earlier step that emits labels (slic or quantize), e.g. slic,style:regions=labels"
        )
    labels = np.asarray(labels)
    if labels.ndim != 2:
        raise ParamError(f"regions=labels: the labels side output has shape {labels.shape}, not (H, W)")
    h, w = content.shape[:2]
    if labels.shape != (h, w):
        labels = _resize_nearest(labels, h, w)
    ids, inverse, counts = np.unique(labels.ravel(), return_inverse=True, return_counts=True)
    if len(ids) < n_styles:
        raise ParamError(
            f"regions=labels found {len(ids)} regions but {n_styles} style images were given; "
            "give at most as many styles as regions"
        )
    luma = content.reshape(-1, 3) @ LUMA
    mean_luma = np.bincount(inverse, weights=luma, minlength=len(ids)) / counts
    order = np.argsort(mean_luma, kind="stable")
    cum = np.cumsum(counts[order]) - counts[order] / 2.0  # area midpoint of each region in brightness order
    group_sorted = np.minimum((cum / counts.sum() * n_styles).astype(np.int64), n_styles - 1)
    # every style gets at least one region, even when the areas are very unequal
    n_ids = len(ids)
    for i in range(n_ids):
        lo = n_styles - (n_ids - i)  # enough regions left for the remaining styles
        hi = 0 if i == 0 else int(group_sorted[i - 1]) + 1  # no style skipped
        group_sorted[i] = min(max(int(group_sorted[i]), lo), hi, n_styles - 1)
    group = np.empty(len(ids), dtype=np.int64)
    group[order] = group_sorted
    pix_group = group[inverse].reshape(h, w)
    return np.stack([(pix_group == g).astype(np.float32) for g in range(n_styles)])


def masks_from_files(paths: list[str], shape: tuple[int, int], n_styles: int,
                     read: Callable[[str], np.ndarray]) -> np.ndarray:
    """One greyscale mask per style image (read as RGB by ``read``, channels averaged), resized to ``shape``
    (H, W); returns float32 (n, H, W)."""
    from artfx.io import resize_to

    if len(paths) != n_styles:
        raise ParamError(f"regions gives {len(paths)} mask files for {n_styles} style images; give one per style")
    h, w = shape
    return np.stack([resize_to(read(p).mean(axis=2), h, w) for p in paths])


def build_masks(regions: list[str], content: np.ndarray, n_styles: int, labels=None,
                read: Callable[[str], np.ndarray] | None = None) -> np.ndarray | None:
    """The masks asked for by the ``regions`` parameter, or None when the styles cover the whole image; mask
    files are read by ``read`` (the context's reader: EXIF, 16-bit, the bomb guard)."""
    if not regions:
        return None
    if len(regions) == 1 and regions[0] == "labels":
        return masks_from_labels(labels, content, n_styles)
    if read is None:
        from artfx.io import read_image

        def read(p: str) -> np.ndarray:
            return read_image(p).rgb

    return masks_from_files(regions, content.shape[:2], n_styles, read)
