"""Stage discovery through the entry-point group ``artfx.stages``.

Built-in stages are registered in artfx's own pyproject.toml exactly like a third party's, so the plugin path is
the one path. Listing names does not import anything; loading a stage imports its module (cheap by contract: heavy
libraries are imported inside ``apply``). A plugin that fails to import is reported, not fatal, until it is used.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from importlib.metadata import EntryPoint, entry_points
from typing import Any

from artfx.errors import StageError, UnknownStageError
from artfx.stage import Stage

GROUP = "artfx.stages"


@dataclass
class Entry:
    name: str
    value: str  # "module:attr", or "<registered>" for stages added in-process
    dist: str  # the distribution that provides it
    ep: EntryPoint | None = None
    stage: Any = None
    error: str | None = None


_entries: dict[str, Entry] | None = None


def _dist(ep: EntryPoint) -> str:
    return ep.dist.name if ep.dist is not None else "?"


def _discover() -> dict[str, Entry]:
    global _entries
    if _entries is None:
        found: dict[str, Entry] = {}
        eps = sorted(entry_points(group=GROUP), key=lambda e: (_dist(e) != "artfx", _dist(e), e.name))
        for ep in eps:
            if ep.name not in found:  # on a clash artfx's own stage wins, then the first distribution by name
                found[ep.name] = Entry(ep.name, ep.value, _dist(ep), ep)
        # artfx's built-ins first in listings, then plugins alphabetically
        _entries = dict(sorted(found.items(), key=lambda kv: (kv[1].dist != "artfx", kv[0])))
    return _entries


def refresh() -> None:
    """Forget what was discovered (after installing a plugin in-process, e.g. in tests)."""
    global _entries
    _entries = None


def register(stage: Any, dist: str = "<registered>") -> None:
    """Add a stage object in-process (for embedding artfx or for tests); replaces one of the same name."""
    _check(stage, getattr(stage, "name", "?"))
    _discover()[stage.name] = Entry(stage.name, "<registered>", dist, None, stage)


def names() -> list[str]:
    return list(_discover())


def entries() -> list[Entry]:
    return list(_discover().values())


def _check(obj: Any, name: str) -> None:
    if not isinstance(obj, Stage):
        missing = [a for a in ("name", "summary", "Params", "apply") if not hasattr(obj, a)]
        raise StageError(f"plugin {name!r} is not a stage: it lacks {', '.join(missing) or 'a callable apply'}")


def try_load(entry: Entry) -> Any:
    """Load an entry's stage, remembering a failure instead of raising."""
    if entry.stage is None and entry.error is None and entry.ep is not None:
        try:
            obj = entry.ep.load()
            _check(obj, entry.name)
            if obj.name != entry.name:  # recipes and specs name stages by their entry point
                raise ValueError(f"its entry point is {entry.name!r} but the stage calls itself {obj.name!r}")
            entry.stage = obj
        except Exception as exc:  # a broken plugin must not break artfx
            entry.error = f"{type(exc).__name__}: {exc}".splitlines()[0]
    return entry.stage


def suggest(name: str) -> str | None:
    close = difflib.get_close_matches(name, names(), n=1, cutoff=0.5)
    return close[0] if close else None


def load(name: str) -> Any:
    """The stage called ``name``; UnknownStageError with a did-you-mean, StageError if its plugin is broken."""
    entry = _discover().get(name)
    if entry is None:
        guess = suggest(name)
        hint = f"did you mean {guess!r}?" if guess else "see 'artfx stages'"
        raise UnknownStageError(f"unknown stage {name!r}", hint=hint)
    stage = try_load(entry)
    if stage is None:
        raise StageError(f"stage {name!r} from {entry.dist} failed to load: {entry.error}")
    return stage
