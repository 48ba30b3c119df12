"""The optional stage hooks are part of the contract: looked up in one place (artfx.stage.hook), and held to their
declared shapes by artfx.testing.check_stage, with the parameters' round trip through JSON."""

from __future__ import annotations

from typing import Annotated

import numpy as np
import pytest
from pydantic import Field, PlainSerializer

from artfx.stage import HOOKS, Params, hook
from artfx.testing import check_stage


class Half:
    """A stage that halves its picture, with an honest out_shape."""

    name = "half"
    summary = "Halve the picture."

    class Params(Params):
        amount: float = Field(0.5, ge=0, le=1, description="unused")

    def apply(self, image, params, ctx):
        return np.ascontiguousarray(image[::2, ::2]).astype(np.float32)

    def out_shape(self, params, shape):
        return ((shape[0] + 1) // 2, (shape[1] + 1) // 2)


def test_a_stage_with_honest_hooks_conforms():
    check_stage(Half())


def test_check_stage_catches_an_out_shape_that_disagrees_with_apply():
    class Liar(Half):
        def out_shape(self, params, shape):
            return shape

    with pytest.raises(AssertionError, match="out_shape says"):
        check_stage(Liar())


def test_check_stage_catches_parameters_that_do_not_survive_json():
    class Rounding(Half):
        class Params(Params):
            amount: Annotated[float, PlainSerializer(lambda v: round(v, 1))] = Field(0.5, description="rounded")

    check_stage(Rounding())  # 0.5 survives
    with pytest.raises(AssertionError, match="changed through JSON"):
        check_stage(Rounding(), params={"amount": 0.26})


def test_check_stage_catches_a_malformed_hook():
    class BadFormats(Half):
        formats = {"svg": "svg"}

    with pytest.raises(AssertionError, match="formats must map suffixes"):
        check_stage(BadFormats())

    class BadMemory(Half):
        def memory(self, params, shape, device):
            return 12

    with pytest.raises(AssertionError, match="memory"):
        check_stage(BadMemory())


def test_hooks_are_looked_up_by_name_only_among_the_declared_ones():
    stage = Half()
    assert hook(stage, "out_shape")(None, (5, 7)) == (3, 4)
    assert hook(stage, "memory") is None and hook(stage, "formats") == {}
    assert set(HOOKS) == {"formats", "about", "reads", "memory", "out_shape"}
    with pytest.raises(KeyError, match="not a stage hook"):
        hook(stage, "apply")
