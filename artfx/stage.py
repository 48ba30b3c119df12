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
    """

    model_config = ConfigDict(extra="forbid", validate_assignment=True, validate_default=True)

    @model_validator(mode="before")
    @classmethod
    def _split_lists(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        out = dict(data)
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
    """What every stage (built-in or plugin) provides."""

    name: str
    summary: str
    Params: ClassVar[type[BaseModel]] | type[BaseModel]

    def apply(self, image: Image, params: Any, ctx: "Context") -> Image: ...


ProgressCallback = Callable[[str, float, "float | None", dict], None]
"""on_progress(label, done, total, metrics); the label is "<step number>:<stage name>"."""


@dataclass
class Context:
    """Everything a stage may use besides its image and params.

    - ``seed``, ``rng`` (a numpy Generator for the current step), ``step_seed`` (an int for libraries that want
      one), ``torch_generator(device)``;
    - ``device`` as asked (auto|cpu|cuda|mps) and ``torch_device()``, resolved once;
    - ``progress(done, total, **metrics)`` and ``log`` (a logging.Logger);
    - side outputs: ``emit(key, value)`` and ``get(key)`` (the latest value any earlier step emitted);
    - ``save(path, data)`` writes a side-output file atomically, never over an input;
    - ``checkpoint(image)`` records the best image so far, written out if the run is interrupted.
    """

    seed: int = 0
    device: str = "auto"
    max_size: int | None = None
    on_progress: ProgressCallback | None = None
    protected: tuple[Path, ...] = ()
    force: bool = False
    outputs: dict[str, Any] = field(default_factory=dict)
    history: list[tuple[int, str, str]] = field(default_factory=list)
    saved: list[Path] = field(default_factory=list)
    step: int = 0
    stage: str = ""
    best: Image | None = None
    _rng: np.random.Generator | None = field(default=None, repr=False)
    _torch_device: Any = field(default=None, repr=False)

    # ---- steps -------------------------------------------------------------------------------------------
    def begin_step(self, index: int, stage: str) -> None:
        self.step, self.stage, self._rng, self.best = index, stage, None, None

    # ---- randomness --------------------------------------------------------------------------------------
    @property
    def step_seed(self) -> int:
        """A 32-bit seed that depends on the run's seed, the step index and the stage name only."""
        digest = hashlib.sha256(f"{self.seed}:{self.step}:{self.stage}".encode()).digest()
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

    # ---- device ------------------------------------------------------------------------------------------
    def torch_device(self) -> Any:
        """The torch device for ``device``: auto picks CUDA, then MPS, then the CPU. Resolved once."""
        if self._torch_device is None:
            from artfx.devices import resolve_torch_device

            self._torch_device = resolve_torch_device(self.device)
        return self._torch_device

    # ---- reporting ---------------------------------------------------------------------------------------
    @property
    def log(self) -> logging.Logger:
        return logging.getLogger(f"artfx.stages.{self.stage or 'stage'}")

    def progress(self, done: float, total: float | None = None, **metrics: Any) -> None:
        if self.on_progress is not None:
            self.on_progress(f"{self.step + 1}:{self.stage}", done, total, metrics)

    # ---- side outputs ------------------------------------------------------------------------------------
    def emit(self, key: str, value: Any) -> None:
        self.outputs[key] = value
        self.history.append((self.step, self.stage, key))

    def get(self, key: str, default: Any = None) -> Any:
        return self.outputs.get(key, default)

    def save(self, path: str | Path, data: bytes | str | Callable[[Path], None]) -> Path:
        """Write a side-output file atomically. ``data`` is bytes, text, or a function that writes a given
        temporary path (for encoders that want a filename). Refuses to overwrite an input unless forced."""
        from artfx.io import atomic_write

        path = Path(path)
        atomic_write(path, data, protected=self.protected, force=self.force)
        self.saved.append(path)
        return path

    def checkpoint(self, image: Image) -> None:
        """Record the best image so far of this step (kept if the run is interrupted)."""
        self.best = image
