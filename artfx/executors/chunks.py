"""A video's frames on a Ray cluster, in chunks that keep the temporal state inside each one.

- The driver decodes the clip once, cheaply, to count its frames and find the scene cuts that need no optical
  flow (a jump in the colour histogram: :data:`artfx.video.flow.CUT_HIST`, one of the two signs the frame loop
  itself starts a new shot on). A chunk that starts at such a cut starts a shot in a local run too: its frames are
  the local run's, byte for byte.
- Shots longer than a worker's share are cut into equal parts, each starting :data:`WARMUP` frames early so that
  its temporal state (the previous result, the flow, a stage's own state) is warm when its first kept frame comes;
  the warm-up frames are computed and dropped. With ``--temporal off`` every frame stands alone: plain parts.
- Each chunk is one Ray streaming task: the worker decodes the clip (sent once as bytes), runs the frames in
  order and sends each finished frame back as a PNG as soon as it is made; the driver writes it into the job's work
  folder. A worker that dies is restarted and its chunk replayed (Ray drops the frames already delivered); a job
  stopped half-way goes on where each chunk stopped, after a warm-up (:func:`resume_at`).
"""

from __future__ import annotations

import logging
import math
import shutil
import time
from dataclasses import dataclass
from typing import Any, Iterator

import numpy as np

log = logging.getLogger("artfx")

WARMUP = 5  # frames a mid-shot chunk starts early, computed only to warm up the temporal state


@dataclass
class Chunk:
    first: int  # the first frame computed (warm-up included)
    start: int  # the first frame kept
    end: int  # one past the last frame kept


@dataclass
class Clip:
    """What every chunk's worker needs besides the frames' range."""

    raw: list  # the pipeline, packed (artfx.executors.work.pack)
    fps: Any  # the output's frame rate (Fraction)
    temporal: bool
    sixteen: bool  # frames written as 16-bit PNG (a folder output at --depth 16)
    chunk: Chunk | None = None


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


def scan(job: Any) -> tuple[int, list[int]]:
    """(frames in the clip at the output's rate, the histogram cuts) found by decoding it once here."""
    from artfx.io import resize_long_side
    from artfx.video import flow, media

    frames = job.source.frames(job.fps)
    cuts, prev, n = [], None, 0
    for i, u8 in enumerate(frames):
        n = i + 1
        if not job.temporal:
            continue
        rgb = u8.astype(np.float32) / np.float32(255)
        if job.opts.max_size:
            rgb, _ = resize_long_side(rgb, job.opts.max_size)
        if prev is not None and prev.shape == rgb.shape and flow._histogram_distance(prev, rgb) > flow.CUT_HIST:
            cuts.append(i)
        prev = rgb
    return n, cuts


def encode_frame(out: np.ndarray, sixteen: bool) -> bytes:
    """A finished frame as the frame loop writes it (artfx.video.job)."""
    import cv2

    from artfx.errors import OutputError

    if sixteen:
        data = np.clip(np.rint(out * 65535), 0, 65535).astype(np.uint16)
    else:
        data = np.clip(np.rint(out * 255), 0, 255).astype(np.uint8)
    ok, buf = cv2.imencode(".png", np.ascontiguousarray(data[..., ::-1]), [cv2.IMWRITE_PNG_COMPRESSION, 1])
    if not ok:
        raise OutputError("cannot encode a frame")
    return buf.tobytes()


def chunk_frames(clip: Clip, shared: Any) -> Iterator[dict]:
    """On a worker: run one chunk's frames in order, yielding {"frame": index, "png": bytes} for each kept one
    (or {"error": one line} and stop)."""
    from pathlib import Path

    from artfx.executors.work import build_pipeline, failure, materialise
    from artfx.io import resize_long_side
    from artfx.stage import Context, Run
    from artfx.video import media
    from artfx.video.temporal import Sequence

    opts, chunk = shared.opts, clip.chunk
    try:
        folder = materialise(shared.inputs)
        source = media.open_source([Path(folder, name) for name, _ in shared.inputs.items], opts.allow_huge, opts)
        if source.info.kind == "photos":
            source.info.fps = clip.fps  # photos have no rate of their own (as in artfx.video.job)
        pipeline = build_pipeline(clip.raw, shared.files)
        seq, resolved = Sequence(enabled=clip.temporal), None
        for i, u8 in enumerate(source.frames(clip.fps)):
            if i >= chunk.end:
                break
            if i < chunk.first:
                continue
            began = time.perf_counter()
            rgb = u8.astype(np.float32) / np.float32(255)
            if opts.max_size:
                rgb, _ = resize_long_side(rgb, opts.max_size)
            seq.begin(i, rgb)
            run = Run.from_options(opts, force=True, sequence=seq)
            run.resolved_device = resolved
            out = pipeline.run(rgb, Context(run=run))
            resolved = run.resolved_device
            if i >= chunk.start:
                yield {"frame": i, "png": encode_frame(out, clip.sixteen), "seconds": time.perf_counter() - began}
        source.close()
    except Exception as exc:  # noqa: BLE001 - the job stops with it
        yield failure(exc)


def ray_run(job: Any, on_progress: Any = None) -> dict:
    """Run a video job (:class:`artfx.video.job.Job`) on a Ray cluster and write its output. Returns the recipe."""
    from artfx.errors import ArtfxError, ImageError, Interrupted, UsageError
    from artfx.executors.ray import Cluster, Pool
    from artfx.executors.work import Files, Shared, pack, pack_files
    from artfx.io import atomic_write
    from artfx.video.job import FRAME_NAME

    recipe = job.recipe()
    job._prepare_work(job.key(recipe))  # the work folder checked, another job's frames discarded
    try:
        total, cuts = scan(job)
        if total == 0:
            raise ImageError(f"{job.paths[0]} has no frames")
        table, files = pack_files([job.pipeline])
        raw, _ = pack(job.pipeline, table)
        inputs = Files([(f"{k}/{p.name}", p.read_bytes()) for k, p in enumerate(job.paths)])
        have = {i for i in range(total) if (job.work / FRAME_NAME.format(i + 1)).exists()}
        if have:
            log.warning("continuing: %d of %d frames are done (in %s)", len(have), total, job.work)
        with Cluster(job.opts.ray_address) as ray:
            pool = Pool(ray, job.opts, total, [s.name for s in job.pipeline.steps], on_progress)
            chunks = plan_chunks(total, cuts, len(pool.actors), job.temporal)
            todo = [resume_at(c, have) for c in chunks if not all(i in have for i in range(c.start, c.end))]
            log.info("%d chunk(s) of the %d frames (%s)", len(chunks), total, ", ".join(
                f"{c.start + 1}-{c.end}" + (f" after {c.start - c.first} warm-up" if c.first < c.start else "")
                for c in chunks))
            clip = Clip(raw, job.fps, job.temporal, job.kind == "frames" and job.opts.depth == 16)
            pieces = [Clip(**{**clip.__dict__, "chunk": c}) for c in todo]
            began = time.monotonic()
            for _, out in pool.stream(chunk_frames, len(pieces), lambda i: pieces[i],
                                      Shared(job.opts, files, inputs=inputs)):
                if "error" in out:
                    raise (UsageError if out.get("usage") else ArtfxError)(out["error"])
                if out["frame"] not in have:
                    atomic_write(job.work / FRAME_NAME.format(out["frame"] + 1), out["png"])
                    have.add(out["frame"])
                if on_progress is not None:
                    rate = len(have) / max(time.monotonic() - began, 1e-6)
                    on_progress("frames", len(have), total, {"fps": round(rate, 2)})
        job._finish(total, recipe)
    except (KeyboardInterrupt, Interrupted):
        raise Interrupted(f"interrupted; the finished frames are kept in {job.work}: run the same command "
                          "again to continue") from None
    except UsageError:  # no cluster, no Ray: the frames made so far stay for the next try
        raise
    except BaseException:  # a runtime error: no partial output is left (as in a local run)
        shutil.rmtree(job.work, ignore_errors=True)
        raise
    finally:
        job.source.close()
    shutil.rmtree(job.work, ignore_errors=True)
    return recipe
