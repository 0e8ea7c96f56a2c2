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

import warnings
from typing import Any

import torch
from trl import GRPOTrainer

from .completion_logs import CompletionLogMixin
from .config import SASConfig
from .rewards.params import GENERATION_MODE_KEY
from .rollouts import truncated_flags
from .sas_metrics import BatchCounts, SASStatistics, clip_flags, degenerate_warning, metrics_of
from .segmentation import embedding_rows, vocabulary_warnings
from .selection import draw_random_keys


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
        self._sas_rule = args.sas_rule
        for message in vocabulary_warnings(self._sas_tokenizer, self._sas_rule.delimiter, self._sas_rule.think_end):
            self._sas_warn(message)
        # Every id the model can emit is below its embedding rows: no range check per micro-batch.
        self._sas_table = self._sas_rule.boundary_table(
            self._sas_tokenizer, embedding_rows(self.model), device=self.accelerator.device
        )
        self._sas_rollout_flags: dict[str, torch.Tensor] | None = None
        self._sas_pending: dict[str, Any] | None = None
        self._sas_stats = SASStatistics()
        self._sas_generations: dict[str, tuple[int, int]] = {}  # mode -> (global step, generations in that step)
        self._sas_reward_values: torch.Tensor | None = None  # the correctness reward's values in the first batch
        self._sas_degenerate_checked = not self._sas_rule.enabled

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
        # Rewards learn whether this is training or evaluation (TRL's keywords do not say): group-level rewards cut
        # groups by the mode's generation count, and LAPO records stage-2 targets from training prompts only.
        mode = "train" if self.model.training else "eval"
        inputs = [{**row, GENERATION_MODE_KEY: mode} for row in inputs]
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
        if self._sas_rule.draws_random_keys:
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
        width = max(self.max_completion_length, completion_ids.size(1))
        return draw_random_keys(entropy, completion_ids.size(0), width).to(completion_ids.device)

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
        rule = self._sas_rule
        ids = inputs["completion_ids"]
        mask = inputs["completion_mask"]
        if "tool_mask" in inputs:
            mask = mask * inputs["tool_mask"]
        step_ids = rule.segment(ids, mask, self._sas_tokenizer, table=self._sas_table)
        is_correct, is_truncated = inputs["sas_is_correct"], inputs["sas_is_truncated"]
        if rule.enabled:
            zero = rule.zero_mask(
                step_ids,
                token_logps,
                is_correct,
                is_truncated=is_truncated,
                random_keys=inputs.get("sas_random_keys"),
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
        if self.args.log_completions:  # SAS's view in TRL's completion logs (sas_trl/completion_logs.py)
            self._sas_keep_for_logs(inputs, mask, step_ids, token_logps, zero, is_correct, is_truncated)
        valid = mask.bool()
        clipped = clip_flags(
            token_logps if policy_logps is None else policy_logps,
            token_logps,
            valid,
            inputs["advantages"],
            self.loss_type,
            sequence_level=self.importance_sampling_level == "sequence",
            epsilon_low=self.epsilon_low,
            epsilon_high=self.epsilon_high,
            delta=self.args.delta,
        )
        counts = BatchCounts.of(zero, valid, step_ids, is_correct, is_truncated, clipped)
        mode = "train" if self.model.training else "eval"
        self._sas_stats.add(mode, counts)
        if not self._sas_degenerate_checked and mode == "train":
            self._sas_degenerate_checked = True
            self._check_degenerate(counts)

    @staticmethod
    def _sas_num_slots(completion_ids: torch.Tensor) -> int | None:
        """Step slots S for the selection: T (static) on accelerators, where reading the true count back would wait
        on the device; on a CPU nothing waits, and the exact count keeps the (B, S) sort ~40 columns wide, not T."""
        return None if completion_ids.device.type == "cpu" else completion_ids.size(1)

    # -- metrics: tensors per micro-batch, one reduction per logging step --------------------------------

    def log(self, logs: dict[str, float], start_time: float | None = None) -> None:
        self._flush_sas_stats("train" if self.model.training else "eval")
        super().log(logs, start_time)

    def _flush_sas_stats(self, mode: str) -> None:
        """Move the buffered micro-batch counts into TRL's metric lists, one value per micro-batch.

        Each value is the micro-batch's ratio over all processes (what an all-reduce per micro-batch gave), and
        TRL averages the list at log time, so the logged numbers mean what they did; only the reduction moved.
        """
        for counts in self._sas_stats.flush(mode, lambda rows: self.accelerator.reduce(rows, reduction="sum")):
            for name, value in metrics_of(counts, self.loss_type).items():
                self._metrics[mode][name].append(value)

    def _check_degenerate(self, counts: BatchCounts) -> None:
        """Warn once, on the first training micro-batch, when SAS leaves correct rollouts nothing to learn from
        (`sas_metrics.degenerate_warning`). One reduction and read-back, once per run."""
        row = self.accelerator.reduce(counts.stack(), reduction="sum").cpu().tolist()
        seen = [] if self._sas_reward_values is None else self._sas_reward_values.cpu().tolist()
        index = self.args.sas_correct_reward_index
        message = degenerate_warning(
            BatchCounts.from_row(row),
            seen,
            self._sas_rule,
            reward_index=index,
            reward_name=self.reward_func_names[index],
            threshold=self.args.sas_correct_threshold,
        )
        if message:
            self._sas_warn(message)
