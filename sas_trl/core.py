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

Shapes: B rollouts, T completion tokens, S step slots: by default the max step index + 1 (read from the data);
callers that must not read tensor values back to the host (the trainer on an accelerator) pass a static
`num_slots` instead, such as T, which bounds the number of steps. Everything here is vectorised over (B, T) or
(B, S); the only per-vocabulary work (which tokens end a step) is done once per tokenizer. On a CPU the (B, T)
passes run over blocks of rows, so their temporaries stay in cache and peak memory stays near the outputs
(benchmarks/masks.py, docs/benchmarks.md).
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
# The `sas_*` settings (SASConfig's field names) that take one of a fixed set of values.
SAS_CHOICES = {
    "sas_strategy": STRATEGIES,
    "sas_selection": SELECTIONS,
    "sas_granularity": GRANULARITIES,
    "sas_ranking": RANKINGS,
    "sas_failed_scope": FAILED_SCOPES,
    "sas_count_mode": COUNT_MODES,
}


def invalid_choice(settings) -> str | None:
    """The message for the first `sas_*` choice attribute of `settings` outside its allowed values, else None."""
    for name, allowed in SAS_CHOICES.items():
        value = getattr(settings, name)
        if value not in allowed:
            return f"{name}={value!r} is not valid; allowed values: {', '.join(repr(v) for v in allowed)}"
    return None


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
    table: torch.Tensor | None = None,
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
        table: BoolTensor (V',) from `boundary_table`, on the ids' device, covering every id that can occur
            (e.g. sized to the model's embedding rows). Skips the per-call range check of the ids, which reads
            their min and max back to the host.

    Returns:
        LongTensor (B, T): 0, 1, ... for reasoning tokens; -1 for padding, the think-end token and
        everything after it.
    """
    ends_step, think_end_id = vocab_tables(tokenizer, delimiter, think_end)
    if table is None:
        table, remap = _boundary_table(ends_step, completion_ids)
    else:
        remap = False
    outside = table.numel() - 1
    step_ids = torch.empty(completion_ids.shape, dtype=torch.long, device=completion_ids.device)
    for rows in _row_chunks(completion_ids):
        ids = completion_ids[rows]
        valid = completion_mask[rows] != 0
        reasoning = valid
        if think_end_id is not None:
            is_end = valid & (ids == think_end_id)
            reasoning = valid & (is_end.cumsum(dim=1, dtype=torch.int32) == 0)
            if trim_unterminated:
                unterminated = ~is_end.any(dim=1, keepdim=True)
        elif trim_unterminated:
            unterminated = torch.ones_like(valid[:, :1])
        if trim_unterminated:
            seen = valid.cumsum(dim=1, dtype=torch.int32)
            last_valid = valid & (seen == seen[:, -1:])
            reasoning = reasoning & ~(last_valid & unterminated)

        lookup = torch.where((ids < 0) | (ids >= outside), outside, ids) if remap else ids
        boundary = table.index_select(0, lookup.reshape(-1)).view_as(ids) & reasoning
        # Exclusive cumsum: a boundary token still belongs to the step it closes. int32 until the final write.
        steps = boundary.cumsum(dim=1, dtype=torch.int32).sub_(boundary.to(torch.int32))
        step_ids[rows] = steps
        step_ids[rows].masked_fill_(~reasoning, -1)
    return step_ids


def boundary_table(
    tokenizer, size: int, delimiter: str = "\n\n", think_end: str | None = "</think>", device=None
) -> torch.BoolTensor:
    """BoolTensor (max(size, V),) on `device`: which ids end a step, padded with False up to `size`.

    Built once (the trainer sizes it to the model's embedding rows, which bound every id the model can emit) and
    passed to `segment_steps(..., table=...)`, so segmentation never checks the ids' range at run time.
    """
    ends_step, _ = vocab_tables(tokenizer, delimiter, think_end)
    table = torch.zeros(max(size, ends_step.numel()), dtype=torch.bool)
    table[: ends_step.numel()] = ends_step
    return table.to(device)


def _boundary_table(ends_step: torch.Tensor, completion_ids: torch.Tensor) -> tuple[torch.Tensor, bool]:
    """`ends_step` on the ids' device, plus whether some id falls outside it and needs remapping first.

    Ids beyond the tokenizer (a model's padded embedding rows) and negative ids never end a step. The common
    case, every id inside the vocabulary, indexes the table directly without a per-token clamp.
    """
    table = _on_device(ends_step, completion_ids.device)
    if completion_ids.numel() == 0:
        return table, False
    low, high = (int(x) for x in torch.aminmax(completion_ids))
    if low >= 0 and high < table.numel():
        return table, False
    return torch.cat([table, table.new_zeros(1)]), True  # the extra last entry: "not a boundary"


# Rows per chunk on a CPU: a chunk's few-bytes-per-token temporaries then stay in cache instead of each making a
# pass over main memory (and, at >= 32 MiB, being page-faulted in afresh by malloc). On a GPU one chunk is fastest.
_CPU_CHUNK_TOKENS = 1 << 17


def _row_chunks(tensor: torch.Tensor):
    """Slices of the rows of a (B, T) tensor."""
    batch, length = tensor.shape
    rows = max(1, _CPU_CHUNK_TOKENS // max(length, 1)) if tensor.device.type == "cpu" else max(batch, 1)
    for start in range(0, batch, rows):
        yield slice(start, start + rows)


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
    step_ids: torch.Tensor, token_logps: torch.Tensor, ranking: str = "mean", num_slots: int | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-step confidence and size.

    Args:
        step_ids: LongTensor (B, T), -1 outside steps.
        token_logps: FloatTensor (B, T); values outside steps are ignored (may be NaN).
        ranking: "mean" -> mean token log-prob; "std" -> minus the std of the step's log-probs
            (a step whose tokens the policy is unevenly sure of counts as less confident).
        num_slots: S, static; must exceed every step index (T always does). None reads it from the data.

    Returns:
        confidence: FloatTensor (B, S), undefined (0) for empty steps.
        counts: LongTensor (B, S), tokens per step.
    """
    if ranking not in RANKINGS:
        raise ValueError(f"ranking must be one of {RANKINGS}, got {ranking!r}")
    num_slots = _num_slots(step_ids, num_slots)
    # Column 0 collects the tokens outside steps (index -1 + 1) and is dropped at the end.
    shape = (step_ids.size(0), num_slots + 1)
    sums = torch.zeros(shape, dtype=torch.float32, device=step_ids.device)
    counts = torch.zeros(shape, dtype=torch.long, device=step_ids.device)
    one = counts.new_ones(())
    for rows in _row_chunks(step_ids):
        index = step_ids[rows] + 1
        sums[rows].scatter_add_(1, index, token_logps[rows].float())
        counts[rows].scatter_add_(1, index, one.expand(index.shape))
    counts[:, 0] = 0
    mean = sums / counts.clamp(min=1)
    if ranking == "mean":
        return mean[:, 1:], counts[:, 1:]
    squares = torch.zeros_like(sums)
    for rows in _row_chunks(step_ids):
        index = step_ids[rows] + 1
        centered = token_logps[rows].float() - mean[rows].gather(1, index)
        squares[rows].scatter_add_(1, index, centered.square_())
    return -(squares / counts.clamp(min=1)).sqrt()[:, 1:], counts[:, 1:]


def _num_slots(step_ids: torch.Tensor, num_slots: int | None = None) -> int:
    """S: `num_slots` when given (static, no read-back), else one more than the largest step index, at least 1."""
    if num_slots is not None:
        return max(int(num_slots), 1)
    return max(int(step_ids.max()) + 1, 1) if step_ids.numel() else 1


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
    random_keys: torch.Tensor | None = None,
    min_steps: int = 1,
    num_slots: int | None = None,
) -> torch.BoolTensor:
    """Tokens whose advantage SAS sets to 0.

    Args:
        step_ids: LongTensor (B, T) from `segment_steps` (-1 outside steps).
        token_logps: FloatTensor (B, T), log-probs of the sampled tokens under the rollout policy.
        is_correct: BoolTensor (B,), the verifier's verdict; every other rollout counts as failed.
        ratio: r in [0, 1].
        strategy: "both", "correct_only", "failed_only" or "none" (which rollouts are touched).
        selection: "confidence" (the method) or "random" (ablation): steps are ranked by `random_keys`, or,
            without them, by keys drawn from `generator`.
        granularity: "step" (the method) or "token" (ablation: each reasoning token is a step).
        ranking: "mean" (the method) or "std" (ablation), see `step_statistics`.
        failed_scope: "all" (the paper) or "truncated": only failed rollouts that hit the length limit
            are shielded; needs `is_truncated`.
        is_truncated: BoolTensor (B,), rollouts that ended without EOS.
        count_mode: "paper" or "release" (the public code's counting, docs/release_mode.md).
        random_keys: FloatTensor (B, >= S), one key per step slot (slot j = step j), drawn once per rollout so
            that reusing a rollout reuses its choice; steps with smaller keys are chosen first.
        min_steps: rollouts with fewer non-empty steps are left untouched (plain GRPO); 1 is the paper's rule.
        num_slots: static S, see `step_statistics` (T always suffices).

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
    confidence, counts = step_statistics(step_ids, token_logps, ranking, num_slots)
    present = counts > 0
    is_correct = is_correct.bool().to(step_ids.device)

    num_steps = present.sum(dim=1)
    k = steps_to_zero(num_steps, is_correct, ratio, count_mode)
    touch_correct, touch_failed = strategy in ("both", "correct_only"), strategy in ("both", "failed_only")
    touched = ((is_correct & touch_correct) | (~is_correct & touch_failed)) & (num_steps >= min_steps)
    if failed_scope == "truncated":
        touched &= is_correct | is_truncated.bool().to(step_ids.device)
    k = torch.where(touched, k, 0)

    if selection == "random" and random_keys is not None:
        if random_keys.size(1) < confidence.size(1):
            raise ValueError(f"random_keys has {random_keys.size(1)} columns for {confidence.size(1)} step slots")
        key = random_keys[:, : confidence.size(1)].to(confidence.device, torch.float32)
    elif selection == "random":
        key = torch.rand(confidence.shape, generator=generator, device=generator.device if generator else None)
        key = key.to(confidence.device)
    else:
        # Correct rollouts drop their least confident steps, failed ones their most confident: sort ascending on
        # confidence or on its negation. A stable sort keeps ties in step-index order.
        key = torch.where(is_correct.unsqueeze(1), confidence, -confidence).nan_to_num(nan=math.inf)
    order = torch.argsort(key, dim=1, stable=True)
    # Rank among the real steps only: empty slots may sit anywhere in `order` but never take a rank.
    present_sorted = present.gather(1, order)
    chosen_sorted = present_sorted & (present_sorted.cumsum(dim=1) <= k.unsqueeze(1))
    chosen = torch.zeros_like(present).scatter_(1, order, chosen_sorted)

    # Column 0 answers for the tokens outside steps (index -1 + 1): never zeroed.
    chosen = torch.cat([torch.zeros_like(chosen[:, :1]), chosen], dim=1)
    zero = torch.empty(step_ids.shape, dtype=torch.bool, device=step_ids.device)
    for rows in _row_chunks(step_ids):
        torch.gather(chosen[rows], 1, step_ids[rows] + 1, out=zero[rows])
    return zero


def count_steps(step_ids: torch.Tensor, num_slots: int | None = None) -> torch.LongTensor:
    """(B, T) -> (B,): non-empty steps per rollout (`num_slots`: static S, see `step_statistics`)."""
    counts = torch.zeros(
        step_ids.size(0), _num_slots(step_ids, num_slots) + 1, dtype=torch.long, device=step_ids.device
    )
    one = counts.new_ones(())
    for rows in _row_chunks(step_ids):
        index = step_ids[rows] + 1
        counts[rows].scatter_add_(1, index, one.expand(index.shape))
    return (counts[:, 1:] > 0).sum(dim=1)


def _check_choice(name: str, value: str, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise ValueError(f"{name} must be one of {allowed}, got {value!r}")
