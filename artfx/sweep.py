"""Sweeps: one pipeline run over a grid of parameter values, laid out as a captioned contact sheet.

    artfx sweep style photo.jpg --vary style.style_weight=10,100,1000 -o sheet.png
    artfx sweep quantize,slic photo.jpg --vary quantize.k=4,8 --vary slic.n=100,400 -o sheet.png --cells cells/

``--vary STEP.PARAM=V1,V2,...`` addresses a parameter as ``--set`` does (a stage name, ``name#k`` or a step
number). The first ``--vary`` runs along the columns, the others (their combinations) down the rows; the input
sits before the first row. Every cell is captioned with its values; ``--cells DIR`` keeps each cell's picture
as a PNG carrying its own recipe (``artfx replay`` reproduces it), and the sheet's PNG carries the grid
(``artfx-sweep`` text chunk: the spec, the varied parameters and every cell's values and caption).
"""

from __future__ import annotations

import itertools
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable

import numpy as np

from artfx.errors import SpecError, UsageError
from artfx.spec import normalise_key

SHEET_KEY = "artfx-sweep"
MAX_CELLS = 256


@dataclass
class Vary:
    target: str  # step.param as --set writes it
    values: list[str]

    @property
    def key(self) -> str:
        return self.target.partition(".")[2]


@dataclass
class Cell:
    values: dict[str, str]  # target -> value
    caption: str
    image: np.ndarray | None = None
    recipe: dict[str, Any] = field(default_factory=dict)


def parse_vary(text: str) -> Vary:
    """``style.style_weight=10,100,1000`` -> Vary("style.style_weight", ["10", "100", "1000"])."""
    target, eq, values = text.partition("=")
    ref, dot, key = target.strip().partition(".")
    items = [v.strip() for v in values.split(",")] if eq else []
    if not eq or not dot or not ref or not key or not items or "" in items:
        raise SpecError(f"--vary {text!r}: expected step.param=value,value,..., e.g. style.style_weight=10,100,1000")
    return Vary(f"{ref}.{normalise_key(key)}", items)


def grid(varies: list[Vary]) -> list[list[Cell]]:
    """Rows of cells: the first vary along the columns, the combinations of the others down the rows."""
    keys = [v.key for v in varies]
    names = [v.target if keys.count(v.key) > 1 else v.key for v in varies]
    rows = []
    for rest in itertools.product(*[v.values for v in varies[1:]]):
        row = []
        for first in varies[0].values:
            chosen = (first, *rest)
            values = {v.target: x for v, x in zip(varies, chosen)}
            caption = " ".join(f"{n}={x}" for n, x in zip(names, chosen))
            row.append(Cell(values, caption))
        rows.append(row)
    return rows


def build(raw: list, varies: list[Vary], sets: Iterable[str] = ()) -> list[tuple[Cell, Any]]:
    """Every cell's pipeline, validated before any work (a bad value fails with the parameter's message)."""
    from artfx.pipeline import Pipeline

    if not varies:
        raise UsageError("nothing to sweep: add --vary STEP.PARAM=V1,V2,...")
    cells = [c for row in grid(varies) for c in row]
    if len(cells) > MAX_CELLS:
        raise UsageError(f"the sweep has {len(cells)} cells; at most {MAX_CELLS}")
    out = []
    for cell in cells:
        extra = [f"{t}={v}" for t, v in cell.values.items()]
        out.append((cell, Pipeline.from_raw(raw, [*sets, *extra])))
    return out


def _font(size: int):
    from PIL import ImageFont

    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1: the bitmap font
        return ImageFont.load_default()


def _fit(image: np.ndarray, box: int) -> np.ndarray:
    from artfx.io import resize_to

    h, w = image.shape[:2]
    s = box / max(h, w)
    return resize_to(image, max(1, round(h * s)), max(1, round(w * s))) if s != 1 else image


def contact_sheet(source: np.ndarray, rows: list[list[Cell]], cell: int = 256, pad: int = 8,
                  caption_px: int = 14) -> np.ndarray:
    """The sheet (float32 RGB): the input, then a row per combination of the other varied parameters, each
    picture fitted in a ``cell``-px square and captioned below."""
    from PIL import Image, ImageDraw

    cols = 1 + max(len(r) for r in rows)
    line = caption_px + 6
    font = _font(caption_px)
    width = pad + cols * (cell + pad)
    lines = [max(len(_wrap(c.caption, font, cell)) for c in r) for r in rows]
    fitted = [[_fit(img, cell) if img is not None else None
               for img in ([source] if r == 0 else [None]) + [c.image for c in row]] for r, row in enumerate(rows)]
    boxes = [max(f.shape[0] for f in row if f is not None) for row in fitted]  # each row as tall as its pictures
    heights = [box + line * n + pad for box, n in zip(boxes, lines)]
    sheet = Image.new("RGB", (width, pad + sum(heights)), "white")
    draw = ImageDraw.Draw(sheet)
    y = pad
    for r, row in enumerate(rows):
        captions = ["input" if r == 0 else ""] + [c.caption for c in row]
        for col, (img, caption) in enumerate(zip(fitted[r], captions)):
            x = pad + col * (cell + pad)
            if img is not None:
                u8 = np.clip(np.rint(img * 255), 0, 255).astype(np.uint8)
                h, w = u8.shape[:2]
                sheet.paste(Image.fromarray(u8), (x + (cell - w) // 2, y + (boxes[r] - h) // 2))
            for k, text in enumerate(_wrap(caption, font, cell)):
                draw.text((x, y + boxes[r] + 3 + k * line), text, fill=(20, 20, 20), font=font)
        y += heights[r]
    return np.asarray(sheet, np.float32) / 255


def _wrap(text: str, font, width: int) -> list[str]:
    words, lines, cur = text.split(" "), [], ""
    for word in words:
        trial = f"{cur} {word}".strip()
        if cur and font.getlength(trial) > width:
            lines.append(cur)
            cur = word
        else:
            cur = trial
    return lines + [cur] if cur else lines or [""]


def cell_name(index: int, cell: Cell) -> str:
    safe = re.sub(r"[^A-Za-z0-9_.=-]+", "_", cell.caption.replace(" ", "_")).strip("_")[:80]
    return f"{index + 1:02d}-{safe}.png"


def run_sweep(raw: list, src: str, varies: list[Vary], output: str, opts, sets: Iterable[str] = (),
              cells_dir: str | None = None, cell_size: int = 256,
              on_progress: Callable | None = None) -> list[Cell]:
    """Run every cell and write the sheet (and each cell's PNG into ``cells_dir``). Returns the cells."""
    from artfx.io import check_writable, output_format, resize_long_side, write_image
    from artfx.io.png import RECIPE_KEY, recipe_text
    from artfx.runner import (STDIO, Plan, _check_reads, _make_dirs, inputs_of, make_recipe, per_input_pipeline,
                              plan_outputs, read_input)
    from artfx.stage import Context, Run

    if not output:
        raise UsageError("no output given; add -o SHEET.png")
    if src == STDIO or not Path(src).is_file():
        raise UsageError(f"input {src!r} does not exist" if src != STDIO else "a sweep needs an input file")
    built = [(cell, per_input_pipeline(pipeline, Path(cell_name(i, cell)).stem))  # side files: one per cell
             for i, (cell, pipeline) in enumerate(build(raw, varies, sets))]
    plans = []
    for _, pipeline in built:
        _check_reads(pipeline)
        plans.append(Plan(src, STDIO, pipeline, inputs_of(pipeline, [src])))
        plan_outputs(plans[-1], opts.depth, opts.force)  # each cell's side files: writable, none over an input
    protected = inputs_of(built[0][1], [src])
    output_format(output)
    check_writable(output, protected=protected, force=opts.force)
    if cells_dir:
        cdir = Path(cells_dir)
        if cdir.exists() and not cdir.is_dir():
            raise UsageError(f"--cells {cells_dir}: exists and is not a directory")
        if cdir.resolve() == Path(output).resolve():
            raise UsageError(f"--cells {cells_dir} is the sheet's own name; give the cells another folder")
        check_writable(cdir / "cell.png", protected=protected, force=opts.force, make_parents=True)
    picture, source = read_input(src, opts.allow_huge)
    rgb = picture.rgb
    if opts.max_size:
        rgb, _ = resize_long_side(rgb, opts.max_size)
    if not opts.allow_huge:  # every cell's memory, before any work (a cell with style:size=16384 is refused now)
        from artfx import resources

        for _, pipeline in built:
            resources.check(pipeline, rgb.shape[:2], opts.device, held=rgb.nbytes * 2)
    for plan in plans:
        _make_dirs(plan)
    rows = grid(varies)
    flat = [c for row in rows for c in row]
    from artfx.executors import check, ray_cells

    check(opts)
    remote = ray_cells([p for _, p in built], src, opts, on_progress) if opts.executor == "ray" else None
    for index, ((_, pipeline), cell) in enumerate(zip(built, flat)):
        if remote is not None:  # computed by the workers of a Ray cluster (artfx.executors)
            cell.image, device = remote[index]
        else:
            run = Run.from_options(opts, protected=protected, on_progress=on_progress)
            cell.image = pipeline.run(rgb, Context(run=run))
            device = run.resolved_device or "cpu"
        cell.recipe = make_recipe(pipeline, opts, device, source)
        if cells_dir:
            Path(cells_dir).mkdir(parents=True, exist_ok=True)
            write_image(Path(cells_dir) / cell_name(index, cell), cell.image,
                        metadata={RECIPE_KEY: recipe_text(cell.recipe)}, protected=protected, force=opts.force)
        cell.image = _fit(cell.image, cell_size)  # the sheet needs no more: 256 cells of 12 MP would not fit
        if on_progress is not None:
            on_progress("sweep", index + 1, len(flat), {"cell": cell.caption})
    sheet = contact_sheet(rgb, rows, cell_size)
    about = {"spec": built[0][1].spec(), "vary": [f"{v.target}={','.join(v.values)}" for v in varies],
             "input": source, "cells": [{"values": c.values, "caption": c.caption} for c in flat],
             "columns": len(rows[0]), "rows": len(rows), "cell_size": cell_size}
    write_image(output, sheet, metadata={SHEET_KEY: json.dumps(about)}, protected=protected, force=opts.force)
    return flat
