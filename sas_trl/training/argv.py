"""The `sas-trl train` command line as typed: `--recipe FILE` taken out, flag names, escapes in text flags."""

from __future__ import annotations

import re

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
