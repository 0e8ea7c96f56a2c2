"""`SASGRPOTrainer`: TRL's `GRPOTrainer` with step-level zero-advantage masks.

The trainer owns no loss code. It records, per rollout, whether the verifier accepted it and whether
it was truncated; then, for every micro-batch, it turns TRL's (B,) advantages into (B, T) advantages
with the selected steps zeroed and hands them to `GRPOTrainer._compute_loss`. Zeroed tokens stay in
the completion mask, so the loss denominator and the KL term are unchanged.

Confidence comes from the log-probs of the policy that sampled the rollouts: TRL's
`old_per_token_logps` when it computes them (num_iterations > 1, steps_per_generation >
gradient_accumulation_steps, vLLM importance sampling), otherwise the loss's own forward pass, whose
detached log-probs are that same policy. No configuration adds a forward pass.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Any

import torch
from trl import GRPOTrainer

from .completion_logs import CompletionLogMixin
from .config import SASConfig
from .core import segment_steps, select_zero_mask, vocab_tables


class SASGRPOTrainer(CompletionLogMixin, GRPOTrainer):
    """GRPO with Step-level Advantage Selection. Takes the arguments of `trl.GRPOTrainer`, with a `SASConfig`."""

    _tag_names = ["trl", "grpo", "sas"]

    def __init__(self, model, reward_funcs, args: SASConfig | None = None, **kwargs):
        if args is None:
            name = model if isinstance(model, str) else model.config._name_or_path
            args = SASConfig(output_dir=f"{name.split('/')[-1]}-SAS")
        if not isinstance(args, SASConfig):
            raise TypeError(f"args must be a SASConfig, got {type(args).__name__}")
        num_rewards = len(reward_funcs) if isinstance(reward_funcs, list | tuple) else 1
        if args.sas_correct_reward_index >= num_rewards:
            raise ValueError(
                f"sas_correct_reward_index={args.sas_correct_reward_index} but only {num_rewards} reward "
                "function(s) were given"
            )
        super().__init__(model, reward_funcs, args=args, **kwargs)

        tokenizer = self.processing_class
        self._sas_tokenizer = getattr(tokenizer, "tokenizer", tokenizer)  # processors wrap a tokenizer
        ends_step, think_end_id = vocab_tables(self._sas_tokenizer, args.sas_delimiter, args.sas_think_end)
        if args.sas_think_end and think_end_id is None:
            self._sas_warn(
                f"sas_think_end={args.sas_think_end!r} is not a token of this vocabulary: every "
                "completion token counts as reasoning"
            )
        if args.sas_think_end in self._sas_tokenizer.all_special_tokens:
            self._sas_warn(
                f"sas_think_end={args.sas_think_end!r} is a special token: TRL decodes completions with "
                "skip_special_tokens=True, so reward functions never see it (R1-format rewards then score 0)"
            )
        if not ends_step.any():
            self._sas_warn(
                f"no token of this vocabulary contains sas_delimiter={args.sas_delimiter!r}: every "
                "rollout is a single step"
            )
        self._sas_generator = torch.Generator().manual_seed(args.seed + self.accelerator.process_index)
        self._sas_rollout_flags: dict[str, torch.Tensor] | None = None
        self._sas_pending: Callable[[torch.Tensor], None] | None = None

    def _sas_warn(self, message: str) -> None:
        if self.accelerator.is_main_process:
            warnings.warn(message, stacklevel=3)

    # -- rollout flags: which rollouts are correct, which were truncated ---------------------------------

    def _calculate_rewards(self, inputs, prompts, completions, completion_ids_list):
        rewards_per_func = super()._calculate_rewards(inputs, prompts, completions, completion_ids_list)
        # Rewards come back gathered from all processes in process order; keep this process's rows.
        start = self.accelerator.process_index * len(prompts)
        local = rewards_per_func[start : start + len(prompts), self.args.sas_correct_reward_index]
        eos = torch.tensor(sorted(self.eos_token_ids), device=local.device)
        last = torch.tensor([ids[-1] if len(ids) else -1 for ids in completion_ids_list], device=local.device)
        self._sas_rollout_flags = {
            "sas_is_correct": local >= self.args.sas_correct_threshold,  # NaN (unscorable) counts as failed
            "sas_is_truncated": ~torch.isin(last, eos),  # TRL's own test for mask_truncated_completions
        }
        return rewards_per_func

    def _generate_and_score_completions(self, inputs):
        output = super()._generate_and_score_completions(inputs)
        # (B,) tensors travel with their rollouts through TRL's shuffle and split.
        output.update(self._sas_rollout_flags)
        self._sas_rollout_flags = None
        return output

    # -- the loss: zero selected advantages, then TRL's loss ---------------------------------------------

    def _compute_loss(self, model, inputs):
        inputs = dict(inputs)  # the buffered batch is reused across iterations: never mutate it
        old_logps = inputs.get("old_per_token_logps")
        if old_logps is not None:
            self._apply_sas(inputs, old_logps)
        else:
            # The rollout policy's log-probs are the loss's own forward pass: mask as soon as it returns.
            self._sas_pending = lambda logps: self._apply_sas(inputs, logps.detach())
        try:
            return super()._compute_loss(model, inputs)
        finally:
            self._sas_pending = None

    def _get_per_token_logps_and_entropies(self, *args, **kwargs):
        logps, entropies, aux_loss = super()._get_per_token_logps_and_entropies(*args, **kwargs)
        if self._sas_pending is not None:
            pending, self._sas_pending = self._sas_pending, None
            pending(logps)
        return logps, entropies, aux_loss

    def _apply_sas(self, inputs: dict[str, Any], token_logps: torch.Tensor) -> None:
        """Replace `inputs["advantages"]` (B,) by (B, T) advantages with the SAS-selected tokens zeroed."""
        args = self.args
        mask = inputs["completion_mask"]
        if "tool_mask" in inputs:
            mask = mask * inputs["tool_mask"]
        step_ids = segment_steps(
            inputs["completion_ids"],
            mask,
            self._sas_tokenizer,
            args.sas_delimiter,
            args.sas_think_end,
            trim_unterminated=args.sas_count_mode == "release",
        )
        is_correct, is_truncated = inputs["sas_is_correct"], inputs["sas_is_truncated"]
        zero = select_zero_mask(
            step_ids,
            token_logps,
            is_correct,
            args.sas_ratio,
            args.sas_strategy,
            selection=args.sas_selection,
            granularity=args.sas_granularity,
            ranking=args.sas_ranking,
            failed_scope=args.sas_failed_scope,
            is_truncated=is_truncated,
            count_mode=args.sas_count_mode,
            generator=self._sas_generator,
        )
        if zero.any():
            # Left (B,) when nothing is zeroed: with sequence-level importance sampling, broadcasting a (B, 1)
            # instead of a (B, T) advantage changes the backward's summation order, so only this is exactly GRPO.
            advantages = inputs["advantages"]
            if advantages.dim() == 1:
                advantages = advantages.unsqueeze(1)
            inputs["advantages"] = advantages.expand_as(zero).masked_fill(zero, 0.0)
        if args.log_completions:  # SAS's view in TRL's completion logs (sas_trl/completion_logs.py)
            self._sas_keep_for_logs(inputs, mask, step_ids, token_logps, zero, is_correct, is_truncated)
        self._log_sas_metrics(zero, mask.bool(), step_ids, is_correct, is_truncated)

    def _log_sas_metrics(self, zero, valid, step_ids, is_correct, is_truncated) -> None:
        correct, failed = is_correct.unsqueeze(1), ~is_correct.unsqueeze(1)
        stats = torch.stack(
            [
                (zero & correct).sum(),
                (valid & correct).sum(),
                (zero & failed).sum(),
                (valid & failed).sum(),
                zero.sum(),
                valid.sum(),
                (step_ids.amax(dim=1) + 1).sum(),  # segment_steps numbers steps 0..N-1 without gaps
                torch.tensor(is_correct.numel(), device=zero.device),
                is_truncated.sum(),
                (~is_correct & is_truncated).sum(),
                (~is_correct).sum(),
            ]
        ).double()
        totals = self.accelerator.reduce(stats, reduction="sum").tolist()
        (
            z_correct,
            n_correct,
            z_failed,
            n_failed,
            z_all,
            n_all,
            steps,
            rollouts,
            truncated,
            failed_truncated,
            n_failed_rollouts,
        ) = totals

        metrics = self._metrics["train" if self.model.training else "eval"]
        for name, numerator, denominator in (
            ("sas/zeroed_frac", z_all, n_all),
            ("sas/zeroed_frac_correct", z_correct, n_correct),
            ("sas/zeroed_frac_failed", z_failed, n_failed),
            ("sas/steps_per_rollout", steps, rollouts),
            ("sas/truncated_frac", truncated, rollouts),
            ("sas/failed_truncated_frac", failed_truncated, n_failed_rollouts),
        ):
            if denominator:  # a batch without, say, correct rollouts says nothing about them
                metrics[name].append(numerator / denominator)
