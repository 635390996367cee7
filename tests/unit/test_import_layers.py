"""The package is layered: no module imports one that imports it back, and each imports alone.

A cycle makes the import order matter: which module of the cycle a program
imports first decides which one sees the other half-initialised, so a new
entry point (a host, a test, a user's script) can fail with an `ImportError`
that no existing test sees. A cycle hidden behind `if TYPE_CHECKING:` or
inside a function is still a cycle between the two jobs, so the graph counts
every import statement wherever it stands. `wfc.runtime.ports` and
`wfc.runtime.records` (with `job_records` and `ai_records`, and `record_builders`, how records are built) are
the bottom of the runtime: everything else imports them, so they import nothing of
wfc's but each other.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from collections import deque
from pathlib import Path

import wfc

PACKAGE = Path(wfc.__file__).parent

# Modules that do something when imported, so importing them alone means nothing:
# `python -m wfc` runs the CLI, and Alembic's env runs migrations on the connection
# Alembic hands it.
NOT_IMPORTABLE_ALONE = {"wfc.__main__", "wfc.runtime.adapters.sql.migrations.env"}

BOTTOM = {
    "wfc.runtime.ports",
    "wfc.runtime.persistence_port",
    "wfc.runtime.job_port",
    "wfc.runtime.records",
    "wfc.runtime.job_records",
    "wfc.runtime.ai_records",
    "wfc.runtime.record_builders",
}


def package_modules() -> dict[str, Path]:
    """Every module of the package by dotted name (a package by its own name)."""
    modules: dict[str, Path] = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        modules[".".join(parts)] = path
    return modules


def imports_of(name: str, path: Path, modules: dict[str, Path]) -> set[str]:
    """The package's modules that `name` imports anywhere in its file: at the top, under
    `if TYPE_CHECKING:` and inside functions. `from a import b` is an import of the
    module `a.b` when there is one, else of `a`."""
    is_package = path.name == "__init__.py"
    here = name.split(".") if is_package else name.split(".")[:-1]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names if alias.name in modules)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = here[: len(here) - node.level + 1]
                base = ".".join([*parent, *([node.module] if node.module else [])])
            for alias in node.names:
                submodule = f"{base}.{alias.name}"
                if submodule in modules:
                    found.add(submodule)
                elif base in modules:
                    found.add(base)
    found.discard(name)
    return found


def import_graph() -> dict[str, set[str]]:
    """Module → the package's modules it imports."""
    modules = package_modules()
    return {name: imports_of(name, path, modules) for name, path in modules.items()}


def strongly_connected(graph: dict[str, set[str]]) -> list[list[str]]:
    """Tarjan's components of more than one module: each is one knot of cycles."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[list[str]] = []

    def visit(module: str) -> None:
        index[module] = low[module] = len(index)
        stack.append(module)
        on_stack.add(module)
        for target in sorted(graph[module]):
            if target not in index:
                visit(target)
                low[module] = min(low[module], low[target])
            elif target in on_stack:
                low[module] = min(low[module], index[target])
        if low[module] == index[module]:
            component: list[str] = []
            while True:
                top = stack.pop()
                on_stack.discard(top)
                component.append(top)
                if top == module:
                    break
            if len(component) > 1:
                components.append(sorted(component))

    for module in sorted(graph):
        if module not in index:
            visit(module)
    return components


def shortest_cycle(graph: dict[str, set[str]], component: list[str]) -> list[str]:
    """The shortest cycle through the component's first module, as `a, b, …, a`."""
    start, members = component[0], set(component)
    came_from: dict[str, str] = {}
    queue = deque([start])
    while queue:
        module = queue.popleft()
        for target in sorted(graph[module] & members):
            if target == start:
                path = [module]
                while path[-1] != start:
                    path.append(came_from[path[-1]])
                return [*reversed(path), start]
            if target not in came_from:
                came_from[target] = module
                queue.append(target)
    raise AssertionError(f"{component} is not a cycle")


def reachable(graph: dict[str, set[str]], start: str) -> set[str]:
    """Every module `start` imports, directly or through others."""
    seen: set[str] = set()
    todo = [start]
    while todo:
        for target in graph[todo.pop()] - seen:
            seen.add(target)
            todo.append(target)
    return seen


def test_the_import_graph_has_no_cycles() -> None:
    graph = import_graph()
    cycles = [" -> ".join(shortest_cycle(graph, c)) for c in strongly_connected(graph)]
    assert not cycles, "import cycles:\n  " + "\n  ".join(cycles)


def test_the_cycle_finder_finds_a_cycle_behind_type_checking() -> None:
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert strongly_connected(graph) == [["a", "b", "c"]]
    assert shortest_cycle(graph, ["a", "b", "c"]) == ["a", "b", "c", "a"]


def test_ports_and_records_sit_at_the_bottom() -> None:
    graph = import_graph()
    for module in sorted(BOTTOM):
        assert reachable(graph, module) <= BOTTOM, f"{module} imports above itself"


# Each module is imported with no wfc module loaded, as a program importing it first would.
# The third-party libraries wfc imports when it loads are imported once, and each wfc
# module in a child forked from that state: those libraries never import wfc, so this
# cannot hide an order problem, and it saves an interpreter start-up per module.
#
# Importing `a.b.c` alone first imports its package `a.b` alone, to the end, and only then
# `a.b.c`: so the child that imported `a.b` forks the children that import its modules,
# from exactly the state their own import would reach first. Each package is imported
# once, not once per module under it (`wfc.runtime.adapters.sql` loads 150 modules of
# wfc's, and forking every one of its modules from nothing cost 0.3 s of CPU each: the
# test took 20 s of CPU, two minutes on a loaded CI machine, and timed out). A module
# that its package's import loads is not imported again: that import is already done.
_IMPORT_EACH = """
import importlib, os, sys, traceback
for library in sys.argv[1].split(","):
    try:
        importlib.import_module(library)
    except Exception:
        pass
assert not [m for m in sys.modules if m == "wfc" or m.startswith("wfc.")]
listed = set(sys.argv[2:])
under = {}  # a package (or "", the top) -> the listed modules right under it
for module in sys.argv[2:]:
    package = module.rpartition(".")[0]
    while package and package not in listed:  # a namespace package, or one not listed
        package = package.rpartition(".")[0]
    under.setdefault(package, []).append(module)


def import_each_under(package):
    \"\"\"Import each module under `package` alone, in this process that has imported
    `package` alone (or nothing of wfc's, at the top); the modules that failed.\"\"\"
    failed = []
    for module in under.get(package, []):
        if module in sys.modules:  # loaded by its package's import, here
            failed += import_each_under(module)
            continue
        sys.stdout.flush()
        sys.stderr.flush()
        read, write = os.pipe()
        pid = os.fork()
        if pid == 0:
            os.close(read)
            try:
                importlib.import_module(module)
            except BaseException:
                traceback.print_exc()
                failed_here = [module]
            else:
                failed_here = import_each_under(module)
            with os.fdopen(write, "w") as out:
                out.write(" ".join(failed_here))
            os._exit(0)
        os.close(write)
        with os.fdopen(read) as pipe:
            failed += pipe.read().split()
        if os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]) != 0:
            failed.append(module)
    return failed


print("failed:" + ",".join(import_each_under("")))
"""


def third_party_imported_at_top(modules: dict[str, Path]) -> set[str]:
    """What the package's modules import when they load (not in a
    function, not only for type checking)."""
    names: set[str] = set()
    for path in modules.values():
        for node in ast.parse(path.read_text()).body:
            if isinstance(node, ast.Import):
                names.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                names.add(node.module)
    return {name for name in names if name.partition(".")[0] not in {"wfc", "__future__"}}


def test_every_module_imports_alone() -> None:
    modules = package_modules()
    names = sorted(set(modules) - NOT_IMPORTABLE_ALONE)
    libraries = ",".join(sorted(third_party_imported_at_top(modules)))
    done = subprocess.run(
        [sys.executable, "-c", _IMPORT_EACH, libraries, *names],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    failed = done.stdout.rpartition("failed:")[2].strip()
    assert not failed, f"these modules fail to import alone: {failed}\n{done.stderr}"
