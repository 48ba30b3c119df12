"""``--executor ray``: a job's pieces on the workers of a Ray cluster (:class:`RayExecutor`).

- The cluster: ``--ray-address`` unset starts a Ray instance on this machine (listening on 127.0.0.1 only) and
  stops it at the end; ``auto`` joins the cluster this machine belongs to; ``host:port`` or ``ray://host:port`` a
  remote one (checked to answer first, so a wrong address is one line, not a minute of retries).
- Workers are Ray actors, one per GPU when the cluster has GPUs (``num_gpus=1`` each), else one per CPU
  (``ARTFX_RAY_WORKER_CPUS`` CPUs each, default 1). Each sets its torch and numba threads to the CPUs it was
  given, so workers sharing a machine do not oversubscribe its cores, and keeps what it loads (the stages, the
  VGG-19 weights, the job's parameter files) for every piece it runs.
- Pieces are handed out with ``ray.wait``, two per worker at a time, so the next input is already on the worker
  when one finishes. Every piece is one Ray streaming task: a ``map`` piece sends back its one result, a
  ``stream`` piece each result as soon as it is made (a video's frames). A worker that dies is restarted by Ray
  (``max_restarts``) and its pieces run again (``max_task_retries``; Ray drops the results already delivered).
- Errors travel as data: a piece that fails is one line (and whether it was a usage error), never a retry.
"""

from __future__ import annotations

import logging
import os
import socket
import sys
import threading
import time
from typing import Any, Callable, Iterator

from artfx.errors import ArtfxError, Interrupted, UsageError, as_artfx_error, one_line
from artfx.executors.base import Outcome
from artfx.version import __version__

log = logging.getLogger("artfx")

INSTALL = "pip install 'artfx[ray]'"
IN_FLIGHT = 2  # pieces queued per worker
TASK_RETRIES = 3  # a piece whose worker dies is run again up to this many times
WAIT = 0.5  # seconds ray.wait blocks at most, so that Ctrl-C and SIGTERM are heard at once


def import_ray() -> Any:
    try:
        import ray
    except ImportError:
        raise UsageError(f"--executor ray needs Ray, which is not installed: {INSTALL}") from None
    return ray


def _split_address(address: str) -> tuple[str, int] | None:
    rest = address.split("://", 1)[1] if "://" in address else address
    host, _, port = rest.rstrip("/").rpartition(":")
    return (host.strip("[]"), int(port)) if host and port.isdigit() else None


def _check_reachable(address: str) -> None:
    where = _split_address(address)
    if where is None:
        raise UsageError(f"--ray-address {address!r}: expected host:port, ray://host:port, auto, or nothing "
                         "(a Ray instance on this machine)")
    try:
        socket.create_connection(where, timeout=5).close()
    except OSError as exc:
        why = exc.strerror or type(exc).__name__
        raise UsageError(f"cannot reach the Ray cluster at {address}: {why.lower()}",
                         hint="is it running? `ray start --head` on its first machine, then give its address") \
            from None


class _RayTextAside:
    """Standard output while a job's Ray connection is open. Ray's driver threads print what they hear (a worker
    died, a task is retried) on standard output, where a PNG may be going (``-o -``): their text goes to standard
    error with --verbose and nowhere otherwise; everything else passes through untouched."""

    def __init__(self, real: Any):
        self._real = real
        self.closing = False  # ray.shutdown prints the messages it held back, from this thread

    def write(self, text: str) -> int:
        if self.closing or threading.current_thread().name.startswith("ray_"):
            if log.isEnabledFor(logging.INFO) and sys.__stderr__ is not None:
                sys.__stderr__.write(text)
            return len(text)
        return self._real.write(text)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._real, name)


class Cluster:
    """A connection to a Ray cluster for one job (``with Cluster(address) as ray: ...``): started or joined on
    entry; on exit, a Ray instance this job started is stopped and a connection it opened is closed. A Ray
    instance this job started also leaves its session folder (``/tmp/ray/session_*``, 200-250 KB of logs and
    sockets, one per job): it is removed, with the ``session_latest`` link to it, and ``/tmp/ray`` itself if this
    job made it and nothing else is in it. Nothing else there is touched."""

    def __init__(self, address: str | None):
        self.address = (address or "").strip() or "local"
        self.owned = False
        self.session_dir: str | None = None  # the session folder of the Ray instance this job started
        self._made_root = False

    def __enter__(self) -> Any:
        if self.address == "local":  # Ray's defaults said aloud: a token (~/.ray/auth_token), and, where Ray
            os.environ.setdefault("RAY_AUTH_MODE", "token")  # is not imported yet, loopback only
            if "ray" not in sys.modules:
                os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
        ray = import_ray()
        if ray.is_initialized():  # a caller's own connection (a notebook): used, and left open
            return ray
        if self.address not in ("local", "auto"):
            _check_reachable(self.address)
        quiet = logging.WARNING if log.isEnabledFor(logging.INFO) else logging.ERROR
        self.stdout = sys.stdout
        if sys.stdout is not None:
            sys.stdout = _RayTextAside(sys.stdout)
        extra = {"include_dashboard": False} if self.address == "local" else {}
        root = _ray_temp_root()
        root_existed = os.path.isdir(root)
        try:
            context = ray.init(address=self.address, logging_level=quiet,
                               log_to_driver=log.isEnabledFor(logging.DEBUG), **extra)
        except Exception as exc:  # noqa: BLE001 - Ray raises ConnectionError, RuntimeError, ValueError...
            sys.stdout = self.stdout
            where = "start Ray on this machine" if self.address == "local" else \
                f"connect to the Ray cluster at {self.address}"
            raise UsageError(f"cannot {where}: {one_line(exc, 240)}") from None
        self.owned = True
        if self.address == "local":  # started here: its session folder is this job's
            info = getattr(context, "address_info", None) or {}
            self.session_dir = info.get("session_dir")
            self._made_root = not root_existed and bool(self.session_dir) \
                and os.path.dirname(os.path.abspath(self.session_dir)) == os.path.abspath(root)
        return ray

    def __exit__(self, *exc: Any) -> None:
        if self.owned:
            import ray

            if isinstance(sys.stdout, _RayTextAside):
                sys.stdout.closing = True
            try:
                ray.shutdown()
            finally:
                sys.stdout = self.stdout
                self._remove_session()

    def _remove_session(self) -> None:
        """Remove the session folder of the Ray instance this job started (after ray.shutdown has stopped its
        processes), the ``session_latest`` link if it points there, and the temporary root if this job made it
        and it is left empty."""
        import shutil

        folder = self.session_dir
        if not folder or not os.path.basename(folder).startswith("session_") or not os.path.isdir(folder):
            return
        for _ in range(3):  # a process that is still stopping may write a last log line
            shutil.rmtree(folder, ignore_errors=True)
            if not os.path.exists(folder):
                break
            time.sleep(0.2)
        parent = os.path.dirname(os.path.abspath(folder))
        latest = os.path.join(parent, "session_latest")
        try:
            if os.path.islink(latest) and os.path.abspath(os.path.join(parent, os.readlink(latest))) == \
                    os.path.abspath(folder):
                os.unlink(latest)
            if self._made_root:
                os.rmdir(parent)  # only if empty: another instance's sessions stay
        except OSError:
            pass
        log.debug("removed the Ray session folder %s", folder)


def _ray_temp_root() -> str:
    """Where a Ray instance started here puts its session folders, by Ray's rule: $RAY_TMPDIR/ray, else on Linux
    $TMPDIR/ray, else /tmp/ray on Linux and macOS."""
    import tempfile

    if "RAY_TMPDIR" in os.environ:
        base = os.environ["RAY_TMPDIR"]
    elif sys.platform.startswith("linux") and "TMPDIR" in os.environ:
        base = os.environ["TMPDIR"]
    elif sys.platform.startswith(("linux", "darwin")):
        base = "/tmp"
    else:
        base = tempfile.gettempdir()
    return os.path.join(base, "ray")


def _set_threads(threads: int) -> None:
    """Torch and numba use the CPUs this worker was given, not every core of its machine."""
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "NUMBA_NUM_THREADS"):
        os.environ[var] = str(threads)
    if "numba" in sys.modules:
        import numba

        numba.set_num_threads(max(1, min(threads, numba.config.NUMBA_NUM_THREADS)))
    if "torch" in sys.modules:
        import torch

        torch.set_num_threads(threads)
    try:
        import cv2  # optical flow, resizing

        cv2.setNumThreads(threads)
    except ImportError:
        pass


def _peak_rss() -> int:
    """This process's peak resident memory in bytes."""
    import resource

    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak if sys.platform == "darwin" else peak * 1024


LAST_JOB: dict[str, Any] = {}
"""What the last job here measured (start-up seconds, workers, their peak memory): read by the benchmark, and
said with --verbose."""


class Worker:
    """One Ray actor: a process that keeps its stages, models and the jobs' shared parts loaded between pieces."""

    def __init__(self, threads: int, stages: list[str]):
        import tempfile

        _set_threads(threads)
        # everything the pieces put in temporary files (shipped inputs, scratch folders) goes into a folder of
        # this worker's own, removed when the job closes the pool
        self.tmp = tempfile.tempdir = tempfile.mkdtemp(prefix="artfx-worker-")
        from artfx import registry

        for name in stages:  # imported once; their models load on first use and stay loaded
            registry.load(name)
        self.threads = threads
        self.shared: dict[str, Any] = {}

    def hello(self) -> dict:
        import ray

        return {"pid": os.getpid(), "host": socket.gethostname(), "version": __version__,
                "node": ray.get_runtime_context().get_node_id()[:8], "gpus": list(ray.get_gpu_ids()),
                "threads": self.threads}

    def close(self) -> None:
        import shutil

        shutil.rmtree(self.tmp, ignore_errors=True)

    def _shared(self, box: list) -> Any:
        import ray

        key = box[0].hex()  # the job's shared part, fetched and unpacked once per worker
        if key not in self.shared:
            self.shared = {key: ray.get(box[0])}
        return self.shared[key]

    def run(self, fn: Callable[[Any, Any, Any], Any], piece: Any, box: list, many: bool) -> Iterator[dict]:
        """A Ray streaming generator: ``fn``'s one result (``many`` False) or each of its results as it comes,
        or the error that stopped it, as data."""
        began = time.perf_counter()
        try:
            shared = self._shared(box)
            results = fn(piece, shared, None) if many else iter([fn(piece, shared, None)])
            for value in results:
                yield {"value": value, "pid": os.getpid(), "rss": _peak_rss(), "seconds": time.perf_counter() - began}
                began = time.perf_counter()
        except Exception as exc:  # noqa: BLE001 - reported for this piece; the others go on
            yield {**failure(exc), "pid": os.getpid(), "rss": _peak_rss(), "seconds": time.perf_counter() - began}


def failure(exc: BaseException) -> dict:
    """An error as data: Ray retries only when a worker dies, never for a piece that cannot be done."""
    error = as_artfx_error(exc)
    return {"error": one_line(error, 400), "usage": error.exit_code == 2}


class Pool:
    """The job's workers on the cluster, and the pieces handed out to them."""

    def __init__(self, ray: Any, device: str, pieces: int, stages: list[str]):
        self.ray, self.report = ray, None
        resources = ray.cluster_resources()
        gpus, cpus = int(resources.get("GPU", 0)), int(resources.get("CPU", 0))
        if device.startswith("cuda:"):
            raise UsageError(f"--device {device}: with --executor ray each worker has a GPU of its own; "
                             "use --device cuda or auto")
        if device == "cuda" and not gpus:
            raise UsageError("--device cuda: the Ray cluster has no GPU", hint="use --device auto or cpu")
        per = max(1, int(os.environ.get("ARTFX_RAY_WORKER_CPUS", "1") or 1))
        use_gpu = gpus > 0 and device not in ("cpu", "mps")
        count = min(max(1, pieces), gpus if use_gpu else cpus // per)
        if count < 1:
            raise UsageError(f"the Ray cluster has no room for a worker ({cpus} CPU, {gpus} GPU; each worker "
                             f"asks for {per} CPU)")
        actor = ray.remote(Worker).options(num_cpus=per, num_gpus=1 if use_gpu else 0, max_restarts=-1,
                                           max_task_retries=TASK_RETRIES)
        self.actors = [actor.remote(per, stages) for _ in range(count)]
        self.done, self.peak = [0] * count, [0] * count
        refs, waited = [a.hello.remote() for a in self.actors], time.monotonic()
        try:
            while len(ray.wait(refs, num_returns=len(refs), timeout=WAIT)[0]) < len(refs):
                if waited and time.monotonic() - waited > 30:  # other jobs hold the cluster's CPUs or GPUs
                    log.warning("waiting for the Ray cluster to have room for %d worker(s)", count)
                    waited = 0.0
            self.info = ray.get(refs)
        except KeyboardInterrupt:
            self.close()
            raise Interrupted("interrupted while the workers started") from None
        except Exception as exc:  # noqa: BLE001
            self.close()
            raise UsageError(f"the Ray workers cannot start artfx: {one_line(exc, 200)}",
                             hint=f"every machine of the cluster needs {INSTALL}, the same version") from None
        for k, info in enumerate(self.info):
            if info["version"] != __version__:
                self.close()
                raise UsageError(f"the Ray worker on {info['host']} runs artfx {info['version']}, this machine "
                                 f"{__version__}; install the same version everywhere")
            log.info("worker %d: pid %d on %s (node %s), %d thread(s)%s", k + 1, info["pid"], info["host"],
                     info["node"], info["threads"], f", GPU {info['gpus']}" if info["gpus"] else "")

    def run(self, fn: Callable, count: int, piece: Callable[[int], Any], shared: Any, many: bool
            ) -> Iterator[Outcome]:
        """Yield each piece's results as Outcomes as they arrive, in any order; a free worker takes the next
        piece. ``piece(i)`` is built only when it is sent; one that cannot be built is an Outcome with its
        error."""
        ray = self.ray
        box = [ray.put(shared)]
        queue = iter(range(count))
        streams: dict[Any, tuple[int, int]] = {}
        unsent: list[Outcome] = []

        def send(k: int) -> None:
            for i in queue:
                try:
                    streams[self.actors[k].run.remote(fn, piece(i), box, many)] = (i, k)
                    return
                except Exception as exc:  # noqa: BLE001 - an input that cannot be read: that piece fails
                    unsent.append(Outcome(i, error=exc))

        for _ in range(IN_FLIGHT):
            for k in range(len(self.actors)):
                send(k)
        try:
            while streams or unsent:
                if unsent:
                    yield unsent.pop(0)
                    continue
                ready, _ = ray.wait(list(streams), num_returns=1, timeout=WAIT)
                if not ready:
                    continue
                i, k = streams[ready[0]]
                try:
                    ref = next(ready[0])
                except StopIteration:
                    del streams[ready[0]]
                    send(k)
                    continue
                yield self._outcome(i, ref, k)
        except KeyboardInterrupt:
            raise Interrupted("interrupted") from None

    def close(self) -> None:
        """Stop the workers (their pieces are done, or the job is over), each removing its temporary files first
        (a worker that does not answer in a few seconds is stopped all the same)."""
        try:
            self.ray.wait([a.close.remote() for a in self.actors], num_returns=len(self.actors), timeout=5)
        except Exception:  # noqa: BLE001 - a dead worker: nothing of it to remove here
            pass
        for a in self.actors:
            self.ray.kill(a)

    def _outcome(self, i: int, ref: Any, k: int) -> Outcome:
        ray = self.ray
        try:
            out = ray.get(ref)
        except ray.exceptions.RayActorError:
            return Outcome(i, error=ArtfxError(f"its worker died {TASK_RETRIES + 1} times while running it"))
        except Exception as exc:  # noqa: BLE001 - a worker that cannot unpack a piece
            return Outcome(i, error=ArtfxError(one_line(f"the worker failed: {exc}", 300)))
        pid = out.get("pid")
        if pid is not None and pid != self.info[k]["pid"]:
            log.warning("worker %d (pid %d on %s) died; Ray restarted it (pid %d) and ran its pieces again",
                        k + 1, self.info[k]["pid"], self.info[k]["host"], pid)
            self.info[k]["pid"] = pid
        self.done[k] += 1
        self.peak[k] = max(self.peak[k], out.get("rss", 0))
        log.debug("worker %d: a result in %.2f s", k + 1, out.get("seconds", 0.0))
        if self.report is not None and log.isEnabledFor(logging.INFO):  # --verbose: a line per worker
            info = self.info[k]
            self.report.progress(f"worker {k + 1}", self.done[k], None,
                                 {"host": info["host"], "pid": info["pid"], "s": round(out.get("seconds", 0.0), 2),
                                  "MB": round(self.peak[k] / 2**20)})
        if "error" in out:
            return Outcome(i, error=(UsageError if out.get("usage") else ArtfxError)(out["error"]))
        return Outcome(i, out["value"])


class RayExecutor:
    """``--executor ray``: the cluster joined (or a Ray instance started) on entry, the workers started, and
    left on exit; :data:`LAST_JOB` keeps what the job measured."""

    remote = True

    def __init__(self, address: str | None, device: str, stages: list[str], pieces: int):
        self.cluster = Cluster(address)
        self.device, self.stages, self.pieces = device, stages, pieces
        self.pool: Pool | None = None

    @property
    def workers(self) -> int:
        return len(self.pool.actors) if self.pool is not None else 0

    def __enter__(self) -> "RayExecutor":
        self.began = time.monotonic()
        ray = self.cluster.__enter__()
        self.connected = time.monotonic()
        try:
            self.pool = Pool(ray, self.device, self.pieces, self.stages)
        except BaseException:
            self.cluster.__exit__(None, None, None)
            raise
        self.started = time.monotonic()
        log.info("Ray: %d worker(s) ready in %.1f s (the cluster in %.1f s)", self.workers,
                 self.started - self.began, self.connected - self.began)
        return self

    def __exit__(self, *exc: Any) -> None:
        try:
            if self.pool is not None:
                pool = self.pool
                LAST_JOB.clear()
                LAST_JOB.update(connect_s=self.connected - self.began, start_s=self.started - self.began,
                                run_s=time.monotonic() - self.started, workers=len(pool.actors),
                                pieces=list(pool.done), peak_rss=list(pool.peak))
                for k, (n, peak) in enumerate(zip(pool.done, pool.peak)):
                    log.info("worker %d: %d result(s), peak memory %.0f MB", k + 1, n, peak / 2**20)
                pool.close()
        finally:
            self.cluster.__exit__(*exc)

    def map(self, fn: Callable, count: int, piece: Callable[[int], Any], shared: Any, report: Any = None
            ) -> Iterator[Outcome]:
        assert self.pool is not None, "use the executor as a context manager"
        self.pool.report = report
        return self.pool.run(fn, count, piece, shared, many=False)

    def stream(self, fn: Callable, count: int, piece: Callable[[int], Any], shared: Any, report: Any = None
               ) -> Iterator[Outcome]:
        assert self.pool is not None, "use the executor as a context manager"
        self.pool.report = report
        return self.pool.run(fn, count, piece, shared, many=True)
