"""How the package is put together: no import cycles, no private module used from another
package (DESIGN.md, "Layout"). Read from the source, so nothing is imported."""

from __future__ import annotations

import ast
from pathlib import Path

import flowscope

SOURCE = Path(flowscope.__file__).parent

# Cycles being cut elsewhere; an entry here is a debt, not a licence (remove it once gone).
KNOWN_CYCLES = [
    {"flowscope.serving.helper", "flowscope.serving.monitor", "flowscope.serving.writers"},
]


def _modules() -> dict[str, Path]:
    modules = {}
    for path in SOURCE.rglob("*.py"):
        parts = path.relative_to(SOURCE.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        modules[name] = path
    return modules


def _imports(path: Path, known: dict[str, Path]) -> set[str]:
    """The flowscope modules ``path`` imports when it runs (inside functions too), leaving
    out ``if TYPE_CHECKING:`` blocks, which never run."""
    tree = ast.parse(path.read_text())
    typing_only = {
        id(node)
        for block in ast.walk(tree)
        if isinstance(block, ast.If) and "TYPE_CHECKING" in ast.unparse(block.test)
        for node in ast.walk(block)
    }
    found = set()
    for node in ast.walk(tree):
        if id(node) in typing_only:
            continue
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("flowscope"):
            for alias in node.names:
                submodule = f"{node.module}.{alias.name}"
                found.add(submodule if submodule in known else str(node.module))
        elif isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name in known)
    return found


def _cycles(graph: dict[str, set[str]]) -> list[set[str]]:
    """The strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    cycles = []

    def visit(module: str) -> None:
        index[module] = low[module] = len(index)
        stack.append(module)
        for target in graph[module]:
            if target not in index:
                visit(target)
                low[module] = min(low[module], low[target])
            elif target in stack:
                low[module] = min(low[module], index[target])
        if low[module] == index[module]:
            component = set()
            while True:
                member = stack.pop()
                component.add(member)
                if member == module:
                    break
            if len(component) > 1:
                cycles.append(component)

    for module in sorted(graph):
        if module not in index:
            visit(module)
    return cycles


def test_no_module_imports_itself_back() -> None:
    known = _modules()
    graph = {name: _imports(path, known) & known.keys() - {name} for name, path in known.items()}
    unexpected = [cycle for cycle in _cycles(graph) if cycle not in KNOWN_CYCLES]
    assert unexpected == []


def test_no_private_module_is_used_from_another_package() -> None:
    known = _modules()
    offences = []
    for name, path in known.items():
        package = name.split(".")[1] if name.count(".") else ""
        for target in _imports(path, known):
            parts = target.split(".")
            private = [i for i, part in enumerate(parts) if part.startswith("_") and i > 0]
            # flowscope._name is the whole package's own; flowscope.pkg._name is pkg's
            if private and private[0] > 1 and parts[1] != package:
                offences.append(f"{name} imports {target}")
    assert offences == []
