"""The inline pipeline grammar, ffmpeg-like, one shell argument:

    spec   := step ("," step)*
    step   := NAME (":" param)*
    param  := KEY "=" value | value          (a bare value sets the stage's first parameter; first param only)
    value  := plain | '"' ... '"' | "'" ... "'"   (quotes for values holding , : = or spaces; \\ escapes in quotes)

    quantize,slic,style
    quantize:8,slic:n=400:compactness=10,style:image="my photos/a.jpg"

Parsing knows nothing about stages: it yields names and strings. The pipeline resolves them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from artfx.errors import SpecError

NAME_RE = re.compile(r"[a-z][a-z0-9_-]*")
_SPECIAL = set(',:="\'\\') | {" ", "\t"}


@dataclass(frozen=True)
class StepSpec:
    """One step as written: a stage name, an optional bare value, and ordered key=value strings."""

    name: str
    params: tuple[tuple[str, str], ...] = ()
    bare: str | None = None
    column: int = field(default=1, compare=False)


def normalise_key(key: str) -> str:
    return key.strip().replace("-", "_")


def parse_spec(spec: str) -> list[StepSpec]:
    """Parse an inline spec; errors carry the 1-based column where the problem is."""
    if not spec or not spec.strip():
        raise SpecError("empty pipeline spec", hint="e.g. quantize:k=8,slic")
    steps: list[StepSpec] = []
    i, n = 0, len(spec)

    def error(msg: str, at: int) -> SpecError:
        return SpecError(msg, spec, at + 1)

    def read_name(at: int, what: str) -> tuple[str, int]:
        m = NAME_RE.match(spec, at)
        if not m:
            shown = spec[at] if at < n else "end of spec"
            raise error(f"expected a {what} name, found {shown!r}", at)
        return m.group(0), m.end()

    def read_value(at: int) -> tuple[str, int]:
        if at < n and spec[at] in "\"'":
            quote, j, out = spec[at], at + 1, []
            while j < n and spec[j] != quote:
                if spec[j] == "\\" and j + 1 < n:
                    j += 1
                out.append(spec[j])
                j += 1
            if j >= n:
                raise error("unterminated quote", at)
            return "".join(out), j + 1
        j = at
        if j < n and spec[j] == " ":
            raise error("unexpected space (quote values that hold spaces)", j)
        while j < n and spec[j] not in ",: ":
            if spec[j] in "=\"'":
                raise error(f"unexpected {spec[j]!r} in a value (quote values that hold it)", j)
            j += 1
        return spec[at:j], j

    while True:
        while i < n and spec[i] == " ":
            i += 1
        start = i
        name, i = read_name(i, "stage")
        params: list[tuple[str, str]] = []
        bare = None
        while i < n and spec[i] == ":":
            i += 1
            pstart = i
            m = NAME_RE.match(spec, i)
            if m and m.end() < n and spec[m.end()] == "=":
                key = normalise_key(m.group(0))
                if key in dict(params):
                    raise error(f"parameter {key!r} given twice", pstart)
                value, i = read_value(m.end() + 1)
                params.append((key, value))
            else:
                if params or bare is not None:
                    raise error("a bare value is allowed only for the first parameter; write key=value", pstart)
                if i < n and spec[i] == "=":
                    raise error("expected a parameter name before '='", i)
                bare, i = read_value(i)
                if bare == "":
                    raise error("empty parameter", pstart)
        steps.append(StepSpec(name, tuple(params), bare, start + 1))
        while i < n and spec[i] == " ":
            i += 1
        if i == n:
            return steps
        if spec[i] != ",":
            raise error(f"expected ',' or ':' after step {name!r}, found {spec[i]!r}", i)
        i += 1
        if i == n:
            raise error("expected a stage name after ','", i)


def quote_value(value: str) -> str:
    if value and not any(c in _SPECIAL for c in value):
        return value
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def format_step(step: StepSpec) -> str:
    parts = [step.name]
    if step.bare is not None:
        parts.append(quote_value(step.bare))
    parts += [f"{k}={quote_value(v)}" for k, v in step.params]
    return ":".join(parts)


def format_spec(steps: list[StepSpec]) -> str:
    """The inverse of parse_spec: parse_spec(format_spec(s)) == s."""
    return ",".join(format_step(s) for s in steps)
