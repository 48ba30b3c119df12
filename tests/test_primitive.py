"""primitive stage: exact colour solve, monotone error, SVG/JSON/GIF outputs, determinism, shapes, errors."""

from __future__ import annotations

import json
import math
import re
import xml.etree.ElementTree as ET

import numpy as np
import pytest
from pydantic import ValidationError

from artfx.stage import Context
from artfx.stages.primitive import stage
from artfx.stages.primitive.shapes import KINDS
from artfx.testing import check_stage, sample_image

FAST = {"restarts": 2, "candidates": 10, "failures": 10, "refine": 10, "refine_every": 4}


def run(image, seed=7, **params):
    ctx = Context(seed=seed, device="cpu")
    progress = []
    ctx.on_progress = lambda _s, done, total, m: progress.append((done, total, m["rmse"]))
    out = stage.apply(image, stage.Params(**{**FAST, **params}), ctx)
    return out, ctx, progress


def rmse255(a, b):
    return float(np.sqrt(np.mean((np.asarray(a, np.float64) - np.asarray(b, np.float64)) ** 2)) * 255)


def test_conforms_to_stage_contract():
    check_stage(stage, params={"n": 4, **FAST})
    check_stage(stage, params={"n": 4, "shape": "combo", "alpha": 0.0, "workers": 2, **FAST})
    check_stage(stage, params={"n": 4, "shape": "bezier", "method": "shrink", **FAST})


# ---- the exact colour solve against brute force ---------------------------------------------------------------

def _state(seed=0, h=9, w=11):
    from artfx.stages.primitive import search

    rng = np.random.default_rng(seed)
    target = rng.random((h, w, 3))
    canvas = search.Canvas(target, np.array([0.3, 0.5, 0.7]))
    # a non-flat current picture: composite two arbitrary shapes
    for p, col in (([0, 1, 1, 10, 2, 4, 8, 0, 0, 0], [0.9, 0.1, 0.2, 0.6]),
                   ([3, 6, 5, 3, 2.5, 0, 0, 0, 0, 0], [0.1, 0.8, 0.4, 0.7])):
        p, col = np.array(p, float), np.array(col)
        canvas.add(p, col, 0.0)
    return canvas


def _brute_delta(canvas, cov, col, a):
    new = canvas.cur + a * cov[..., None] * (np.asarray(col[:3]) - canvas.cur)
    return float(((canvas.target - new) ** 2).sum() - ((canvas.target - canvas.cur) ** 2).sum())


@pytest.mark.parametrize("shape", [[0, 2.2, 1.3, 9.7, 3.1, 5.5, 8.4], [4, 5.3, 4.1, 4.2, 1.7, 0.6], [7, 1, 1, 5, 9, 10, 2, 1.5]])
def test_colour_solve_is_exact_least_squares(shape):
    from artfx.stages.primitive import geometry as g
    from artfx.stages.primitive import kernels as k
    from artfx.stages.primitive import search

    canvas = _state()
    p = np.zeros(g.NP)
    p[: len(shape)] = shape
    ol = np.zeros(g.OL)
    g.outline(p, ol)
    cov = k.coverage(ol, canvas.W, canvas.H)
    assert cov.max() > 0.99 and ((cov > 0) & (cov < 1)).any()  # edges are anti-aliased

    a = 0.5
    col = np.zeros(4)
    delta = search.score_shape(p, canvas.pref, canvas.W, canvas.H, a, col)
    # brute force: the unconstrained least-squares colour, per channel, from every pixel
    w = (a * cov).ravel()
    for ch in range(3):
        cur = canvas.cur[..., ch].ravel()
        r = canvas.target[..., ch].ravel() - cur
        best = float((w * (r + w * cur)).sum() / (w * w).sum())
        assert col[ch] == pytest.approx(min(max(best, 0), 1), abs=0.5 / 255 + 1e-12)
    # the reported change of error is exactly that of compositing the shape
    assert delta == pytest.approx(_brute_delta(canvas, cov, col, a), abs=1e-9)
    # and no 8-bit colour nearby does better
    for ch in range(3):
        for step in (-1 / 255, 1 / 255):
            c2 = col.copy()
            c2[ch] = min(max(c2[ch] + step, 0), 1)
            assert _brute_delta(canvas, cov, c2, a) >= delta - 1e-12

    # solved alpha: at least as good as the best of a grid of alphas, each with its own least-squares colour
    col_s = np.zeros(4)
    delta_s = search.score_shape(p, canvas.pref, canvas.W, canvas.H, 0.0, col_s)
    assert delta_s == pytest.approx(_brute_delta(canvas, cov, col_s, col_s[3]), abs=1e-9)
    grid = []
    for a2 in np.linspace(0.05, 1.0, 40):
        c2 = np.zeros(4)
        grid.append(search.score_shape(p, canvas.pref, canvas.W, canvas.H, a2, c2))
    assert delta_s <= min(grid) + 1e-3 * abs(min(grid)) + 1e-9


# ---- the search -----------------------------------------------------------------------------------------------

def test_error_never_increases_and_matches_the_picture():
    img = sample_image(24, 32, seed=1)
    out, ctx, progress = run(img, n=15, alpha=0.0)
    done = [d for d, _, _ in progress]
    rm = [m for _, _, m in progress]
    assert done[:15] == list(range(1, 16))  # one step per shape, the final refinement's steps, the rebuilds
    total = 15 + FAST["refine"] + stage.Params().rebuild
    assert all(b > a for a, b in zip(done, done[1:])) and progress[-1][1] == done[-1] == total
    assert all(b <= a + 1e-9 for a, b in zip(rm, rm[1:]))
    flat = rmse255(np.broadcast_to(img.reshape(-1, 3).mean(0), img.shape), img)
    assert rm[-1] < 0.7 * flat
    assert rmse255(out, img) == pytest.approx(rm[-1], abs=0.01)  # the score searched is the picture's
    assert len(ctx.get("shapes")) == 15


def test_same_seed_same_picture_any_thread_count():
    img = sample_image(20, 26, seed=2)
    a, _, _ = run(img, n=6, shape="combo", workers=1)
    b, _, _ = run(img, n=6, shape="combo", workers=2)
    c, _, _ = run(img, n=6, shape="combo", workers=1, seed=8)
    assert np.array_equal(a, b)
    assert not np.array_equal(a, c)


def test_shrink_method_lowers_the_error():
    img = sample_image(24, 32, seed=3)
    out, _, progress = run(img, n=20, method="shrink", candidates=30)
    flat = rmse255(np.broadcast_to(img.reshape(-1, 3).mean(0), img.shape), img)
    assert progress[-1][2] < flat
    assert rmse255(out, img) == pytest.approx(progress[-1][2], abs=0.01)


@pytest.mark.parametrize("kind", KINDS + ("combo",))
def test_every_shape_type_gives_valid_shapes_inside_the_canvas(kind):
    from artfx.stages.primitive import geometry as g
    from artfx.stages.primitive import kernels as k
    from artfx.stages.primitive.shapes import CODE

    W, H = 40, 30
    ps, ols = g.random_batch(5, CODE[kind], W, H, 0.5, 200)
    ms, mols = g.mutate_batch(6, ps, 3, W, H, 0.5)
    for p, ol in zip(np.concatenate([ps, ms]), np.concatenate([ols, mols])):
        name = KINDS[int(p[0])]
        assert kind == "combo" or name == kind
        assert g.valid_shape(p)
        pts = {"triangle": 3, "rectangle": 2, "polygon": 4, "bezier": 3}.get(name, 1)
        xy = p[1 : 1 + 2 * pts].reshape(-1, 2)
        assert (xy[:, 0] >= 0).all() and (xy[:, 0] <= W).all() and (xy[:, 1] >= 0).all() and (xy[:, 1] <= H).all()
        cov = k.coverage(ol, W, H)
        assert cov.min() >= 0 and cov.max() <= 1 + 1e-12
    img = sample_image(H, W, seed=4)
    _, ctx, _ = run(img, n=3, shape=kind)
    shapes = ctx.get("shapes")
    assert shapes and all(kind == "combo" or s["type"] == kind for s in shapes)
    assert all(0 < s["alpha"] <= 1 and re.fullmatch(r"#[0-9a-f]{6}", s["color"]) for s in shapes)


# ---- outputs ----------------------------------------------------------------------------------------------------

def _svg_outlines(svg_text):
    """Re-read our SVG into rasteriser outlines (an independent parse of the written geometry)."""
    from artfx.stages.primitive import geometry as g

    ns = "{http://www.w3.org/2000/svg}"
    root = ET.fromstring(svg_text)
    vb = [float(v) for v in root.get("viewBox").split()]
    items = []
    bg = None
    for el in root:
        tag = el.tag.replace(ns, "")
        fill = el.get("fill")
        col = [int(fill[i : i + 2], 16) / 255 for i in (1, 3, 5)] + [float(el.get("fill-opacity", 1))]
        ol = np.zeros(g.OL)
        if tag == "rect" and bg is None:
            bg = col[:3]
            continue
        if tag in ("polygon", "rect"):
            if tag == "rect":
                x, y, w, h = (float(el.get(a)) for a in ("x", "y", "width", "height"))
                pts = [(x, y), (x + w, y), (x + w, y + h), (x, y + h)]
            else:
                pts = [tuple(map(float, q.split(","))) for q in el.get("points").split()]
            pts = pts + [pts[-1]] * (4 - len(pts))
            ol[0], ol[1] = 0, 1
            ol[2:10] = np.ravel(pts)
        elif tag in ("ellipse", "circle"):
            cx, cy = float(el.get("cx")), float(el.get("cy"))
            rx = float(el.get("rx", el.get("r", 0)))
            ry = float(el.get("ry", el.get("r", 0)))
            m = re.match(r"rotate\(([-\d.e]+)", el.get("transform", "rotate(0"))
            th = math.radians(float(m.group(1)))
            c, s = math.cos(th), math.sin(th)
            ol[0:6] = [1, cx, cy, c * c / rx**2 + s * s / ry**2, c * s * (1 / rx**2 - 1 / ry**2),
                       s * s / rx**2 + c * c / ry**2]
        elif tag == "path":
            quads = re.findall(r"M([^Z]*)Z", el.get("d"))
            ol[0], ol[1] = 0, len(quads)
            for i, q in enumerate(quads):
                nums = [float(v) for v in re.findall(r"[-\d.e]+", q)]
                ol[2 + 8 * i : 10 + 8 * i] = nums
        else:
            raise AssertionError(f"unexpected SVG element {tag}")
        items.append((ol, np.array(col)))
    return vb, (float(root.get("width")), float(root.get("height"))), np.array(bg), items


def test_svg_redrawn_matches_the_picture_and_files_are_written(tmp_path):
    from artfx.stages.primitive import geometry as g
    from artfx.stages.primitive import kernels as k

    img = sample_image(18, 24, seed=5)
    paths = {key: tmp_path / f"out.{key}" for key in ("svg", "json", "gif", "mp4")}
    out, ctx, _ = run(img, n=24, shape="combo", alpha=0.0, output_size=48, frames=5,
                      **{key: str(p) for key, p in paths.items()})
    assert out.shape == (36, 48, 3)
    svg_text = paths["svg"].read_text()
    assert svg_text == ctx.get("svg")
    vb, (wo, ho), bg, items = _svg_outlines(svg_text)
    assert (wo, ho) == (48, 36) and len(items) == len(ctx.get("shapes"))
    canvas = np.empty((36, 48, 3))
    canvas[:] = bg
    for ol, col in items:
        g.scale_outline(ol, wo / vb[2], ho / vb[3])
        k.composite(canvas, ol, col[:3], col[3])
    assert np.abs(canvas - out).max() < 2e-3  # only the SVG's 4-decimal coordinates differ

    doc = json.loads(paths["json"].read_text())
    assert doc["shapes"] == ctx.get("shapes") and (doc["width"], doc["height"]) == (24, 18)
    from PIL import Image

    with Image.open(paths["gif"]) as gif:
        assert gif.n_frames >= 5 and gif.size == (48, 36)
    assert paths["mp4"].stat().st_size > 0


def test_render_at_other_sizes_follows_the_shapes():
    from artfx.stages.primitive import render
    from artfx.stages.primitive.shapes import from_dict

    img = sample_image(20, 30, seed=6)
    small, ctx, _ = run(img, n=10, alpha=0.0)
    shapes = [from_dict(d) for d in ctx.get("shapes")]
    bg = np.array([int(ctx.get("svg").split('fill="#')[1][i : i + 2], 16) / 255 for i in (0, 2, 4)])
    again = render.render(shapes, bg, (30, 20))
    assert np.abs(again - small).max() < 1e-6  # the dict form is complete
    big = render.render(shapes, bg, (30, 20), (90, 60))
    down = big.reshape(20, 3, 30, 3, 3).mean(axis=(1, 3))
    assert rmse255(down, small) < 4.0


# ---- the PyTorch batch path (runs on the CPU here) --------------------------------------------------------------

def test_torch_batch_scoring_agrees_with_numba():
    torch = pytest.importorskip("torch")
    from artfx.stages.primitive import batch, search
    from artfx.stages.primitive import geometry as g
    from artfx.stages.primitive import kernels as k

    canvas = _state(seed=3, h=13, w=17)
    ps, ols = g.random_batch(9, g.COMBO, 17, 13, 0.4, 120)
    keep = ps[:, 0] != g.BEZIER
    ps, ols = ps[keep], ols[keep]
    ts = batch.TorchSearch(canvas, torch.device("cpu"))
    cov = batch.coverage_batch(torch.as_tensor(ols), 17, 13).numpy()
    got = ts.scores(ols, 0.5)
    for i in range(len(ols)):
        assert np.abs(cov[i] - k.coverage(ols[i], 17, 13)).max() < 1e-9
        col = np.zeros(4)
        assert got[i] == pytest.approx(search.score_shape(ps[i], canvas.pref, 17, 13, 0.5, col), abs=1e-9)
    p, col, delta = ts.best_shape(np.array([1, 2, 3]), g.TRIANGLE, 0.4, 50, 40, 0.0)
    assert delta < 0 and int(p[0]) == g.TRIANGLE


# ---- parameters -------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("bad, words", [
    ({"n": 0}, "greater than or equal to 1"),
    ({"shape": "hexagon"}, "triangle"),
    ({"alpha": -0.1}, "greater than or equal to 0"),
    ({"alpha": 1.5}, "less than or equal to 1"),
    ({"background": "red"}, "#rrggbb"),
    ({"method": "anneal"}, "hill"),
    ({"refine": -1}, "greater than or equal to 0"),
    ({"time": -2}, "greater than or equal to 0"),
])
def test_bad_parameters_are_refused_clearly(bad, words):
    with pytest.raises(ValidationError) as err:
        stage.Params(**bad)
    assert words in str(err.value)


def test_background_colour_is_used():
    img = sample_image(12, 16)
    out, ctx, _ = run(img, n=1, background="#102030")
    assert '<rect x="0" y="0" width="16" height="12" fill="#102030"/>' in ctx.get("svg")


def test_command_line_writes_picture_svg_and_gif(photo, tmp_path):
    from PIL import Image

    from conftest import run_cli

    out, svg, gif = tmp_path / "out.png", tmp_path / "out.svg", tmp_path / "out.gif"
    res = run_cli("primitive", str(photo), "-n", "8", "--shape", "triangle", "--restarts", "2", "--failures", "20",
                  "-o", str(out), "--svg", str(svg), "--gif", str(gif), "--device", "cpu")
    assert res.returncode == 0, res.stderr.decode()[-2000:]
    with Image.open(out) as im:
        assert im.size == (32, 24)
    assert svg.read_text().count("<polygon") == 8
    with Image.open(gif) as im:
        assert im.n_frames >= 2
    bad = run_cli("primitive", str(photo), "-n", "0", "-o", str(tmp_path / "x.png"))
    assert bad.returncode == 2
    assert bad.stderr.decode().strip() == ("artfx: error: primitive: n=0: Input should be greater than or equal "
                                           "to 1 (allowed range 1..100000)")
