"""TOML pipeline files: an optional ``[run]`` table and ordered ``[[step]]`` tables.

    [run]
    seed = 3
    max_size = 2048

    [[step]]
    stage = "quantize"
    k = 8

    [[step]]
    stage = "slic"
    n = 400

The ``[run]`` keys are the run options that belong to a look (:meth:`artfx.options.RunOptions.look_fields`):
seed, device, max_size and depth, validated by the same model as the command line's options.
"""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path
from typing import Any

from artfx.errors import InputError, SpecError, UsageError
from artfx.options import RunOptions

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib


def load_config(path: str | Path) -> tuple[dict[str, Any], list[tuple[str, dict[str, Any]]]]:
    """Read a TOML pipeline: (run settings, [(stage name, raw params)])."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise InputError(f"config file {str(path)!r} does not exist") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"cannot read config file {str(path)!r}: {exc}") from None
    return parse_config(text, str(path))


def parse_config(text: str, where: str = "config") -> tuple[dict[str, Any], list[tuple[str, dict[str, Any]]]]:
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise SpecError(f"{where}: invalid TOML: {exc}") from None
    unknown = set(data) - {"run", "step"}
    if unknown:
        raise SpecError(f"{where}: unknown table(s) {sorted(unknown)}; only [run] and [[step]] are allowed")
    run = data.get("run", {})
    if not isinstance(run, dict):
        raise SpecError(f"{where}: [run] must be a table")
    allowed = RunOptions.look_fields()
    for key, value in run.items():
        if key not in allowed:
            raise SpecError(f"{where}: unknown [run] key {key!r}; allowed: {', '.join(allowed)}")
        if isinstance(value, bool) or isinstance(value, (dict, list)):
            raise SpecError(f"{where}: [run] {key} must be a number or a string, not {value!r}")
    try:
        RunOptions.build(where="[run] ", **run)
    except UsageError as exc:
        raise SpecError(f"{where}: {exc}") from None
    steps_raw = data.get("step", [])
    if not isinstance(steps_raw, list) or not steps_raw:
        raise SpecError(f"{where}: no [[step]] tables")
    steps = []
    for i, table in enumerate(steps_raw, 1):
        if not isinstance(table, dict):
            raise SpecError(f"{where}: step {i} is not a table; write [[step]] tables")
        table = dict(table)
        name = table.pop("stage", None)
        if not isinstance(name, str):
            raise SpecError(f"{where}: step {i} has no stage = \"name\"")
        steps.append((name, {k.replace("-", "_"): v for k, v in table.items()}))
    return dict(run), steps


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        return repr(value)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    if value is None:
        raise ValueError("None has no TOML form")
    return json.dumps(str(value), ensure_ascii=False)  # a JSON string is a valid TOML basic string


def dump_config(run: dict[str, Any], steps: list[tuple[str, dict[str, Any]]]) -> str:
    """TOML text that load_config reads back to the same run settings and steps (None values are left out)."""
    lines = []
    run = {k: v for k, v in run.items() if v is not None}
    if run:
        lines.append("[run]")
        lines += [f"{k} = {_toml_value(v)}" for k, v in run.items()]
        lines.append("")
    for name, params in steps:
        lines.append("[[step]]")
        lines.append(f"stage = {_toml_value(name)}")
        lines += [f"{k} = {_toml_value(v)}" for k, v in params.items() if v is not None]
        lines.append("")
    return "\n".join(lines)
