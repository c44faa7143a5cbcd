"""The structure of the code, checked: no import cycle in genzoo/, even through imports
inside functions (import-linter's contracts, run by .ci/run, hold the layers)."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def import_graph() -> dict[str, set[str]]:
    """Every module of genzoo/ and the genzoo modules it imports, at module level or in
    a function (``from genzoo import x`` counts as importing ``genzoo.x`` when that is a
    module, as Python and import-linter read it)."""
    modules = {}
    for file in (ROOT / "genzoo").rglob("*.py"):
        parts = file.relative_to(ROOT).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        modules[name] = file
    graph: dict[str, set[str]] = {name: set() for name in modules}
    for name, file in modules.items():
        package = name if file.name == "__init__.py" else name.rpartition(".")[0]
        for node in ast.walk(ast.parse(file.read_text())):
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    up = package.split(".")[:len(package.split(".")) - node.level + 1]
                    base = ".".join(up + ([base] if base else []))
                targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in modules else base
                           for a in node.names]
            else:
                continue
            for target in targets:
                while target and target not in modules:
                    target = target.rpartition(".")[0]
                if target and target != name:
                    graph[name].add(target)
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan's algorithm)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in graph[v]:
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

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_the_cycle_finder_finds_a_cycle() -> None:
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert cycles(graph) == [["a", "b", "c"]]


def test_no_module_of_genzoo_imports_one_that_imports_it_back() -> None:
    graph = import_graph()
    assert "genzoo.api" in graph["genzoo.cli.training"] and "genzoo.session" in graph["genzoo.api"]
    assert cycles(graph) == []


def test_every_backend_adapter_provides_the_backend_protocol() -> None:
    import importlib
    import inspect

    from genzoo.backends import ADAPTERS
    from genzoo.protocols import Backend

    for name, module_name in ADAPTERS.items():
        module = importlib.import_module(module_name)
        for method in ("build", "make_trainer", "versions"):
            wanted = [p for p in inspect.signature(getattr(Backend, method)).parameters
                      if p != "self"]
            found = list(inspect.signature(getattr(module, method)).parameters)
            assert found == wanted, (name, method)


def test_image_data_split_is_deprecated_not_gone() -> None:
    import numpy as np
    import pytest

    from genzoo.data import ImageData

    x = np.zeros((2, 8, 8, 1), np.float32)
    data = ImageData("d", x, x, x)
    with pytest.warns(DeprecationWarning, match="read data.train"):
        assert data.split("val") is data.val


def test_every_file_fits_in_a_head() -> None:
    long = {str(f.relative_to(ROOT)): n for tree in ("genzoo", "plugins")
            for f in (ROOT / tree).rglob("*.py")
            if (n := len(f.read_text().splitlines())) > 400}
    assert long == {}, "split these by what they hold"
