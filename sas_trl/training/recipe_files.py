"""Recipe files: a YAML mapping (with an optional `env:` mapping and `base:` include) read and written.

`TrlParser` has no layering, so `base:` includes are resolved here, when the file is read, before validation.
Every mapping key is checked to be unique (also `1` against `"1"`, which name the same recipe key or condition),
and the merged recipe remembers which file and line each key came from, so an error names the file that holds
the value, not the one that includes it.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import yaml

from ..errors import RecipeError, UserError
from ..redaction import redact_recipe
from .packaged import resolve_base

MAX_INCLUDE_DEPTH = 32  # a chain of `base:` includes deeper than this is a mistake, not a layering


class RepeatedKeyError(yaml.constructor.ConstructorError):
    """A YAML mapping holds one key twice (YAML would keep the last value without a word)."""


MERGE_TAG = "tag:yaml.org,2002:merge"  # `<<: *anchor`: the anchored mapping's keys, which this mapping's own override


class _UniqueKeyLoader(yaml.SafeLoader):
    """`yaml.SafeLoader` that refuses a mapping holding one key twice (compared as text: `1` and `"1"` too).

    Merge keys (`<<:`) work as in PyYAML: keys a mapping takes from a merge are not its own, so its own may
    override them; what a mapping writes itself (`<<` included) must still be unique.
    """

    def check_unique_keys(self, root: yaml.Node) -> None:
        """Every mapping of the composed document, in document order, before anything is constructed (the
        construction flattens merges, after which a mapping's own keys cannot be told from merged ones)."""
        pending, visited = [root], set()
        while pending:
            node = pending.pop()
            if id(node) in visited:  # an alias is the anchored node itself
                continue
            visited.add(id(node))
            if isinstance(node, yaml.MappingNode):
                seen: dict[str, int] = {}
                for key_node, _ in node.value:
                    merge = key_node.tag == MERGE_TAG
                    text = "<<" if merge else str(self.construct_object(key_node, deep=True))
                    line = key_node.start_mark.line + 1
                    if text in seen:
                        raise RepeatedKeyError(
                            None, None, f"key {text!r} appears twice (lines {seen[text]} and {line})"
                        )
                    seen[text] = line
                pending.extend(reversed([child for pair in node.value for child in pair]))
            elif isinstance(node, yaml.SequenceNode):
                pending.extend(reversed(node.value))


class Recipe(dict):
    """A recipe's mapping, plus where each key was written (`location(key)`: "FILE, line N")."""

    def __init__(self, values: dict[str, Any] = (), sources: dict[str, str] | None = None):
        super().__init__(values)
        self.sources: dict[str, str] = dict(sources or {})

    def location(self, key: str, default: str = "the recipe") -> str:
        """The file (and line) that holds `key`'s value, or `default` when unknown."""
        return self.sources.get(key, default)


MAX_DEPTH = 32  # recipes and studies nest a few levels (reward_params.NAME.PARAM); more is a mistake
DEPTH_HINT = "recipes and study files are mappings a few levels deep"


def nesting(value: Any) -> int:
    """How many levels of lists and mappings `value` holds (iteratively: no recursion limit to reach; each
    container once, so YAML aliases that share or contain a node cannot make it loop or explode)."""
    deepest, stack, seen = 0, [(value, 1)], set()
    while stack:
        item, depth = stack.pop()
        children = item.values() if isinstance(item, dict) else item if isinstance(item, list) else None
        if children is None or id(item) in seen:
            continue
        seen.add(id(item))
        deepest = max(deepest, depth)
        stack.extend((child, depth + 1) for child in children)
    return deepest


def load_yaml(path: Path, what: str, error: type[UserError] = RecipeError) -> tuple[Any, dict[str, int]]:
    """A YAML file's content (repeated keys refused) and the line of each key (`KEY`, and `KEY.SUBKEY` one level
    down); errors name the file."""
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as err:
        raise error(f"{what} {path} is not a text file ({err.reason} at byte {err.start})") from err
    loader = _UniqueKeyLoader(text)
    try:
        node = loader.get_single_node()
        if node is not None:
            loader.check_unique_keys(node)
        data = loader.construct_document(node) if node is not None else None
    except RepeatedKeyError as err:
        raise error(f"{what} {path}: {err.problem}; each key may appear once") from err
    except RecursionError as err:  # PyYAML builds nested nodes recursively
        raise error(f"{what} {path} is nested too deeply to read (thousands of levels); {DEPTH_HINT}") from err
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f", line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        problem = getattr(err, "problem", None) or " ".join(str(err).split())
        raise error(f"{what} {path} is not valid YAML{where}: {problem}") from err
    finally:
        loader.dispose()
    depth = nesting(data)
    if depth > MAX_DEPTH:
        raise error(f"{what} {path} is nested {depth} levels deep, more than {MAX_DEPTH}; {DEPTH_HINT}")
    lines = {}  # after construction every merge is flattened: merged keys first, then the mapping's own
    if isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            lines[str(key.value)] = key.start_mark.line + 1
            if isinstance(value, yaml.MappingNode):  # `env:` entries, study conditions: "env.NAME"
                lines.update({f"{key.value}.{k.value}": k.start_mark.line + 1 for k, _ in value.value})
    return data, lines


def load_recipe(path: str | os.PathLike, _including: tuple[Path, ...] = ()) -> Recipe:
    """The recipe's mapping (with its `env:` mapping, if any), or a `RecipeError` naming the file.

    A `base: OTHER.yaml` key (a path relative to the recipe) includes another recipe first; the including
    recipe's keys win, and `env:` mappings merge. Ablations and baselines then hold only what they change.
    The result's `sources` say which file and line each key (and each `env:` entry, as `env.NAME`) came from.
    """
    path = Path(path)
    if not path.is_file():
        raise RecipeError(f"recipe not found: {path}")
    recipe, lines = load_yaml(path, "recipe")
    if recipe is None:
        raise RecipeError(f"recipe {path} is empty; a recipe is a YAML mapping of field: value")
    if not isinstance(recipe, dict):
        raise RecipeError(f"recipe {path} must be a YAML mapping of field: value, got {type(recipe).__name__}")
    for key in recipe:
        if not isinstance(key, str):
            raise RecipeError(f"recipe {path}, line {lines.get(str(key), '?')}: key {key!r} is not a field name")
    sources = {key: f"{path}, line {lines[key]}" if key in lines else str(path) for key in recipe}
    env = recipe.get("env", {})
    if not isinstance(env, dict):
        raise RecipeError(f"recipe {path}: 'env' must be a mapping of VARIABLE: value")
    for key, value in env.items():
        line = lines.get(f"env.{key}")
        sources[f"env.{key}"] = f"{path}, line {line}" if line else sources["env"]
        _check_env_entry(key, value, sources[f"env.{key}"])
    if "base" not in recipe:
        return Recipe(recipe, sources)
    base_name = recipe.pop("base")
    if not isinstance(base_name, str):
        raise RecipeError(f"recipe {path}: 'base' must be the path of another recipe, got {base_name!r}")
    base_path = resolve_base(path, base_name)  # relative to this recipe; else a packaged recipe of that name
    if base_path in (*_including, path.resolve()):
        raise RecipeError(f"recipe {path}: 'base: {base_name}' includes itself")
    if not base_path.is_file():
        raise RecipeError(f"recipe {path}: base recipe {base_name!r} not found (looked for {base_path})")
    if len(_including) + 1 >= MAX_INCLUDE_DEPTH:
        raise RecipeError(
            f"recipe {path}: 'base: {base_name}' is more than {MAX_INCLUDE_DEPTH} includes deep (the chain starts "
            f"at {_including[0] if _including else path}); include the recipe you need directly"
        )
    base = load_recipe(base_path, (*_including, path.resolve()))
    merged = Recipe({**base, **recipe}, {**base.sources, **sources})
    if "env" in base or "env" in recipe:
        merged["env"] = {**base.get("env", {}), **recipe.get("env", {})}
    return merged


def _check_env_entry(key, value, where: str) -> None:
    """An `env:` entry the operating system would refuse is a `RecipeError` naming it (not a traceback later)."""
    if not isinstance(key, str) or not key:
        raise RecipeError(f"recipe {where}: env key {key!r} is not a variable name (a non-empty string)")
    if "=" in key or "\0" in key:
        bad = "'='" if "=" in key else "a NUL character"
        raise RecipeError(f"recipe {where}: env key {key!r} contains {bad}, which no environment variable name can")
    if not isinstance(value, str | int | float | bool):
        raise RecipeError(f"recipe {where}: env {key!r} must be a string or number, got {type(value).__name__}")
    if "\0" in str(value):
        raise RecipeError(f"recipe {where}: env {key!r} has a NUL character in its value, which the OS refuses")


# Variables that make a process load code other than the installed one: the dynamic loader's (glibc's LD_*, macOS's
# DYLD_*), Python's module search and start-up hooks, and bash's start-up file. A recipe may set them only when the
# person running it asks, in their own environment (a recipe cannot ask for itself), and never sets the switch.
LOADER_PREFIXES = ("LD_", "DYLD_")
LOADER_VARIABLES = ("PYTHONPATH", "PYTHONHOME", "PYTHONSTARTUP", "PYTHONUSERBASE", "PYTHONPLATLIBDIR",
                    "PYTHONBREAKPOINT", "BASH_ENV")  # fmt: skip
ALLOW_LOADER_ENV = "SAS_TRL_ALLOW_LOADER_ENV"  # "1" (all) or the names allowed, comma-separated


def is_loader_variable(name: str) -> bool:
    upper = str(name).upper()
    return upper.startswith(LOADER_PREFIXES) or upper in LOADER_VARIABLES


def check_env_allowed(env: dict[str, Any], recipe: dict[str, Any]) -> None:
    """Refuse `env:` entries that load other code (`LOADER_PREFIXES`, `LOADER_VARIABLES`) unless the environment
    allows them (`ALLOW_LOADER_ENV`), and any entry that sets the switch itself; the error names the file and line."""
    allowed = os.environ.get(ALLOW_LOADER_ENV, "").strip()
    names = {n.strip().upper() for n in allowed.split(",") if n.strip()}
    every = allowed.lower() in ("1", "true", "yes", "all")
    for key in env:
        where = recipe.location(f"env.{key}", "file") if isinstance(recipe, Recipe) else "file"
        if str(key).upper() == ALLOW_LOADER_ENV:
            raise RecipeError(
                f"recipe {where}: env sets {key}, the switch that lets a recipe set loader variables; only the "
                "environment you run sas-trl in can set it"
            )
        if not is_loader_variable(key) or every or str(key).upper() in names:
            continue
        hint = (
            "; to import a dotted-path reward, put its folder on PYTHONPATH in the shell that runs sas-trl"
            if str(key).upper() == "PYTHONPATH"
            else ""
        )
        raise RecipeError(
            f"recipe {where}: env sets {key}, which makes the processes of the run load other code (the dynamic "
            f"loader's LD_*/DYLD_*, {', '.join(LOADER_VARIABLES)}); a recipe is code, so it may set it only when "
            f"you ask: run with {ALLOW_LOADER_ENV}={key} (or {ALLOW_LOADER_ENV}=1 for every such variable) in your "
            f"environment{hint}"
        )


def dump_recipe(resolved: dict[str, Any]) -> str:
    """YAML text of a resolved recipe (loadable again with --recipe), credentials redacted (`redaction`): a
    secret-named key or `env:` entry reads `<redacted>`, and a credential's value anywhere else too."""
    return yaml.safe_dump(
        redact_recipe(resolved), sort_keys=False, allow_unicode=True, default_flow_style=False, width=1000
    )
