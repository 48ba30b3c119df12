"""Videos, animated GIFs and photo sequences: any pipeline on every frame, without flicker, in jobs that survive.

- :mod:`artfx.video.media`: frames in (PyAV for videos, Pillow for GIFs, artfx's reader for photos) and out
  (H.264/VP9 with the input's audio, GIF, PNG frames), one frame at a time;
- :mod:`artfx.video.flow`: optical flow (OpenCV DIS) once per frame pair, both ways, the occlusion mask, cuts,
  the warping error;
- :mod:`artfx.video.temporal`: :class:`Temporal`, what a step sees of the previous frame (``ctx.temporal``),
  and :class:`Sequence`, which keeps it (``Run.sequence``);
- :mod:`artfx.video.job`: the job: checks, the frame loop, the work folder and resuming, the final encode.

Importing this package is cheap (no PyAV, no OpenCV): the runner asks :func:`wants_sequence` on every run.
"""

from __future__ import annotations

from pathlib import Path

from artfx.errors import InputError, UsageError

VIDEO_SUFFIXES = {".mp4", ".m4v", ".mov", ".mkv", ".webm", ".avi"}


def wants_sequence(paths: list[Path], batch: bool, output: str) -> bool:
    """Whether these inputs and this output make a sequence job: a video input (whatever the output: a still
    output is refused there), an animated GIF to a moving output, or several photos to a video or GIF. One
    still photo to a .gif is not: it is written as a still (indexed) GIF."""
    from artfx.video.job import is_moving_input, output_kind

    kind = output_kind(output)
    moving_out = kind in ("video", "gif")
    for p in paths:
        if p.suffix.lower() in VIDEO_SUFFIXES and not p.exists():
            raise InputError(f"input {str(p)!r} does not exist")
    if len(paths) == 1 and paths[0].suffix.lower() in VIDEO_SUFFIXES:
        return True
    if len(paths) > 1 and any(p.suffix.lower() in VIDEO_SUFFIXES for p in paths):
        raise UsageError("give one video at a time (several photos, or one video or GIF, make one animation)")
    if is_moving_input(paths) and kind is not None:
        return True
    if moving_out and batch:
        return True
    if kind == "video" and not batch:  # one still to a .gif is a still GIF (an indexed picture)
        raise UsageError(f"{output}: a video needs a video, an animated GIF or several photos as input")
    return False


__all__ = ["VIDEO_SUFFIXES", "wants_sequence"]
