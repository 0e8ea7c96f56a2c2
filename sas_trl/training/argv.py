"""The `sas-trl train` command line as typed: `--recipe FILE` taken out, flag names, raw flag values."""

from __future__ import annotations

from ..errors import RecipeError


def pop_recipe_flag(argv: list[str]) -> tuple[list[str], str | None]:
    """argv without `--recipe FILE` / `--recipe=FILE`, and FILE (None when absent)."""
    source = None
    for index, arg in enumerate(argv):
        if arg == "--recipe":
            if index + 1 >= len(argv) or argv[index + 1].startswith("--"):
                raise RecipeError("--recipe needs a file")
            source = argv[index + 1]
            del argv[index : index + 2]
            break
        if arg.startswith("--recipe="):
            source = arg.split("=", 1)[1]
            if not source:
                raise RecipeError("--recipe needs a file")
            del argv[index]
            break
    if any(a == "--recipe" or a.startswith("--recipe=") for a in argv):
        raise RecipeError("--recipe is given twice; pass one recipe (a recipe can include another with 'base:')")
    return argv, source


def raw_flags(argv: list[str]) -> dict[str, str | None]:
    """`--name value` / `--name=value` pairs as typed (value None for a flag followed by another flag)."""
    values: dict[str, str | None] = {}
    for index, arg in enumerate(argv):
        if not arg.startswith("--"):
            continue
        name, sep, value = arg[2:].partition("=")
        if not sep:
            following = argv[index + 1] if index + 1 < len(argv) else None
            value = None if following is None or following.startswith("--") else following
        values[name.replace("-", "_")] = value
    return values


def flag_names(argv: list[str]) -> list[str]:
    """The field names the flags set, in order (`--max-steps` and `--max_steps=3` both name `max_steps`)."""
    return [a[2:].split("=", 1)[0].replace("-", "_") for a in argv if a.startswith("--")]
