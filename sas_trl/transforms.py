"""Prompt transforms of the length-aware baselines, chosen by name in a recipe's `prompt_transforms`.

Each transform takes the GRPO dataset (`prompt` chat messages, `answer`) and returns it changed the way the
method's own data preparation changes it (docs/baselines.md):

- `l1_budget`: L1 asks for a budget N in the prompt, " Think for N tokens." (Exact) or " Think for maximum N
  tokens." (Max), with N drawn uniformly from `l1_budget_range` per example and a Max prompt with probability
  `l1_max_fraction`; N goes to the `l1_budget` column, negative for a Max prompt (L1's own convention).
- `thinkprune_system`: ThinkPrune's system prompt, naming the stage's generation cap (`max_completion_length`).
- `lapo_target`: LAPO stage 2 appends " I will answer the question with T tokens." with T the prompt's median
  correct length recorded by stage 1 (`lapo_targets`); T goes to the `lapo_target` column (None: no statistic).

Transforms run in the order listed, right after the training data is loaded, before any model work.
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from datasets import Dataset

from .errors import RecipeError
from .rewards.length import L1_BUDGET_COLUMN, LAPO_TARGET_COLUMN

LAPO_TARGETS_FILE = "lapo_targets.json"
THINKPRUNE_SYSTEM_PROMPT = (
    "A conversation between User and Assistant. The user asks a question, and the Assistant solves it. The "
    "assistant first thinks about the reasoning process in the mind and then provides the user with the answer. "
    "The reasoning process and answer are enclosed within <think></think> and <answer></answer> tags, "
    "respectively, i.e., <think> reasoning process here</think><answer> answer here</answer>."
)

Transform = Callable[[Dataset, Any, Any], Dataset]  # (dataset, run_args, training_args) -> dataset


@dataclass(frozen=True)
class TransformSpec:
    function: Transform
    help: str


TRANSFORMS: dict[str, TransformSpec] = {}


def register_transform(name: str, help: str = ""):
    """Decorator: register `function(dataset, run_args, training_args) -> dataset` under `name`."""

    def decorator(function: Transform) -> Transform:
        if name in TRANSFORMS:
            raise ValueError(f"transform {name!r} is registered twice")
        TRANSFORMS[name] = TransformSpec(function, help)
        return function

    return decorator


def check_transform_names(names) -> None:
    """`RecipeError` unless `names` is a list of known transforms, each at most once."""
    if isinstance(names, str):
        raise RecipeError(f"prompt_transforms must be a list of transform names, got {names!r}")
    for name in names:
        if name not in TRANSFORMS:
            raise RecipeError(f"prompt_transforms: unknown transform {name!r}; known: {', '.join(sorted(TRANSFORMS))}")
    if len(set(names)) != len(names):
        raise RecipeError(f"prompt_transforms: a transform is listed twice in {list(names)}")


def apply_transforms(dataset: Dataset, run_args, training_args) -> Dataset:
    """The dataset after every transform of `run_args.prompt_transforms`, in order."""
    for name in run_args.prompt_transforms:
        dataset = TRANSFORMS[name].function(dataset, run_args, training_args)
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


@register_transform("l1_budget", help="L1: ' Think for [maximum] N tokens.' and the l1_budget column")
def add_l1_budget(dataset: Dataset, run_args, training_args) -> Dataset:
    low, high = run_args.l1_budget_range
    seed = getattr(training_args, "seed", 0)
    budgets = draw_l1_budgets(len(dataset), low, high, run_args.l1_max_fraction, seed)

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
def add_thinkprune_system(dataset: Dataset, run_args, training_args) -> Dataset:
    system = {"role": "system", "content": thinkprune_system_prompt(training_args.max_completion_length)}

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


def save_lapo_targets(targets: dict[str, float], path: str | Path) -> None:
    """Write stage 1's {prompt: median correct length} (0: no correct rollout in the prompt's last group)."""
    Path(path).write_text(json.dumps(targets, ensure_ascii=False, indent=0, sort_keys=True))


def load_lapo_targets(path: str | Path) -> dict[str, float]:
    file = lapo_targets_path(path)
    if not file.is_file():
        raise RecipeError(f"lapo_targets: {file} not found (run LAPO stage 1 first; it writes {LAPO_TARGETS_FILE})")
    try:
        targets = json.loads(file.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as err:
        raise RecipeError(f"lapo_targets: {file} is not a JSON file of prompt: length ({err})") from err
    if not isinstance(targets, dict) or not all(isinstance(v, int | float) for v in targets.values()):
        raise RecipeError(f"lapo_targets: {file} must map each prompt to a number of tokens")
    return targets


def lapo_target(targets: dict[str, float], prompt) -> int | None:
    """T for a prompt: its stage-1 median, truncated to an int; None without one (absent, or 0 as LAPO records it)."""
    median = targets.get(last_user_text(prompt), 0)
    return int(median) if median > 0 else None


@register_transform("lapo_target", help="LAPO stage 2: ' I will answer the question with T tokens.' (lapo_targets)")
def add_lapo_target(dataset: Dataset, run_args, training_args) -> Dataset:
    targets = load_lapo_targets(run_args.lapo_targets)
    found = [lapo_target(targets, prompt) for prompt in dataset["prompt"]]
    if all(t is None for t in found):
        raise RecipeError(
            f"lapo_targets: none of the {len(found)} prompts has a stage-1 target in "
            f"{lapo_targets_path(run_args.lapo_targets)}; stage 2 needs stage 1's dataset, template and transforms"
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
