"""Length-aware rewards of the baselines SAS is compared with: L1 (LCPO), LAPO stages 1 and 2, DAPO's overlong
punishment. Each formula, where it follows the method's public code and where it deviates: docs/baselines.md.

Every reward is a plain TRL reward callable. It is listed *after* the correctness reward ("accuracy"), which stays
the first reward, so SAS's "correct" is always "the answer is right", whatever the length term adds. A reward that
needs the verdict grades with a `MathVerifyReward` of the same settings; `MathVerifyReward.grade_batch` hands it
the verdict the correctness reward just computed for the same batch, so nothing is graded twice.

The length n of a rollout is `len(completion_ids)`: the whole response in tokens, reasoning, answer and EOS
(padding excluded), as L1 counts it.

LAPO's rewards are group-level (they compare a rollout with the other rollouts of its prompt). TRL 1.16 calls a
reward with the rollouts of *this process* only; a prompt's `num_generations` rollouts are contiguous in the
order of all processes' rollouts concatenated (which is how TRL groups rewards after gathering them), but one
group may be split between two processes. The group rewards therefore gather (length, verdict, prompt) from every
process, score whole groups, and return their own slice (`gather_rollouts`).
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from .correctness import MathVerifyReward
from .extraction import completion_text
from .registry import register_reward

L1_BUDGET_COLUMN = "l1_budget"
LAPO_TARGET_COLUMN = "lapo_target"
L1_MAX_FORMS = ("multiplicative", "additive")


def prompt_key(prompt) -> str:
    """The text that names a prompt across LAPO's stages: the last user message (or the prompt, if plain text)."""
    if isinstance(prompt, str):
        return prompt
    users = [m for m in prompt if m.get("role") == "user"]
    return completion_text(users[-1:] or prompt)


def verdicts(correctness: MathVerifyReward, completions: Sequence, kwargs: dict) -> list[float | None]:
    """1.0 / 0.0 per rollout (None for an unusable gold answer), from the correctness reward's grading."""
    return correctness.grade_batch(completions, correctness.gold_answers(kwargs))


def _accelerate_gather(rows: list) -> tuple[list, int]:
    from accelerate import PartialState
    from accelerate.utils import gather_object

    state = PartialState()
    if state.num_processes == 1:
        return rows, 0
    sizes = gather_object([len(rows)])
    return gather_object(rows), sum(sizes[: state.process_index])


def gather_rollouts(rows: list, gather: Callable[[list], tuple[list, int]] | None = None) -> tuple[list, int]:
    """Every process's rows, concatenated in process order (TRL's order), and the offset of this process's rows.

    All processes call a reward at the same point of every batch, so the collective cannot deadlock.
    `gather` replaces accelerate's (tests simulate several processes with it).
    """
    return (gather or _accelerate_gather)(rows)


def split_groups(rows: list, group_size: int) -> list[list]:
    """Consecutive groups of `group_size` rows `(key, ...)`; a group mixing prompts means the order is not TRL's."""
    if len(rows) % group_size:
        raise RuntimeError(f"{len(rows)} rollouts do not form groups of num_generations={group_size}")
    groups = [rows[i : i + group_size] for i in range(0, len(rows), group_size)]
    for group in groups:
        if len({row[0] for row in group}) != 1:
            raise RuntimeError("the rollouts of one prompt are not contiguous; group-level rewards need TRL's order")
    return groups


# --------------------------------------------------------------------------------------------------
# L1 (LCPO)
# --------------------------------------------------------------------------------------------------


def l1_exact(correct: bool, budget: float, length: int, alpha: float = 0.0003) -> float:
    """L1-Exact: `1[correct] - alpha * |N - n|`, unclipped."""
    return float(correct) - alpha * abs(budget - length)


def l1_max(correct: bool, budget: float, length: int, alpha: float = 0.002, form: str = "multiplicative") -> float:
    """L1-Max: `s = clip(0.5 + (alpha / 2) * (N - n), 0, 1)`; released `s * 1[correct]`, additive `s + 1[correct]`."""
    s = min(1.0, max(0.0, 0.5 + alpha / 2 * (budget - length)))
    return s * float(correct) if form == "multiplicative" else s + float(correct)


class L1Reward:
    """L1 / LCPO: the rollout's length against the budget N its prompt asked for (column `l1_budget`).

    As in L1's data, N >= 0 asks for exactly N tokens (`l1_exact`) and N < 0 for at most |N| tokens (`l1_max`).
    One `alpha` serves both kinds, as in L1's code.
    """

    __name__ = "l1"

    def __init__(
        self,
        correctness: MathVerifyReward,
        alpha: float = 0.0003,
        max_form: str = "multiplicative",
        budget_key: str = L1_BUDGET_COLUMN,
    ):
        if max_form not in L1_MAX_FORMS:
            raise ValueError(f"max_form must be one of {L1_MAX_FORMS}, got {max_form!r}")
        self.correctness, self.alpha, self.max_form, self.budget_key = correctness, alpha, max_form, budget_key

    def __call__(self, completions: Sequence, completion_ids: Sequence[Sequence[int]], **kwargs) -> list[float | None]:
        if self.budget_key not in kwargs:
            raise KeyError(f"reward 'l1' needs the budget column {self.budget_key!r} (prompt_transforms: [l1_budget])")
        rewards: list[float | None] = []
        for verdict, budget, ids in zip(
            verdicts(self.correctness, completions, kwargs), kwargs[self.budget_key], completion_ids, strict=True
        ):
            if verdict is None:
                rewards.append(None)
            elif budget >= 0:
                rewards.append(l1_exact(verdict == 1.0, budget, len(ids), self.alpha))
            else:
                rewards.append(l1_max(verdict == 1.0, -budget, len(ids), self.alpha, self.max_form))
        return rewards

    def close(self) -> None:
        self.correctness.close()


# --------------------------------------------------------------------------------------------------
# LAPO
# --------------------------------------------------------------------------------------------------


def lapo_band_scores(
    correct: Sequence[bool], lengths: Sequence[int], percentiles=(30.0, 70.0), margin: float = 100.0
) -> tuple[list[float], float]:
    """LAPO stage 1 on one group: the length score of each rollout and the median correct length (0 if none).

    The band is the group's `percentiles` of the correct rollouts' lengths (numpy's linear interpolation). A
    correct rollout scores 1 inside it and `max(0, 1 - d / margin)` outside, d the distance to the nearer bound;
    wrong rollouts score 0, and so does everyone when the band is empty (fewer than two distinct correct lengths).
    """
    good = [n for n, c in zip(lengths, correct, strict=True) if c]
    if not good:
        return [0.0] * len(lengths), 0.0
    low, high = (float(q) for q in np.percentile(good, percentiles))
    scores = []
    for n, c in zip(lengths, correct, strict=True):
        if not c or not low < high:
            scores.append(0.0)
        elif low <= n <= high:
            scores.append(1.0)
        else:
            scores.append(max(0.0, 1.0 - min(abs(n - low), abs(n - high)) / margin))
    return scores, float(statistics.median(good))


def lapo_gaussian(length: int, target: float, sigma: float = 120.0) -> float:
    """LAPO stage 2's length score of a correct rollout: `exp(-(n - T)^2 / (2 sigma^2))`."""
    return math.exp(-((length - target) ** 2) / (2 * sigma**2))


class _GroupReward:
    """Shared by LAPO's two stages: verdicts and lengths gathered across processes, scored a group at a time."""

    def __init__(self, correctness: MathVerifyReward, num_generations: int, gather=None):
        if num_generations < 1:
            raise ValueError(f"num_generations must be >= 1, got {num_generations}")
        self.correctness, self.num_generations, self.gather = correctness, num_generations, gather

    def __call__(self, prompts, completions, completion_ids, **kwargs) -> list[float | None]:
        rows = [
            (prompt_key(p), v, len(ids), *extra)
            for p, v, ids, *extra in zip(
                prompts,
                verdicts(self.correctness, completions, kwargs),
                completion_ids,
                *self.columns(kwargs),
                strict=True,
            )
        ]
        everything, offset = gather_rollouts(rows, self.gather)
        rewards: list[float | None] = []
        for group in split_groups(everything, self.num_generations):
            rewards.extend(self.score_group(group))
        return rewards[offset : offset + len(rows)]

    def columns(self, kwargs: dict) -> list[Sequence]:
        """Extra dataset columns each row carries (after key, verdict, length)."""
        return []

    def score_group(self, group: list[tuple]) -> list[float | None]:
        raise NotImplementedError

    def close(self) -> None:
        self.correctness.close()


class LAPOBandReward(_GroupReward):
    """LAPO stage 1: `acc + weight * band score` (docs/baselines.md); records each prompt's median correct length.

    `targets` maps a prompt (`prompt_key`) to the median correct length of its latest group (0 when none was
    correct: the last recorded value is kept, as LAPO's code keeps it); `sas_trl.training.lapo` saves it for stage 2.
    """

    __name__ = "lapo_band"

    def __init__(
        self,
        correctness: MathVerifyReward,
        num_generations: int,
        percentiles: Sequence[float] = (30.0, 70.0),
        margin: float = 100.0,
        weight: float = 0.7,
        gather=None,
    ):
        super().__init__(correctness, num_generations, gather)
        self.percentiles, self.margin, self.weight = tuple(percentiles), margin, weight
        self.targets: dict[str, float] = {}

    def score_group(self, group):
        correct = [v == 1.0 for _, v, _ in group]
        scores, median = lapo_band_scores(correct, [n for _, _, n in group], self.percentiles, self.margin)
        self.targets[group[0][0]] = median
        rows = zip(group, correct, scores, strict=True)
        return [None if v is None else float(c) + self.weight * s for (_, v, _), c, s in rows]


class LAPOTargetReward(_GroupReward):
    """LAPO stage 2: `acc + weight * exp(-(n - T)^2 / (2 sigma^2))` for a correct rollout, `acc` otherwise.

    T is the prompt's stage-1 median (column `lapo_target`); a prompt without one (None) uses the median correct
    length of its group, as LAPO's code does for its "no statistic" value.
    """

    __name__ = "lapo_target"

    def __init__(
        self,
        correctness: MathVerifyReward,
        num_generations: int,
        sigma: float = 120.0,
        weight: float = 0.8,
        target_key: str = LAPO_TARGET_COLUMN,
        gather=None,
    ):
        super().__init__(correctness, num_generations, gather)
        self.sigma, self.weight, self.target_key = sigma, weight, target_key

    def columns(self, kwargs):
        if self.target_key not in kwargs:
            raise KeyError(f"reward 'lapo_target' needs column {self.target_key!r} (prompt_transforms: [lapo_target])")
        return [kwargs[self.target_key]]

    def score_group(self, group):
        good = [n for _, v, n, _ in group if v == 1.0]
        fallback = statistics.median(good) if good else None
        rewards = []
        for _, v, n, target in group:
            if v is None:
                rewards.append(None)
            elif v == 1.0:
                t = target if target is not None else fallback
                rewards.append(1.0 + self.weight * lapo_gaussian(n, t, self.sigma))
            else:
                rewards.append(0.0)
        return rewards


# --------------------------------------------------------------------------------------------------
# Registered factories: (run_args, training_args) -> reward
# --------------------------------------------------------------------------------------------------


def _grader(run_args) -> MathVerifyReward:
    # The same settings as the "accuracy" reward, so `grade_batch` reuses its verdicts.
    return MathVerifyReward(format=run_args.reward_format, answer_key="answer")


def _num_generations(training_args: Any) -> int:
    if training_args is None:
        raise ValueError("group-level rewards need the training arguments (their num_generations is the group size)")
    return training_args.num_generations


@register_reward(
    "l1",
    help="L1/LCPO length term vs the prompt's budget (prompt_transforms: [l1_budget]); includes 1[correct]",
)
def get_l1_reward(run_args, training_args=None) -> L1Reward:
    return L1Reward(_grader(run_args), alpha=run_args.l1_alpha, max_form=run_args.l1_max_form)


@register_reward("lapo_band", help="LAPO stage 1: acc + 0.7 * band score on the group's correct lengths")
def get_lapo_band_reward(run_args, training_args=None) -> LAPOBandReward:
    return LAPOBandReward(
        _grader(run_args),
        _num_generations(training_args),
        percentiles=run_args.lapo_percentiles,
        margin=run_args.lapo_margin,
        weight=run_args.lapo_band_weight,
    )


@register_reward(
    "lapo_target",
    help="LAPO stage 2: acc + 0.8 * Gaussian around the stage-1 target (transform lapo_target)",
)
def get_lapo_target_reward(run_args, training_args=None) -> LAPOTargetReward:
    return LAPOTargetReward(
        _grader(run_args),
        _num_generations(training_args),
        sigma=run_args.lapo_sigma,
        weight=run_args.lapo_target_weight,
    )


def overlong_cache(run_args, max_completion_length: int) -> int:
    """DAPO's soft-punishment width: the recipe's `overlong_cache`, else DAPO's proportion (4096 of 20480 tokens)."""
    return run_args.overlong_cache or max(1, max_completion_length // 5)


@register_reward(
    "dapo_overlong", help="DAPO soft overlong punishment (trl.rewards): 0 down to -1 over the last tokens"
)
def get_dapo_overlong_reward(run_args, training_args=None):
    from trl.rewards import get_soft_overlong_punishment

    max_length = training_args.max_completion_length
    return get_soft_overlong_punishment(max_length, overlong_cache(run_args, max_length))
