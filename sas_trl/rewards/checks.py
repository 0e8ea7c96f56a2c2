"""Checks of a user's reward given by dotted path: what can be seen when it is loaded, and what it returns.

When the recipe is read: the module imports (a syntax error or an error raised while importing it is named with
its file and line), and the signature takes what TRL passes (`prompts`, `completions`, `completion_ids`, the
trainer state and every dataset column, all by keyword: a `**kwargs` is needed). When it runs (the first
training step, or any later one): an error it raises, a wrong number of rewards, NaN, or a value that is not a
number becomes one `UserError` naming the reward, its module and line. Registered rewards are the package's own
and are not wrapped.
"""

from __future__ import annotations

import functools
import importlib
import inspect
import math
import traceback
from collections.abc import Callable
from numbers import Real
from types import ModuleType
from typing import Any

from ..errors import RecipeError, UserError

PASSED_BY_TRL = ("prompts", "completions", "completion_ids", "trainer_state", "log_extra", "log_metric")


def where(path: str, reward: Any) -> str:
    """`'pkg.mod.f' (pkg/mod.py, line 12)`: the reward, its file and line (as far as Python knows them)."""
    target = inspect.unwrap(reward) if callable(reward) else reward
    try:
        file = inspect.getsourcefile(target) or inspect.getfile(target)
        line = inspect.getsourcelines(target)[1]
    except (OSError, TypeError):
        return f"reward {path!r}"
    return f"reward {path!r} ({file}, line {line})"


def import_module(path: str, module_path: str) -> ModuleType:
    """`importlib.import_module`, with a syntax error or an error raised while the module runs named by file and
    line (`RecipeError`); an `ImportError` is left to the caller, who says where it looked."""
    try:
        return importlib.import_module(module_path)
    except ImportError:
        raise
    except SyntaxError as err:
        raise RecipeError(
            f"reward_funcs: {path!r}: module {module_path!r} has a syntax error ({err.filename}, line {err.lineno}: "
            f"{err.msg})"
        ) from err
    except Exception as err:  # noqa: BLE001 - the user's module ran and failed: say where
        frame = traceback.extract_tb(err.__traceback__)[-1]
        raise RecipeError(
            f"reward_funcs: {path!r}: importing module {module_path!r} raised {type(err).__name__}: {err} "
            f"({frame.filename}, line {frame.lineno})"
        ) from err


def check_signature(path: str, reward: Callable) -> None:
    """`RecipeError` unless `reward` can be called as TRL calls it: everything by keyword, so it needs `**kwargs`
    (TRL passes the trainer state and every dataset column), and no parameter that can only be positional."""
    try:
        signature = inspect.signature(reward)
    except (TypeError, ValueError):  # a builtin without a signature: found when it is called
        return
    params = signature.parameters.values()
    positional_only = [p.name for p in params if p.kind is p.POSITIONAL_ONLY and p.default is p.empty]
    if positional_only:
        raise RecipeError(
            f"reward_funcs: {where(path, reward)} takes {', '.join(positional_only)} as positional-only; TRL passes "
            f"every argument by keyword: def {reward.__name__}(completions, **kwargs)"
        )
    if not any(p.kind is p.VAR_KEYWORD for p in params):
        raise RecipeError(
            f"reward_funcs: {where(path, reward)} has no **kwargs, but TRL passes it {', '.join(PASSED_BY_TRL)} and "
            f"every dataset column by keyword: def {getattr(reward, '__name__', 'reward')}(completions, ..., **kwargs)"
        )


def checked_call(path: str, reward: Callable) -> Callable:
    """`reward`, wrapped so that what it raises or returns wrongly is one `UserError` naming it (`where`)."""
    name = where(path, reward)

    def check(output: Any, completions: Any) -> list:
        if isinstance(output, str | bytes) or not hasattr(output, "__len__"):
            raise UserError(f"{name} returned {type(output).__name__}, not a list of floats (one per completion)")
        expected = len(output) if completions is None else len(completions)
        if len(output) != expected:
            raise UserError(f"{name} returned {len(output)} rewards for {expected} completions (one per completion)")
        for index, value in enumerate(output):
            if value is None:
                continue  # TRL's "does not apply to this completion"
            if isinstance(value, str | bytes) or not (isinstance(value, Real) or hasattr(value, "__float__")):
                raise UserError(
                    f"{name} returned {value!r} ({type(value).__name__}) for completion {index}: a reward is a "
                    "number (or None where it does not apply)"
                )
            if math.isnan(float(value)):
                raise UserError(
                    f"{name} returned NaN for completion {index}; return None where the reward does not apply"
                )
        return list(output)

    def fail(err: Exception) -> UserError:
        if isinstance(err, UserError):
            return err
        frame = traceback.extract_tb(err.__traceback__)[-1]
        return UserError(f"{name} raised {type(err).__name__}: {err} ({frame.filename}, line {frame.lineno})")

    if inspect.iscoroutinefunction(reward):

        @functools.wraps(reward)
        async def async_checked(*args, **kwargs):
            try:
                output = await reward(*args, **kwargs)
            except Exception as err:  # noqa: BLE001 - the user's code: named, with its line
                raise fail(err) from err
            return check(output, kwargs.get("completions", args[0] if args else None))

        async_checked.__name__ = getattr(reward, "__name__", path.rpartition(".")[2])  # TRL logs under it
        return async_checked

    @functools.wraps(reward)
    def checked(*args, **kwargs):
        try:
            output = reward(*args, **kwargs)
        except Exception as err:  # noqa: BLE001 - the user's code: named, with its line
            raise fail(err) from err
        return check(output, kwargs.get("completions", args[0] if args else None))

    checked.__name__ = getattr(reward, "__name__", path.rpartition(".")[2])  # TRL logs under it
    return checked
