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

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

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

    As in L1's data, N >= 0 asks for exactly N tokens (`l1_exact`, slope `alpha`) and N < 0 for at most |N| tokens
    (`l1_max`, slope `max_alpha`): each kind its own alpha, as L1's March 2025 release scores its mixed Max data
    (1/3000 for Exact rows, 1/500 for Max rows).
    """

    __name__ = "l1"

    def __init__(
        self,
        correctness: MathVerifyReward,
        alpha: float = 0.0003,
        max_form: str = "multiplicative",
        budget_key: str = L1_BUDGET_COLUMN,
        max_alpha: float = 0.002,
    ):
        if max_form not in L1_MAX_FORMS:
            raise ValueError(f"max_form must be one of {L1_MAX_FORMS}, got {max_form!r}")
        self.correctness, self.alpha, self.max_form, self.budget_key = correctness, alpha, max_form, budget_key
        self.max_alpha = max_alpha

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
                rewards.append(l1_max(verdict == 1.0, -budget, len(ids), self.max_alpha, self.max_form))
        return rewards

    def close(self) -> None:
        self.correctness.close()


# --------------------------------------------------------------------------------------------------
# LAPO
# --------------------------------------------------------------------------------------------------


def grader(context: RunContext) -> MathVerifyReward:
    # The same settings as the "accuracy" reward, so `grade_batch` reuses its verdicts.
    return MathVerifyReward(format=context.reward_format, answer_key="answer")


@dataclass(frozen=True)
class L1Params:
    """L1 / LCPO's reward parameters (recipe: `reward_params: {l1: {...}}`)."""

    alpha: float = field(
        default=0.0003,
        metadata={
            "help": "Exact rows (N >= 0): reward per token of distance to the budget (L1-Exact: 0.0003; the Exact "
            "rows of L1-Max's data: 1/3000)",
            "was": "l1_alpha",
        },
    )
    max_alpha: float = field(
        default=0.002,
        metadata={
            "help": "Max rows (N < 0): the slope 2 * (alpha / 2) of s = clip(0.5 + (max_alpha / 2) * (N - n)); "
            "L1-Max's release: 1/500"
        },
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
        if not self.max_alpha > 0:
            raise ParamError("max_alpha", self.max_alpha, "> 0")
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
    `s = clip(0.5 + (max_alpha / 2) * (|N| - n), 0, 1)`, `s * 1[correct]` (or `s + 1[correct]`, `max_form:
    additive`).

    >>> from sas_trl.rewards.params import RunContext
    >>> reward = get_l1_reward(L1Params(alpha=0.01, max_alpha=0.02), RunContext(reward_format="plain"))
    >>> reward(completions=["5", "5"], completion_ids=[[1] * 30, [1] * 30], answer=["5", "5"], l1_budget=[10, -10])
    [0.8, 0.3]
    """
    return L1Reward(grader(context), alpha=params.alpha, max_form=params.max_form, max_alpha=params.max_alpha)


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
