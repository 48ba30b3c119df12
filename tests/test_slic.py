"""slic: contiguous segments, count near n, constant mosaic, fills, edges, determinism, errors."""

from __future__ import annotations

import numpy as np
import pytest
from pydantic import ValidationError

from artfx.stage import Context
from artfx.stages.slic import segment, stage
from artfx.testing import check_stage


def run(image, **params):
    ctx = Context(seed=1, device="cpu")
    out = stage.apply(image, stage.Params(**params), ctx)
    return out, ctx.get("labels")


def blobs(h=120, w=160, seed=0, noise=0.02):
    """Flat-coloured random discs on a gradient, plus noise: edges SLIC should follow."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w]
    img = np.stack([x / w, y / h, np.full((h, w), 0.4)], axis=-1)
    for _ in range(12):
        cy, cx, r = rng.uniform(0, h), rng.uniform(0, w), rng.uniform(8, 30)
        img[(y - cy) ** 2 + (x - cx) ** 2 < r * r] = rng.uniform(0, 1, 3)
    img += rng.normal(0, noise, img.shape)
    return np.clip(img, 0, 1).astype(np.float32)


def n_components(labels):
    from skimage.measure import label

    return label(labels + 1, connectivity=1, background=0).max()


def test_conforms():
    check_stage(stage, params={"n": 20})
    check_stage(stage, params={"n": 8, "fill": "median", "edges": True, "edge_width": 2, "space": "rgb"})
    check_stage(stage, params={"n": 5, "sigma": 1.0, "compactness": 30})


@pytest.mark.parametrize("n", [10, 60, 300])
@pytest.mark.parametrize("shape", [(120, 160), (400, 600)])
def test_segments_contiguous_numbered_and_near_n(n, shape):
    img = blobs(*shape)
    out, labels = run(img, n=n)
    m = labels.max() + 1
    assert labels.dtype == np.int32 and labels.shape == shape
    assert set(np.unique(labels)) == set(range(m))  # 0..m-1, none missing
    assert n_components(labels) == m  # every label is one 4-connected region
    assert 0.6 * n <= m <= 1.4 * n, m


def test_mosaic_is_the_mean_of_each_segment():
    img = blobs(seed=3)
    out, labels = run(img, n=50)
    m = labels.max() + 1
    flat, lab = out.reshape(-1, 3), labels.reshape(-1)
    counts = np.bincount(lab, minlength=m)
    for c in range(3):
        means = np.bincount(lab, weights=img.reshape(-1, 3)[:, c].astype(np.float64), minlength=m) / counts
        np.testing.assert_allclose(flat[:, c], means[lab], atol=1e-6)
    # constant on each label
    for c in range(3):
        assert np.all(flat[:, c] == flat[np.argmax(np.eye(m, dtype=bool)[lab], axis=0)][lab, c])


def test_median_fill():
    img = blobs(seed=4)
    out, labels = run(img, n=30, fill="median")
    q = np.clip(np.rint(img * 255), 0, 255)
    for lab in range(0, labels.max() + 1, 5):
        mask = labels == lab
        vals = q[mask]
        want = np.sort(vals, axis=0)[(len(vals) + 1) // 2 - 1] / 255.0  # the lower median of 8-bit values
        np.testing.assert_allclose(out[mask][0], want, atol=1e-6)
        assert np.all(out[mask] == out[mask][0])


def test_follows_edges_better_than_a_grid():
    img = blobs(seed=5, noise=0.0)
    out, labels = run(img, n=100)
    m = labels.max() + 1
    gh = int(round(np.sqrt(m * img.shape[0] / img.shape[1])))
    gw = max(1, m // gh)
    y, x = np.mgrid[0 : img.shape[0], 0 : img.shape[1]]
    grid = (y * gh // img.shape[0]) * gw + x * gw // img.shape[1]
    gmean = np.stack([np.bincount(grid.ravel(), weights=img[..., c].ravel()) / np.bincount(grid.ravel())
                      for c in range(3)], -1)[grid]
    err_slic = np.mean((out - img) ** 2)
    err_grid = np.mean((gmean - img) ** 2)
    assert err_slic < 0.7 * err_grid


def test_compactness_controls_shape():
    img = blobs(seed=6, noise=0.05)

    def boundary(labels):  # boundary length per sqrt(segment count): 2 sqrt(m * area) for m squares
        edges = (np.diff(labels, axis=0) != 0).sum() + (np.diff(labels, axis=1) != 0).sum()
        return edges / np.sqrt(labels.max() + 1)

    _, loose = run(img, n=60, compactness=3)
    _, tight = run(img, n=60, compactness=80)
    assert boundary(tight) < 0.85 * boundary(loose)


def test_edges_drawn_in_colour_and_width():
    img = blobs(seed=7)
    plain, labels = run(img, n=40)
    out, labels2 = run(img, n=40, edges=True, edge_color="#ff0000")
    np.testing.assert_array_equal(labels, labels2)
    edge = np.zeros(labels.shape, bool)
    edge[:, :-1] |= labels[:, :-1] != labels[:, 1:]
    edge[:-1] |= labels[:-1] != labels[1:]
    assert np.all(out[edge] == [1, 0, 0])
    np.testing.assert_array_equal(out[~edge], plain[~edge])
    thick, _ = run(img, n=40, edges=True, edge_color="#ff0000", edge_width=3)
    assert (thick == [1, 0, 0]).all(-1).sum() > 2 * edge.sum()


def test_deterministic_and_independent_of_thread_count():
    """The kernels themselves on 1 and 2 threads (the stage picks one thread for images this small, so the
    segmentation is called directly), on an image large enough for the parallel paths to split the work."""
    import numba

    from artfx.stages.slic import segment

    if numba.config.NUMBA_NUM_THREADS < 2:
        pytest.skip("numba has a single thread on this machine")
    img = blobs(520, 540, seed=8)
    assert img.shape[0] * img.shape[1] > 1 << 18  # above the stage's one-thread threshold
    before = numba.get_num_threads()
    try:
        numba.set_num_threads(2)
        la, ma = segment(img, 400)
        numba.set_num_threads(1)
        lb, mb = segment(img, 400)
    finally:
        numba.set_num_threads(before)
    assert ma == mb
    np.testing.assert_array_equal(la, lb)
    a, _ = run(img, n=400)
    b, _ = run(img, n=400)
    np.testing.assert_array_equal(a, b)


def test_coarse_to_fine_matches_full_resolution_quality():
    """The pooled schedule is a speed device: its mosaic must be about as good as plain full-resolution SLIC."""
    img = blobs(480, 640, seed=9, noise=0.03)
    fast, m1 = segment(img, 200)
    full, m2 = segment(img, 200, levels=[(1, 7)])

    def mse(labels, m):
        out = np.stack(
            [np.bincount(labels.ravel(), weights=img[..., c].ravel(), minlength=m)
             / np.bincount(labels.ravel(), minlength=m) for c in range(3)], -1)[labels]
        return np.mean((out - img) ** 2)

    assert mse(fast, m1) <= 1.1 * mse(full, m2)


def test_n_larger_than_pixels_and_tiny_images():
    img = blobs(6, 5)
    out, labels = run(img, n=1000)
    assert labels.max() + 1 <= 30 and n_components(labels) == labels.max() + 1
    out, labels = run(img[:1, :1], n=3)
    assert labels.shape == (1, 1) and labels[0, 0] == 0


def test_bad_parameters_give_clear_errors():
    with pytest.raises(ValidationError, match="greater than or equal to 1"):
        stage.Params(n=0)
    with pytest.raises(ValidationError, match="greater than 0"):
        stage.Params(compactness=0)
    with pytest.raises(ValidationError, match="is not a colour"):
        stage.Params(edge_color="red")
    with pytest.raises(ValidationError):
        stage.Params(fill="mode")


def test_iters_is_now_iterations(caplog):
    from artfx.pipeline import Pipeline

    with caplog.at_level("WARNING", logger="artfx"):
        pipe = Pipeline.from_spec("slic:iters=3")
    assert pipe.steps[0].params.iterations == 3 and "iters is now called iterations" in caplog.text
    assert "iters" not in pipe.raw()[0][1]
