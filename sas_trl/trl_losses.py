"""What SAS needs to know about each of TRL 1.16's `loss_type`s, in one table.

TRL keeps no list of its loss types (`GRPOTrainer._compute_loss` branches on the name), so the facts SAS
depends on are read from its source once and kept here: config validation and the trainer's metrics both read
this table.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class LossType:
    # With importance_sampling_level="sequence" the weight is exp(row-mean log-ratio): if the loss keeps that weight
    # in the gradient, every token's gradient carries the row's summed advantage, and a zeroed token learns like a
    # kept one. cispo and vespo detach their weights and stay token-level.
    sequence_weight_carries_gradient: bool
    # Which of TRL's clip metrics the loss logs: "ppo" (clip_ratio/low, high, region), "cispo", or None.
    clip_metric: str | None


# Every one multiplies a (B, T) advantage tensor token by token (TRL 1.16 accepts (B,) or (B, T) advantages).
LOSS_TYPES: dict[str, LossType] = {
    "grpo": LossType(True, "ppo"),
    "bnpo": LossType(True, "ppo"),
    "dr_grpo": LossType(True, "ppo"),
    "dapo": LossType(True, "ppo"),
    "luspo": LossType(True, "ppo"),
    "cispo": LossType(False, "cispo"),
    "sapo": LossType(True, None),
    "vespo": LossType(False, None),
}
