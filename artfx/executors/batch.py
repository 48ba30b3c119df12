"""A batch's files on a Ray cluster: each input is one piece (its bytes, its pipeline with the files it reads
carried along, the recipe made here); the output image and side outputs come back as bytes and are written here,
atomically, side outputs first."""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any, Callable

from artfx.errors import ArtfxError, InputError, Interrupted, UsageError

log = logging.getLogger("artfx")


def run_plans(plans: list, opts: Any, on_progress: Callable | None = None,
              on_file: Callable[[Path, Path, Exception | None], None] | None = None,
              on_saved: Callable[[Path], None] | None = None) -> list[tuple[Path, ArtfxError]]:
    """Run planned inputs on a Ray cluster and write their outputs here. Returns the failures; a file that fails
    is reported (``on_file``) and the others go on."""
    import hashlib

    from artfx.executors.ray import Cluster, Pool
    from artfx.executors.work import Piece, Shared, batch_piece, pack, pack_files
    from artfx.io import atomic_write, output_format
    from artfx.io.files import read_stdin
    from artfx.replay import make_recipe
    from artfx.runner import STDIO, _make_dirs, stage_format
    from artfx.stage import OUTPUT_DIR

    table, files = pack_files([plans[0].pipeline])
    slots: dict[int, list] = {}

    def piece(i: int) -> Piece:
        plan = plans[i]
        raw, slots[i] = pack(plan.pipeline, table)
        try:
            data = read_stdin() if str(plan.src) == STDIO else Path(plan.src).read_bytes()
        except OSError as exc:
            raise InputError(f"cannot read {plan.src}: {exc.strerror or exc}") from None
        source = {"name": STDIO if str(plan.src) == STDIO else Path(plan.src).name,
                  "sha256": hashlib.sha256(data).hexdigest()}
        if opts.record_path and str(plan.src) != STDIO:
            source["path"] = str(Path(plan.src).resolve())
        key = stage_format(plan.pipeline, plan.dest) if str(plan.dest) != STDIO else None
        fmt = None if key else output_format(plan.dest)
        return Piece(str(plan.src), data, raw, [kind for kind, _ in slots[i]],
                     make_recipe(plan.pipeline, opts, "cpu", source), fmt, key)

    failures: list[tuple[Path, ArtfxError]] = []

    def fail(plan: Any, message: str, usage: bool = False) -> None:
        exc = (UsageError if usage else ArtfxError)(message)
        failures.append((Path(plan.src), exc))
        if on_file:
            on_file(Path(plan.src), Path(plan.dest), exc)

    def write(i: int, out: dict) -> None:
        plan = plans[i]
        _make_dirs(plan)
        if str(plan.dest) != STDIO:
            Path(plan.dest).parent.mkdir(parents=True, exist_ok=True)
        for slot, rel, data in out["side"]:  # side outputs first: an image there means all of it is there
            kind, path = slots[i][slot]
            target = path / rel if kind == OUTPUT_DIR else path
            target.parent.mkdir(parents=True, exist_ok=True)
            saved = atomic_write(target, data, protected=plan.protected, force=opts.force)
            if on_saved:
                on_saved(saved)
        atomic_write(plan.dest, out["data"], protected=plan.protected, force=opts.force)

    began, done = time.monotonic(), 0
    with Cluster(opts.ray_address) as ray:
        connected = time.monotonic()
        pool = Pool(ray, opts, len(plans), [s.name for s in plans[0].pipeline.steps], on_progress)
        started = time.monotonic()
        log.info("Ray: %d worker(s) ready in %.1f s (the cluster in %.1f s)", len(pool.actors), started - began,
                 connected - began)
        try:
            for i, out in pool.map(batch_piece, len(plans), piece, Shared(opts, files)):
                plan, done = plans[i], done + 1
                try:
                    if "error" in out:
                        raise (UsageError if out.get("usage") else ArtfxError)(out["error"])
                    write(i, out)
                except ArtfxError as exc:
                    fail(plan, str(exc), exc.exit_code == 2)
                else:
                    if on_file:
                        on_file(Path(plan.src), Path(plan.dest), None)
                slots.pop(i, None)
                if on_progress is not None:
                    rate = done / max(time.monotonic() - started, 1e-6)
                    on_progress("files", done, len(plans), {"files/s": round(rate, 2)})
        except Interrupted:
            raise Interrupted(f"interrupted after {done - len(failures)} of {len(plans)} files; the same command "
                              "makes the rest (it skips the finished ones)") from None
        pool.report(began, connected, started)
    return failures
