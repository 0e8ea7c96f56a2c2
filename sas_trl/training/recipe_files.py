"""Recipe files: a YAML mapping (with an optional `env:` mapping and `base:` include) read and written.

`TrlParser` has no layering, so `base:` includes are resolved here, when the file is read, before validation.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import yaml

from ..errors import RecipeError


def load_recipe(path: str | os.PathLike, _including: tuple[Path, ...] = ()) -> dict[str, Any]:
    """The recipe's mapping (with its `env:` mapping, if any), or a `RecipeError` naming the file.

    A `base: OTHER.yaml` key (a path relative to the recipe) includes another recipe first; the including
    recipe's keys win, and `env:` mappings merge. Ablations and baselines then hold only what they change.
    """
    path = Path(path)
    if not path.is_file():
        raise RecipeError(f"recipe not found: {path}")
    try:
        recipe = yaml.safe_load(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError as err:
        raise RecipeError(f"recipe {path} is not a text file ({err.reason} at byte {err.start})") from err
    except yaml.YAMLError as err:
        raise RecipeError(f"recipe {path} is not valid YAML: {err}") from err
    if recipe is None:
        raise RecipeError(f"recipe {path} is empty; a recipe is a YAML mapping of field: value")
    if not isinstance(recipe, dict):
        raise RecipeError(f"recipe {path} must be a YAML mapping of field: value, got {type(recipe).__name__}")
    env = recipe.get("env", {})
    if not isinstance(env, dict):
        raise RecipeError(f"recipe {path}: 'env' must be a mapping of VARIABLE: value")
    for key, value in env.items():
        if not isinstance(value, str | int | float | bool):
            raise RecipeError(f"recipe {path}: env {key!r} must be a string or number, got {type(value).__name__}")
    if "base" not in recipe:
        return recipe
    base_name = recipe.pop("base")
    if not isinstance(base_name, str):
        raise RecipeError(f"recipe {path}: 'base' must be the path of another recipe, got {base_name!r}")
    base_path = (path.parent / base_name).resolve()
    if base_path in (*_including, path.resolve()):
        raise RecipeError(f"recipe {path}: 'base: {base_name}' includes itself")
    if not base_path.is_file():
        raise RecipeError(f"recipe {path}: base recipe {base_name!r} not found (looked for {base_path})")
    base = load_recipe(base_path, (*_including, path.resolve()))
    merged = {**base, **recipe}
    if "env" in base or "env" in recipe:
        merged["env"] = {**base.get("env", {}), **recipe.get("env", {})}
    return merged


def dump_recipe(resolved: dict[str, Any]) -> str:
    """YAML text of a resolved recipe (loadable again with --recipe)."""
    return yaml.safe_dump(resolved, sort_keys=False, allow_unicode=True, default_flow_style=False, width=1000)
