"""style stage, speed work of 0.3: precision chosen from the hardware, the tolerance stop, the iteration plan,
progress that names the scale and says the time left, and the plain progress lines of a log.

Tiny images and a few iterations, one thread: no timing is asserted anywhere.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from artfx.stage import Context
from artfx.stages.style import Params, optimize, stage, styles
from artfx.testing import sample_image

torch = pytest.importorskip("torch")


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _style(h: int = 48, w: int = 48) -> np.ndarray:
    from artfx.io import read_image

    s = read_image(styles.resolve("starry-night")).rgb
    return optimize.resize(optimize.to_tensor(s), (h, w))[0].permute(1, 2, 0).numpy().copy()


def _distances(content: np.ndarray, style: np.ndarray, img: np.ndarray) -> tuple[float, float]:
    """(content, style) distances of ``img``: the default loss's two terms, in fp32, at the image's size."""
    net = optimize.get_network()
    setup = optimize.Setup()
    with torch.no_grad():
        obj = optimize.Objective(net, setup, optimize.to_tensor(content), [optimize.to_tensor(style)], [1.0], None,
                                 None)
        terms = obj.terms(optimize.to_tensor(img))
    return float(terms["content"]), float(terms["style"])


def test_auto_precision_follows_what_torch_reports_for_this_cpu():
    cpu = torch.device("cpu")
    dtype, why = optimize.choose_precision("auto", cpu)
    has = torch.cpu._is_amx_tile_supported() or torch.cpu._is_avx512_bf16_supported()
    assert (dtype is torch.bfloat16) == bool(has and torch.ops.mkldnn._is_mkldnn_bf16_supported())
    assert why.startswith("bf16: this CPU has" if has else "fp32: this CPU has neither")
    assert optimize.choose_precision("fp32", cpu)[0] is None
    assert optimize.choose_precision("bf16", cpu)[0] is torch.bfloat16
    assert "precision=auto" in dict(stage.about())


def test_bf16_reaches_the_same_distances_as_fp32():
    content = sample_image(40, 56, seed=4)
    style = _style()
    found = {}
    for precision in ("fp32", "bf16"):
        setup = optimize.Setup(size=56, start_size=56, iterations=25, precision=precision)
        out = optimize.transfer(content, [style], setup, device="cpu")
        found[precision] = _distances(content, style, out)
    start = _distances(content, style, content)
    (c32, s32), (c16, s16) = found["fp32"], found["bf16"]
    assert s32 < 0.5 * start[1] and s16 < 0.5 * start[1]  # both optimised for real
    # bf16 features (losses in fp32): the total within 10 %, each distance within 20 %, of fp32's
    assert abs((c16 + s16) - (c32 + s32)) < 0.10 * (c32 + s32)
    assert abs(s16 - s32) < 0.20 * s32 and abs(c16 - c32) < 0.20 * max(c32, 0.05)


def test_stalled_looks_at_the_best_loss_not_the_last():
    flat = [10.0] * 5 + [5.0] + [4.999] * 10
    assert optimize.stalled(flat, 1e-3)  # the best of the last 10 is 0.02 % below the best before
    assert not optimize.stalled(flat, 0.0)  # tol=0: never
    falling = [10.0 - 0.5 * i for i in range(16)]
    assert not optimize.stalled(falling, 1e-3)
    jumped = [10.0, 9.0, 8.0, 7.0, 6.0, 5.5, 40.0, 30.0, 20.0, 10.0, 5.0, 4.0]  # one step up, then better
    assert not optimize.stalled(jumped, 1e-3)
    assert not optimize.stalled([3.0] * 10, 0.5)  # not before a whole window


def test_the_tolerance_stop_is_deterministic_and_counted_in_the_progress():
    content = sample_image(32, 32, seed=1)
    runs = []
    for _ in range(2):
        seen = []
        ctx = Context(seed=2, device="cpu", on_progress=lambda s, d, t, m: seen.append((d, t, m["scale"])))
        out = stage.apply(content, Params(size=32, start_size=32, iterations=60, tol=0.1, image=["great-wave"]),
                          ctx)
        runs.append((out, seen))
    (a, seen_a), (b, seen_b) = runs
    assert np.array_equal(a, b) and seen_a == seen_b
    done, total, _ = seen_a[-1]
    assert 10 < done < 60 and done == total  # stopped early, and the bar's total came down to it


def test_a_stopped_run_replays_to_the_same_bytes(tmp_path):
    import artfx

    src = tmp_path / "in.png"
    Image.fromarray((sample_image(24, 32, seed=5) * 255).astype(np.uint8)).save(src)
    spec = "style:size=32:start_size=16:iterations=40:tol=0.1:image=great-wave"
    first = tmp_path / "a.png"
    artfx.run(spec, src, output=first)
    again = tmp_path / "b.png"
    artfx.replay(first, again)
    a, b = (np.asarray(Image.open(p)) for p in (first, again))
    assert np.array_equal(a, b)
    from artfx.recipe import load

    assert "tol=0.1" in load(first)["spec"]  # the recipe records the tolerance the run stopped by


def test_progress_names_the_scale_and_says_the_time_left():
    seen = []
    ctx = Context(seed=1, device="cpu", on_progress=lambda s, d, t, m: seen.append((d, t, m)))
    stage.apply(sample_image(40, 40), Params(size=40, start_size=20, iterations=3, scales=2, tol=0,
                                             image=["shipwreck"]), ctx)
    scales = [m["scale"] for _, _, m in seen]
    assert scales == ["1/2 20x20"] * 3 + ["2/2 40x40"] * 3
    assert all(t == 6 for _, t, _ in seen)
    lefts = [m["left"] for _, _, m in seen]
    assert all(isinstance(v, float) and v >= 0 for v in lefts) and lefts[-1] == 0.0


def test_the_clock_scales_the_measured_cost_by_pixels():
    clock = optimize.Clock([(10, 10), (20, 20)], [5, 2])
    now = [0.0]
    clock.now = lambda: now[0]
    assert clock.left() is None
    clock.begin(0)
    for i in (1, 2):
        now[0] += 1.0  # one second an iteration at 100 px
        clock.tick(0, i)
    assert clock.left() == pytest.approx(3 * 1.0 + 2 * 4.0)  # three more here, two at four times the pixels
    clock.tick(0, 3, stopped=True)  # the scale stops early: its last two iterations leave the total
    assert clock.total == 5 and clock.plan == [3, 2]


def test_the_clock_counts_a_tiled_scale_at_its_tiles_cost():
    """A tiled iteration sees every pixel twice (the whole-picture statistics, then the gradient) and the halos on
    top, so the estimate before a big run charges its tiled scales more than their pixel count."""
    from artfx.stages.style import tiles

    hw = (600, 800)
    assert tiles.Plan(None, 5, 0).work(hw) == 1.0
    small, large = tiles.Plan(128, 5, 0).work(hw), tiles.Plan(400, 5, 0).work(hw)
    assert small > large > 1 + tiles.FORWARD_SHARE  # smaller tiles: more halo
    clock = optimize.Clock([(10, 10), (20, 20)], [1, 1], [1.0, large])
    now = [0.0]
    clock.now = lambda: now[0]
    clock.begin(0)
    now[0] += 1.0
    clock.tick(0, 1)
    assert clock.left() == pytest.approx(4.0 * large)
    clock.begin(1, small)  # planned again when the scale starts: the memory may have changed
    assert clock.left() == pytest.approx(4.0 * small)


def test_a_log_gets_plain_progress_lines(capsys, monkeypatch):
    """Without a terminal (make demo in a log), a long step says a line at each scale and every 15 s; a quick
    step says nothing."""
    import time

    from artfx.cli import view

    now = [100.0]
    monkeypatch.setattr(time, "monotonic", lambda: now[0])
    v = view.ProgressView(True)
    assert not v.enabled and v.lines  # pytest's stderr is not a terminal
    v("1:quantize", 1, 1, {})  # quick: silent
    for done, scale, dt in [(1, "1/2 20x20", 0), (2, "1/2 20x20", 6), (3, "1/2 20x20", 3), (4, "2/2 40x40", 1),
                            (5, "2/2 40x40", 20), (6, "2/2 40x40", 1)]:
        now[0] += dt
        v("2:style", done, 6, {"loss": 1.5, "scale": scale, "left": 30.0})
    lines = [l for l in capsys.readouterr().err.splitlines() if l.startswith("artfx:")]
    assert lines == ["artfx: 2:style 2/6 loss=1.5 scale=1/2 20x20, about 0:00:30 left",
                     "artfx: 2:style 4/6 loss=1.5 scale=2/2 40x40, about 0:00:30 left",
                     "artfx: 2:style 5/6 loss=1.5 scale=2/2 40x40, about 0:00:30 left",
                     "artfx: 2:style 6/6 loss=1.5 scale=2/2 40x40"]


def test_a_long_cpu_run_says_how_long_first(caplog, monkeypatch):
    import artfx.stages.style as style_mod

    monkeypatch.setattr(style_mod, "LONG_RUN_S", 0.0)  # every run is "long" here
    with caplog.at_level("WARNING", logger="artfx"):
        stage.apply(sample_image(24, 24), Params(size=24, iterations=3, scales=1, image=["great-wave"]),
                    Context(seed=1, device="cpu"))
    assert caplog.text.count("on this CPU") == 1 and "smaller size=" in caplog.text
