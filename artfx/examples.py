"""The built-in stages' Python functions (``artfx.quantize``...) with their runnable numpydoc examples; the
signatures and parameter documentation are generated from each stage's Params (:func:`artfx.api.stage_function`).
The examples run in the test suite."""

from __future__ import annotations

from typing import Any, Callable

EXAMPLES = {
    "quantize": """
        >>> import numpy as np
        >>> import artfx
        >>> photo = np.random.default_rng(0).random((48, 64, 3))
        >>> poster = artfx.quantize(photo, k=4, seed=1)
        >>> poster.shape, poster.dtype
        ((48, 64, 3), dtype('float32'))
        >>> len(np.unique(poster.reshape(-1, 3), axis=0))
        4
        >>> fixed = artfx.quantize(photo, palette="#000000|#ffffff")
        >>> np.unique(fixed).tolist()
        [0.0, 1.0]
    """,
    "slic": """
        >>> import numpy as np
        >>> import artfx
        >>> y, x = np.mgrid[0:60, 0:80] / 80.0
        >>> photo = np.dstack([x, y, 1 - x])
        >>> mosaic = artfx.slic(photo, n=12, compactness=20)
        >>> mosaic.shape
        (60, 80, 3)
        >>> len(np.unique(mosaic.reshape(-1, 3), axis=0))   # one flat colour per superpixel
        12
    """,
    "primitive": """
        >>> import numpy as np
        >>> import artfx
        >>> y, x = np.mgrid[0:40, 0:60] / 60.0
        >>> photo = np.dstack([x, y, 1 - x])
        >>> shapes = artfx.primitive(photo, n=10, shape="triangle", seed=2)
        >>> shapes.shape
        (40, 60, 3)
        >>> bool(np.abs(shapes - photo).mean() < np.abs(photo.mean(axis=(0, 1)) - photo).mean())
        True
    """,
    "style": """
        >>> import numpy as np
        >>> import artfx
        >>> y, x = np.mgrid[0:32, 0:48] / 48.0
        >>> photo = np.dstack([x, y, 0.5 + 0 * x])
        >>> art = artfx.style(photo, style="great-wave", size=48, iterations=2, device="cpu")
        >>> art.shape, art.dtype
        ((32, 48, 3), dtype('float32'))
    """,
}


RENAMES = {"style": {"image": "style"}}  # in Python the picture is the first argument


def stage_function_for(name: str) -> Callable[..., Any]:
    from artfx.api import stage_function

    return stage_function(name, EXAMPLES[name], RENAMES.get(name))
