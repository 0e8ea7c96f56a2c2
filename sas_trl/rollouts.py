"""The one rule for a truncated rollout, used by training, evaluation and the truncation analysis.

A rollout is truncated when its last token is neither an EOS token nor the pad token: generation stopped
because the token budget ran out, not because the model ended its answer. This is TRL's own test (the one
behind `mask_truncated_completions` in `GRPOTrainer`), so SAS's `sas_failed_scope="truncated"`, the
`sas/truncated_frac` metric, `sas-trl eval`'s truncation rate and `sas-trl analyze-truncation` all count the
same rollouts. An empty rollout (no token at all) is not truncated: nothing was cut.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import torch


def _stop_ids(eos_token_ids: int | Iterable[int] | None, pad_token_id: int | None) -> set[int]:
    eos = [] if eos_token_ids is None else [eos_token_ids] if isinstance(eos_token_ids, int) else eos_token_ids
    return {int(i) for i in eos} | ({int(pad_token_id)} if pad_token_id is not None else set())


def is_truncated(
    completion_ids: Sequence[int], eos_token_ids: int | Iterable[int] | None, pad_token_id: int | None = None
) -> bool:
    """Whether one rollout (its ids without padding; a list or a 1-D tensor) was cut by the token budget."""
    ids = completion_ids.tolist() if hasattr(completion_ids, "tolist") else list(completion_ids)
    return bool(ids) and ids[-1] not in _stop_ids(eos_token_ids, pad_token_id)


def truncated_flags(
    completion_ids: Sequence[Sequence[int]],
    eos_token_ids: int | Iterable[int] | None,
    pad_token_id: int | None = None,
    device: torch.device | str | None = None,
) -> torch.BoolTensor:
    """`is_truncated` for B rollouts at once: a BoolTensor (B,).

    Args:
        completion_ids: B rollouts' ids without padding (TRL's `completion_ids` list).
    """
    stop = torch.tensor(sorted(_stop_ids(eos_token_ids, pad_token_id)), dtype=torch.long, device=device)
    last = torch.tensor([ids[-1] if len(ids) else -1 for ids in completion_ids], dtype=torch.long, device=device)
    nonempty = torch.tensor([len(ids) > 0 for ids in completion_ids], dtype=torch.bool, device=device)
    return nonempty & ~torch.isin(last, stop)


def truncated_rows(
    completion_ids: torch.Tensor,
    completion_mask: torch.Tensor,
    eos_token_ids: int | Iterable[int] | None,
    pad_token_id: int | None = None,
) -> torch.BoolTensor:
    """`is_truncated` for a padded batch, vectorised: the rule applied to each row's last valid token.

    Args:
        completion_ids: LongTensor (B, T), right-padded.
        completion_mask: (B, T), nonzero for valid tokens; a row's last nonzero position is its last token.

    Returns:
        BoolTensor (B,) on the ids' device; a row without a valid token is not truncated.
    """
    valid = completion_mask != 0
    if valid.size(1) == 0:
        return torch.zeros(valid.size(0), dtype=torch.bool, device=completion_ids.device)
    # The last valid position: the first one seen from the right (argmax returns the first maximum).
    last_index = valid.size(1) - 1 - valid.flip(1).to(torch.uint8).argmax(dim=1, keepdim=True)
    last = completion_ids.gather(1, last_index).squeeze(1)
    stop = torch.tensor(sorted(_stop_ids(eos_token_ids, pad_token_id)), dtype=torch.long, device=last.device)
    return valid.any(dim=1) & ~torch.isin(last, stop)
