"""primitive's joint refinement: the soft coverage model against the exact one, its gradients (two implementations
and finite differences), the optimiser's guarantees (never worse, deterministic), the time budget, the animation,
Ctrl-C keeping every output at the output size, and the GPU path (marked ``gpu``; skipped without CUDA)."""

from __future__ import annotations

import os
import select
import signal
import re
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest

from artfx.stage import Context
from artfx.stages.primitive import geometry as g
from artfx.stages.primitive import kernels as k
from artfx.stages.primitive import stage
from artfx.stages.primitive.shapes import CODE, KINDS, PARAMS
from artfx.testing import sample_image
from conftest import exact_sse

torch = pytest.importorskip("torch")

ROOT = Path(__file__).resolve().parents[1]
FAST = {"restarts": 2, "candidates": 10, "failures": 10}
cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


def run(image, seed=7, **params):
    ctx = Context(seed=seed, device="cpu")
    out = stage.apply(image, stage.Params(**{**FAST, **params}), ctx)
    return out, ctx


def rmse255(a, b):
    return float(np.sqrt(np.mean((np.asarray(a, np.float64) - np.asarray(b, np.float64)) ** 2)) * 255)


def _shapes(kind, W, H, count, seed):
    ps, ols = g.random_batch(seed, CODE[kind], W, H, 0.35, count)
    return ps, ols


# ---- the soft model ------------------------------------------------------------------------------------------

@pytest.mark.parametrize("kind", KINDS)
def test_soft_coverage_converges_to_the_exact_coverage(kind):
    from artfx.stages.primitive import soft

    W, H = 21, 16
    ps, ols = _shapes(kind, W, H, 12, 3)
    exact = np.stack([k.coverage(o, W, H) for o in ols])
    assert ((exact > 0) & (exact < 1)).any() and exact.max() > 0.5
    ol_t = soft.outlines(torch.as_tensor(ps))
    assert np.abs(ol_t.numpy() - ols).max() < 1e-12  # torch's outlines are geometry.outline's
    errs = [float(np.abs(soft.coverage_all(ol_t, W, H, s).numpy() - exact).mean()) for s in (0.8, 0.2, 0.05, 0.0125)]
    assert all(b < a / 2 for a, b in zip(errs, errs[1:])), errs  # each 4x narrower edge: at least 2x closer
    assert errs[0] > 1e-4 and errs[-1] < 5e-5, errs
    assert np.abs(soft.coverage_all(ol_t, W, H, 0.0).numpy() - exact).max() < 1e-12  # width 0: the exact model


@pytest.mark.parametrize("kind", KINDS + ("combo",))
def test_numba_backward_agrees_with_torch_autograd(kind):
    from artfx.stages.primitive import adjoint, soft

    W, H = 19, 15
    rng = np.random.default_rng(CODE[kind] + 2)
    target, bg = rng.random((H, W, 3)), np.array([0.3, 0.5, 0.6])
    ps, ols = _shapes(kind, W, H, 6, 11)
    cols, alphas = rng.random((6, 3)), rng.uniform(0.2, 1.0, 6)
    renderer = adjoint.Renderer(target, bg, workers=2)
    for sigma in (0.0, 0.7):
        P = torch.tensor(ps, requires_grad=True)
        C = torch.tensor(cols, requires_grad=True)
        A = torch.tensor(alphas, requires_grad=True)
        loss = soft.sse(soft.outlines(P), C, A, torch.tensor(bg), torch.tensor(target), sigma)
        loss.backward()
        err = renderer.forward(ols, cols, alphas, sigma)
        gol, gcol, ga, _ = renderer.backward()
        gp = g.outlines_grad(ps, gol)
        assert err == pytest.approx(loss.item(), abs=1e-10)
        assert np.abs(gp[:, 1:] - P.grad.numpy()[:, 1:]).max() < 1e-9
        assert np.abs(P.grad.numpy()[:, 1:]).max() > 1e-3  # the geometry does get a gradient
        assert np.abs(gcol - C.grad.numpy()).max() < 1e-9 and np.abs(ga - A.grad.numpy()).max() < 1e-9
    renderer.close()


@pytest.mark.parametrize("kind", KINDS)
def test_gradients_match_finite_differences(kind):
    """torch.autograd.gradcheck (float64) of the soft error with respect to every parameter, the ramp widths held
    at the start's (the function both implementations differentiate; they follow the geometry only slowly)."""
    from artfx.stages.primitive import soft

    W, H = 10, 8
    rng = np.random.default_rng(5 + CODE[kind])
    ps, _ = _shapes(kind, W, H, 2, 21 + CODE[kind])
    # points clamped to the canvas's edges tie (two vertices at y = 0): the error has a kink there (a minimum of
    # equal values), where no finite difference agrees with any gradient; move them apart a little
    pts = {"triangle": 6, "rectangle": 4, "polygon": 8, "bezier": 6}.get(kind, 0)
    ps[:, 1 : 1 + pts] += rng.uniform(0.02, 0.2, (2, pts))
    kind_col = torch.tensor(ps[:, :1])
    q = torch.tensor(ps[:, 1:], requires_grad=True)
    c = torch.tensor(rng.random((2, 3)), requires_grad=True)
    a = torch.tensor(rng.uniform(0.3, 0.9, 2), requires_grad=True)
    target, bg = torch.tensor(rng.random((H, W, 3))), torch.tensor([0.2, 0.6, 0.4], dtype=torch.float64)
    h_ol = soft.outlines(torch.tensor(ps))

    def f(q, c, a):
        return soft.sse(soft.outlines(torch.cat([kind_col, q], dim=1)), c, a, bg, target, 0.6, h_ol=h_ol)

    assert torch.autograd.gradcheck(f, (q, c, a), eps=1e-6, atol=1e-6, rtol=1e-4)


def test_numba_gradient_matches_finite_differences_of_the_exact_model():
    """At width 0 the soft model is the exact renderer: its numba gradient against central differences."""
    from artfx.stages.primitive import adjoint

    W, H = 14, 11
    rng = np.random.default_rng(4)
    target, bg = rng.random((H, W, 3)), np.array([0.5, 0.4, 0.3])
    ps = np.concatenate([_shapes(kd, W, H, 1, 30 + i)[0] for i, kd in enumerate(KINDS)])
    cols, alphas = rng.random((len(ps), 3)), rng.uniform(0.3, 0.9, len(ps))
    r = adjoint.Renderer(target, bg)

    def sse(p):
        ol = np.zeros((len(p), g.OL))
        for i in range(len(p)):
            g.outline(p[i], ol[i])
        return r.forward(ol, cols, alphas, 0.0)

    sse(ps)
    gp = g.outlines_grad(ps, r.backward()[0])
    checked = 0
    for i in range(len(ps)):
        for j in range(1, 1 + len(PARAMS[KINDS[int(ps[i, 0])]])):
            step = np.zeros_like(ps)
            step[i, j] = 1e-6
            fd = (sse(ps + step) - sse(ps - step)) / 2e-6
            if abs(gp[i, j]) > 1e-8 or abs(fd) > 1e-8:
                assert gp[i, j] == pytest.approx(fd, rel=1e-4, abs=1e-6), (KINDS[int(ps[i, 0])], j)
                checked += 1
    assert checked > 20


# ---- the refinement's guarantees -----------------------------------------------------------------------------

def _painter(img, kind="triangle", n=12, **params):
    from artfx.stages.primitive.painter import Painter

    p = stage.Params(n=n, shape=kind, refine=0, refine_every=0, **{**FAST, "rebuild": 0, **params})
    bg = img.reshape(-1, 3).mean(0)
    painter = Painter(img.astype(np.float64), bg, kind=CODE[kind], spread=max(img.shape[:2]) / 256, params=p,
                      workers=1)
    painter.paint(np.random.default_rng(1))
    return painter


_sse = exact_sse


@pytest.mark.parametrize("kind", ["triangle", "ellipse", "combo"])
def test_refinement_never_raises_the_exact_error(kind, monkeypatch):
    from artfx.stages.primitive import refine as rf

    painter = _painter(sample_image(24, 32, seed=3), kind)
    greedy = _sse(painter)
    assert painter.refine(40)  # kept: all shapes together do better than placed one by one
    refined = _sse(painter)
    assert refined < 0.97 * greedy
    # wild steps make things worse: the result is refused and nothing changes
    monkeypatch.setattr(rf, "LR_PX", 60.0)
    monkeypatch.setattr(rf, "LR_COLOUR", 2.0)
    shapes = painter.shapes
    assert not painter.refine(3)
    assert _sse(painter) == refined and painter.shapes is shapes
    assert painter.refinements == [2, 1]


def test_shapes_that_contribute_nothing_are_dropped(monkeypatch):
    from artfx.stages.primitive import refine as rf
    from artfx.stages.primitive import render

    painter = _painter(sample_image(24, 32, seed=5), "triangle", n=6)
    hidden = (np.array([g.TRIANGLE, 10, 8, 14, 8, 12, 12, 0, 0, 0.0]), np.array([0.9, 0.1, 0.1, 1.0]))
    cover = (np.array([g.RECTANGLE, 6, 4, 18, 16, 0, 0, 0, 0, 0.0]), np.array([0.5, 0.5, 0.5, 1.0]))
    items = [hidden, cover, *painter.shapes]
    gains = rf.NumbaGradient(painter.target, painter.bg).gains(rf.Shapes.of(items))
    assert gains[0] == 0.0 and (gains[1:] > 0).all()  # under an opaque shape: removing it changes nothing
    painter._set(items, render.render(items, painter.bg, (32, 24)))
    monkeypatch.setattr(rf, "LR_PX", 1e-9)  # a refinement that moves nothing, then the clean-up
    monkeypatch.setattr(rf, "LR_COLOUR", 1e-9)
    painter.refine(1)
    assert len(painter.shapes) == len(items) - 1
    assert not any(np.array_equal(p, hidden[0]) for p, _ in painter.shapes)
    _sse(painter)  # and the canvas is the picture of what is left


def test_refined_shapes_stay_drawable():
    from artfx.stages.primitive import refine as rf

    img = sample_image(20, 24, seed=9)
    painter = _painter(img, "combo", n=16)
    res = rf.refine(rf.Shapes.of(painter.shapes), rf.NumbaGradient(painter.target, painter.bg), 25,
                    W=painter.W, H=painter.H, alpha_fixed=0.0, spread=painter.spread)
    q = res.shapes.quantised()
    assert res.steps == 25 and all(g.valid_shape(p) for p in q.p)
    assert (q.col * 255 == np.round(q.col * 255)).all() and (q.alpha >= 1 / 255).all() and (q.alpha <= 1).all()
    pts = q.p[np.isin(q.p[:, 0], (g.TRIANGLE, g.POLYGON)), 1:9]
    assert (pts[:, 0::2] <= 24).all() and (pts[:, 1::2] <= 20).all() and (pts >= 0).all()


def test_fixed_opacity_stays_fixed():
    _, ctx = run(sample_image(16, 20, seed=4), n=8, alpha=0.5, refine=15, refine_every=4)
    assert {s["alpha"] for s in ctx.get("shapes")} == {0.5}


def test_same_seed_same_picture_with_refinement():
    img = sample_image(20, 26, seed=2)
    a, _ = run(img, n=8, shape="combo", workers=1, refine=12, refine_every=3)
    b, _ = run(img, n=8, shape="combo", workers=2, refine=12, refine_every=3)
    c, _ = run(img, n=8, shape="combo", workers=1, refine=12, refine_every=3, seed=8)
    greedy, _ = run(img, n=8, shape="combo", workers=1, refine=0, refine_every=0)
    assert np.array_equal(a, b)
    assert not np.array_equal(a, c) and not np.array_equal(a, greedy)


def test_gradients_do_not_depend_on_the_thread_count():
    from artfx.stages.primitive import adjoint

    img = sample_image(40, 30, seed=5).astype(np.float64)
    _, ols = _shapes("combo", 30, 40, 25, 8)
    cols, alphas = np.random.default_rng(1).random((25, 3)), np.full(25, 0.6)
    outs = []
    for workers in (1, 3):
        r = adjoint.Renderer(img, np.array([0.5, 0.5, 0.5]), workers)
        err = r.forward(ols, cols, alphas, 0.5)
        outs.append((err, *r.backward(want_gain=True)))
        r.close()
    for x, y in zip(outs[0], outs[1]):
        assert np.array_equal(x, y)


def test_refine_with_one_shape_and_on_a_flat_image():
    img = sample_image(12, 16, seed=1)
    out, ctx = run(img, n=1, refine=8, refine_every=1)
    assert len(ctx.get("shapes")) == 1 and rmse255(out, img) < rmse255(np.broadcast_to(img.mean((0, 1)), img.shape),
                                                                         img)
    flat = np.full((12, 16, 3), 0.4, np.float32)
    out, ctx = run(flat, n=3, refine=8, refine_every=1)
    assert ctx.get("shapes") == [] and np.abs(out - flat).max() < 1e-6


def test_time_budget_gives_shapes_and_tries_one_final_refinement(caplog):
    img = sample_image(128, 160, seed=6)  # big enough that its shapes stay over 64 px each in the time given
    caplog.set_level("INFO", logger="artfx")
    t = time.perf_counter()
    out, ctx = run(img, time=1.5, restarts=4, candidates=200, failures=60)  # the search at its defaults
    spent = time.perf_counter() - t
    assert 1.4 < spent < 12.0  # the budget ends it (then the picture is drawn; generous for a busy machine)
    assert len(ctx.get("shapes")) >= 10
    assert re.search(r"\d of 1 refinements kept", caplog.text)  # only the final one: none during the search
    flat = rmse255(np.broadcast_to(img.mean((0, 1)), img.shape), img)
    assert rmse255(out, img) < 0.5 * flat


def test_animation_shows_the_adding_then_the_refinement():
    from artfx.stages.primitive import render

    painter = _painter(sample_image(18, 24, seed=7), "triangle", n=10)
    adds = list(painter.events)
    assert painter.refine(20)
    assert [e for e, _ in painter.events[len(adds):]] == ["set"]
    frames = list(render.history_frames(painter.events, painter.bg, (24, 18), (48, 36), 6))
    last = render.render(painter.shapes, painter.bg, (24, 18), (48, 36))
    assert np.abs(frames[-1] / 255.0 - last).max() <= 0.5 / 255 + 1e-9  # ends on the refined picture
    before = render.render([item for _, item in adds], painter.bg, (24, 18), (48, 36))
    assert np.abs(frames[-2] / 255.0 - before).max() <= 0.5 / 255 + 1e-9  # after the last shape was added
    assert len(frames) >= 6 and not np.array_equal(frames[-1], frames[-2])


# ---- Ctrl-C ------------------------------------------------------------------------------------------------------

def test_ctrl_c_writes_the_picture_at_the_output_size_and_every_side_output(tmp_path):
    from PIL import Image

    src, out = tmp_path / "photo.png", tmp_path / "out.png"
    Image.fromarray((sample_image(48, 64, seed=3) * 255).astype(np.uint8)).save(src)
    side = {ext: tmp_path / f"out.{ext}" for ext in ("svg", "json", "gif")}
    env = dict(os.environ, PYTHONPATH=str(ROOT), COLUMNS="200")
    cmd = [sys.executable, "-m", "artfx", "primitive", str(src), "-n", "100000", "--size", "32", "--device", "cpu",
           "-o", str(out), "-v", *[a for ext, p in side.items() for a in (f"--{ext}", str(p))]]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    seen, deadline = b"", time.monotonic() + 120
    while b"primitive: searching" not in seen and time.monotonic() < deadline and proc.poll() is None:
        if select.select([proc.stderr], [], [], 0.2)[0]:
            seen += os.read(proc.stderr.fileno(), 4096)
    assert b"primitive: searching" in seen, seen.decode()
    time.sleep(1.5)  # some shapes placed, refinements under way
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, (seen + err).decode()[-2000:]
    with Image.open(out) as im:
        assert im.size == (64, 48)  # the output size, not the 32 px working size
        png = np.asarray(im.convert("RGB"))
    root = ET.fromstring(side["svg"].read_text())
    assert (root.get("width"), root.get("height"), root.get("viewBox")) == ("64", "48", "0 0 32 24")
    import json

    doc = json.loads(side["json"].read_text())
    assert len(root) - 1 == len(doc["shapes"]) > 0
    from artfx.stages.primitive import render
    from artfx.stages.primitive.shapes import from_dict

    bg = np.array([int(doc["background"][i : i + 2], 16) / 255 for i in (1, 3, 5)])
    again = render.render([from_dict(d) for d in doc["shapes"]], bg, (32, 24), (64, 48))
    assert np.abs(again * 255 - png).max() <= 1.0  # the PNG is the picture of the shapes written
    with Image.open(side["gif"]) as gif:
        assert gif.size == (64, 48) and gif.n_frames >= 2


# ---- the GPU path ------------------------------------------------------------------------------------------------

def test_torch_gradient_path_runs_on_the_cpu_too():
    """What a GPU runs (batch scoring and autograd refinement), run here on the CPU: same guarantees."""
    from artfx.stages.primitive.batch import TorchSearch

    img = sample_image(16, 20, seed=8)
    painter = _painter(img, "triangle", n=6)
    painter.device = torch.device("cpu")
    painter.scorer = TorchSearch(painter.canvas, painter.device)
    greedy = _sse(painter)
    painter.refine(10)
    assert _sse(painter) <= greedy
    assert painter.add_one(np.array([3, 4])) and len(painter.shapes) == 7


@pytest.mark.gpu
@cuda
def test_gpu_soft_model_matches_the_cpu():
    from artfx.stages.primitive import refine as rf

    img = sample_image(40, 56, seed=2).astype(np.float64)
    ps, _ = _shapes("combo", 56, 40, 30, 4)
    s = rf.Shapes(ps, np.random.default_rng(0).random((30, 3)), np.full(30, 0.7))
    bg = np.array([0.5, 0.5, 0.5])
    cpu = rf.NumbaGradient(img, bg)(s, 0.5)
    gpu = rf.TorchGradient(img, bg, "cuda")(s, 0.5)
    assert gpu[0] == pytest.approx(cpu[0], rel=1e-9)
    assert np.abs(gpu[1][:, 1:] - cpu[1][:, 1:]).max() < 1e-7
    assert np.abs(gpu[2] - cpu[2]).max() < 1e-7 and np.abs(gpu[3] - cpu[3]).max() < 1e-7


@pytest.mark.gpu
@cuda
def test_gpu_batch_scoring_agrees_with_numba():
    from artfx.stages.primitive import batch, search

    img = sample_image(30, 40, seed=4).astype(np.float64)
    canvas = search.Canvas(img, np.array([0.4, 0.5, 0.6]))
    ps, ols = _shapes("combo", 40, 30, 200, 6)
    keep = ps[:, 0] != g.BEZIER
    ts = batch.TorchSearch(canvas, torch.device("cuda"))
    got = ts.scores(ols[keep], 0.5)
    want = [search.score_shape(p, canvas.pref, 40, 30, 0.5, np.zeros(4)) for p in ps[keep]]
    assert np.abs(got - np.array(want)).max() < 1e-4 * max(1.0, np.abs(want).max())  # float32 on the GPU
    p, _, delta = ts.best_shape(np.array([1, 2, 3, 4]), g.TRIANGLE, 40 / 256, 100, 40, 0.0)
    assert delta < 0 and int(p[0]) == g.TRIANGLE


@pytest.mark.gpu
@cuda
def test_gpu_stage_refines_and_is_deterministic():
    img = sample_image(48, 64, seed=3)
    outs = []
    for _ in range(2):
        ctx = Context(seed=3, device="cuda")
        outs.append(stage.apply(img, stage.Params(n=12, refine=20, refine_every=4, **FAST), ctx))
    greedy = stage.apply(img, stage.Params(n=12, refine=0, refine_every=0, **FAST), Context(seed=3, device="cuda"))
    assert np.array_equal(outs[0], outs[1])
    assert rmse255(outs[0], img) < rmse255(greedy, img)
