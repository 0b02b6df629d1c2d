"""No import cycles among the package's top-level imports: the import graph of harmo_fast/, built
with `ast` from module-level `import` statements (function-level imports and `if TYPE_CHECKING:`
blocks are not executed at import time, so they are left out), has no cycle. A package whose
__init__ resolves names lazily (a module-level {name: "harmo_fast.module"} map read by
`__getattr__`) imports that module at `from package import name`, so that counts as its edge."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "harmo_fast"


def module_names(root: Path = PACKAGE) -> dict[str, Path]:
    """Dotted module name -> file, a package by its own name (its __init__.py)."""
    out = {}
    for path in root.rglob("*.py"):
        parts = list(path.relative_to(root.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        out[".".join(parts)] = path
    return out


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _top_level_imports(tree: ast.Module) -> list[ast.Import | ast.ImportFrom]:
    """Import statements run at import time: module level, also inside try/if (not TYPE_CHECKING)."""
    found, todo = [], list(tree.body)
    while todo:
        node = todo.pop()
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            found.append(node)
        elif isinstance(node, ast.If) and not _is_type_checking(node):
            todo += node.body + node.orelse
        elif isinstance(node, ast.Try):
            todo += node.body + node.orelse + node.finalbody + [s for h in node.handlers for s in h.body]
    return found


def lazy_names(tree: ast.Module, modules: dict[str, Path]) -> dict[str, str]:
    """name -> module of a module-level dict literal whose values all name package modules."""
    out: dict[str, str] = {}
    for node in tree.body:
        if isinstance(node, (ast.Assign, ast.AnnAssign)) and isinstance(node.value, ast.Dict):
            pairs = list(zip(node.value.keys, node.value.values))
            if pairs and all(
                isinstance(k, ast.Constant) and isinstance(v, ast.Constant) and v.value in modules for k, v in pairs
            ):
                out.update({k.value: v.value for k, v in pairs})
    return out


def _resolve(node: ast.ImportFrom, importer: str, is_package: bool) -> str:
    if not node.level:
        return node.module or ""
    base = importer.split(".")
    base = base[: len(base) - node.level + (1 if is_package else 0)]
    return ".".join(base + ([node.module] if node.module else []))


def import_graph(modules: dict[str, Path]) -> dict[str, set[str]]:
    """Module -> the package modules its top-level imports execute: the imported module, a
    submodule named in `from pkg import sub`, and the imported module's enclosing packages (their
    __init__ runs first) other than the importer's own (already being imported)."""
    trees = {name: ast.parse(path.read_text(), str(path)) for name, path in modules.items()}
    lazy = {name: lazy_names(tree, modules) for name, tree in trees.items() if modules[name].name == "__init__.py"}
    graph: dict[str, set[str]] = {name: set() for name in modules}
    for name, path in modules.items():
        is_package = path.name == "__init__.py"
        own = {".".join(name.split(".")[:i]) for i in range(1, name.count(".") + 2)}
        for node in _top_level_imports(trees[name]):
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            else:
                base = _resolve(node, name, is_package)
                targets = [_from_target(base, a.name, modules, lazy) for a in node.names]
            for target in targets:
                parts = target.split(".")
                for i in range(1, len(parts) + 1):
                    dep = ".".join(parts[:i])
                    if dep in modules and dep not in own:
                        graph[name].add(dep)
    return graph


def _from_target(base: str, name: str, modules: dict[str, Path], lazy: dict[str, dict[str, str]]) -> str:
    if f"{base}.{name}" in modules:
        return f"{base}.{name}"
    return lazy.get(base, {}).get(name, base)


def find_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (or a self-import), sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles: list[list[str]] = []

    def visit(v: str) -> None:  # Tarjan's algorithm
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
            if len(component) > 1 or v in graph[v]:
                cycles.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return sorted(cycles)


def _write(root: Path, files: dict[str, str]) -> dict[str, Path]:
    for rel, text in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)
    return module_names(root / "pkg")


def test_the_graph_sees_cycles_through_package_inits_and_lazy_names(tmp_path):
    modules = _write(tmp_path, {
        "pkg/__init__.py": "", "pkg/sub/__init__.py": "from pkg.sub import a\n",
        "pkg/sub/a.py": "import os\nfrom pkg import b\n", "pkg/b.py": "from pkg.sub.c import X\n",
        "pkg/sub/c.py": "X = 1\n",
        "pkg/lazy/__init__.py": 'LAZY = {"f": "pkg.lazy.d"}\n', "pkg/lazy/d.py": "from pkg.e import g\n",
        "pkg/e.py": "def g():\n    from pkg.lazy import f\n", "pkg/h.py": "from pkg.lazy import f\n",
    })  # fmt: skip
    graph = import_graph(modules)
    assert graph["pkg.b"] == {"pkg.sub", "pkg.sub.c"}  # importing pkg.sub.c runs pkg/sub/__init__.py first
    assert graph["pkg.sub.a"] == {"pkg.b"} and graph["pkg.e"] == set()  # a function-level import is no edge
    assert graph["pkg.h"] == {"pkg.lazy", "pkg.lazy.d"}
    assert find_cycles(graph) == [["pkg.b", "pkg.sub", "pkg.sub.a"]]


def test_no_import_cycles_in_the_package():
    cycles = find_cycles(import_graph(module_names()))
    assert not cycles, "import cycles among top-level imports:\n" + "\n".join(" -> ".join(c) for c in cycles)
