"""Replay: make an artfx PNG's picture again from the recipe it carries, as a still job.

A PNG from elsewhere is untrusted: its recipe is validated field by field ("bad recipe: ..."); what would run is
shown first, the steps and every file it would read and write, named from the recipe alone, and nothing the
recipe names is opened (not hashed, not decoded) until the user said yes; its input must be a regular file (a
FIFO or /dev/zero would hang); and the run goes through the same checks as any other (the bomb guard, the memory
estimate, protected inputs).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Callable

from artfx import recipe as recipes
from artfx.devices import resolve_device
from artfx.errors import UsageError
from artfx.io import sha256_file
from artfx.jobs import still
from artfx.jobs.batch import Written
from artfx.options import RunOptions
from artfx.pipeline import Pipeline
from artfx.stage import Report

log = logging.getLogger("artfx")


def options(recipe: dict[str, Any], device: str | None = None, force: bool = False, allow_huge: bool = False
            ) -> RunOptions:
    """The recorded run options; the recorded device must exist here unless ``device`` overrides it."""
    opts = recipes.options_of(recipe, device=device or recipe.get("device") or "cpu", force=force,
                              allow_huge=allow_huge)
    if device is None and opts.device != "cpu":
        try:
            resolve_device(opts.device)
        except UsageError:
            raise UsageError(f"this image was made on {opts.device}, which this machine lacks",
                             hint="replay with --device cpu; the result may differ") from None
    return opts


def candidates(recipe: dict[str, Any], image: Path) -> list[Path]:
    """Where the recorded input may be: its recorded path if it still exists (older recipes), else a file of
    the recorded name beside the image or in the current folder. Regular files only; none is opened."""
    if len(recipe["inputs"]) != 1:
        raise recipes.bad_recipe(f"replay makes stills, and this recipe has {len(recipe['inputs'])} inputs")
    name, path = recipes.input_name(recipe["inputs"][0])
    places = ([Path(path)] if isinstance(path, str) else []) + [image.parent / name, Path.cwd() / name]
    found = list({c.resolve(): c for c in reversed(places) if c.is_file()}.values())[::-1]  # each file once
    if not found:
        raise UsageError(f"the recorded input {name!r} is not beside {image} or in the current folder; "
                         "give it with --input")
    return found


def describe(recipe: dict[str, Any], pipeline: Pipeline, inputs: list[Path], dest: str) -> list[str]:
    """What a replay would do, for the user to check before it runs: the steps, every file read and written."""
    lines = [f"replay runs {len(pipeline.steps)} step(s): {pipeline.spec()}",
             f"  seed {recipe.get('seed')}, device {recipe.get('device')}, made by artfx {recipe.get('artfx')}"]
    lines.append(f"  reads {inputs[0]}" if len(inputs) == 1 else
                 f"  reads one of {', '.join(str(p) for p in inputs)} (the one with the recorded hash)")
    lines += [f"  reads {p}" for p in pipeline.reads()]
    lines.append(f"  writes {dest}")
    return lines


def run(image: str | Path, output: str, *, input_: str | None = None, device: str | None = None,
        force: bool = False, allow_huge: bool = False, confirm: Callable[[list[str]], bool] | None = None,
        report: Report | None = None) -> Written:
    """Make an artfx PNG's picture again. ``confirm(lines)`` is shown what would run and returns whether to go
    on (the command line asks, or takes --yes); only then is any file the recipe names opened."""
    image = Path(image)
    recipe = recipes.load(image)
    pipeline = recipes.pipeline_of(recipe).without_side_files()[0]  # replay writes only the image
    opts = options(recipe, device=device, force=force, allow_huge=allow_huge)
    found = [Path(input_)] if input_ else candidates(recipe, image)
    if confirm is not None and not confirm(describe(recipe, pipeline, found, output)):
        raise UsageError("replay not run")
    recorded = recipe["inputs"][0]["sha256"]
    src = next((c for c in found if c.is_file() and sha256_file(c) == recorded), found[0])
    if src.is_file() and sha256_file(src) != recorded:
        log.warning("%s differs from the recorded input; the result will differ", src)
    made_with = {r.get("name"): r.get("sha256") for r in recipe.get("reads", []) if isinstance(r, dict)}
    for entry in recipes.reads_of(pipeline):
        if entry["name"] in made_with and made_with[entry["name"]] != entry["sha256"]:
            log.warning("%s differs from the file the recipe was made with; the result will differ", entry["name"])
    if recipe.get("interrupted"):
        log.warning("%s was interrupted; replay runs the whole pipeline", image)
    return still.run(pipeline, src, output, opts, report if report is not None else Report(),
                     extra_protected=(image,))
