"""The floors of the package: verifiers/ at the bottom, nothing imports upward, no import loops.

Read from the source with ``ast``. Floors count every import, those inside functions
too: a deferred import is still a dependency, only a later one. Loops count
module-level imports only: a deferred import cannot form a loop at import time. A
module's floor is its longest matching prefix, so ``rlcot.generation.hf`` sits on the
generation floor, below the ``rlcot`` core, and is checked against it.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("verifiers", "rlcot", "evals")  # the folders; verifiers/ and evals/ install as rlcot.verifiers, rlcot.evals
# lower floors first: a module may import its own floor and those below, never above
FLOORS = ["rlcot.verifiers", "rlcot.thinking", "rlcot.generation", "rlcot", "rlcot.train", "rlcot.evals", "rlcot.demo",
          "rlcot.cli", "rlcot.__main__"]
# the only rlcot modules beside rlcot.evals that use it; a package counts with its modules (rlcot.cli.sweeps)
ENTRY_POINTS = ("rlcot.demo", "rlcot.cli", "rlcot.__main__")


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[0] in ("verifiers", "evals"):  # pyproject's package-dir mapping
        parts.insert(0, "rlcot")
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path, deferred: bool = False) -> set[str]:
    """Modules of ours that ``path`` imports (relative imports resolved): at module level, or anywhere."""
    tree = ast.parse(path.read_text())
    package = _module_name(path) if path.name == "__init__.py" else _module_name(path).rpartition(".")[0]
    found = set()
    for node in ast.walk(tree) if deferred else tree.body:
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            found.add(base)
            found.update(f"{base}.{alias.name}" for alias in node.names)
    return {name for name in found if name.split(".")[0] in PACKAGES}


def _files() -> list[Path]:
    return [p for package in PACKAGES for p in (ROOT / package).rglob("*.py")]


def _graph(deferred: bool = False) -> dict[str, set[str]]:
    modules = {_module_name(p): p for p in _files()}
    graph = {}
    for name, path in modules.items():
        deps = set()
        for dep in _imports(path, deferred):
            # importing a.b.c runs a/__init__ and a/b/__init__ first, unless we are inside them already
            parts = dep.split(".")
            deps.update(".".join(parts[:k]) for k in range(1, len(parts) + 1)
                        if not (name + ".").startswith(".".join(parts[:k]) + "."))
        graph[name] = {m for m in deps if m in modules and m != name}
    return graph


def _is_entry_point(module: str) -> bool:
    return any(module == entry or module.startswith(entry + ".") for entry in ENTRY_POINTS)


def _floor(module: str) -> int:
    """The index of the longest floor that is ``module`` or a package above it."""
    matching = [floor for floor in FLOORS if module == floor or module.startswith(floor + ".")]
    return FLOORS.index(max(matching, key=len))


def test_verifiers_import_nothing_of_rlcot_but_themselves_anywhere():
    outside = [(a, b) for a, deps in _graph(deferred=True).items() if a.startswith("rlcot.verifiers")
               for b in deps if not b.startswith("rlcot.verifiers")]
    assert outside == []


def test_nothing_imports_the_old_top_level_names():
    """``verifiers`` and ``evals`` are other projects' names on PyPI; ours are rlcot.verifiers and rlcot.evals."""
    old = sorted((_module_name(p), name) for p in _files() for name in _imports(p, deferred=True)
                 if name.split(".")[0] in ("verifiers", "evals"))
    assert old == []


def test_no_module_imports_a_floor_above_its_own():
    upward = [(a, b) for a, deps in _graph(deferred=True).items() for b in deps if _floor(b) > _floor(a)]
    assert upward == []


def test_no_rlcot_library_module_imports_evals_only_the_entry_points_do():
    users = sorted(a for a, deps in _graph(deferred=True).items() if not a.startswith("rlcot.evals")
                   and not _is_entry_point(a) and any(d.startswith("rlcot.evals") for d in deps))
    assert users == []


@pytest.mark.parametrize("module, entry", [
    ("rlcot/cli/_floor_probe.py", True),  # every module of the rlcot.cli package is the command line
    ("rlcot/train/_floor_probe.py", False),
])
def test_only_an_entry_point_module_may_import_evals(module, entry):
    path = ROOT / module
    try:
        path.write_text("def f():\n    from rlcot.evals.analysis import headline\n")
        name = _module_name(path)
        assert "rlcot.evals.analysis" in _graph(deferred=True)[name]
        assert _is_entry_point(name) is entry
    finally:
        path.unlink()


@pytest.mark.parametrize("module, source", [
    ("rlcot/generation/_floor_probe.py", "from ..tasks import Task\n"),  # generation below the core
    ("rlcot/_floor_probe.py", "def f():\n    from rlcot.cli import app\n"),  # deferred, still upward
    ("rlcot/train/_floor_probe.py", "def f():\n    from ..cli.sweeps import sweep\n"),  # a module of the cli package
])
def test_a_planted_upward_import_is_caught(module, source):
    path = ROOT / module
    try:
        path.write_text(source)
        name = _module_name(path)
        assert any(_floor(b) > _floor(name) for b in _graph(deferred=True)[name])
    finally:
        path.unlink()


def test_there_are_no_import_loops():
    graph, state, loops = _graph(), {}, []

    def visit(node, stack):
        state[node] = "open"
        for dep in graph[node]:
            if state.get(dep) == "open":
                loops.append(stack[stack.index(dep):] + [dep])
            elif dep not in state:
                visit(dep, stack + [dep])
        state[node] = "done"

    for node in graph:
        if node not in state:
            visit(node, [node])
    # a package's __init__ importing its own submodules is not a loop unless a submodule imports it back
    assert loops == []


@pytest.mark.parametrize("source, expected, deferred", [
    ("from rlcot.tasks import Task\n", {"rlcot.tasks", "rlcot.tasks.Task"}, False),
    ("def f():\n    import rlcot.cli\n", set(), False),  # deferred: not a module-level edge (loops)
    ("def f():\n    import rlcot.cli\n", {"rlcot.cli"}, True),  # but a dependency all the same (floors)
])
def test_the_import_reader_sees_module_level_or_every_import(tmp_path, source, expected, deferred):
    path = ROOT / "rlcot" / "_floor_probe.py"
    try:
        path.write_text(source)
        assert _imports(path, deferred) == expected
    finally:
        path.unlink()
