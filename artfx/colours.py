"""Colours as users write them: ``#rrggbb`` (or ``#rgb``), alone or as ``|``-separated lists."""

from __future__ import annotations

import re

import numpy as np

HEX_RE = re.compile(r"^#?([0-9a-fA-F]{6}|[0-9a-fA-F]{3})$")
EXAMPLE = "#rrggbb, e.g. #ff8800"


def parse_hex(text: str) -> np.ndarray:
    """``#rrggbb`` or ``#rgb`` (the ``#`` optional) -> float32 (3,) in [0, 1] on 8-bit steps; ValueError naming
    the bad value otherwise."""
    m = HEX_RE.match(str(text).strip())
    if not m:
        raise ValueError(f"{text!r} is not a colour (expected {EXAMPLE})")
    h = m.group(1)
    if len(h) == 3:
        h = "".join(c * 2 for c in h)
    return (np.array([int(h[i : i + 2], 16) for i in (0, 2, 4)], np.float64) / 255.0).astype(np.float32)


def parse_hex_list(text: str) -> np.ndarray:
    """``#rrggbb|#rgb|...`` -> float32 (N, 3) in [0, 1]. Raises ValueError naming the bad item."""
    items = [t.strip() for t in str(text).split("|") if t.strip()]
    if not items:
        raise ValueError("no colours given (expected colours like #ff8800|#004488)")
    return np.stack([parse_hex(item) for item in items])


def is_hex_list(text: str) -> bool:
    """Whether ``text`` is meant as colours (starts with ``#`` or lists several things) rather than a file."""
    text = str(text).strip()
    return text.startswith("#") or "|" in text


def to_hex(rgb) -> str:
    """An RGB triple in [0, 1] as ``#rrggbb`` (rounded to the nearest 8-bit step)."""
    r, g, b = (int(round(min(max(float(c), 0.0), 1.0) * 255)) for c in rgb[:3])
    return f"#{r:02x}{g:02x}{b:02x}"
