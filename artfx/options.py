"""Run options, defined once: the command line's shared options, the TOML ``[run]`` table and the keywords of
``artfx.run`` all come from :class:`RunOptions` (names, types, defaults, ranges, help and validation)."""

from __future__ import annotations

from typing import Literal, Optional, Union

from pydantic import Field, ValidationError, field_validator

from artfx.devices import DEVICES, check_device
from artfx.errors import UsageError
from artfx.stage import Params

__all__ = ["DEVICES", "RunOptions"]


class RunOptions(Params):
    """How a pipeline runs, as opposed to what it does (that is the steps' parameters).

    Fields marked ``look`` belong to the result (they are stored in recipes and may be set in a TOML ``[run]``
    table); the others are safety switches given per command."""

    seed: int = Field(0, ge=0, description="Seed for every random choice; same seed, same picture.",
                      json_schema_extra={"look": True})
    device: str = Field("auto", description="Where neural stages run; auto picks CUDA, then Apple MPS, then the "
                        "CPU (cuda:N for another GPU).", json_schema_extra={"look": True, "metavar": "auto|cpu|cuda|mps"})
    max_size: Optional[int] = Field(None, ge=1, le=1_000_000,
                                    description="Shrink inputs so that the long side is at most this many px.",
                                    json_schema_extra={"look": True})
    depth: Literal[8, 16] = Field(8, description="Bits per channel of the output: 8, or 16 for PNG/TIFF.",
                                  json_schema_extra={"look": True})
    temporal: Literal["on", "off"] = Field(
        "on", description="Videos: each step carries its result from frame to frame along the optical flow (on), "
        "or every frame runs on its own (off).", json_schema_extra={"look": True})
    fps: Optional[float] = Field(None, ge=0.1, le=1000, description="Frame rate of a video or GIF output (default: "
                                 "the input's; 10 for photos).", json_schema_extra={"look": True})
    start: Optional[Union[float, str]] = Field(
        None, description="Videos and GIFs: begin this far in, as seconds (12.5) or [hh:]mm:ss[.s] (1:02.5); the "
        "sound is cut to match.", json_schema_extra={"look": True, "metavar": "seconds|mm:ss"})
    duration: Optional[Union[float, str]] = Field(
        None, description="Videos and GIFs: take only this long from --start on, as seconds or [hh:]mm:ss[.s].",
        json_schema_extra={"look": True, "metavar": "seconds|mm:ss"})
    fit: Literal["crop", "pad", "stretch"] = Field(
        "crop", description="Photos of other sizes in a sequence: scaled to cover the first's frame and centred "
        "(crop), scaled to fit inside it with black bars (pad), or stretched.", json_schema_extra={"look": True})
    quality: Optional[int] = Field(None, ge=1, le=100, description="Quality of lossy outputs, 1-100: JPEG "
                                   "(default 95), WebP (default 90; 100 is lossless), video (default 80: H.264 CRF "
                                   "19, VP9 CRF 24).")
    work_dir: Optional[str] = Field(None, description="Where a video's finished frames wait (default: "
                                    ".NAME.artfx-work beside the output); the same command continues from there.")
    executor: Literal["local", "ray"] = Field(
        "local", description="Where the work runs: in this process (local), or spread over the workers of a Ray "
        "cluster (ray: a batch's files, a sweep's cells, a video's chunks; pip install 'artfx[ray]').")
    ray_address: Optional[str] = Field(
        None, description="With --executor ray: the cluster to use. Default: start a Ray instance on this machine; "
        "auto: the cluster this machine belongs to; host:port or ray://host:port: a remote one.",
        json_schema_extra={"metavar": "host:port|auto|ray://host:port"})
    resume: Optional[bool] = Field(
        None, description="Batches: skip outputs an earlier run finished. Default: those made by the same recipe "
        "(with a message); --resume: every output already there; --no-resume: make them all again.")
    force: bool = Field(False, description="Allow overwriting an input file.")
    allow_huge: bool = Field(False, description="Lift the decompression-bomb guard and the memory estimate's "
                             "limit.")
    record_path: bool = Field(False, description="Store the input's full path in the recipe (by default only its "
                              "file name and hash, so a shared PNG does not tell your folder names).")

    @field_validator("device")
    @classmethod
    def _device(cls, v: str) -> str:
        return check_device(v)

    @field_validator("start", "duration", mode="before")
    @classmethod
    def _time(cls, v: object, info) -> Optional[float]:
        if v is None:
            return None
        seconds = parse_time(v)
        if info.field_name == "duration" and seconds <= 0:
            raise ValueError("a time above 0 (seconds, or mm:ss)")
        return seconds

    @classmethod
    def look_fields(cls) -> list[str]:
        return [n for n, f in cls.model_fields.items() if (f.json_schema_extra or {}).get("look")]

    @classmethod
    def build(cls, where: str = "", **values: object) -> "RunOptions":
        """Validated options, or a one-line UsageError naming the option (``where``: "--", "[run] " or "")."""
        values = {k: v for k, v in values.items() if v is not None}
        unknown = [k for k in values if k not in cls.model_fields]
        if unknown:
            raise UsageError(f"unknown run option {where}{unknown[0]}; allowed: {', '.join(cls.model_fields)}")
        try:
            return cls(**values)
        except ValidationError as exc:
            err = exc.errors()[0]
            name = str(err["loc"][0]) if err.get("loc") else "?"
            flag = f"{where}{name.replace('_', '-') if where == '--' else name}"
            raise UsageError(f"{flag} {_problem(err)}, not {values.get(name)!r}") from None


def parse_time(value: object) -> float:
    """Seconds from ``12.5``, ``"12.5"``, ``"1:02.5"`` (mm:ss) or ``"1:02:03"`` (hh:mm:ss); ValueError (naming
    the forms) for anything else, negative times included."""
    text = str(value).strip()
    parts = text.split(":")
    try:
        if isinstance(value, bool) or not text or len(parts) > 3 or any(not p.strip() for p in parts):
            raise ValueError
        numbers = [float(p) for p in parts]
        if any(n < 0 or n != n or n in (float("inf"), float("-inf")) for n in numbers) or \
                any(n >= 60 for n in numbers[1:]) or any("e" in p.lower() for p in parts[1:]):
            raise ValueError
    except ValueError:
        raise ValueError("a time in seconds (12.5) or [hh:]mm:ss (1:02.5)") from None
    seconds = 0.0
    for n in numbers:
        seconds = seconds * 60 + n
    return seconds


_BOUNDS = {"greater_than_equal": ("ge", "at least"), "less_than_equal": ("le", "at most"),
           "greater_than": ("gt", "more than"), "less_than": ("lt", "less than")}


def _problem(err: dict) -> str:
    """A pydantic error as "must be ..." words."""
    kind, ctx = err.get("type", ""), err.get("ctx") or {}
    if kind in _BOUNDS:
        key, words = _BOUNDS[kind]
        return f"must be {words} {ctx.get(key)}"
    if kind == "literal_error":
        return f"must be {ctx.get('expected', 'one of the allowed values')}"
    if kind.startswith("int"):
        return "must be a whole number"
    return "must be " + err.get("msg", "valid").removeprefix("Value error, ").removeprefix("Input should be ")
