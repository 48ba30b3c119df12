"""The Python front door: a twin for every command, and one keyword-only function per built-in stage.

    import artfx
    out = artfx.run("quantize:k=8,slic", "photo.jpg")                # a Result
    artfx.write_image("art.png", out)
    artfx.run("slic", "clip.mp4", output="out.mp4", temporal="on")   # what `artfx pipeline` does
    artfx.sweep("quantize", "photo.jpg", vary={"quantize.k": [4, 8]}, output="sheet.png")
    artfx.replay("art.png", "again.png")

Images in: file paths, numpy arrays ((H, W), (H, W, 3) or (H, W, 4); uint8, uint16 or float in [0, 1]), PIL images,
or what :func:`artfx.read_image` and :func:`run` return. The same seed gives the same picture here, on the
command line and in a pipeline: every path goes through the jobs of :mod:`artfx.jobs` (their one work unit)
and the same run options (:class:`artfx.options.RunOptions`). The command line and the web page call these
functions and nothing below them.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable

import numpy as np

from artfx import jobs
from artfx.errors import UsageError
from artfx.io import Picture
from artfx.jobs import plan as planner
from artfx.jobs.render import Work, load_input, render
from artfx.jobs.replay import run as run_replay
from artfx.jobs.sweep import parse_vary, run_sweep
from artfx.options import RunOptions
from artfx.pipeline import Pipeline, build_params
from artfx.recipe import array_source
from artfx.stage import ProgressCallback, Report

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


def load(image: ImageLike, *, allow_huge: bool = False) -> tuple[Picture, dict[str, Any]]:
    """(the picture, how a recipe names it) of any image-like input: a file is read through artfx's reader (the
    bomb guard, EXIF, ICC, 16-bit), an array or a PIL image is taken as it is."""
    if isinstance(image, (str, Path)):
        return load_input(image, allow_huge)
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
    kind = type(image).__name__
    return Picture(rgb, alpha, 8, kind, f"the {kind}"), array_source(rgb, kind)


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


def _options(settings: dict[str, Any], given: dict[str, Any]) -> RunOptions:
    """The run options: those given, else the TOML ``[run]`` table's, else the defaults."""
    return RunOptions.build(**{**settings, **{k: v for k, v in given.items() if v is not None}})


def _is_paths(source: Any) -> bool:
    return isinstance(source, (str, Path)) or (isinstance(source, (list, tuple)) and bool(source) and
                                               all(isinstance(s, (str, Path)) for s in source))


def run(pipeline: str | Pipeline | Iterable[tuple[str, dict[str, Any]]], source: Any, *,
        output: str | Path | None = None, sets: Iterable[str] = (), progress: Report | ProgressCallback | None = None,
        **run_options: Any) -> Any:
    """Run a pipeline on a picture and return a :class:`Result`; with ``output``, do exactly what ``artfx
    pipeline SPEC SOURCE -o OUTPUT`` does (stills, batches, folders, videos, photo sequences: the same files, the
    same bytes) and return what was written.

    Parameters
    ----------
    pipeline : str, Path, Pipeline or list of (stage, params)
        An inline spec (``"quantize:k=8,slic"``), a TOML file (its ``[run]`` table gives defaults for the
        options below), a :class:`Pipeline`, or ``[("quantize", {"k": 8}), ("slic", {})]``.
    source : path, list of paths, ndarray, PIL image, Picture or Result
        The input picture; with ``output``, input files or folders (``"-"``: standard input), as on the
        command line.
    output : str or Path, optional
        Where to write: a file, a folder (several inputs, or a clip's frames), a video or GIF, ``"-"``. Without
        it, a picture's result is returned instead (a video needs ``output``).
    sets : list of str
        ``"step.param=value"`` overrides, as ``--set`` on the command line.
    progress : artfx.stage.Report or callable, optional
        What to tell as the work goes: a :class:`~artfx.stage.Report`, or ``fn(label, done, total, metrics)``.
    **run_options
        The run options, as on the command line, by name (see :class:`artfx.options.RunOptions`): ``seed``,
        ``device``, ``max_size``, ``depth``, ``temporal``, ``fps``, ``quality``, ``work_dir``, ``executor``,
        ``ray_address``, ``resume``, ``force``, ``allow_huge``, ``record_path``. Those left out come from the
        TOML file's ``[run]`` table, else the defaults (seed 0, device "auto", depth 8).

    Returns
    -------
    Result, or with ``output`` an :class:`artfx.jobs.batch.Written` (each input, output and recipe) or, for a
    video or photo sequence, the recipe written with it.

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
    opts = _options(settings, run_options)
    report = Report.of(progress)
    if output is not None:
        if not _is_paths(source):
            raise UsageError("with output=, give the input as a path (or a list of paths), as on the command line")
        inputs = [str(source)] if isinstance(source, (str, Path)) else [str(s) for s in source]
        return jobs.run(pipe, inputs, str(output), opts, report)
    if _is_paths(source) and not isinstance(source, (str, Path)):
        raise UsageError("several inputs make a batch: give output= (a folder)")
    if isinstance(source, (str, Path)) and str(source) != "-":
        paths, many = planner.expand_inputs([str(source)])
        if many or planner.kind(paths, many, "out.png", opts.allow_huge) != "still":
            raise UsageError(f"{source} is a folder, a video or an animation: give output= (a folder, a video or "
                             "a GIF) to write its results")
    if opts.executor != "local":
        raise UsageError("executor='ray' writes files: give output=")
    on_disk = str(source) if isinstance(source, (str, Path)) else "-"  # an array: no file to protect
    plan = planner.still(pipe, on_disk, None, opts)  # the steps' files checked, side outputs planned
    picture, recorded = load(source, allow_huge=opts.allow_huge)
    planner.make_dirs(plan)
    rendered = render(Work(pipe, opts, protected=plan.protected, keep_best=False, guard_pixels=_is_paths(source)),
                      picture, report, recorded)  # Ctrl-C is the caller's to catch
    return Result(rendered.image, rendered.alpha, rendered.outputs, rendered.recipe)


def sweep(pipeline: str | Pipeline | Iterable[tuple[str, dict[str, Any]]], source: str | Path, *,
          vary: Iterable[str] | dict[str, Iterable[Any]], output: str | Path, cells: str | Path | None = None,
          cell_size: int = 256, sets: Iterable[str] = (), progress: Report | ProgressCallback | None = None,
          **run_options: Any) -> list:
    """What ``artfx sweep``: the pipeline over a grid of parameter values, written as a captioned contact sheet
    (``output``) and, with ``cells``, every cell as a PNG with its recipe. ``vary``: ``["style.style_weight=10,
    100"]`` as on the command line, or ``{"style.style_weight": [10, 100]}``; the first varies along the columns.
    Returns the cells (their values, captions and recipes).

    Examples
    --------
    >>> import artfx
    >>> cells = artfx.sweep("quantize", "photo.png", vary={"quantize.k": [2, 4]}, output="sheet.png")  # doctest: +SKIP
    """
    pipe, settings = as_pipeline(pipeline, sets)
    opts = _options(settings, run_options)
    if isinstance(vary, dict):
        texts = [f"{k}={','.join(str(x) for x in v)}" for k, v in vary.items()]
    else:
        texts = [vary] if isinstance(vary, str) else list(vary)
    raw = [(name, params) for name, params in pipe.raw(only_set=True)]
    return run_sweep(raw, str(source), [parse_vary(t) for t in texts], str(output), opts, (),
                     str(cells) if cells else None, cell_size, Report.of(progress))


def replay(image: str | Path, output: str | Path, *, input: str | Path | None = None, device: str | None = None,
           force: bool = False, allow_huge: bool = False, confirm: Callable[[list[str]], bool] | None = None,
           progress: Report | ProgressCallback | None = None) -> Any:
    """What ``artfx replay``: make an artfx PNG's picture again from its recipe and write ``output``.
    ``confirm(lines)``, when given, is shown what would run (the steps, every file read and written) and returns
    whether to go on; nothing the recipe names is opened before. Returns what was written."""
    return run_replay(image, str(output), input_=str(input) if input else None, device=device, force=force,
                      allow_huge=allow_huge, confirm=confirm, report=Report.of(progress))


# ---- images out ----------------------------------------------------------------------------------------------
def write_image(dest: str | Path, image: ImageLike, *, depth: int = 8, quality: int | None = None,
                force: bool = False, protect: Iterable[str | Path] = ()) -> Path:
    """Write any image-like value atomically, in the format of ``dest``'s suffix. A :class:`Result` keeps its
    alpha and, in a PNG, its recipe (so ``artfx replay`` works on it). ``protect``: files never to replace."""
    from artfx.io import RECIPE_KEY
    from artfx.io import write_image as _write
    from artfx.io.png import recipe_text

    if isinstance(image, (str, Path)):
        raise UsageError("write_image takes a picture, not a path; read it first with artfx.read_image")
    picture, _ = load(image)
    rgb, alpha = picture.rgb, picture.alpha
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
