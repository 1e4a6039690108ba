"""The package's import graph has no circle, and only the command line imports the command line.

Read from the source with ``ast`` (nothing is imported), so function-level imports count as much
as module-level ones, and the check needs none of the optional extras. Run it alone with
``python3 -m pytest -q tests/test_imports.py``.
"""

from __future__ import annotations

import ast
from collections import deque
from itertools import pairwise
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "railvision"
CLI = "railvision.cli"  # with railvision.__main__ the top: it may import anything, nothing below imports it

Graph = dict[str, dict[str, str]]  # module -> {imported module: "file:line" of the first such import}


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def is_top(module: str) -> bool:
    return module == "railvision.__main__" or module == CLI or module.startswith(CLI + ".")


def targets(node: ast.Import | ast.ImportFrom, module: str, is_package: bool, modules: set[str]) -> set[str]:
    """The modules an import loads: ``from a import b`` loads module ``a.b`` if there is one, else ``a``."""
    if isinstance(node, ast.Import):
        return {alias.name for alias in node.names} & modules
    base = node.module or ""
    if node.level:  # relative: counted from the importing module's own package
        package = module.split(".")[: None if is_package else -1]
        base = ".".join([*package[: len(package) - node.level + 1], *([base] if base else [])])
    return {f"{base}.{a.name}" if f"{base}.{a.name}" in modules else base for a in node.names} & modules


def import_graph() -> Graph:
    """Every module of ``railvision`` and the ``railvision`` modules it imports anywhere in its source."""
    files = {module_name(path): path for path in sorted(PACKAGE.rglob("*.py"))}
    graph: Graph = {}
    for module, path in files.items():
        edges = graph.setdefault(module, {})
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import | ast.ImportFrom):
                for target in sorted(targets(node, module, path.name == "__init__.py", set(files))):
                    edges.setdefault(target, f"{path.relative_to(PACKAGE.parent)}:{node.lineno}")
    return graph


def shortest_path(graph: Graph, start: str, goal: str) -> list[str] | None:
    previous: dict[str, str | None] = {start: None}
    queue = deque([start])
    while queue:
        node = queue.popleft()
        if node == goal:
            chain: list[str] = []
            while node is not None:
                chain.append(node)
                node = previous[node]
            return chain[::-1]
        for target in sorted(graph.get(node, {})):
            if target not in previous:
                previous[target] = node
                queue.append(target)
    return None


def cycles(graph: Graph) -> list[list[str]]:
    """One shortest circle through each edge that lies on one, each circle listed once."""
    found: dict[frozenset[str], list[str]] = {}
    for module in sorted(graph):
        for target in sorted(graph[module]):
            back = shortest_path(graph, target, module)
            if back is not None:
                found.setdefault(frozenset(back), [module, *back])
    return list(found.values())


def describe(graph: Graph, cycle: list[str]) -> str:
    return "\n  ".join(f"{a} -> {b} ({graph[a][b]})" for a, b in pairwise(cycle))


def test_the_walk_sees_module_and_function_level_imports() -> None:
    graph = import_graph()
    assert "railvision.tiling" in graph["railvision.engine"]  # from railvision import tiling
    assert "railvision.labelling.ray_backend" in graph["railvision.labelling.driver"]  # inside label_archive


def test_a_circle_is_found_and_named() -> None:
    graph = {"a": {"b": "a.py:1"}, "b": {"c": "b.py:2"}, "c": {"a": "c.py:3"}, "d": {"a": "d.py:4"}}
    assert cycles(graph) == [["a", "b", "c", "a"]]
    assert describe(graph, ["a", "b", "c", "a"]) == "a -> b (a.py:1)\n  b -> c (b.py:2)\n  c -> a (c.py:3)"


def test_no_import_cycle() -> None:
    graph = {module: {} if is_top(module) else edges for module, edges in import_graph().items()}
    found = cycles(graph)
    assert not found, "import cycles:\n" + "\n".join(f"- {describe(graph, c)}" for c in found)


def test_only_the_entry_points_import_the_cli() -> None:
    graph = import_graph()
    below = [
        f"{module} -> {target} ({where})"
        for module, edges in graph.items()
        if not is_top(module)
        for target, where in edges.items()
        if is_top(target)
    ]
    assert not below, "imports of the command line from below it:\n" + "\n".join(below)
