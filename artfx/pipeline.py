"""Pipelines: resolve and validate every step before any heavy work, then a plain loop.

``Pipeline.from_spec("quantize:k=8,slic")`` or ``Pipeline.from_raw([...])`` build one; ``run(image, ctx)`` runs
it on an Image, giving each step its own context. A pipeline also knows the files its steps name (``files``,
``reads``) and the output formats its last stage writes itself (``own_format``). :mod:`artfx.jobs` adds files,
recipes, batches, sequences and sweeps, and ``artfx.run`` is the Python front door.
"""

from __future__ import annotations

import contextlib
import difflib
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

import numpy as np
from pydantic import ValidationError

from artfx import registry
from artfx.describe import field_range
from artfx.errors import ArtfxError, ParamError, SpecError, StageError
from artfx.spec import StepSpec, format_spec, normalise_key, parse_spec
from artfx.stage import INPUT_FILE, OUTPUT_DIR, OUTPUT_FILE, Context, Image, field_kind, hook

RawStep = tuple[str, dict[str, Any]]


@dataclass
class Step:
    stage: Any
    params: Any

    @property
    def name(self) -> str:
        return self.stage.name

    @property
    def dist(self) -> str:
        return registry.dist_of(self.name)

    def raw(self, only_set: bool = False) -> RawStep:
        """(stage name, parameters as JSON values): all of them, or only those the user set (``only_set``),
        whatever their value, so that a saved look survives a change of default."""
        return self.name, self.params.model_dump(mode="json", exclude_unset=only_set)


def _validation_message(stage: Any, exc: ValidationError, raw: dict[str, Any]) -> str:
    err = exc.errors()[0]
    loc = err.get("loc") or ()
    field = str(loc[0]) if loc else ""
    msg = err.get("msg", "invalid value")
    if msg.startswith("Value error, "):
        msg = msg[len("Value error, "):]
    if field and field in raw:
        info = stage.Params.model_fields.get(field)
        extra = field_range(info) if info is not None else ""
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
    try:
        values = stage.Params.resolve_aliases(values, f"{stage.name}: ") if hasattr(stage.Params, "resolve_aliases") \
            else values
    except ValueError as exc:
        raise ParamError(f"{stage.name}: {exc}") from None
    for key in values:
        if key not in fields:
            close = difflib.get_close_matches(key, list(fields), n=1)
            hint = f"did you mean {close[0]!r}?" if close else f"parameters: {', '.join(fields) or 'none'}"
            raise ParamError(f"{stage.name}: unknown parameter {key!r}", hint=hint)
    try:
        return stage.Params(**values)
    except ValidationError as exc:
        raise ParamError(_validation_message(stage, exc, values)) from None


def find_step(raw_steps: list[list[Any]], ref: str, setting: str) -> int:
    """The index of the step ``ref`` names in ``--set``/``--vary``: a 1-based number, a stage name, or
    ``name#k``; ``raw_steps`` holds [stage name, ...] per step."""
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
        raw_steps[find_step(raw_steps, ref, setting)][1][normalise_key(key)] = value


class Pipeline:
    def __init__(self, steps: list[Step]):
        if not steps:
            raise SpecError("a pipeline needs at least one step")
        self.steps = steps
        self._files: list[tuple[str, str, Path, str]] | None = None

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
    def raw(self, only_set: bool = False) -> list[RawStep]:
        return [s.raw(only_set) for s in self.steps]

    def spec(self) -> str:
        """The inline spec of this pipeline, with the parameters that were set."""
        out = []
        for name, params in self.raw(only_set=True):
            items = tuple((k, _spec_value(v)) for k, v in params.items() if v is not None)
            out.append(StepSpec(name, items))
        return format_spec(out)

    def files(self) -> list[tuple[str, str, Path, str]]:
        """Files the steps will read and side-output files and directories they will write, as named by their
        parameters: (stage, field, path, kind), kind being INPUT_FILE, OUTPUT_FILE or OUTPUT_DIR. Worked out
        once (a pipeline's steps do not change; ``with_params`` makes a new pipeline)."""
        if self._files is None:
            found = []
            for step in self.steps:
                for name, info in type(step.params).model_fields.items():
                    kind = field_kind(info)
                    value = getattr(step.params, name)
                    if kind in (INPUT_FILE, OUTPUT_FILE, OUTPUT_DIR) and value not in (None, ""):
                        for item in value if isinstance(value, (list, tuple)) else [value]:
                            found.append((step.name, name, Path(item), kind))
            self._files = found
        return list(self._files)

    def parameter_files(self) -> list[tuple[str, Path]]:
        """(what, path) of every file a parameter declared as an input file names ("quantize: palette='p.gpl'")."""
        return [(f"{stage}: {name}={str(path)!r}", path) for stage, name, path, kind in self.files()
                if kind == INPUT_FILE]

    def reads(self) -> list[Path]:
        """Every file the steps read: their parameter files and what a stage's ``reads`` hook names (style
        images given by path), in step order, each once."""
        paths = [p for _, p in self.parameter_files()]
        for step in self.steps:
            fn = hook(step.stage, "reads")
            if fn is not None:
                paths += [Path(p) for p in fn(step.params)]
        return list(dict.fromkeys(paths))

    def own_format(self, dest: str | Path) -> str | None:
        """The side-output key of a format the last step's stage writes itself (its ``formats`` hook, e.g.
        primitive's ``{".svg": "svg"}``) when ``dest`` asks for it, else None."""
        if str(dest) == "-":
            return None
        return hook(self.steps[-1].stage, "formats").get(Path(str(dest)).suffix.lower())

    def with_params(self, index: int, **changes: Any) -> "Pipeline":
        steps = list(self.steps)
        step = steps[index]
        steps[index] = Step(step.stage, step.params.model_copy(update=changes))
        return Pipeline(steps)

    def without_side_files(self) -> tuple["Pipeline", list[str]]:
        """This pipeline with every side-output file and folder switched off (replay writes only the image, a video
        only its frames), and "step.param" of each one that was set."""
        pipeline, dropped = self, []
        for index, step in enumerate(self.steps):
            off = {n: None for n, info in type(step.params).model_fields.items()
                   if field_kind(info) in (OUTPUT_FILE, OUTPUT_DIR) and getattr(step.params, n) not in (None, "")}
            if off:
                dropped += [f"step {index + 1} ({step.name}): {name}" for name in off]
                pipeline = pipeline.with_params(index, **off)
        return pipeline, dropped

    # ---- running ----------------------------------------------------------------------------------------
    def run(self, image: Image, context: Context | None = None) -> Image:
        """Run every step on ``image`` (float32 (H, W, 3) in [0, 1]); ``context`` carries the run's options and
        collects side outputs (``context.run.outputs``). Each step gets a context of its own."""
        base = context if context is not None else Context()
        run = base.run
        if run.input_image is None:
            run.input_image = image
        for index, step in enumerate(self.steps):
            ctx = base.for_step(index, step.name)
            run.best = None
            where = f"step {index + 1} ({step.name} from {step.dist})"
            try:
                with contextlib.redirect_stdout(sys.stderr):  # stages never print; one that does must not
                    out = step.stage.apply(image, step.params, ctx)  # corrupt a PNG written to stdout
            except (KeyboardInterrupt, MemoryError, ArtfxError):
                raise
            except SystemExit as exc:
                raise StageError(f"{where} called sys.exit({exc.code!r})") from None
            except Exception as exc:
                if isinstance(exc.__cause__, KeyboardInterrupt) or isinstance(exc.__context__, KeyboardInterrupt):
                    raise KeyboardInterrupt from None  # Ctrl-C inside a numba kernel comes out as a SystemError
                text = f"{where} failed: {type(exc).__name__}: {exc}".splitlines()[0]
                raise StageError(text) from exc
            out = check_image(out, where)
            if run.sequence is not None:  # what the next frame's step may use (artfx.video)
                run.sequence.record(index, image, out)
            image = out
        return image


def _spec_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (list, tuple)):
        return "|".join(_spec_value(v) for v in value)
    return str(value)


TOLERANCE = 1e-3  # float excursions this small (resampling, rounding) are clipped without complaint


def check_image(out: Any, where: str) -> Image:
    """A stage's result, checked to be an Image: float (H, W, 3), finite, in [0, 1] (tiny excursions clipped).
    A stage that returns 0..255 integers or values far outside [0, 1] is a bug to report, not to clip."""
    if not isinstance(out, np.ndarray) or out.ndim != 3 or out.shape[2] != 3 or 0 in out.shape:
        shape = getattr(out, "shape", type(out).__name__)
        raise StageError(f"{where} returned {shape}, not an (H, W, 3) image")
    if not np.issubdtype(out.dtype, np.floating):
        raise StageError(f"{where} returned {out.dtype} values, not float32 in [0, 1]")
    if not np.isfinite(out).all():
        raise StageError(f"{where} returned NaN or infinite values")
    lo, hi = float(out.min()), float(out.max())
    if lo < -TOLERANCE or hi > 1 + TOLERANCE:
        raise StageError(f"{where} returned values from {lo:.4g} to {hi:.4g}, outside [0, 1]")
    out = out.astype(np.float32, copy=False)
    return np.clip(out, 0.0, 1.0, out=out if out.flags.writeable else None)
