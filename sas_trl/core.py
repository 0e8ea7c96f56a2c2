"""Step-level Advantage Selection (SAS) as pure tensor functions.

A rollout's reasoning (everything before the think-end token) is split into steps at tokens whose text
contains the delimiter ("\\n\\n"). Each step's confidence is the mean log-prob of its tokens under the
policy that sampled the rollout. With ratio r and N non-empty steps:

* correct rollout: the ceil(r * N) least confident steps get advantage 0 (their reasoning is not
  reinforced just because the final answer was right);
* verifier-failed rollout: the N - ceil((1 - r) * N) most confident steps get advantage 0 (they are
  shielded from a penalty that truncation, not bad reasoning, often earned).

After group normalisation a zeroed step sits below its positive peers in a winner and above its
negative peers in a loser, so one operation both suppresses and shields.

Shapes: B rollouts, T completion tokens, S = max step index + 1. Everything here is vectorised over
(B, T) or (B, S); the only per-vocabulary work (which tokens end a step) is done once per tokenizer.
"""

from __future__ import annotations

import math
from functools import lru_cache

import torch

STRATEGIES = ("both", "correct_only", "failed_only", "none")
SELECTIONS = ("confidence", "random")
GRANULARITIES = ("step", "token")
RANKINGS = ("mean", "std")
FAILED_SCOPES = ("all", "truncated")
COUNT_MODES = ("paper", "release")


# --------------------------------------------------------------------------------------------------
# Segmentation
# --------------------------------------------------------------------------------------------------


@lru_cache(maxsize=16)
def _vocab_tables(tokenizer, delimiter: str, think_end: str | None) -> tuple[torch.Tensor, int | None]:
    """Per-vocabulary facts, computed once per (tokenizer, delimiter, think_end).

    Returns:
        ends_step: BoolTensor (V,), True for tokens whose own decoded text contains `delimiter`.
        think_end_id: id of `think_end` if it is a single token of the vocabulary, else None.
    """
    vocab = tokenizer.get_vocab()
    size = max(len(tokenizer), max(vocab.values()) + 1)
    # Decoding each id on its own is what "a token's text" means for byte-level BPE: a token holding half a
    # UTF-8 character decodes to U+FFFD, which can never contain an ASCII delimiter, so nothing is missed.
    texts = tokenizer.batch_decode(
        [[i] for i in range(size)], skip_special_tokens=False, clean_up_tokenization_spaces=False
    )
    ends_step = torch.tensor([delimiter in text for text in texts], dtype=torch.bool)
    think_end_id = vocab.get(think_end) if think_end else None
    return ends_step, think_end_id


def vocab_tables(tokenizer, delimiter: str = "\n\n", think_end: str | None = "</think>"):
    """Public, cached access to `(ends_step (V,), think_end_id | None)` for a tokenizer."""
    if not delimiter:
        raise ValueError("delimiter must be a non-empty string")
    return _vocab_tables(tokenizer, delimiter, think_end)


def segment_steps(
    completion_ids: torch.Tensor,
    completion_mask: torch.Tensor,
    tokenizer,
    delimiter: str = "\n\n",
    think_end: str | None = "</think>",
    *,
    trim_unterminated: bool = False,
) -> torch.LongTensor:
    """Step index of every reasoning token.

    Args:
        completion_ids: LongTensor (B, T).
        completion_mask: (B, T), nonzero for valid (non-padding) tokens.
        tokenizer: the rollout tokenizer; its per-vocabulary boundary table is cached.
        delimiter: a token whose decoded text contains it ends a step and belongs to the step it ends.
        think_end: the reasoning part is every valid token before the first `think_end` token. With
            `None`, or a vocabulary without it as a single token, every valid token is reasoning.
        trim_unterminated: drop the last valid token of rollouts without a think-end token from the
            reasoning part (what the public code release does; see docs/release_mode.md).

    Returns:
        LongTensor (B, T): 0, 1, ... for reasoning tokens; -1 for padding, the think-end token and
        everything after it.
    """
    ends_step, think_end_id = vocab_tables(tokenizer, delimiter, think_end)
    ends_step = _on_device(ends_step, completion_ids.device)
    valid = completion_mask.bool()
    # Ids beyond the tokenizer (a model's padded embedding rows) never end a step.
    in_vocab = completion_ids < ends_step.numel()
    boundary = ends_step[completion_ids.clamp(0, ends_step.numel() - 1)] & in_vocab

    is_end = torch.zeros_like(valid) if think_end_id is None else valid & (completion_ids == think_end_id)
    reasoning = valid & (is_end.cumsum(dim=1) == 0)
    if trim_unterminated:
        unterminated = ~is_end.any(dim=1, keepdim=True)
        last_valid = valid & (valid.cumsum(dim=1) == valid.sum(dim=1, keepdim=True))
        reasoning &= ~(last_valid & unterminated)

    boundary &= reasoning
    # Exclusive cumsum: a boundary token still belongs to the step it closes.
    step_ids = boundary.cumsum(dim=1) - boundary.long()
    return torch.where(reasoning, step_ids, -1)


_DEVICE_TABLES: dict[tuple[int, torch.device], torch.Tensor] = {}


def _on_device(table: torch.Tensor, device: torch.device) -> torch.Tensor:
    if table.device == device:
        return table
    key = (id(table), device)
    if key not in _DEVICE_TABLES:
        _DEVICE_TABLES[key] = table.to(device)
    return _DEVICE_TABLES[key]


def token_granularity(step_ids: torch.Tensor) -> torch.LongTensor:
    """(B, T) -> (B, T): every reasoning token becomes its own step (the token-level ablation)."""
    in_step = step_ids >= 0
    return torch.where(in_step, in_step.long().cumsum(dim=1) - 1, -1)


# --------------------------------------------------------------------------------------------------
# Confidence and selection
# --------------------------------------------------------------------------------------------------


def step_statistics(
    step_ids: torch.Tensor, token_logps: torch.Tensor, ranking: str = "mean"
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-step confidence and size.

    Args:
        step_ids: LongTensor (B, T), -1 outside steps.
        token_logps: FloatTensor (B, T); values outside steps are ignored (may be NaN).
        ranking: "mean" -> mean token log-prob; "std" -> minus the std of the step's log-probs
            (a step whose tokens the policy is unevenly sure of counts as less confident).

    Returns:
        confidence: FloatTensor (B, S), undefined (0) for empty steps.
        counts: LongTensor (B, S), tokens per step.
    """
    batch = step_ids.size(0)
    num_slots = int(step_ids.max().item()) + 1 if step_ids.numel() else 0
    in_step = step_ids >= 0
    index = step_ids.clamp(min=0)
    logps = torch.where(in_step, token_logps.float(), 0.0)
    counts = torch.zeros(batch, max(num_slots, 1), dtype=torch.long, device=step_ids.device)
    counts.scatter_add_(1, index, in_step.long())
    sums = torch.zeros(counts.shape, dtype=logps.dtype, device=logps.device).scatter_add_(1, index, logps)
    mean = sums / counts.clamp(min=1)
    if ranking == "mean":
        return mean, counts
    if ranking == "std":
        centered = torch.where(in_step, logps - mean.gather(1, index), 0.0)
        sq = torch.zeros_like(sums).scatter_add_(1, index, centered.square())
        return -(sq / counts.clamp(min=1)).sqrt(), counts
    raise ValueError(f"ranking must be one of {RANKINGS}, got {ranking!r}")


def _ceil(x: torch.Tensor) -> torch.Tensor:
    # 0.3 * 20 == 6.000000000000001 in floating point: round away the noise before ceil.
    return torch.ceil(torch.round(x, decimals=9))


def steps_to_zero(
    num_steps: torch.Tensor, is_correct: torch.Tensor, ratio: float, count_mode: str = "paper"
) -> torch.LongTensor:
    """How many steps each rollout gets zeroed, before strategy/scope filtering.

    Args:
        num_steps: (B,) non-empty steps per rollout.
        is_correct: (B,) bool.
    Returns:
        LongTensor (B,), in [0, num_steps].
    """
    n = num_steps.double()
    if count_mode == "paper":
        zero_correct = _ceil(ratio * n)
        zero_failed = n - _ceil((1.0 - ratio) * n)
    elif count_mode == "release":
        # The released code's precedence slip: ceil((N - 1) + r) and a kept count of ceil((N - 1) + (1 - r)).
        zero_correct = _ceil(n - 1.0 + ratio)
        zero_failed = n - _ceil(n - 1.0 + (1.0 - ratio))
    else:
        raise ValueError(f"count_mode must be one of {COUNT_MODES}, got {count_mode!r}")
    k = torch.where(is_correct.bool(), zero_correct, zero_failed)
    return torch.minimum(k.clamp(min=0), n).long()


def select_zero_mask(
    step_ids: torch.Tensor,
    token_logps: torch.Tensor,
    is_correct: torch.Tensor,
    ratio: float = 0.3,
    strategy: str = "both",
    *,
    selection: str = "confidence",
    granularity: str = "step",
    ranking: str = "mean",
    failed_scope: str = "all",
    is_truncated: torch.Tensor | None = None,
    count_mode: str = "paper",
    generator: torch.Generator | None = None,
) -> torch.BoolTensor:
    """Tokens whose advantage SAS sets to 0.

    Args:
        step_ids: LongTensor (B, T) from `segment_steps` (-1 outside steps).
        token_logps: FloatTensor (B, T), log-probs of the sampled tokens under the rollout policy.
        is_correct: BoolTensor (B,), the verifier's verdict; every other rollout counts as failed.
        ratio: r in [0, 1].
        strategy: "both", "correct_only", "failed_only" or "none" (which rollouts are touched).
        selection: "confidence" (the method) or "random" (ablation; pass a seeded `generator`).
        granularity: "step" (the method) or "token" (ablation: each reasoning token is a step).
        ranking: "mean" (the method) or "std" (ablation), see `step_statistics`.
        failed_scope: "all" (the paper) or "truncated": only failed rollouts that hit the length limit
            are shielded; needs `is_truncated`.
        is_truncated: BoolTensor (B,), rollouts that ended without EOS.
        count_mode: "paper" or "release" (the public code's counting, docs/release_mode.md).

    Returns:
        BoolTensor (B, T). Ties in confidence break towards the lower step index; empty steps are never
        counted or chosen.
    """
    _check_choice("strategy", strategy, STRATEGIES)
    _check_choice("selection", selection, SELECTIONS)
    _check_choice("granularity", granularity, GRANULARITIES)
    _check_choice("failed_scope", failed_scope, FAILED_SCOPES)
    if not 0.0 <= ratio <= 1.0 or math.isnan(ratio):
        raise ValueError(f"ratio must be in [0, 1], got {ratio}")
    if failed_scope == "truncated" and is_truncated is None:
        raise ValueError("failed_scope='truncated' needs is_truncated")

    if granularity == "token":
        step_ids = token_granularity(step_ids)
    confidence, counts = step_statistics(step_ids, token_logps, ranking)
    present = counts > 0
    is_correct = is_correct.bool().to(step_ids.device)

    k = steps_to_zero(present.sum(dim=1), is_correct, ratio, count_mode)
    touch_correct, touch_failed = strategy in ("both", "correct_only"), strategy in ("both", "failed_only")
    touched = (is_correct & touch_correct) | (~is_correct & touch_failed)
    if failed_scope == "truncated":
        touched &= is_correct | is_truncated.bool().to(step_ids.device)
    k = torch.where(touched, k, 0)

    if selection == "random":
        key = torch.rand(confidence.shape, generator=generator, device=generator.device if generator else None)
        key = key.to(confidence.device)
    else:
        # Correct rollouts drop their least confident steps, failed ones their most confident: sort ascending on
        # confidence or on its negation. A stable sort keeps ties in step-index order.
        key = torch.where(is_correct.unsqueeze(1), confidence, -confidence).nan_to_num(nan=math.inf)
    order = torch.argsort(key, dim=1, stable=True)
    # Second stable pass moves empty steps behind every real one (a -inf confidence must not tie with them).
    order = order.gather(1, torch.argsort((~present).gather(1, order).to(torch.int8), dim=1, stable=True))
    positions = torch.arange(order.size(1), device=order.device).expand_as(order)
    rank = torch.empty_like(order).scatter_(1, order, positions)

    chosen = (rank < k.unsqueeze(1)) & present
    return chosen.gather(1, step_ids.clamp(min=0)) & (step_ids >= 0)


def count_steps(step_ids: torch.Tensor) -> torch.LongTensor:
    """(B, T) -> (B,): non-empty steps per rollout."""
    if step_ids.numel() == 0:
        return torch.zeros(step_ids.size(0), dtype=torch.long, device=step_ids.device)
    in_step = step_ids >= 0
    slots = int(step_ids.max().item()) + 1
    counts = torch.zeros(step_ids.size(0), max(slots, 1), dtype=torch.long, device=step_ids.device)
    counts.scatter_add_(1, step_ids.clamp(min=0), in_step.long())
    return (counts > 0).sum(dim=1)


def _check_choice(name: str, value: str, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise ValueError(f"{name} must be one of {allowed}, got {value!r}")
