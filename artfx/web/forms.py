"""What the page's forms are made of, and what a submitted form becomes: a validated Pipeline.

Every field of every stage's Params is described for the browser (type, range, default, description) from the
same pydantic fields as the command line's options (:mod:`artfx.describe`), so plugins appear here too.

What the browser sends is a list of steps ``{"stage", "params": {field: value}, "outputs": {field: suffix}}``.
The browser can never name a file on the server:

- values holding ``/`` or ``\\`` (or starting with ``~``) are refused before validation;
- a file is named by an upload token ``upload:<id>``, replaced here by the upload's path;
- side-output files (SVG, GIF, palette...) are never taken from the browser: it asks for one by suffix and the
  server puts it in the job's folder;
- after validation, every file a step will read (``input-file`` fields and the stage's ``reads()``) must lie in
  the session's uploads or in artfx's own data (the built-in styles); anything else is refused.

Errors are the command line's one-line messages (:func:`artfx.pipeline.build_params`), tied to the field.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from artfx import registry
from artfx.describe import bounds, choices, default_text, field_range, type_text, unwrap_optional
from artfx.errors import ArtfxError
from artfx.io.files import hidden_character
from artfx.stage import INPUT_FILE, OUTPUT_DIR, OUTPUT_FILE, LIST_SEPARATOR, field_kind

DATA_DIR = Path(__file__).resolve().parent.parent / "data"  # artfx's own files (the built-in styles)
UPLOAD_PREFIX = "upload:"

# Free-form text fields of the built-in stages that may also name a file. The contract has no mark for these
# (only pure file fields are marked input-file), so the page knows them by name; the server-side guard below
# does not depend on this table (it checks every file a step will read).
FILE_WORDS: dict[tuple[str, str], dict[str, Any]] = {
    ("quantize", "palette"): {"widget": "text-upload", "placeholder": "#rrggbb|#rrggbb, or upload an image"},
    ("style", "image"): {"widget": "styles"},
    ("style", "init"): {"widget": "text-upload", "words": ["content", "noise"]},
    ("style", "regions"): {"widget": "text-upload", "words": ["labels"], "multi": True},
}
_SUFFIX_RE = re.compile(r"(?<![\w.])\.([a-z0-9]{2,4})\b")


class FormError(ArtfxError):
    """Submitted steps that do not validate: one message per step at most, tied to a field where known."""

    exit_code = 2

    def __init__(self, errors: list[dict[str, Any]]):
        super().__init__(errors[0]["message"] if errors else "invalid form")
        self.errors = errors


@dataclass
class Upload:
    """A file the browser sent (or a built-in sample it chose): kept under the session's uploads folder."""

    id: str
    name: str  # the original file name, sanitised (what recipes and commands call it)
    path: Path
    width: int = 0
    height: int = 0


# ---- describing ----------------------------------------------------------------------------------------------
def output_suffixes(name: str, info: Any) -> list[str]:
    """The suffixes a side-output file field can take, from its description (".png (a swatch) or .gpl"), else
    from its name (svg, gif, json, mp4)."""
    found = [f".{s}" for s in _SUFFIX_RE.findall(info.description or "")]
    if not found and re.fullmatch(r"[a-z0-9]{2,4}", name):
        found = [f".{name}"]
    return list(dict.fromkeys(found)) or [".dat"]


def _number(value: Any) -> Any:
    return value if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def describe_field(stage: Any, name: str, info: Any) -> dict[str, Any]:
    """One field as the page draws it."""
    ann = unwrap_optional(info.annotation)
    out: dict[str, Any] = {"name": name, "label": name.replace("_", " "), "type": type_text(info),
                           "description": info.description or "", "range": field_range(info),
                           "default": default_text(info) if default_text(info) != "none" else ""}
    kind = field_kind(info)
    hint = FILE_WORDS.get((stage.name, name))
    if kind == OUTPUT_FILE:
        out.update(widget="output", suffixes=output_suffixes(name, info))
    elif kind == OUTPUT_DIR:
        out.update(widget="output", suffixes=[".zip"])
    elif kind == INPUT_FILE:
        out.update(widget="upload", multi=False)
    elif hint is not None:
        out.update(hint)
    elif ann is bool:
        out.update(widget="bool", default=default_text(info) == "true")
    elif choices(info):
        out.update(widget="choice", choices=[str(c) for c in choices(info)])
    elif ann in (int, float):
        lo, hi = bounds(info)
        out.update(widget="number", step="1" if ann is int else "any",
                   min=_number(lo[0]) if lo else None, max=_number(hi[0]) if hi else None)
    else:
        out.update(widget="text", list="list of" in out["type"])
    return out


def describe_stages() -> list[dict[str, Any]]:
    """Every installed stage that loads, with its fields; broken plugins are listed with their error."""
    stages = []
    for entry in registry.entries():
        if entry.ambiguous:
            continue
        stage = registry.try_load(entry)
        if stage is None:
            stages.append({"name": entry.name, "dist": entry.dist, "error": entry.error, "fields": []})
            continue
        fields = [describe_field(stage, n, i) for n, i in stage.Params.model_fields.items()]
        stages.append({"name": stage.name, "summary": stage.summary, "dist": entry.dist, "fields": fields})
    return stages


# ---- a submitted form -----------------------------------------------------------------------------------------
@dataclass
class Prepared:
    """A submitted form, validated: the pipeline to run and how the page and the recipe show it."""

    pipeline: Any
    outputs: list[tuple[int, str, Path, str]]  # (step index, field, server path, download name)
    names: dict[str, str] = field(default_factory=dict)  # server path -> the name users see
    spec: str = ""
    steps: list[tuple[str, dict[str, Any]]] = field(default_factory=list)  # shown as TOML


def _field_of(message: str, stage: str, keys: list[str]) -> str | None:
    """The field a build_params message is about (its text names it), or None."""
    for key in keys:
        if message.startswith(f"{stage}: {key}=") or f"unknown parameter {key!r}" in message \
                or message.endswith(f"(parameter {key})") or message.startswith(f"{stage}: {key} "):
            return key
    return None


def _screen(value: Any) -> str | None:
    """Why a value from the browser is refused (it names a file path), or None."""
    if not isinstance(value, str):
        return None
    for item in value.split(LIST_SEPARATOR):
        item = item.strip()
        if "/" in item or "\\" in item or item.startswith("~") or item in (".", ".."):
            return "the page takes no file paths on the server; upload the file instead"
    return None


def _to_value(value: Any, uploads: dict[str, Upload], names: dict[str, str]) -> Any:
    """Upload tokens replaced by their paths (remembering the names users know them by)."""
    if not isinstance(value, str) or UPLOAD_PREFIX not in value:
        return value
    items = []
    for item in value.split(LIST_SEPARATOR):
        item = item.strip()
        if item.startswith(UPLOAD_PREFIX):
            up = uploads.get(item[len(UPLOAD_PREFIX):])
            if up is None:
                raise ValueError("that upload is gone; upload the file again")
            names[str(up.path)] = up.name
            item = str(up.path)
        items.append(item)
    return LIST_SEPARATOR.join(items)


def _reads(step: Any) -> list[Path]:
    """Every file one step reads (its parameter files and its stage's ``reads`` hook), as a pipeline says."""
    from artfx.pipeline import Pipeline

    return Pipeline([step]).reads()


def _step_files(step: Any) -> list[tuple[str, str, Any, str]]:
    found = []
    for name, info in type(step.params).model_fields.items():
        value = getattr(step.params, name)
        kind = field_kind(info)
        if kind and value not in (None, ""):
            for item in value if isinstance(value, (list, tuple)) else [value]:
                found.append((step.name, name, item, kind))
    return found


def _inside(path: Path, roots: list[Path]) -> bool:
    try:
        real = path.expanduser().resolve()
    except OSError:
        return False
    return any(real == r or r in real.parents for r in roots)


def download_names(steps: list[dict[str, Any]], stem: str) -> dict[tuple[int, str], str]:
    """The name each asked-for side output downloads as: ``<stem>-<field><suffix>`` (step number added when
    two steps ask for the same field)."""
    wanted = [(i, f, s) for i, st in enumerate(steps) for f, s in (st.get("outputs") or {}).items() if s]
    count: dict[str, int] = {}
    for _, f, _ in wanted:
        count[f] = count.get(f, 0) + 1
    return {(i, f): f"{stem}-{'' if count[f] == 1 else f'{i + 1}-'}{f.replace('_', '-')}{s}" for i, f, s in wanted}


def prepare(steps: Any, uploads: dict[str, Upload], upload_root: Path, out_dir: Path | None,
            stem: str = "photo") -> Prepared:
    """Validate submitted steps into a pipeline; FormError lists every step's first problem. ``out_dir`` is
    where asked-for side outputs go (None: only checking, nothing will be written)."""
    from artfx.pipeline import Pipeline, Step, build_params

    if not isinstance(steps, list) or not steps:
        raise FormError([{"step": None, "field": None, "message": "add at least one step"}])
    errors: list[dict[str, Any]] = []
    built: list[Any] = []
    names: dict[str, str] = {}
    outputs: list[tuple[int, str, Path, str]] = []
    downloads = download_names([s if isinstance(s, dict) else {} for s in steps], stem)
    roots = [upload_root.resolve(), DATA_DIR.resolve()]
    for index, item in enumerate(steps):
        def fail(message: str, fld: str | None = None) -> None:
            errors.append({"step": index, "field": fld, "message": message})

        if not isinstance(item, dict) or not isinstance(item.get("stage"), str):
            fail(f"step {index + 1}: no stage")
            continue
        try:
            stage = registry.load(item["stage"])
        except ArtfxError as exc:
            fail(str(exc))
            continue
        fields = stage.Params.model_fields
        raw = dict(item.get("params") or {})
        raw = {k: v for k, v in raw.items() if not (isinstance(v, str) and v.strip() == "")}  # blank: default
        bad = False
        for key, value in raw.items():
            info = fields.get(key)
            if info is not None and field_kind(info) in (OUTPUT_FILE, OUTPUT_DIR):
                fail(f"{stage.name}: {key}: side-output files are chosen by the page, not named", key)
                bad = True
                break
            why = _screen(value)
            if why:
                fail(f"{stage.name}: {key}: {why}", key)
                bad = True
                break
            try:
                raw[key] = _to_value(value, uploads, names)
            except ValueError as exc:
                fail(f"{stage.name}: {key}: {exc}", key)
                bad = True
                break
        if bad:
            continue
        for key, suffix in (item.get("outputs") or {}).items():
            info = fields.get(key)
            if not suffix:
                continue
            if info is None or field_kind(info) not in (OUTPUT_FILE, OUTPUT_DIR):
                fail(f"{stage.name}: {key} is not a side output", key)
                bad = True
                break
            allowed = [".zip"] if field_kind(info) == OUTPUT_DIR else output_suffixes(key, info)
            if suffix not in allowed:
                fail(f"{stage.name}: {key}: choose {' or '.join(allowed)}", key)
                bad = True
                break
            name = downloads[(index, key)]
            target = (out_dir or Path(".")) / (name[: -len(".zip")] if suffix == ".zip" else name)
            raw[key] = str(target)
            names[str(target)] = target.name  # a folder is shown as one (frames=photo-frames), served zipped
            outputs.append((index, key, target, name))
        if bad:
            continue
        try:
            params = build_params(stage, raw)
        except ArtfxError as exc:
            message = str(exc)
            fail(message, _field_of(message, stage.name, list(raw)))
            continue
        step = Step(stage, params)
        outside = [p for p in _reads(step) if not _inside(p, roots)]
        if outside:
            shown = str(outside[0])
            key = next((k for k, v in raw.items() if isinstance(v, str) and shown in v.split(LIST_SEPARATOR)), None)
            fail(f"{stage.name}: {key or 'a parameter'} names a file the page did not upload ({Path(shown).name}); "
                 "upload it", key)
            continue
        built.append(step)
    if errors:
        raise FormError(errors)
    pipeline = Pipeline(built)
    shown = [(name, _shown(params, names)) for name, params in pipeline.raw(only_set=True)]
    return Prepared(pipeline, outputs, names, format_shown(shown), shown)


def _shown(params: dict[str, Any], names: dict[str, str], keep_none: bool = False) -> dict[str, Any]:
    """Parameters with server paths replaced by the names users know (upload names, download names)."""
    def one(v: Any) -> Any:
        if isinstance(v, str):
            return LIST_SEPARATOR.join(names.get(p, p) for p in v.split(LIST_SEPARATOR)) if v else v
        if isinstance(v, list):
            return [one(x) for x in v]
        return v

    return {k: one(v) for k, v in params.items() if keep_none or v is not None}


def _spec_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (list, tuple)):
        return LIST_SEPARATOR.join(_spec_value(v) for v in value)
    return str(value)


def format_shown(steps: list[tuple[str, dict[str, Any]]]) -> str:
    from artfx.spec import StepSpec, format_spec

    return format_spec([StepSpec(n, tuple((k, _spec_value(v)) for k, v in p.items())) for n, p in steps])


def command_line(spec: str, input_name: str, output_name: str, run: dict[str, Any]) -> str:
    """The ``artfx pipeline ...`` command that makes the same picture (file names that start with ``-``, such as
    an upload called ``-o.png``, as ``./-o.png``, so that they are not read as options)."""
    parts = ["artfx", "pipeline", shell_word(spec), shell_name(input_name), "-o", shell_name(output_name)]
    for key, value in run.items():
        if value is not None:
            parts += [f"--{key.replace('_', '-')}", shell_word(str(value))]
    return " ".join(parts)


def shell_name(name: str) -> str:
    """A file name as one shell word that no command reads as an option."""
    return shell_word(f"./{name}" if name.startswith("-") else name)


def shell_word(text: str) -> str:
    """One shell word, with nothing hidden in it: a value holding control or formatting characters (a
    right-to-left override typed into a field) is written in bash's $'...' form, \\u202e and all."""
    if not any(hidden_character(ch) for ch in text):
        return shlex.quote(text)
    out = []
    for ch in text:
        if ch in "\\'":
            out.append("\\" + ch)
        elif hidden_character(ch):
            out.append(f"\\x{ord(ch):02x}" if ord(ch) < 0x80 else f"\\u{ord(ch):04x}" if ord(ch) <= 0xFFFF
                       else f"\\U{ord(ch):08x}")
        else:
            out.append(ch)
    return "$'" + "".join(out) + "'"


def recipe_for_users(recipe: dict[str, Any], prepared: Prepared) -> dict[str, Any]:
    """A recipe naming files as users know them (upload and download names), never the session's folders."""
    out = dict(recipe)
    out["pipeline"] = [{"stage": s["stage"], "params": _shown(s["params"], prepared.names, True)}
                       for s in recipe.get("pipeline", [])]
    out["spec"] = prepared.spec
    return out
