"""Which outputs of a batch an earlier run already finished, so that running the same command again (after
Ctrl-C, a lost driver, a crashed machine) makes only the missing ones.

Outputs are written atomically, the image after its side outputs: an output image that exists is complete, and
so are its side outputs. Whether it is *this* job's output is told by its recipe: same pipeline, seed and look
options, same input bytes, same artfx. By default only those are skipped (with a message); ``--resume`` skips
every output that is there with its side outputs, whatever made it (another artfx version, a recipe-less file);
``--no-resume`` makes everything again.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from artfx.stage import OUTPUT_DIR, OUTPUT_FILE

log = logging.getLogger("artfx")


def _files_there(plan: Any) -> bool:
    if not Path(plan.dest).is_file():
        return False
    for _, _, path, kind in plan.pipeline.files():
        if (kind == OUTPUT_FILE and not path.is_file()) or (kind == OUTPUT_DIR and not path.is_dir()):
            return False
    return True


def _same_device(recorded: Any, asked: str) -> bool:
    if asked == "auto":
        return True
    return isinstance(recorded, str) and (recorded == asked or recorded.split(":")[0] == asked.split(":")[0])


def is_complete(plan: Any, opts: Any, trust_existing: bool) -> bool:
    """Whether ``plan``'s outputs are all there and (unless ``trust_existing``) were made by this job."""
    from artfx.errors import ArtfxError
    from artfx.io import read_recipe, sha256_file
    from artfx.io.files import shown_name
    from artfx.replay import make_recipe

    if str(plan.src) == "-" or str(plan.dest) == "-" or not _files_there(plan):
        return False
    if trust_existing:
        return True
    try:
        recorded = read_recipe(plan.dest)
    except (ArtfxError, OSError):
        return False
    if recorded is None:
        return False
    try:
        source = {"name": shown_name(Path(plan.src).name), "sha256": sha256_file(plan.src)}
    except OSError:
        return False
    if opts.record_path:
        source["path"] = shown_name(Path(plan.src).resolve())
    expected = json.loads(json.dumps(make_recipe(plan.pipeline, opts, "auto", source), default=str))
    device = recorded.pop("device", None)
    expected.pop("device", None)
    return recorded == expected and _same_device(device, opts.device)


def pending(plans: list, opts: Any) -> list:
    """The plans still to run; says how many were skipped (and how to make them again)."""
    if opts.resume is False or not plans:
        return plans
    todo = [p for p in plans if not is_complete(p, opts, trust_existing=bool(opts.resume))]
    skipped = len(plans) - len(todo)
    if skipped:
        how = "there, --resume" if opts.resume else "made earlier by the same recipe"
        log.warning("%d of %d outputs are already complete (%s): skipped, %s; --no-resume makes them again",
                    skipped, len(plans), how, f"{len(todo)} to make" if todo else "nothing left to do")
    return todo
