"""Step confidence and step choice, each a registry of named variants.

A ranking turns a rollout's token log-probs into one confidence per step; a selection turns confidences into
ranking keys: within a rollout the steps with the smallest keys are zeroed first. The paper's rule is ranking
"mean" with selection "confidence"; "std" and "random" are its ablations. A new variant is one decorated function:

    @register_selection("entropy_gap")
    def entropy_gap(inputs: SelectionInputs) -> torch.Tensor:  # (B, S) keys, smallest chosen first
        ...

and is then valid everywhere a `sas_selection` is (recipes, `SASRule`, `sas-trl inspect`).

Shapes: B rollouts, T tokens, S step slots (see `sas_trl.core`).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from .segmentation import num_slots_of, row_chunks


@dataclass(frozen=True)
class StepSums:
    """Per-step sums a ranking reads; column 0 collects the tokens outside steps (step index -1 + 1).

    Attributes:
        step_ids: LongTensor (B, T), -1 outside steps.
        token_logps: FloatTensor (B, T).
        mean: FloatTensor (B, S + 1), mean token log-prob per step (0 for empty steps).
        counts: LongTensor (B, S + 1), tokens per step (column 0 zeroed).
    """

    step_ids: torch.Tensor
    token_logps: torch.Tensor
    mean: torch.Tensor
    counts: torch.Tensor


@dataclass(frozen=True)
class SelectionInputs:
    """What a selection sees.

    Attributes:
        confidence: FloatTensor (B, S), from the ranking; undefined (0) for empty steps.
        present: BoolTensor (B, S), non-empty steps (only these are ever chosen).
        is_correct: BoolTensor (B,).
        random_keys: FloatTensor (B, >= S) drawn once per rollout at generation, or None.
        generator: a torch.Generator for selections that draw keys when none were drawn, or None.
    """

    confidence: torch.Tensor
    present: torch.Tensor
    is_correct: torch.Tensor
    random_keys: torch.Tensor | None = None
    generator: torch.Generator | None = None


@dataclass(frozen=True)
class Ranking:
    confidence: Callable[[StepSums], torch.Tensor]  # -> (B, S + 1)
    help: str


@dataclass(frozen=True)
class Selection:
    keys: Callable[[SelectionInputs], torch.Tensor]  # -> (B, S), smallest first
    draws_random_keys: bool  # the trainer draws per-rollout keys at generation, so reuse repeats the choice
    help: str


RANKINGS: dict[str, Ranking] = {}
SELECTIONS: dict[str, Selection] = {}


def register_ranking(name: str, help: str = ""):
    """Decorator: register `fn(StepSums) -> confidence (B, S + 1)` as `sas_ranking` value `name`."""

    def decorator(fn):
        if name in RANKINGS:
            raise ValueError(f"ranking {name!r} is registered twice")
        RANKINGS[name] = Ranking(fn, help or (fn.__doc__ or "").strip().split("\n")[0])
        return fn

    return decorator


def register_selection(name: str, *, draws_random_keys: bool = False, help: str = ""):
    """Decorator: register `fn(SelectionInputs) -> keys (B, S)` as `sas_selection` value `name`."""

    def decorator(fn):
        if name in SELECTIONS:
            raise ValueError(f"selection {name!r} is registered twice")
        SELECTIONS[name] = Selection(fn, draws_random_keys, help or (fn.__doc__ or "").strip().split("\n")[0])
        return fn

    return decorator


# --------------------------------------------------------------------------------------------------
# Rankings
# --------------------------------------------------------------------------------------------------


@register_ranking("mean")
def mean_logprob(sums: StepSums) -> torch.Tensor:
    """The mean token log-prob of the step (the paper)."""
    return sums.mean


@register_ranking("std")
def logprob_spread(sums: StepSums) -> torch.Tensor:
    """Minus the std of the step's token log-probs: a step the policy is unevenly sure of is less confident."""
    squares = torch.zeros_like(sums.mean)
    for rows in row_chunks(sums.step_ids):
        index = sums.step_ids[rows] + 1
        centered = sums.token_logps[rows].float() - sums.mean[rows].gather(1, index)
        squares[rows].scatter_add_(1, index, centered.square_())
    return -(squares / sums.counts.clamp(min=1)).sqrt()


def step_statistics(
    step_ids: torch.Tensor, token_logps: torch.Tensor, ranking: str = "mean", num_slots: int | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-step confidence and size.

    Args:
        step_ids: LongTensor (B, T), -1 outside steps.
        token_logps: FloatTensor (B, T); values outside steps are ignored (may be NaN).
        ranking: a registered ranking (`RANKINGS`): "mean" (the paper) or "std" (ablation).
        num_slots: S, static; must exceed every step index (T always does). None reads it from the data.

    Returns:
        confidence: FloatTensor (B, S), undefined (0) for empty steps.
        counts: LongTensor (B, S), tokens per step.
    """
    if ranking not in RANKINGS:
        raise ValueError(f"ranking must be one of {tuple(RANKINGS)}, got {ranking!r}")
    shape = (step_ids.size(0), num_slots_of(step_ids, num_slots) + 1)
    sums = torch.zeros(shape, dtype=torch.float32, device=step_ids.device)
    counts = torch.zeros(shape, dtype=torch.long, device=step_ids.device)
    one = counts.new_ones(())
    for rows in row_chunks(step_ids):
        index = step_ids[rows] + 1
        sums[rows].scatter_add_(1, index, token_logps[rows].float())
        counts[rows].scatter_add_(1, index, one.expand(index.shape))
    counts[:, 0] = 0
    mean = sums / counts.clamp(min=1)
    confidence = RANKINGS[ranking].confidence(StepSums(step_ids, token_logps, mean, counts))
    return confidence[:, 1:], counts[:, 1:]


# --------------------------------------------------------------------------------------------------
# Selections
# --------------------------------------------------------------------------------------------------


@register_selection("confidence")
def by_confidence(inputs: SelectionInputs) -> torch.Tensor:
    """Correct rollouts drop their least confident steps, failed ones their most confident (the paper)."""
    # Ascending keys: confidence, or its negation for failed rollouts. NaN confidence is never preferred.
    flip = inputs.is_correct.unsqueeze(1)
    return torch.where(flip, inputs.confidence, -inputs.confidence).nan_to_num(nan=math.inf)


@register_selection("random", draws_random_keys=True)
def at_random(inputs: SelectionInputs) -> torch.Tensor:
    """Steps chosen uniformly at random (ablation): keys drawn once per rollout, or from `generator`."""
    confidence = inputs.confidence
    if inputs.random_keys is not None:
        if inputs.random_keys.size(1) < confidence.size(1):
            raise ValueError(
                f"random_keys has {inputs.random_keys.size(1)} columns for {confidence.size(1)} step slots"
            )
        return inputs.random_keys[:, : confidence.size(1)].to(confidence.device, torch.float32)
    generator = inputs.generator
    keys = torch.rand(confidence.shape, generator=generator, device=generator.device if generator else None)
    return keys.to(confidence.device)


def draw_random_keys(entropy: list[int], rows: int, width: int) -> torch.Tensor:
    """FloatTensor (rows, width) of uniform keys, a function of `entropy` alone (numpy's SeedSequence mixes it).

    The trainer passes (seed, train/eval, global step, generation within the step, process): a run resumed from a
    checkpoint draws exactly what an uninterrupted run draws, and no generator state needs saving.
    """
    seed = int(np.random.SeedSequence(entropy).generate_state(1, dtype=np.uint64)[0])
    return torch.rand(rows, width, generator=torch.Generator().manual_seed(seed))
