"""The import graph: no cycles, and no module imports a higher layer (docs/layout.md)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import sas_trl

PACKAGE = Path(sas_trl.__file__).parent

# Lower layers never import higher ones. A module not listed here fails the test: place it when adding it.
LAYERS = {
    0: ["errors", "constants", "typecheck", "output_files", "redaction"],
    1: [
        "segmentation",
        "selection",
        "core",
        "trl_losses",
        "rollouts",
        "metrics",
        "vocabularies",
        "rewards",
        "render",
        "step_labels",
    ],
    2: ["config", "sas_metrics", "tiny", "data", "transforms", "completion_logs"],
    3: ["trainer", "task"],
    4: ["evaluation"],
    5: ["training"],
    6: ["compare"],
    7: ["cli", "integrations"],
}
LAYER_OF = {name: layer for layer, names in LAYERS.items() for name in names}


def top(module: str) -> str:
    """'sas_trl.training.run' -> 'training'; the package itself -> ''."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def module_name(path: Path, package: Path = PACKAGE) -> str:
    parts = path.relative_to(package.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports(path: Path, package: Path = PACKAGE) -> set[str]:
    """Every module of `package` that `path` imports: at module level, inside functions and under
    `if TYPE_CHECKING:` alike (each is an edge of the design, whether or not it runs at import time)."""
    name = module_name(path, package)
    parent = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = parent.split(".")
                base = base[: len(base) - node.level + 1]
                target = ".".join([*base, node.module] if node.module else base)
            else:
                target = node.module or ""
            if target.split(".")[0] == package.name:
                found.add(target)
                found.update(f"{target}.{alias.name}" for alias in node.names)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names if alias.name.split(".")[0] == package.name)
    modules = {module_name(p, package) for p in package.rglob("*.py")}
    # A module's own packages are imported before it in any case: `from . import x` is an edge to x only.
    ancestors = {".".join(name.split(".")[:i]) for i in range(1, name.count(".") + 1)}
    return {m for m in found if m in modules} - {name} - ancestors


def import_graph(package: Path) -> dict[str, set[str]]:
    """Each module of `package` (a folder) -> the package's modules it imports."""
    return {module_name(p, package): imports(p, package) for p in package.rglob("*.py")}


def import_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The graph's cycles, each as the modules on it (its strongly connected components of more than one module),
    sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    cycles = []

    def visit(module: str) -> None:  # Tarjan's algorithm
        index[module] = low[module] = len(index)
        stack.append(module)
        for target in graph.get(module, ()):
            if target not in index:
                visit(target)
                low[module] = min(low[module], low[target])
            elif target in stack:
                low[module] = min(low[module], index[target])
        if low[module] == index[module]:
            component = []
            while not component or component[-1] != module:
                component.append(stack.pop())
            if len(component) > 1:
                cycles.append(sorted(component))

    for module in sorted(graph):
        if module not in index:
            visit(module)
    return sorted(cycles)


GRAPH = import_graph(PACKAGE)


def test_every_module_has_a_layer():
    unplaced = {top(m) for m in GRAPH if top(m)} - set(LAYER_OF)
    assert not unplaced, f"place these modules in LAYERS: {sorted(unplaced)}"


def test_no_module_imports_a_higher_layer():
    upward = [
        (m, i)
        for m, targets in GRAPH.items()
        for i in targets
        if top(m) and top(i) and LAYER_OF[top(i)] > LAYER_OF[top(m)]
    ]
    assert not upward, upward


def test_no_import_cycles_between_top_level_modules():
    edges: dict[str, set[str]] = {}
    for m, targets in GRAPH.items():
        edges.setdefault(top(m), set()).update(top(i) for i in targets if top(i) not in ("", top(m)))
    assert not import_cycles(edges), f"modules on an import cycle: {import_cycles(edges)}"


def test_no_import_cycles_between_modules():
    # Inside a package too (compare/ once had study -> trajectory -> study through function-level imports).
    assert not import_cycles(GRAPH), f"modules on an import cycle: {import_cycles(GRAPH)}"


@pytest.mark.parametrize(
    "hidden",
    [
        "def later():\n    from .a import A\n",  # inside a function
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from .a import A\n",  # for type hints only
        "import pkg.a\n",  # absolute
    ],
)
def test_a_cycle_through_a_function_level_or_type_checking_import_is_found(tmp_path, hidden):
    package = tmp_path / "pkg"
    (package / "sub").mkdir(parents=True)
    (package / "__init__.py").write_text("from .a import A\n")
    (package / "sub" / "__init__.py").write_text("")
    (package / "a.py").write_text("from .sub import b\nA = 1\n")
    (package / "sub" / "b.py").write_text(hidden.replace("from .a", "from ..a"))
    (package / "c.py").write_text("from . import a\n")  # imports the cycle, is not on it
    graph = import_graph(package)
    assert graph["pkg.c"] == {"pkg.a"} and graph["pkg.sub.b"] == {"pkg.a"}
    assert import_cycles(graph) == [["pkg.a", "pkg.sub.b"]]
    (package / "sub" / "b.py").write_text("A = 1\n")
    assert import_cycles(import_graph(package)) == []


def test_the_grading_worker_script_imports_nothing_from_the_package():
    # It runs as a plain script in each worker process: a package import would pull in torch there.
    assert not GRAPH["sas_trl.rewards.grading"]


def test_no_module_imports_private_names_of_another():
    # What two modules share is public; a `_name` stays inside its own module.
    private = []
    for path in PACKAGE.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and (node.level or (node.module or "").startswith("sas_trl")):
                private += [
                    (module_name(path), node.module, a.name)
                    for a in node.names
                    if a.name.startswith("_") and not a.name.startswith("__")
                ]
    assert not private, private


def test_modules_stay_readable_in_size():
    sizes = {module_name(p): len(p.read_text().splitlines()) for p in PACKAGE.rglob("*.py")}
    assert max(sizes.values()) <= 450, {m: n for m, n in sizes.items() if n > 450}
    assert sizes["sas_trl.trainer"] <= 250  # glue around TRL's hooks; the bookkeeping lives in sas_metrics
