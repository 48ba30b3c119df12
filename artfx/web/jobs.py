"""Jobs and their queue: one job at a time per device, the others waiting in order, each able to be cancelled.

A job runs a validated pipeline (:mod:`artfx.web.forms`) on an upload, in a worker thread of its device, through
:func:`artfx.api.run`, whose report (:class:`JobReport`) keeps its progress and live image (every image a stage
checkpoints) on the job, where the page's event stream reads them; cancelling the job stops the run at the
stage's next progress report. Results are written into the job's folder inside the session's temporary folder: the picture
with its recipe (:func:`artfx.api.write_image` of the Result) and the side outputs asked for.
"""

from __future__ import annotations

import logging
import secrets
import shutil
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from artfx.errors import ArtfxError, Cancelled, Interrupted, one_line
from artfx.options import RunOptions
from artfx.stage import Report
from artfx.web.forms import Prepared, Upload, command_line, recipe_for_users

log = logging.getLogger("artfx.web")

PREVIEW_SIDE = 768  # long side (px) of the live images sent to the page
FINISHED = ("done", "failed", "cancelled")


def new_id() -> str:
    return secrets.token_hex(8)


@dataclass
class Job:
    id: str
    prepared: Prepared
    upload: Upload
    opts: RunOptions
    folder: Path
    device: str  # the queue it waits in: the resolved device (cpu, cuda, cuda:1, mps)
    output_name: str
    command: str = ""
    toml: str = ""
    state: str = "queued"  # queued, running, done, failed, cancelled
    error: str | None = None
    progress: dict[str, Any] = field(default_factory=dict)
    progress_seq: int = 0
    image_seq: int = 0
    files: dict[str, Path] = field(default_factory=dict)  # download name -> file
    created: float = field(default_factory=time.monotonic)
    seconds: float | None = None
    _cancel: bool = False
    _latest: np.ndarray | None = None
    _preview: tuple[int, bytes] | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    # ---- what the stages report (called from the worker thread) -----------------------------------------
    def on_progress(self, label: str, done: float, total: float | None, metrics: dict) -> None:
        steps = len(self.prepared.pipeline.steps)
        number = int(label.split(":", 1)[0]) if label.split(":", 1)[0].isdigit() else 1
        part = min(max(done / total, 0.0), 1.0) if total else 0.0
        metrics = {k: (round(v, 5) if isinstance(v, float) else v) for k, v in metrics.items()
                   if isinstance(v, (int, float, str))}
        self.progress = {"label": label, "done": done, "total": total, "metrics": metrics,
                         "fraction": round((number - 1 + part) / steps, 4)}
        self.progress_seq += 1

    def on_image(self, label: str, image: np.ndarray) -> None:
        with self._lock:
            self._latest = np.array(image, dtype=np.float32, copy=True)
            self.image_seq += 1

    def preview_png(self) -> tuple[int, bytes] | None:
        """(sequence number, PNG) of the latest live image, at most PREVIEW_SIDE px; encoded once per image."""
        from artfx.io import encode_image, resize_long_side

        with self._lock:
            latest, seq = self._latest, self.image_seq
            if latest is None:
                return None
            if self._preview is not None and self._preview[0] == seq:
                return self._preview
        small = resize_long_side(latest, PREVIEW_SIDE)[0] if max(latest.shape[:2]) > PREVIEW_SIDE else latest
        png = encode_image(small)
        with self._lock:
            self._preview = (seq, png)
        return self._preview

    def summary(self, position: int = 0) -> dict[str, Any]:
        """What the page is told about the job."""
        out: dict[str, Any] = {"id": self.id, "state": self.state, "position": position, "device": self.device,
                               "spec": self.prepared.spec, "command": self.command, "toml": self.toml,
                               "progress": self.progress, "error": self.error, "seconds": self.seconds}
        if self.state == "done":
            # "kind" says how the page shows the result: "image" today; a sweep (artfx/sweep.py, being built)
            # will come as kind "grid" with one cell per parameter set, drawn as a grid of thumbnails.
            out["kind"] = "image"
            out["result"] = f"/api/jobs/{self.id}/files/{self.output_name}"
            out["files"] = [{"name": n, "url": f"/api/jobs/{self.id}/files/{n}", "size": p.stat().st_size}
                            for n, p in self.files.items() if p.is_file()]
        return out


class JobReport(Report):
    """A run's report to its job: progress and live images kept on the job, cancelled when the job is."""

    watching = True

    def __init__(self, job: Job):
        self.job = job

    @property
    def cancelled(self) -> bool:  # type: ignore[override]
        return self.job._cancel

    def progress(self, label: str, done: float, total: float | None, metrics: dict) -> None:
        self.job.on_progress(label, done, total, metrics)

    def image(self, label: str, image: np.ndarray) -> None:
        self.job.on_image(label, image)


def run_job(job: Job) -> None:
    """Run one job (in its device's worker thread) and write its files; the job's state says how it ended."""
    from artfx.api import run, write_image

    prepared, opts = job.prepared, job.opts
    start = time.monotonic()
    try:
        job.folder.mkdir(parents=True, exist_ok=True)
        for _, _, path, name in prepared.outputs:
            if name.endswith(".zip"):
                path.mkdir(parents=True, exist_ok=True)
        values = {k: getattr(opts, k) for k in RunOptions.model_fields}
        result = run(prepared.pipeline, job.upload.path, progress=JobReport(job), **{**values, "device": job.device})
        result.recipe = recipe_for_users(result.recipe, prepared)
        job.files[job.output_name] = write_image(job.folder / job.output_name, result)
        for _, _, path, name in prepared.outputs:
            if name.endswith(".zip") and path.is_dir():
                shutil.make_archive(str(path), "zip", root_dir=path)
                path = path.with_suffix(".zip")
            if path.is_file():
                job.files[name] = path
        job.on_image("done", result.image)
        job.state = "done"
    except (Cancelled, Interrupted, KeyboardInterrupt):
        job.state, job.error = "cancelled", "cancelled"
    except ArtfxError as exc:
        job.state, job.error = "failed", one_line(exc, 400)
    except Exception as exc:  # reported on the page, and the server goes on
        log.exception("job %s failed", job.id)
        job.state, job.error = "failed", one_line(f"internal error: {type(exc).__name__}: {exc}", 400)
    finally:
        job.seconds = round(time.monotonic() - start, 2)


class JobQueue:
    """One worker thread per device, each running its jobs one at a time in the order they came."""

    def __init__(self) -> None:
        self.jobs: dict[str, Job] = {}
        self._waiting: dict[str, deque[Job]] = {}
        self._running: dict[str, Job | None] = {}
        self._workers: dict[str, threading.Thread] = {}
        self._cond = threading.Condition()
        self._closed = False

    def submit(self, job: Job) -> int:
        """Queue a job; returns its place (0: it runs at once)."""
        with self._cond:
            if self._closed:
                raise ArtfxError("the server is shutting down")
            self.jobs[job.id] = job
            self._waiting.setdefault(job.device, deque()).append(job)
            if job.device not in self._workers:
                worker = threading.Thread(target=self._work, args=(job.device,), name=f"artfx-{job.device}",
                                          daemon=True)
                self._workers[job.device] = worker
                worker.start()
            self._cond.notify_all()
            return self._place(job)

    def _place(self, job: Job) -> int:
        waiting = self._waiting.get(job.device, deque())
        if job not in waiting:
            return 0
        busy = self._running.get(job.device) is not None
        return list(waiting).index(job) + (1 if busy else 0)

    def position(self, job: Job) -> int:
        """How many jobs run before this one (0 when running or finished)."""
        with self._cond:
            return self._place(job)

    def _work(self, device: str) -> None:
        while True:
            with self._cond:
                while not self._closed and not self._waiting[device]:
                    self._cond.wait()
                if self._closed:
                    return
                job = self._waiting[device].popleft()
                job.state = "running"
                self._running[device] = job
            try:
                run_job(job)
            finally:
                with self._cond:
                    self._running[device] = None
                    self._cond.notify_all()

    def cancel(self, job: Job) -> None:
        """Cancel a waiting job at once, or a running one at its next progress report."""
        with self._cond:
            waiting = self._waiting.get(job.device)
            if waiting is not None and job in waiting:
                waiting.remove(job)
                job.state, job.error = "cancelled", "cancelled"
                self._cond.notify_all()
                return
            job._cancel = True

    def close(self, wait: float = 5.0) -> None:
        """Cancel everything and stop the workers (waiting at most ``wait`` seconds for running jobs)."""
        with self._cond:
            self._closed = True
            for waiting in self._waiting.values():
                for job in waiting:
                    job.state, job.error = "cancelled", "the server stopped"
                waiting.clear()
            for job in self._running.values():
                if job is not None:
                    job._cancel = True
            self._cond.notify_all()
        deadline = time.monotonic() + wait
        for worker in self._workers.values():
            worker.join(max(0.0, deadline - time.monotonic()))


def make_job(prepared: Prepared, upload: Upload, opts: RunOptions, folder: Path, device: str,
             job_id: str | None = None) -> Job:
    """A job with its command line and TOML, as the page shows them."""
    from artfx.config import dump_config

    stem = Path(upload.name).stem
    output_name = f"{stem}-art.png"
    run = {k: getattr(opts, k) for k in RunOptions.look_fields() if k != "depth"}
    defaults = {k: RunOptions.model_fields[k].default for k in run}
    run = {k: v for k, v in run.items() if v is not None and v != defaults[k]}
    job = Job(job_id or new_id(), prepared, upload, opts, folder, device, output_name)
    job.command = command_line(prepared.spec, upload.name, output_name, run)
    job.toml = dump_config(run, prepared.steps)
    return job
