"""artfx: turn photographs into artwork with stages chained into pipelines.

    import artfx
    out = artfx.run("quantize:k=8,slic", "photo.jpg")      # a Result: image, alpha, side outputs, recipe
    artfx.write_image("art.png", out)                       # the PNG carries the recipe (artfx replay)

    poster = artfx.quantize(photo_array, k=6, seed=1)       # one keyword-only function per built-in stage

Plugin authors: ``from artfx import Params, Context`` (a stage is any object with ``name``, ``summary``,
``Params`` and ``apply(image, params, ctx)``; see :class:`artfx.stage.Stage`).

Names are imported on first use, so ``import artfx`` stays cheap (no torch, no OpenCV).
"""

from __future__ import annotations

import importlib
from typing import Any

from artfx.version import __version__

_EXPORTS = {
    "run": "artfx.api", "sweep": "artfx.api", "replay": "artfx.api", "Result": "artfx.api",
    "write_image": "artfx.api", "Report": "artfx.stage",
    "read_image": "artfx.io", "Picture": "artfx.io",
    "Pipeline": "artfx.pipeline", "RunOptions": "artfx.options",
    "Params": "artfx.stage", "Stage": "artfx.stage", "Context": "artfx.stage",
    "input_file": "artfx.stage", "output_file": "artfx.stage", "output_dir": "artfx.stage",
    "ArtfxError": "artfx.errors", "UsageError": "artfx.errors", "ParamError": "artfx.errors",
    "StageError": "artfx.errors",
}
_STAGE_FUNCTIONS = ("quantize", "slic", "primitive", "style")

__all__ = ["__version__", *_EXPORTS, *_STAGE_FUNCTIONS]


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        value = getattr(importlib.import_module(_EXPORTS[name]), name)
    elif name in _STAGE_FUNCTIONS:
        from artfx.examples import stage_function_for

        value = stage_function_for(name)
    else:
        raise AttributeError(f"module 'artfx' has no attribute {name!r}")
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
