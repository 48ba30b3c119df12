"""artfx as a library: the front door (artfx.run, the stage functions, read/write), images of every kind in,
the same picture from Python, a pipeline and the command line, side outputs and recipes."""

from __future__ import annotations

import doctest
import inspect

import numpy as np
import pytest
from PIL import Image

import artfx
from artfx.errors import UsageError
from artfx.stage import Context
from conftest import gradient


def u8(img) -> np.ndarray:
    return np.rint(np.asarray(img)[..., :3] * 255).astype(np.uint8) if np.asarray(img).dtype != np.uint8 \
        else np.asarray(img)[..., :3]


def test_three_lines_from_a_notebook(tmp_path, photo, cli):
    out = artfx.run("quantize:k=4,slic:n=30", photo, seed=2)
    artfx.write_image(tmp_path / "art.png", out)
    assert isinstance(out, artfx.Result) and out.image.shape == (24, 32, 3) and out.image.dtype == np.float32
    assert out.recipe["spec"] == "quantize:k=4,slic:n=30" and out.recipe["seed"] == 2
    assert out.recipe["device"] == "cpu"  # resolved: nothing here asked for a GPU
    assert out.recipe["inputs"] == [{"name": "photo.png", "sha256": artfx.io.sha256_file(photo)}]
    # the PNG carries the recipe, so the command line can make the picture again
    r = cli("replay", tmp_path / "art.png", "-o", tmp_path / "again.png", "--yes")
    assert r.returncode == 0, r.err
    assert np.array_equal(np.asarray(Image.open(tmp_path / "again.png").convert("RGB")),
                          np.asarray(Image.open(tmp_path / "art.png").convert("RGB")))
    assert Image.open(tmp_path / "art.png").mode == "P"  # a quantized picture is written as an indexed PNG
    assert np.array_equal(np.asarray(out), out.image)


def test_plugin_authors_import_from_artfx():
    from artfx import Context as C, Params, Pipeline, Stage, read_image, write_image  # noqa: F401

    from pydantic import Field

    class GainParams(Params):
        gain: float = Field(0.5, ge=0, le=1, description="multiplier")

    class Gain:
        name = "t-gain"
        summary = "multiply (a test stage)"
        Params = GainParams

        def apply(self, image, params, ctx):
            return (image * params.gain).astype(np.float32)

    assert isinstance(Gain(), Stage)
    from artfx.testing import check_stage

    check_stage(Gain())
    assert C is Context


@pytest.mark.parametrize("spec, params", [
    ("quantize:k=5", {"k": 5}),
    ("slic:n=12:compactness=5", {"n": 12, "compactness": 5}),
    ("primitive:n=6:candidates=20:restarts=2:failures=10", {"n": 6, "candidates": 20, "restarts": 2,
                                                             "failures": 10}),
])
def test_same_seed_same_picture_alone_from_python_in_a_pipeline_and_on_the_command_line(
        tmp_path, photo, cli, spec, params):
    from artfx import registry

    name = spec.split(":")[0]
    stage = registry.load(name)
    rgb = artfx.read_image(photo).rgb
    alone = stage.apply(rgb.copy(), stage.Params(**params), Context(seed=9))
    function = getattr(artfx, name)(photo, seed=9, **params)
    run = artfx.run(spec, photo, seed=9).image
    piped = artfx.Pipeline.from_spec(spec).run(rgb.copy(), Context(seed=9))
    for other in (function, run, piped):
        np.testing.assert_array_equal(other, alone)
    flags = [x for k, v in params.items() for x in (f"-{k}" if len(k) == 1 else f"--{k}", str(v))]
    assert cli(name, photo, *flags, "--seed", "9", "-o", tmp_path / "cmd.png").returncode == 0
    assert cli("pipeline", spec, photo, "--seed", "9", "-o", tmp_path / "pipe.png").returncode == 0
    for png in ("cmd.png", "pipe.png"):
        np.testing.assert_array_equal(np.asarray(Image.open(tmp_path / png).convert("RGB")), u8(alone))
    if name != "slic":  # slic draws no random numbers; the others do
        assert not np.array_equal(alone, getattr(artfx, name)(photo, seed=10, **params))


def test_side_outputs_come_back(photo):
    out = artfx.run("quantize:k=4", photo)
    assert out.outputs["palette"].shape == (4, 3) and out.outputs["labels"].shape == (24, 32)
    assert np.array_equal(out.outputs["palette"][out.outputs["labels"]], out.image)
    shapes = artfx.run("primitive:n=5:candidates=20:restarts=2", photo).outputs
    assert len(shapes["shapes"]) == 5 and shapes["svg"].startswith("<svg")


def test_images_of_every_kind(tmp_path):
    g8 = gradient(20, 30)
    base = artfx.quantize(g8, k=4, seed=1)
    assert base.shape == (20, 30, 3)
    g16 = g8.astype(np.uint16) * 257
    np.testing.assert_array_equal(artfx.quantize(g16, k=4, seed=1), base)
    np.testing.assert_array_equal(artfx.quantize(g8 / 255.0, k=4, seed=1), base)
    np.testing.assert_array_equal(artfx.quantize(Image.fromarray(g8), k=4, seed=1), base)
    grey = artfx.quantize(g8[..., 0], k=3)
    assert grey.shape == (20, 30, 3) and np.array_equal(grey[..., 0], grey[..., 2])
    rgba = np.dstack([g8, np.full((20, 30), 128, np.uint8)])
    with_alpha = artfx.quantize(Image.fromarray(rgba, "RGBA"), k=4, seed=1)
    assert with_alpha.shape == (20, 30, 4) and np.allclose(with_alpha[..., 3], 128 / 255)
    result = artfx.run("quantize:k=4", rgba, seed=1)
    artfx.write_image(tmp_path / "a.png", result)
    assert Image.open(tmp_path / "a.png").mode == "RGBA"
    for bad, words in [(g8.astype(np.int64), "dtype int64"), (g8 * 2.0, "must be in \\[0, 1\\]"),
                       (np.zeros((4, 4, 2)), "shape"), ({"not": "an image"}, "cannot use a dict")]:
        with pytest.raises(UsageError, match=words):
            artfx.run("quantize", bad)


def test_stage_functions_are_keyword_only_with_the_stage_defaults_and_runnable_examples():
    from artfx import registry

    for name in ("quantize", "slic", "primitive", "style"):
        function = getattr(artfx, name)
        sig = inspect.signature(function)
        params = registry.load(name).Params.model_fields
        assert list(sig.parameters)[0] == "image"
        assert sig.parameters["image"].kind is inspect.Parameter.POSITIONAL_ONLY
        for field, info in params.items():
            field = "style" if (name, field) == ("style", "image") else field  # the picture is `image`
            p = sig.parameters[field]
            assert p.kind is inspect.Parameter.KEYWORD_ONLY
            assert p.default == info.get_default(call_default_factory=True), (name, field)
            assert f"\n{field} : " in function.__doc__
        assert sig.parameters["seed"].default == 0 and "Examples\n--------" in function.__doc__
        runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS)
        test = doctest.DocTestParser().get_doctest(function.__doc__, {}, name, None, 0)
        result = runner.run(test)
        assert result.attempted >= 3 and result.failed == 0, name
    with pytest.raises(TypeError):
        artfx.quantize(gradient(), 8)  # keyword-only
    with pytest.raises(artfx.ParamError, match="did you mean 'k'"):
        artfx.quantize(gradient(), kk=8)


def test_run_docstring_example_runs():
    runner = doctest.DocTestRunner()
    test = doctest.DocTestParser().get_doctest(artfx.run.__doc__, {}, "run", None, 0)
    assert runner.run(test).failed == 0


def test_pipelines_from_toml_and_lists(tmp_path, photo):
    look = tmp_path / "look.toml"
    look.write_text('[run]\nseed = 5\n\n[[step]]\nstage = "quantize"\nk = 3\n')
    a = artfx.run(str(look), photo)
    b = artfx.run([("quantize", {"k": 3})], photo, seed=5)
    c = artfx.run("quantize", photo, seed=5, sets=["quantize.k=3"])
    assert a.recipe["seed"] == 5 and np.array_equal(a.image, b.image) and np.array_equal(a.image, c.image)


def test_quantize_keeps_sixteen_bits_at_depth_16(tmp_path):
    y, x = np.mgrid[0:16, 0:64]
    ramp = (np.dstack([x, y, x + y]) * 511).astype(np.uint16)
    out = artfx.run("quantize:k=16", ramp, depth=16)
    levels = np.unique(out.image) * 65535
    assert np.allclose(levels, np.rint(levels), atol=1e-2)  # on 16-bit steps
    assert not np.allclose(levels / 257, np.rint(levels / 257), atol=1e-2)  # not only on 8-bit steps
    artfx.write_image(tmp_path / "q16.png", out, depth=16)
    import cv2

    back = cv2.imread(str(tmp_path / "q16.png"), cv2.IMREAD_UNCHANGED)
    assert back.dtype == np.uint16 and len(np.unique(back.reshape(-1, 3), axis=0)) == 16
    eight = artfx.run("quantize:k=16", ramp).image * 255
    assert np.allclose(eight, np.rint(eight), atol=1e-3)  # 8-bit output: 8-bit steps, as before


def test_result_shows_in_notebooks(photo):
    png = artfx.run("quantize:k=2", photo)._repr_png_()
    assert png.startswith(b"\x89PNG")


def test_an_argument_given_wins_over_the_toml_even_when_it_is_the_default(tmp_path, photo):
    look = tmp_path / "look.toml"
    look.write_text('[run]\nseed = 3\n\n[[step]]\nstage = "quantize"\nk = 3\n')
    assert artfx.run(str(look), photo).recipe["seed"] == 3
    assert artfx.run(str(look), photo, seed=0).recipe["seed"] == 0
