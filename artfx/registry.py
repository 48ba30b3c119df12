"""Stage discovery through the entry-point group ``artfx.stages``.

Built-in stages are registered in artfx's own pyproject.toml exactly like a third party's, so the plugin path is
the one path. Listing names does not import anything; loading a stage imports its module (cheap by contract: heavy
libraries are imported inside ``apply``). A plugin that fails to import is reported, not fatal, until it is used.

Precedence, when two distributions offer the same stage name: artfx's own stage always wins (the plugin's is
listed as shadowed, with a warning when it is asked for by name); between two third-party distributions the name
is ambiguous, and using it is an error naming both (uninstall one, or choose with ``ARTFX_PLUGINS``).

``ARTFX_PLUGINS`` limits which third-party distributions load: unset or ``all`` for every one, ``none`` for the
built-in stages only, or a comma-separated list of distribution names (``artfx-channels,artfx-extra``).
"""

from __future__ import annotations

import contextlib
import difflib
import logging
import os
import re
import sys
from dataclasses import dataclass, field
from importlib.metadata import EntryPoint, entry_points
from typing import Any

from artfx.errors import StageError, UnknownStageError
from artfx.stage import Stage

GROUP = "artfx.stages"
BUILTIN = "artfx"
ENV = "ARTFX_PLUGINS"

log = logging.getLogger("artfx")


@dataclass
class Entry:
    name: str
    value: str  # "module:attr", or "<registered>" for stages added in-process
    dist: str  # the distribution that provides it
    ep: EntryPoint | None = None
    stage: Any = None
    error: str | None = None
    others: list[str] = field(default_factory=list)  # other distributions offering the same name

    @property
    def ambiguous(self) -> bool:
        """Two third-party distributions offer this name and neither is artfx itself."""
        return bool(self.others) and self.dist != BUILTIN


_entries: dict[str, Entry] | None = None
_registered: dict[str, Entry] = {}  # stages added in-process: they outlive a refresh of the entry points


def _dist(ep: EntryPoint) -> str:
    return ep.dist.name if ep.dist is not None else "?"


def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def allowed_plugins() -> set[str] | None:
    """The third-party distributions ARTFX_PLUGINS allows (normalised names), or None for all of them."""
    value = os.environ.get(ENV, "").strip()
    if value.lower() in ("", "all", "*"):
        return None
    if value.lower() == "none":
        return set()
    return {_norm(v) for v in value.split(",") if v.strip()}


def _discover() -> dict[str, Entry]:
    global _entries
    if _entries is None:
        allowed = allowed_plugins()
        found: dict[str, Entry] = {}
        eps = sorted(entry_points(group=GROUP), key=lambda e: (_dist(e) != BUILTIN, _norm(_dist(e)), e.name))
        for ep in eps:
            dist = _dist(ep)
            if dist != BUILTIN and allowed is not None and _norm(dist) not in allowed:
                continue
            if ep.name in found:
                if found[ep.name].dist != dist and dist not in found[ep.name].others:
                    found[ep.name].others.append(dist)
                continue
            found[ep.name] = Entry(ep.name, ep.value, dist, ep)
        found.update(_registered)
        # artfx's built-ins first in listings, then plugins alphabetically
        _entries = dict(sorted(found.items(), key=lambda kv: (kv[1].dist != BUILTIN, kv[0])))
    return _entries


def refresh(forget_registered: bool = False) -> None:
    """Discover the entry points again (after installing a plugin in-process, e.g. in tests); stages added with
    :func:`register` stay unless ``forget_registered``."""
    global _entries
    _entries = None
    if forget_registered:
        _registered.clear()


def register(stage: Any, dist: str = "<registered>") -> None:
    """Add a stage object in-process (for embedding artfx or for tests); replaces one of the same name."""
    _check(stage, getattr(stage, "name", "?"))
    _registered[stage.name] = Entry(stage.name, "<registered>", dist, None, stage)
    _discover()[stage.name] = _registered[stage.name]


def names() -> list[str]:
    return list(_discover())


def entries() -> list[Entry]:
    return list(_discover().values())


def entry(name: str) -> Entry | None:
    return _discover().get(name)


def _check(obj: Any, name: str) -> None:
    if not isinstance(obj, Stage):
        missing = [a for a in ("name", "summary", "Params", "apply") if not hasattr(obj, a)]
        raise StageError(f"plugin {name!r} is not a stage: it lacks {', '.join(missing) or 'a callable apply'}")


def try_load(item: Entry) -> Any:
    """Load an entry's stage, remembering a failure instead of raising. A plugin that calls ``sys.exit`` or
    raises any other exception while importing is a failure like any other (Ctrl-C still interrupts)."""
    if item.stage is None and item.error is None and item.ep is not None:
        try:
            with contextlib.redirect_stdout(sys.stderr):  # a plugin that prints must not corrupt -o - output
                obj = item.ep.load()
            _check(obj, item.name)
            if obj.name != item.name:  # recipes and specs name stages by their entry point
                raise ValueError(f"its entry point is {item.name!r} but the stage calls itself {obj.name!r}")
            item.stage = obj
        except KeyboardInterrupt:
            raise
        except BaseException as exc:  # a broken plugin must not break artfx (SystemExit included)
            text = f"{type(exc).__name__}: {exc}".splitlines()[0] if str(exc) else type(exc).__name__
            item.error = text
    return item.stage


def suggest(name: str) -> str | None:
    close = difflib.get_close_matches(name, names(), n=1, cutoff=0.5)
    return close[0] if close else None


def load(name: str) -> Any:
    """The stage called ``name``; UnknownStageError with a did-you-mean, StageError if its plugin is broken or
    the name is ambiguous between two plugins."""
    item = _discover().get(name)
    if item is None:
        guess = suggest(name)
        hint = f"did you mean {guess!r}?" if guess else "see 'artfx stages'"
        raise UnknownStageError(f"unknown stage {name!r}", hint=hint)
    if item.ambiguous:
        raise StageError(f"stage {name!r} is provided by both {item.dist} and {' and '.join(item.others)}",
                         hint=f"uninstall one, or choose with {ENV}={item.dist}")
    if item.others:
        log.warning("stage %r: artfx's own stage is used; %s also provides one, which is ignored",
                    name, ", ".join(item.others))
    stage = try_load(item)
    if stage is None:
        raise StageError(f"stage {name!r} from {item.dist} failed to load: {item.error}")
    return stage


def dist_of(name: str) -> str:
    item = _discover().get(name)
    return item.dist if item is not None else "?"
