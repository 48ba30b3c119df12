"""Conformance kit for stages: every built-in stage runs it in its tests, and so can any plugin author.

    from artfx.testing import check_stage
    def test_my_stage_conforms():
        check_stage(my_stage, params={"n": 3})

It checks the contract (attributes, a strict Params model whose fields are all defaulted and described, whose
values survive a round trip through JSON as recipes, TOML files and Ray workers carry them), that ``apply`` on
small odd-sized images returns a fresh float32 (H, W, 3) image in [0, 1], leaves its input alone, prints
nothing, and gives the same output for the same seed, and that every optional hook the stage defines
(:class:`artfx.stage.StageHooks`) answers in its declared shape (``out_shape`` agreeing with ``apply``).
"""

from __future__ import annotations

import contextlib
import io
import json
import re
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import BaseModel

from artfx.stage import Context, Stage, hook

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
    check_params_round_trip(p)
    check_hooks(stage, p, sizes)

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
        shape = hook(stage, "out_shape")
        if shape is not None:
            assert tuple(shape(p, (h, w))) == out.shape[:2], (
                f"out_shape says {tuple(shape(p, (h, w)))} for a {h}x{w} input; apply returned {out.shape[:2]}")
        if deterministic:
            ctx2 = Context(seed=7, device="cpu")
            again = stage.apply(image.copy(), p, ctx2)
            assert np.array_equal(out, again), "same seed gave a different image"


def check_params_round_trip(params: BaseModel) -> None:
    """The parameters, written as JSON (a recipe, a TOML file, a piece for a Ray worker) and read back, are the
    same parameters."""
    model = type(params)
    text = json.dumps(params.model_dump(mode="json"))
    again = model(**json.loads(text))
    assert again == params, f"parameters changed through JSON: {params!r} became {again!r}"
    set_only = params.model_dump(mode="json", exclude_unset=True)  # what a recipe's spec and a piece carry
    assert model(**json.loads(json.dumps(set_only))) == params, "the parameters that were set do not rebuild them"


def check_hooks(stage: Any, params: Any, sizes: tuple[tuple[int, int], ...]) -> None:
    """Every optional hook the stage defines answers in the shape :class:`artfx.stage.StageHooks` declares."""
    from artfx.resources import Need

    formats = hook(stage, "formats")
    assert all(isinstance(k, str) and k.startswith(".") and isinstance(v, str) for k, v in formats.items()), (
        f"formats must map suffixes ('.svg') to side-output keys, not {formats!r}")
    about = hook(stage, "about")
    if about is not None:
        pairs = about()
        assert all(isinstance(pair, tuple) and len(pair) == 2 for pair in pairs), "about() gives (name, value) pairs"
    reads = hook(stage, "reads")
    if reads is not None:
        assert all(isinstance(Path(x), Path) for x in reads(params)), "reads() gives paths"
    memory = hook(stage, "memory")
    out_shape = hook(stage, "out_shape")
    for h, w in sizes:
        if memory is not None:
            need = memory(params, (h, w), "cpu")
            assert isinstance(need, Need) and need.host >= 0 and need.device >= 0, f"memory() gave {need!r}"
        if out_shape is not None:
            got = tuple(out_shape(params, (h, w)))
            assert len(got) == 2 and all(isinstance(v, int) and v > 0 for v in got), f"out_shape() gave {got!r}"
