"""Words about parameters, from their pydantic fields: type, allowed range, default and description.

One home for what the CLI's help, ``artfx stages show``, validation messages, the Python functions' docstrings
and the web page say about a parameter, so that they always agree.
"""

from __future__ import annotations

import types
import typing
from typing import Any


def unwrap_optional(annotation: Any) -> Any:
    """``Optional[X]`` -> ``X``; anything else unchanged."""
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        if len(args) == 1:
            return args[0]
    return annotation


def choices(info: Any) -> tuple[Any, ...]:
    """The allowed values of a Literal field (Optional unwrapped), or () for any other field."""
    ann = unwrap_optional(info.annotation)
    return typing.get_args(ann) if typing.get_origin(ann) is typing.Literal else ()


def bounds(info: Any) -> tuple[tuple[float, bool] | None, tuple[float, bool] | None]:
    """((low, inclusive), (high, inclusive)) of a numeric field, each None when unbounded."""
    lo = hi = None
    for m in getattr(info, "metadata", []):
        for attr, inclusive in (("ge", True), ("gt", False)):
            if getattr(m, attr, None) is not None:
                lo = (getattr(m, attr), inclusive)
        for attr, inclusive in (("le", True), ("lt", False)):
            if getattr(m, attr, None) is not None:
                hi = (getattr(m, attr), inclusive)
    return lo, hi


def field_range(info: Any) -> str:
    """"allowed range 2..256", "must be >=0", "must be >0", "allowed: a|b" or "" for a field."""
    options = choices(info)
    if options:
        return "allowed: " + "|".join(str(a) for a in options)
    lo, hi = bounds(info)
    if lo is not None and hi is not None and lo[1] and hi[1]:
        return f"allowed range {lo[0]}..{hi[0]}"
    if lo is not None:
        return f"must be {'>=' if lo[1] else '>'}{lo[0]}"
    if hi is not None:
        return f"must be {'<=' if hi[1] else '<'}{hi[0]}"
    return ""


def type_text(info: Any) -> str:
    """A short type name: ``int``, ``float``, ``str``, ``bool``, ``a|b|c`` for choices, ``list of str (a|b|c)``."""
    ann = unwrap_optional(info.annotation)
    origin = typing.get_origin(ann)
    if origin is typing.Literal:
        return "|".join(str(a) for a in typing.get_args(ann))
    if origin in (list, tuple):
        inner = typing.get_args(ann)
        return f"list of {getattr(inner[0], '__name__', 'value') if inner else 'value'} (a|b|c)"
    return getattr(ann, "__name__", str(ann))


def default_text(info: Any) -> str:
    default = info.get_default(call_default_factory=True)
    if isinstance(default, (list, tuple)):
        default = "|".join(map(str, default))
    if isinstance(default, bool):
        default = str(default).lower()
    return "none" if default in (None, "") else str(default)


def help_text(info: Any) -> str:
    """Description, range (for numbers) and default, in one line."""
    parts = [info.description or ""]
    extra = field_range(info)
    lo, hi = bounds(info)
    said = lo is not None and hi is not None and f"{lo[0]}..{hi[0]}" in (info.description or "")
    if extra and not choices(info) and not said:
        parts.append(f"({extra})")
    parts.append(f"[default: {default_text(info)}]")
    return " ".join(p for p in parts if p)


def describe_field(info: Any) -> tuple[str, str]:
    """(type text, help text) of a field."""
    return type_text(info), help_text(info)
