"""Optical flow between two frames, computed once per frame pair and shared by every step.

OpenCV's DIS flow (Kroeger et al. 2016) on greyscale frames shrunk to at most ``FLOW_SIDE`` px on the long side
(DIS at 720p costs 3-4x more for no visible gain in warping), both ways, so that occlusions and unreliable
vectors are found by the forward-backward consistency check of Sundaram et al. (2010), as Ruder et al. (2016) use
it: a pixel of frame t is kept when ``|b + f(x + b)|^2 <= 0.01 (|b|^2 + |f(x + b)|^2) + 0.5`` (b the backward,
f the forward flow) and it is not on a motion boundary (``|grad b|^2 <= 0.01 |b|^2 + 0.002``).

Conventions: ``backward[y, x] = (dx, dy)`` means that pixel (x, y) of frame t was at (x + dx, y + dy) in frame
t-1, so ``prev`` warped to frame t is ``prev(x + backward(x))`` (:func:`warp`). Vectors are in pixels of the
array they are stored with; :func:`resize_flow` rescales them with the array.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

FLOW_SIDE = 512  # long side (px) the flow is computed at
MIN_SIDE = 32  # ...and each side at least this: DIS fails below ~12 px and crashed (SIGSEGV) at 12x40 (OpenCV 5.1)
CUT_VALID = 0.2  # a cut when fewer than this fraction of pixels have a consistent flow...
CUT_HIST = 0.55  # ...or when the colour histograms' Bhattacharyya distance exceeds this


@dataclass
class FlowPair:
    """What every step may use about the motion from frame t-1 to frame t (at ``shape``, the flow's size)."""

    backward: np.ndarray  # float32 (h, w, 2): pixel of t -> its place in t-1
    forward: np.ndarray  # float32 (h, w, 2): pixel of t-1 -> its place in t
    mask: np.ndarray  # float32 (h, w): 1 where the backward flow is consistent (not occluded), else 0
    cut: bool  # a scene cut between t-1 and t (then the flow means nothing)

    @property
    def shape(self) -> tuple[int, int]:
        return self.backward.shape[:2]


def _grey(rgb: np.ndarray, side: int) -> np.ndarray:
    """Greyscale at most ``side`` px on the long side, and at least MIN_SIDE on each side: a tiny frame (1x1, a
    4x4 GIF) is enlarged for DIS, which needs room for its patches; the flow comes back at that size and
    :func:`resize_flow` scales it to any other."""
    import cv2

    h, w = rgb.shape[:2]
    s = min(1.0, side / max(h, w))
    u8 = np.clip(np.rint(rgb * 255), 0, 255).astype(np.uint8)
    grey = cv2.cvtColor(u8, cv2.COLOR_RGB2GRAY)
    gh, gw = max(1, round(h * s)), max(1, round(w * s))
    size = (max(gw, MIN_SIDE), max(gh, MIN_SIDE))
    if size != (w, h):
        shrink = size[0] <= w and size[1] <= h
        grey = cv2.resize(grey, size, interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR)
    return grey


def resize_flow(flow: np.ndarray, h: int, w: int) -> np.ndarray:
    """``flow`` (fh, fw, 2) resampled to (h, w), its vectors scaled to the new pixel size."""
    import cv2

    fh, fw = flow.shape[:2]
    if (fh, fw) == (h, w):
        return flow
    out = cv2.resize(flow, (w, h), interpolation=cv2.INTER_LINEAR)
    out[..., 0] *= w / fw
    out[..., 1] *= h / fh
    return out


def resize_mask(mask: np.ndarray, h: int, w: int) -> np.ndarray:
    import cv2

    if mask.shape == (h, w):
        return mask
    return (cv2.resize(mask, (w, h), interpolation=cv2.INTER_LINEAR) > 0.999).astype(np.float32)


def warp(image: np.ndarray, backward: np.ndarray, nearest: bool = False) -> np.ndarray:
    """``image`` of frame t-1 moved to frame t along ``backward`` (resized to the image first); pixels whose
    source falls outside take the nearest edge pixel (the mask marks them invalid)."""
    import cv2

    h, w = image.shape[:2]
    flow = resize_flow(backward, h, w)
    gx, gy = np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))
    mode = cv2.INTER_NEAREST if nearest else cv2.INTER_LINEAR
    src = np.ascontiguousarray(image)
    if src.dtype == np.float64:
        src = src.astype(np.float32)
    return cv2.remap(src, gx + flow[..., 0], gy + flow[..., 1], mode, borderMode=cv2.BORDER_REPLICATE)


def warp_labels(labels: np.ndarray, backward: np.ndarray) -> np.ndarray:
    """A label map (int (h, w)) of frame t-1 moved to frame t along ``backward`` (resized to it first): each pixel
    takes the label holding the most bilinear weight among the four pixels around its source point (outside
    the frame: the nearest edge). Only pixels whose four differ are voted on (about 5 ms at 640x360)."""
    h, w = labels.shape[:2]
    flow = resize_flow(backward, h, w)
    sx = np.clip(flow[..., 0] + np.arange(w, dtype=np.float32)[None, :], 0, w - 1)
    sy = np.clip(flow[..., 1] + np.arange(h, dtype=np.float32)[:, None], 0, h - 1)
    x0, y0 = sx.astype(np.int32), sy.astype(np.int32)  # floor: both are >= 0
    x1, y1 = np.minimum(x0 + 1, w - 1), np.minimum(y0 + 1, h - 1)
    out = labels[y0, x0]
    around = [out, labels[y0, x1], labels[y1, x0], labels[y1, x1]]
    mixed = np.flatnonzero(((around[0] != around[1]) | (around[0] != around[2]) | (around[0] != around[3])).ravel())
    if not len(mixed):
        return out
    fx, fy = (sx - x0).ravel()[mixed], (sy - y0).ravel()[mixed]
    near = [a.ravel()[mixed] for a in around]
    weights = [(1 - fx) * (1 - fy), fx * (1 - fy), (1 - fx) * fy, fx * fy]
    best, most = near[0], np.full(len(mixed), -1.0, np.float32)
    for a in range(4):
        total = sum(weights[b] * (near[b] == near[a]) for b in range(4))
        better = total > most
        best, most = np.where(better, near[a], best), np.where(better, total, most)
    out = out.copy()
    out.ravel()[mixed] = best
    return out


def consistency(backward: np.ndarray, forward: np.ndarray) -> np.ndarray:
    """float32 (h, w) mask of the pixels of frame t whose flow passes the forward-backward check, lands inside
    frame t-1 and is not on a motion boundary."""
    import cv2

    h, w = backward.shape[:2]
    gx, gy = np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))
    mx, my = gx + backward[..., 0], gy + backward[..., 1]
    f_at = cv2.remap(forward, mx, my, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    diff = ((backward + f_at) ** 2).sum(-1)
    mag = (backward**2).sum(-1) + (f_at**2).sum(-1)
    ok = diff <= 0.01 * mag + 0.5
    du = np.gradient(backward[..., 0])
    dv = np.gradient(backward[..., 1])
    grad = du[0] ** 2 + du[1] ** 2 + dv[0] ** 2 + dv[1] ** 2
    ok &= grad <= 0.01 * (backward**2).sum(-1) + 0.002
    ok &= (mx >= 0) & (mx <= w - 1) & (my >= 0) & (my <= h - 1)
    return ok.astype(np.float32)


def _histogram_distance(a: np.ndarray, b: np.ndarray) -> float:
    import cv2

    def hist(rgb: np.ndarray) -> np.ndarray:
        small = cv2.resize(rgb, (64, 64), interpolation=cv2.INTER_AREA) if rgb.shape[0] * rgb.shape[1] > 4096 \
            else rgb
        u8 = np.clip(np.rint(small * 255), 0, 255).astype(np.uint8)
        hh = cv2.calcHist([u8], [0, 1, 2], None, [8, 8, 8], [0, 256, 0, 256, 0, 256])
        return cv2.normalize(hh, hh).flatten()

    return float(cv2.compareHist(hist(a), hist(b), cv2.HISTCMP_BHATTACHARYYA))


def histogram_cut(prev: np.ndarray, cur: np.ndarray) -> bool:
    """A scene cut by the colour histograms alone (one of :func:`estimate`'s two signs, the one that needs no
    flow): what a job's scan for cuts uses to start chunks where a local run starts a shot too."""
    return _histogram_distance(prev, cur) > CUT_HIST


def estimate(prev: np.ndarray, cur: np.ndarray, side: int = FLOW_SIDE) -> FlowPair:
    """The flow pair between two frames (float32 (H, W, 3) in [0, 1], same size), at most ``side`` px long."""
    import cv2

    a, b = _grey(prev, side), _grey(cur, side)
    dis = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_MEDIUM)
    forward = dis.calc(a, b, None)
    backward = dis.calc(b, a, None)
    mask = consistency(backward, forward)
    cut = float(mask.mean()) < CUT_VALID or histogram_cut(prev, cur)
    return FlowPair(backward, forward, mask, cut)


def warping_error(out_prev: np.ndarray, out_cur: np.ndarray, pair: FlowPair) -> float:
    """Lai et al. (2018): the mean squared difference between an output frame and the previous output frame
    warped by the flow of the input frames, over the pixels the flow sees (not occluded)."""
    h, w = out_cur.shape[:2]
    warped = warp(out_prev, pair.backward)
    mask = resize_mask(pair.mask, h, w)
    sq = ((out_cur.astype(np.float64) - warped) ** 2).mean(-1)
    return float((sq * mask).sum() / max(mask.sum(), 1.0))


def sequence_warping_error(inputs, outputs, side: int = FLOW_SIDE) -> float:
    """The mean :func:`warping_error` over consecutive frames (float images in [0, 1] or uint8), the flow taken
    from the input frames; frame pairs across a scene cut are left out."""
    errors = []
    prev_in = prev_out = None
    for a, b in zip(inputs, outputs):
        a = a.astype(np.float32) / 255 if a.dtype == np.uint8 else a
        b = b.astype(np.float32) / 255 if b.dtype == np.uint8 else b
        if prev_in is not None:
            pair = estimate(prev_in, a, side)
            if not pair.cut:
                errors.append(warping_error(prev_out, b, pair))
        prev_in, prev_out = a, b
    return float(np.mean(errors)) if errors else 0.0
