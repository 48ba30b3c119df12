"""Pipelines: resolve and validate every step before any heavy work, then a plain loop.

``Pipeline.from_spec("quantize:k=8,slic")`` or ``Pipeline.from_config("look.toml")`` build one; ``run(image, ctx)``
runs it on an Image; ``run_file`` (in artfx.runner) adds reading, writing and the recipe.
"""

from __future__ import annotations

import difflib
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

import numpy as np
from pydantic import ValidationError

from artfx import registry
from artfx.errors import ArtfxError, ParamError, SpecError, StageError
from artfx.spec import StepSpec, format_spec, normalise_key, parse_spec
from artfx.stage import INPUT_FILE, OUTPUT_DIR, OUTPUT_FILE, Context, Image, field_kind

RawStep = tuple[str, dict[str, Any]]


@dataclass
class Step:
    stage: Any
    params: Any

    @property
    def name(self) -> str:
        return self.stage.name

    def raw(self, exclude_defaults: bool = False) -> RawStep:
        return self.name, self.params.model_dump(mode="json", exclude_defaults=exclude_defaults)


def _field_range(info: Any) -> str:
    lo = hi = None
    for m in getattr(info, "metadata", []):
        for attr in ("ge", "gt"):
            if getattr(m, attr, None) is not None:
                lo = f"{'>' if attr == 'gt' else ''}{getattr(m, attr)}"
        for attr in ("le", "lt"):
            if getattr(m, attr, None) is not None:
                hi = f"{'<' if attr == 'lt' else ''}{getattr(m, attr)}"
    ann = info.annotation
    if typing.get_origin(ann) is typing.Literal:
        return "allowed: " + "|".join(str(a) for a in typing.get_args(ann))
    if lo is not None and hi is not None and not lo.startswith(">") and not hi.startswith("<"):
        return f"allowed range {lo}..{hi}"
    if lo is not None:
        return f"must be {lo if lo.startswith('>') else '>=' + lo}"
    if hi is not None:
        return f"must be {hi if hi.startswith('<') else '<=' + hi}"
    return ""


def _validation_message(stage: Any, exc: ValidationError, raw: dict[str, Any]) -> str:
    err = exc.errors()[0]
    loc = err.get("loc") or ()
    field = str(loc[0]) if loc else ""
    msg = err.get("msg", "invalid value")
    if msg.startswith("Value error, "):
        msg = msg[len("Value error, "):]
    if field and field in raw:
        info = stage.Params.model_fields.get(field)
        extra = _field_range(info) if info is not None else ""
        head = f"{stage.name}: {field}={raw[field]!r}: {msg}"
        return f"{head} ({extra})" if extra and extra not in msg else head
    return f"{stage.name}: {msg}" + (f" (parameter {field})" if field else "")


def merge_bare(stage: Any, values: dict[str, Any], bare: str | None) -> dict[str, Any]:
    """A bare value (``quantize:8``) sets the stage's first parameter."""
    if bare is None:
        return values
    fields = stage.Params.model_fields
    if not fields:
        raise ParamError(f"{stage.name}: takes no parameters, got {bare!r}")
    first = next(iter(fields))
    if first in values:
        raise ParamError(f"{stage.name}: {first} given twice (bare value {bare!r} and {first}=...)")
    return {first: bare, **values}


def build_params(stage: Any, raw: dict[str, Any]) -> Any:
    """Validate raw values (strings from a spec or CLI, or typed values from TOML) into the stage's Params."""
    fields = stage.Params.model_fields
    values = {normalise_key(k): v for k, v in raw.items()}
    for key in values:
        if key not in fields:
            close = difflib.get_close_matches(key, list(fields), n=1)
            hint = f"did you mean {close[0]!r}?" if close else f"parameters: {', '.join(fields) or 'none'}"
            raise ParamError(f"{stage.name}: unknown parameter {key!r}", hint=hint)
    try:
        return stage.Params(**values)
    except ValidationError as exc:
        raise ParamError(_validation_message(stage, exc, values)) from None


def _find_step(raw_steps: list[list[Any]], ref: str, setting: str) -> int:
    if ref.isdigit():
        idx = int(ref) - 1
        if not 0 <= idx < len(raw_steps):
            raise SpecError(f"--set {setting}: there is no step {ref} (steps are 1..{len(raw_steps)})")
        return idx
    name, _, nth = ref.partition("#")
    matches = [i for i, s in enumerate(raw_steps) if s[0] == name]
    if not matches:
        raise SpecError(f"--set {setting}: no step is stage {name!r}", hint=f"steps: {[s[0] for s in raw_steps]}")
    if nth:
        if not nth.isdigit() or not 1 <= int(nth) <= len(matches):
            raise SpecError(f"--set {setting}: stage {name!r} appears {len(matches)} time(s)")
        return matches[int(nth) - 1]
    if len(matches) > 1:
        raise SpecError(f"--set {setting}: stage {name!r} appears {len(matches)} times", hint=f"write {name}#2.key=value or a step number")
    return matches[0]


def apply_overrides(raw_steps: list[list[Any]], sets: Iterable[str]) -> None:
    """``--set step.param=value`` where step is a stage name, ``name#k`` or a 1-based step number."""
    for setting in sets:
        target, eq, value = setting.partition("=")
        ref, dot, key = target.partition(".")
        if not eq or not dot or not ref or not key:
            raise SpecError(f"--set {setting!r}: expected step.param=value, e.g. quantize.k=16")
        raw_steps[_find_step(raw_steps, ref, setting)][1][normalise_key(key)] = value


class Pipeline:
    def __init__(self, steps: list[Step]):
        if not steps:
            raise SpecError("a pipeline needs at least one step")
        self.steps = steps

    # ---- building ---------------------------------------------------------------------------------------
    @classmethod
    def from_raw(cls, raw: Iterable[tuple[str, dict[str, Any]] | tuple[str, dict[str, Any], str | None]],
                 sets: Iterable[str] = ()) -> "Pipeline":
        items = []
        for r in raw:
            stage = registry.load(r[0])
            values = {normalise_key(k): v for k, v in r[1].items()}
            items.append([r[0], merge_bare(stage, values, r[2] if len(r) > 2 else None), stage])
        apply_overrides(items, sets)
        return cls([Step(stage, build_params(stage, values)) for _, values, stage in items])

    @classmethod
    def from_spec(cls, spec: str, sets: Iterable[str] = ()) -> "Pipeline":
        steps: list[StepSpec] = parse_spec(spec)
        return cls.from_raw([(s.name, dict(s.params), s.bare) for s in steps], sets)

    # ---- describing -------------------------------------------------------------------------------------
    def raw(self, exclude_defaults: bool = False) -> list[RawStep]:
        return [s.raw(exclude_defaults) for s in self.steps]

    def spec(self) -> str:
        """The inline spec of this pipeline, non-default parameters only."""
        out = []
        for name, params in self.raw(exclude_defaults=True):
            items = tuple((k, _spec_value(v)) for k, v in params.items() if v is not None)
            out.append(StepSpec(name, items))
        return format_spec(out)

    def files(self) -> list[tuple[str, str, Path, str]]:
        """Files the steps will read and side-output files and directories they will write, as named by their
        parameters: (stage, field, path, kind), kind being INPUT_FILE, OUTPUT_FILE or OUTPUT_DIR."""
        found = []
        for step in self.steps:
            for name, info in type(step.params).model_fields.items():
                kind = field_kind(info)
                value = getattr(step.params, name)
                if kind in (INPUT_FILE, OUTPUT_FILE, OUTPUT_DIR) and value not in (None, ""):
                    for item in value if isinstance(value, (list, tuple)) else [value]:
                        found.append((step.name, name, Path(item), kind))
        return found

    def with_params(self, index: int, **changes: Any) -> "Pipeline":
        steps = list(self.steps)
        step = steps[index]
        steps[index] = Step(step.stage, step.params.model_copy(update=changes))
        return Pipeline(steps)

    # ---- running ----------------------------------------------------------------------------------------
    def run(self, image: Image, ctx: Context) -> Image:
        for index, step in enumerate(self.steps):
            ctx.begin_step(index, step.name)
            try:
                out = step.stage.apply(image, step.params, ctx)
            except (KeyboardInterrupt, MemoryError):
                raise
            except Exception as exc:
                if isinstance(exc, ArtfxError):
                    raise
                raise StageError(f"stage {step.name!r} failed: {type(exc).__name__}: {exc}".splitlines()[0]) from exc
            image = check_image(out, step.name)
        return image


def _spec_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (list, tuple)):
        return "|".join(_spec_value(v) for v in value)
    return str(value)


def check_image(out: Any, stage: str) -> Image:
    """A stage's result, checked to be an Image; small float excursions are clipped into [0, 1]."""
    if not isinstance(out, np.ndarray) or out.ndim != 3 or out.shape[2] != 3 or 0 in out.shape:
        shape = getattr(out, "shape", type(out).__name__)
        raise StageError(f"stage {stage!r} returned {shape}, not an (H, W, 3) image")
    if out.dtype != np.float32:
        out = out.astype(np.float32)
    if not np.isfinite(out).all():
        raise StageError(f"stage {stage!r} returned NaN or infinite values")
    return np.clip(out, 0.0, 1.0, out=out if out.flags.writeable else None)
