"""Videos, animated GIFs and photo sequences: frames in and out, optical flow, and what a step sees of the
previous frame.

- :mod:`artfx.video.media`: frames in (PyAV for videos, Pillow for GIFs, artfx's reader for photos) and out
  (H.264/VP9 with the input's audio, GIF, PNG frames), one frame at a time;
- :mod:`artfx.video.flow`: optical flow (OpenCV DIS) once per frame pair, both ways, the occlusion mask, cuts,
  the warping error;
- :mod:`artfx.video.temporal`: :class:`Temporal`, what a step sees of the previous frame (``ctx.temporal``),
  and :class:`Sequence`, which keeps it (``Run.sequence``).

The job that runs a pipeline over every frame is :mod:`artfx.jobs.sequence`. Importing this package is cheap (no
PyAV, no OpenCV).
"""

from __future__ import annotations

VIDEO_SUFFIXES = {".mp4", ".m4v", ".mov", ".mkv", ".webm", ".avi"}
GIF_SUFFIX = ".gif"

__all__ = ["GIF_SUFFIX", "VIDEO_SUFFIXES"]
