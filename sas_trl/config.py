"""`SASConfig`: `GRPOConfig` plus the Step-level Advantage Selection settings.

The `sas_*` fields that define the rule (ratio, strategy, selection, ...) are `sas_trl.core.SASRule`'s fields under
the `sas_` prefix, with its defaults and help: they are made from it, never written here again, and
`SASConfig.sas_rule` is the validated rule the trainer applies.
"""

from __future__ import annotations

import math
import typing
import warnings
from dataclasses import dataclass, field, make_dataclass

from trl import GRPOConfig

from .core import PREFIX, SASRule
from .trl_losses import LOSS_TYPES

# The rule's settings as dataclass fields named sas_<name> (a base class of SASConfig, so TrlParser and
# HfArgumentParser see ordinary fields with help, first in --help).
_HINTS = typing.get_type_hints(SASRule)
SASRuleFields = make_dataclass(
    "SASRuleFields",
    [(PREFIX + f.name, _HINTS[f.name], field(default=f.default, metadata=dict(f.metadata))) for f in SASRule.fields()],
)


def quiet_trl_deprecations() -> None:
    """Ignore exactly the FutureWarnings transformers 5 gives TRL 1.16 for turning gradient checkpointing off around
    each generation through the old method names (`is_gradient_checkpointing`, `gradient_checkpointing_disable`,
    `gradient_checkpointing_enable`): one per call site, again after every checkpoint save, breaking the progress
    bar, and nothing the user can change. Every other warning still shows."""
    warnings.filterwarnings(
        "ignore",
        message=r"`(is_gradient_checkpointing|gradient_checkpointing_(enable|disable))` is deprecated",
        category=FutureWarning,
        module=r"transformers\.modeling_utils",
    )


quiet_trl_deprecations()


@dataclass
class SASConfig(GRPOConfig, SASRuleFields):
    r"""Configuration for [`SASGRPOTrainer`]: every [`~trl.GRPOConfig`] field plus the `sas_*` fields below.

    The defaults reproduce the paper (arXiv 2604.24003): ratio 0.3, both rollout kinds, confidence-ranked
    "\n\n"-delimited steps of the text before `</think>`, "correct" meaning the first reward function
    returned at least 1.0.
    """

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

    @property
    def sas_rule(self) -> SASRule:
        """The SAS rule these `sas_*` fields define (validated; what the trainer applies)."""
        return SASRule.from_settings(self)

    @property
    def sas_enabled(self) -> bool:
        """Whether SAS can zero anything (`SASRule.enabled`)."""
        return self.sas_rule.enabled

    def __post_init__(self):
        self._validate_sas()
        # TRL sets `gradient_checkpointing` (default True), which transformers 5 renamed `activation_checkpointing`
        # and warns about on every start; the new name, given the same value, means the same and warns nothing.
        for old, new in (
            ("gradient_checkpointing", "activation_checkpointing"),
            ("gradient_checkpointing_kwargs", "activation_checkpointing_kwargs"),
        ):
            if hasattr(self, new) and getattr(self, new) is None:
                setattr(self, new, getattr(self, old))
        super().__post_init__()

    def _validate_sas(self) -> None:
        rule = SASRule.from_settings(self)  # the rule's own validation, its messages naming the sas_* field
        self.sas_think_end = rule.think_end  # normalised: the CLI passes 'none' as a string
        self.sas_ratio = rule.ratio
        if self.sas_correct_reward_index < 0:
            raise ValueError(
                f"sas_correct_reward_index={self.sas_correct_reward_index} is not valid; allowed values: an index "
                "into reward_funcs (>= 0)"
            )
        if not math.isfinite(self.sas_correct_threshold):
            raise ValueError(
                f"sas_correct_threshold={self.sas_correct_threshold} is not valid; allowed values: a finite number"
            )
        loss = LOSS_TYPES.get(self.loss_type)
        if loss is None:
            raise ValueError(
                f"loss_type={self.loss_type!r} cannot take token-level advantages; SAS supports: "
                f"{', '.join(repr(name) for name in LOSS_TYPES)}"
            )
        if self.importance_sampling_level == "sequence" and loss.sequence_weight_carries_gradient and rule.enabled:
            token_level = [
                repr(name) for name, spec in LOSS_TYPES.items() if not spec.sequence_weight_carries_gradient
            ]
            raise ValueError(
                f"importance_sampling_level='sequence' with loss_type={self.loss_type!r} gives every token of a "
                "rollout the gradient of the rollout's summed advantage, so the tokens SAS zeroes would still learn; "
                f"use importance_sampling_level='token', or loss_type {' or '.join(token_level)} (token-level with "
                "either level), or turn SAS off (sas_ratio=0 or sas_strategy='none')"
            )
        if rule.failed_scope == "truncated" and self.mask_truncated_completions:
            raise ValueError(
                "sas_failed_scope='truncated' has nothing to shield with mask_truncated_completions=True (truncated "
                "rollouts are removed from the loss); set one of them differently"
            )
