"""Reward functions chosen by name from a recipe (open-r1's `get_reward_funcs` is the model).

A recipe lists reward names in `reward_funcs`; the first must be a correctness reward, so SAS's "correct"
always means "the answer is right", never "the summed reward is high". Each name maps to a factory that
builds the TRL reward callable from the run's settings, so a new reward plugs in with one decorated
function and no change to the training code.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from ..errors import RecipeError

RewardFactory = Callable[[Any, Any], Callable]


@dataclass(frozen=True)
class RewardSpec:
    factory: RewardFactory  # (run_args, training_args) -> TRL reward callable
    correctness: bool  # 1.0 for a right answer, 0.0 otherwise: may define SAS's "correct"
    help: str


REWARDS: dict[str, RewardSpec] = {}


def register_reward(name: str, *, correctness: bool = False, help: str = ""):
    """Decorator: register `factory(run_args, training_args) -> reward callable` under `name`."""

    def decorator(factory: RewardFactory) -> RewardFactory:
        if name in REWARDS:
            raise ValueError(f"reward {name!r} is registered twice")
        REWARDS[name] = RewardSpec(factory, correctness, help)
        return factory

    return decorator


def check_reward_names(names: Sequence[str]) -> None:
    """`RecipeError` unless `names` is a non-empty list of known rewards with a correctness reward first."""
    if isinstance(names, str) or not names:
        raise RecipeError(f"reward_funcs must be a non-empty list of reward names, got {names!r}")
    unknown = [name for name in names if name not in REWARDS]
    if unknown:
        raise RecipeError(f"reward_funcs: unknown reward {unknown[0]!r}; known rewards: {', '.join(sorted(REWARDS))}")
    if not REWARDS[names[0]].correctness:
        correct = sorted(name for name, spec in REWARDS.items() if spec.correctness)
        raise RecipeError(
            f"reward_funcs: the first reward must grade correctness (it defines SAS's 'correct'), got "
            f"{names[0]!r}; correctness rewards: {', '.join(correct)}"
        )


def get_reward_funcs(run_args, training_args=None) -> list[Callable]:
    """The reward callables named by `run_args.reward_funcs`, in order."""
    check_reward_names(run_args.reward_funcs)
    return [REWARDS[name].factory(run_args, training_args) for name in run_args.reward_funcs]
