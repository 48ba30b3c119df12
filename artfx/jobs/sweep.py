"""Sweeps: one pipeline run over a grid of parameter values, laid out as a captioned contact sheet; each cell is
one picture's piece on the executor the options pick.

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
from typing import Any, Iterable

import numpy as np

from artfx import executors
from artfx.errors import SpecError, UsageError
from artfx.io import resize_long_side, resize_to, write_image
from artfx.io.files import STDIO
from artfx.jobs import plan as planner
from artfx.jobs.pieces import Files, Shared, deliver, pack_files, picture_piece, render_piece
from artfx.jobs.render import Work, admit, load_input
from artfx.pipeline import Pipeline, find_step
from artfx.spec import normalise_key
from artfx.stage import Report

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


def _check_varies(raw: list, varies: list[Vary]) -> None:
    """A parameter varied twice (``--vary quantize.k=2,3 --vary 1.k=4,5``) would label cells with values they
    were not made with: refused."""
    steps = [[r[0]] for r in raw]
    seen: dict[tuple[int, str], str] = {}
    for v in varies:
        ref, _, key = v.target.partition(".")
        where = (find_step(steps, ref, f"--vary {v.target}"), key)
        if where in seen:
            raise UsageError(f"--vary {v.target}: the same parameter as --vary {seen[where]}; give its values "
                             "in one --vary")
        seen[where] = v.target


def run_sweep(raw: list, src: str, varies: list[Vary], output: str, opts, sets: Iterable[str] = (),
              cells_dir: str | None = None, cell_size: int = 256, report: Any = None) -> list[Cell]:
    """Run every cell and write the sheet (and each cell's PNG, with its recipe, into ``cells_dir``): every
    file and every cell's memory checked before any work, the cells on the executor the options pick. Returns
    the cells."""
    report = report if report is not None else Report()
    if not output:
        raise UsageError("no output given; add -o SHEET.png")
    if src == STDIO or not Path(src).is_file():
        raise UsageError(f"input {src!r} does not exist" if src != STDIO else "a sweep needs an input file")
    _check_varies(raw, varies)
    cdir = Path(cells_dir) if cells_dir else None
    if cdir is not None:
        if cdir.exists() and not cdir.is_dir():
            raise UsageError(f"--cells {cells_dir}: exists and is not a directory")
        if cdir.resolve() == Path(output).resolve():
            raise UsageError(f"--cells {cells_dir} is the sheet's own name; give the cells another folder")
    built = [(cell, planner.tagged(pipeline, Path(cell_name(i, cell)).stem))  # side files: one per cell
             for i, (cell, pipeline) in enumerate(build(raw, varies, sets))]
    plans = [planner.cell(pipeline, src, cdir / cell_name(i, cell) if cdir else None, opts)
             for i, (cell, pipeline) in enumerate(built)]
    guarded = plans[0].protected
    planner.sheet(output, opts, guarded)
    picture, source = load_input(src, opts.allow_huge)
    for plan in plans:  # every cell's memory, before any work (a cell with style:size=16384 is refused now)
        admit(Work(plan.pipeline, opts), picture.rgb.shape[:2], src)
    rows = grid(varies)
    flat = [c for row in rows for c in row]
    stages = list(dict.fromkeys(s.name for p in plans for s in p.pipeline.steps))
    with executors.pick(opts, stages, len(plans)) as ex:
        table, files = pack_files([p.pipeline for p in plans]) if ex.remote else ({}, Files())
        slots: dict[int, list] = {}

        def piece(i: int):
            planner.make_dirs(plans[i])
            made, slots[i] = picture_piece(plans[i], opts, ex.remote, table, keep=("image",), shared_input=True,
                                           shared_source=source, keep_best=False)  # Ctrl-C stops the sweep
            return made

        shared = Shared(opts, ex.remote, files, input=Path(src).read_bytes() if ex.remote else picture,
                        source=source)
        for done, outcome in enumerate(ex.map(render_piece, len(plans), piece, shared, report), 1):
            if outcome.error is not None:  # the first cell that fails stops the sweep with its error
                raise outcome.error
            i, delivered = outcome.index, outcome.value
            deliver(plans[i], delivered, slots.pop(i, []), opts, report)
            flat[i].recipe = delivered.rendered.recipe
            flat[i].image = _fit(delivered.rendered.image, cell_size)  # 256 cells of 12 MP would not fit
            report.progress("sweep", done, len(flat), {"cell": flat[i].caption})
    rgb = resize_long_side(picture.rgb, opts.max_size)[0] if opts.max_size else picture.rgb
    sheet = contact_sheet(rgb, rows, cell_size)
    about = {"spec": built[0][1].spec(), "vary": [f"{v.target}={','.join(v.values)}" for v in varies],
             "input": source, "cells": [{"values": c.values, "caption": c.caption} for c in flat],
             "columns": len(rows[0]), "rows": len(rows), "cell_size": cell_size}
    write_image(output, sheet, metadata={SHEET_KEY: json.dumps(about)}, protected=guarded, force=opts.force)
    return flat
