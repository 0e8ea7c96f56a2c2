"""Step confidence and step choice, each a registry of named variants.

A ranking turns a rollout's token log-probs into one confidence per step; a selection turns confidences into
ranking keys: within a rollout the steps with the smallest keys are zeroed first. The paper's rule is ranking
"mean" with selection "confidence"; "std" and "random" are its ablations. A new variant is one decorated function:

    @register_selection("entropy_gap")
    def entropy_gap(inputs: SelectionInputs) -> torch.Tensor:  # (B, S) keys, smallest chosen first
        ...

and is then valid everywhere a `sas_selection` is (recipes, `SASRule`, `sas-trl inspect`).

An *oracle* (`register_oracle`) is a diagnostic selection that reads each step's ground-truth label
(`sas_trl.step_labels`) instead of confidence, and returns the zero mask itself: "oracle_rollout" and "oracle_step"
bound what any fix of truncation's credit can gain. They exist only where step labels do (the built-in tasks).

Shapes: B rollouts, T tokens, S step slots (see `sas_trl.core`).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from .constants import THINK_END
from .segmentation import num_slots_of, row_chunks
from .step_labels import CORRECT, DELIMITER, OUTSIDE, REDUNDANT, WRONG, label_steps, parse_terms


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
    keys: Callable[[SelectionInputs], torch.Tensor] | None  # -> (B, S), smallest first; None for an oracle
    draws_random_keys: bool  # the trainer draws per-rollout keys at generation, so reuse repeats the choice
    help: str
    # An oracle: (step_ids (B, T), labels (B, L), is_correct (B,), is_truncated (B,)) -> zero mask (B, T)
    oracle: Callable[[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor] | None = None

    @property
    def needs_labels(self) -> bool:
        """Whether the selection reads step labels (an oracle): usable only on the built-in tasks."""
        return self.oracle is not None


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


def register_oracle(name: str, help: str = ""):
    """Decorator: register `fn(step_ids, labels, is_correct, is_truncated) -> zero mask (B, T)` as `sas_selection`
    value `name`, a selection that reads step labels (no ranking, no count)."""

    def decorator(fn):
        if name in SELECTIONS:
            raise ValueError(f"selection {name!r} is registered twice")
        SELECTIONS[name] = Selection(None, False, help or (fn.__doc__ or "").strip().split("\n")[0], oracle=fn)
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


# --------------------------------------------------------------------------------------------------
# Oracles: selections from ground-truth step labels (diagnostics; built-in tasks only)
# --------------------------------------------------------------------------------------------------


def text_of(value) -> str:
    """A prompt's or completion's text: a string as is, chat messages' contents joined (TRL's two forms)."""
    if isinstance(value, str):
        return value
    return "\n".join(str(m.get("content", "")) for m in value if isinstance(m, dict))


def labels_of(prompt, completion) -> tuple[int, ...] | None:
    """Step labels of one rollout of a built-in problem, one per SAS step, or None when the prompt is not one.

    `prompt`, `completion`: text, or chat messages. The labels are `step_labels.label_steps`'s, aligned with SAS's
    segmentation (`sas_trl.segmentation`): there a delimiter token that follows another delimiter (or opens the
    reasoning) is a step of its own, where the text has an empty piece and no step; such a step gets OUTSIDE.
    """
    terms = parse_terms(text_of(prompt))
    if terms is None:
        return None
    text = text_of(completion)
    labels = iter(label_steps(terms, text))
    pieces = text.partition(THINK_END)[0].split(DELIMITER)
    while pieces and not pieces[-1]:  # a last delimiter closes the step before it; nothing follows
        pieces.pop()
    return tuple(next(labels) if piece else OUTSIDE for piece in pieces)


def pad_labels(rows: list[tuple[int, ...]], device=None) -> torch.LongTensor:
    """LongTensor (B, L): each rollout's step labels, OUTSIDE (0) as padding; L >= 1 (the longest row)."""
    width = max([1, *map(len, rows)])
    out = torch.full((len(rows), width), OUTSIDE, dtype=torch.long)
    for i, row in enumerate(rows):  # host-side, once per generation, like the rewards
        out[i, : len(row)] = torch.tensor(row, dtype=torch.long)
    return out.to(device)


def batch_labels(prompts: list, completions: list, device=None) -> torch.LongTensor:
    """LongTensor (B, L): each rollout's step labels (`labels_of`), OUTSIDE (0) as padding; a prompt that is not a
    built-in problem raises ValueError naming it."""
    rows = []
    for prompt, completion in zip(prompts, completions, strict=True):
        labels = labels_of(prompt, completion)
        if labels is None:
            raise ValueError(f"step labels need the built-in task's problems ('Add 3, 5, 7. ...'), got {prompt!r}")
        rows.append(labels)
    return pad_labels(rows, device)


def token_labels(step_ids: torch.Tensor, labels: torch.Tensor) -> torch.LongTensor:
    """Each token's step label.

    Args:
        step_ids: LongTensor (B, T), -1 outside steps.
        labels: LongTensor (B, L), the label of step j in column j (`sas_trl.step_labels`), OUTSIDE (0) as padding.

    Returns:
        LongTensor (B, T): the label of the token's step; OUTSIDE outside steps and for steps past column L - 1.
    """
    labels = labels.to(step_ids.device, torch.long)
    padded = torch.cat([labels.new_full((labels.size(0), 1), OUTSIDE), labels], dim=1)  # column 0: no step
    inside = (step_ids >= 0) & (step_ids < labels.size(1))
    return padded.gather(1, torch.where(inside, step_ids + 1, 0))


def reasoning_correct_rows(labels: torch.Tensor) -> torch.BoolTensor:
    """BoolTensor (B,): rollouts with at least one step and no wrong one (`step_labels.reasoning_correct`, per row).

    Args:
        labels: LongTensor (B, L), OUTSIDE (0) as padding.
    """
    return (labels != OUTSIDE).any(dim=1) & ~(labels == WRONG).any(dim=1)


@register_oracle("oracle_rollout")
def oracle_rollout(
    step_ids: torch.Tensor, labels: torch.Tensor, is_correct: torch.Tensor, is_truncated: torch.Tensor
) -> torch.BoolTensor:
    """Every token of the rollouts the budget mislabelled: failed, truncated, reasoning correct so far (diagnostic).

    Args:
        step_ids: LongTensor (B, T), -1 outside steps (read for its shape and device only).
        labels: LongTensor (B, L), step labels, OUTSIDE (0) as padding.
        is_correct, is_truncated: BoolTensor (B,).

    Returns:
        BoolTensor (B, T): whole rows, padding positions included (the completion mask keeps those out of the loss).
    """
    device = step_ids.device
    chosen = ~is_correct.bool().to(device) & is_truncated.bool().to(device) & reasoning_correct_rows(labels).to(device)
    return chosen.unsqueeze(1).expand(step_ids.shape).clone()


@register_oracle("oracle_step")
def oracle_step(
    step_ids: torch.Tensor, labels: torch.Tensor, is_correct: torch.Tensor, is_truncated: torch.Tensor
) -> torch.BoolTensor:
    """The correct steps of failed rollouts and the redundant or wrong steps of correct ones (diagnostic).

    Args:
        step_ids: LongTensor (B, T), -1 outside steps.
        labels: LongTensor (B, L), step labels, OUTSIDE (0) as padding (steps past column L - 1 are never chosen).
        is_correct, is_truncated: BoolTensor (B,) (every failed rollout counts, truncated or not).

    Returns:
        BoolTensor (B, T).
    """
    per_token = token_labels(step_ids, labels)
    correct = is_correct.bool().to(step_ids.device).unsqueeze(1)
    useless = (per_token == REDUNDANT) | (per_token == WRONG)
    return torch.where(correct, useless, per_token == CORRECT)
