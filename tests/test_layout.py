"""The import graph: no cycles, and no module imports a higher layer (docs/layout.md)."""

from __future__ import annotations

import ast
from pathlib import Path

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


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports(path: Path) -> set[str]:
    """Every sas_trl module `path` imports, at module level or inside functions."""
    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                target = ".".join([*base, node.module] if node.module else base)
            else:
                target = node.module or ""
            if target.startswith("sas_trl"):
                found.add(target)
                found.update(f"{target}.{alias.name}" for alias in node.names)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names if alias.name.startswith("sas_trl"))
    modules = {module_name(p) for p in PACKAGE.rglob("*.py")}
    return {m for m in found if m in modules} - {name}


GRAPH = {module_name(p): imports(p) for p in PACKAGE.rglob("*.py")}


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

    def reaches(start: str, goal: str, seen: set[str]) -> bool:
        return any(n == goal or (n not in seen and reaches(n, goal, seen | {n})) for n in edges.get(start, ()))

    cycles = sorted(m for m in edges if m and reaches(m, m, {m}))
    assert not cycles, f"modules on an import cycle: {cycles}"


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
