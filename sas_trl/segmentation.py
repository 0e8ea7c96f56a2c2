"""Segmentation: which tokens of a rollout form its reasoning steps.

A rollout's reasoning is every valid token before the first think-end token; a token whose own decoded text
contains the delimiter ("\\n\\n") ends a step and belongs to the step it ends. The per-vocabulary work (which
tokens end a step) is done once per tokenizer; everything per batch is vectorised over (B, T). On a CPU the
(B, T) passes run over blocks of rows, so their temporaries stay in cache (benchmarks/masks.py).
"""

from __future__ import annotations

from functools import lru_cache

import torch


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
    for rows in row_chunks(completion_ids):
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


def row_chunks(tensor: torch.Tensor):
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


def num_slots_of(step_ids: torch.Tensor, num_slots: int | None = None) -> int:
    """S: `num_slots` when given (static, no read-back), else one more than the largest step index, at least 1."""
    if num_slots is not None:
        return max(int(num_slots), 1)
    return max(int(step_ids.max()) + 1, 1) if step_ids.numel() else 1


def count_steps(step_ids: torch.Tensor, num_slots: int | None = None) -> torch.LongTensor:
    """(B, T) -> (B,): non-empty steps per rollout (`num_slots`: static S, see `step_statistics`)."""
    counts = torch.zeros(
        step_ids.size(0), num_slots_of(step_ids, num_slots) + 1, dtype=torch.long, device=step_ids.device
    )
    one = counts.new_ones(())
    for rows in row_chunks(step_ids):
        index = step_ids[rows] + 1
        counts[rows].scatter_add_(1, index, one.expand(index.shape))
    return (counts[:, 1:] > 0).sum(dim=1)


def vocabulary_warnings(tokenizer, delimiter: str, think_end: str | None) -> list[str]:
    """What about this vocabulary would make SAS quietly do something else than its settings suggest."""
    ends_step, think_end_id = vocab_tables(tokenizer, delimiter, think_end)
    found = []
    if think_end and think_end_id is None:
        found.append(
            f"sas_think_end={think_end!r} is not a token of this vocabulary: every completion token counts as "
            "reasoning"
        )
    if think_end in tokenizer.all_special_tokens:
        found.append(
            f"sas_think_end={think_end!r} is a special token: TRL decodes completions with skip_special_tokens=True, "
            "so reward functions never see it (R1-format rewards then score 0)"
        )
    if not ends_step.any():
        found.append(
            f"no token of this vocabulary contains sas_delimiter={delimiter!r}: every rollout is a single step"
        )
    return found


def embedding_rows(model) -> int:
    """The number of token ids a model can emit or read (its input and output embedding rows and config.vocab_size)."""
    rows = []
    for get in ("get_input_embeddings", "get_output_embeddings"):
        module = getattr(model, get, lambda: None)()
        for attribute in ("num_embeddings", "out_features"):
            if isinstance(getattr(module, attribute, None), int):
                rows.append(getattr(module, attribute))
    config = getattr(model, "config", None)
    text_config = config.get_text_config() if hasattr(config, "get_text_config") else config
    if isinstance(getattr(text_config, "vocab_size", None), int):
        rows.append(text_config.vocab_size)
    return max(rows, default=0)
