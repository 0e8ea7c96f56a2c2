"""Validation before anything loads: unknown keys (with the nearest valid ones), types, raw values, local files,
and settings that are valid alone but not together. Each failure is a `RecipeError` naming the key or file.
"""

from __future__ import annotations

import difflib
import typing
from pathlib import Path
from typing import Any

from ..constants import BUILTIN_DATASET, BUILTIN_MODEL
from ..errors import RecipeError
from ..evaluation.model_files import model_folder_problem
from ..typecheck import matches, type_name
from .arguments import TRL_ONLY_KEYS, RunArguments, all_fields
from .recipe_files import Recipe
from .settings_checks import Where, check_model_init_kwargs


def check_keys(keys, source: str) -> None:
    """Unknown keys raise, naming the key and the nearest valid ones (and, for a loaded `Recipe`, the file and
    line that holds the key, which may be a `base:` file)."""
    from ..transforms import moved_key

    known = all_fields()
    for key in keys:
        if key == "env" or key in known:
            continue
        moved = moved_key(key)  # an old flat baseline key: say where it went
        if moved:
            raise RecipeError(f"{moved} (in {_location(keys, key, source)}; docs/baselines.md)")
        if key in TRL_ONLY_KEYS:
            raise RecipeError(
                f"{key!r} (in {_location(keys, key, source)}) is a key of TRL's own scripts that sas-trl does not "
                f"take: {TRL_ONLY_KEYS[key]} (docs/trl_recipes.md)"
            )
        close = difflib.get_close_matches(key, list(known), n=3, cutoff=0.6)
        hint = f"; did you mean {', '.join(repr(c) for c in close)}?" if close else ""
        raise RecipeError(f"unknown key {key!r} in {_location(keys, key, source)}{hint}")


def check_types(values: dict[str, Any], source: str) -> None:
    """Values of the wrong type raise, naming the key, the value and the expected type."""
    known = all_fields()
    for key, value in values.items():
        if key == "env":
            continue
        cls, f = known[key]
        hint = typing.get_type_hints(cls).get(f.name, Any)
        if not matches(hint, value):
            raise RecipeError(f"{key}: {value!r} in {_location(values, key, source)} is not a valid {type_name(hint)}")


def _location(recipe, key: str, source: str) -> str:
    """The file (and line) that holds `key`: a `Recipe` knows it for each key, even from a `base:` file."""
    return recipe.location(key, source) if isinstance(recipe, Recipe) else source


def check_local_files(run_args: RunArguments, model_args) -> None:
    """Local paths the recipe names must exist (Hub ids are checked when loaded)."""
    candidates = {
        "dataset_name": run_args.dataset_name,
        "accelerate_config": run_args.accelerate_config,
        "model_name_or_path": model_args.model_name_or_path,
    }
    for key, value in candidates.items():
        if not value or value.startswith("builtin:"):
            continue
        if _looks_local(value) and not Path(value).exists():
            raise RecipeError(f"{key}: local path {value!r} does not exist")
    model = model_args.model_name_or_path
    if model and not model.startswith("builtin:") and Path(model).expanduser().is_dir():
        problem = model_folder_problem(Path(model).expanduser())  # else transformers' traceback after the warm-up
        if problem is not None:
            raise RecipeError(f"model_name_or_path: {problem}")
    if model_args.model_name_or_path is None:
        raise RecipeError(f"model_name_or_path is required (a Hub id, a local folder, or {BUILTIN_MODEL!r})")


def _looks_local(value: str) -> bool:
    # A Hub id is "name" or "org/name"; anything with more parts, a leading ./ ~ /, or a data suffix is a path.
    return (
        value.startswith((".", "/", "~"))
        or value.count("/") > 1
        or value.endswith((".jsonl", ".json", ".parquet", ".yaml", ".yml"))
        or Path(value).exists()
    )


def check_settings(run_args: RunArguments, sas_args, model_args=None, where: Where = lambda key: "") -> None:
    """Settings that are valid alone but not together, or that TRL would accept and then misuse (each field's own
    range is checked earlier, by `settings_checks.check_values`)."""
    if model_args is not None:
        check_model_init_kwargs(
            sas_args.model_init_kwargs, model_args.model_name_or_path, model_args.model_revision, where
        )
    check_labels_available(sas_args.sas_rule, run_args.dataset_name)
    index, names = sas_args.sas_correct_reward_index, run_args.reward_funcs
    if index >= len(names):
        raise RecipeError(
            f"sas_correct_reward_index={index} is not valid: reward_funcs lists {len(names)} reward(s) "
            f"({', '.join(names)}); allowed values: 0..{len(names) - 1}"
        )
    from ..rewards import RunContext, reward_spec
    from ..transforms import check_run_context

    if not reward_spec(names[index]).correctness:
        correct = [i for i, name in enumerate(names) if reward_spec(name).correctness]
        raise RecipeError(
            f"sas_correct_reward_index={index} names reward {names[index]!r}, which does not grade correctness "
            f"(SAS's 'correct' must mean a right answer); correctness rewards in reward_funcs are at: "
            f"{', '.join(map(str, correct))}"
        )
    check_run_context(run_args, RunContext.of(run_args, sas_args))


def check_labels_available(rule, dataset_name: str | None) -> None:
    """An oracle selection reads ground-truth step labels, which only the built-in tasks have (`builtin:...`)."""
    if rule.needs_labels and not (dataset_name or "").startswith("builtin:"):
        raise RecipeError(
            f"sas_selection={rule.selection!r} needs ground-truth step labels, which only the built-in tasks have; "
            f"dataset_name={dataset_name!r} is not one (use dataset_name: {BUILTIN_DATASET}, or another selection)"
        )
