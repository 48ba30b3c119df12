"""JSON from places artfx does not control (a PNG's stored recipe, a request to the web page), read with limits on
its size and its nesting. Python's json module recurses once per level of nesting: a document nested 100,000 deep
raises RecursionError, and one nested a few hundred deep makes every later walk over it (validation, json.dumps)
fail the same way. Nesting is counted before parsing, over the text with its strings taken out."""

from __future__ import annotations

import json
import re
from typing import Any

import numpy as np

MAX_DEPTH = 64
"""Deepest nesting of arrays and objects accepted (a recipe is about 5 deep, a sweep's about 8)."""
MAX_BYTES = 16 << 20
"""Longest JSON text accepted by default, in bytes."""

_STRING_RE = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"', re.S)
_OPEN, _CLOSE = np.frombuffer(b"[{", np.uint8), np.frombuffer(b"]}", np.uint8)


class JSONLimitError(ValueError):
    """JSON longer or more deeply nested than allowed."""


def nesting(data: bytes) -> int:
    """How deep the arrays and objects of a JSON text go (brackets inside strings do not count)."""
    codes = np.frombuffer(_STRING_RE.sub(b'""', data), np.uint8)
    steps = np.isin(codes, _OPEN).astype(np.int32) - np.isin(codes, _CLOSE).astype(np.int32)
    return int(np.cumsum(steps).max(initial=0))


def loads(text: str | bytes, *, max_depth: int = MAX_DEPTH, max_bytes: int = MAX_BYTES) -> Any:
    """``json.loads`` with limits: :class:`JSONLimitError` for a text over ``max_bytes`` or nested more than
    ``max_depth`` deep, ``json.JSONDecodeError`` (a ValueError too) for one that is not JSON.

    >>> loads('{"steps": [{"stage": "quantize"}]}')
    {'steps': [{'stage': 'quantize'}]}
    >>> loads("[" * 100000 + "]" * 100000)  # doctest: +IGNORE_EXCEPTION_DETAIL
    Traceback (most recent call last):
    ...
    JSONLimitError: nested more than 64 levels deep
    """
    data = text.encode("utf-8", "surrogatepass") if isinstance(text, str) else bytes(text)
    if len(data) > max_bytes:
        raise JSONLimitError(f"{len(data)} bytes long, more than the {max_bytes} allowed")
    if nesting(data) > max_depth:
        raise JSONLimitError(f"nested more than {max_depth} levels deep")
    return json.loads(data)
