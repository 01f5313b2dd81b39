"""The package's import graph, read from the source (every `import` / `from` statement, at
module top or inside functions): no cycles between its parts, and each part imports only
parts of its own layer or below (docs/ARCHITECTURE.md):

    cli -> {experiments, explore, api} -> {train, evaluation, bench}
        -> {data, models, figures, weights, recipes}
        -> {accel, errors, atomic, devices, schema}

This docstring and `LAYERS` below are the one place the layers are written down;
docs/ARCHITECTURE.md refers here.

experiments (the paper's experiments) orchestrates train and evaluation, which never import it;
explore (the web page) sits beside it and reads checkpoints and data through evaluation.
Within the middle layer train may import evaluation and bench may import train; evaluation
imports neither. figures renders plain data: it imports only atomic and errors.
"""

from __future__ import annotations

import ast
import importlib.util
import pkgutil
import sys
from functools import cache
from pathlib import Path

import alexnet

LAYERS = {
    "cli": 4, "__main__": 4,
    "experiments": 3, "api": 3, "explore": 3,
    "train": 2, "evaluation": 2, "bench": 2,
    "data": 1, "models": 1, "figures": 1, "weights": 1, "recipes": 1,
    "errors": 0, "atomic": 0, "devices": 0, "accel": 0, "schema": 0,
}
SAME_LAYER_OK = {("train", "evaluation"), ("bench", "train")}  # middle layer, one way only
FIGURES_MAY_IMPORT = {"atomic", "errors"}


@cache
def modules() -> dict[str, str]:
    """Every module of the package: dotted name -> source file (nothing is imported)."""
    found = {"alexnet": alexnet.__file__}
    for info in pkgutil.walk_packages(alexnet.__path__, "alexnet."):
        found[info.name] = importlib.util.find_spec(info.name).origin
    return found


def imported(name: str, path: str) -> set[str]:
    """The package's modules that module `name` imports anywhere in its body."""
    is_package = path.endswith("__init__.py")
    out: set[str] = set()
    for node in ast.walk(ast.parse(Path(path).read_text(encoding="utf-8"), path)):
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: from the package holding this module
                parts = name.split(".")[:len(name.split(".")) - node.level + is_package]
                base = ".".join(parts + ([base] if base else []))
            out.add(base)
            out.update(f"{base}.{a.name}" for a in node.names if f"{base}.{a.name}" in modules())
    return {m for m in out if m == "alexnet" or m.startswith("alexnet.")}


def part(module: str) -> str:
    """The part a module belongs to: its sub-package or top-level module ("" for alexnet)."""
    return module.split(".")[1] if "." in module else ""


@cache
def part_edges() -> dict[tuple[str, str], list[str]]:
    """(importing part, imported part) -> the `module -> module` imports behind it."""
    edges: dict[tuple[str, str], list[str]] = {}
    for name, path in modules().items():
        for target in imported(name, path):
            a, b = part(name), part(target)
            if a != b and a and b:  # the root package re-exports the API: not a part
                edges.setdefault((a, b), []).append(f"{name} -> {target}")
    return edges


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one node (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in list(graph):
        if v not in index:
            visit(v)
    return found


def violations() -> list[str]:
    bad = []
    for (a, b), why in sorted(part_edges().items()):
        if a not in LAYERS or b not in LAYERS:
            bad.append(f"{a} -> {b}: a part without a layer; add it to LAYERS ({why[0]})")
        elif LAYERS[b] > LAYERS[a] or (LAYERS[b] == LAYERS[a] == 2
                                       and (a, b) not in SAME_LAYER_OK):
            bad.append(f"{a} -> {b}: {', '.join(why)}")
        elif a == "figures" and b not in FIGURES_MAY_IMPORT:
            bad.append(f"figures -> {b} (figures renders plain data): {', '.join(why)}")
    return bad


def test_the_walk_sees_the_whole_package_and_reads_function_local_imports():
    names = modules()
    assert {"alexnet.cli.evaluation", "alexnet.evaluation.evaluate", "alexnet.data.images",
            "alexnet.figures.report_page", "alexnet.train.loop"} <= set(names)
    # alexnet/__init__.py imports models inside its functions
    assert "alexnet.models" in imported("alexnet", names["alexnet"])


def test_no_cycles_between_the_package_parts():
    graph: dict[str, set[str]] = {}
    for a, b in part_edges():
        graph.setdefault(a, set()).add(b)
    assert cycles(graph) == []


def module_graph() -> dict[str, set[str]]:
    """module -> the package's modules it imports; a package's __init__ re-exports its
    modules, so only the modules' own imports count."""
    return {name: {t for t in imported(name, path) if not modules()[t].endswith("__init__.py")}
            for name, path in modules().items()}


def test_no_cycles_between_any_two_modules():
    assert cycles(module_graph()) == []


def test_the_cycle_search_finds_one_hidden_in_a_function(monkeypatch):
    graph = module_graph()
    graph["alexnet.bench.plain"] = graph["alexnet.bench.plain"] | {"alexnet.bench.train_speed"}
    assert ["alexnet.bench.plain", "alexnet.bench.train_speed"] in cycles(graph)


def test_each_part_imports_only_its_own_layer_or_below():
    assert violations() == []


def test_the_rule_catches_an_upward_import(monkeypatch):
    edges = {**part_edges(), ("evaluation", "train"): ["alexnet.evaluation.x -> alexnet.train"],
             ("figures", "data"): ["alexnet.figures.x -> alexnet.data"]}
    monkeypatch.setattr(sys.modules[__name__], "part_edges", lambda: edges)
    assert [v.split(":")[0] for v in violations()] == [
        "evaluation -> train", "figures -> data (figures renders plain data)"]
