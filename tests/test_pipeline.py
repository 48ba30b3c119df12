"""Pipelines in-process: resolution, validation before work, overrides, side outputs, config files."""

from __future__ import annotations

import numpy as np
import pytest
from pydantic import Field

from artfx import registry
from artfx.config import dump_config, parse_config
from artfx.errors import ParamError, SpecError, StageError, UnknownStageError
from artfx.pipeline import Pipeline
from artfx.stage import Context, Params
from artfx.testing import check_stage, sample_image


class EmitParams(Params):
    levels: int = Field(4, ge=2, le=16, description="grey levels")


class Emitter:
    """Posterises the red channel and leaves the level of every pixel as 'labels'."""

    name = "t-emit"
    summary = "test stage that emits labels"
    Params = EmitParams

    def apply(self, image, params, ctx):
        labels = np.minimum((image[..., 0] * params.levels).astype(np.int32), params.levels - 1)
        ctx.emit("labels", labels)
        return image.copy()


class ReadParams(Params):
    pass


class Reader:
    """Paints each labelled region with a random grey from the context's generator."""

    name = "t-read"
    summary = "test stage that reads labels"
    Params = ReadParams

    def apply(self, image, params, ctx):
        labels = ctx.get("labels")
        if labels is None:
            raise ValueError("no labels from an earlier step")
        greys = ctx.rng.random(labels.max() + 1).astype(np.float32)
        return np.repeat(greys[labels][..., None], 3, axis=2)


class Bad:
    name = "t-bad"
    summary = "returns garbage"
    Params = ReadParams

    def apply(self, image, params, ctx):
        return image[..., 0]


@pytest.fixture(autouse=True)
def test_stages():
    for s in (Emitter(), Reader(), Bad()):
        registry.register(s)
    yield
    registry.refresh(forget_registered=True)


def test_test_stages_conform():
    check_stage(Emitter())


def test_side_outputs_reach_later_steps():
    img = sample_image(20, 30)
    out = Pipeline.from_spec("t-emit:levels=3,t-read").run(img, Context(seed=1))
    labels = np.minimum((img[..., 0] * 3).astype(np.int32), 2)
    for lab in range(3):
        region = out[labels == lab]
        if region.size:
            assert np.ptp(region) == 0  # constant per label
    assert len(np.unique(out[..., 0])) == len(np.unique(labels))


def test_a_step_without_its_side_input_fails_clearly():
    with pytest.raises(StageError, match="t-read.*no labels"):
        Pipeline.from_spec("t-read").run(sample_image(), Context())


def test_same_seed_same_output_and_seed_matters():
    p = Pipeline.from_spec("t-emit:levels=8,t-read")
    a = p.run(sample_image(), Context(seed=5))
    b = p.run(sample_image(), Context(seed=5))
    c = p.run(sample_image(), Context(seed=6))
    assert np.array_equal(a, b) and not np.array_equal(a, c)


def test_bare_value_sets_first_parameter_and_overrides_apply():
    p = Pipeline.from_spec("t-emit:5")
    assert p.steps[0].params.levels == 5
    p = Pipeline.from_spec("t-emit:5", sets=["t-emit.levels=7"])
    assert p.steps[0].params.levels == 7
    p = Pipeline.from_spec("t-emit,t-emit", sets=["2.levels=9", "t-emit#1.levels=3"])
    assert [s.params.levels for s in p.steps] == [3, 9]


@pytest.mark.parametrize("sets, words", [
    (["levels=3"], "step.param=value"),
    (["t-emit.levels=3"], "appears 2 times"),
    (["3.levels=3"], "no step 3"),
    (["slic.n=3"], "no step is stage"),
])
def test_bad_overrides(sets, words):
    with pytest.raises(SpecError, match=words):
        Pipeline.from_spec("t-emit,t-emit", sets=sets)


def test_unknown_stage_suggests_the_closest():
    with pytest.raises(UnknownStageError) as err:
        Pipeline.from_spec("t-emitt")
    assert "did you mean 't-emit'" in str(err.value)
    assert err.value.exit_code == 2


def test_parameter_errors_give_the_range_and_suggestions():
    with pytest.raises(ParamError) as err:
        Pipeline.from_spec("t-emit:levels=1")
    assert "levels='1'" in str(err.value) and "2..16" in str(err.value)
    with pytest.raises(ParamError, match="did you mean 'levels'"):
        Pipeline.from_spec("t-emit:level=3")
    with pytest.raises(ParamError, match="takes no parameters"):
        Pipeline.from_spec("t-read:3")


def test_a_stage_returning_a_non_image_is_a_stage_error():
    with pytest.raises(StageError, match="not an \\(H, W, 3\\) image"):
        Pipeline.from_spec("t-bad").run(sample_image(), Context())


def test_spec_of_a_pipeline_round_trips():
    p = Pipeline.from_spec("t-emit:levels=3,t-read")
    assert p.spec() == "t-emit:levels=3,t-read"
    assert Pipeline.from_spec(p.spec()).raw() == p.raw()


def test_config_round_trip_and_errors():
    text = dump_config({"seed": 4, "max_size": 64}, Pipeline.from_spec("t-emit:levels=3,t-read").raw())
    run, steps = parse_config(text)
    assert run == {"seed": 4, "max_size": 64}
    assert steps == [("t-emit", {"levels": 3}), ("t-read", {})]
    assert Pipeline.from_raw(steps).raw() == Pipeline.from_spec("t-emit:levels=3,t-read").raw()
    with pytest.raises(SpecError, match="invalid TOML"):
        parse_config("[[step]\n")
    with pytest.raises(SpecError, match="unknown \\[run\\] key"):
        parse_config('[run]\nspeed = 1\n[[step]]\nstage = "t-read"\n')
    with pytest.raises(SpecError, match="no \\[\\[step\\]\\]"):
        parse_config("[run]\nseed = 1\n")
    with pytest.raises(SpecError, match="has no stage"):
        parse_config("[[step]]\nk = 1\n")
