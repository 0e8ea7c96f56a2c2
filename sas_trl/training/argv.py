"""The `sas-trl train` command line as typed: `--recipe FILE` taken out, flag names, escapes in text flags."""

from __future__ import annotations

import re

from ..errors import RecipeError

RECIPE_FLAGS = ("--recipe", "--config")  # `--config` is TRL's name (`trl grpo --config FILE`)


def pop_recipe_flag(argv: list[str]) -> tuple[list[str], str | None]:
    """argv without `--recipe FILE` / `--recipe=FILE` (or TRL's `--config FILE`), and FILE (None when absent)."""
    found = [
        index for index, arg in enumerate(argv) if arg in RECIPE_FLAGS or arg.startswith(("--recipe=", "--config="))
    ]
    if len(found) > 1:
        flags = sorted({argv[index].split("=", 1)[0] for index in found})
        given = f"{flags[0]} is given twice" if len(flags) == 1 else f"{' and '.join(flags)} both name a recipe"
        raise RecipeError(f"{given}; pass one recipe (a recipe can include another with 'base:')")
    if not found:
        return argv, None
    index = found[0]
    flag, sep, source = argv[index].partition("=")
    if sep:
        del argv[index]
    elif index + 1 < len(argv) and not argv[index + 1].startswith("--"):
        source = argv[index + 1]
        del argv[index : index + 2]
    else:
        source = ""
    if not source:
        raise RecipeError(f"{flag} needs a file (a recipe's path, or a packaged name: `sas-trl recipes` lists them)")
    return argv, source


def pop_switch(argv: list[str], name: str) -> tuple[list[str], bool]:
    """argv without the on/off flag `--NAME` (bare, `--NAME=true|false`), and whether it is on."""
    kept, on = [], False
    for arg in argv:
        flag, sep, value = arg.partition("=")
        if not flag.startswith("--") or flag[2:].replace("-", "_") != name:
            kept.append(arg)
            continue
        if sep and value.strip().lower() not in ("true", "false", "1", "0", "yes", "no"):
            raise RecipeError(f"--{name}={value}: expected true or false (or --{name} alone)")
        on = not sep or value.strip().lower() in ("true", "1", "yes")
    return kept, on


def flag_names(argv: list[str]) -> list[str]:
    """The field names the flags set, in order (`--max-steps` and `--max_steps=3` both name `max_steps`)."""
    return [a[2:].split("=", 1)[0].replace("-", "_") for a in argv if a.startswith("--")]


ESCAPED_FLAGS = ("sas_delimiter",)  # text settings a shell cannot easily pass a newline to
_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", "\\": "\\"}


def unescape(text: str) -> str:
    r"""`\n`, `\t`, `\r` and `\\` typed in a shell flag as the characters they name; everything else kept as is."""
    return re.sub(r"\\([ntr\\])", lambda m: _ESCAPES[m.group(1)], text)


def unescape_flags(argv: list[str]) -> list[str]:
    """argv with the values of `ESCAPED_FLAGS` unescaped (`--sas_delimiter '\\n\\n'` means two newlines)."""
    out = list(argv)
    for index, arg in enumerate(out):
        name, sep, value = arg[2:].partition("=") if arg.startswith("--") else ("", "", "")
        if name.replace("-", "_") not in ESCAPED_FLAGS:
            continue
        if sep:
            out[index] = f"--{name}={unescape(value)}"
        elif index + 1 < len(out):
            out[index + 1] = unescape(out[index + 1])
    return out
