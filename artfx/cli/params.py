"""Command-line options generated from pydantic fields: a stage's Params and the run options alike, so that
names, types, ranges, defaults and help are written once."""

from __future__ import annotations

import inspect
import typing
from typing import Any, Callable, Optional

import typer
import typer.core
from rich.markup import escape

from artfx.describe import choices, help_text, type_text, unwrap_optional
from artfx.options import RunOptions
from artfx.stage import INPUT_FILE, OUTPUT_DIR, OUTPUT_FILE

RESERVED_SHORT = {"-h", "-o", "-q", "-v", "-c", "-i"}  # taken by shared options

Spec = tuple[str, Any, Any]  # (python name, annotation, typer.Option/Argument)


def make_command(params: list[Spec], body: Callable[[dict[str, Any]], None], doc: str) -> Callable:
    """A function typer can read, with the given (name, annotation, typer.Option/Argument) parameters."""

    def command(**kwargs: Any) -> None:
        body(kwargs)

    command.__signature__ = inspect.Signature(  # type: ignore[attr-defined]
        [inspect.Parameter(n, inspect.Parameter.KEYWORD_ONLY, default=d, annotation=a) for n, a, d in params]
    )
    command.__annotations__ = {n: a for n, a, _ in params}
    command.__doc__ = doc
    return command


def short_flag(name: str) -> str | None:
    """``-k`` for a one-letter field, unless a shared option has it."""
    return f"-{name}" if len(name) == 1 and f"-{name}" not in RESERVED_SHORT else None


def metavar_of(info: Any) -> str:
    """One placeholder style for every option: ``<int>``, ``<float>``, ``<text>``, ``<file>``, ``<a|b>``,
    ``<list: a|b>``; nothing for switches."""
    extra = info.json_schema_extra if isinstance(info.json_schema_extra, dict) else {}
    if extra.get("metavar"):
        return f"<{extra['metavar']}>"
    ann = unwrap_optional(info.annotation)
    if ann is bool:
        return ""
    if choices(info):
        return f"<{type_text(info)}>"
    if typing.get_origin(ann) in (list, tuple):
        return "<a|b|...>"
    if extra.get("artfx") in (INPUT_FILE, OUTPUT_FILE):
        return "<file>"
    if extra.get("artfx") == OUTPUT_DIR:
        return "<dir>"
    return {int: "<int>", float: "<float>"}.get(ann, "<text>")


def field_option(name: str, info: Any, flag: str | None = None, switch: bool = False) -> tuple[Any, Any]:
    """(annotation, typer.Option) for a field; every default is None so that "not given" can be told apart.
    A one-letter field is only its short option (``-k``) unless a shared option has that letter (then ``--v``).
    Booleans become ``--x/--no-x`` pairs, or a lone ``--x`` when ``switch``."""
    ann = unwrap_optional(info.annotation)
    flag = flag or name.replace("_", "-")
    decls = [short_flag(name) or f"--{flag}"] if len(name) == 1 and flag == name else [f"--{flag}"]
    if ann is bool:
        decls = [f"--{flag}"] if switch else [f"--{flag}/--no-{flag}"]
        typ: Any = bool if switch else Optional[bool]
    elif ann in (int, float):
        typ = Optional[ann]
    else:
        typ = Optional[str]
    default = False if switch else None
    return typ, typer.Option(default, *decls, help=escape(help_text(info)), metavar=metavar_of(info),
                             show_default=False)


def run_option_specs() -> list[Spec]:
    """The shared options of every command that runs stages: output, the run options, verbosity."""
    specs: list[Spec] = [("output", Optional[str], typer.Option(
        None, "-o", "--output", metavar="<file|dir|->", help="Output image (its format follows the suffix; PNG "
        "keeps the recipe), a directory for several inputs, or - for standard output."))]
    for name, info in RunOptions.model_fields.items():
        switch = unwrap_optional(info.annotation) is bool and info.default is not None  # None: --x/--no-x
        typ, option = field_option(name, info, switch=switch)
        specs.append((name, typ, option))
    specs += [
        *verbosity_specs(),
    ]
    return specs


def verbosity_specs() -> list[Spec]:
    return [
        ("quiet", bool, typer.Option(False, "--quiet", "-q", metavar="", help="Only errors on stderr; no progress "
                                     "bars.")),
        ("verbose", bool, typer.Option(False, "--verbose", "-v", metavar="", help="More messages.")),
        ("debug", bool, typer.Option(False, "--debug", metavar="", help="Debug messages and full tracebacks.")),
    ]


class Command(typer.core.TyperCommand):
    """Typer's command, with no type placeholder after switches, --help or list arguments."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        for param in self.params:
            if getattr(param, "is_flag", False) or param.param_type_name == "argument":
                param.display_type_rich = _no_type  # type: ignore[method-assign]

    def get_help_option(self, ctx: Any) -> Any:
        option = super().get_help_option(ctx)
        if option is not None:
            option.display_type_rich = _no_type
        return option


class Group(typer.core.TyperGroup):
    def get_help_option(self, ctx: Any) -> Any:
        option = super().get_help_option(ctx)
        if option is not None:
            option.display_type_rich = _no_type
        return option


def _no_type(ctx: Any = None) -> None:
    return None


RUN_NAMES = {"output", "quiet", "verbose", "debug", *RunOptions.model_fields}


def stage_option_specs(stage: Any) -> list[tuple[str, Any, Any, str]]:
    """(python name, annotation, typer option, Params field) for every field of a stage's Params; a field named
    like a shared option becomes ``--<stage>-<field>``."""
    out = []
    for name in stage.Params.model_fields:
        info = stage.Params.model_fields[name]
        pname, flag = name, None
        if name in RUN_NAMES or name == "inputs":
            pname, flag = f"{stage.name}_{name}", f"{stage.name}-{name.replace('_', '-')}"
        typ, option = field_option(name, info, flag)
        out.append((pname, typ, option, name))
    for old, new in getattr(stage.Params, "aliases", {}).items():  # old names still work, hidden from the help
        typ, _ = field_option(new, stage.Params.model_fields[new], flag=new.replace("_", "-"))
        flag = old.replace("_", "-")
        out.append((f"old_{old}", typ, typer.Option(None, f"--{flag}", hidden=True), old))
    return out


def is_literal(info: Any) -> bool:
    return typing.get_origin(unwrap_optional(info.annotation)) is typing.Literal
