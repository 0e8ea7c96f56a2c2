"""The testbed's criteria (docs/testbed.md) and the step-label figures `sas-trl analyze-truncation` reports.

On the built-in task every step of a rollout has a label (`sas_trl.step_labels`): correct, wrong or redundant. These
pure pieces count the labels, set SAS's selection against them, find the mislabelled rollouts GRPO punishes (those
in mixed groups) and hold each criterion against its target.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from ..segmentation import count_steps
from ..step_labels import CORRECT, NAMES, REDUNDANT, WRONG, label_steps, parse_terms
from .scoring import padded, token_logprobs


@dataclass(frozen=True)
class Criterion:
    """One of the testbed's criteria on a starting model (docs/testbed.md): `low <= value <= high`."""

    key: str  # the value's key in truncation.json
    text: str
    low: float | None = None
    high: float | None = None

    def target(self) -> str:
        if self.low is not None and self.high is not None:
            return f"{self.low:g} to {self.high:g}" if self.low != self.high else f"{self.low:g}"
        return f">= {self.low:g}" if self.low is not None else f"<= {self.high:g}"

    def holds(self, value: float | None) -> bool | None:
        if value is None:
            return None
        return (self.low is None or value >= self.low) and (self.high is None or value <= self.high)


# The testbed's criteria (issue 26, section 1), fixed before any RL result; recipes/studies/testbed.yaml states them.
CRITERIA = (
    Criterion("pass_at_1", "Pass@1 at the long budget (headroom)", 0.40, 0.80),
    Criterion("median_steps", "median steps per rollout at the long budget", low=8),
    Criterion("flipped_fraction", "mislabel rate (correct at long, failed when cut)", 0.20, 0.40),
    Criterion("mislabelled_in_mixed_groups", "share of mislabelled rollouts in mixed groups", low=0.70),
    Criterion("impossible_prompts", "prompts whose solution without redundancy exceeds the short budget", 0, 0),
    Criterion("redundant_step_share", "share of the model's steps that are redundant", low=0.05),
)


def zeroed_steps(step_ids: torch.Tensor, zero: torch.Tensor, num_slots: int) -> torch.Tensor:
    """BoolTensor (B, S): whether SAS zeroes step j (selection is per step, so its tokens' flags agree).

    Args:
        step_ids: LongTensor (B, T), -1 outside steps. zero: BoolTensor (B, T), the zeroed tokens.
    """
    zeroed = torch.zeros(step_ids.size(0), num_slots + 1, dtype=torch.long)
    zeroed.scatter_reduce_(1, step_ids + 1, zero.long(), reduce="amax")
    return zeroed[:, 1:].bool()


def mixed_group_share(groups: list, mislabelled: list[bool], short_correct: list[bool]) -> float | None:
    """Of the mislabelled rollouts, the share whose group (same key in `groups`) holds a rollout correct at the
    short budget: the groups where GRPO gives them a negative advantage. None without mislabelled rollouts."""
    mixed = {g for g, ok in zip(groups, short_correct, strict=True) if ok}
    flagged = [g for g, bad in zip(groups, mislabelled, strict=True) if bad]
    return sum(g in mixed for g in flagged) / len(flagged) if flagged else None


def label_summary(labels: list[tuple[int, ...]]) -> dict[str, Any]:
    """Shares of correct, wrong and redundant steps over all steps of `labels` (one tuple per rollout)."""
    steps = [x for row in labels for x in row]
    shares = {name: (sum(x == code for x in steps) / len(steps) if steps else None) for code, name in NAMES.items()}
    return {"rollouts": len(labels), "steps": len(steps), **shares}


def selection_against_labels(
    labels: list[tuple[int, ...]], zeroed: torch.Tensor, num_steps: torch.Tensor, correct: list[bool]
) -> dict[str, Any]:
    """SAS's zeroed steps against the steps' labels.

    Args:
        labels: one label tuple per rollout (`label_steps`). zeroed: BoolTensor (B, S) from `zeroed_steps`.
        num_steps: LongTensor (B,), SAS's steps per rollout; a rollout whose count differs from its labels'
            (a step SAS splits differently from the text) is left out and counted.
        correct: the rollouts' verdicts.

    Returns:
        `shielded_steps` (zeroed in failed rollouts) and `shielded_correct` (the share labelled correct);
        `zeroed_steps` (in correct rollouts) and `zeroed_redundant_or_wrong`; `rollouts`, `left_out`. Beside each
        share, what a selection blind to the labels would get: `failed_steps_correct`, the share of all steps of
        failed rollouts labelled correct, and `correct_steps_redundant_or_wrong`, that of correct rollouts.
    """
    shielded: list[int] = []
    dropped: list[int] = []
    in_failed: list[int] = []
    in_correct: list[int] = []
    left_out = 0
    for i, (row, ok) in enumerate(zip(labels, correct, strict=True)):
        if len(row) != int(num_steps[i]):
            left_out += 1
            continue
        chosen = [row[j] for j in range(len(row)) if zeroed[i, j]]
        (dropped if ok else shielded).extend(chosen)
        (in_correct if ok else in_failed).extend(row)
    return {
        "rollouts": len(labels) - left_out,
        "left_out": left_out,
        "shielded_steps": len(shielded),
        "shielded_correct": sum(x == CORRECT for x in shielded) / len(shielded) if shielded else None,
        "zeroed_steps": len(dropped),
        "zeroed_redundant_or_wrong": (
            sum(x in (REDUNDANT, WRONG) for x in dropped) / len(dropped) if dropped else None
        ),
        "failed_steps_correct": sum(x == CORRECT for x in in_failed) / len(in_failed) if in_failed else None,
        "correct_steps_redundant_or_wrong": (
            sum(x in (REDUNDANT, WRONG) for x in in_correct) / len(in_correct) if in_correct else None
        ),
    }


def check_criteria(results: dict[str, Any]) -> list[dict[str, Any]]:
    """Each criterion of `CRITERIA` with its measured value (None where not measured), target and verdict."""
    return [
        {"key": c.key, "criterion": c.text, "value": results.get(c.key), "target": c.target(),
         "holds": c.holds(results.get(c.key))}
        for c in CRITERIA
    ]  # fmt: skip


def step_label_results(
    model, tokenizer, records: list[dict], prompts: dict, questions: dict, short_ok: list[bool], config
) -> dict[str, Any]:
    """On the built-in task: the steps' labels at the long budget, the prompts that cannot fit the short budget,
    and SAS's selection (`config.sas`) on every rollout cut at the short budget, against the labels.

    Args:
        records: the built-in problems' samples (`token_ids`, `tokens`, `benchmark`, `id`). prompts, questions:
            each problem's prompt ids and question text, by (benchmark, id). short_ok: each record's verdict when
            cut at the short budget. config: the command's `TruncationConfig`.
    """
    from ..task import plain_solution

    short = config.short_tokens
    questions = {key: parse_terms(text) for key, text in questions.items()}
    terms = [questions[(r["benchmark"], r["id"])] for r in records]
    long_texts = [tokenizer.decode(r["token_ids"], skip_special_tokens=True) for r in records]
    cut_ids = [r["token_ids"][:short] for r in records]
    cut_texts = [tokenizer.decode(ids, skip_special_tokens=True) for ids in cut_ids]

    def solution_tokens(key) -> int:
        text = plain_solution(questions[key]).completion
        return len(tokenizer(text, add_special_tokens=False)["input_ids"]) + 1  # and the EOS

    impossible = sum(solution_tokens(key) > short for key in questions)
    logps = token_logprobs(
        model, [prompts[(r["benchmark"], r["id"])] for r in records], cut_ids, config.score_batch_size
    )
    ids, mask = padded(cut_ids, tokenizer.pad_token_id or 0, torch.long)
    logp_table, _ = padded([lp.tolist() for lp in logps], 0.0, torch.float32)
    step_ids = config.sas.segment(ids, mask, tokenizer)
    verdicts = torch.tensor(short_ok, dtype=torch.bool)
    truncated = torch.tensor([r["tokens"] > short for r in records], dtype=torch.bool)
    generator = torch.Generator().manual_seed(config.sampling.seed or 0)  # a random selection's draw
    zero = config.sas.zero_mask(step_ids, logp_table, verdicts, is_truncated=truncated, generator=generator)
    num_slots = max(int(step_ids.max()) + 1, 1)
    selection = selection_against_labels(
        [label_steps(t, text) for t, text in zip(terms, cut_texts, strict=True)],
        zeroed_steps(step_ids, zero, num_slots),
        count_steps(step_ids, num_slots),
        short_ok,
    )
    summary = label_summary([label_steps(t, text) for t, text in zip(terms, long_texts, strict=True)])
    return {
        "step_labels": summary,
        "redundant_step_share": summary["redundant"],
        "impossible_prompts": impossible,
        "builtin_prompts": len(questions),
        "selection_vs_labels": selection,
    }
