"""The trainer's SAS counts and metrics (sas_trl/sas_metrics.py) on hand-made tensors."""

from __future__ import annotations

import math

import pytest
import torch

from sas_trl.sas_metrics import BatchCounts, clip_flags, metrics_of

EPS = {"epsilon_low": 0.2, "epsilon_high": 0.2, "delta": None}


def two_rollouts():
    """Rollout 0: 8 tokens, every ratio e^0.5 > 1.2 (high-clipped, advantage > 0); rollout 1: 2 tokens, ratio 1."""
    valid = torch.zeros(2, 8, dtype=torch.bool)
    valid[0], valid[1, :2] = True, True
    old = torch.zeros(2, 8)
    policy = old.clone()
    policy[0] = 0.5
    return policy, old, valid, torch.tensor([1.0, 1.0])


def counts(policy, old, valid, advantages, zero, sequence_level, loss_type="dapo"):
    clipped = clip_flags(policy, old, valid, advantages, loss_type, sequence_level=sequence_level, **EPS)
    rollouts = valid.size(0)
    steps = torch.where(valid, 0, -1)
    falses = torch.zeros(rollouts, dtype=torch.bool)
    return BatchCounts.of(zero, valid, steps, torch.ones(rollouts, dtype=torch.bool), falses, clipped)


def metrics(batch: BatchCounts, loss_type="dapo") -> dict[str, float]:
    return metrics_of(BatchCounts.from_row(batch.stack().tolist()), loss_type)


def test_clip_ratio_weights_tokens_at_token_level_and_rollouts_at_sequence_level():
    policy, old, valid, advantages = two_rollouts()
    nothing = torch.zeros_like(valid)
    # Token level: 8 clipped tokens of 10. Sequence level: TRL's unit is the rollout, 1 clipped of 2.
    token = metrics(counts(policy, old, valid, advantages, nothing, sequence_level=False))
    assert token["sas/clip_ratio/high_mean"] == pytest.approx(0.8)
    sequence = metrics(counts(policy, old, valid, advantages, nothing, sequence_level=True))
    # Rollout 0's ratio is exp(mean log-ratio) = e^0.5, rollout 1's is 1.
    assert sequence["sas/clip_ratio/high_mean"] == pytest.approx(0.5)
    assert sequence["sas/clip_ratio/region_mean"] == pytest.approx(0.5)
    assert sequence["sas/clip_ratio/low_mean"] == 0.0


def test_sequence_level_under_sas_a_rollout_zeroed_whole_is_never_clipped():
    policy, old, valid, advantages = two_rollouts()
    zero = torch.zeros_like(valid)
    zero[0] = True  # SAS zeroed every token of the clipped rollout: its advantage is 0
    per_token = advantages.unsqueeze(1).expand_as(zero).masked_fill(zero, 0.0)
    sequence = metrics(counts(policy, old, valid, per_token, zero, sequence_level=True))
    assert sequence["sas/clip_ratio/high_mean"] == 0.0  # 0 of 2 rollouts: the denominator stays every rollout
    zero[0, 4:] = False  # half of it kept: the rollout keeps its advantage's sign and is clipped again
    per_token = advantages.unsqueeze(1).expand_as(zero).masked_fill(zero, 0.0)
    sequence = metrics(counts(policy, old, valid, per_token, zero, sequence_level=True))
    assert sequence["sas/clip_ratio/high_mean"] == pytest.approx(0.5)
    token = metrics(counts(policy, old, valid, per_token, zero, sequence_level=False))
    assert token["sas/clip_ratio/high_mean"] == pytest.approx(4 / 6)  # 4 kept clipped tokens of 6 kept


def test_sequence_level_low_clip_and_cispo():
    policy, old, valid, _ = two_rollouts()
    policy[0] = -0.5  # ratio e^-0.5 ~ 0.61 < 0.8
    negative = torch.tensor([-1.0, -1.0])
    nothing = torch.zeros_like(valid)
    sequence = metrics(counts(policy, old, valid, negative, nothing, sequence_level=True))
    assert (sequence["sas/clip_ratio/low_mean"], sequence["sas/clip_ratio/high_mean"]) == (0.5, 0.0)
    # cispo: clipped where the ratio exceeds epsilon_high (0.2 here) with a positive advantage: both rollouts.
    positive = torch.tensor([1.0, 1.0])
    cispo = metrics(counts(policy, old, valid, positive, nothing, sequence_level=True, loss_type="cispo"), "cispo")
    assert cispo == {**{k: v for k, v in cispo.items() if not k.startswith("sas/cispo")}, "sas/cispo_clip_ratio": 1.0}
    assert not math.isnan(cispo["sas/zeroed_frac"])
