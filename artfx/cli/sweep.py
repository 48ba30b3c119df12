"""``artfx sweep``: a pipeline over a grid of parameter values, as a captioned contact sheet."""

from __future__ import annotations

from typing import Any, Optional

import typer

from artfx.cli.params import make_command, run_option_specs
from artfx.cli.view import ProgressView, say
from artfx.errors import UsageError

SWEEP_HELP = ("Run a pipeline over a grid of parameter values and write a contact sheet: artfx sweep SPEC INPUT "
              "--vary style.style_weight=10,100,1000 [--vary ...] -o sheet.png.")


def sweep_body(kw: dict[str, Any]) -> None:
    from artfx.api import sweep
    from artfx.cli.commands import CommandReport, given_options, run_options
    from artfx.config import load_config
    from artfx.pipeline import Pipeline
    from artfx.spec import parse_spec

    args = list(kw["args"] or [])
    settings: dict[str, Any] = {}
    if kw["config"]:
        settings, raw = load_config(kw["config"])
    else:
        if not args:
            raise UsageError("missing pipeline spec, e.g. artfx sweep style photo.jpg --vary style.style_weight=10,100")
        raw = [(s.name, dict(s.params), s.bare) for s in parse_spec(args.pop(0))]
    if len(args) != 1:
        raise UsageError(f"a sweep takes one input image, not {len(args)}")
    if not kw["vary"]:
        raise UsageError("nothing to sweep: add --vary STEP.PARAM=V1,V2,...")
    opts = run_options(kw, settings)
    with ProgressView(not kw["quiet"]) as view:
        sweep(Pipeline.from_raw(raw, kw["set"] or []), args[0], vary=kw["vary"], output=kw["output"],
              cells=kw["cells"], cell_size=kw["cell_size"] or 256, progress=CommandReport(view, True),
              **given_options(opts))
    if not kw["quiet"]:
        say(f"wrote {kw['output']}" + (f" and the cells in {kw['cells']}" if kw["cells"] else ""))


def sweep_command():
    return make_command(
        [
            ("args", Optional[list[str]], typer.Argument(None, metavar="[SPEC] INPUT",
                                                          help="The pipeline spec (unless -c), then the input.")),
            ("vary", Optional[list[str]], typer.Option(None, "--vary", metavar="STEP.PARAM=V1,V2,...",
                                                       help="Values to try for a parameter (repeatable: a grid).")),
            ("cells", Optional[str], typer.Option(None, "--cells", metavar="DIR",
                                                  help="Also write every cell as a PNG with its recipe here.")),
            ("cell_size", Optional[int], typer.Option(None, "--cell-size", metavar="PX", min=32, max=4096,
                                                      help="Long side of each picture on the sheet (256).")),
            ("config", Optional[str], typer.Option(None, "-c", "--config", help="A TOML pipeline file.")),
            ("set", Optional[list[str]], typer.Option(None, "--set", metavar="STEP.PARAM=VALUE",
                                                      help="Override a parameter for every cell.")),
            *run_option_specs(),
        ],
        sweep_body,
        "Run a pipeline over a grid of parameter values and write a captioned contact sheet.",
    )
