"""The stage contract: the image type, the Params base model, the Context and the Stage protocol.

A stage is any object with ``name``, ``summary``, ``Params`` and ``apply(image, params, ctx) -> image``; no base
class is needed (the protocol is structural). Images between stages are float32 ``(H, W, 3)`` sRGB in ``[0, 1]``.
Stages take all randomness from the context, report progress and side outputs through it, never print, and import
heavy libraries (torch, skimage, sklearn) inside ``apply`` so that listing stages stays cheap.
"""

from __future__ import annotations

import hashlib
import logging
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, ClassVar, Protocol, runtime_checkable

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, model_validator

Image = np.ndarray
"""float32 array of shape (H, W, 3), sRGB, values in [0, 1]."""

LIST_SEPARATOR = "|"

# Marks on fields, read by the pipeline (validation before work) and the CLI (option types).
INPUT_FILE = "input-file"
OUTPUT_FILE = "output-file"
OUTPUT_DIR = "output-dir"


def _is_sequence_annotation(annotation: Any) -> bool:
    origin = typing.get_origin(annotation)
    if origin in (list, tuple):
        return True
    if origin in (typing.Union, types.UnionType):
        return any(_is_sequence_annotation(a) for a in typing.get_args(annotation) if a is not type(None))
    return False


def _literal_choices(annotation: Any) -> tuple[Any, ...]:
    if typing.get_origin(annotation) is typing.Literal:
        return typing.get_args(annotation)
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        return tuple(c for a in typing.get_args(annotation) for c in _literal_choices(a))
    return ()


class Params(BaseModel):
    """Base for every stage's parameters: unknown keys rejected, values validated on assignment.

    Every field must have a default and a description. A one-letter field is also a short CLI option (``k`` ->
    ``-k``). List fields accept ``a|b|c`` strings, as written in pipeline specs and on the command line.

    ``aliases`` maps old parameter names to current ones (``{"iters": "iterations"}``): an old name is still
    accepted, in specs, TOML, commands and Python, with a warning, and recipes store the current name.
    """

    model_config = ConfigDict(extra="forbid", validate_assignment=True, validate_default=True, allow_inf_nan=False)
    aliases: ClassVar[dict[str, str]] = {}

    @classmethod
    def resolve_aliases(cls, data: dict[str, Any], where: str = "") -> dict[str, Any]:
        """``data`` with old parameter names replaced by their current ones (a warning for each)."""
        if not cls.aliases or not any(k in cls.aliases for k in data):
            return data
        out = {}
        for key, value in data.items():
            new = cls.aliases.get(key)
            if new is None:
                out[key] = value
                continue
            if new in data:
                raise ValueError(f"{key} is the old name of {new}; give only {new}")
            logging.getLogger("artfx").warning("%s%s is now called %s; the old name will go in a later release",
                                               where, key, new)
            out[new] = value
        return out

    @model_validator(mode="before")
    @classmethod
    def _split_lists(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        out = cls.resolve_aliases(dict(data))
        for name, info in cls.model_fields.items():
            value = out.get(name)
            if not isinstance(value, str):
                continue
            if _is_sequence_annotation(info.annotation):
                out[name] = [] if value == "" else value.split(LIST_SEPARATOR)
            else:
                match = [c for c in _literal_choices(info.annotation) if not isinstance(c, str) and str(c) == value]
                if match:
                    out[name] = match[0]
        return out


def input_file(default: Any = None, description: str = "", **kw: Any) -> Any:
    """A field naming a file the stage reads (checked to exist before any work)."""
    return Field(default, description=description, json_schema_extra={"artfx": INPUT_FILE}, **kw)


def output_file(description: str, **kw: Any) -> Any:
    """A field naming a side-output file the stage writes through ``ctx.save`` (checked writable before work)."""
    return Field(None, description=description, json_schema_extra={"artfx": OUTPUT_FILE}, **kw)


def output_dir(description: str, **kw: Any) -> Any:
    """A field naming a directory the stage fills through ``ctx.save`` (created before the run if missing)."""
    return Field(None, description=description, json_schema_extra={"artfx": OUTPUT_DIR}, **kw)


def field_kind(info: Any) -> str | None:
    extra = getattr(info, "json_schema_extra", None)
    return extra.get("artfx") if isinstance(extra, dict) else None


@runtime_checkable
class Stage(Protocol):
    """What every stage (built-in or plugin) provides: ``name``, a one-line ``summary``, a ``Params`` model and
    ``apply``. A stage may also define any of the optional hooks of :class:`StageHooks`; artfx finds them with
    :func:`hook`, and nowhere else."""

    name: str
    summary: str
    Params: ClassVar[type[BaseModel]] | type[BaseModel]

    def apply(self, image: Image, params: Any, ctx: "Context") -> Image: ...


class StageHooks(Protocol):
    """The optional hooks a stage may define beside :class:`Stage`. Each is looked up by :func:`hook`, the one
    place that does; ``artfx.testing.check_stage`` calls every hook a stage has."""

    formats: ClassVar[dict[str, str]]
    """Output suffixes the stage writes itself when the pipeline's output asks for them, each to the side output
    that holds the file's content: primitive's ``{".svg": "svg"}`` makes ``-o shapes.svg`` write its SVG."""

    def about(self) -> list[tuple[str, str]]:
        """Name/value pairs for ``artfx info`` and ``artfx stages show``: weights, licence, credit, caches."""
        ...

    def reads(self, params: Any) -> list[Path]:
        """Files the step reads that its parameters name in free-form values (style's image names), so that they
        are checked, protected from being overwritten, recorded in recipes and shipped to remote workers."""
        ...

    def memory(self, params: Any, shape: tuple[int, int], device: str) -> Any:
        """The step's peak memory on an input of ``shape`` (height, width): an :class:`artfx.resources.Need`."""
        ...

    def out_shape(self, params: Any, shape: tuple[int, int]) -> tuple[int, int]:
        """(height, width) of the step's result on an input of ``shape``, when it differs from the input's."""
        ...


HOOKS = ("formats", "about", "reads", "memory", "out_shape")


def hook(stage: Any, name: str) -> Any:
    """A stage's optional hook ``name`` (one of :data:`HOOKS`), or None where it has none: the callable, or for
    ``formats`` the dict (empty when absent)."""
    if name not in HOOKS:
        raise KeyError(f"{name!r} is not a stage hook; hooks: {', '.join(HOOKS)}")
    value = getattr(stage, name, None)
    if name == "formats":
        return dict(value) if isinstance(value, dict) else {}
    return value if callable(value) else None


def about(stage: Any) -> list[tuple[str, str]]:
    """What a stage says about itself through its optional ``about()`` hook; a failing hook is reported in the
    list, never raised (``artfx info`` must always print)."""
    fn = hook(stage, "about")
    if fn is None:
        return []
    try:
        return [(str(k), str(v)) for k, v in fn()]
    except Exception as exc:
        return [("about", f"failed: {type(exc).__name__}: {exc}".splitlines()[0])]


ProgressCallback = Callable[[str, float, "float | None", dict], None]
"""progress(label, done, total, metrics); the label is "<step number>:<stage name>", or a job's own ("files",
"frames", "sweep")."""


class Report:
    """How a job tells whoever started it what happens: one object for every kind of news, handed down from the
    command line, the web page or a script to the steps. Subclass it and override what you need; here every
    method does nothing.

    - ``progress(label, done, total, metrics)``: a step's progress (label "<step>:<stage>") or the job's
      ("files", "frames", "sweep");
    - ``image(label, image)``: every image a step checkpoints, for live views (called only when ``watching``);
    - ``saved(path)``: a side-output file was written;
    - ``file(src, dest, error)``: an input of the job is done (``error`` None) or failed;
    - ``cancelled``: set it (from any thread) to stop the run at the next progress report.
    """

    cancelled: bool = False
    watching: bool = False

    def progress(self, label: str, done: float, total: float | None, metrics: dict) -> None:
        pass

    def image(self, label: str, image: Image) -> None:
        pass

    def saved(self, path: Path) -> None:
        pass

    def file(self, src: Path, dest: Path, error: Exception | None) -> None:
        pass

    @staticmethod
    def of(value: "Report | ProgressCallback | None") -> "Report":
        """A Report from a Report, a plain progress function (``fn(label, done, total, metrics)``) or None."""
        if isinstance(value, Report):
            return value
        report = Report()
        if value is not None:
            if not callable(value):
                raise TypeError(f"a progress report must be a Report or a function, not {type(value).__name__}")
            report.progress = value  # type: ignore[method-assign]
        return report


@dataclass
class Run:
    """What every step of one run shares: the options, side outputs, the best image so far, files read.

    Built by the work unit (:mod:`artfx.jobs.render`), or by :class:`Context` for a stage called on its own;
    stages see it through their context."""

    seed: int = 0
    device: str = "auto"
    depth: int = 8
    allow_huge: bool = False
    force: bool = False
    protected: tuple[Path, ...] = ()
    report: Report = field(default_factory=Report)
    input_image: Image | None = None
    sequence: Any = None  # for videos and photo sequences: gives each step its Temporal view (artfx.video)
    outputs: dict[str, Any] = field(default_factory=dict)
    best: Image | None = None
    resolved_device: str | None = None
    said: set | None = None  # a job's warnings so far: each is said once per job (a sweep's cells, a clip's frames)
    _torch_device: Any = field(default=None, repr=False)
    _reads: dict[Path, Any] = field(default_factory=dict, repr=False)

    @classmethod
    def from_options(cls, opts: Any, **extra: Any) -> "Run":
        """A run with the options of an :class:`artfx.options.RunOptions` (seed, device, depth, allow_huge,
        force), and ``extra`` fields (protected, report, sequence...)."""
        run = cls(**extra)
        for key in ("seed", "device", "depth", "allow_huge", "force"):
            setattr(run, key, getattr(opts, key))
        return run


class _OncePerJob(logging.LoggerAdapter):
    """A logger that says each warning once per job (the set of what was said belongs to the job)."""

    def __init__(self, logger: logging.Logger, said: set):
        super().__init__(logger, {})
        self.said = said

    def log(self, level: int, msg: object, *args: Any, **kwargs: Any) -> None:
        if level >= logging.WARNING:
            text = (level, str(msg) % args if args else str(msg))
            if text in self.said:
                return
            self.said.add(text)
        super().log(level, msg, *args, **kwargs)


class Context:
    """Everything a stage may use besides its image and params, for one step of one run.

    - ``seed``, ``rng`` (a numpy Generator for this step), ``step_seed`` (an int for libraries that want one),
      ``torch_generator(device)``: they depend on the run's seed and the step's index only, so a stage called
      on its own (``stage.apply(image, params, Context(seed=7))``) draws exactly what it draws as the first step
      of a pipeline with that seed;
    - ``device`` (resolved: cpu, cuda, cuda:N or mps; auto is resolved once per run, on first use) and
      ``torch_device()``; ``depth`` (8 or 16: the bits per channel the output will be written with);
    - ``progress(done, total, **metrics)`` and ``log`` (a logging.Logger);
    - side outputs: ``emit(key, value)`` and ``get(key)`` (the latest value any earlier step emitted);
    - ``read_image(path)``: a file a step reads (palette, style, mask...), through artfx's reader (EXIF, ICC,
      16-bit, the bomb guard), read once per run;
    - ``save(path, data)`` writes a side-output file atomically, never over an input;
    - ``checkpoint(image)`` records the best image so far, written out if the run is interrupted;
    - ``input_image``: the pipeline's input (after --max-size), for steps that work on the photo itself;
    - ``temporal``: None for a still; for a frame of a video or photo sequence, what the step may use from the
      previous frame (its previous input and output, the optical flow, its own state; see :mod:`artfx.video`).

    The pipeline builds one per step; nobody needs to call anything before handing it to a stage.
    """

    def __init__(self, seed: int = 0, device: str = "auto", *, step: int = 0, stage: str = "",
                 run: Run | None = None, on_progress: ProgressCallback | None = None, **run_fields: Any) -> None:
        if run is None:
            run = Run(seed=seed, device=device, **run_fields)
        if on_progress is not None:
            run.report = Report.of(on_progress)
        self.run = run
        self.step = step
        self.stage = stage
        self._rng: np.random.Generator | None = None
        sequence = self.run.sequence
        self.temporal = sequence.for_step(step) if sequence is not None else None

    def for_step(self, step: int, stage: str) -> "Context":
        """A context for another step of the same run."""
        return Context(step=step, stage=stage, run=self.run)

    # ---- randomness --------------------------------------------------------------------------------------
    @property
    def seed(self) -> int:
        return self.run.seed

    @property
    def step_seed(self) -> int:
        """A 32-bit seed that depends on the run's seed and the step index only."""
        digest = hashlib.sha256(f"{self.run.seed}:{self.step}".encode()).digest()
        return int.from_bytes(digest[:4], "little")

    @property
    def rng(self) -> np.random.Generator:
        if self._rng is None:
            self._rng = np.random.default_rng(self.step_seed)
        return self._rng

    def torch_generator(self, device: Any = "cpu") -> Any:
        import torch

        g = torch.Generator(device=device)
        g.manual_seed(self.step_seed)
        return g

    # ---- device and output -------------------------------------------------------------------------------
    @property
    def device(self) -> str:
        """The run's device, resolved: ``auto`` becomes cuda, mps or cpu (importing torch) on first use."""
        if self.run.resolved_device is None:
            from artfx.devices import resolve_device

            self.run.resolved_device = resolve_device(self.run.device)
        return self.run.resolved_device

    def torch_device(self) -> Any:
        """The torch device of :attr:`device`."""
        if self.run._torch_device is None:
            import torch

            self.run._torch_device = torch.device(self.device)
        return self.run._torch_device

    @property
    def depth(self) -> int:
        return self.run.depth

    @property
    def input_image(self) -> Image | None:
        return self.run.input_image

    # ---- reporting ---------------------------------------------------------------------------------------
    @property
    def on_progress(self) -> ProgressCallback:
        """The run's progress function (settable to a plain function, e.g. by a test driving a stage)."""
        return self.run.report.progress

    @on_progress.setter
    def on_progress(self, callback: ProgressCallback | None) -> None:
        self.run.report = Report.of(callback)

    @property
    def watched(self) -> bool:
        """Whether a live view (the web page) watches this run's checkpoints: a stage may then checkpoint its
        working image more often."""
        return self.run.report.watching

    @property
    def log(self) -> logging.Logger | logging.LoggerAdapter:
        """The step's logger (``artfx.stages.<name>``). In a job of several pictures, a warning already said
        for one of them is not said again."""
        logger = logging.getLogger(f"artfx.stages.{self.stage or 'stage'}")
        return logger if self.run.said is None else _OncePerJob(logger, self.run.said)

    @property
    def label(self) -> str:
        """"<step number>:<stage name>", as progress reports name the step."""
        return f"{self.step + 1}:{self.stage}"

    def progress(self, done: float, total: float | None = None, **metrics: Any) -> None:
        """Report progress. Also where a cancelled run stops (raising :class:`artfx.errors.Cancelled`)."""
        if self.run.report.cancelled:
            from artfx.errors import Cancelled

            raise Cancelled("cancelled")
        self.run.report.progress(self.label, done, total, metrics)

    # ---- files and side outputs --------------------------------------------------------------------------
    def emit(self, key: str, value: Any) -> None:
        self.run.outputs[key] = value

    def get(self, key: str, default: Any = None) -> Any:
        return self.run.outputs.get(key, default)

    def read_image(self, path: str | Path) -> Any:
        """An image file a step reads, as an :class:`artfx.io.Picture` (``.rgb``, ``.alpha``), read once per
        run through artfx's own reader, with the run's decompression-bomb setting."""
        key = Path(path).expanduser().resolve()
        picture = self.run._reads.get(key)
        if picture is None:
            from artfx.io import read_image

            picture = self.run._reads[key] = read_image(Path(path).expanduser(), allow_huge=self.run.allow_huge)
        return picture

    def save(self, path: str | Path, data: bytes | str | Callable[[Path], None]) -> Path:
        """Write a side-output file atomically. ``data`` is bytes, text, or a function that writes a given
        temporary path (for encoders that want a filename). Refuses to overwrite an input unless forced."""
        from artfx.io.files import atomic_write

        written = atomic_write(Path(path), data, protected=self.run.protected, force=self.run.force)
        self.run.report.saved(written)
        return written

    def checkpoint(self, image: Image) -> None:
        """Record the best image so far of this step (kept if the run is interrupted, shown by live views)."""
        self.run.best = image
        if self.run.report.watching:
            self.run.report.image(self.label, image)

    @property
    def best(self) -> Image | None:
        """The latest checkpoint of this run."""
        return self.run.best
