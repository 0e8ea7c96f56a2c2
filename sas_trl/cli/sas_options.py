"""The SAS rule for commands that apply it outside training (`inspect`, `analyze-truncation`).

`--recipe FILE` and `--sas_*` flags mean what they mean to `sas-trl train`: the flags are made from
`SASRule`'s fields, the recipe is read by training's recipe loader (with its `base:` includes and key and type
checks), and the rule comes out of a `SASConfig` built by the same parser, so it equals `SASConfig.sas_rule` of
the training run.
"""

from __future__ import annotations

import argparse
from typing import Any

from ..core import PREFIX, SASRule
from ..errors import RecipeError, UserError


def add_sas_options(parser: argparse.ArgumentParser, recipe_help: str) -> None:
    """`--recipe` and one `--sas_<name>` flag per `SASRule` field (unset: the recipe's value, else the default)."""
    parser.add_argument("--recipe", help=recipe_help)
    group = parser.add_argument_group(
        "SAS settings (as `sas-trl train` reads them; unset: the recipe's, else default)"
    )
    for f in SASRule.fields():
        group.add_argument(
            f"--{PREFIX}{f.name}", metavar="VALUE", help=f"{f.metadata['help']} (default: {f.default!r})"
        )


def sas_rule_from(args: argparse.Namespace) -> tuple[SASRule, dict[str, Any]]:
    """The rule that `sas-trl train --recipe R --sas_...` would apply, and the recipe's mapping ({} without one)."""
    from trl import TrlParser

    from ..config import SASConfig
    from ..training.argv import unescape_flags
    from ..training.packaged import resolve_recipe
    from ..training.recipe_files import load_recipe
    from ..training.recipes import locator, with_location
    from ..training.settings_checks import check_values
    from ..training.validation import check_keys, check_types

    recipe: dict[str, Any] = {}
    if args.recipe:
        recipe = load_recipe(resolve_recipe(args.recipe))
        check_keys(recipe, args.recipe)
        check_types(recipe, args.recipe)
    argv = []
    for f in SASRule.fields():
        value = getattr(args, PREFIX + f.name)
        if value is not None:
            argv += [f"--{PREFIX}{f.name}", value]
    argv = unescape_flags(argv)  # as `sas-trl train` reads them
    parser = TrlParser([SASConfig], allow_abbrev=False)

    def fail(message: str):  # argparse would print its usage and exit
        raise RecipeError(message)

    parser.error = fail
    values = {key: value for key, value in recipe.items() if key in SASConfig.__dataclass_fields__}
    # Only the rule is wanted here: the run's precision and device settings must not refuse a GPU recipe on a CPU.
    parser.set_defaults_with_config(**{**values, "bf16": False, "fp16": False, "use_cpu": True})
    namespace, _ = parser.parse_known_args(args=argv)
    check_values(vars(namespace), locator(recipe, argv))  # the ranges `sas-trl train` checks, before TRL's own
    try:
        (config,) = parser.parse_args_into_dataclasses(args=argv)
    except (ValueError, TypeError) as err:  # RecipeError included: its message gains the value's location
        raise RecipeError(with_location(str(err), recipe, argv)) from err
    return config.sas_rule, recipe


def check_labels_available(
    rule: SASRule, benchmarks: str | None, prompts: list[str] = (), samples: str | None = None
) -> None:
    """An oracle selection (`SASRule.needs_labels`) reads ground-truth step labels, which only the built-in tasks
    have: refused, naming it, for any other benchmark, a --prompt that is not a built-in problem, or --samples."""
    if not rule.needs_labels:
        return
    from ..evaluation.datasets import BUILTIN
    from ..step_labels import parse_terms

    names = [name.strip() for name in (benchmarks or "").split(",") if name.strip()]
    others = [f"--benchmarks {name}" for name in names if name != BUILTIN]
    others += [f"--prompt {text!r}" for text in prompts if parse_terms(text) is None]
    others += [f"--samples {samples}"] if samples else []
    if others:
        raise UserError(
            f"{PREFIX}selection={rule.selection!r} needs ground-truth step labels, which only the built-in tasks have "
            f"(--benchmarks {BUILTIN}); not available for {', '.join(others)}"
        )
