"""Reward functions chosen by name from a recipe (verl's `register_adv_est` and TRL's `get_*` factories are the model).

A recipe lists reward names in `reward_funcs`; the first must be a correctness reward, so SAS's "correct"
always means "the answer is right", never "the summed reward is high". A name is either

- a registered reward: a factory `(params, context) -> TRL reward callable`, registered with
  `@register_reward(name, params=Params, correctness=..., needs_column=...)`; its parameters are a frozen
  dataclass declared next to it and set in the recipe's `reward_params: {name: {param: value}}`; or
- a dotted import path (`my_package.rewards.brevity`), as TRL's own CLI accepts: a plain TRL reward function
  `(completions, **kwargs) -> list[float]` the user wrote. It takes no `reward_params`, and it grades correctness
  only if it says so with an attribute `sas_correctness = True`. Each of its calls has a deadline (recipe key
  `reward_timeout`, `deadline.py`): one that never returns fails naming the reward, instead of hanging training.

A new reward is one decorated factory and touches no existing function: recipe checks (its parameters, the column
it needs) and training read only what its spec declares.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from ..errors import RecipeError
from . import checks
from .deadline import with_deadline
from .params import NoParams, RunContext, build_named_params, nearest

RewardFactory = Callable[[Any, RunContext], Callable]
CORRECTNESS_ATTRIBUTE = "sas_correctness"  # set to True on a dotted-path reward that grades correctness


@dataclass(frozen=True)
class RewardSpec:
    """A reward a recipe can name: how to build it, its parameters, and what it needs from the data."""

    factory: RewardFactory  # (params, context) -> TRL reward callable
    correctness: bool = False  # 1.0 for a right answer, 0.0 otherwise: may define SAS's "correct"
    help: str = ""
    params: type = NoParams  # frozen dataclass of the reward's parameters (recipe: reward_params.<name>)
    needs_column: str | None = None  # a dataset column the reward reads (added by a prompt transform)
    name: str = ""
    dotted_path: bool = False  # imported from the user's code, not registered


REWARDS: dict[str, RewardSpec] = {}
REWARD_PARAMS_KEY = "reward_params"


def register_reward(
    name: str,
    *,
    params: type = NoParams,
    correctness: bool = False,
    needs_column: str | None = None,
    help: str = "",
):
    """Decorator: register `factory(params, context) -> reward callable` under `name` (twice is an error)."""

    def decorator(factory: RewardFactory) -> RewardFactory:
        if name in REWARDS:
            raise ValueError(f"reward {name!r} is registered twice")
        REWARDS[name] = RewardSpec(factory, correctness, help, params, needs_column, name)
        return factory

    return decorator


def is_dotted_path(name: str) -> bool:
    return "." in name and name not in REWARDS


def import_reward(path: str) -> Callable:
    """The callable at dotted path `module.attribute` (TRL's CLI fallback), or `RecipeError` naming it."""
    module_path, _, attribute = path.rpartition(".")
    try:
        module = checks.import_module(path, module_path)  # a syntax error or a failing import: file and line
    except ImportError as err:
        raise RecipeError(
            f"reward_funcs: {path!r} is neither a registered reward nor an importable path: cannot import "
            f"{module_path!r} ({err}); is its folder on PYTHONPATH? registered rewards: {', '.join(sorted(REWARDS))}"
        ) from err
    if not hasattr(module, attribute):
        raise RecipeError(f"reward_funcs: {path!r}: module {module_path!r} has no attribute {attribute!r}")
    reward = getattr(module, attribute)
    if isinstance(reward, type) or not callable(reward):
        raise RecipeError(
            f"reward_funcs: {path!r} is not a reward function (completions, **kwargs) -> list[float]; it is "
            f"of type {type(reward).__name__}"
        )
    checks.check_signature(path, reward)  # TRL calls it by keyword only: **kwargs needed
    return reward


def reward_spec(name: str) -> RewardSpec:
    """The spec of a registered reward or of a dotted-path one; `RecipeError` listing the registered names."""
    if name in REWARDS:
        return REWARDS[name]
    if not isinstance(name, str) or "." not in name:
        raise RecipeError(
            f"reward_funcs: unknown reward {name!r}; known rewards: {', '.join(sorted(REWARDS))}, or a dotted path "
            f"to your own reward function (my_package.rewards.f){nearest(str(name), REWARDS)}"
        )
    reward = import_reward(name)
    correct = getattr(reward, CORRECTNESS_ATTRIBUTE, False) is True
    return RewardSpec(
        lambda params, context: _guarded(reward, name, context.reward_timeout),
        correct,
        "",
        NoParams,
        None,
        name,
        dotted_path=True,
    )


def _guarded(reward: Callable, name: str, seconds: float | None) -> Callable:
    """A user's reward under its deadline (`deadline.py`) with what it raises or returns checked (`checks.py`);
    `__wrapped__` stays the user's function."""
    wrapper = checks.checked_call(name, with_deadline(reward, name, seconds))
    wrapper.__wrapped__ = reward
    return wrapper


def check_reward_names(names: Sequence[str]) -> None:
    """`RecipeError` unless `names` is a non-empty list of known rewards with a correctness reward first."""
    if isinstance(names, str) or not names:
        raise RecipeError(f"reward_funcs must be a non-empty list of reward names, got {names!r}")
    specs = [reward_spec(name) for name in names]
    if not specs[0].correctness:
        correct = sorted(name for name, spec in REWARDS.items() if spec.correctness)
        raise RecipeError(
            f"reward_funcs: the first reward must grade correctness (it defines SAS's 'correct'), got "
            f"{names[0]!r}; correctness rewards: {', '.join(correct)} (or a dotted-path reward with "
            f"{CORRECTNESS_ATTRIBUTE} = True)"
        )


def reward_params(names: Sequence[str], mapping: Any) -> dict[str, Any]:
    """Each listed reward's parameters (its `params` dataclass, defaults filled in) from `reward_params`.

    Every name in the mapping must be a registered reward and must be listed in `names`.
    """

    def params_of(name: str) -> type | None:
        if name in REWARDS:
            return REWARDS[name].params
        if is_dotted_path(name):
            return None  # a dotted-path reward takes no parameters
        raise RecipeError(
            f"{REWARD_PARAMS_KEY}: unknown reward {name!r}{nearest(name, REWARDS)}; known: "
            f"{', '.join(sorted(REWARDS))}"
        )

    return build_named_params(REWARD_PARAMS_KEY, "reward", "reward_funcs", names, mapping, params_of)


def get_reward_funcs(run_args, training_args=None) -> list[Callable]:
    """The reward callables named by `run_args.reward_funcs`, in order, built with their `reward_params`."""
    names = run_args.reward_funcs
    check_reward_names(names)
    params = reward_params(names, getattr(run_args, REWARD_PARAMS_KEY, None))
    context = RunContext.of(run_args, training_args)
    return [reward_spec(name).factory(params[name], context) for name in names]
