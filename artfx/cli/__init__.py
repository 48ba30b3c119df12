"""The artfx command line: the only place that turns errors into exit codes and messages, and draws progress.

    artfx pipeline quantize:k=8,slic,style photo.jpg -o art.png
    artfx quantize photo.jpg -k 8 -o out.png        (one command per registered stage, options from its Params)
    artfx stages / artfx stages show NAME / artfx info / artfx replay art.png -o again.png

Exit codes: 0 ok, 1 runtime failure, 2 usage error, 130 interrupted. One line on stderr per error; a traceback
only with --debug. Importing this package stays cheap (no torch): stage modules import heavy code lazily, and only
the stage a command names is imported (all of them only to list them in the top-level help).
"""

from __future__ import annotations

import errno
import os
import signal
import sys
import threading
from typing import Any

import typer

from artfx import __version__, registry
from artfx.cli import commands, serve, show, sweep
from artfx.cli.params import Command, Group
from artfx.cli.view import console, error_line, setup_logging
from artfx.errors import OUT_OF_MEMORY, ArtfxError, Interrupted, PipeClosed

HELP = ("Turn photographs into artwork: stages chained into pipelines.\n\n"
        "Example: artfx pipeline quantize:k=8,slic,style photo.jpg -o art.png")
BUILTIN_COMMANDS = {"pipeline", "stages", "info", "replay", "serve", "sweep"}


def _root(version: bool = typer.Option(False, "--version", help="Print the version and exit.", metavar="",
                                       is_eager=True)) -> None:
    if version:
        typer.echo(f"artfx {__version__}")
        raise typer.Exit(0)


def _command_name(argv: list[str]) -> str | None:
    """The first argument that is not an option: the command asked for."""
    return next((a for a in argv if not a.startswith("-")), None)


def build_app(argv: list[str]) -> typer.Typer:
    """The typer application for these arguments. Stage commands are added for the stage named (or for every
    stage when the top-level help lists them), so running one built-in stage never imports a plugin."""
    app = typer.Typer(name="artfx", help=HELP, add_completion=False, no_args_is_help=True, cls=Group,
                      pretty_exceptions_enable=False, context_settings={"help_option_names": ["-h", "--help"]})
    app.callback(invoke_without_command=True)(_root)
    stages_app = typer.Typer(help="List the installed stages, or show one's parameters.", cls=Group,
                             invoke_without_command=True, pretty_exceptions_enable=False)
    stages_app.callback()(show.stages_list)
    stages_app.command("show", cls=Command)(show.stages_show)
    app.add_typer(stages_app, name="stages")
    app.command("pipeline", help=commands.PIPELINE_HELP, no_args_is_help=True, cls=Command)(
        commands.pipeline_command())
    app.command("info", cls=Command)(show.info)
    app.command("replay", no_args_is_help=True, cls=Command)(commands.replay)
    app.command("serve", cls=Command)(serve.serve)  # the web framework is imported only when it runs
    app.command("sweep", help=sweep.SWEEP_HELP, no_args_is_help=True, cls=Command)(sweep.sweep_command())

    wanted = _command_name(argv)
    if wanted in BUILTIN_COMMANDS or (wanted is None and "--version" in argv):
        names: list[str] = []
    elif wanted in registry.names():
        names = [wanted]
    else:  # the top-level help, or an unknown command: list every stage
        names = registry.names()
    for name in names:
        entry = registry.entry(name)
        stage = registry.try_load(entry) if entry and not entry.ambiguous else None
        if stage is None:
            continue  # reported by 'artfx stages'; using it in a pipeline gives the load error
        app.command(name, help=f"{stage.summary} (stage '{name}' from {entry.dist})",
                    no_args_is_help=True, cls=Command)(commands.stage_command(stage))
    return app


def _is_click_error(exc: BaseException) -> bool:
    """Click's own exceptions (typer vendors click privately, so they are told by their shape)."""
    return hasattr(exc, "exit_code") and hasattr(exc, "format_message") and not isinstance(exc, ArtfxError)


class Terminated(KeyboardInterrupt):
    """SIGTERM, handled like Ctrl-C (the best image so far kept, temporary files removed), exit 143."""


_terminated = False


def _on_sigterm(signum: int, frame: Any) -> None:
    global _terminated
    _terminated = True
    raise Terminated()


def _quiet_stdout() -> None:
    """Point standard output at /dev/null, so that Python's own flush at exit cannot fail again (after a broken
    pipe or a full disk)."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, 1)
        os.close(devnull)
    except OSError:
        pass


def main(argv: list[str] | None = None) -> int:
    """Entry point: run the CLI, map every failure to one line on stderr and an exit code."""
    args = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in args
    flags = set(args[: args.index("--")] if "--" in args else args)
    setup_logging(bool({"-q", "--quiet"} & flags), bool({"-v", "--verbose"} & flags), debug)
    previous = None
    if threading.current_thread() is threading.main_thread():
        previous = signal.signal(signal.SIGTERM, _on_sigterm)
    try:
        code = _main(args, debug)
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
    try:
        if sys.stdout is not None:
            sys.stdout.flush()
    except BrokenPipeError:
        _quiet_stdout()
    except (OSError, ValueError):
        pass
    return code


def _main(args: list[str], debug: bool) -> int:
    try:
        command = typer.main.get_command(build_app(args))
        result = command.main(args=args, prog_name="artfx", standalone_mode=False)
        return result if isinstance(result, int) else 0
    except typer.Exit as exc:
        return exc.exit_code
    except typer.Abort:
        error_line("interrupted")
        return 130
    except PipeClosed:  # the reader went away (artfx ... -o - | head -c1): stop quietly, as Unix tools do
        _quiet_stdout()
        return PipeClosed.exit_code
    except ArtfxError as exc:
        if debug:
            console().print_exception()
        error_line(str(exc))
        return 143 if isinstance(exc, Interrupted) and _terminated else exc.exit_code
    except Terminated:
        error_line("terminated")
        return 143
    except KeyboardInterrupt:
        error_line("interrupted")
        return 130
    except MemoryError:
        error_line(OUT_OF_MEMORY)
        return 1
    except OSError as exc:
        if exc.errno == errno.ENAMETOOLONG:
            error_line(f"file name too long: {str(exc.filename)[:60]}...")
            return 2
        return _internal(exc, debug)
    except Exception as exc:
        if _is_click_error(exc):
            return _click_error(exc)
        return _internal(exc, debug)


def _internal(exc: BaseException, debug: bool) -> int:
    if debug:
        console().print_exception()
    error_line(f"internal error: {type(exc).__name__}: {exc}".splitlines()[0] +
               ("" if debug else " (run with --debug for the traceback; please report it)"))
    return 1


def _click_error(exc: Any) -> int:
    ctx = getattr(exc, "ctx", None)
    if type(exc).__name__ == "NoArgsIsHelpError":  # a command without its arguments: its help, as a usage error
        message = exc.format_message()  # typer's rich help has printed itself while building this message
        if message.strip():
            typer.echo(message)
        if ctx is None or ctx.parent is None:  # bare "artfx": the help is what was asked for
            return 0
        error_line(f"{ctx.command_path} needs arguments (its help is above)")
        return 2
    if type(exc).__name__ == "NoSuchOption" and getattr(exc, "possibilities", None):
        import difflib

        close = difflib.get_close_matches(exc.option_name, exc.possibilities, n=1, cutoff=0.6)
        if close:
            error_line(f"no such option: {exc.option_name}; did you mean {close[0]}? (see "
                       f"'{ctx.command_path if ctx else 'artfx'} --help')")
            return 2
    if ctx is not None or type(exc).__name__.endswith("UsageError") or exc.exit_code == 2:
        where = ctx.command_path if ctx else "artfx"
        error_line(f"{exc.format_message().rstrip('.')} (see '{where} --help')")
        return 2
    error_line(exc.format_message())
    return exc.exit_code


def run() -> None:
    sys.exit(main())
