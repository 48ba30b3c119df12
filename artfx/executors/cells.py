"""A sweep's cells on a Ray cluster: the input travels once, each cell's pipeline (files it reads included) is one
piece, and the pictures come back to the driver, which lays out the sheet and writes every file."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

import numpy as np

from artfx.errors import ArtfxError, UsageError


def ray_cells(pipelines: list, src: str | Path, opts: Any, on_progress: Callable | None = None
              ) -> list[tuple[np.ndarray, str]]:
    """(image, device the worker used) of every cell, in the cells' order; the first cell that fails stops the
    sweep with its error (as a local sweep does). Side outputs the steps write are written here, cell after cell
    (the last cell's stay, as in a local sweep)."""
    from artfx.executors.ray import Cluster, Pool
    from artfx.executors.work import Shared, cell_image, pack, pack_files
    from artfx.io import atomic_write
    from artfx.runner import inputs_of
    from artfx.stage import OUTPUT_DIR

    table, files = pack_files(pipelines)
    packed = [pack(p, table) for p in pipelines]
    cells = [(raw, len(slots)) for raw, slots in packed]
    shared = Shared(opts, files, Path(src).read_bytes())
    results: list = [None] * len(pipelines)
    stages = list(dict.fromkeys(s.name for p in pipelines for s in p.steps))
    with Cluster(opts.ray_address) as ray:
        pool = Pool(ray, opts, len(pipelines), stages, on_progress)
        for done, (i, out) in enumerate(pool.map(cell_image, len(cells), lambda i: cells[i], shared), 1):
            if "error" in out:
                raise (UsageError if out.get("usage") else ArtfxError)(out["error"])
            results[i] = (out["image"], out["device"], out["side"])
            if on_progress is not None:
                on_progress("sweep", done, len(cells), {})
    protected = inputs_of(pipelines[0], [src])
    for (_, slots), (_, _, side) in zip(packed, results):  # type: ignore[misc]
        for slot, rel, data in side:
            kind, path = slots[slot]
            target = path / rel if kind == OUTPUT_DIR else path
            target.parent.mkdir(parents=True, exist_ok=True)
            atomic_write(target, data, protected=protected, force=opts.force)
    return [(image, device) for image, device, _ in results]  # type: ignore[misc]
