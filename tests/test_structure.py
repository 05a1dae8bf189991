"""How the package is put together (DESIGN.md, "Layout"): no two flowscope modules need
each other, and no private module is used from another package. The import graph is read
from the source with ``ast``, so nothing is imported.

Every ``import flowscope...`` and ``from flowscope... import`` counts, at module level or
inside a function (a function-level import only hides a cycle until the function runs).
The run-time graph leaves out imports under ``if TYPE_CHECKING:``; the stricter graph
counts them too, since a module that names another's types still depends on it.
"""

from __future__ import annotations

import ast
from collections.abc import Iterable
from pathlib import Path

import pytest

import flowscope

SOURCE = Path(flowscope.__file__).parent

# Modules that name each other's types only, never importing each other at run time:
# records' loggers take a Run, and Run calls them. Any other cycle fails.
_ANNOTATION_ONLY = [["flowscope.tracking.records", "flowscope.tracking.run"]]


def module_files(root: Path) -> dict[str, Path]:
    """Each module of the package at ``root`` by dotted name (a package by its own)."""
    package = root.name
    found = {}
    for path in sorted(root.rglob("*.py")):
        parts = (package, *path.relative_to(root).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        found[".".join(parts)] = path
    return found


def _type_checking_nodes(tree: ast.AST) -> set[int]:
    skipped: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            for inner in node.body:
                skipped.update(id(child) for child in ast.walk(inner))
    return skipped


def imported_names(module: str, path: Path, *, type_checking: bool) -> set[str]:
    """The dotted names ``module`` imports, wherever in it the import is; relative
    imports resolved; ``from a import b`` names ``a.b`` (a module or a name in ``a``)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    skipped = set() if type_checking else _type_checking_nodes(tree)
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    names: set[str] = set()
    for node in ast.walk(tree):
        if id(node) in skipped:
            continue
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*parent, base] if base else parent)
            names.update(f"{base}.{alias.name}" for alias in node.names)
    return names


def import_graph(root: Path, *, type_checking: bool) -> dict[str, set[str]]:
    """Module -> the package's modules it imports. A name resolves to the longest module
    it starts with: ``from flowscope.serving import create_serving_app`` imports the
    package ``flowscope.serving`` itself, ``from flowscope.serving import _http`` the
    module. The parent packages Python imports on the way are not counted, or every
    package's ``__init__`` would be in a cycle with its own modules."""
    modules = module_files(root)
    graph: dict[str, set[str]] = {}
    for module, path in modules.items():
        targets = set()
        for name in imported_names(module, path, type_checking=type_checking):
            while name and name not in modules:
                name = name.rpartition(".")[0]
            if name and name != module:
                targets.add(name)
        graph[module] = targets
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The groups of modules that reach one another (strongly connected components of
    more than one module), by Tarjan's algorithm."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(module: str) -> None:
        index[module] = low[module] = len(index)
        stack.append(module)
        on_stack.add(module)
        for target in sorted(graph.get(module, ())):
            if target not in index:
                visit(target)
                low[module] = min(low[module], low[target])
            elif target in on_stack:
                low[module] = min(low[module], index[target])
        if low[module] == index[module]:
            group = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                group.append(member)
                if member == module:
                    break
            if len(group) > 1:
                found.append(sorted(group))

    for module in sorted(graph):
        if module not in index:
            visit(module)
    return found


def _area(module: str) -> str:
    """The sub-package a module belongs to; ``flowscope`` for the top-level modules."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 and _is_package(parts[1]) else "flowscope"


def _is_package(name: str) -> bool:
    return (SOURCE / name / "__init__.py").is_file()


def _areas() -> list[str]:
    return ["flowscope", *sorted(p.name for p in SOURCE.iterdir() if _is_package(p.name))]


def _shown(graph: dict[str, set[str]], groups: Iterable[list[str]]) -> str:
    lines = []
    for group in groups:
        members = set(group)
        lines.append(
            "; ".join(
                f"{module} -> {', '.join(sorted(graph[module] & members))}" for module in group
            )
        )
    return "\n".join(lines)


@pytest.mark.parametrize("area", _areas())
def test_no_import_cycle_at_run_time(area: str) -> None:
    graph = import_graph(SOURCE, type_checking=False)
    touching = [g for g in cycles(graph) if any(_area(m) == area for m in g)]
    assert not touching, f"modules that import each other:\n{_shown(graph, touching)}"


def test_no_import_cycle_through_type_annotations_but_the_known_one() -> None:
    graph = import_graph(SOURCE, type_checking=True)
    unexpected = [g for g in cycles(graph) if g not in _ANNOTATION_ONLY]
    assert not unexpected, f"modules that import each other:\n{_shown(graph, unexpected)}"


def test_no_private_module_is_used_from_another_package() -> None:
    """``flowscope._name`` belongs to the whole package; ``flowscope.pkg._name`` to ``pkg``."""
    graph = import_graph(SOURCE, type_checking=True)
    offences = []
    for module, targets in graph.items():
        package = module.split(".")[1] if module.count(".") else ""
        for target in targets:
            parts = target.split(".")
            private = [i for i, part in enumerate(parts) if part.startswith("_") and i > 0]
            if private and private[0] > 1 and parts[1] != package:
                offences.append(f"{module} imports {target}")
    assert offences == []


def test_the_graph_sees_every_kind_of_import(tmp_path: Path) -> None:
    """The checker itself: module-level, function-level, relative and type-checking
    imports each make an edge, and a cycle through them is found."""
    root = tmp_path / "pkg"
    (root / "sub").mkdir(parents=True)
    (root / "__init__.py").write_text("from pkg.a import thing\n")
    (root / "a.py").write_text("thing = 1\ndef later():\n    from pkg.sub import b\n")
    (root / "sub" / "__init__.py").write_text("")
    (root / "sub" / "b.py").write_text("from ..c import x\nimport pkg.sub.d\n")
    (root / "c.py").write_text("x = 1\nfrom pkg import a\n")
    (root / "sub" / "d.py").write_text(
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from pkg.sub.b import y\n"
    )
    run_time = import_graph(root, type_checking=False)
    assert run_time == {
        "pkg": {"pkg.a"},
        "pkg.a": {"pkg.sub.b"},
        "pkg.sub": set(),
        "pkg.sub.b": {"pkg.c", "pkg.sub.d"},
        "pkg.c": {"pkg.a"},
        "pkg.sub.d": set(),
    }
    assert cycles(run_time) == [["pkg.a", "pkg.c", "pkg.sub.b"]]
    with_types = import_graph(root, type_checking=True)
    assert with_types["pkg.sub.d"] == {"pkg.sub.b"}
    assert cycles(with_types) == [["pkg.a", "pkg.c", "pkg.sub.b", "pkg.sub.d"]]
