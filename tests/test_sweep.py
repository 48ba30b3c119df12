"""artfx sweep: the grid, the contact sheet's cells and captions, kept cells with their recipes, and errors."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from PIL import Image

from artfx.jobs.sweep import Vary, contact_sheet, grid, parse_vary


def sheet_info(path: Path) -> dict:
    with Image.open(path) as im:
        return json.loads(im.text["artfx-sweep"])


def test_grid_runs_the_first_vary_along_columns():
    rows = grid([parse_vary("quantize.k=2,4,8"), parse_vary("slic.n=10,20")])
    assert [[c.caption for c in r] for r in rows] == [["k=2 n=10", "k=4 n=10", "k=8 n=10"],
                                                        ["k=2 n=20", "k=4 n=20", "k=8 n=20"]]
    assert rows[1][2].values == {"quantize.k": "8", "slic.n": "20"}
    same_key = grid([Vary("quantize#1.k", ["2"]), Vary("quantize#2.k", ["3"])])
    assert same_key[0][0].caption == "quantize#1.k=2 quantize#2.k=3"  # ambiguous keys keep their step


def test_sheet_has_the_input_and_every_cell_captioned(cli, photo, tmp_path):
    sheet, cells = tmp_path / "sheet.png", tmp_path / "cells"
    r = cli("sweep", "quantize:space=rgb,slic:n=30", photo, "--vary", "quantize.k=2,5", "--vary",
            "slic.compactness=5,20", "-o", sheet, "--cells", cells, "--cell-size", "64", "-q")
    assert r.returncode == 0, r.err
    info = sheet_info(sheet)
    assert (info["rows"], info["columns"]) == (2, 2)
    assert [c["caption"] for c in info["cells"]] == ["k=2 compactness=5", "k=5 compactness=5",
                                                    "k=2 compactness=20", "k=5 compactness=20"]
    names = sorted(p.name for p in cells.iterdir())
    assert names == ["01-k=2_compactness=5.png", "02-k=5_compactness=5.png", "03-k=2_compactness=20.png",
                     "04-k=5_compactness=20.png"]
    # each kept cell is what the pipeline makes with those values, and replays bit for bit
    one = tmp_path / "one.png"
    r = cli("pipeline", "quantize:space=rgb:k=5,slic:n=30:compactness=20", photo, "-o", one, "-q")
    assert r.returncode == 0, r.err
    kept = np.asarray(Image.open(cells / names[3]))
    assert np.array_equal(kept, np.asarray(Image.open(one)))
    replay = ["replay", cells / names[3], "-o", tmp_path / "again.png", "-q", "--input", photo]
    r = cli(*replay, "--yes")
    if r.returncode == 2 and "--yes" in r.err:  # a replay that does not ask first
        r = cli(*replay)
    assert r.returncode == 0, r.err
    assert np.array_equal(np.asarray(Image.open(tmp_path / "again.png")), kept)
    # the sheet: the input first, then the two-colour cell, in its place; two rows below each other
    sheet_img = np.asarray(Image.open(sheet).convert("RGB"))
    assert sheet_img.shape[1] == 8 + 3 * (64 + 8)
    top_left = sheet_img[8:8 + 48, 8:8 + 64]
    assert len(np.unique(top_left.reshape(-1, 3), axis=0)) > 50  # the photo itself
    first_cell = sheet_img[8:8 + 48, 8 + 72:8 + 72 + 64]
    assert len(np.unique(first_cell.reshape(-1, 3), axis=0)) < len(np.unique(top_left.reshape(-1, 3), axis=0))


def test_contact_sheet_captions_are_drawn():
    from artfx.jobs.sweep import Cell

    img = np.full((20, 30, 3), 0.5, np.float32)
    rows = [[Cell({"a.b": "1"}, "b=1", img), Cell({"a.b": "2"}, "b=2", img)]]
    sheet = contact_sheet(img, rows, cell=40, pad=4, caption_px=12)
    caption_band = sheet[4 + 27:, :]  # below the 27 px tall pictures
    assert (caption_band < 0.5).any()  # dark caption text
    assert sheet.shape[1] == 4 + 3 * 44


def test_sweep_errors(cli, photo, tmp_path):
    out = tmp_path / "s.png"
    r = cli("sweep", "quantize", photo, "--vary", "quantize.k", "-o", out)
    assert r.returncode == 2 and "expected step.param=value" in r.err
    r = cli("sweep", "quantize", photo, "--vary", "quantize.colours=2,3", "-o", out)
    assert r.returncode == 2 and "unknown parameter 'colours'" in r.err
    r = cli("sweep", "quantize", photo, "--vary", "quantize.k=2,999", "-o", out)
    assert r.returncode == 2 and "k=" in r.err
    r = cli("sweep", "quantize", photo, "-o", out)
    assert r.returncode == 2 and "nothing to sweep" in r.err
    r = cli("sweep", "quantize", photo, "--vary", "quantize.k=2,3", "-o", photo)
    assert r.returncode == 2 and "overwrite the input" in r.err
    assert not out.exists()


def test_a_cell_that_cannot_fit_stops_the_sweep_before_any_work(cli, tmp_path):
    from conftest import gradient

    photo = tmp_path / "p.png"
    Image.fromarray(gradient(24, 32)).save(photo)
    r = cli("sweep", "style:scales=1", photo, "--vary", "style.size=32,16384", "-o", tmp_path / "sheet.png",
            "--device", "cpu")
    assert r.returncode == 2 and "size=16384 needs about" in r.err
    assert not (tmp_path / "sheet.png").exists()
