"""The Python front door: ``artfx.run`` and one keyword-only function per built-in stage.

    import artfx
    out = artfx.run("quantize:k=8,slic", "photo.jpg")
    artfx.write_image("art.png", out)

Images in: file paths, numpy arrays ((H, W), (H, W, 3) or (H, W, 4); uint8, uint16 or float in [0, 1]), PIL images,
or what :func:`artfx.read_image` and :func:`run` return. The same seed gives the same picture here, on the
command line and in a pipeline: every path goes through :class:`artfx.pipeline.Pipeline` and the same run
options (:class:`artfx.options.RunOptions`).
"""

from __future__ import annotations

import hashlib
import inspect
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable

import numpy as np

from artfx.errors import UsageError
from artfx.options import RunOptions
from artfx.pipeline import Pipeline, build_params
from artfx.stage import Context, ProgressCallback, Run

ImageLike = Any  # str | Path | np.ndarray | PIL.Image.Image | Picture | Result


@dataclass
class Result:
    """What :func:`run` returns: the picture, its alpha, every side output and the recipe.

    ``image`` is float32 (H, W, 3) in [0, 1]; ``alpha`` float32 (H, W) or None; ``outputs`` the side outputs
    the steps emitted (``palette``, ``labels``, ``shapes``, ``svg``...); ``recipe`` what :func:`write_image`
    stores in a PNG so that ``artfx replay`` can make the picture again. ``np.asarray(result)`` is the image,
    and notebooks show it."""

    image: np.ndarray
    alpha: np.ndarray | None = None
    outputs: dict[str, Any] = field(default_factory=dict)
    recipe: dict[str, Any] = field(default_factory=dict)

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        return self.image if dtype is None else self.image.astype(dtype)

    @property
    def rgba(self) -> np.ndarray:
        """The image with its alpha as a fourth channel (alpha 1 where there is none)."""
        alpha = np.ones(self.image.shape[:2], np.float32) if self.alpha is None else self.alpha
        return np.concatenate([self.image, alpha[..., None]], axis=2)

    def _repr_png_(self) -> bytes:
        from artfx.io import encode_image

        return encode_image(self.image, alpha=self.alpha)


# ---- images in -----------------------------------------------------------------------------------------------
def _from_array(arr: np.ndarray, what: str = "image") -> tuple[np.ndarray, np.ndarray | None]:
    arr = np.asarray(arr)
    if arr.dtype == np.uint8:
        arr = arr.astype(np.float32) / np.float32(255)
    elif arr.dtype == np.uint16:
        arr = arr.astype(np.float32) / np.float32(65535)
    elif arr.dtype == np.bool_:
        arr = arr.astype(np.float32)
    elif np.issubdtype(arr.dtype, np.floating):
        arr = arr.astype(np.float32)
        if not np.isfinite(arr).all():
            raise UsageError(f"the {what} holds NaN or infinite values")
        if arr.size and (arr.min() < 0 or arr.max() > 1):
            raise UsageError(f"a float {what} must be in [0, 1], not {arr.min():.4g}..{arr.max():.4g}",
                             hint="divide 0..255 values by 255, or pass uint8")
    else:
        raise UsageError(f"the {what} has dtype {arr.dtype}; give uint8, uint16 or float in [0, 1]")
    if arr.ndim == 2:
        arr = arr[:, :, None]
    if arr.ndim != 3 or arr.shape[2] not in (1, 3, 4) or 0 in arr.shape:
        raise UsageError(f"the {what} has shape {arr.shape}; give (H, W), (H, W, 3) or (H, W, 4)")
    if arr.shape[2] == 1:
        return np.ascontiguousarray(np.repeat(arr, 3, axis=2)), None
    alpha = np.ascontiguousarray(arr[:, :, 3]) if arr.shape[2] == 4 else None
    return np.ascontiguousarray(arr[:, :, :3]), alpha


def _from_pil(img: Any) -> tuple[np.ndarray, np.ndarray | None]:
    from PIL import ImageOps

    from artfx.io import colour

    img = ImageOps.exif_transpose(img)
    if img.mode in ("I;16", "I;16B", "I;16L", "I"):
        return _from_array(np.clip(np.asarray(img, dtype=np.float32) / 65535, 0, 1))
    if img.mode == "F":
        return _from_array(np.clip(np.nan_to_num(np.asarray(img, dtype=np.float32)), 0, 1))
    has_alpha = img.mode in ("RGBA", "LA", "PA", "RGBa", "La") or "transparency" in img.info
    alpha = np.asarray(img.convert("RGBA").getchannel("A"), np.float32) / 255 if has_alpha else None
    rgb_img = img.convert("RGB") if img.mode != "L" else img
    icc = img.info.get("icc_profile")
    if icc:
        converted = colour.icc_to_srgb(rgb_img, icc, "the PIL image")
        rgb_img = converted if converted is not None else rgb_img
    rgb, _ = _from_array(np.asarray(rgb_img.convert("RGB")))
    return rgb, alpha


def load(image: ImageLike, *, allow_huge: bool = False) -> tuple[np.ndarray, np.ndarray | None, dict[str, Any]]:
    """(rgb float32 (H, W, 3), alpha or None, source {"name", "sha256"}) of any image-like input."""
    from artfx.io import Picture

    if isinstance(image, (str, Path)):
        from artfx.runner import read_input

        picture, source = read_input(image, allow_huge)
        return picture.rgb, picture.alpha, source
    if isinstance(image, Result):
        rgb, alpha = image.image, image.alpha
    elif isinstance(image, Picture):
        rgb, alpha = image.rgb, image.alpha
    elif type(image).__module__.startswith("PIL."):
        rgb, alpha = _from_pil(image)
    elif isinstance(image, np.ndarray) or hasattr(image, "__array__"):
        rgb, alpha = _from_array(np.asarray(image))
    else:
        raise UsageError(f"cannot use a {type(image).__name__} as an image; give a path, an array or a PIL image")
    digest = hashlib.sha256(np.ascontiguousarray(rgb).tobytes()).hexdigest()
    return rgb, alpha, {"name": f"<{type(image).__name__}>", "sha256": digest}


# ---- running -------------------------------------------------------------------------------------------------
def as_pipeline(spec: str | Pipeline | Iterable[tuple[str, dict[str, Any]]], sets: Iterable[str] = ()
                ) -> tuple[Pipeline, dict[str, Any]]:
    """(pipeline, run settings from a TOML file) from a spec string, a ``.toml`` path, a Pipeline or
    ``[(stage, {param: value}), ...]``."""
    if isinstance(spec, Pipeline):
        return (Pipeline.from_raw(spec.raw(only_set=True), sets) if sets else spec), {}
    if isinstance(spec, Path) or (isinstance(spec, str) and spec.strip().endswith(".toml")):
        from artfx.config import load_config

        settings, raw = load_config(spec)
        return Pipeline.from_raw(raw, sets), settings
    if isinstance(spec, str):
        return Pipeline.from_spec(spec, sets), {}
    return Pipeline.from_raw(list(spec), sets), {}


def run(pipeline: str | Pipeline | Iterable[tuple[str, dict[str, Any]]], image: ImageLike, *,
        seed: int | None = None, device: str | None = None, max_size: int | None = None, depth: int | None = None,
        allow_huge: bool = False, force: bool = False, sets: Iterable[str] = (),
        on_progress: ProgressCallback | None = None) -> Result:
    """Run a pipeline on one image and return a :class:`Result` (image, alpha, side outputs, recipe).

    Parameters
    ----------
    pipeline : str, Path, Pipeline or list of (stage, params)
        An inline spec (``"quantize:k=8,slic"``), a TOML file (its ``[run]`` table gives defaults for the
        options below), a :class:`Pipeline`, or ``[("quantize", {"k": 8}), ("slic", {})]``.
    image : path, ndarray, PIL image, Picture or Result
        The input picture.
    seed, device, max_size, depth, allow_huge, force
        The run options, as on the command line (see :class:`artfx.options.RunOptions`); those left out come
        from the TOML file's ``[run]`` table, else the defaults (seed 0, device "auto", depth 8).
    sets : list of str
        ``"step.param=value"`` overrides, as ``--set`` on the command line.
    on_progress : callable, optional
        ``on_progress(label, done, total, metrics)`` as the steps advance.

    Examples
    --------
    >>> import numpy as np
    >>> import artfx
    >>> photo = np.random.default_rng(0).random((30, 40, 3))
    >>> out = artfx.run("quantize:k=4,slic:n=20", photo, seed=1)
    >>> out.image.shape, out.image.dtype
    ((30, 40, 3), dtype('float32'))
    >>> sorted(out.outputs)
    ['labels', 'palette']
    >>> out.recipe["spec"]
    'quantize:k=4,slic:n=20'
    """
    pipe, settings = as_pipeline(pipeline, sets)
    asked = {"seed": seed, "device": device, "max_size": max_size, "depth": depth}
    values = {**settings, **{k: v for k, v in asked.items() if v is not None}}
    opts = RunOptions.build(**values, allow_huge=allow_huge, force=force)
    return run_pipeline(pipe, image, opts, on_progress)


def run_pipeline(pipeline: Pipeline, image: ImageLike, opts: RunOptions,
                 on_progress: ProgressCallback | None = None, state: Run | None = None) -> Result:
    """:func:`run` with a built pipeline and options: side-output files checked, memory estimated and
    directories made before any work, the input protected from them. ``state``: a :class:`Run` of the caller's
    (for its ``on_image`` live view, ``cancelled``, ``on_saved``); its options are set from ``opts``."""
    from artfx.io import resize_to
    from artfx.replay import make_recipe
    from artfx.runner import STDIO, Plan, _check_reads, inputs_of, plan_outputs, prepare

    sources = [image] if isinstance(image, (str, Path)) else []
    _check_reads(pipeline)
    plan = Plan(image if sources else STDIO, STDIO, pipeline, inputs_of(pipeline, sources))
    plan_outputs(plan, opts.depth, opts.force)
    rgb, alpha, source = load(image, allow_huge=opts.allow_huge)
    rgb, alpha = prepare(plan, rgb, alpha, opts)
    state = (state if state is not None else Run()).use_options(opts)
    state.protected = plan.protected
    if on_progress is not None:
        state.on_progress = on_progress
    out = pipeline.run(rgb, Context(run=state))
    if alpha is not None and alpha.shape != out.shape[:2]:
        alpha = resize_to(alpha, out.shape[0], out.shape[1])
    recipe = make_recipe(pipeline, opts, state.resolved_device or "cpu", source)
    return Result(out, alpha, dict(state.outputs), recipe)


# ---- images out ----------------------------------------------------------------------------------------------
def write_image(dest: str | Path, image: ImageLike, *, depth: int = 8, quality: int | None = None, force: bool = False,
                protect: Iterable[str | Path] = ()) -> Path:
    """Write any image-like value atomically, in the format of ``dest``'s suffix. A :class:`Result` keeps its
    alpha and, in a PNG, its recipe (so ``artfx replay`` works on it). ``protect``: files never to replace."""
    from artfx.io import RECIPE_KEY
    from artfx.io import write_image as _write
    from artfx.io.png import recipe_text

    if isinstance(image, (str, Path)):
        raise UsageError("write_image takes a picture, not a path; read it first with artfx.read_image")
    rgb, alpha, _ = load(image)
    metadata = {RECIPE_KEY: recipe_text(image.recipe)} if isinstance(image, Result) and image.recipe else None
    _write(dest, rgb, alpha=alpha, depth=depth, metadata=metadata, quality=quality,
           protected=tuple(Path(p) for p in protect), force=force)
    return Path(dest)


# ---- one function per stage ----------------------------------------------------------------------------------
IMAGE_DOC = """image : path, ndarray, PIL image, Picture or Result
    The input picture: an (H, W), (H, W, 3) or (H, W, 4) array (uint8, uint16, or float in [0, 1]), a PIL
    image, or an image file."""
RUN_DOC = """seed : int, default 0
    Seed for every random choice: the same seed gives the same picture here, in ``artfx.run`` and on the
    command line.
device : str, default "auto"
    auto, cpu, cuda or mps."""
RETURNS_DOC = """Returns
-------
ndarray
    float32 (H, W, 3) in [0, 1], or (H, W, 4) with the input's alpha when it has one. ``artfx.run`` gives the
    side outputs too."""


def stage_function(name: str, examples: str, renames: dict[str, str] | None = None) -> Callable[..., np.ndarray]:
    """A keyword-only function for the stage ``name`` (scikit-image style), signature and numpydoc docstring
    generated from its Params, so that they always agree with the command line. ``renames`` gives a parameter
    another keyword in Python (style's ``image`` is ``style=``, since the picture is the first argument)."""
    from artfx import registry
    from artfx.describe import help_text, type_text

    stage = registry.load(name)
    renames = renames or {}
    back = {py: field for field, py in renames.items()}
    fields = {renames.get(f, f): info for f, info in stage.Params.model_fields.items()}

    def function(image: ImageLike, /, *, seed: int = 0, device: str = "auto", **params: Any) -> np.ndarray:
        params = {back.get(k, k): v for k, v in params.items()}
        build_params(stage, params)  # unknown or bad keywords fail with the CLI's message, before reading
        result = run([(name, params)], image, seed=seed, device=device)
        return result.rgba if result.alpha is not None else result.image

    kw = inspect.Parameter.KEYWORD_ONLY
    parameters = [inspect.Parameter("image", inspect.Parameter.POSITIONAL_ONLY)]
    parameters += [inspect.Parameter(f, kw, default=info.get_default(call_default_factory=True),
                                     annotation=info.annotation) for f, info in fields.items()]
    parameters += [inspect.Parameter("seed", kw, default=0, annotation=int),
                   inspect.Parameter("device", kw, default="auto", annotation=str)]
    function.__signature__ = inspect.Signature(parameters, return_annotation=np.ndarray)  # type: ignore
    docs = [f"{f} : {type_text(info)}\n    {help_text(info)}" for f, info in fields.items()]
    function.__doc__ = "\n".join([
        f"{stage.summary[0].upper()}{stage.summary[1:].rstrip('.')}.", "",
        "Parameters", "----------", IMAGE_DOC, *docs, RUN_DOC, "", RETURNS_DOC, "",
        "See Also", "--------", "artfx.run : any pipeline, with side outputs and the recipe.", "",
        "Examples", "--------", inspect.cleandoc(examples),
    ])
    function.__name__ = function.__qualname__ = name
    function.__module__ = "artfx"
    return function
