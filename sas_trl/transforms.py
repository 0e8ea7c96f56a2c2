"""Prompt transforms of the length-aware baselines, chosen by name in a recipe's `prompt_transforms`.

Each transform takes the GRPO dataset (`prompt` chat messages, `answer`) and returns it changed the way the
method's own data preparation changes it (docs/baselines.md):

- `l1_budget`: L1 asks for a budget N in the prompt, " Think for N tokens." (Exact) or " Think for maximum N
  tokens." (Max), with N drawn uniformly from `budget_range` per example and a Max prompt with probability
  `max_fraction`; N goes to the `l1_budget` column, negative for a Max prompt (L1's own convention).
- `thinkprune_system`: ThinkPrune's system prompt, naming the stage's generation cap (`max_completion_length`).
- `lapo_target`: LAPO stage 2 appends " I will answer the question with T tokens." with T the prompt's median
  correct length recorded by stage 1 (`targets`); T goes to the `lapo_target` column (None: no statistic).

A transform is registered like a reward: `@register_transform(name, params=Params, adds_column=...)` on a
function `(dataset, params, context) -> dataset`, its parameters a frozen dataclass next to it, set in the recipe's
`transform_params: {name: {param: value}}`. `check_rewards_and_transforms` checks a recipe's rewards, transforms
and their parameters together (a reward's `needs_column` must be added by a listed transform), before any model
work. Transforms run in the order listed, right after the training data is loaded.
"""

from __future__ import annotations

import dataclasses
import json
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from datasets import Dataset

from .errors import RecipeError
from .rewards.lapo import save_lapo_targets as save_lapo_targets  # stage 1's writer, beside its reader
from .rewards.length import L1_BUDGET_COLUMN, LAPO_TARGET_COLUMN, LAPO_TARGETS_FILE
from .rewards.params import NoParams, ParamError, RunContext, build_params, nearest, parse_mapping
from .rewards.registry import REWARD_PARAMS_KEY, REWARDS, reward_params, reward_spec

THINKPRUNE_SYSTEM_PROMPT = (
    "A conversation between User and Assistant. The user asks a question, and the Assistant solves it. The "
    "assistant first thinks about the reasoning process in the mind and then provides the user with the answer. "
    "The reasoning process and answer are enclosed within <think></think> and <answer></answer> tags, "
    "respectively, i.e., <think> reasoning process here</think><answer> answer here</answer>."
)
TRANSFORM_PARAMS_KEY = "transform_params"

Transform = Callable[[Dataset, Any, RunContext], Dataset]  # (dataset, params, context) -> dataset


@dataclass(frozen=True)
class TransformSpec:
    """A prompt transform a recipe can name: the function, its parameters and the column it adds."""

    function: Transform
    help: str = ""
    params: type = NoParams  # frozen dataclass of its parameters (recipe: transform_params.<name>)
    adds_column: str | None = None  # the dataset column it adds (a reward may need it)
    name: str = ""


TRANSFORMS: dict[str, TransformSpec] = {}


def register_transform(name: str, *, params: type = NoParams, adds_column: str | None = None, help: str = ""):
    """Decorator: register `function(dataset, params, context) -> dataset` under `name` (twice is an error)."""

    def decorator(function: Transform) -> Transform:
        if name in TRANSFORMS:
            raise ValueError(f"transform {name!r} is registered twice")
        TRANSFORMS[name] = TransformSpec(function, help, params, adds_column, name)
        return function

    return decorator


def check_transform_names(names) -> None:
    """`RecipeError` unless `names` is a list of known transforms, each at most once."""
    if isinstance(names, str):
        raise RecipeError(f"prompt_transforms must be a list of transform names, got {names!r}")
    for name in names:
        if name not in TRANSFORMS:
            raise RecipeError(
                f"prompt_transforms: unknown transform {name!r}{nearest(name, TRANSFORMS)}; known: "
                f"{', '.join(sorted(TRANSFORMS))}"
            )
    if len(set(names)) != len(names):
        raise RecipeError(f"prompt_transforms: a transform is listed twice in {list(names)}")


def transform_params(names: Sequence[str], mapping: Any) -> dict[str, Any]:
    """Each listed transform's parameters (its `params` dataclass, defaults filled in) from `transform_params`."""
    mapping = parse_mapping(mapping, TRANSFORM_PARAMS_KEY)
    built = {}
    for name, values in mapping.items():
        if name not in TRANSFORMS:
            raise RecipeError(
                f"{TRANSFORM_PARAMS_KEY}: unknown transform {name!r}{nearest(name, TRANSFORMS)}; known: "
                f"{', '.join(sorted(TRANSFORMS))}"
            )
        built[name] = build_params(TRANSFORMS[name].params, values, f"{TRANSFORM_PARAMS_KEY}.{name}")
    for name in mapping:
        if name not in names:
            raise RecipeError(
                f"{TRANSFORM_PARAMS_KEY}.{name} is set but prompt_transforms does not list {name!r} "
                f"({', '.join(names) or 'none'})"
            )
    for name in names:
        if name not in built:
            built[name] = build_params(TRANSFORMS[name].params, {}, f"{TRANSFORM_PARAMS_KEY}.{name}")
    return built


def check_rewards_and_transforms(
    reward_funcs: Sequence[str], rewards_params: Any, prompt_transforms: Sequence[str], transforms_params: Any
) -> tuple[dict, dict]:
    """A recipe's rewards, transforms and their parameters, checked together before any model work.

    Returns `reward_params` and `transform_params` as plain mappings (a flag's YAML/JSON text parsed). Every
    column a listed reward needs must be added by a listed transform.
    """
    check_transform_names(prompt_transforms)
    # Built only to check them (each parameter dataclass checks itself); the factories rebuild them when called.
    reward_params(reward_funcs, rewards_params)
    transform_params(prompt_transforms, transforms_params)
    added = {TRANSFORMS[name].adds_column for name in prompt_transforms}
    for name in reward_funcs:
        column = reward_spec(name).needs_column
        if column is not None and column not in added:
            adders = [t for t, spec in TRANSFORMS.items() if spec.adds_column == column]
            raise RecipeError(
                f"reward_funcs: {name!r} needs prompt_transforms to include "
                f"{' or '.join(repr(t) for t in adders) or 'a transform'} (it adds the column {column!r})"
            )
    return (
        parse_mapping(rewards_params, REWARD_PARAMS_KEY),
        parse_mapping(transforms_params, TRANSFORM_PARAMS_KEY),
    )


def check_run_context(run_args, context: RunContext) -> None:
    """Parameters checked against the run's other settings (a `check_context(context)` method of the params)."""
    built = {
        REWARD_PARAMS_KEY: reward_params(run_args.reward_funcs, run_args.reward_params),
        TRANSFORM_PARAMS_KEY: transform_params(run_args.prompt_transforms, run_args.transform_params),
    }
    for key, params in built.items():
        for name, value in params.items():
            if hasattr(value, "check_context"):
                try:
                    value.check_context(context)
                except ParamError as err:
                    raise err.at(f"{key}.{name}") from None


def moved_key(key: str) -> str | None:
    """Where an old flat recipe key went ("l1_alpha moved to reward_params: {l1: {alpha: ...}}"), or None."""
    for recipe_key, registry in ((REWARD_PARAMS_KEY, REWARDS), (TRANSFORM_PARAMS_KEY, TRANSFORMS)):
        for name, spec in registry.items():
            for f in dataclasses.fields(spec.params):
                if f.metadata.get("was") == key:
                    return f"{key} moved to {recipe_key}: {{{name}: {{{f.name}: ...}}}}"
    return None


def apply_transforms(dataset: Dataset, run_args, training_args) -> Dataset:
    """The dataset after every transform of `run_args.prompt_transforms`, in order, with its `transform_params`."""
    names = run_args.prompt_transforms
    params = transform_params(names, getattr(run_args, TRANSFORM_PARAMS_KEY, None))
    context = RunContext.of(run_args, training_args)
    for name in names:
        dataset = TRANSFORMS[name].function(dataset, params[name], context)
    return dataset


# --------------------------------------------------------------------------------------------------
# Message helpers
# --------------------------------------------------------------------------------------------------


def last_user_text(prompt) -> str:
    """The last user message of a chat prompt (or the prompt itself, if plain text)."""
    if isinstance(prompt, str):
        return prompt
    return next(m["content"] for m in reversed(prompt) if m["role"] == "user")


def append_to_user(prompt, text: str):
    """The prompt with `text` appended to its last user message (or to the prompt, if plain text)."""
    if isinstance(prompt, str):
        return prompt + text
    last = max(i for i, m in enumerate(prompt) if m["role"] == "user")
    return [{**m, "content": m["content"] + text} if i == last else m for i, m in enumerate(prompt)]


# --------------------------------------------------------------------------------------------------
# L1
# --------------------------------------------------------------------------------------------------


def draw_l1_budgets(n: int, low: int, high: int, max_fraction: float, seed: int) -> list[int]:
    """N ~ randint(low, high) per example; negated (a Max prompt) with probability `max_fraction`."""
    rng = random.Random(seed)
    budgets = []
    for _ in range(n):
        budget = rng.randint(low, high)
        if max_fraction > 0 and rng.random() < max_fraction:
            budget = -budget
        budgets.append(budget)
    return budgets


def l1_instruction(budget: int) -> str:
    """L1's training-prompt suffix for a signed budget."""
    return f" Think for maximum {-budget} tokens." if budget < 0 else f" Think for {budget} tokens."


@dataclass(frozen=True)
class L1BudgetParams:
    """L1's training prompts (recipe: `transform_params: {l1_budget: {...}}`)."""

    budget_range: tuple[int, int] = field(
        default=(100, 4000), metadata={"help": "budget N drawn uniformly from [low, high]", "was": "l1_budget_range"}
    )
    max_fraction: float = field(
        default=0.0,
        metadata={
            "help": "probability that a prompt asks for 'maximum N' (L1-Max data: 0.5)",
            "was": "l1_max_fraction",
        },
    )

    def __post_init__(self):
        low_high = tuple(self.budget_range)
        if not (len(low_high) == 2 and 0 <= low_high[0] <= low_high[1]):
            raise ParamError("budget_range", list(low_high), "[low, high] with 0 <= low <= high")
        if not 0 <= self.max_fraction <= 1:
            raise ParamError("max_fraction", self.max_fraction, "in [0, 1]")


@register_transform(
    "l1_budget",
    params=L1BudgetParams,
    adds_column=L1_BUDGET_COLUMN,
    help="L1: ' Think for [maximum] N tokens.' and the l1_budget column",
)
def add_l1_budget(dataset: Dataset, params: L1BudgetParams, context: RunContext) -> Dataset:
    """L1's budgets, drawn with the run's seed: N in the prompt and in the `l1_budget` column (negative: Max)."""
    low, high = params.budget_range
    budgets = draw_l1_budgets(len(dataset), low, high, params.max_fraction, context.seed)

    def add(row, index):
        budget = budgets[index]
        return {"prompt": append_to_user(row["prompt"], l1_instruction(budget)), L1_BUDGET_COLUMN: budget}

    return dataset.map(add, with_indices=True)


# --------------------------------------------------------------------------------------------------
# ThinkPrune
# --------------------------------------------------------------------------------------------------


def thinkprune_system_prompt(max_tokens: int) -> str:
    return f"{THINKPRUNE_SYSTEM_PROMPT} The output of the assistant should be within {max_tokens} tokens."


@register_transform("thinkprune_system", help="ThinkPrune: system prompt naming the stage's generation cap")
def add_thinkprune_system(dataset: Dataset, params: NoParams, context: RunContext) -> Dataset:
    cap = context.need("max_completion_length", "transform 'thinkprune_system'")
    system = {"role": "system", "content": thinkprune_system_prompt(cap)}

    def add(row):
        if isinstance(row["prompt"], str):
            raise RecipeError("prompt_transforms: thinkprune_system needs chat prompts (a list of messages)")
        return {"prompt": [system, *row["prompt"]]}

    return dataset.map(add)


# --------------------------------------------------------------------------------------------------
# LAPO
# --------------------------------------------------------------------------------------------------


def lapo_targets_path(path: str | Path) -> Path:
    """The stage-1 statistics file: `path` itself, or `lapo_targets.json` inside a stage-1 output folder."""
    path = Path(path)
    return path / LAPO_TARGETS_FILE if path.is_dir() else path


def load_lapo_targets(path: str | Path) -> dict[str, float]:
    file = lapo_targets_path(path)
    if not file.is_file():
        raise RecipeError(
            f"{TRANSFORM_PARAMS_KEY}.lapo_target.targets: {file} not found (run LAPO stage 1 first; it writes "
            f"{LAPO_TARGETS_FILE})"
        )
    try:
        targets = json.loads(file.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as err:
        raise RecipeError(
            f"{TRANSFORM_PARAMS_KEY}.lapo_target.targets: {file} is not a JSON file of prompt: length ({err})"
        ) from err
    if not isinstance(targets, dict) or not all(isinstance(v, int | float) for v in targets.values()):
        raise RecipeError(
            f"{TRANSFORM_PARAMS_KEY}.lapo_target.targets: {file} must map each prompt to a number of tokens"
        )
    return targets


def lapo_target(targets: dict[str, float], prompt) -> int | None:
    """T for a prompt: its stage-1 median, truncated to an int; None without one (absent, or 0 as LAPO records it)."""
    median = targets.get(last_user_text(prompt), 0)
    return int(median) if median > 0 else None


@dataclass(frozen=True)
class LAPOTargetTransformParams:
    """LAPO stage 2's prompts (recipe: `transform_params: {lapo_target: {targets: ...}}`)."""

    targets: str = field(
        metadata={"help": "the stage-1 output folder (or its lapo_targets.json)", "was": "lapo_targets"}
    )

    def __post_init__(self):
        load_lapo_targets(self.targets)  # exists and parses, before anything loads


@register_transform(
    "lapo_target",
    params=LAPOTargetTransformParams,
    adds_column=LAPO_TARGET_COLUMN,
    help="LAPO stage 2: ' I will answer the question with T tokens.' (targets: the stage-1 folder)",
)
def add_lapo_target(dataset: Dataset, params: LAPOTargetTransformParams, context: RunContext) -> Dataset:
    """LAPO stage 2: each prompt states its stage-1 median T, which also goes to the `lapo_target` column."""
    targets = load_lapo_targets(params.targets)
    found = [lapo_target(targets, prompt) for prompt in dataset["prompt"]]
    if all(t is None for t in found):
        raise RecipeError(
            f"{TRANSFORM_PARAMS_KEY}.lapo_target.targets: none of the {len(found)} prompts has a stage-1 target in "
            f"{lapo_targets_path(params.targets)}; stage 2 needs stage 1's dataset, template and transforms"
        )

    def add(row, index):
        target = found[index]
        if target is None:  # no statistic: the reward falls back to the group's median correct length
            return {"prompt": row["prompt"], LAPO_TARGET_COLUMN: None}
        return {
            "prompt": append_to_user(row["prompt"], f" I will answer the question with {target} tokens."),
            LAPO_TARGET_COLUMN: target,
        }

    return dataset.map(add, with_indices=True)
