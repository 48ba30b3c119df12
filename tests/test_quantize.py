"""quantize: palette exactness, Lab vs RGB, palette transfer, fixed palettes, dithering, errors, side outputs."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image as PILImage
from pydantic import ValidationError

from artfx.colours import parse_hex_list as parse_colours
from artfx.errors import ImageError
from artfx.stage import Context
from artfx.stages.quantize import gpl_text, stage
from artfx.testing import check_stage, sample_image


def run(image, **params):
    ctx = Context(seed=3, device="cpu")
    out = stage.apply(image, stage.Params(**params), ctx)
    return out, ctx


def colours_of(image):
    return np.unique(np.rint(image.reshape(-1, 3) * 255).astype(int), axis=0)


def smooth_image(h=48, w=64, seed=0):
    """Smooth random colour fields plus a dark gradient: many distinct colours, no flat areas."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w] / max(h, w)
    chans = []
    for _ in range(3):
        a, b, c, d = rng.uniform(1, 6, 4)
        chans.append(0.5 + 0.25 * np.sin(a * x * 6 + b) + 0.25 * np.cos(c * y * 6 + d))
    img = np.stack(chans, axis=-1) * (0.3 + 0.7 * x[..., None])
    return np.clip(img + rng.normal(0, 0.01, img.shape), 0, 1).astype(np.float32)


def test_conforms():
    check_stage(stage, params={"k": 4})
    check_stage(stage, params={"k": 5, "space": "rgb", "sample": 100})
    check_stage(stage, params={"k": 3, "dither": "floyd-steinberg"})
    check_stage(stage, params={"palette": "#ff0000|#00ff00|#0000ff|#ffffff"})


@pytest.mark.parametrize("k", [2, 7, 16])
@pytest.mark.parametrize("space", ["lab", "rgb"])
def test_output_is_exactly_the_palette(k, space):
    img = smooth_image()
    out, ctx = run(img, k=k, space=space)
    pal, labels = ctx.get("palette"), ctx.get("labels")
    assert pal.dtype == np.float32 and pal.ndim == 2 and pal.shape[1] == 3 and 1 <= len(pal) <= k
    assert labels.dtype == np.int32 and labels.shape == img.shape[:2]
    assert labels.min() >= 0 and labels.max() < len(pal)
    np.testing.assert_array_equal(out, pal[labels])
    # palette on exact 8-bit steps: the written PNG holds the same colours
    np.testing.assert_array_equal(pal, (np.rint(pal.astype(np.float64) * 255) / 255).astype(np.float32))
    assert len(colours_of(out)) <= k
    assert set(map(tuple, colours_of(out))) <= set(map(tuple, np.rint(pal * 255).astype(int)))
    assert out.shape == img.shape and out.dtype == np.float32


def test_assignment_is_the_exact_nearest_palette_colour():
    """The per-cell lookup and its per-colour refinement give each pixel its nearest palette entry in Lab."""
    from artfx.stages.quantize import _to_space

    img = smooth_image(64, 96, seed=5)
    out, ctx = run(img, k=12)
    pal, labels = ctx.get("palette"), ctx.get("labels")
    q = np.rint(img.reshape(-1, 3).astype(np.float64) * 255) / 255
    pix = _to_space(q, True)
    ps = _to_space(pal.astype(np.float64), True)
    d = ((pix[:, None, :] - ps[None, :, :]) ** 2).sum(-1)
    best = d.min(1)
    chosen = d[np.arange(len(d)), labels.reshape(-1)]
    # equal up to float noise (the kernels convert 8-bit colours through tables accurate to ~1e-7)
    assert np.all(chosen - best <= 1e-4 * (1 + best))


def test_lab_beats_rgb_on_ciede2000():
    from skimage.color import deltaE_ciede2000, rgb2lab

    img = smooth_image(60, 80, seed=1)
    scores = {}
    for space in ("lab", "rgb"):
        out, _ = run(img, k=6, space=space)
        scores[space] = deltaE_ciede2000(rgb2lab(img), rgb2lab(out)).mean()
    assert scores["lab"] < scores["rgb"]


def test_fewer_colours_than_k_are_kept_exactly():
    rng = np.random.default_rng(0)
    cols = rng.integers(0, 256, (5, 3)) / 255.0
    img = cols[rng.integers(0, 5, (30, 40))].astype(np.float32)
    out, ctx = run(img, k=16)
    assert len(ctx.get("palette")) == 5
    np.testing.assert_array_equal(out, img)


def test_palette_transfer_uses_only_the_other_images_colours(tmp_path):
    src_cols = np.array([[200, 30, 40], [20, 90, 160], [240, 230, 200]], np.uint8)
    other = src_cols[np.random.default_rng(1).integers(0, 3, (20, 25))]
    path = tmp_path / "other.png"
    PILImage.fromarray(other).save(path)
    out, ctx = run(smooth_image(), k=8, palette=str(path))
    got = set(map(tuple, colours_of(out)))
    assert got <= set(map(tuple, src_cols.astype(int)))
    assert len(got) >= 2
    assert len(ctx.get("palette")) <= 3


def test_fixed_palette_maps_to_nearest():
    img = np.zeros((10, 30, 3), np.float32)
    img[:, :10] = (0.9, 0.1, 0.1)  # reddish
    img[:, 10:20] = (0.1, 0.8, 0.2)  # greenish
    img[:, 20:] = (0.05, 0.05, 0.05)  # near black
    out, ctx = run(img, palette="#ff0000|#00ff00|#000000|#fff")
    np.testing.assert_array_equal(ctx.get("palette"), parse_colours("#ff0000|#00ff00|#000000|#ffffff"))
    np.testing.assert_array_equal(out[0, 0], [1, 0, 0])
    np.testing.assert_array_equal(out[0, 15], [0, 1, 0])
    np.testing.assert_array_equal(out[0, 25], [0, 0, 0])


def test_dithering_keeps_the_palette_and_the_average():
    img = np.full((40, 40, 3), 0.5, np.float32)
    flat, _ = run(img, palette="#000000|#ffffff")
    dith, ctx = run(img, palette="#000000|#ffffff", dither="floyd-steinberg")
    assert set(map(tuple, colours_of(dith))) <= {(0, 0, 0), (255, 255, 255)}
    assert len(colours_of(flat)) == 1  # without dithering one colour everywhere
    assert abs(dith.mean() - 0.5) < 0.05  # error diffusion keeps the local average
    np.testing.assert_array_equal(dith, ctx.get("palette")[ctx.get("labels")])
    fitted, ctx2 = run(smooth_image(), k=6, dither="floyd-steinberg")
    assert set(map(tuple, colours_of(fitted))) <= set(map(tuple, np.rint(ctx2.get("palette") * 255).astype(int)))


def test_same_seed_same_output_and_sampling():
    img = smooth_image(50, 70, seed=2)
    a, _ = run(img, k=8, sample=500)
    b, _ = run(img, k=8, sample=500)
    np.testing.assert_array_equal(a, b)
    full, _ = run(img, k=8)
    assert np.abs(full - img).mean() <= np.abs(a - img).mean() * 1.5  # a sample still gives a sane palette


def test_bad_parameters_give_clear_errors(tmp_path):
    with pytest.raises(ValidationError, match="greater than or equal to 2"):
        stage.Params(k=1)
    with pytest.raises(ValidationError, match="less than or equal to 256"):
        stage.Params(k=257)
    bad = tmp_path / "not_an_image.png"
    bad.write_bytes(b"this is not a png")
    with pytest.raises(ImageError, match="not_an_image.png: not an image"):  # read by artfx's reader, at run time
        run(sample_image(), palette=str(bad))
    with pytest.raises(ValidationError, match="no such image file"):
        stage.Params(palette=str(tmp_path / "missing.png"))
    with pytest.raises(ValidationError, match="is not a colour"):
        stage.Params(palette="#ff0000|#12345z")
    with pytest.raises(ValidationError, match=r"\.png .*\.gpl"):
        stage.Params(palette_out=tmp_path / "palette.txt")
    with pytest.raises(ValidationError):
        stage.Params(space="hsv")


def test_gpl_text():
    text = gpl_text(np.array([[1.0, 0.5, 0.0], [0.0, 0.0, 0.0]], np.float32), name="t")
    lines = text.splitlines()
    assert lines[0] == "GIMP Palette" and "Name: t" in lines
    assert lines[-2].split()[:3] == ["255", "128", "0"] and lines[-1].split()[:3] == ["0", "0", "0"]


@pytest.mark.parametrize("suffix", [".gpl", ".png"])
def test_palette_out_files(tmp_path, suffix):
    path = tmp_path / f"pal{suffix}"
    out, ctx = run(sample_image(), k=5, palette_out=path)
    pal = np.rint(ctx.get("palette") * 255).astype(int)
    assert path.exists()
    if suffix == ".gpl":
        rows = [line.split()[:3] for line in path.read_text().splitlines()[4:]]
        assert [list(map(int, r)) for r in rows] == pal.tolist()
    else:
        sw = np.asarray(PILImage.open(path).convert("RGB")).reshape(-1, 3)
        assert set(map(tuple, pal.tolist())) <= set(map(tuple, sw.tolist()))


def test_iters_is_now_iterations(caplog):
    from artfx.pipeline import Pipeline

    with caplog.at_level("WARNING", logger="artfx"):
        pipe = Pipeline.from_spec("quantize:iters=3")
    assert pipe.steps[0].params.iterations == 3 and "iters is now called iterations" in caplog.text
    assert "iters" not in pipe.raw()[0][1]
