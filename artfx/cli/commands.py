"""The commands that run stages: ``pipeline``, one command per stage, and ``replay``. They parse, call the
Python front door (:func:`artfx.api.run`, :func:`artfx.api.replay`) and print; all the running is done there."""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import Any, Optional

import typer

from artfx.cli.params import make_command, run_option_specs, stage_option_specs
from artfx.cli.view import ProgressView, error_line, say
from artfx.errors import ArtfxError, UsageError
from artfx.options import RunOptions
from artfx.stage import Report

log = logging.getLogger("artfx")


def run_options(kw: dict[str, Any], settings: dict[str, Any] | None = None) -> RunOptions:
    """The run options: the command line's where given, else the TOML ``[run]`` table's, else the defaults."""
    values = dict(settings or {})
    values.update({k: kw[k] for k in RunOptions.model_fields if kw.get(k) is not None
                   and (kw.get(k) is not False or RunOptions.model_fields[k].default is None)})  # --no-x
    return RunOptions.build(where="--", **values)


class CommandReport(Report):
    """What a command shows as a job goes: progress bars (:class:`ProgressView`), a "wrote" line per file
    written (unless --quiet), and a line per input that failed in a batch."""

    def __init__(self, view: ProgressView, quiet: bool):
        self.view, self.quiet = view, quiet

    def progress(self, label: str, done: float, total: float | None, metrics: dict) -> None:
        self.view(label, done, total, metrics)

    def saved(self, path: Path) -> None:
        if not self.quiet:
            say(f"wrote {path}")

    def file(self, src: Path, dest: Path, error: Exception | None) -> None:
        if error is not None:
            message = str(error)
            error_line(message if message.startswith(str(src)) else f"{src}: {message}")
        elif not self.quiet and str(dest) != "-":
            say(f"wrote {dest}")


def given_options(opts: RunOptions) -> dict[str, Any]:
    """The options as keywords for the front door (:func:`artfx.api.run`)."""
    return {k: getattr(opts, k) for k in RunOptions.model_fields}


def execute(pipeline: Any, inputs: list[str], kw: dict[str, Any], settings: dict[str, Any] | None = None) -> None:
    """Run a pipeline as the shared options say, printing what was written and what failed."""
    from artfx.api import run

    opts = run_options(kw, settings)
    output = kw["output"]
    if output == "-" and sys.stdout is not None and sys.stdout.isatty():
        raise UsageError("refusing to write a PNG to the terminal; redirect standard output or use -o FILE")
    if not inputs:
        raise UsageError("no input image given")
    if not output:
        raise UsageError("no output given; add -o OUT (a file, a directory for several inputs, or -)")
    with ProgressView(not kw["quiet"]) as view:
        run(pipeline, inputs, output=output, progress=CommandReport(view, kw["quiet"]), **given_options(opts))


# ---- pipeline ------------------------------------------------------------------------------------------------
def pipeline_body(kw: dict[str, Any]) -> None:
    from artfx.config import dump_config, load_config
    from artfx.pipeline import Pipeline

    args = list(kw["args"] or [])
    settings: dict[str, Any] = {}
    if kw["config"]:
        settings, raw = load_config(kw["config"])
        pipeline = Pipeline.from_raw(raw, kw["set"] or [])
        inputs = args
        for item in inputs:
            if item != "-" and not Path(item).exists() and _names_stages(item):
                raise UsageError(f"{item!r} is not an input file: with -c the steps come from {kw['config']}, "
                                 "so give only inputs (or drop -c and give the steps inline)")
    else:
        if not args:
            raise UsageError("missing pipeline spec, e.g. artfx pipeline quantize:k=8,slic photo.jpg -o art.png")
        if Path(args[0]).is_file() and not _names_stages(args[0]):
            raise UsageError(f"{args[0]!r} is a file, not a pipeline spec; give the steps first, e.g. "
                             f"artfx pipeline quantize:k=8 {args[0]} -o art.png (or -c look.toml)")
        pipeline = Pipeline.from_spec(args[0], kw["set"] or [])
        inputs = args[1:]
    if kw["dump_config"]:
        opts = run_options(kw, settings)
        given = set(settings) | {k for k in RunOptions.look_fields() if kw.get(k) is not None}  # all written
        run = {k: getattr(opts, k) for k in RunOptions.look_fields() if k in given}
        sys.stdout.write(dump_config(run, pipeline.raw(only_set=True)))
        return
    execute(pipeline, inputs, kw, settings)


def _names_stages(text: str) -> bool:
    """Whether ``text`` reads as a pipeline spec whose steps are installed stages."""
    from artfx import registry
    from artfx.spec import parse_spec

    try:
        return all(step.name in registry.names() for step in parse_spec(text))
    except ArtfxError:
        return False


PIPELINE_HELP = ("Run stages in sequence: artfx pipeline SPEC INPUT... -o OUT, or artfx pipeline -c look.toml "
                 "INPUT... -o OUT. SPEC: steps separated by ',', parameters by ':' "
                 "(quantize:k=8,slic:n=400,style:image=starry-night).")


def pipeline_command():
    return make_command(
        [
            ("args", Optional[list[str]], typer.Argument(None, metavar="[SPEC] INPUT...",
                                                          help="The pipeline spec (unless -c), then inputs.")),
            ("config", Optional[str], typer.Option(None, "-c", "--config", metavar="<file.toml>",
                                                   help="A TOML pipeline file (instead of SPEC).")),
            ("set", Optional[list[str]], typer.Option(None, "--set", metavar="<step.param=value>",
                                                      help="Override a parameter (step: stage name or number).")),
            ("dump_config", bool, typer.Option(False, "--dump-config", metavar="",
                                               help="Print the pipeline as TOML and exit.")),
            *run_option_specs(),
        ],
        pipeline_body,
        "Run a pipeline.",
    )


# ---- one command per stage -----------------------------------------------------------------------------------
def stage_command(stage: Any):
    options = stage_option_specs(stage)

    def body(kw: dict[str, Any]) -> None:
        from artfx.pipeline import Pipeline

        values = {field: kw[pname] for pname, _, _, field in options if kw[pname] is not None}
        execute(Pipeline.from_raw([(stage.name, values)]), list(kw["inputs"] or []), kw)

    params = [("inputs", Optional[list[str]], typer.Argument(None, metavar="INPUT...", help="Image files, "
                                                             "directories, or - for stdin."))]
    params += [(p, t, o) for p, t, o, _ in options] + run_option_specs()
    return make_command(params, body, stage.summary)


# ---- replay --------------------------------------------------------------------------------------------------
def replay(
    image: str = typer.Argument(..., metavar="IMAGE", help="A PNG written by artfx (it carries its recipe)."),
    output: str = typer.Option(..., "-o", "--output", metavar="<file|->", help="Where to write the reproduced "
                               "image."),
    input_: Optional[str] = typer.Option(None, "--input", "-i", metavar="<file>",
                                         help="Use this input instead of the recorded one."),
    device: Optional[str] = typer.Option(None, "--device", metavar="<auto|cpu|cuda|mps>",
                                         help="Run on this device instead of the recorded one."),
    yes: bool = typer.Option(False, "--yes", "-y", metavar="", help="Run without asking (a PNG's recipe can "
                             "name any file to read and any amount of work: check what replay shows first)."),
    force: bool = typer.Option(False, "--force", metavar="", help="Allow overwriting an input file."),
    allow_huge: bool = typer.Option(False, "--allow-huge", metavar="", help="Lift the decompression-bomb guard "
                                    "and the memory estimate's limit (for images made with it)."),
    quiet: bool = typer.Option(False, "--quiet", "-q", metavar="", help="Only errors on stderr; no progress bars."),
    verbose: bool = typer.Option(False, "--verbose", "-v", metavar="", help="More messages."),
    debug: bool = typer.Option(False, "--debug", metavar="", help="Debug messages and full tracebacks."),
) -> None:
    """Reproduce an artfx PNG from the recipe stored in it (same machine: bit for bit). Shows what it would run
    and asks first, unless --yes."""
    from artfx.api import replay as run_replay

    def confirm(lines: list[str]) -> bool:
        if not quiet or not yes:
            for line in lines:
                say(line)
        if yes:
            return True
        isatty = getattr(sys.stdin, "isatty", None)
        if not callable(isatty) or not isatty():
            raise UsageError("replay runs whatever the PNG's recipe says; check the above and pass --yes to run "
                             "it (standard input is not a terminal to ask on)")
        return typer.confirm("run it?", default=False, err=True)

    with ProgressView(not quiet) as view:
        run_replay(image, output, input=input_, device=device, force=force, allow_huge=allow_huge, confirm=confirm,
                   progress=CommandReport(view, quiet))
