"""Whether a value from a YAML file or a flag fits a field's type hint, for messages that name the field.

Recipes, reward and transform parameters and study files are read as plain YAML values before any dataclass is
built; this is the one check of those values against their fields' hints.
"""

from __future__ import annotations

import types
import typing
from typing import Any


def matches(hint, value) -> bool:
    """True when `value` fits `hint`; anything more exotic than the types recipes use is left to its parser.

    Booleans are not numbers; an int fits a float; a list fits a tuple or list hint (YAML has no tuples).
    """
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if hint is Any:
        return True
    if origin in (typing.Union, types.UnionType):
        return any(matches(a, value) for a in args)
    if hint is type(None):
        return value is None
    if origin is typing.Literal:
        return value in args
    if hint is bool:
        return isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if hint is float:
        return isinstance(value, int | float) and not isinstance(value, bool)
    if hint is str:
        return isinstance(value, str)
    if origin in (list, tuple):
        if not isinstance(value, list | tuple):
            return False
        if origin is tuple and args and not (len(args) == 2 and args[1] is Ellipsis):  # tuple[int, int]: fixed
            return len(value) == len(args) and all(matches(a, v) for a, v in zip(args, value, strict=True))
        return all(matches(args[0], v) for v in value) if args else True
    if origin is dict or hint is dict:
        return isinstance(value, dict)
    if isinstance(hint, type) and issubclass(hint, str):  # str-valued enums (e.g. IntervalStrategy)
        return isinstance(value, str)
    return True


def type_name(hint) -> str:
    """'int', 'list[int]', 'str | None': how a hint reads in a message."""
    if typing.get_origin(hint) is None and getattr(hint, "__name__", None):
        return hint.__name__
    return str(hint).replace("typing.", "")
