"""Sequences: a pipeline over every frame of a video, an animated GIF or a photo sequence, in a job that survives.

- Everything is checked before any work (:func:`artfx.jobs.plan.sequence`): the output can hold a video (mp4,
  m4v, mov, mkv, webm, avi, gif, or a folder for numbered PNG frames), it and the work folder can be written, no
  input is replaced; the input opens, and its declared frame size passes the decompression-bomb guard and the
  memory estimate before a frame is decoded (:func:`artfx.jobs.render.admit`).
- One frame loop, :func:`run_chunk`: frames decoded one at a time, each through the work unit
  (:func:`artfx.jobs.render.render`) with the sequence's temporal view, encoded as a PNG and handed back as soon
  as it is made. Locally the whole clip is one chunk; on a Ray cluster the clip is cut into chunks (at scene cuts
  where it has them, else into parts that start :data:`WARMUP` frames early so that their temporal state is warm),
  one per worker.
- The driver writes every finished frame into the work folder (:class:`WorkFolder`: ``.NAME.artfx-work`` beside
  the output, or ``--work-dir``), with its hash in the folder's index, and locally the temporal state the next
  frame needs whenever saving costs less than a tenth of the time since the last save.
- After Ctrl-C, a crash, a full disk or a reboot the same command finds the work folder (its marker names the
  job), checks every frame against its hash and continues after the last frame that matches, from a saved state
  that matches (or, on a cluster, after a warm-up): the result equals an uninterrupted run's. Only files artfx
  wrote there (listed in the index) are ever removed; a folder holding anything else is refused.
- At the end the frames are encoded (audio copied from the input), the output written atomically and the work
  folder's files removed.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import math
import os
import re
import time
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any, Iterator

import numpy as np

from artfx import executors
from artfx import recipe as recipes
from artfx.errors import ArtfxError, ImageError, Interrupted, OutputError, UsageError
from artfx.io import Picture, atomic_write
from artfx.jobs import plan as planner
from artfx.jobs.pieces import Files, Shared, build_pipeline, materialise, pack, pack_files
from artfx.jobs.render import Work, admit, render
from artfx.options import RunOptions
from artfx.pipeline import Pipeline
from artfx.stage import Report
from artfx.video import media
from artfx.video.temporal import Sequence

log = logging.getLogger("artfx")

FRAME_NAME = "frame-{:06d}.png"
MARKER = "job.json"
INDEX = "index.jsonl"
STATE = "state.npz"
_OURS = re.compile(r"frame-\d{6}\.png|state\.npz")  # the only names the index may list
WARMUP = 5  # frames a mid-shot chunk starts early, computed only to warm up the temporal state


# ---- the work folder -----------------------------------------------------------------------------------------
class WorkFolder:
    """A sequence job's work folder. Its marker (``job.json``) names the job; its index (``index.jsonl``, a line
    written before each file) lists every file artfx put there with its hash. Only those files are ever
    removed, and a folder holding anything else is refused."""

    def __init__(self, path: Path, key: str):
        self.path, self.key = path, key
        self.made = False
        self.entries: dict[str, dict[str, Any]] = {}

    # ---- claiming ---------------------------------------------------------------------------------------------
    def _marker(self) -> dict[str, Any] | None:
        try:
            marker = json.loads((self.path / MARKER).read_text())
        except (OSError, ValueError):
            return None
        return marker if isinstance(marker, dict) and isinstance(marker.get("key"), str) else None

    def _read_index(self) -> dict[str, dict[str, Any]]:
        entries: dict[str, dict[str, Any]] = {}
        try:
            lines = (self.path / INDEX).read_text().splitlines()
        except (OSError, UnicodeDecodeError):
            return entries
        for line in lines:
            try:
                entry = json.loads(line)
            except ValueError:  # a line torn by a crash
                continue
            if isinstance(entry, dict) and isinstance(entry.get("file"), str) and _OURS.fullmatch(entry["file"]) \
                    and isinstance(entry.get("sha256"), str):
                entries[entry["file"]] = entry
        return entries

    @staticmethod
    def _is_temp(name: str) -> bool:
        return name.startswith(".") and ".artfx-tmp-" in name  # a write interrupted mid-way (atomic_write)

    def claim(self) -> None:
        """Make the folder this job's: a new folder is made and marked; this job's folder is kept (to continue);
        another job's has its files removed; a folder holding files artfx did not write is refused."""
        if not self.path.exists():
            try:
                self.path.mkdir(parents=True)
            except OSError as exc:
                raise OutputError(f"cannot create the work folder {self.path} ({exc.strerror or exc})") from None
            self.made = True
            self._mark()
            return
        marker = self._marker()
        names = sorted(p.name for p in self.path.iterdir())
        listed = set(self._read_index()) if marker else set()
        strangers = [n for n in names if n not in listed | {MARKER, INDEX} and not self._is_temp(n)]
        if strangers or (names and marker is None):
            shown = ", ".join(strangers[:3] or names[:3]) + ("..." if len(strangers or names) > 3 else "")
            raise OutputError(f"the work folder {self.path} holds files artfx did not write ({shown})",
                              hint="give another --work-dir, or an empty or new folder")
        self.made = bool(marker and marker.get("made"))
        if marker is not None and marker["key"] != self.key:
            log.warning("the work folder %s holds another job's frames: starting again", self.path)
            self._remove_files()
        if marker is None or marker["key"] != self.key:
            self._mark()
        self.entries = self._read_index()
        atomic_write(self.path / INDEX, "".join(json.dumps(e) + "\n" for e in self.entries.values()))

    def _mark(self) -> None:
        atomic_write(self.path / MARKER, json.dumps({"artfx-work": 1, "key": self.key, "made": self.made}))
        atomic_write(self.path / INDEX, "")
        self.entries = {}

    # ---- files ------------------------------------------------------------------------------------------------
    def add(self, name: str, data: bytes, **extra: Any) -> None:
        """Write a file, listed in the index (with its hash) before it exists: every file artfx makes here is
        listed, even one a crash left half-written."""
        entry = {"file": name, "sha256": hashlib.sha256(data).hexdigest(), **extra}
        with open(self.path / INDEX, "a", encoding="utf-8") as f:
            f.write(json.dumps(entry) + "\n")
            f.flush()
            os.fsync(f.fileno())
        atomic_write(self.path / name, data)
        self.entries[name] = entry

    def _matches(self, name: str) -> bytes | None:
        entry = self.entries.get(name)
        try:
            data = (self.path / name).read_bytes()
        except OSError:
            return None
        return data if entry is not None and hashlib.sha256(data).hexdigest() == entry["sha256"] else None

    def frames(self) -> set[int]:
        """The frames (0-based) whose files are there and match their hashes."""
        return {int(name[6:12]) - 1 for name in self.entries if name.startswith("frame-")
                and self._matches(name) is not None}

    def device(self) -> str | None:
        """The device the job's finished frames were made on, as the index recorded it."""
        return next((e["device"] for e in self.entries.values() if isinstance(e.get("device"), str)), None)

    def state(self) -> dict[str, np.ndarray] | None:
        """The saved temporal state, if its file matches its hash."""
        data = self._matches(STATE)
        if data is None:
            return None
        try:
            with np.load(io.BytesIO(data), allow_pickle=False) as arrays:
                return {k: arrays[k] for k in arrays.files}
        except Exception:  # noqa: BLE001 - an unreadable state: the job starts again
            return None

    def frame(self, i: int) -> bytes:
        """A finished frame's PNG, checked against its hash."""
        data = self._matches(FRAME_NAME.format(i + 1))
        if data is None:
            raise ArtfxError(f"frame {i + 1} in the work folder {self.path} is missing or changed; run the same "
                             "command again to make it again")
        return data

    def _remove_files(self) -> None:
        """Remove the files the index lists, each only if it is what artfx wrote (its hash), then the index and
        the marker, and the half-written temporary files of interrupted writes."""
        self.entries = self._read_index()
        for name in list(self.entries):
            if self._matches(name) is not None:
                (self.path / name).unlink()
        for p in self.path.iterdir():
            if self._is_temp(p.name):
                p.unlink(missing_ok=True)
        (self.path / INDEX).unlink(missing_ok=True)
        (self.path / MARKER).unlink(missing_ok=True)
        self.entries = {}

    def has_frames(self) -> bool:
        """Whether any finished frame is listed and there (no hashing: for a quick look on the way out)."""
        return any(n.startswith("frame-") and (self.path / n).is_file() for n in self.entries)

    def remove(self) -> None:
        """Remove the files this job wrote, and the folder if artfx made it and nothing else is left there."""
        self._remove_files()
        if self.made:
            try:
                self.path.rmdir()
            except OSError:
                pass


# ---- chunks (a Ray cluster's share of a clip) ------------------------------------------------------------------
@dataclass
class Chunk:
    first: int  # the first frame computed (warm-up included)
    start: int  # the first frame kept
    end: int  # one past the last frame kept


def plan_chunks(total: int, cuts: list[int], workers: int, temporal: bool) -> list[Chunk]:
    """Chunks of about ``total / workers`` frames: shots (split at ``cuts``) grouped, or split with a warm-up."""
    share = max(1, math.ceil(total / max(1, workers)))
    if not temporal:
        return [Chunk(a, a, min(total, a + share)) for a in range(0, total, share)]
    bounds = [0, *sorted(c for c in set(cuts) if 0 < c < total), total]
    units: list[Chunk] = []
    for a, b in zip(bounds, bounds[1:]):
        parts = max(1, round((b - a) / share)) if b - a > share * 1.5 else 1
        edges = [a + (b - a) * k // parts for k in range(parts + 1)]
        units += [Chunk(max(a, s - WARMUP) if s > a else s, s, e) for s, e in zip(edges, edges[1:])]
    chunks: list[Chunk] = []
    for unit in units:  # whole shots side by side share a chunk, up to a worker's share
        last = chunks[-1] if chunks else None
        if last is not None and unit.first == unit.start and unit.end - last.start <= share:
            last.end = unit.end
        else:
            chunks.append(unit)
    return chunks


def resume_at(chunk: Chunk, have: set[int]) -> Chunk:
    """A chunk a stopped job left half done goes on from its first missing frame, warming up first."""
    start = next(i for i in range(chunk.start, chunk.end) if i not in have)
    return chunk if start == chunk.start else Chunk(max(chunk.first, start - WARMUP), start, chunk.end)


# ---- the frame loop (on a worker) ------------------------------------------------------------------------------
@dataclass
class Clip:
    """One chunk of a clip, as it travels to a worker."""

    raw: list  # the pipeline (packed when remote)
    fps: Fraction  # the output's frame rate
    temporal: bool
    sixteen: bool  # frames written as 16-bit PNG (a folder output at --depth 16)
    chunk: Chunk
    pipeline: Pipeline | None = None  # local: the pipeline itself (remote: raw, rebuilt on the worker)
    paths: list[str] = field(default_factory=list)  # local: the input files (remote: Shared.inputs)
    state: dict[str, np.ndarray] | None = None  # local: the saved temporal state to continue from
    keep_state: bool = False  # local: hand the temporal state back with each frame (the driver saves it)
    protected: tuple[Path, ...] = ()


def open_frames(paths: list[Path], opts: RunOptions, fps: Fraction) -> tuple[Any, Iterator[np.ndarray]]:
    """(the source, its frames at the output's rate ``fps``). Photos have no rate of their own: theirs is fps."""
    source = media.open_source(paths, opts.allow_huge, opts)
    if source.info.kind == "photos":
        source.info.fps = fps
    return source, source.frames(fps)  # at the output's rate, by each frame's own time


def encode_frame(out: np.ndarray, sixteen: bool) -> bytes:
    """A finished frame as the work folder keeps it: PNG, fast compression, 16-bit for a 16-bit frame folder."""
    import cv2

    if sixteen:
        data = np.clip(np.rint(out * 65535), 0, 65535).astype(np.uint16)
    else:
        data = np.clip(np.rint(out * 255), 0, 255).astype(np.uint8)
    ok, buf = cv2.imencode(".png", np.ascontiguousarray(data[..., ::-1]), [cv2.IMWRITE_PNG_COMPRESSION, 1])
    if not ok:
        raise OutputError("cannot encode a frame")
    return buf.tobytes()


def run_chunk(clip: Clip, shared: Shared, report: Report | None) -> Iterator[dict[str, Any]]:
    """The one frame loop: run a chunk's frames in order through the work unit, yielding {"frame": index,
    "png": bytes, "device"} (and locally "state": a function giving the temporal state) for each kept frame."""
    opts, chunk = shared.opts, clip.chunk
    if clip.paths:
        paths = [Path(p) for p in clip.paths]
    else:
        folder = materialise(shared.inputs)
        paths = [Path(folder, name) for name, _ in shared.inputs.items]
    source, frames = open_frames(paths, opts, clip.fps)
    try:
        seq = Sequence(enabled=clip.temporal)
        if clip.state is not None:
            seq.load_arrays(clip.state)
        pipeline = clip.pipeline if clip.pipeline is not None else build_pipeline(clip.raw, shared.files)
        work = Work(pipeline, opts, protected=clip.protected, sequence=seq, keep_best=False, said=shared.said)
        name = str(paths[0]) if len(paths) == 1 else f"{paths[0].parent}/"
        for i, u8 in enumerate(frames):
            if i >= chunk.end:
                break
            if i < chunk.first:
                continue
            picture = Picture(u8.astype(np.float32) / np.float32(255), None, 8, "frame", f"frame {i + 1} of {name}")
            rendered = render(work, picture, report, frame=i)
            if i >= chunk.start:
                out = {"frame": i, "png": encode_frame(rendered.image, clip.sixteen), "device": rendered.device,
                       "cut": seq.cut}
                if clip.keep_state:
                    out["state"] = seq.state_arrays
                yield out
    finally:
        source.close()


# ---- the driver ----------------------------------------------------------------------------------------------
def scan(paths: list[Path], opts: RunOptions, fps: Fraction, temporal: bool) -> tuple[int, list[int]]:
    """(frames in the clip at the output's rate, the colour-histogram cuts) found by decoding it once here; a
    chunk that starts at such a cut starts a shot in a local run too, so its frames are the local run's."""
    from artfx.io import resize_long_side
    from artfx.video import flow

    source, frames = open_frames(paths, opts, fps)
    cuts, prev, n = [], None, 0
    try:
        for i, u8 in enumerate(frames):
            n = i + 1
            if not temporal:
                continue
            rgb = u8.astype(np.float32) / np.float32(255)
            if opts.max_size:
                rgb, _ = resize_long_side(rgb, opts.max_size)
            if prev is not None and prev.shape == rgb.shape and flow.histogram_cut(prev, rgb):
                cuts.append(i)
            prev = rgb
    finally:
        source.close()
    return n, cuts


def _kept(work: Path) -> str:
    return f"the finished frames are kept in {work}: the same command continues from there"


def run(pipeline: Pipeline, paths: list[Path], output: str, opts: RunOptions, report: Report) -> dict[str, Any]:
    """Run ``pipeline`` on every frame of ``paths`` (one video or GIF, or several photos) and write ``output``.
    Returns the recipe written with it."""
    plan = planner.sequence(pipeline, paths, output, opts)
    source = media.open_source(plan.paths, opts.allow_huge, opts)  # a broken input fails here, before any work
    try:
        info = source.info
    finally:
        source.close()
    fps = Fraction(opts.fps).limit_denominator(1000) if opts.fps else info.fps
    rate_in = fps if info.kind == "photos" else info.fps  # photos have no rate of their own: theirs is fps
    total = None if info.frames is None else max(1, round(info.frames * fps / rate_in))
    temporal = opts.temporal != "off"
    work = Work(plan.pipeline, opts)
    admit(work, (info.height, info.width), str(plan.paths[0]))  # before decoding a frame: the declared size
    inputs = [recipes.source_of(p, record_path=opts.record_path) for p in plan.paths]
    asked = recipes.build(plan.pipeline, opts, opts.device, inputs, frame_rate=str(fps))
    folder = WorkFolder(plan.work, recipes.key(asked, opts.device))
    folder.claim()
    stages = [s.name for s in plan.pipeline.steps]
    device = None
    try:  # a clip that does not say its length may have a frame for every worker of a cluster
        with executors.pick(opts, stages, total or 1 << 30) as ex:
            device, n = _frames(plan, folder, ex, opts, fps, total, temporal, report)
    except BaseException as exc:
        if not folder.has_frames():  # nothing finished to keep
            folder.remove()
            raise
        if isinstance(exc, (KeyboardInterrupt, Interrupted)):
            raise Interrupted(f"interrupted; {_kept(plan.work)}") from None
        if isinstance(exc, UsageError) and not isinstance(exc, OutputError):  # no cluster, no Ray
            raise
        if isinstance(exc, (ArtfxError, OSError)):  # a full disk, a damaged input, a failing step: the frames,
            why = str(exc) if isinstance(exc, ArtfxError) else \
                f"cannot write the work folder {plan.work} ({exc.strerror or exc})"  # which may have taken hours,
            raise ArtfxError(f"{why}; {_kept(plan.work)}") from None  # are kept (exit 1: a runtime failure)
        log.warning("%s", _kept(plan.work))  # a bug: reported as one, the frames kept
        raise
    final = {**asked, "device": device or folder.device() or asked["device"]}
    try:
        _finish(plan, folder, n, fps, final, opts, info.audio)
    except (KeyboardInterrupt, Interrupted):
        raise Interrupted(f"interrupted; {_kept(plan.work)}") from None
    except ArtfxError as exc:  # writing the output failed: the frames are kept
        raise type(exc)(f"{exc}; the finished frames are kept in {plan.work}: run the same command again to "
                        "write them") from None
    except OSError as exc:
        raise OutputError(f"cannot write {plan.dest} ({exc.strerror or exc}); the finished frames are kept in "
                          f"{plan.work}: run the same command again to write them") from None
    folder.remove()
    report.file(plan.paths[0], plan.dest, None)
    return final


def _frames(plan: planner.SequencePlan, folder: WorkFolder, ex: Any, opts: RunOptions, fps: Fraction,
            total: int | None, temporal: bool, report: Report) -> tuple[str | None, int]:
    """Make the frames still missing from the work folder; returns (the device used, the clip's frames)."""
    have = folder.frames()
    sixteen = plan.kind == planner.FRAMES and opts.depth == 16
    if ex.remote:
        table, files = pack_files([plan.pipeline])
        raw, _ = pack(plan.pipeline, table)
        shared = Shared(opts, True, files, inputs=Files([(f"{k}/{p.name}", p.read_bytes())
                                                         for k, p in enumerate(plan.paths)]))
        total, cuts = scan(plan.paths, opts, fps, temporal)
        if total == 0:
            raise ImageError(f"{plan.paths[0]} has no frames")
        have = {i for i in have if i < total}
        if have:
            log.warning("continuing: %d of %d frames are done (in %s)", len(have), total, plan.work)
        chunks = plan_chunks(total, cuts, ex.workers, temporal)
        log.info("%d chunk(s) of the %d frames (%s)", len(chunks), total, ", ".join(
            f"{c.start + 1}-{c.end}" + (f" after {c.start - c.first} warm-up" if c.first < c.start else "")
            for c in chunks))
        clips = [Clip(raw, fps, temporal, sixteen, resume_at(c, have)) for c in chunks
                 if not all(i in have for i in range(c.start, c.end))]
    else:
        start, state = _resume_point(folder, have, temporal)
        if start:
            log.warning("continuing from frame %d (the finished frames are in %s)", start + 1, plan.work)
        shared = Shared(opts)
        clips = [Clip(plan.pipeline.raw(only_set=True), fps, temporal, sixteen, Chunk(start, start, 1 << 62),
                      pipeline=plan.pipeline, paths=[str(p) for p in plan.paths], state=state,
                      keep_state=temporal, protected=plan.protected)]  # to the clip's end, whatever it declared
        have = set(range(start))
    device, made, began, cuts = None, 0, time.monotonic(), []
    last_save, save_cost = time.monotonic(), 0.0
    for outcome in ex.stream(run_chunk, len(clips), lambda i: clips[i], shared, report):
        if outcome.error is not None:
            raise outcome.error
        out = outcome.value
        device = device or out["device"]
        if out.get("cut"):
            cuts.append(out["frame"])
        if out["frame"] not in have:
            folder.add(FRAME_NAME.format(out["frame"] + 1), out["png"], device=out["device"])
            have.add(out["frame"])
            made += 1
        if "state" in out and time.monotonic() - last_save >= 10 * save_cost:
            t = time.monotonic()
            buffer = io.BytesIO()
            np.savez(buffer, **out["state"]())
            folder.add(STATE, buffer.getvalue(), after=out["frame"])
            last_save = time.monotonic()
            save_cost = last_save - t
        done = len(have)
        report.progress("frames", done, max(total or 0, done) if total else None,
                        {"fps": round(made / max(time.monotonic() - began, 1e-6), 2)})
    n = max(have) + 1 if have else 0
    if n == 0:
        raise ImageError(f"{plan.paths[0]} has no frames")
    if cuts:
        log.info("scene cuts before frames %s", ", ".join(str(i + 1) for i in sorted(cuts)))
    return device, n


def _resume_point(folder: WorkFolder, have: set[int], temporal: bool) -> tuple[int, dict[str, np.ndarray] | None]:
    """(first frame to make, the temporal state to make it from) for a local run continuing a work folder: after
    the last frame of the unbroken run of frames that match their hashes, from a saved state that matches."""
    prefix = 0
    while prefix in have:
        prefix += 1
    if prefix == 0 or not temporal:
        return prefix, None
    state = folder.state()
    after = folder.entries.get(STATE, {}).get("after")
    if state is not None and isinstance(after, int) and after + 1 <= prefix:
        return after + 1, state
    log.warning("the saved state in %s does not match the finished frames: starting again", folder.path)
    return 0, None


def _finish(plan: planner.SequencePlan, folder: WorkFolder, n: int, fps: Fraction, recipe: dict[str, Any],
            opts: RunOptions, audio: Any) -> None:
    """Encode the finished frames (each checked against its hash) into the output, written atomically."""
    import cv2

    def frame(i: int, size: tuple[int, int] | None) -> np.ndarray:
        data = cv2.imdecode(np.frombuffer(folder.frame(i), np.uint8), cv2.IMREAD_UNCHANGED)
        rgb = np.ascontiguousarray(data[..., ::-1])
        if size is not None and rgb.shape[:2] != size:
            rgb = cv2.resize(rgb, (size[1], size[0]), interpolation=cv2.INTER_AREA)
        return rgb

    if plan.kind == planner.FRAMES:
        plan.dest.mkdir(parents=True, exist_ok=True)
        atomic_write(plan.dest / "recipe.json", json.dumps(recipe, indent=1))
        for i in range(n):
            atomic_write(plan.dest / FRAME_NAME.format(i + 1), folder.frame(i), protected=plan.protected,
                         force=opts.force)
        for old in plan.dest.glob("frame-*.png"):  # an earlier, longer run's frames would follow ours
            index = old.stem.removeprefix("frame-")
            if index.isdigit() and int(index) > n and len(index) == 6:
                old.unlink()
        return
    first = frame(0, None)
    size = first.shape[:2]
    audio_from = audio  # the input's sound (a window of it with --start/--duration), or None
    if audio_from is not None and plan.kind == planner.GIF:
        log.info("a GIF has no sound: the audio track is left out")

    def encode(tmp: Path) -> None:
        if plan.kind == planner.GIF:
            writer = media.GifWriter(tmp, fps)
        else:
            writer = media.VideoWriter(tmp, plan.dest.suffix.lower(), size[1], size[0], fps, opts.quality or 80,
                                       audio_from, comment=json.dumps(recipe))
        try:
            for i in range(n):
                writer.write(first if i == 0 else frame(i, size))
            writer.close()
        except BaseException:
            writer.abort()
            raise

    atomic_write(plan.dest, encode, protected=plan.protected, force=opts.force)
