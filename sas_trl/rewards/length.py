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

import json
import math
import statistics
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .correctness import MathVerifyReward
from .extraction import completion_text
from .params import ParamError, RunContext
from .registry import register_reward

LAPO_TARGETS_FILE = "lapo_targets.json"  # stage 1 writes it into its output folder; stage 2 reads it
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


def save_lapo_targets(targets: dict[str, float], path: str | Path) -> None:
    """Write stage 1's {prompt: median correct length} (0: no correct rollout in the prompt's last group)."""
    Path(path).write_text(json.dumps(targets, ensure_ascii=False, indent=0, sort_keys=True))


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
    correct: the last recorded value is kept, as LAPO's code keeps it); `save_state` writes it for stage 2 (training
    calls it at every checkpoint save and at the end, on the main process).
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

    def save_state(self, output_dir: str | Path) -> Path:
        """Write `targets` to `output_dir/lapo_targets.json` (stage 2's `transform_params.lapo_target.targets`)."""
        path = Path(output_dir) / LAPO_TARGETS_FILE
        path.parent.mkdir(parents=True, exist_ok=True)
        save_lapo_targets(self.targets, path)
        return path

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
# Registered factories: (params, context) -> reward, each with its parameters
# --------------------------------------------------------------------------------------------------


def _grader(context: RunContext) -> MathVerifyReward:
    # The same settings as the "accuracy" reward, so `grade_batch` reuses its verdicts.
    return MathVerifyReward(format=context.reward_format, answer_key="answer")


@dataclass(frozen=True)
class L1Params:
    """L1 / LCPO's reward parameters (recipe: `reward_params: {l1: {...}}`)."""

    alpha: float = field(
        default=0.0003,
        metadata={"help": "reward per token of distance to the budget (L1-Max's release: 0.002)", "was": "l1_alpha"},
    )
    max_form: str = field(
        default="multiplicative",
        metadata={
            "help": "L1-Max: 'multiplicative' (s * 1[correct], the release) or 'additive' (s + 1[correct])",
            "was": "l1_max_form",
        },
    )

    def __post_init__(self):
        if not self.alpha > 0:
            raise ParamError("alpha", self.alpha, "> 0")
        if self.max_form not in L1_MAX_FORMS:
            raise ParamError("max_form", self.max_form, ", ".join(L1_MAX_FORMS))


@register_reward(
    "l1",
    params=L1Params,
    needs_column=L1_BUDGET_COLUMN,
    help="L1/LCPO length term vs the prompt's budget (prompt_transforms: [l1_budget]); includes 1[correct]",
)
def get_l1_reward(params: L1Params, context: RunContext) -> L1Reward:
    """L1 (Aggarwal & Welleck 2025, "L1: Controlling How Long A Reasoning Model Thinks With Reinforcement Learning").

    Exact prompts (N >= 0): `1[correct] - alpha * |N - n|`; Max prompts (N < 0):
    `s = clip(0.5 + (alpha / 2) * (|N| - n), 0, 1)`, `s * 1[correct]` (or `s + 1[correct]`, `max_form: additive`).

    >>> from sas_trl.rewards.params import RunContext
    >>> reward = get_l1_reward(L1Params(alpha=0.01), RunContext(reward_format="plain"))
    >>> reward(completions=["5"], completion_ids=[[1] * 30], answer=["5"], l1_budget=[10])
    [0.8]
    """
    return L1Reward(_grader(context), alpha=params.alpha, max_form=params.max_form)


@dataclass(frozen=True)
class LAPOBandParams:
    """LAPO stage 1's reward parameters (recipe: `reward_params: {lapo_band: {...}}`)."""

    percentiles: tuple[float, float] = field(
        default=(30.0, 70.0),
        metadata={"help": "percentiles of the correct lengths bounding the band", "was": "lapo_percentiles"},
    )
    margin: float = field(
        default=100.0,
        metadata={"help": "tokens outside the band over which the score falls to 0", "was": "lapo_margin"},
    )
    weight: float = field(default=0.7, metadata={"help": "weight of the band score", "was": "lapo_band_weight"})

    def __post_init__(self):
        low_high = tuple(self.percentiles)
        if not (len(low_high) == 2 and 0 <= low_high[0] < low_high[1] <= 100):
            raise ParamError("percentiles", list(low_high), "[low, high] with 0 <= low < high <= 100")
        if not self.margin > 0:
            raise ParamError("margin", self.margin, "> 0")
        if not self.weight >= 0:
            raise ParamError("weight", self.weight, ">= 0")


@register_reward(
    "lapo_band", params=LAPOBandParams, help="LAPO stage 1: acc + 0.7 * band score on the group's correct lengths"
)
def get_lapo_band_reward(params: LAPOBandParams, context: RunContext) -> LAPOBandReward:
    """LAPO stage 1 (Wu et al. 2025, "LAPO: Internalizing Reasoning Efficiency via Length-Adaptive Policy
    Optimization"): `1[correct] + weight * band score`, the band being the group's percentiles of correct lengths.

    >>> from sas_trl.rewards.params import RunContext
    >>> reward = get_lapo_band_reward(LAPOBandParams(margin=7.0), RunContext(num_generations=4))
    >>> (reward.margin, reward.num_generations, reward.weight)
    (7.0, 4, 0.7)
    """
    return LAPOBandReward(
        _grader(context),
        context.need("num_generations", "reward 'lapo_band' (a group-level reward)"),
        percentiles=params.percentiles,
        margin=params.margin,
        weight=params.weight,
    )


@dataclass(frozen=True)
class LAPOTargetParams:
    """LAPO stage 2's reward parameters (recipe: `reward_params: {lapo_target: {...}}`)."""

    sigma: float = field(default=120.0, metadata={"help": "Gaussian width in tokens", "was": "lapo_sigma"})
    weight: float = field(default=0.8, metadata={"help": "weight of the Gaussian", "was": "lapo_target_weight"})

    def __post_init__(self):
        if not self.sigma > 0:
            raise ParamError("sigma", self.sigma, "> 0")
        if not self.weight >= 0:
            raise ParamError("weight", self.weight, ">= 0")


@register_reward(
    "lapo_target",
    params=LAPOTargetParams,
    needs_column=LAPO_TARGET_COLUMN,
    help="LAPO stage 2: acc + 0.8 * Gaussian around the stage-1 target (transform lapo_target)",
)
def get_lapo_target_reward(params: LAPOTargetParams, context: RunContext) -> LAPOTargetReward:
    """LAPO stage 2: `1 + weight * exp(-(n - T)^2 / (2 sigma^2))` for a correct rollout, 0 for a wrong one.

    >>> from sas_trl.rewards.params import RunContext
    >>> reward = get_lapo_target_reward(LAPOTargetParams(sigma=6.0), RunContext(num_generations=4))
    >>> (reward.sigma, reward.weight)
    (6.0, 0.8)
    """
    return LAPOTargetReward(
        _grader(context),
        context.need("num_generations", "reward 'lapo_target' (a group-level reward)"),
        sigma=params.sigma,
        weight=params.weight,
    )


@dataclass(frozen=True)
class DAPOOverlongParams:
    """DAPO's soft overlong punishment (recipe: `reward_params: {dapo_overlong: {cache: ...}}`)."""

    cache: int | None = field(
        default=None,
        metadata={
            "help": "the last tokens before max_completion_length over which the reward falls from 0 to -1; unset: "
            "a fifth of max_completion_length (DAPO's 4096 of 20480)",
            "was": "overlong_cache",
        },
    )

    def __post_init__(self):
        if self.cache is not None and not self.cache >= 1:
            raise ParamError("cache", self.cache, ">= 1")

    def check_context(self, context: RunContext) -> None:
        """The cache fits under the generation cap."""
        cap = context.max_completion_length
        if self.cache is not None and cap is not None and self.cache > cap:
            raise ParamError("cache", self.cache, f"<= max_completion_length ({cap})")

    def width(self, max_completion_length: int) -> int:
        """The punishment's width: `cache`, else DAPO's proportion (a fifth of the cap)."""
        return self.cache or max(1, max_completion_length // 5)


@register_reward(
    "dapo_overlong",
    params=DAPOOverlongParams,
    help="DAPO soft overlong punishment (trl.rewards): 0 down to -1 over the last tokens",
)
def get_dapo_overlong_reward(params: DAPOOverlongParams, context: RunContext):
    """DAPO (Yu et al. 2025): 0 up to `L - cache` tokens, `(L - cache - n) / cache` up to L, -1 beyond; TRL's own
    `get_soft_overlong_punishment`.

    >>> from sas_trl.rewards.params import RunContext
    >>> reward = get_dapo_overlong_reward(DAPOOverlongParams(cache=20), RunContext(max_completion_length=100))
    >>> reward(completion_ids=[[0] * 80, [0] * 90, [0] * 101])
    [0.0, -0.5, -1.0]
    """
    from trl.rewards import get_soft_overlong_punishment

    max_length = context.need("max_completion_length", "reward 'dapo_overlong'")
    return get_soft_overlong_punishment(max_length, params.width(max_length))
