"""Conformance kit for stages: every built-in stage runs it in its tests, and so can any plugin author.

    from artfx.testing import check_stage
    def test_my_stage_conforms():
        check_stage(my_stage, params={"n": 3})

It checks the contract (attributes, a strict Params model whose fields are all defaulted and described), and
that ``apply`` on small odd-sized images returns a fresh float32 (H, W, 3) image in [0, 1], leaves its input
alone, prints nothing, and gives the same output for the same seed.
"""

from __future__ import annotations

import contextlib
import io
import re
from typing import Any

import numpy as np
from pydantic import BaseModel

from artfx.stage import Context, Stage

NAME_RE = re.compile(r"^[a-z][a-z0-9_-]*$")


def sample_image(height: int = 23, width: int = 31, seed: int = 0) -> np.ndarray:
    """A small smooth-plus-noise RGB image with edges, float32 in [0, 1], good for exercising stages fast."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    img = np.stack(
        [x / max(width - 1, 1), y / max(height - 1, 1), 0.5 + 0.5 * np.sin((x + y) / 4.0)], axis=-1
    )
    img[: height // 2, : width // 3] = (0.9, 0.2, 0.1)  # a flat block with sharp edges
    img += rng.normal(0, 0.03, img.shape).astype(np.float32)
    return np.clip(img, 0, 1).astype(np.float32)


def check_params_model(model: type[BaseModel]) -> None:
    assert isinstance(model, type) and issubclass(model, BaseModel), "Params must be a pydantic model class"
    assert model.model_config.get("extra") == "forbid", "Params must reject unknown keys (extra='forbid')"
    for name, info in model.model_fields.items():
        assert NAME_RE.match(name), f"field {name!r}: lowercase names only (they become CLI options)"
        assert not info.is_required(), f"field {name!r} has no default"
        assert info.description, f"field {name!r} has no description"
    model()  # the defaults themselves validate


def check_stage(
    stage: Any,
    params: dict[str, Any] | None = None,
    sizes: tuple[tuple[int, int], ...] = ((23, 31), (16, 9)),
    deterministic: bool = True,
) -> None:
    """Assert that ``stage`` honours the stage contract. ``params`` overrides defaults to keep the run fast."""
    assert isinstance(stage, Stage), "a stage needs name, summary, Params and apply"
    assert isinstance(stage.name, str) and NAME_RE.match(stage.name), f"bad stage name {stage.name!r}"
    assert isinstance(stage.summary, str) and 0 < len(stage.summary) <= 100 and "\n" not in stage.summary, (
        "summary must be one line of at most 100 characters"
    )
    check_params_model(stage.Params)
    p = stage.Params(**(params or {}))

    for h, w in sizes:
        image = sample_image(h, w)
        before = image.copy()
        out_buf, err_buf = io.StringIO(), io.StringIO()
        with contextlib.redirect_stdout(out_buf), contextlib.redirect_stderr(err_buf):
            ctx = Context(seed=7, device="cpu")
            out = stage.apply(image, p, ctx)
        assert out_buf.getvalue() == "", f"stage printed to stdout: {out_buf.getvalue()[:200]!r}"
        assert np.array_equal(image, before), "stage modified its input image in place"
        assert isinstance(out, np.ndarray), "apply must return a numpy array"
        assert out.dtype == np.float32, f"apply returned {out.dtype}, not float32"
        assert out.ndim == 3 and out.shape[2] == 3, f"apply returned shape {out.shape}, not (H, W, 3)"
        assert out is not image, "apply must return a new array"
        assert np.isfinite(out).all(), "apply returned NaN or inf"
        assert out.min() >= 0.0 and out.max() <= 1.0, f"values outside [0, 1]: {out.min()}..{out.max()}"
        if deterministic:
            ctx2 = Context(seed=7, device="cpu")
            again = stage.apply(image.copy(), p, ctx2)
            assert np.array_equal(out, again), "same seed gave a different image"
