"""The simulators package imports one way: no module imports another that imports it back.

The graph is read from the source (ast), so imports under ``if TYPE_CHECKING:`` and inside
functions count too: a circle hidden from the interpreter is still a circle.
"""

from __future__ import annotations

import ast
from pathlib import Path

import simulators

PACKAGE = "simulators"
ROOT = Path(simulators.__file__).resolve().parent


def _modules(root: Path) -> dict[str, Path]:
    out: dict[str, Path] = {}
    for path in sorted(root.rglob("*.py")):
        parts = [PACKAGE, *path.relative_to(root).with_suffix("").parts]
        if parts[-1] == "__init__":
            parts.pop()
        out[".".join(parts)] = path
    return out


def _resolve(name: str, modules: dict[str, Path]) -> str | None:
    """The package module that importing ``name`` loads: the longest known prefix."""
    parts = name.split(".")
    while parts:
        candidate = ".".join(parts)
        if candidate in modules:
            return candidate
        parts.pop()
    return None


def import_graph(root: Path = ROOT) -> dict[str, set[str]]:
    modules = _modules(root)
    graph: dict[str, set[str]] = {m: set() for m in modules}
    for module, path in modules.items():
        is_package = path.name == "__init__.py"
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    base = module.split(".")
                    drop = node.level - 1 if is_package else node.level
                    base = base[: len(base) - drop] if drop else base
                    prefix = ".".join(base)
                    source = f"{prefix}.{node.module}" if node.module else prefix
                else:
                    source = node.module or ""
                # `from pkg import sub` imports the submodule when there is one.
                targets = [f"{source}.{alias.name}" for alias in node.names] or [source]
            for target in targets:
                resolved = _resolve(target, modules)
                if resolved is not None and resolved != module:
                    graph[module].add(resolved)
    return graph


def find_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                out.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def test_the_simulators_import_graph_has_no_cycle() -> None:
    graph = import_graph()
    assert "simulators.twilio.media" in graph and "simulators.network" in graph  # it read them
    assert find_cycles(graph) == []


def test_the_walker_sees_a_cycle_hidden_behind_type_checking(tmp_path: Path) -> None:
    """The check can fail: a circle closed only under TYPE_CHECKING, via a relative import."""
    pkg = tmp_path / PACKAGE
    (pkg / "sub").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "sub" / "__init__.py").write_text("")
    (pkg / "a.py").write_text("from simulators.sub import b\n")
    (pkg / "sub" / "b.py").write_text(
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from ..a import A\n"
    )
    (pkg / "c.py").write_text("import simulators.a\n")
    graph = import_graph(pkg)
    assert graph["simulators.sub.b"] == {"simulators.a"}
    assert find_cycles(graph) == [["simulators.a", "simulators.sub.b"]]
