"""What a step sees of the previous frame: :class:`Temporal` (``ctx.temporal``), and the :class:`Sequence` that
keeps it from frame to frame (``Run.sequence``).

The job (:mod:`artfx.video.job`) calls ``sequence.begin(index, frame)`` before running the pipeline on a frame;
the pipeline builds each step's context (``sequence.for_step(step)``) and records what the step took and gave
(``sequence.record(step, input, output)``). The flow between frames is computed once per frame pair here and
shared by every step.

A stage uses it like this (quantize keeps one palette per shot)::

    t = ctx.temporal
    if t is not None and not t.shot_start and "palette" in t.state:
        palette = t.state["palette"]          # the shot's palette
    else:
        palette = fit(...)
    if t is not None:
        t.state["palette"] = palette

``state`` values must be numpy arrays or plain numbers/strings: they are saved with the finished frames so that
an interrupted job continues exactly where it stopped.

Built-in stages: all four use this view (primitive: the previous frame's shapes moved by the flow as the start,
refined together and topped up; see artfx.stages.primitive.temporal). A stage that ignores ``ctx.temporal``
runs frame by frame.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from artfx.video import flow as _flow


@dataclass
class Temporal:
    """One step's view of the previous frame.

    - ``index``: this frame's number (0-based) in the sequence;
    - ``shot_start``: nothing to carry over (the first frame, a frame after a scene cut, or ``--temporal off``);
      ``cut``: a scene cut was found just before this frame;
    - ``prev_input``, ``prev_output``: this step's input and output on the previous frame (None at a shot start);
    - ``flow``: the backward flow (H, W, 2) at the flow's size (pixel (x, y) of this frame was at
      (x + dx, y + dy) in the previous one), ``flow_forward`` the other way, ``mask`` float32 (H, W), 1 where
      the flow is reliable (consistent both ways, not occluded); use :meth:`warp`, :meth:`mask_at` and
      :meth:`move` rather than these raw arrays, as they handle any image size, and :meth:`noise` for how much
      the input changes on its own (noise, compression) where the flow is trusted;
    - ``state``: a dict of the step's own, kept across the frames of a shot (emptied at a cut);
    - ``frame_size``: (H, W) of the pipeline's input frames.
    """

    index: int = 0
    shot_start: bool = True
    cut: bool = False
    prev_input: np.ndarray | None = None
    prev_output: np.ndarray | None = None
    flow: np.ndarray | None = None
    flow_forward: np.ndarray | None = None
    mask: np.ndarray | None = None
    state: dict[str, Any] = field(default_factory=dict)
    frame_size: tuple[int, int] = (0, 0)

    def warp(self, image: np.ndarray, nearest: bool = False) -> np.ndarray:
        """``image`` (any size: it is taken to cover the whole frame) of the previous frame, moved to this frame
        by the flow; float images keep their dtype, ``nearest`` for label maps."""
        if self.flow is None:
            return image.copy()
        return _flow.warp(image, self.flow, nearest)

    def warp_labels(self, labels: np.ndarray) -> np.ndarray:
        """A label map (int (h, w), any size covering the frame) of the previous frame moved to this one: each
        pixel takes, of the four labels around the point it came from, the one holding the most bilinear weight
        (the one the bilinearly warped picture mostly shows) rather than the nearest one's: where two of the four
        agree against a nearer third (diagonal boundaries, thin lines, speckle) they win, so boundaries wander
        less from frame to frame. On the benchmark's camera-like clips quantize's warping error falls by 8-10 %
        with it, slic's by 7-13 %, their distance to the input unchanged."""
        labels = np.asarray(labels)
        if self.flow is None:
            return labels.copy()
        return _flow.warp_labels(labels, self.flow)

    def mask_at(self, h: int, w: int) -> np.ndarray:
        """The validity mask (float32 0/1) at (h, w): 1 where the warped previous frame can be trusted."""
        if self.mask is None:
            return np.zeros((h, w), np.float32)
        return _flow.resize_mask(self.mask, h, w)

    def noise(self, image: np.ndarray, to_space=None, samples: int = 20_000) -> float:
        """How much this step's input moves on its own from frame to frame: the median distance between
        ``image`` (this frame's input to the step) and the previous input moved here by the flow, over the pixels
        the flow trusts (0 at a shot start). On camera footage that is mostly sensor noise and compression, which a
        stage should not follow: a threshold of a few times this keeps its output still where the picture does
        not change. ``to_space`` maps (N, 3) RGB to the stage's colour space (distances in its units; RGB in
        [0, 1] without); at most about ``samples`` pixels (every k-th row and column) are looked at."""
        if self.prev_input is None or self.flow is None or self.mask is None:
            return 0.0
        import cv2

        h, w = image.shape[:2]
        k = max(1, int(np.sqrt(h * w / max(samples, 1))))
        ys, xs = np.arange(0, h, k), np.arange(0, w, k)
        fh, fw = self.flow.shape[:2]
        fy = np.minimum(((ys + 0.5) * fh / h).astype(np.int64), fh - 1)
        fx = np.minimum(((xs + 0.5) * fw / w).astype(np.int64), fw - 1)
        trusted = self.mask[fy[:, None], fx[None, :]] > 0
        if not trusted.any():
            return 0.0
        v = self.flow[fy[:, None], fx[None, :]]
        prev = np.ascontiguousarray(self.prev_input, np.float32)
        ph, pw = prev.shape[:2]
        mx = ((xs[None, :] + v[..., 0] * w / fw) * pw / w).astype(np.float32)
        my = ((ys[:, None] + v[..., 1] * h / fh) * ph / h).astype(np.float32)
        moved = cv2.remap(prev, mx, my, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)[trusted]
        cur = np.asarray(image, np.float32)[ys[:, None], xs[None, :]][trusted]
        if to_space is not None:
            moved, cur = to_space(moved.astype(np.float64)), to_space(cur.astype(np.float64))
        return float(np.median(np.sqrt(((cur - moved) ** 2).sum(-1))))

    def move(self, yx: np.ndarray, h: int, w: int) -> np.ndarray:
        """Points (N, 2) as (y, x) in an (h, w) image of the previous frame, moved to this frame by the forward
        flow (sampled at the nearest flow pixel)."""
        pts = np.asarray(yx, np.float64)
        if self.flow_forward is None or len(pts) == 0:
            return pts.copy()
        fh, fw = self.flow_forward.shape[:2]
        sy, sx = fh / h, fw / w
        iy = np.clip(np.rint((pts[:, 0] + 0.5) * sy - 0.5), 0, fh - 1).astype(np.int64)
        ix = np.clip(np.rint((pts[:, 1] + 0.5) * sx - 0.5), 0, fw - 1).astype(np.int64)
        v = self.flow_forward[iy, ix].astype(np.float64)
        return np.stack([pts[:, 0] + v[:, 1] / sy, pts[:, 1] + v[:, 0] / sx], axis=1)


class Sequence:
    """The temporal state of one run over a sequence of frames (``Run.sequence``).

    ``enabled=False`` (``--temporal off``): every frame is a shot start, nothing is kept, no flow is computed:
    each frame is processed exactly as a still image would be."""

    def __init__(self, enabled: bool = True, flow_side: int = _flow.FLOW_SIDE):
        self.enabled = enabled
        self.flow_side = flow_side
        self.index = -1
        self.frame: np.ndarray | None = None  # the current input frame
        self.pair: _flow.FlowPair | None = None
        self.cut = False
        self.cuts: list[int] = []  # frames that started a new shot after a cut
        self._prev: dict[int, tuple[np.ndarray, np.ndarray]] = {}  # step -> (input, output), previous frame
        self._cur: dict[int, tuple[np.ndarray, np.ndarray]] = {}
        self._state: dict[int, dict[str, Any]] = {}
        self._prev_frame: np.ndarray | None = None

    # ---- driven by the job ---------------------------------------------------------------------------------
    def begin(self, index: int, frame: np.ndarray) -> None:
        """Start frame ``index`` (float32 (H, W, 3)): the flow from the previous frame, cut detection."""
        if self._cur:
            self._prev, self._cur = self._cur, {}
        self.index, self.frame, self.pair, self.cut = index, frame, None, False
        if not self.enabled:
            self._prev, self._state = {}, {}
            return
        prev = self._prev_frame
        if prev is not None and prev.shape == frame.shape:
            self.pair = _flow.estimate(prev, frame, self.flow_side)
            self.cut = self.pair.cut
        elif prev is not None:
            self.cut = True  # a photo sequence whose frames changed size: nothing to carry over
        if self.cut:
            self.cuts.append(index)
        if prev is None or self.cut:
            self._prev, self._state, self.pair = {}, {}, None
        self._prev_frame = frame

    # ---- called by the pipeline ----------------------------------------------------------------------------
    def for_step(self, step: int) -> Temporal:
        size = tuple(self.frame.shape[:2]) if self.frame is not None else (0, 0)
        if not self.enabled:
            return Temporal(index=self.index, frame_size=size)
        state = self._state.setdefault(step, {})
        prev = self._prev.get(step)
        pair = self.pair
        if prev is None or pair is None:
            return Temporal(index=self.index, cut=self.cut, state=state, frame_size=size)
        return Temporal(index=self.index, shot_start=False, cut=self.cut, prev_input=prev[0], prev_output=prev[1],
                        flow=pair.backward, flow_forward=pair.forward, mask=pair.mask, state=state,
                        frame_size=size)

    def record(self, step: int, image: np.ndarray, out: np.ndarray) -> None:
        if self.enabled:
            self._cur[step] = (image, out)

    # ---- saved with the finished frames (resume) -------------------------------------------------------------
    def state_arrays(self) -> dict[str, np.ndarray]:
        """Everything the next frame needs, as named arrays (for ``numpy.savez``)."""
        cur = self._cur or self._prev
        out: dict[str, np.ndarray] = {"index": np.asarray(self.index)}
        if self._prev_frame is not None:
            out["frame"] = self._prev_frame
        for step, (inp, res) in cur.items():
            out[f"in/{step}"], out[f"out/{step}"] = inp, res
        for step, values in self._state.items():
            for key, value in values.items():
                out[f"state/{step}/{key}"] = np.asarray(value)
        return out

    def load_arrays(self, arrays: dict[str, np.ndarray]) -> int:
        """Restore :meth:`state_arrays`; returns the index of the frame it was saved after."""
        self._prev, self._cur, self._state = {}, {}, {}
        self._prev_frame = arrays.get("frame")
        for key, value in arrays.items():
            parts = key.split("/")
            if parts[0] in ("in", "out"):
                step = int(parts[1])
                pair = self._cur.get(step, (None, None))
                self._cur[step] = (value, pair[1]) if parts[0] == "in" else (pair[0], value)
            elif parts[0] == "state":
                self._state.setdefault(int(parts[1]), {})[parts[2]] = value.item() if value.ndim == 0 else value
        self.index = int(arrays["index"])
        return self.index
