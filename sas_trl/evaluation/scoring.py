"""Token log-probs of completions under the model, as SAS computes confidence (temperature 1).

What `sas-trl analyze-truncation` and `sas-trl inspect` score their traces with: the scoring model (the one a
transformers backend already holds, else loaded once), `token_logprobs` per completion, and `padded` to lay the
ragged results out as (B, T) tensors for the SAS functions.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from .backends import TransformersBackend, model_identity, pick_device


def load_scoring_model(model: str):
    """`model` in eval mode on the best device there is (bfloat16 on CUDA, else float32)."""
    from transformers import AutoModelForCausalLM

    device = pick_device()
    dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
    return AutoModelForCausalLM.from_pretrained(model_identity(model), dtype=dtype).to(device).eval()


def scoring_model(backend, model: str):
    """The model a transformers backend already holds (no second copy), else `model` loaded for scoring."""
    return backend.model if isinstance(backend, TransformersBackend) else load_scoring_model(model)


@torch.no_grad()
def token_logprobs(
    model, prompts: Sequence[Sequence[int]], completions: Sequence[Sequence[int]], batch_size: int = 4
) -> list[torch.Tensor]:
    """Log-prob of every completion token given the prompt and the tokens before it, at temperature 1.

    Returns one FloatTensor (len(completion),) per pair, on the CPU.
    """
    out: list[torch.Tensor] = []
    device = model.device
    for start in range(0, len(prompts), batch_size):
        pairs = list(zip(prompts[start : start + batch_size], completions[start : start + batch_size], strict=True))
        width = max(len(p) + len(c) for p, c in pairs)
        ids = torch.zeros((len(pairs), width), dtype=torch.long)
        mask = torch.zeros((len(pairs), width), dtype=torch.long)
        for i, (p, c) in enumerate(pairs):  # right padding: positions start at 0 for every row
            ids[i, : len(p) + len(c)] = torch.tensor([*p, *c])
            mask[i, : len(p) + len(c)] = 1
        logits = model(input_ids=ids.to(device), attention_mask=mask.to(device)).logits
        for i, (p, c) in enumerate(pairs):
            # Logits at position t predict token t + 1: the completion's tokens are predicted from len(p) - 1 on.
            rows = logits[i, len(p) - 1 : len(p) + len(c) - 1].float()  # per row: (T, V) floats, never (B, T, V)
            target = torch.tensor(c, device=device).unsqueeze(1)
            out.append((rows.gather(1, target).squeeze(1) - rows.logsumexp(dim=1)).cpu())
    return out


def padded(rows: Sequence[Sequence], fill, dtype) -> tuple[torch.Tensor, torch.Tensor]:
    """Right-padded (B, T) tensor of `rows` and its 0/1 mask (B, T); T is at least 1."""
    width = max((len(r) for r in rows), default=0)
    values = torch.full((len(rows), max(width, 1)), fill, dtype=dtype)
    mask = torch.zeros((len(rows), max(width, 1)), dtype=torch.long)
    for i, r in enumerate(rows):
        values[i, : len(r)] = torch.as_tensor(list(r), dtype=dtype)
        mask[i, : len(r)] = 1
    return values, mask
