"""Recipes: TrlParser-compatible YAML files of `SASConfig`, `ModelConfig` and `RunArguments` fields.

A recipe is a flat YAML mapping (plus an optional `env:` mapping of environment variables), exactly what
`trl grpo --config` reads. Command-line flags override recipe values. `parse` checks everything before any
model or data is loaded: unknown keys (with the nearest valid ones), wrong types, bad values and missing local
files all raise `RecipeError` naming the key or file.

The parts: `recipe_files` (reading, `base:` includes, writing), `arguments` (`RunArguments`, every key),
`argv` (the command line as typed), `validation` (the checks). `RunArguments`, `dataclass_types`,
`load_recipe` and `dump_recipe` are importable from here too.
"""

from __future__ import annotations

import dataclasses
import os
import re
from typing import Any

from ..errors import RecipeError
from ..redaction import REDACTED, is_secret_name, redact_recipe, remember_recipe
from .arguments import RunArguments, dataclass_types
from .argv import flag_names, pop_recipe_flag, unescape_flags
from .launch import is_launched_child
from .packaged import PACKAGED, resolve_accelerate_config, resolve_path, resolve_recipe
from .preflight import build_flags, effective_values, join_problems, machine_problems
from .recipe_files import MAX_DEPTH, Recipe, check_env_allowed, dump_recipe, load_recipe
from .settings_checks import check_values
from .validation import check_keys, check_local_files, check_settings, check_types

__all__ = ["RunArguments", "build", "dataclass_types", "dump_recipe", "load_recipe", "parse"]


def parse(argv: list[str], *, this_machine: bool = False):
    """`--recipe FILE` (or TRL's `--config FILE`) plus `--field value` overrides -> (RunArguments, SASConfig,
    ModelConfig, recipe dict).

    The recipe dict holds the recipe's keys with command-line overrides applied (the resolved recipe), its
    credentials (`hub_token`, secret-named `env:` entries, ...) `<redacted>`: it is what gets saved. FILE is a
    path, or the name of a packaged recipe (`packaged.py`). With `this_machine`, settings this machine cannot
    run are refused too (`preflight.py`: a GPU recipe on a CPU, vLLM or wandb that cannot start, ...).
    """
    argv, source = pop_recipe_flag(list(argv))
    argv = unescape_flags(argv)
    check_flag_nesting(argv)
    recipe: dict[str, Any] = {}
    if source is not None:
        path = resolve_recipe(source)
        if this_machine and path.is_relative_to(PACKAGED) and not is_launched_child():
            print(f"sas-trl: recipe {source} is the packaged {path}", flush=True)
        recipe = load_recipe(path)
        check_keys(recipe, source)
        check_types(recipe, source)
    check_keys(flag_names(argv), "the command line")

    check_env_allowed(recipe.get("env", {}), recipe)  # loader variables only when the user asks
    remember_recipe(recipe)  # its credentials are redacted by value from here on (`redaction`)
    resolved = dict(recipe)
    recipe = without_redacted(recipe, tell=this_machine and not is_launched_child())
    for key, value in recipe.get("env", {}).items():
        os.environ[key] = str(value)
    if this_machine:
        values = effective_values(recipe, argv)
        problems = machine_problems(values)
        if problems:  # the recipe's own error too, in the same message, built as this machine can build it
            try:
                checked(recipe, [*argv, *build_flags(values)])
            except RecipeError as err:
                problems.insert(0, str(err))
            raise RecipeError(join_problems(problems))
    run_args, sas_args, model_args = checked(recipe, argv)

    for key in flag_names(argv):
        resolved[key] = _value_of(key, run_args, sas_args, model_args)
    remember_recipe(resolved)  # `--hub_token` and other credentials given as flags
    return run_args, sas_args, model_args, redact_recipe(resolved, by_value=False)


def without_redacted(recipe: dict[str, Any], tell: bool = False) -> dict[str, Any]:
    """The recipe less what a saved recipe redacted (`<redacted>`): such a key is left unset, and such an `env:`
    entry leaves the variable as the environment has it (with `tell`, a note when the environment lacks it)."""
    env = recipe.get("env", {})
    hidden = [k for k, v in env.items() if v == REDACTED]
    for name in hidden:
        if tell and name not in os.environ:
            print(f"sas-trl: env {name} is <redacted> in the recipe and not set here; set it to use it", flush=True)
    kept = {k: v for k, v in recipe.items() if not (is_secret_name(k) and v == REDACTED)}
    if hidden:
        kept["env"] = {k: v for k, v in env.items() if v != REDACTED}
    sources = recipe.sources if isinstance(recipe, Recipe) else {}
    return Recipe(kept, sources)


def check_flag_nesting(argv: list[str]) -> None:
    """A flag's JSON/YAML text nested deeper than a recipe may be (`MAX_DEPTH`): refused by name before a
    parser recurses into it (thousands of levels end in a RecursionError)."""
    name = None
    for arg in argv:
        if arg.startswith("--"):
            name, _, arg = arg[2:].partition("=")
        depth = deepest = 0
        for char in arg:
            depth += char in "[{"
            depth -= char in "]}"
            deepest = max(deepest, depth)
        if deepest > MAX_DEPTH:
            raise RecipeError(f"--{name}: the value is nested {deepest} levels deep, more than {MAX_DEPTH}")


def checked(recipe: dict[str, Any], argv: list[str]):
    """`build`, then the `recipes/...` paths mapped and the files and combined settings checked."""
    run_args, sas_args, model_args = build(recipe, argv)
    # `recipes/...` paths a recipe names: the packaged files when the current folder has no such file
    run_args.accelerate_config = resolve_accelerate_config(run_args.accelerate_config)  # a name: its file
    run_args.dataset_name = resolve_path(run_args.dataset_name)
    where = locator(recipe, argv)
    try:
        check_local_files(run_args, model_args)
        check_settings(run_args, sas_args, model_args, where)
    except RecipeError as err:
        raise RecipeError(with_location(str(err), recipe, argv)) from err
    return run_args, sas_args, model_args


def build(recipe: dict[str, Any], argv: list[str]):
    """The three dataclasses from a recipe mapping and flags (no environment set, no files checked).

    Every value is checked against its field's allowed range (`settings_checks`) before the dataclasses are
    built; an error from their own checks names the file and line of the recipe key it is about.
    """
    from trl import TrlParser

    parser = TrlParser(dataclass_types(), allow_abbrev=False)

    def fail(message: str):  # argparse would print its (very long) usage and exit
        raise RecipeError(message)

    parser.error = fail
    parser.set_defaults_with_config(**{k: v for k, v in recipe.items() if k != "env"})
    namespace, _ = parser.parse_known_args(args=argv)  # typed values, before any __post_init__ divides by them
    check_values(vars(namespace), locator(recipe, argv))
    try:
        run_args, sas_args, model_args = parser.parse_args_into_dataclasses(args=argv)
    except (ValueError, TypeError) as err:  # RecipeError included: its message gains the value's location
        backend = getattr(namespace, "ddp_backend", None)
        if backend and "process group" in str(err):  # accelerate's words, which name no setting
            raise RecipeError(
                f"ddp_backend={backend!r}: transformers starts that backend's process group while the settings are "
                "built, which works only inside processes that torchrun or accelerate launch started; accelerate "
                "picks the backend itself (nccl on GPUs, gloo on CPUs): leave ddp_backend unset"
                + locator(recipe, argv)("ddp_backend")
            ) from err
        raise RecipeError(with_location(str(err), recipe, argv)) from err
    return run_args, sas_args, model_args


def locator(recipe: dict[str, Any], argv: list[str]):
    """key -> " (set in FILE, line N)" for a value that comes from a recipe file, else ""."""
    flags = set(flag_names(argv))

    def where(key: str) -> str:
        if key in flags or not isinstance(recipe, Recipe) or key not in recipe.sources:
            return ""
        return f" (set in {recipe.sources[key]})"

    return where


def with_location(message: str, recipe: dict[str, Any], argv: list[str]) -> str:
    """`message` plus where the first recipe key it names was set (the included file when it came from a
    `base:`), unless it names its file already."""
    if not isinstance(recipe, Recipe) or "(set in " in message:
        return message
    where = locator(recipe, argv)
    found = [
        (match.start(), key)
        for key in recipe.sources
        if "." not in key and (match := re.search(rf"(?<![\w.]){re.escape(key)}(?!\w)", message))
    ]
    for _, key in sorted(found):
        location = where(key)
        if location:
            return message + location
        break  # the first key named was set on the command line
    return message


def _value_of(key, *objects):
    for obj in objects:
        if hasattr(obj, key):
            value = getattr(obj, key)
            if dataclasses.is_dataclass(value):  # accelerator_config, read from its JSON: its fields, as a mapping
                return dataclasses.asdict(value)
            return value.value if hasattr(value, "value") else value
    raise KeyError(key)
