"""artfx: turn photographs into artwork with stages chained into pipelines."""

__version__ = "0.1.0"
