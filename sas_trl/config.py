"""`SASConfig`: `GRPOConfig` plus the Step-level Advantage Selection settings."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from trl import GRPOConfig

from .core import COUNT_MODES, FAILED_SCOPES, GRANULARITIES, RANKINGS, SELECTIONS, STRATEGIES, invalid_choice

# Loss types of TRL 1.16 whose per-token loss multiplies a (B, T) advantage tensor token by token.
TOKEN_ADVANTAGE_LOSSES = ("grpo", "bnpo", "dr_grpo", "dapo", "luspo", "cispo", "sapo", "vespo")
# Of those, the ones whose importance weight carries the gradient: with importance_sampling_level="sequence" the
# weight is exp(row-mean log-ratio), so every token's gradient carries the row's summed advantage and a zeroed
# token learns like a kept one. cispo and vespo detach their weights and stay token-level.
SEQUENCE_WEIGHT_LOSSES = ("grpo", "bnpo", "dr_grpo", "dapo", "luspo", "sapo")


def _choices(values: tuple[str, ...]) -> str:
    return ", ".join(repr(v) for v in values)


@dataclass
class SASConfig(GRPOConfig):
    r"""Configuration for [`SASGRPOTrainer`]: every [`~trl.GRPOConfig`] field plus the `sas_*` fields below.

    The defaults reproduce the paper (arXiv 2604.24003): ratio 0.3, both rollout kinds, confidence-ranked
    "\n\n"-delimited steps of the text before `</think>`, "correct" meaning the first reward function
    returned at least 1.0.
    """

    sas_ratio: float = field(
        default=0.3,
        metadata={
            "help": "Selection ratio r in [0, 1]: correct rollouts zero ceil(r*N) of their N steps, failed "
            "rollouts zero N - ceil((1-r)*N). 0 disables SAS (plain GRPO)."
        },
    )
    sas_strategy: str = field(
        default="both",
        metadata={
            "help": f"Which rollouts SAS touches: {_choices(STRATEGIES)}. 'correct_only' is the paper's "
            "'Only Correct' ablation."
        },
    )
    sas_selection: str = field(
        default="confidence",
        metadata={
            "help": f"How steps are chosen: {_choices(SELECTIONS)}. 'random' is the paper's ablation: keys drawn "
            "once per rollout at generation, from `seed`, the global step and the process index."
        },
    )
    sas_granularity: str = field(
        default="step",
        metadata={
            "help": f"Unit of selection: {_choices(GRANULARITIES)}. 'token' treats every reasoning token "
            "as a step (ablation)."
        },
    )
    sas_ranking: str = field(
        default="mean",
        metadata={
            "help": f"Step confidence: {_choices(RANKINGS)}. 'mean' is the mean token log-prob; 'std' "
            "ranks by the spread of the step's log-probs (ablation)."
        },
    )
    sas_failed_scope: str = field(
        default="all",
        metadata={
            "help": f"Which failed rollouts are shielded: {_choices(FAILED_SCOPES)}. 'truncated' shields "
            "only rollouts that hit max_completion_length without EOS; the paper uses 'all'."
        },
    )
    sas_count_mode: str = field(
        default="paper",
        metadata={
            "help": f"Step counting: {_choices(COUNT_MODES)}. 'release' reproduces the public code "
            "release exactly (docs/release_mode.md)."
        },
    )
    sas_delimiter: str = field(
        default="\n\n",
        metadata={"help": "Step delimiter: a token whose text contains it ends a step."},
    )
    sas_think_end: str | None = field(
        default="</think>",
        metadata={
            "help": "Token that ends the reasoning part; it and everything after are never zeroed. 'none' (null in "
            "a recipe; or a vocabulary without the token) makes the whole completion the reasoning part. An empty "
            "string is refused."
        },
    )
    sas_correct_reward_index: int = field(
        default=0,
        metadata={
            "help": "Which of TRL's reward columns defines a correct rollout: the `reward_funcs` in order, then one "
            "column per `environment_factory` environment class that defines `get_reward()`."
        },
    )
    sas_correct_threshold: float = field(
        default=1.0,
        metadata={"help": "A rollout is correct iff that reward is >= this value; all others count as failed."},
    )
    sas_min_steps: int = field(
        default=1,
        metadata={
            "help": "Rollouts with fewer steps than this are left to plain GRPO (nothing zeroed). 1 is the paper's "
            "rule; 2 keeps one-step rollouts (a model that writes no delimiter) from being zeroed whole when correct."
        },
    )

    @property
    def sas_enabled(self) -> bool:
        """Whether SAS can zero anything: off for strategy 'none' and for ratio 0 in paper counting (the release's
        counting zeroes N - 1 steps of a correct rollout even at ratio 0)."""
        return self.sas_strategy != "none" and (self.sas_ratio > 0 or self.sas_count_mode == "release")

    def __post_init__(self):
        self._validate_sas()
        super().__post_init__()

    def _validate_sas(self) -> None:
        message = invalid_choice(self)
        if message:
            raise ValueError(message)
        if isinstance(self.sas_think_end, str) and not self.sas_think_end.strip():
            raise ValueError(
                "sas_think_end='' is not valid: it would silently switch off the reasoning/answer split; give the "
                "token that ends the reasoning (default '</think>'), or 'none' for no think-end"
            )
        if isinstance(self.sas_think_end, str) and self.sas_think_end.lower() in ("none", "null"):
            self.sas_think_end = None  # the CLI passes None as a string
        if not (isinstance(self.sas_ratio, int | float) and 0.0 <= self.sas_ratio <= 1.0):
            raise ValueError(f"sas_ratio={self.sas_ratio!r} is not valid; allowed values: a number in [0, 1]")
        if not isinstance(self.sas_delimiter, str) or not self.sas_delimiter:
            raise ValueError(f"sas_delimiter={self.sas_delimiter!r} is not valid; allowed values: a non-empty string")
        if not isinstance(self.sas_min_steps, int) or self.sas_min_steps < 1:
            raise ValueError(f"sas_min_steps={self.sas_min_steps!r} is not valid; allowed values: an integer >= 1")
        if self.sas_correct_reward_index < 0:
            raise ValueError(
                f"sas_correct_reward_index={self.sas_correct_reward_index} is not valid; allowed values: an index "
                "into reward_funcs (>= 0)"
            )
        if not math.isfinite(self.sas_correct_threshold):
            raise ValueError(
                f"sas_correct_threshold={self.sas_correct_threshold} is not valid; allowed values: a finite number"
            )
        if self.loss_type not in TOKEN_ADVANTAGE_LOSSES:
            raise ValueError(
                f"loss_type={self.loss_type!r} cannot take token-level advantages; SAS supports: "
                f"{_choices(TOKEN_ADVANTAGE_LOSSES)}"
            )
        if (
            self.importance_sampling_level == "sequence"
            and self.loss_type in SEQUENCE_WEIGHT_LOSSES
            and self.sas_enabled
        ):
            raise ValueError(
                f"importance_sampling_level='sequence' with loss_type={self.loss_type!r} gives every token of a "
                "rollout the gradient of the rollout's summed advantage, so the tokens SAS zeroes would still learn; "
                "use importance_sampling_level='token', or loss_type 'cispo' or 'vespo' (token-level with either "
                "level), or turn SAS off (sas_ratio=0 or sas_strategy='none')"
            )
        if self.sas_failed_scope == "truncated" and self.mask_truncated_completions:
            raise ValueError(
                "sas_failed_scope='truncated' has nothing to shield with mask_truncated_completions=True (truncated "
                "rollouts are removed from the loss); set one of them differently"
            )
