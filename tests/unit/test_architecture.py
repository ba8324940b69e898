"""The structure docs/architecture.md describes holds: no import cycle, one place that chooses the
backend, development tools out of what a worker imports, and a map that lists every file."""

from __future__ import annotations

import ast
import re
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "include" / "ioc_analytics"


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _modules() -> set[str]:
    return {_module_name(p) for p in PACKAGE.rglob("*.py")}


def _runtime_imports(path: Path, modules: set[str]) -> set[str]:
    """Every ioc_analytics module ``path`` imports, at the top or inside a function (lazy imports
    are still dependencies), leaving out ``if TYPE_CHECKING:`` blocks, which never run."""
    tree = ast.parse(path.read_text())
    skipped: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            skipped |= {id(n) for child in node.body for n in ast.walk(child)}
    found = set()
    for node in ast.walk(tree):
        if id(node) in skipped:
            continue
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.startswith("ioc_analytics")}
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("ioc_analytics"):
            submodules = {f"{node.module}.{a.name}" for a in node.names} & modules
            # `from pkg import module` depends on the module; `from module import name` on the module
            found |= submodules or {node.module}
    return found


def _graph() -> dict[str, set[str]]:
    paths = {_module_name(p): p for p in PACKAGE.rglob("*.py")}
    return {name: {m for m in _runtime_imports(path, set(paths)) if m in paths and m != name}
            for name, path in paths.items()}


def _closure(graph: dict[str, set[str]], start: set[str]) -> set[str]:
    seen, todo = set(), list(start)
    while todo:
        name = todo.pop()
        if name not in seen:
            seen.add(name)
            todo += graph.get(name, ())
            todo += [p for p in _parents(name) if p in graph]  # importing a.b.c runs a/__init__, a/b/__init__
    return seen


def _parents(name: str) -> list[str]:
    parts = name.split(".")
    return [".".join(parts[:n]) for n in range(1, len(parts))]


def test_the_package_has_no_import_cycle():
    graph = _graph()
    state: dict[str, int] = {}
    cycles = []

    def visit(name: str, path: list[str]) -> None:
        state[name] = 1
        for dep in sorted(graph[name]):
            if state.get(dep) == 1:
                cycles.append(path[path.index(dep):] + [dep] if dep in path else [name, dep])
            elif dep not in state:
                visit(dep, [*path, dep])
        state[name] = 2

    for name in sorted(graph):
        if name not in state:
            visit(name, [name])
    assert not cycles, "import cycles: " + "; ".join(" -> ".join(c) for c in cycles)


def test_the_cycle_check_finds_a_cycle(tmp_path, monkeypatch):
    """The check above can fail: two modules that import each other are a cycle to it."""
    package = tmp_path / "ioc_analytics"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "a.py").write_text("from ioc_analytics import b\n")
    (package / "b.py").write_text("def f():\n    from ioc_analytics.a import x\n")
    monkeypatch.setattr(__import__(__name__, fromlist=["PACKAGE"]), "PACKAGE", package)
    with pytest.raises(AssertionError, match="ioc_analytics.a -> ioc_analytics.b -> ioc_analytics.a"):
        test_the_package_has_no_import_cycle()


def _python_files_outside_backends() -> list[Path]:
    files = [p for p in PACKAGE.rglob("*.py") if "backends" not in p.relative_to(PACKAGE).parts]
    return files + sorted((ROOT / "dags").glob("*.py")) + sorted((ROOT / "plugins").glob("*.py"))


def test_only_the_backends_ask_which_backend_they_are_on():
    asked = []
    for path in _python_files_outside_backends():
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.Compare):
                sides = [node.left, *node.comparators]
                if any(isinstance(s, ast.Attribute) and s.attr == "backend" for s in sides) and \
                        path.name != "settings.py":  # settings checks the name is a backend at all
                    asked.append(f"{path.relative_to(ROOT)}:{node.lineno}")
            if isinstance(node, ast.ImportFrom) and node.module and re.match(
                    r"ioc_analytics\.backends\.(local|aws)\b", node.module) and "devtools" not in path.parts:
                asked.append(f"{path.relative_to(ROOT)}:{node.lineno} imports {node.module}")
    assert not asked, "the backend is chosen outside ioc_analytics.backends: " + ", ".join(asked)


def test_a_worker_imports_no_development_tool():
    """What the DAG files and the plugin import, lazily or not, never reaches the generator, the
    fault corpus, the cost guard or the bench's scan planning (``ioc_analytics.devtools``)."""
    graph = _graph()
    entry = set()
    for path in [*sorted((ROOT / "dags").glob("*.py")), *sorted((ROOT / "plugins").glob("*.py"))]:
        entry |= {m for m in _runtime_imports(path, set(graph)) if m in graph}
    assert entry, "the DAG files import the package"
    reached = _closure(graph, entry)
    assert "ioc_analytics.analytics.pipeline" in reached
    assert not {m for m in reached if m.startswith("ioc_analytics.devtools")}, sorted(reached)


def _tracked() -> list[str]:
    return subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True).stdout.split()


def _listed(marker: str) -> set[str]:
    block = (ROOT / "docs" / "architecture.md").read_text().split(marker)[1]
    return set(re.findall(r"^\| `([^`]+)`", block, re.M))


def test_the_architecture_page_maps_every_file_of_the_package():
    """Its map names every module by its path in the package (an ``__init__.py`` that only marks a
    package aside), the SQL and template folders, and nothing that is not there."""
    listed = _listed("<!-- map -->")
    wanted, present = set(), set()
    for path in _tracked():
        if not path.startswith("include/ioc_analytics/"):
            continue
        relative = Path(path).relative_to("include/ioc_analytics")
        present |= {relative.as_posix()} | {f"{p.as_posix()}/" for p in relative.parents if str(p) != "."}
        if relative.suffix == ".py":
            if relative.name != "__init__.py" or (ROOT / path).read_text().strip():
                wanted.add(relative.as_posix())
        else:  # the SQL (package data) by its folder, a template by its own
            wanted.add("sql/" if relative.parts[0] == "sql" else f"{relative.parent.as_posix()}/")
    assert not wanted - listed, f"docs/architecture.md does not map {sorted(wanted - listed)}"
    assert not listed - present, f"docs/architecture.md maps what is not in the package: {sorted(listed - present)}"


def test_the_architecture_page_maps_every_file_of_the_repository():
    listed = _listed("<!-- repo -->")
    tracked = _tracked()
    unmapped = [p for p in tracked if p not in listed and not any(p.startswith(f) for f in listed if f.endswith("/"))]
    assert not unmapped, f"docs/architecture.md does not map {unmapped}"
    gone = [f for f in listed if f not in tracked and not any(p.startswith(f) for p in tracked)]
    assert not gone, f"docs/architecture.md maps what is not in the repository: {gone}"
