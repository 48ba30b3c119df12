"""Recipes and replay: what every PNG artfx writes carries, and how ``artfx replay`` makes the picture again.

A PNG from elsewhere is untrusted: its recipe is validated field by field ("bad recipe: ..."), the files it would
read are listed before anything runs, its input must be a regular file (a FIFO or /dev/zero would hang), and the
run goes through the same checks as any other (the bomb guard, the memory estimate, protected inputs).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Callable, Optional

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from artfx import __version__
from artfx.errors import InputError, UsageError
from artfx.io.files import STDIO, name_from_shown, shown_name
from artfx.options import RunOptions
from artfx.pipeline import Pipeline



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
    input: _Input
    interrupted: bool = False


def make_recipe(pipeline: Pipeline, opts: RunOptions, device: str, source: dict[str, Any],
                interrupted: bool = False) -> dict:
    """What reproduces a result: every parameter of every step, the run's look options, the device the run
    used (resolved, never ``auto``) and the input's name and hash (its full path only with --record-path)."""
    recipe = {
        "artfx": __version__,
        "pipeline": [{"stage": name, "params": params} for name, params in pipeline.raw()],
        "spec": pipeline.spec(),
        **{k: getattr(opts, k) for k in RunOptions.look_fields()},
        "device": device,
        "input": source,
    }
    reads = files_read_by(pipeline)
    if reads:  # palette images, style images, masks: a picture depends on them as on its input
        recipe["reads"] = reads
    if interrupted:
        recipe["interrupted"] = True
    return recipe


def files_read_by(pipeline: Pipeline) -> list[dict[str, str]]:
    """Name and hash of every file the steps read (their parameter files), in step order."""
    from artfx.io import sha256_file
    from artfx.runner import inputs_of

    return [{"name": shown_name(p.name), "sha256": sha256_file(p)} for p in inputs_of(pipeline, []) if p.is_file()]


def bad_recipe(what: str) -> UsageError:
    return UsageError(f"bad recipe: {what}")


def load_recipe(path: str | Path) -> dict[str, Any]:
    """The validated recipe of an artfx PNG."""
    from artfx.io import read_recipe

    path = Path(path)
    if not path.exists():
        raise InputError(f"{str(path)!r} does not exist")
    recipe = read_recipe(path)
    if not recipe:
        raise UsageError(f"{str(path)!r} holds no artfx recipe (only PNGs written by artfx do)")
    try:
        _Recipe.model_validate(recipe)
    except ValidationError as exc:
        err = exc.errors()[0]
        where = ".".join(str(p) for p in err.get("loc", ())) or "recipe"
        raise bad_recipe(f"{where}: {err.get('msg', 'invalid')}") from None
    return recipe


def replay_pipeline(recipe: dict[str, Any]) -> Pipeline:
    """The recorded pipeline, with side-output files switched off (replay writes only the image)."""
    try:
        pipeline = Pipeline.from_raw([(s["stage"], s["params"]) for s in recipe["pipeline"]])
    except UsageError as exc:
        raise bad_recipe(str(exc)) from None
    return pipeline.without_side_files()[0]


def find_recorded_input(recipe: dict[str, Any], image: Path) -> Path:
    """The recorded input file: its recorded path if it still exists (older recipes), else a file of the recorded
    name beside the image or in the current folder, the one with the recorded hash first. Only regular files."""
    from artfx.io import sha256_file

    recorded = recipe["input"]
    path = recorded.get("path")
    name = recorded.get("name") or (Path(path).name if isinstance(path, str) else None)
    name, path = name_from_shown(name), name_from_shown(path)  # recipes record names in shown_name's form
    if name == STDIO or path == STDIO:
        raise UsageError("the recipe's input was standard input; give it with --input")
    if not isinstance(name, str) or not name or not re.fullmatch(r"[^/\\\0]{1,255}", name) or name in (".", ".."):
        raise bad_recipe(f"the input name {name!r} is not a file name")
    candidates = ([Path(path)] if isinstance(path, str) else []) + [image.parent / name, Path.cwd() / name]
    found = [c for c in dict.fromkeys(candidates) if c.is_file()]
    if not found:
        raise UsageError(f"the recorded input {name!r} is not beside {image} or in the current folder; "
                         "give it with --input")
    for candidate in found:
        if sha256_file(candidate) == recorded["sha256"]:
            return candidate
    return found[0]


def replay_options(recipe: dict[str, Any], device: str | None = None, force: bool = False,
                   allow_huge: bool = False) -> RunOptions:
    """The recorded run options; the recorded device must exist here unless ``device`` overrides it."""
    from artfx.devices import resolve_device

    looks = {k: recipe.get(k) for k in RunOptions.look_fields() if recipe.get(k) is not None}
    try:
        opts = RunOptions.build(**{**looks, "device": device or looks.get("device", "cpu"), "force": force,
                                   "allow_huge": allow_huge})
    except UsageError as exc:
        raise bad_recipe(str(exc)) from None
    if device is None and opts.device != "cpu":
        try:
            resolve_device(opts.device)
        except UsageError:
            raise UsageError(f"this image was made on {opts.device}, which this machine lacks",
                             hint="replay with --device cpu; the result may differ") from None
    return opts


def describe(recipe: dict[str, Any], pipeline: Pipeline, src: Path, dest: str) -> list[str]:
    """What a replay would do, for the user to check before it runs: the steps, every file read and written."""
    from artfx.runner import inputs_of

    lines = [f"replay runs {len(pipeline.steps)} step(s): {pipeline.spec()}",
             f"  seed {recipe.get('seed')}, device {recipe.get('device')}, made by artfx {recipe.get('artfx')}"]
    lines += [f"  reads {p}" for p in inputs_of(pipeline, [src])]
    recorded = {r.get("name"): r.get("sha256") for r in recipe.get("reads", []) if isinstance(r, dict)}
    now = {r["name"]: r["sha256"] for r in files_read_by(pipeline)}
    lines += [f"  note: {name} differs from the file the recipe was made with" for name, digest in now.items()
              if name in recorded and recorded[name] != digest]
    lines.append(f"  writes {dest}")
    return lines


def replay(image: str | Path, output: str, *, input_: str | None = None, device: str | None = None,
           force: bool = False, allow_huge: bool = False, confirm: Callable[[list[str]], bool] | None = None,
           on_progress: Any = None, on_saved: Any = None) -> dict:
    """Make an artfx PNG's picture again from its recipe. ``confirm(lines)`` is shown what would run and returns
    whether to go on (the command line asks, or takes --yes)."""
    from artfx.runner import run_file

    image = Path(image)
    recipe = load_recipe(image)
    pipeline = replay_pipeline(recipe)
    opts = replay_options(recipe, device=device, force=force, allow_huge=allow_huge)
    src = Path(input_) if input_ else find_recorded_input(recipe, image)
    if confirm is not None and not confirm(describe(recipe, pipeline, src, output)):
        raise UsageError("replay not run")
    if recipe.get("interrupted"):
        import logging

        logging.getLogger("artfx").warning("%s was interrupted; replay runs the whole pipeline", image)
    return run_file(pipeline, src, output, opts, on_progress=on_progress, extra_protected=(image,),
                    on_saved=on_saved, expect_sha256=recipe["input"]["sha256"])
