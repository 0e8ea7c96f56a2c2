"""Step-level Advantage Selection (SAS): the rule, as one settings object and pure tensor functions.

A rollout's reasoning (everything before the think-end token) is split into steps at tokens whose text
contains the delimiter ("\\n\\n", `sas_trl.segmentation`). Each step's confidence is the mean log-prob of its
tokens under the policy that sampled the rollout (`sas_trl.selection`). With ratio r and N non-empty steps:

* correct rollout: the ceil(r * N) least confident steps get advantage 0 (their reasoning is not
  reinforced just because the final answer was right);
* verifier-failed rollout: the N - ceil((1 - r) * N) most confident steps get advantage 0 (they are
  shielded from a penalty that truncation, not bad reasoning, often earned).

The oracles ("oracle_rollout", "oracle_step", `sas_trl.selection`) replace the ranking and the count by
ground-truth step labels: diagnostics that bound what any fix can gain, on the built-in tasks only.

After group normalisation a zeroed step sits below its positive peers in a winner and above its
negative peers in a loser, so one operation both suppresses and shields.

`SASRule` is the one definition of these settings and their validation: `SASConfig` (training), `sas-trl
inspect`, `sas-trl analyze-truncation` and the verl integration all build one and call its methods.

Shapes: B rollouts, T completion tokens, S step slots: by default the max step index + 1 (read from the data);
callers that must not read tensor values back to the host (the trainer on an accelerator) pass a static
`num_slots` instead, such as T, which bounds the number of steps.
"""

from __future__ import annotations

import dataclasses
import numbers
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import torch

from .errors import UserError
from .segmentation import (
    boundary_table,
    count_steps,
    row_chunks,
    segment_steps,
    token_granularity,
    vocab_tables,
    vocabulary_warnings,
)
from .selection import RANKINGS, SELECTIONS, SelectionInputs, step_statistics

__all__ = [
    "COUNT_MODES",
    "FAILED_SCOPES",
    "GRANULARITIES",
    "STRATEGIES",
    "SASRule",
    "SASRuleError",
    "boundary_table",
    "count_steps",
    "segment_steps",
    "select_zero_mask",
    "step_statistics",
    "steps_to_zero",
    "token_granularity",
    "vocab_tables",
    "vocabulary_warnings",
]

STRATEGIES = ("both", "correct_only", "failed_only", "none")
GRANULARITIES = ("step", "token")
FAILED_SCOPES = ("all", "truncated")
COUNT_MODES = ("paper", "release")
NO_THINK_END = ("none", "null")  # how a flag or recipe spells "no think-end token" (YAML null works too)
PREFIX = "sas_"  # the settings' names in SASConfig, recipes and flags: sas_ratio, sas_strategy, ...


class SASRuleError(UserError):
    """An invalid SAS setting; the message names it as `sas_<name>`, its value and what is allowed."""


def _listed(values) -> str:
    return ", ".join(repr(v) for v in values)


def _help(text: str) -> dict[str, str]:
    return {"help": text}


@dataclass(frozen=True)
class SASRule:
    r"""What SAS zeroes: the paper's rule and its ablations. Immutable; validated when made.

    The defaults are the paper (arXiv 2604.24003): ratio 0.3, both rollout kinds, confidence-ranked
    "\n\n"-delimited steps of the text before `</think>`. `SASConfig` exposes each field as `sas_<name>`.
    """

    ratio: float = field(
        default=0.3,
        metadata=_help(
            "Selection ratio r in [0, 1]: correct rollouts zero ceil(r*N) of their N steps, failed rollouts zero "
            "N - ceil((1-r)*N). 0 disables SAS (plain GRPO)."
        ),
    )
    strategy: str = field(
        default="both",
        metadata=_help(
            f"Which rollouts SAS touches: {_listed(STRATEGIES)}. 'correct_only' is the paper's 'Only Correct' "
            "ablation."
        ),
    )
    selection: str = field(
        default="confidence",
        metadata=_help(
            f"How steps are chosen, a registered selection (sas_trl.selection): {_listed(SELECTIONS)}. 'random' is "
            "the paper's ablation: keys drawn once per rollout at generation, from `seed`, the global step and the "
            "process index. 'oracle_rollout' and 'oracle_step' are diagnostics that read ground-truth step labels "
            "(built-in tasks only; ratio, ranking and counting do not apply): the first zeroes every token of the "
            "failed, truncated rollouts whose reasoning was correct so far, the second the correct steps of failed "
            "rollouts and the redundant or wrong steps of correct ones."
        ),
    )
    granularity: str = field(
        default="step",
        metadata=_help(
            f"Unit of selection: {_listed(GRANULARITIES)}. 'token' treats every reasoning token as a step (ablation)."
        ),
    )
    ranking: str = field(
        default="mean",
        metadata=_help(
            f"Step confidence, a registered ranking (sas_trl.selection): {_listed(RANKINGS)}. 'mean' is the mean "
            "token log-prob; 'std' ranks by the spread of the step's log-probs (ablation)."
        ),
    )
    failed_scope: str = field(
        default="all",
        metadata=_help(
            f"Which failed rollouts are shielded: {_listed(FAILED_SCOPES)}. 'truncated' shields only rollouts that "
            "hit max_completion_length without EOS; the paper uses 'all'."
        ),
    )
    count_mode: str = field(
        default="paper",
        metadata=_help(
            f"Step counting: {_listed(COUNT_MODES)}. 'release' reproduces the public code release exactly "
            "(docs/release_mode.md)."
        ),
    )
    min_steps: int = field(
        default=1,
        metadata=_help(
            "Rollouts with fewer steps than this are left to plain GRPO (nothing zeroed). 1 is the paper's rule; 2 "
            "keeps one-step rollouts (a model that writes no delimiter) from being zeroed whole when correct."
        ),
    )
    delimiter: str = field(
        default="\n\n", metadata=_help("Step delimiter: a token whose text contains it ends a step.")
    )
    think_end: str | None = field(
        default="</think>",
        metadata=_help(
            "Token that ends the reasoning part; it and everything after are never zeroed. 'none' (null in a "
            "recipe; or a vocabulary without the token) makes the whole completion the reasoning part. An empty "
            "string is refused."
        ),
    )

    def __post_init__(self):
        def bad(name: str, allowed: str, value: Any = None) -> SASRuleError:
            shown = getattr(self, name) if value is None else value
            return SASRuleError(f"{PREFIX}{name}={shown!r} is not valid; allowed values: {allowed}")

        for name, allowed in (
            ("strategy", STRATEGIES),
            ("selection", tuple(SELECTIONS)),
            ("granularity", GRANULARITIES),
            ("ranking", tuple(RANKINGS)),
            ("failed_scope", FAILED_SCOPES),
            ("count_mode", COUNT_MODES),
        ):
            if not isinstance(getattr(self, name), str) or getattr(self, name) not in allowed:
                raise bad(name, _listed(allowed))
        ratio = self.ratio
        if isinstance(ratio, bool) or not isinstance(ratio, numbers.Real) or not 0.0 <= ratio <= 1.0:
            raise bad("ratio", "a number in [0, 1]")  # NaN fails the comparison too
        object.__setattr__(self, "ratio", float(ratio))
        if isinstance(self.min_steps, bool) or not isinstance(self.min_steps, int) or self.min_steps < 1:
            raise bad("min_steps", "an integer >= 1")
        if not isinstance(self.delimiter, str) or not self.delimiter:
            raise bad("delimiter", "a non-empty string")
        think_end = self.think_end
        if isinstance(think_end, str) and think_end.strip().lower() in NO_THINK_END:
            object.__setattr__(self, "think_end", None)
        elif isinstance(think_end, str) and not think_end.strip():
            raise SASRuleError(
                f"{PREFIX}think_end={think_end!r} is not valid: an empty value would silently switch off the "
                "reasoning/answer split; give the token that ends the reasoning (default '</think>'), or 'none' for "
                "no think-end (the whole completion is then the reasoning part)"
            )
        elif think_end is not None and not isinstance(think_end, str):
            raise bad("think_end", "a token's text, or 'none'")
        if self.needs_labels and self.granularity != "step":
            raise SASRuleError(
                f"{PREFIX}granularity={self.granularity!r} is not valid with {PREFIX}selection={self.selection!r}: "
                "an oracle reads one label per step; allowed values: 'step'"
            )

    # -- construction and naming ------------------------------------------------------------------------

    @classmethod
    def fields(cls) -> tuple[dataclasses.Field, ...]:
        """The settings, in order; `metadata["help"]` is each one's help text (CLI flags are made from these)."""
        return dataclasses.fields(cls)

    @classmethod
    def from_settings(cls, source: Mapping[str, Any] | Any) -> SASRule:
        """The rule named by `sas_*` keys of a mapping or attributes of an object (e.g. a `SASConfig`).

        Missing names keep their defaults.
        """
        get = source.get if isinstance(source, Mapping) else lambda key, default: getattr(source, key, default)
        missing = object()
        values = {f.name: get(PREFIX + f.name, missing) for f in cls.fields()}
        return cls(**{name: value for name, value in values.items() if value is not missing})

    def settings(self) -> dict[str, Any]:
        """`{"sas_ratio": 0.3, ...}`: the rule under the names recipes, flags and `SASConfig` use."""
        return {PREFIX + f.name: getattr(self, f.name) for f in self.fields()}

    # -- what the settings imply -------------------------------------------------------------------------

    @property
    def enabled(self) -> bool:
        """Whether SAS can zero anything: off for strategy 'none' and for ratio 0 in paper counting (the release's
        counting zeroes N - 1 steps of a correct rollout even at ratio 0; an oracle reads no ratio)."""
        return self.strategy != "none" and (self.ratio > 0 or self.count_mode == "release" or self.needs_labels)

    @property
    def needs_labels(self) -> bool:
        """Whether the selection is an oracle, which reads ground-truth step labels (the built-in tasks only)."""
        return SELECTIONS[self.selection].needs_labels

    @property
    def draws_random_keys(self) -> bool:
        """Whether rollouts need keys drawn once at generation (a random selection), so reuse repeats the choice."""
        return self.enabled and SELECTIONS[self.selection].draws_random_keys

    @property
    def trim_unterminated(self) -> bool:
        """The release drops the last token of a rollout without think-end from its reasoning (release mode)."""
        return self.count_mode == "release"

    # -- the rule applied ----------------------------------------------------------------------------------

    def vocab(self, tokenizer) -> tuple[torch.Tensor, int | None]:
        """`(ends_step (V,), think_end_id | None)` for this rule's delimiter and think-end (cached per tokenizer)."""
        return vocab_tables(tokenizer, self.delimiter, self.think_end)

    def boundary_table(self, tokenizer, size: int, device=None) -> torch.Tensor:
        """BoolTensor (max(size, V),): see `sas_trl.segmentation.boundary_table`."""
        return boundary_table(tokenizer, size, self.delimiter, self.think_end, device=device)

    def segment(self, completion_ids, completion_mask, tokenizer, table=None) -> torch.LongTensor:
        """Step index (B, T) of every reasoning token, -1 elsewhere (`segment_steps` with this rule's settings)."""
        return segment_steps(
            completion_ids,
            completion_mask,
            tokenizer,
            self.delimiter,
            self.think_end,
            trim_unterminated=self.trim_unterminated,
            table=table,
        )

    def zero_mask(
        self,
        step_ids: torch.Tensor,
        token_logps: torch.Tensor,
        is_correct: torch.Tensor,
        *,
        is_truncated: torch.Tensor | None = None,
        random_keys: torch.Tensor | None = None,
        generator: torch.Generator | None = None,
        num_slots: int | None = None,
        labels: torch.Tensor | None = None,
    ) -> torch.BoolTensor:
        """BoolTensor (B, T), the tokens whose advantage this rule sets to 0 (see `select_zero_mask`)."""
        return _zero_mask(
            self, step_ids, token_logps, is_correct, is_truncated, random_keys, generator, num_slots, labels
        )


# --------------------------------------------------------------------------------------------------
# Counting and selection
# --------------------------------------------------------------------------------------------------


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
    rule: SASRule | float | None = None,
    *,
    is_truncated: torch.Tensor | None = None,
    random_keys: torch.Tensor | None = None,
    generator: torch.Generator | None = None,
    num_slots: int | None = None,
    labels: torch.Tensor | None = None,
    **settings: Any,
) -> torch.BoolTensor:
    """Tokens whose advantage SAS sets to 0.

    Args:
        step_ids: LongTensor (B, T) from `segment_steps` (-1 outside steps).
        token_logps: FloatTensor (B, T), log-probs of the sampled tokens under the rollout policy.
        is_correct: BoolTensor (B,), the verifier's verdict; every other rollout counts as failed.
        rule: the `SASRule`; or, as a convenience, the ratio, with the other fields as keyword `settings`
            (`select_zero_mask(steps, logps, correct, ratio=0.3, strategy="both")`).
        is_truncated: BoolTensor (B,), rollouts that ended without EOS (needed by failed_scope "truncated").
        random_keys: FloatTensor (B, >= S), one key per step slot (slot j = step j), drawn once per rollout so
            that reusing a rollout reuses its choice (selections that draw keys); steps with smaller keys go first.
        generator: for selections that draw keys, when no `random_keys` are given.
        num_slots: static S, see `step_statistics` (T always suffices).
        labels: LongTensor (B, L), ground-truth step labels (`sas_trl.step_labels`, 0 as padding); the oracles
            read them (and is_truncated) instead of confidence and counts.

    Returns:
        BoolTensor (B, T). Ties in confidence break towards the lower step index; empty steps are never
        counted or chosen.
    """
    if isinstance(rule, SASRule):
        if settings:
            raise TypeError(f"pass either a SASRule or settings, not both (got {sorted(settings)})")
    else:
        rule = SASRule(**settings) if rule is None else SASRule(ratio=rule, **settings)
    return _zero_mask(rule, step_ids, token_logps, is_correct, is_truncated, random_keys, generator, num_slots, labels)


def _touched(rule: SASRule, is_correct, is_truncated, num_steps) -> torch.Tensor:
    """BoolTensor (B,): the rollouts the rule may zero anything in (strategy, sas_min_steps, failed scope)."""
    touch_correct = rule.strategy in ("both", "correct_only")
    touch_failed = rule.strategy in ("both", "failed_only")
    touched = ((is_correct & touch_correct) | (~is_correct & touch_failed)) & (num_steps >= rule.min_steps)
    if rule.failed_scope == "truncated":
        touched &= is_correct | is_truncated.bool().to(is_correct.device)
    return touched


def _zero_mask(rule, step_ids, token_logps, is_correct, is_truncated, random_keys, generator, num_slots, labels):
    if rule.failed_scope == "truncated" and is_truncated is None:
        raise ValueError("failed_scope='truncated' needs is_truncated")
    if rule.needs_labels:
        return _oracle_mask(rule, step_ids, is_correct, is_truncated, labels)
    if rule.granularity == "token":
        step_ids = token_granularity(step_ids)
    confidence, counts = step_statistics(step_ids, token_logps, rule.ranking, num_slots)
    present = counts > 0
    is_correct = is_correct.bool().to(step_ids.device)

    num_steps = present.sum(dim=1)
    k = steps_to_zero(num_steps, is_correct, rule.ratio, rule.count_mode)
    k = torch.where(_touched(rule, is_correct, is_truncated, num_steps), k, 0)

    key = SELECTIONS[rule.selection].keys(SelectionInputs(confidence, present, is_correct, random_keys, generator))
    order = torch.argsort(key, dim=1, stable=True)  # stable: ties keep step-index order
    # Rank among the real steps only: empty slots may sit anywhere in `order` but never take a rank.
    present_sorted = present.gather(1, order)
    chosen_sorted = present_sorted & (present_sorted.cumsum(dim=1) <= k.unsqueeze(1))
    chosen = torch.zeros_like(present).scatter_(1, order, chosen_sorted)

    # Column 0 answers for the tokens outside steps (index -1 + 1): never zeroed.
    chosen = torch.cat([torch.zeros_like(chosen[:, :1]), chosen], dim=1)
    zero = torch.empty(step_ids.shape, dtype=torch.bool, device=step_ids.device)
    for rows in row_chunks(step_ids):
        torch.gather(chosen[rows], 1, step_ids[rows] + 1, out=zero[rows])
    return zero


def _oracle_mask(rule: SASRule, step_ids, is_correct, is_truncated, labels) -> torch.BoolTensor:
    """An oracle's zero mask (B, T), restricted to the rollouts the rule touches (strategy, min steps, scope)."""
    name = f"{PREFIX}selection={rule.selection!r}"
    if labels is None:
        raise ValueError(f"{name} needs step labels (B, L): they exist on the built-in tasks only")
    if is_truncated is None:
        raise ValueError(f"{name} needs is_truncated")
    is_correct = is_correct.bool().to(step_ids.device)
    zero = SELECTIONS[rule.selection].oracle(step_ids, labels, is_correct, is_truncated.bool().to(step_ids.device))
    num_steps = step_ids.amax(dim=1).clamp(min=-1) + 1  # steps are 0..N-1 without gaps
    return zero & _touched(rule, is_correct, is_truncated, num_steps).unsqueeze(1)
