"""The layering of artfx/, held by its import graph: built from the code itself (every import statement, at the
top of a module or inside a function), it must have no cycle, no import of another module's private name, and
imports that run one way only, down the layers of README.md's Layout section (:data:`LAYERS`): executors know no
jobs, jobs know no faces, the faces (cli, web) run work only through the front door (artfx.api)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from conftest import ROOT

PACKAGE = ROOT / "artfx"


def modules() -> dict[str, Path]:
    found = {}
    for path in PACKAGE.rglob("*.py"):
        parts = list(path.relative_to(ROOT).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        found[".".join(parts)] = path
    return found


def graph() -> tuple[dict[str, set[str]], list[tuple[str, str, str]]]:
    """(module -> the artfx modules it imports, [(importer, module, private name)])."""
    mods = modules()

    def owner(name: str) -> str:
        while name not in mods and "." in name:
            name = name.rpartition(".")[0]
        return name

    edges: dict[str, set[str]] = {}
    private = []
    for name, path in mods.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        out = edges.setdefault(name, set())
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                out |= {owner(a.name) for a in node.names if a.name.split(".")[0] == "artfx"}
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    parts = package.split(".")[: len(package.split(".")) - node.level + 1]
                    base = ".".join(parts + ([base] if base else []))
                if base.split(".")[0] != "artfx":
                    continue
                for alias in node.names:
                    if f"{base}.{alias.name}" in mods:  # a submodule: `from artfx import registry`
                        out.add(f"{base}.{alias.name}")
                        continue
                    target = owner(base)
                    out.add(target)
                    if alias.name.startswith("_") and not alias.name.startswith("__") and target != name:
                        private.append((name, target, alias.name))
        out.discard(name)
    return edges, private


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan, iteratively)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    found = []
    counter = 0
    for root in sorted(edges):
        if root in index:
            continue
        work = [(root, iter(sorted(edges[root])))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on.add(root)
        while work:
            v, children = work[-1]
            for w in children:
                if w not in edges:
                    continue
                if w not in index:
                    index[w] = low[w] = counter
                    counter += 1
                    stack.append(w)
                    on.add(w)
                    work.append((w, iter(sorted(edges[w]))))
                    break
                if w in on:
                    low[v] = min(low[v], index[w])
            else:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[v])
                if low[v] == index[v]:
                    comp = []
                    while True:
                        w = stack.pop()
                        on.discard(w)
                        comp.append(w)
                        if w == v:
                            break
                    if len(comp) > 1:
                        found.append(sorted(comp))
    return found


EDGES, PRIVATE = graph()


def test_the_graph_sees_imports_inside_functions():
    # jobs.plan imports artfx.video.media only inside a function (to keep PyAV out of a still's start-up)
    assert "artfx.video.media" in EDGES["artfx.jobs.plan"]
    assert "artfx.jobs.render" in EDGES["artfx.jobs.pieces"]


def test_a_cycle_is_found():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_there_is_no_import_cycle():
    assert cycles(EDGES) == []


def test_no_module_imports_another_modules_private_name():
    assert PRIVATE == []


LAYERS = [  # bottom first; a module may import its own layer's and those below (README.md, "Layout")
    ("artfx.errors", "artfx.version"),
    ("artfx.devices", "artfx.io", "artfx.colours"),
    ("artfx.stage",),
    ("artfx.options", "artfx.registry", "artfx.describe", "artfx.spec", "artfx.config", "artfx.resources"),
    ("artfx.pipeline",),
    ("artfx.recipe", "artfx.video", "artfx.stages", "artfx.testing"),
    ("artfx.executors",),
    ("artfx.jobs",),
    ("artfx.api", "artfx.examples"),
    ("artfx", "artfx.cli", "artfx.web", "artfx.warmup"),
]


def layer(name: str) -> int:
    """The layer of a module: that of the longest package of LAYERS it is in."""
    found = [(len(p), i) for i, group in enumerate(LAYERS) for p in group if name == p or name.startswith(p + ".")]
    assert found, f"{name} is in no layer: add it to LAYERS and to README.md's Layout"
    return max(found)[1]


def test_every_module_has_a_layer_and_imports_only_its_own_and_those_below():
    upward = sorted((m, t) for m, targets in EDGES.items() for t in targets if layer(t) > layer(m))
    assert upward == []


def _within(name: str, packages: tuple[str, ...]) -> bool:
    return any(name == p or name.startswith(p + ".") for p in packages)


def _imports(who: tuple[str, ...], forbidden: tuple[str, ...]) -> list[tuple[str, str]]:
    return sorted((m, t) for m, targets in EDGES.items() if _within(m, who) for t in targets
                  if _within(t, forbidden))


@pytest.mark.parametrize("who, forbidden", [
    (("artfx.executors",), ("artfx.jobs", "artfx.api", "artfx.cli", "artfx.web", "artfx.stages", "artfx.recipe")),
    (("artfx.jobs",), ("artfx.api", "artfx.cli", "artfx.web")),
    (("artfx.cli", "artfx.web"), ("artfx.jobs", "artfx.executors", "artfx.recipe", "artfx.resources")),
    (("artfx.errors", "artfx.version", "artfx.devices", "artfx.stage", "artfx.options"),
     ("artfx.pipeline", "artfx.registry", "artfx.recipe", "artfx.jobs", "artfx.executors", "artfx.api",
      "artfx.cli", "artfx.web", "artfx.video", "artfx.stages")),
    (("artfx.stages",), ("artfx.jobs", "artfx.executors", "artfx.api", "artfx.cli", "artfx.web", "artfx.recipe")),
])
def test_imports_run_one_way(who, forbidden):
    assert _imports(who, forbidden) == []
