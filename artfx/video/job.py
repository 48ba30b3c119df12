"""Running a pipeline over every frame of a video, an animated GIF or a photo sequence, in a job that survives.

- Everything is checked before any work: the output can hold a video (mp4, m4v, mov, mkv, webm, avi, gif, or a
  folder for numbered PNG frames), it and the work folder can be written, no input is replaced, the input
  decodes.
- Frames stream: one decoded, run through the pipeline, written as a PNG to the work folder
  (``.NAME.artfx-work`` beside the output, or ``--work-dir``) as soon as it is finished, then the next.
  Beside them, the temporal state the next frame needs (:meth:`Sequence.state_arrays`) is saved whenever saving
  costs less than a tenth of the time since the last save (every frame for slow pipelines).
- After Ctrl-C, a crash or a reboot the same command finds the work folder (``job.json`` names the recipe and
  the input's hash), restores the saved state and continues after the frame it was saved with; frames are
  deterministic, so the result is the same as an uninterrupted run's. Another recipe finds the old frames
  discarded, with a warning.
- At the end the frames are encoded (audio copied from the input), the output written atomically and the work
  folder removed. Runtime errors remove it too (no partial output); Ctrl-C keeps it for the next run.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import time
from fractions import Fraction
from pathlib import Path
from typing import Callable

import numpy as np

from artfx.errors import ArtfxError, ImageError, Interrupted, OutputError, UsageError
from artfx.io.files import atomic_write, check_writable, sha256_file
from artfx.stage import Context, ProgressCallback, Run
from artfx.video import media
from artfx.video.temporal import Sequence

log = logging.getLogger("artfx")

FRAME_NAME = "frame-{:06d}.png"
JOB_FILE = "job.json"
STATE_FILE = "state.npz"


# ---- what the output is ----------------------------------------------------------------------------------------
def output_kind(output: str) -> str | None:
    """``video``, ``gif`` or ``frames`` (a folder: an existing directory, or a name ending in / or without a
    suffix), or None for a still-image output."""
    path = Path(output)
    suffix = path.suffix.lower()
    if suffix in media.VIDEO_SUFFIXES:
        return "video"
    if suffix == media.GIF_SUFFIX:
        return "gif"
    if output.endswith(("/", os.sep)) or path.is_dir() or (not suffix and output != "-"):
        return "frames"
    return None


def is_moving_input(paths: list[Path]) -> bool:
    return len(paths) == 1 and (paths[0].suffix.lower() in media.VIDEO_SUFFIXES or media.is_animated_gif(paths[0]))


def work_dir_for(dest: Path, opts) -> Path:
    given = getattr(opts, "work_dir", None)
    return Path(given) if given else dest.parent / f".{dest.name}.artfx-work"


def _check_dir_creatable(path: Path, what: str) -> None:
    if path.exists():
        if not path.is_dir():
            raise OutputError(f"the {what} {path} exists and is not a directory")
        if not os.access(path, os.W_OK | os.X_OK):
            raise OutputError(f"the {what} {path} is not writable")
        return
    parent = path.parent
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent
    if not parent.is_dir() or not os.access(parent, os.W_OK | os.X_OK):
        raise OutputError(f"cannot create the {what} {path}: {parent} is not a writable directory")


# ---- the job -------------------------------------------------------------------------------------------------
class Job:
    def __init__(self, pipeline, paths: list[Path], output: str, opts, protected: tuple[Path, ...]):
        self.kind = output_kind(output)
        if self.kind is None:
            raise UsageError(f"{output} cannot hold a video; write .mp4, .webm, .mov, .mkv, .gif or a folder "
                             "for PNG frames")
        self.pipeline, dropped = pipeline.without_side_files()  # not written per video frame
        if dropped:
            log.warning("%s: not written for a video", "; ".join(dropped))
        self.paths, self.opts, self.protected = paths, opts, protected
        self.dest = Path(output.rstrip("/" + os.sep) if self.kind == "frames" else output)
        if self.kind == "frames":
            if self.dest.exists() and not self.dest.is_dir():
                raise OutputError(f"{self.dest} exists and is not a directory")
            _check_dir_creatable(self.dest, "output folder")
            strangers = [p.name for p in self.dest.iterdir()] if self.dest.is_dir() else []
            if strangers and not (self.dest / "recipe.json").is_file() and not opts.force:
                raise OutputError(f"the output folder {self.dest} holds files artfx did not write "
                                  f"({', '.join(sorted(strangers)[:3])}...); give an empty or new folder, or --force")
        else:
            check_writable(self.dest, protected=protected, force=opts.force)
        self.work = work_dir_for(self.dest, opts)
        _check_dir_creatable(self.work, "work folder")
        for p in paths:
            if p.resolve() == self.work.resolve() or self.work.resolve() in p.resolve().parents:
                raise OutputError(f"the work folder {self.work} holds an input")
        self.source = media.open_source(paths, opts.allow_huge, opts)  # a broken input fails here, before any work
        info = self.source.info
        self.fps = Fraction(opts.fps).limit_denominator(1000) if getattr(opts, "fps", None) else info.fps
        if info.kind == "photos":
            info.fps = self.fps  # photos have no rate of their own: --fps is theirs, nothing is dropped
        self.total = None if info.frames is None else max(1, round(info.frames * self.fps / info.fps))
        self.temporal = getattr(opts, "temporal", "on") != "off"

    # ---- identity of the job, for resuming ----------------------------------------------------------------------
    def key(self, recipe: dict) -> str:
        from artfx.options import RunOptions

        looks = {k: recipe.get(k) for k in RunOptions.look_fields() if k != "quality"}
        body = {"pipeline": recipe["pipeline"], **looks, "inputs": recipe["inputs"], "fps": str(self.fps),
                "depth": self.opts.depth}
        return hashlib.sha256(json.dumps(body, sort_keys=True, default=str).encode()).hexdigest()

    def recipe(self) -> dict:
        from artfx import __version__
        from artfx.options import RunOptions

        return {
            "artfx": __version__,
            "pipeline": [{"stage": n, "params": p} for n, p in self.pipeline.raw()],
            "spec": self.pipeline.spec(),
            **{k: getattr(self.opts, k) for k in RunOptions.look_fields()},
            "fps": str(self.fps),
            "inputs": [{"name": p.name, "sha256": sha256_file(p)} for p in self.paths],
        }

    def _prepare_work(self, key: str) -> tuple[int, Sequence]:
        """(first frame to compute, the sequence restored to just before it)."""
        seq = Sequence(enabled=self.temporal)
        job_file = self.work / JOB_FILE
        if self.work.exists():
            try:
                old = json.loads(job_file.read_text())
            except (OSError, ValueError):
                old = {}
            if old.get("key") != key:
                if any(self.work.iterdir()):
                    if not job_file.exists():
                        raise OutputError(f"the work folder {self.work} holds files artfx did not write")
                    log.warning("the work folder %s holds another job's frames: starting again", self.work)
                shutil.rmtree(self.work)
        try:
            self.work.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise OutputError(f"cannot create the work folder {self.work} ({exc.strerror or exc})") from None
        atomic_write(job_file, json.dumps({"key": key}))
        done = 0
        while (self.work / FRAME_NAME.format(done + 1)).exists():
            done += 1
        if not self.temporal or done == 0:
            return done, seq
        state_path = self.work / STATE_FILE
        if not state_path.exists():
            return 0, seq
        try:
            with np.load(state_path, allow_pickle=False) as data:
                saved = seq.load_arrays({k: data[k] for k in data.files})
        except Exception:
            log.warning("the saved state in %s is unreadable: starting again", self.work)
            return 0, Sequence(enabled=self.temporal)
        return min(done, saved + 1), seq

    # ---- running ------------------------------------------------------------------------------------------
    def run(self, on_progress: ProgressCallback | None = None) -> dict:
        recipe = self.recipe()
        start, seq = self._prepare_work(self.key(recipe))
        if start:
            log.warning("continuing from frame %d (the finished frames are in %s)", start + 1, self.work)
        try:
            n = self._frames(start, seq, on_progress)
        except (KeyboardInterrupt, Interrupted):
            self.source.close()
            raise Interrupted(f"interrupted; the finished frames are kept in {self.work}: run the same command "
                              "again to continue") from None
        except BaseException:  # a runtime error while making frames (a broken input...): no partial output
            self.source.close()
            shutil.rmtree(self.work, ignore_errors=True)
            raise
        self.source.close()
        try:
            self._finish(n, recipe)
        except (KeyboardInterrupt, Interrupted):
            raise Interrupted(f"interrupted; the finished frames are kept in {self.work}: run the same command "
                              "again to continue") from None
        except ArtfxError as exc:  # writing the output failed: the frames, which may have taken hours, are kept
            raise type(exc)(f"{exc}; the finished frames are kept in {self.work}: run the same command again "
                            "to write them") from None
        except OSError as exc:
            raise OutputError(f"cannot write {self.dest} ({exc.strerror or exc}); the finished frames are kept in "
                              f"{self.work}: run the same command again to write them") from None
        shutil.rmtree(self.work, ignore_errors=True)
        if seq.cuts:
            log.info("scene cuts before frames %s", ", ".join(str(i + 1) for i in seq.cuts))
        return recipe

    def _frames(self, start: int, seq: Sequence, on_progress: ProgressCallback | None) -> int:
        from artfx.io import resize_long_side

        frames = self.source.frames(self.fps)  # at the output's rate, by each frame's own time
        last_save, save_cost, n, t0 = time.monotonic(), 0.0, 0, time.monotonic()
        resolved: str | None = None
        for i, u8 in enumerate(frames):
            n = i + 1
            if i < start:
                continue
            rgb = u8.astype(np.float32) / np.float32(255)
            if self.opts.max_size:
                rgb, _ = resize_long_side(rgb, self.opts.max_size)
            seq.begin(i, rgb)
            run = Run.from_options(self.opts, protected=self.protected, on_progress=on_progress, sequence=seq)
            run.resolved_device = resolved
            out = self.pipeline.run(rgb, Context(run=run))
            resolved = run.resolved_device
            self._write_frame(i, out)
            if self.temporal and time.monotonic() - last_save >= 10 * save_cost:
                began = time.monotonic()
                arrays = seq.state_arrays()
                atomic_write(self.work / STATE_FILE, lambda tmp: np.savez(tmp, **arrays))
                last_save = time.monotonic()
                save_cost = last_save - began
            if on_progress is not None:
                total = max(self.total or 0, n) if self.total else None
                on_progress("frames", n, total, {"fps": round((n - start) / max(time.monotonic() - t0, 1e-6), 2)})
        if n == 0:
            raise ImageError(f"{self.paths[0]} has no frames")
        return n

    def _write_frame(self, i: int, out: np.ndarray) -> None:
        import cv2

        if self.kind == "frames" and self.opts.depth == 16:
            data = np.clip(np.rint(out * 65535), 0, 65535).astype(np.uint16)
        else:
            data = np.clip(np.rint(out * 255), 0, 255).astype(np.uint8)
        ok, buf = cv2.imencode(".png", np.ascontiguousarray(data[..., ::-1]), [cv2.IMWRITE_PNG_COMPRESSION, 1])
        if not ok:
            raise OutputError(f"cannot encode frame {i + 1}")
        atomic_write(self.work / FRAME_NAME.format(i + 1), buf.tobytes())

    def _read_frame(self, i: int, size: tuple[int, int] | None) -> np.ndarray:
        import cv2

        data = cv2.imread(str(self.work / FRAME_NAME.format(i + 1)), cv2.IMREAD_UNCHANGED)
        if data is None:
            raise OutputError(f"frame {i + 1} is missing from {self.work}")
        rgb = np.ascontiguousarray(data[..., ::-1])
        if size is not None and rgb.shape[:2] != size:
            rgb = cv2.resize(rgb, (size[1], size[0]), interpolation=cv2.INTER_AREA)
        return rgb

    def _finish(self, n: int, recipe: dict) -> None:
        if self.kind == "frames":
            self.dest.mkdir(parents=True, exist_ok=True)
            atomic_write(self.dest / "recipe.json", json.dumps(recipe, indent=1))
            for i in range(n):  # copied, then renamed into place: the work folder may be on another file system
                name = FRAME_NAME.format(i + 1)
                atomic_write(self.dest / name, lambda tmp, src=self.work / name: shutil.copyfile(src, tmp),
                             protected=self.protected, force=self.opts.force)
            for old in self.dest.glob("frame-*.png"):  # an earlier, longer run's frames would follow ours
                index = old.stem.removeprefix("frame-")
                if index.isdigit() and int(index) > n and len(index) == 6:
                    old.unlink()
            return
        first = self._read_frame(0, None)
        size = first.shape[:2]
        audio = self.source.info.audio  # a media.AudioTrack (the window's sound) or None
        suffix = self.dest.suffix.lower()
        if audio is not None and self.kind == "gif":
            log.info("a GIF has no sound: the audio track is left out")

        def encode(tmp: Path) -> None:
            if self.kind == "gif":
                writer = media.GifWriter(tmp, self.fps)
            else:
                writer = media.VideoWriter(tmp, suffix, size[1], size[0], self.fps, self.opts.quality or 80, audio,
                                           comment=json.dumps(recipe))
            try:
                for i in range(n):
                    writer.write(first if i == 0 else self._read_frame(i, size))
                writer.close()
            except BaseException:
                writer.abort()
                raise

        atomic_write(self.dest, encode, protected=self.protected, force=self.opts.force)


def run_sequence(pipeline, paths: list[Path], output: str, opts, protected: tuple[Path, ...] = (),
                 on_progress: ProgressCallback | None = None,
                 on_file: Callable[[Path, Path, Exception | None], None] | None = None) -> dict:
    """Run ``pipeline`` on every frame of ``paths`` (one video or GIF, or several photos) and write ``output``."""
    job = Job(pipeline, paths, output, opts, protected)
    if getattr(opts, "executor", "local") == "ray":  # chunks on a Ray cluster's workers (artfx.executors)
        from artfx.executors.chunks import ray_run

        recipe = ray_run(job, on_progress)
    else:
        recipe = job.run(on_progress)
    if on_file is not None:
        on_file(paths[0], job.dest, None)
    return recipe
