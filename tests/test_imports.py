"""The import graph inside `tinygraph` runs one way: no cycles, lazy (in-function) imports
included. Parsed with `ast`, so an import hidden inside a function counts as much as one at the
top of a file."""
from __future__ import annotations

import ast
from pathlib import Path

import tinygraph

ROOT = Path(tinygraph.__file__).resolve().parent  # the package under test, wherever it is

# The one back edge allowed: `tinygraph.nn` modules write ``import tinygraph as tg`` and read
# ``tg.tanh`` at call time; the facade imports `nn` last, after everything `nn` uses.
ALLOWED_BACK_EDGES = {("tinygraph.nn", "tinygraph")}


def _modules() -> dict[str, Path]:
    mods = {}
    for path in ROOT.rglob("*.py"):
        parts = list(path.relative_to(ROOT.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        mods[".".join(parts)] = path
    return mods


def _imports(name: str, path: Path, mods: dict) -> set[str]:
    """Every tinygraph module that `name` imports anywhere in its file."""
    is_pkg = path.name == "__init__.py"
    package = name if is_pkg else name.rpartition(".")[0]
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[:len(base) - (node.level - 1)]
                mod = ".".join(base + ([node.module] if node.module else []))
            else:
                mod = node.module or ""
            # `from pkg import sub` imports the submodule; `from mod import name` the module
            targets = [f"{mod}.{a.name}" if f"{mod}.{a.name}" in mods else mod for a in node.names]
        else:
            continue
        out.update(t for t in targets if t in mods and t != name)
    return out


def _graph() -> dict[str, set[str]]:
    mods = _modules()
    graph = {name: _imports(name, path, mods) for name, path in mods.items()}
    for src, dst in ALLOWED_BACK_EDGES:
        for name in graph:
            if name == src or name.startswith(src + "."):
                graph[name].discard(dst)
    return graph


def _find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """A cycle as a list of modules, or None (iterative depth-first search, no recursion)."""
    state: dict[str, int] = {}  # 1 on the current path, 2 done
    for start in sorted(graph):
        if state.get(start):
            continue
        stack = [(start, iter(sorted(graph[start])))]
        path = [start]
        state[start] = 1
        while stack:
            node, it = stack[-1]
            nxt = next(it, None)
            if nxt is None:
                stack.pop()
                path.pop()
                state[node] = 2
            elif state.get(nxt) == 1:
                return path[path.index(nxt):] + [nxt]
            elif not state.get(nxt):
                state[nxt] = 1
                path.append(nxt)
                stack.append((nxt, iter(sorted(graph[nxt]))))
    return None


def test_no_import_cycle_inside_tinygraph():
    graph = _graph()
    assert "tinygraph.tensor" in graph and "tinygraph.nn.module" in graph
    cycle = _find_cycle(graph)
    assert cycle is None, "import cycle: " + " -> ".join(cycle)


def test_the_cycle_finder_finds_a_cycle():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": set()}
    assert _find_cycle(graph) == ["a", "b", "c", "a"]
    assert _find_cycle({"a": {"b"}, "b": set()}) is None


def test_the_engine_core_sits_below_the_tensor_users():
    graph = _graph()
    assert graph["tinygraph.tape"] <= {"tinygraph.registry"}
    assert "tinygraph.autograd" not in graph["tinygraph.tensor"]
    assert "tinygraph.ops" not in graph["tinygraph.tensor"]
    assert "tinygraph.debug" not in graph["tinygraph.tensor"] | graph["tinygraph.autograd"]
