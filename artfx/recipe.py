"""Recipes: what every result carries so that it can be made again, in one shape for every job, and the one
place that builds, validates and reads them.

A recipe is a JSON object::

    {"artfx": "0.2.0",                          the version that made it
     "pipeline": [{"stage": ..., "params": {...}}, ...],   every parameter of every step
     "spec": "quantize:k=8",                    the steps as the user would write them
     "seed": 0, "device": "cpu", ...            the run's look options (RunOptions.look_fields), the device
                                                being the one the run used, never "auto"
     "inputs": [{"name": ..., "sha256": ...}],  every input: one for a still, the frames' files of a sequence
     "reads": [{"name": ..., "sha256": ...}],   files the steps read (palettes, style images), when any
     "frame_rate": "25",                        sequences: the output's frame rate
     "interrupted": true}                       only when the run was stopped and this is its best so far

Stills carry it in their PNG (:data:`artfx.io.RECIPE_KEY`), videos in their container's comment and a frame
folder in its ``recipe.json``. 0.2's still recipes had ``input`` (one object) instead of ``inputs``: they are
still read (:func:`validate` turns them into this shape).

A recipe from elsewhere is untrusted: :func:`validate` checks it field by field ("bad recipe: ..."), and nothing
here opens a file the recipe names.
"""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path
from typing import Any, Optional

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from artfx.errors import InputError, UsageError
from artfx.io import read_recipe, sha256_file
from artfx.io.files import STDIO, name_from_shown, shown_name
from artfx.options import RunOptions
from artfx.pipeline import Pipeline
from artfx.version import __version__


# ---- building ----------------------------------------------------------------------------------------------------
def source_of(path: str | Path, data: bytes | None = None, record_path: bool = False) -> dict[str, str]:
    """How a recipe names an input file: its name and the hash of its bytes (``data`` when already read, else
    the file is hashed), and its full path only with ``record_path`` (a shared PNG then tells folder names)."""
    if str(path) == STDIO:
        return {"name": STDIO, "sha256": hashlib.sha256(data or b"").hexdigest()}
    path = Path(path)
    digest = hashlib.sha256(data).hexdigest() if data is not None else sha256_file(path)
    source = {"name": shown_name(path.name), "sha256": digest}  # a name that is not UTF-8 in a safe form
    if record_path:
        source["path"] = shown_name(path.resolve())
    return source


def array_source(rgb: Any, kind: str) -> dict[str, str]:
    """How a recipe names a picture given as an array or PIL image: its kind and the hash of its pixels."""
    import numpy as np

    return {"name": f"<{kind}>", "sha256": hashlib.sha256(np.ascontiguousarray(rgb).tobytes()).hexdigest()}


def build(pipeline: Pipeline, opts: RunOptions, device: str, inputs: list[dict[str, str]], *,
          interrupted: bool = False, **extra: Any) -> dict[str, Any]:
    """The recipe of a result: every parameter of every step, the run's look options, the device the run used
    (``device``: resolved, never "auto", except in :func:`identity`'s comparisons), every input, the files the
    steps read (name and hash) and any ``extra`` keys of the job (a sequence's ``frame_rate``)."""
    recipe: dict[str, Any] = {
        "artfx": __version__,
        "pipeline": [{"stage": name, "params": params} for name, params in pipeline.raw()],
        "spec": pipeline.spec(),
        **{k: getattr(opts, k) for k in RunOptions.look_fields()},
        "device": device,
        "inputs": list(inputs),
    }
    reads = reads_of(pipeline)
    if reads:  # palette images, style images, masks: a picture depends on them as on its input
        recipe["reads"] = reads
    recipe.update(extra)
    if interrupted:
        recipe["interrupted"] = True
    return json.loads(json.dumps(recipe, default=str))  # exactly what a reader of the stored text gets back


def reads_of(pipeline: Pipeline) -> list[dict[str, str]]:
    """Name and hash of every file the steps read, in step order."""
    return [{"name": shown_name(p.name), "sha256": sha256_file(p)} for p in pipeline.reads() if p.is_file()]


def identity(recipe: dict[str, Any]) -> dict[str, Any]:
    """What makes two recipes the same job: everything but the device (compared with :func:`same_device`),
    the quality of lossy outputs and whether the run was interrupted."""
    return {k: v for k, v in recipe.items() if k not in ("device", "quality", "interrupted")}


def same_device(recorded: Any, asked: str) -> bool:
    """Whether a result made on ``recorded`` is what a run asked to use ``asked`` would make."""
    if asked == "auto":
        return True
    return isinstance(recorded, str) and (recorded == asked or recorded.split(":")[0] == asked.split(":")[0])


def key(recipe: dict[str, Any], asked_device: str) -> str:
    """A short fingerprint of a job (its :func:`identity` and the device asked for), e.g. for a work folder."""
    body = json.dumps({**identity(recipe), "device asked": asked_device}, sort_keys=True, default=str)
    return hashlib.sha256(body.encode()).hexdigest()


# ---- validating and reading -----------------------------------------------------------------------------------
class _Step(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    stage: str = Field(min_length=1, max_length=100)
    params: dict[str, Any]


class _Input(BaseModel):
    model_config = ConfigDict(extra="ignore")
    name: Optional[str] = None
    path: Optional[str] = None  # recipes before 0.2 recorded the full path
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")


class _Recipe(BaseModel):
    model_config = ConfigDict(extra="allow")
    artfx: str
    pipeline: list[_Step] = Field(min_length=1)
    inputs: list[_Input] = Field(min_length=1, max_length=100_000)
    interrupted: bool = False


def bad_recipe(what: str) -> UsageError:
    return UsageError(f"bad recipe: {what}")


def validate(recipe: Any) -> dict[str, Any]:
    """The recipe, checked field by field and in this module's shape (a 0.2 ``input`` becomes ``inputs``), or a
    UsageError "bad recipe: <field>: <problem>"."""
    if not isinstance(recipe, dict):
        raise bad_recipe("not a JSON object")
    recipe = dict(recipe)
    if "inputs" not in recipe and "input" in recipe:
        recipe["inputs"] = [recipe.pop("input")]
    try:
        _Recipe.model_validate(recipe)
    except ValidationError as exc:
        err = exc.errors()[0]
        where = ".".join(str(p) for p in err.get("loc", ())) or "recipe"
        raise bad_recipe(f"{where}: {err.get('msg', 'invalid')}") from None
    return recipe


def load(path: str | Path) -> dict[str, Any]:
    """The validated recipe of a PNG written by artfx. Reads that PNG's text chunks only (no pixels)."""
    path = Path(path)
    if not path.exists():
        raise InputError(f"{str(path)!r} does not exist")
    recipe = read_recipe(path)
    if not recipe:
        raise UsageError(f"{str(path)!r} holds no artfx recipe (only PNGs written by artfx do)")
    return validate(recipe)


def pipeline_of(recipe: dict[str, Any]) -> Pipeline:
    """The recorded pipeline, every parameter checked as a spec's would be."""
    try:
        return Pipeline.from_raw([(s["stage"], s["params"]) for s in recipe["pipeline"]])
    except UsageError as exc:
        raise bad_recipe(str(exc)) from None


def options_of(recipe: dict[str, Any], **given: Any) -> RunOptions:
    """The recorded look options (seed, device, size...), with the options ``given`` on top (force, a device)."""
    looks = {k: recipe.get(k) for k in RunOptions.look_fields() if recipe.get(k) is not None}
    try:
        return RunOptions.build(**{**looks, **{k: v for k, v in given.items() if v is not None}})
    except UsageError as exc:
        raise bad_recipe(str(exc)) from None


def input_name(entry: dict[str, Any]) -> tuple[str, Any]:
    """(the file name a recipe's input entry records, checked to be a plain name (no folder, no NUL), its
    recorded path or None), as the file system names them (recipes record :func:`shown_name` forms)."""
    path = entry.get("path")
    name = entry.get("name") or (Path(path).name if isinstance(path, str) else None)
    name, path = name_from_shown(name), name_from_shown(path)
    if name == STDIO or path == STDIO:
        raise UsageError("the recipe's input was standard input; give it with --input")
    if not isinstance(name, str) or not name or not re.fullmatch(r"[^/\\\0]{1,255}", name) or name in (".", ".."):
        raise bad_recipe(f"the input name {name!r} is not a file name")
    return name, path
