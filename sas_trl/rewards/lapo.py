"""LAPO's rewards (Wu et al. 2025): stage 1 rewards lengths inside the band of a group's correct lengths and
records each prompt's median correct length; stage 2 rewards lengths near that target. Each formula, where it
follows the method's public code and where it deviates: docs/baselines.md.

Both are group-level (they compare a rollout with the other rollouts of its prompt): see `gather_rollouts` in
`sas_trl.rewards.length` for how a group split between processes is scored whole.
"""

from __future__ import annotations

import json
import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..output_files import write_text
from .correctness import MathVerifyReward
from .length import LAPO_TARGET_COLUMN, LAPO_TARGETS_FILE, gather_rollouts, grader, prompt_key, split_groups, verdicts
from .params import ParamError, RunContext, generation_mode
from .registry import register_reward


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
    """Write stage 1's {prompt: median correct length} (0: no correct rollout in the prompt's last group).

    Written beside and then renamed over the file (`output_files.write_text`), so a run killed mid-save leaves
    the previous file whole, and a link there is replaced, never written through.
    """
    path = Path(path)
    write_text(path.parent, path.name, json.dumps(targets, ensure_ascii=False, indent=0, sort_keys=True))


def lapo_gaussian(length: int, target: float, sigma: float = 120.0) -> float:
    """LAPO stage 2's length score of a correct rollout: `exp(-(n - T)^2 / (2 sigma^2))`."""
    return math.exp(-((length - target) ** 2) / (2 * sigma**2))


class _GroupReward:
    """Shared by LAPO's two stages: verdicts and lengths gathered across processes, scored a group at a time.

    A group is `num_generations` rollouts in training and `num_generations_eval` in evaluation (the trainer says
    which with the `generation_mode` keyword; without it, a call is a training call).
    """

    def __init__(
        self, correctness: MathVerifyReward, num_generations: int, gather=None, num_generations_eval: int | None = None
    ):
        for name, value in (("num_generations", num_generations), ("num_generations_eval", num_generations_eval)):
            if value is not None and value < 1:
                raise ValueError(f"{name} must be >= 1, got {value}")
        self.correctness, self.num_generations, self.gather = correctness, num_generations, gather
        self.num_generations_eval = num_generations_eval or num_generations

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
        training = generation_mode(kwargs) == "train"
        rewards: list[float | None] = []
        for group in split_groups(everything, self.num_generations if training else self.num_generations_eval):
            rewards.extend(self.score_group(group, training))
        return rewards[offset : offset + len(rows)]

    def columns(self, kwargs: dict) -> list[Sequence]:
        """Extra dataset columns each row carries (after key, verdict, length)."""
        return []

    def score_group(self, group: list[tuple], training: bool) -> list[float | None]:
        """The rewards of one group of rows `(key, verdict, length, *columns)`; `training`: a training batch."""
        raise NotImplementedError

    def close(self) -> None:
        self.correctness.close()


class LAPOBandReward(_GroupReward):
    """LAPO stage 1: `acc + weight * band score` (docs/baselines.md); records each prompt's median correct length.

    `targets` maps a prompt (`prompt_key`) to the median correct length of its latest training group (0 when none
    was correct: the last recorded value is kept, as LAPO's code keeps it; evaluation groups record nothing);
    `save_state` writes it for stage 2 (training calls it at every checkpoint save and at the end, on the main
    process), `load_state` reads it back when a run resumes.
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
        num_generations_eval: int | None = None,
    ):
        super().__init__(correctness, num_generations, gather, num_generations_eval)
        self.percentiles, self.margin, self.weight = tuple(percentiles), margin, weight
        self.targets: dict[str, float] = {}

    def save_state(self, output_dir: str | Path) -> Path:
        """Write `targets` to `output_dir/lapo_targets.json` (stage 2's `transform_params.lapo_target.targets`)."""
        path = Path(output_dir) / LAPO_TARGETS_FILE
        path.parent.mkdir(parents=True, exist_ok=True)
        save_lapo_targets(self.targets, path)
        return path

    def load_state(self, path: str | Path) -> None:
        """Targets saved by `save_state` (a folder or the file), under the ones recorded since: the latest wins."""
        path = Path(path)
        file = path / LAPO_TARGETS_FILE if path.is_dir() else path
        self.targets = {**json.loads(file.read_text(encoding="utf-8")), **self.targets}

    def score_group(self, group, training):
        correct = [v == 1.0 for _, v, _ in group]
        scores, median = lapo_band_scores(correct, [n for _, _, n in group], self.percentiles, self.margin)
        if training:  # evaluation prompts are not stage 2's training prompts
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
        num_generations_eval: int | None = None,
    ):
        super().__init__(correctness, num_generations, gather, num_generations_eval)
        self.sigma, self.weight, self.target_key = sigma, weight, target_key

    def columns(self, kwargs):
        if self.target_key not in kwargs:
            raise KeyError(f"reward 'lapo_target' needs column {self.target_key!r} (prompt_transforms: [lapo_target])")
        return [kwargs[self.target_key]]

    def score_group(self, group, training):
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
        grader(context),
        context.need("num_generations", "reward 'lapo_band' (a group-level reward)"),
        percentiles=params.percentiles,
        margin=params.margin,
        weight=params.weight,
        num_generations_eval=context.num_generations_eval,
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
        grader(context),
        context.need("num_generations", "reward 'lapo_target' (a group-level reward)"),
        sigma=params.sigma,
        weight=params.weight,
        num_generations_eval=context.num_generations_eval,
    )
