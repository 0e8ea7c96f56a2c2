"""The trainer's SAS statistics: per-micro-batch counts, one reduction per logging step, and what they mean.

Each micro-batch contributes one `BatchCounts` (0-dim tensors, nothing read back to the host); at log time the
buffered counts are summed over processes in one reduction, and every metric is a ratio of two named counts.
The degenerate-case check reads the same counts.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from dataclasses import dataclass

import torch

from .core import SASRule
from .selection import reasoning_correct_rows
from .step_labels import CORRECT, OUTSIDE, REDUNDANT, WRONG
from .trl_losses import LOSS_TYPES


@dataclass
class BatchCounts:
    """Counts over one micro-batch (or, summed, several): 0-dim tensors while training, floats once reduced."""

    rollouts: torch.Tensor | float
    correct: torch.Tensor | float
    failed: torch.Tensor | float
    truncated: torch.Tensor | float
    failed_truncated: torch.Tensor | float
    correct_zeroed_whole: torch.Tensor | float  # correct rollouts with every valid token zeroed
    steps: torch.Tensor | float
    tokens: torch.Tensor | float
    tokens_correct: torch.Tensor | float
    tokens_failed: torch.Tensor | float
    zeroed: torch.Tensor | float
    zeroed_correct: torch.Tensor | float
    zeroed_failed: torch.Tensor | float
    kept_tokens: torch.Tensor | float
    clip_low: torch.Tensor | float
    clip_high: torch.Tensor | float
    clip_region: torch.Tensor | float
    clip_units: torch.Tensor | float  # what the clip ratios divide by: kept tokens, or rollouts (sequence level)
    # With step labels (built-in tasks; 0 without): see `label_counts`.
    labelled: torch.Tensor | float = 0.0
    mislabelled: torch.Tensor | float = 0.0
    mislabelled_punished: torch.Tensor | float = 0.0
    failed_zeroed_steps: torch.Tensor | float = 0.0
    failed_zeroed_steps_correct: torch.Tensor | float = 0.0
    correct_zeroed_steps: torch.Tensor | float = 0.0
    correct_zeroed_steps_useless: torch.Tensor | float = 0.0

    @classmethod
    def of(
        cls,
        zero: torch.Tensor,
        valid: torch.Tensor,
        step_ids: torch.Tensor,
        is_correct: torch.Tensor,
        is_truncated: torch.Tensor,
        clipped: tuple[torch.Tensor, torch.Tensor, torch.Tensor],
        labels: torch.Tensor | None = None,
        advantages: torch.Tensor | None = None,
    ) -> BatchCounts:
        """Counts of one micro-batch.

        Args:
            zero, valid: BoolTensor (B, T): tokens SAS zeroed; valid completion tokens.
            step_ids: LongTensor (B, T) from segmentation (steps 0..N-1 without gaps, -1 elsewhere).
            is_correct, is_truncated: BoolTensor (B,).
            clipped: (low, high, region) BoolTensors from `clip_flags`: (B, T) with token-level importance
                sampling, (B, 1) with sequence-level (one ratio per rollout).
            labels: LongTensor (B, L), ground-truth step labels (built-in tasks), or None (the label counts stay 0).
            advantages: FloatTensor (B,) or (B, T), the advantages the loss uses (after SAS); needed with `labels`.

        The clip counts follow TRL's metric at each level. Token level: clipped kept tokens over kept tokens.
        Sequence level: clipped rollouts over all rollouts, as TRL counts each row once there; a rollout SAS
        zeroed whole has advantage 0 and is never clipped, so with SAS off the ratios equal TRL's at both levels.
        """
        correct, failed = is_correct.unsqueeze(1), ~is_correct.unsqueeze(1)
        kept = valid & ~zero
        labelled = {}
        if labels is not None:
            labelled = label_counts(zero, valid, step_ids, labels, is_correct, is_truncated, advantages)
        low, high, region = clipped
        if low.size(1) == 1:  # sequence level: one flag per rollout, counted if the rollout kept any token
            has_kept = kept.any(dim=1, keepdim=True)
            low, high, region = low & has_kept, high & has_kept, region & has_kept
            clip_units = torch.full((), is_correct.numel(), device=zero.device)
        else:
            low, high, region = low & kept, high & kept, region & kept
            clip_units = kept.sum()
        return cls(
            rollouts=torch.full((), is_correct.numel(), device=zero.device),
            correct=is_correct.sum(),
            failed=(~is_correct).sum(),
            truncated=is_truncated.sum(),
            failed_truncated=(~is_correct & is_truncated).sum(),
            correct_zeroed_whole=(is_correct & valid.any(dim=1) & ~kept.any(dim=1)).sum(),
            steps=(step_ids.amax(dim=1) + 1).sum(),
            tokens=valid.sum(),
            tokens_correct=(valid & correct).sum(),
            tokens_failed=(valid & failed).sum(),
            zeroed=zero.sum(),
            zeroed_correct=(zero & correct).sum(),
            zeroed_failed=(zero & failed).sum(),
            kept_tokens=kept.sum(),
            clip_low=low.sum(),
            clip_high=high.sum(),
            clip_region=region.sum(),
            clip_units=clip_units,
            **labelled,
        )

    def stack(self) -> torch.Tensor:
        """FloatTensor (F,), float64, in field order."""
        return torch.stack([torch.as_tensor(getattr(self, f.name)) for f in dataclasses.fields(self)]).to(
            torch.float64
        )

    @classmethod
    def from_row(cls, row: list[float]) -> BatchCounts:
        return cls(*row)


def label_counts(
    zero: torch.Tensor,
    valid: torch.Tensor,
    step_ids: torch.Tensor,
    labels: torch.Tensor,
    is_correct: torch.Tensor,
    is_truncated: torch.Tensor,
    advantages: torch.Tensor,
) -> dict[str, torch.Tensor]:
    """What the selection did against the ground truth, as 0-dim counts.

    Args:
        zero, valid: BoolTensor (B, T): zeroed tokens; valid completion tokens.
        step_ids: LongTensor (B, T), -1 outside steps.
        labels: LongTensor (B, L), step j's label in column j, OUTSIDE (0) as padding; steps past L - 1 are
            unlabelled and not counted.
        is_correct, is_truncated: BoolTensor (B,).
        advantages: FloatTensor (B,) or (B, T), after SAS.

    Returns:
        labelled: the rollouts (all carry labels);
        mislabelled: failed, truncated rollouts whose reasoning was correct so far (the budget's false failures);
        mislabelled_punished: those whose mean advantage over their valid tokens is negative;
        failed_zeroed_steps (_correct): labelled steps with a zeroed token in failed rollouts (those labelled
        correct); correct_zeroed_steps (_useless): the same in correct rollouts (those labelled redundant or wrong).
    """
    labels = labels.to(step_ids.device, torch.long)
    width = labels.size(1)
    is_correct = is_correct.bool()
    mislabelled = ~is_correct & is_truncated.bool() & reasoning_correct_rows(labels)
    weight = valid.to(torch.float32)
    advantages = advantages.float()
    if advantages.dim() == 1:
        advantages = advantages.unsqueeze(1)
    mean_advantage = (advantages * weight).sum(dim=1) / weight.sum(dim=1).clamp(min=1.0)
    # A step counts as zeroed when any of its tokens is; column 0 collects tokens outside labelled steps.
    index = torch.where((step_ids >= 0) & (step_ids < width), step_ids + 1, 0)
    hits = torch.zeros((labels.size(0), width + 1), dtype=torch.long, device=step_ids.device)
    hits.scatter_add_(1, index, (zero & valid).long())
    zeroed = (hits[:, 1:] > 0) & (labels != OUTSIDE)  # (B, L)
    failed, correct = zeroed & ~is_correct.unsqueeze(1), zeroed & is_correct.unsqueeze(1)
    return {
        "labelled": torch.full((), labels.size(0), device=step_ids.device),
        "mislabelled": mislabelled.sum(),
        "mislabelled_punished": (mislabelled & (mean_advantage < 0)).sum(),
        "failed_zeroed_steps": failed.sum(),
        "failed_zeroed_steps_correct": (failed & (labels == CORRECT)).sum(),
        "correct_zeroed_steps": correct.sum(),
        "correct_zeroed_steps_useless": (correct & ((labels == REDUNDANT) | (labels == WRONG))).sum(),
    }


# metric -> (numerator, denominator); a micro-batch whose denominator is 0 says nothing about that metric.
RATIOS = {
    "sas/zeroed_frac": ("zeroed", "tokens"),
    "sas/zeroed_frac_correct": ("zeroed_correct", "tokens_correct"),
    "sas/zeroed_frac_failed": ("zeroed_failed", "tokens_failed"),
    "sas/steps_per_rollout": ("steps", "rollouts"),
    "sas/truncated_frac": ("truncated", "rollouts"),
    "sas/failed_truncated_frac": ("failed_truncated", "failed"),
}
# With ground-truth step labels (the built-in tasks; docs/metrics.md): the selection against the truth.
LABEL_RATIOS = {
    "sas/mislabelled_frac": ("mislabelled", "labelled"),
    "sas/mislabelled_punished_frac": ("mislabelled_punished", "mislabelled"),
    "sas/shielded_steps_correct_frac": ("failed_zeroed_steps_correct", "failed_zeroed_steps"),
    "sas/zeroed_steps_redundant_or_wrong_frac": ("correct_zeroed_steps_useless", "correct_zeroed_steps"),
}
# TRL's clip metrics restricted to what SAS keeps (zeroed tokens have advantage 0 and are never clipped): kept
# tokens with token-level importance sampling, rollouts with sequence-level (TRL's own unit there).
CLIP_RATIOS = {
    "ppo": {
        "sas/clip_ratio/low_mean": ("clip_low", "clip_units"),
        "sas/clip_ratio/high_mean": ("clip_high", "clip_units"),
        "sas/clip_ratio/region_mean": ("clip_region", "clip_units"),
    },
    "cispo": {"sas/cispo_clip_ratio": ("clip_high", "clip_units")},
}


def metrics_of(counts: BatchCounts, loss_type: str) -> dict[str, float]:
    """The logged SAS metrics of reduced counts (floats), for a TRL `loss_type`."""
    clip = CLIP_RATIOS.get(LOSS_TYPES[loss_type].clip_metric, {}) if loss_type in LOSS_TYPES else {}
    out = {}
    for name, (numerator, denominator) in {**RATIOS, **LABEL_RATIOS, **clip}.items():
        if getattr(counts, denominator):
            out[name] = getattr(counts, numerator) / getattr(counts, denominator)
    return out


class SASStatistics:
    """Buffers each micro-batch's counts per mode ("train"/"eval") until the next log."""

    def __init__(self):
        self._rows: dict[str, list[torch.Tensor]] = {"train": [], "eval": []}

    def add(self, mode: str, counts: BatchCounts) -> None:
        self._rows[mode].append(counts.stack())

    def pending(self, mode: str) -> int:
        """Micro-batches buffered since the last flush."""
        return len(self._rows[mode])

    def flush(self, mode: str, reduce_sum: Callable[[torch.Tensor], torch.Tensor]) -> list[BatchCounts]:
        """Each buffered micro-batch's counts summed over processes (one reduction), then the buffer emptied."""
        rows, self._rows[mode] = self._rows[mode], []
        if not rows:
            return []
        return [BatchCounts.from_row(row) for row in reduce_sum(torch.stack(rows)).cpu().tolist()]


def clip_flags(
    policy_logps: torch.Tensor,
    old_logps: torch.Tensor,
    valid: torch.Tensor,
    advantages: torch.Tensor,
    loss_type: str,
    *,
    sequence_level: bool,
    epsilon_low: float,
    epsilon_high: float,
    delta: float | None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Bool x3: what TRL's clip metrics count as low-, high- and region-clipped; (B, T) per token, or (B, 1) per
    rollout with `sequence_level` (TRL's `coef_1` is then (B, 1), and with (B,) advantages its metric is a mean
    over rollouts; under SAS a rollout's flag uses its advantage on the tokens SAS keeps).

    Args:
        policy_logps, old_logps: FloatTensor (B, T), the loss's current and the rollout policy's log-probs.
        valid: BoolTensor (B, T).
        advantages: FloatTensor (B,) or (B, T).
        sequence_level: GSPO's importance_sampling_level="sequence" (one ratio per rollout: the mean log-ratio).
    """
    log_ratio = policy_logps.float() - old_logps.float()
    if sequence_level:
        weight = valid.to(log_ratio.dtype)
        log_ratio = ((log_ratio * weight).sum(-1) / weight.sum(-1).clamp(min=1.0)).unsqueeze(-1)
    ratio = torch.exp(log_ratio)
    if advantages.dim() == 1:
        advantages = advantages.unsqueeze(1)
    if sequence_level and advantages.size(1) > 1:
        # SAS's (B, T) advantages are the rollout's advantage on kept tokens and 0 on zeroed ones: the row's sum
        # has the rollout's sign (a rollout with no kept token is dropped by `BatchCounts.of`).
        advantages = advantages.sum(dim=1, keepdim=True)
    metric = LOSS_TYPES[loss_type].clip_metric if loss_type in LOSS_TYPES else None
    if metric == "ppo":
        if delta is not None:
            ratio = ratio.clamp(max=delta)  # TRL's clip metrics see the two-sided clamp too
        low = (ratio < 1 - epsilon_low) & (advantages < 0)
        high = (ratio > 1 + epsilon_high) & (advantages > 0)
    elif metric == "cispo":
        high = (ratio > epsilon_high) & (advantages > 0)
        low = torch.zeros_like(high)
    else:
        low = high = torch.zeros(ratio.shape, dtype=torch.bool, device=valid.device)
    if not sequence_level:
        low, high = low.expand_as(valid), high.expand_as(valid)
    return low, high, low | high


def degenerate_warning(
    counts: BatchCounts,
    reward_values: list[float],
    rule: SASRule,
    *,
    reward_index: int,
    reward_name: str,
    threshold: float,
) -> str | None:
    """The warning when SAS leaves correct rollouts nothing to learn from, else None.

    A correct rollout of N steps loses ceil(r * N) of them: a one-step rollout (no delimiter in its reasoning)
    without an answer part loses every token. That is the paper's rule, and silent: a model that writes no
    delimiter, or a first reward that is not a 0/1 score (every rollout then counts as correct), trains on failed
    rollouts only. `counts` are the first training batch's, summed over processes; `reward_values` the distinct
    values the correctness reward took.
    """
    values = sorted({v for v in reward_values if not math.isnan(v)})
    non_binary = not set(values) <= {0.0, 1.0}
    n_correct, n_whole = counts.correct, counts.correct_zeroed_whole
    if not (n_correct and (n_whole >= n_correct / 2 or (n_correct == counts.rollouts and non_binary))):
        return None
    shown = ", ".join(f"{v:g}" for v in values[:8]) + (f", ... ({len(values)} values)" if len(values) > 8 else "")
    return (
        f"SAS, first batch: {n_whole:.0f} of {n_correct:.0f} correct rollouts had every token zeroed "
        f"({counts.zeroed_correct / max(counts.tokens_correct, 1):.0%} of correct rollouts' tokens); "
        f"{counts.steps / counts.rollouts:.2f} steps per rollout; the correctness reward (column {reward_index}, "
        f"{reward_name!r}) took the values [{shown}] and 'correct' means >= {threshold:g} ({n_correct:.0f} of "
        f"{counts.rollouts:.0f} rollouts). A correct rollout of N steps loses ceil({rule.ratio:g} * N) of them: with "
        f"one step (no {rule.delimiter!r} in the reasoning) that is all of it, and correct rollouts teach nothing. If "
        "the model writes no such steps, set sas_min_steps=2 (shorter rollouts train as plain GRPO) or a delimiter it "
        "writes; if this reward is not a 0/1 correctness score, point sas_correct_reward_index at one or set "
        "sas_correct_threshold."
    )
