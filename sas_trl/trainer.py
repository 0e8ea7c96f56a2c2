"""`SASGRPOTrainer`: TRL's `GRPOTrainer` with step-level zero-advantage masks.

The trainer owns no loss code. It records, per rollout, whether the verifier accepted it and whether
it was truncated (and, for the random-selection ablation, its random step keys); then, for every
micro-batch, it turns TRL's (B,) advantages into (B, T) advantages with the selected steps zeroed and
hands them to `GRPOTrainer._compute_loss`. Zeroed tokens stay in the completion mask, so the loss
denominator and the KL term are unchanged.

Confidence comes from the log-probs of the policy that sampled the rollouts. TRL 1.16 computes
`old_per_token_logps` at generation time (with the trainer's own model, no grad) exactly when
`gradient_accumulation_steps % (steps_per_generation * num_iterations) != 0` or vLLM importance-sampling
correction is on; SAS then uses them. Otherwise every use of a rollout batch falls inside the optimizer
step that generated it, so the loss's own forward pass, detached, is that same policy: SAS uses it. No
configuration adds a forward pass.

The hot path reads nothing back to the host: the boundary table is sized to the model's embedding rows
once, the number of step slots is static on accelerators, "SAS is off" is decided from the config, and
the metrics are kept as tensors and reduced once per logging step (`log`).
"""

from __future__ import annotations

import math
import warnings
from typing import Any

import numpy as np
import torch
from trl import GRPOTrainer

from .completion_logs import CompletionLogMixin
from .config import SASConfig
from .core import boundary_table, segment_steps, select_zero_mask, vocab_tables
from .rollouts import truncated_flags

# Per-micro-batch counts, summed over processes at log time; each metric is numerator / denominator.
_STATS = (
    "zeroed_correct",
    "tokens_correct",
    "zeroed_failed",
    "tokens_failed",
    "zeroed",
    "tokens",
    "steps",
    "rollouts",
    "truncated",
    "failed_truncated",
    "failed",
    "clip_low",
    "clip_high",
    "clip_region",
    "kept_tokens",
)
_METRICS = (
    ("sas/zeroed_frac", "zeroed", "tokens"),
    ("sas/zeroed_frac_correct", "zeroed_correct", "tokens_correct"),
    ("sas/zeroed_frac_failed", "zeroed_failed", "tokens_failed"),
    ("sas/steps_per_rollout", "steps", "rollouts"),
    ("sas/truncated_frac", "truncated", "rollouts"),
    ("sas/failed_truncated_frac", "failed_truncated", "failed"),
)
# TRL's clip_ratio/* metrics, restricted to the tokens SAS keeps (zeroed tokens have advantage 0: never clipped).
_CLIP_METRICS = {
    "ppo": (
        ("sas/clip_ratio/low_mean", "clip_low", "kept_tokens"),
        ("sas/clip_ratio/high_mean", "clip_high", "kept_tokens"),
        ("sas/clip_ratio/region_mean", "clip_region", "kept_tokens"),
    ),
    "cispo": (("sas/cispo_clip_ratio", "clip_high", "kept_tokens"),),
}
_PPO_CLIP_LOSSES = ("grpo", "bnpo", "dr_grpo", "dapo", "luspo")


class SASGRPOTrainer(CompletionLogMixin, GRPOTrainer):
    """GRPO with Step-level Advantage Selection. Takes the arguments of `trl.GRPOTrainer`, with a `SASConfig`."""

    _tag_names = ["trl", "grpo", "sas"]

    def __init__(self, model, reward_funcs=None, args: SASConfig | None = None, *rest, **kwargs):
        if args is None:
            name = model if isinstance(model, str) else model.config._name_or_path
            args = SASConfig(output_dir=f"{name.split('/')[-1]}-SAS")
        if not isinstance(args, SASConfig):
            raise TypeError(f"args must be a SASConfig, got {type(args).__name__}")
        if reward_funcs is not None and kwargs.get("environment_factory") is None:
            # Known before any model work; with an environment, TRL adds its reward column in __init__ (checked below).
            self._check_correct_reward_index(args, len(reward_funcs) if isinstance(reward_funcs, list | tuple) else 1)
        super().__init__(model, reward_funcs, args, *rest, **kwargs)
        # TRL's final reward columns: `reward_funcs`, then one per environment class that defines `get_reward`.
        self._check_correct_reward_index(args, len(self.reward_funcs), self.reward_func_names)

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
        # Every id the model can emit is below its embedding rows: no range check per micro-batch.
        self._sas_table = boundary_table(
            self._sas_tokenizer,
            _embedding_rows(self.model),
            args.sas_delimiter,
            args.sas_think_end,
            device=self.accelerator.device,
        )
        self._sas_rollout_flags: dict[str, torch.Tensor] | None = None
        self._sas_pending: dict[str, Any] | None = None
        self._sas_stats: dict[str, list[torch.Tensor]] = {"train": [], "eval": []}
        self._sas_generations: dict[str, tuple[int, int]] = {}  # mode -> (global step, generations in that step)
        self._sas_reward_values: torch.Tensor | None = None  # the correctness reward's values in the first batch
        self._sas_degenerate_checked = not args.sas_enabled

    @staticmethod
    def _check_correct_reward_index(args: SASConfig, count: int, names: list[str] | None = None) -> None:
        if args.sas_correct_reward_index >= count:
            listed = f": {names}" if names else ""
            raise ValueError(
                f"sas_correct_reward_index={args.sas_correct_reward_index} but there are only {count} reward "
                f"column(s){listed} (reward_funcs, then one per environment with get_reward)"
            )

    def _sas_warn(self, message: str) -> None:
        if self.accelerator.is_main_process:
            warnings.warn(message, stacklevel=3)

    # -- per-rollout facts, fixed when the rollout is generated ------------------------------------------

    def _calculate_rewards(self, inputs, prompts, completions, completion_ids_list):
        rewards_per_func = super()._calculate_rewards(inputs, prompts, completions, completion_ids_list)
        # Rewards come back gathered from all processes in process order; keep this process's rows.
        column = rewards_per_func[:, self.args.sas_correct_reward_index]
        start = self.accelerator.process_index * len(prompts)
        local = column[start : start + len(prompts)]
        if self._sas_reward_values is None:
            self._sas_reward_values = torch.unique(column)  # read once, by the degenerate-case check
        self._sas_rollout_flags = {
            "sas_is_correct": local >= self.args.sas_correct_threshold,  # NaN (unscorable) counts as failed
            "sas_is_truncated": truncated_flags(
                completion_ids_list, self.eos_token_ids, self._sas_tokenizer.pad_token_id, device=local.device
            ),
        }
        return rewards_per_func

    def _generate_and_score_completions(self, inputs):
        output = super()._generate_and_score_completions(inputs)
        # (B, ...) tensors travel with their rollouts through TRL's shuffle, split and reuse across iterations.
        output.update(self._sas_rollout_flags)
        self._sas_rollout_flags = None
        if self.args.sas_selection == "random" and self.args.sas_enabled:
            output["sas_random_keys"] = self._random_keys(output["completion_ids"])
        return output

    def _random_keys(self, completion_ids: torch.Tensor) -> torch.Tensor:
        """(B, W) uniform keys, one per step slot (W >= T bounds the steps), for this process's new rollouts.

        Seeded from (seed, train/eval, global step, generation within the step, process): a function of the
        training position only, so a run resumed from a checkpoint draws exactly what an uninterrupted run draws,
        and no generator state needs saving.
        """
        mode = "train" if self.model.training else "eval"
        step = self.state.global_step
        last_step, count = self._sas_generations.get(mode, (step, 0))
        count = count if last_step == step else 0
        self._sas_generations[mode] = (step, count + 1)
        entropy = [self.args.seed, int(mode == "eval"), step, count, self.accelerator.process_index]
        seed = int(np.random.SeedSequence(entropy).generate_state(1, dtype=np.uint64)[0])
        width = max(self.max_completion_length, completion_ids.size(1))
        generator = torch.Generator().manual_seed(seed)
        return torch.rand(completion_ids.size(0), width, generator=generator).to(completion_ids.device)

    # -- the loss: zero selected advantages, then TRL's loss ---------------------------------------------

    def _compute_loss(self, model, inputs):
        inputs = dict(inputs)  # the buffered batch is reused across iterations: never mutate it
        # TRL reads inputs["advantages"] only after its policy forward pass; SAS masks as soon as that pass returns.
        self._sas_pending = inputs
        try:
            return super()._compute_loss(model, inputs)
        finally:
            self._sas_pending = None

    def _get_per_token_logps_and_entropies(self, *args, **kwargs):
        logps, entropies, aux_loss = super()._get_per_token_logps_and_entropies(*args, **kwargs)
        if self._sas_pending is not None:
            inputs, self._sas_pending = self._sas_pending, None
            policy = logps.detach()
            old = inputs.get("old_per_token_logps")
            self._apply_sas(inputs, policy if old is None else old, policy_logps=policy)
        return logps, entropies, aux_loss

    def _apply_sas(
        self, inputs: dict[str, Any], token_logps: torch.Tensor, policy_logps: torch.Tensor | None = None
    ) -> None:
        """Replace `inputs["advantages"]` (B,) by (B, T) advantages with the SAS-selected tokens zeroed.

        Args:
            token_logps: FloatTensor (B, T), the rollout policy's log-probs (step confidence).
            policy_logps: FloatTensor (B, T), the loss's current log-probs, detached (for the clip metrics);
                defaults to `token_logps`.
        """
        args = self.args
        ids = inputs["completion_ids"]
        mask = inputs["completion_mask"]
        if "tool_mask" in inputs:
            mask = mask * inputs["tool_mask"]
        step_ids = segment_steps(
            ids,
            mask,
            self._sas_tokenizer,
            args.sas_delimiter,
            args.sas_think_end,
            trim_unterminated=args.sas_count_mode == "release",
            table=self._sas_table,
        )
        is_correct, is_truncated = inputs["sas_is_correct"], inputs["sas_is_truncated"]
        if args.sas_enabled:
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
                random_keys=inputs.get("sas_random_keys"),
                min_steps=args.sas_min_steps,
                num_slots=self._sas_num_slots(ids),
            )
            advantages = inputs["advantages"]
            if advantages.dim() == 1:
                advantages = advantages.unsqueeze(1)
            inputs["advantages"] = advantages.expand_as(zero).masked_fill(zero, 0.0)
        else:
            # TRL keeps its own (B,) advantages: with sequence-level importance sampling a (B, T) tensor would
            # change the backward's summation order, and only this is GRPO to the bit.
            zero = torch.zeros_like(step_ids, dtype=torch.bool)
        if args.log_completions:  # SAS's view in TRL's completion logs (sas_trl/completion_logs.py)
            self._sas_keep_for_logs(inputs, mask, step_ids, token_logps, zero, is_correct, is_truncated)
        valid = mask.bool()
        policy = token_logps if policy_logps is None else policy_logps
        self._record_sas_stats(inputs, zero, valid, step_ids, policy, token_logps)
        if not self._sas_degenerate_checked and self.model.training:
            self._sas_degenerate_checked = True
            self._check_degenerate(zero, valid, step_ids, is_correct)

    @staticmethod
    def _sas_num_slots(completion_ids: torch.Tensor) -> int | None:
        """Step slots S for the selection: T (static) on accelerators, where reading the true count back would wait
        on the device; on a CPU nothing waits, and the exact count keeps the (B, S) sort ~40 columns wide, not T."""
        return None if completion_ids.device.type == "cpu" else completion_ids.size(1)

    # -- metrics: tensors per micro-batch, one reduction per logging step --------------------------------

    def _record_sas_stats(self, inputs, zero, valid, step_ids, policy_logps, old_logps) -> None:
        is_correct, is_truncated = inputs["sas_is_correct"], inputs["sas_is_truncated"]
        correct, failed = is_correct.unsqueeze(1), ~is_correct.unsqueeze(1)
        kept = valid & ~zero
        low, high, region = self._clipped(inputs, policy_logps, old_logps, valid)
        counts = [
            (zero & correct).sum(),
            (valid & correct).sum(),
            (zero & failed).sum(),
            (valid & failed).sum(),
            zero.sum(),
            valid.sum(),
            (step_ids.amax(dim=1) + 1).sum(),  # segment_steps numbers steps 0..N-1 without gaps
            torch.full((), is_correct.numel(), device=zero.device),
            is_truncated.sum(),
            (~is_correct & is_truncated).sum(),
            (~is_correct).sum(),
            (low & kept).sum(),
            (high & kept).sum(),
            (region & kept).sum(),
            kept.sum(),
        ]
        mode = "train" if self.model.training else "eval"
        self._sas_stats[mode].append(torch.stack([c.to(torch.float64) for c in counts]))

    def _clipped(self, inputs, policy_logps, old_logps, valid):
        """(B, T) bool x3: the tokens TRL's clip metrics count as low-, high- and region-clipped."""
        log_ratio = policy_logps.float() - old_logps.float()
        if self.importance_sampling_level == "sequence":  # GSPO: one ratio per rollout, the mean log-ratio
            weight = valid.to(log_ratio.dtype)
            log_ratio = ((log_ratio * weight).sum(-1) / weight.sum(-1).clamp(min=1.0)).unsqueeze(-1)
        ratio = torch.exp(log_ratio)
        advantages = inputs["advantages"]
        if advantages.dim() == 1:
            advantages = advantages.unsqueeze(1)
        if self.loss_type in _PPO_CLIP_LOSSES:
            if self.args.delta is not None:
                ratio = ratio.clamp(max=self.args.delta)  # TRL's clip metrics see the two-sided clamp too
            low = (ratio < 1 - self.epsilon_low) & (advantages < 0)
            high = (ratio > 1 + self.epsilon_high) & (advantages > 0)
        elif self.loss_type == "cispo":
            low = torch.zeros_like(valid)
            high = (ratio > self.epsilon_high) & (advantages > 0)
        else:
            low = high = torch.zeros_like(valid)
        low, high = low.expand_as(valid), high.expand_as(valid)
        return low, high, low | high

    def log(self, logs: dict[str, float], start_time: float | None = None) -> None:
        mode = "train" if self.model.training else "eval"
        self._flush_sas_stats(mode)
        super().log(logs, start_time)

    def _flush_sas_stats(self, mode: str) -> None:
        """Move the buffered micro-batch counts into TRL's metric lists, as one value per micro-batch.

        Each value is the micro-batch's ratio over all processes (what an all-reduce per micro-batch gave), and
        TRL averages the list at log time, so the logged numbers mean what they did; only the reduction moved.
        """
        buffered, self._sas_stats[mode] = self._sas_stats[mode], []
        if not buffered:
            return
        totals = self.accelerator.reduce(torch.stack(buffered), reduction="sum").cpu().tolist()
        metrics = list(_METRICS)
        if self.loss_type in _PPO_CLIP_LOSSES:
            metrics += _CLIP_METRICS["ppo"]
        elif self.loss_type == "cispo":
            metrics += _CLIP_METRICS["cispo"]
        index = {name: i for i, name in enumerate(_STATS)}
        for row in totals:
            for name, numerator, denominator in metrics:
                if row[index[denominator]]:  # a micro-batch without, say, correct rollouts says nothing about them
                    self._metrics[mode][name].append(row[index[numerator]] / row[index[denominator]])

    # -- the degenerate case: correct rollouts zeroed whole ----------------------------------------------

    def _check_degenerate(self, zero, valid, step_ids, is_correct) -> None:
        """Warn once, on the first training micro-batch, when SAS leaves correct rollouts nothing to learn from.

        A correct rollout of N steps loses ceil(r * N) of them: a one-step rollout (no delimiter in its reasoning)
        without an answer part loses every token. That is the paper's rule, and silent: a model that writes no
        delimiter, or a first reward that is not a 0/1 score (every rollout then counts as correct), trains on
        failed rollouts only. One reduction and read-back, once per run.
        """
        correct = is_correct.unsqueeze(1)
        whole = is_correct & valid.any(dim=1) & ~(valid & ~zero).any(dim=1)
        stats = torch.stack(
            [
                is_correct.sum(),
                whole.sum(),
                (zero & correct).sum(),
                (valid & correct).sum(),
                (step_ids.amax(dim=1) + 1).sum(),
                torch.full((), is_correct.numel(), device=zero.device),
            ]
        ).to(torch.float64)
        n_correct, n_whole, z_correct, t_correct, steps, rollouts = (
            self.accelerator.reduce(stats, reduction="sum").cpu().tolist()
        )
        seen = [] if self._sas_reward_values is None else self._sas_reward_values.cpu().tolist()
        values = sorted({v for v in seen if not math.isnan(v)})
        non_binary = not set(values) <= {0.0, 1.0}
        if not (n_correct and (n_whole >= n_correct / 2 or (n_correct == rollouts and non_binary))):
            return
        args = self.args
        shown = ", ".join(f"{v:g}" for v in values[:8]) + (f", ... ({len(values)} values)" if len(values) > 8 else "")
        name = self.reward_func_names[args.sas_correct_reward_index]
        self._sas_warn(
            f"SAS, first batch: {n_whole:.0f} of {n_correct:.0f} correct rollouts had every token zeroed "
            f"({z_correct / max(t_correct, 1):.0%} of correct rollouts' tokens); {steps / rollouts:.2f} steps per "
            f"rollout; the correctness reward (column {args.sas_correct_reward_index}, {name!r}) took the values "
            f"[{shown}] and 'correct' means >= {args.sas_correct_threshold:g} ({n_correct:.0f} of {rollouts:.0f} "
            f"rollouts). A correct rollout of N steps loses ceil({args.sas_ratio:g} * N) of them: with one step (no "
            f"{args.sas_delimiter!r} in the reasoning) that is all of it, and correct rollouts teach nothing. If the "
            "model writes no such steps, set sas_min_steps=2 (shorter rollouts train as plain GRPO) or a delimiter it "
            "writes; if this reward is not a 0/1 correctness score, point sas_correct_reward_index at one or set "
            "sas_correct_threshold."
        )


def _embedding_rows(model) -> int:
    """The number of token ids the model knows (its input and output embedding rows and config.vocab_size)."""
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
