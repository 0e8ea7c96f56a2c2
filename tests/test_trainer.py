"""SASGRPOTrainer against TRL's GRPOTrainer on a tiny random-init model (CPU, offline)."""

from __future__ import annotations

import math

import pytest
import torch
from datasets import Dataset
from trl import GRPOTrainer

from sas_trl import SASConfig, SASGRPOTrainer, segment_steps, select_zero_mask
from sas_trl.core import SASRule
from sas_trl.trl_losses import LOSS_TYPES

PROMPTS = ["Add 3, 4, 5.", "Add 1, 2.", "Add 9, 9, 1.", "Add 2, 2, 2, 2."]
COMPLETIONS = [
    "3 + 4 = 7\n\n7 + 5 = 12\n\nLet me double-check: 7 + 5 = 12\n\n</think>\\boxed{12}",  # correct
    "1 + 2 = 4\n\nLet me double-check: 1 + 2 = 4\n\n</think>\\boxed{4}",  # wrong
    "9 + 9 = 18\n\n18 + 1 = 19\n\n</think>\\boxed{19}",  # correct
    "2 + 2 = 4\n\n4 + 2 = 6\n\n6 + 2 = 8\n\nLet me double-check: 6",  # truncated
]
IS_CORRECT = [True, False, True, False]
ADVANTAGES = [0.9, -1.1, 0.7, -0.5]


def length_parity_reward(completions, **kwargs):
    """Deterministic in the text and mixed on random rollouts: both kinds of rollouts appear."""
    return [float(len(c) % 2 == 0) for c in completions]


def make_args(tmp_path, **overrides) -> SASConfig:
    base = dict(
        output_dir=str(tmp_path / "out"),
        per_device_train_batch_size=4,
        num_generations=4,
        max_completion_length=24,
        learning_rate=1e-3,
        report_to="none",
        use_cpu=True,
        bf16=False,
        seed=0,
        logging_steps=1,
        save_strategy="no",
    )
    base.update(overrides)
    return SASConfig(**base)


def make_trainer(cls, model_dir, args):
    dataset = Dataset.from_list([{"prompt": p} for p in PROMPTS])
    return cls(model=str(model_dir), reward_funcs=length_parity_reward, args=args, train_dataset=dataset)


def handmade_inputs(trainer, **extra) -> dict:
    """A fixed micro-batch with known steps and verdicts (what `_generate_and_score_completions` would return)."""
    tok = trainer.processing_class
    prompt = tok(PROMPTS, padding=True, padding_side="left", return_tensors="pt")
    ends = [tok.eos_token if not c.endswith(": 6") else "" for c in COMPLETIONS]
    completion = tok(
        [c + e for c, e in zip(COMPLETIONS, ends, strict=True)],
        padding=True,
        padding_side="right",
        return_tensors="pt",
    )
    inputs = {
        "prompt_ids": prompt["input_ids"],
        "prompt_mask": prompt["attention_mask"],
        "completion_ids": completion["input_ids"],
        "completion_mask": completion["attention_mask"],
        "advantages": torch.tensor(ADVANTAGES),
        "num_items_in_batch": completion["attention_mask"].sum(),
        "sas_is_correct": torch.tensor(IS_CORRECT),
        "sas_is_truncated": torch.tensor([False, False, False, True]),
    }
    inputs.update(extra)
    return inputs


def loss_and_grads(trainer, inputs):
    trainer.model.train()
    trainer.model.zero_grad()
    trainer.current_gradient_accumulation_steps = 1  # set by Trainer's loop, read by TRL's loss
    loss = trainer.compute_loss(trainer.model, dict(inputs))
    loss.backward()
    grads = {name: p.grad.clone() for name, p in trainer.model.named_parameters() if p.grad is not None}
    return loss.detach(), grads


def completion_logps(trainer, inputs):
    ids = torch.cat([inputs["prompt_ids"], inputs["completion_ids"]], 1)
    mask = torch.cat([inputs["prompt_mask"], inputs["completion_mask"]], 1)
    with torch.no_grad():
        logps, _, _ = GRPOTrainer._get_per_token_logps_and_entropies(
            trainer, trainer.model, ids, mask, inputs["completion_ids"].size(1)
        )
    return logps


# --------------------------------------------------------------------------------------------------
# (a) ratio 0 / strategy none is GRPO, exactly
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("loss_type", list(LOSS_TYPES))
@pytest.mark.parametrize(
    "setting",
    [
        {"sas_ratio": 0.0},
        {"sas_strategy": "none", "beta": 0.04},
        {"sas_ratio": 0.0, "importance_sampling_level": "sequence"},
    ],
    ids=["ratio0", "none-kl", "ratio0-seq"],
)
def test_disabled_sas_equals_grpo_exactly(tmp_path, tiny_model_dir, loss_type, setting):
    args = make_args(tmp_path, loss_type=loss_type, **setting)
    sas = make_trainer(SASGRPOTrainer, tiny_model_dir, args)
    grpo = make_trainer(GRPOTrainer, tiny_model_dir, args)
    inputs = handmade_inputs(sas)
    if args.beta:
        logps = completion_logps(sas, inputs)
        inputs["ref_per_token_logps"] = logps - 0.05 * torch.rand(
            logps.shape, generator=torch.Generator().manual_seed(0)
        )
    sas_loss, sas_grads = loss_and_grads(sas, inputs)
    grpo_loss, grpo_grads = loss_and_grads(grpo, inputs)
    assert torch.equal(sas_loss, grpo_loss)
    assert sas_grads.keys() == grpo_grads.keys() and sas_grads
    for name in grpo_grads:
        assert torch.equal(sas_grads[name], grpo_grads[name]), name


# --------------------------------------------------------------------------------------------------
# (b) zeroed steps get no policy gradient, everything else does
# --------------------------------------------------------------------------------------------------


class ProbeTrainer(SASGRPOTrainer):
    """Keeps the loss's log-prob tensor so the test can read d loss / d log-prob per token."""

    def _get_per_token_logps_and_entropies(self, *args, **kwargs):
        logps, entropies, aux = super()._get_per_token_logps_and_entropies(*args, **kwargs)
        if logps.requires_grad:
            logps.retain_grad()
            self.probe = logps
        return logps, entropies, aux


@pytest.mark.parametrize("loss_type", ["dapo", "grpo", "cispo"])
def test_zeroed_tokens_get_no_policy_gradient(tmp_path, tiny_model_dir, loss_type):
    trainer = make_trainer(ProbeTrainer, tiny_model_dir, make_args(tmp_path, loss_type=loss_type, sas_ratio=0.5))
    inputs = handmade_inputs(trainer)
    loss_and_grads(trainer, inputs)
    grad = trainer.probe.grad
    steps = segment_steps(inputs["completion_ids"], inputs["completion_mask"], trainer.processing_class)
    zero = select_zero_mask(steps, trainer.probe.detach(), inputs["sas_is_correct"], 0.5)
    valid = inputs["completion_mask"].bool()
    assert zero.any(dim=1).all()  # every rollout here has steps to zero (ratio 0.5 -> >= 1 of >= 2 steps)
    assert (grad[zero] == 0).all()
    assert (grad[valid & ~zero] != 0).all()  # the answer, </think> and kept steps still learn
    assert (grad[~valid] == 0).all()
    # Correct rollouts lose their least confident steps: each zeroed step is no more confident than any kept one.
    logps = trainer.probe.detach()
    for b in (0, 2):
        means = {s: logps[b][steps[b] == s].mean() for s in steps[b].unique().tolist() if s >= 0}
        zeroed = set(steps[b][zero[b]].tolist())
        assert max(means[s] for s in zeroed) <= min(means[s] for s in means if s not in zeroed)


def test_zeroed_tokens_keep_their_kl_gradient(tmp_path, tiny_model_dir):
    """With beta > 0 a zeroed token still feels the KL term: its gradient is exactly that of advantage 0."""
    trainer = make_trainer(ProbeTrainer, tiny_model_dir, make_args(tmp_path, sas_ratio=0.5, beta=0.1))
    inputs = handmade_inputs(trainer)
    logps = completion_logps(trainer, inputs)
    inputs["ref_per_token_logps"] = logps - 0.3
    loss_and_grads(trainer, inputs)
    sas_grad = trainer.probe.grad.clone()
    steps = segment_steps(inputs["completion_ids"], inputs["completion_mask"], trainer.processing_class)
    zero = select_zero_mask(steps, trainer.probe.detach(), inputs["sas_is_correct"], 0.5)

    kl_only = make_trainer(ProbeTrainer, tiny_model_dir, make_args(tmp_path, sas_ratio=0.0, beta=0.1))
    loss_and_grads(kl_only, {**inputs, "advantages": torch.zeros(4)})
    assert (sas_grad[zero] != 0).all()
    assert torch.allclose(sas_grad[zero], kl_only.probe.grad[zero], rtol=0, atol=1e-12)


def test_confidence_comes_from_old_logps_when_trl_has_them(tmp_path, tiny_model_dir, monkeypatch):
    trainer = make_trainer(SASGRPOTrainer, tiny_model_dir, make_args(tmp_path, sas_ratio=0.5))
    inputs = handmade_inputs(trainer)
    seen = []
    real = SASRule.zero_mask  # (self, step_ids, token_logps, ...)
    monkeypatch.setattr(SASRule, "zero_mask", lambda *a, **k: seen.append(a[2]) or real(*a, **k))

    loss_and_grads(trainer, inputs)  # on-policy: the loss's own forward pass, detached
    assert not seen[0].requires_grad
    assert torch.equal(seen[0], completion_logps(trainer, inputs))

    old = torch.randn(inputs["completion_ids"].shape)
    loss_and_grads(trainer, {**inputs, "old_per_token_logps": old})
    assert seen[1] is old


def test_inputs_are_not_mutated(tmp_path, tiny_model_dir):
    trainer = make_trainer(SASGRPOTrainer, tiny_model_dir, make_args(tmp_path, sas_ratio=0.5))
    inputs = handmade_inputs(trainer)
    advantages = inputs["advantages"]
    trainer.model.train()
    trainer.current_gradient_accumulation_steps = 1
    trainer.compute_loss(trainer.model, inputs)
    assert inputs["advantages"] is advantages and advantages.dim() == 1


def test_metrics_match_the_mask(tmp_path, tiny_model_dir):
    trainer = make_trainer(ProbeTrainer, tiny_model_dir, make_args(tmp_path, sas_ratio=0.5))
    inputs = handmade_inputs(trainer)
    loss_and_grads(trainer, inputs)
    steps = segment_steps(inputs["completion_ids"], inputs["completion_mask"], trainer.processing_class)
    zero = select_zero_mask(steps, trainer.probe.detach(), inputs["sas_is_correct"], 0.5)
    valid = inputs["completion_mask"].bool()
    correct = torch.tensor(IS_CORRECT).unsqueeze(1)
    assert not any(k.startswith("sas/") for k in trainer._metrics["train"])  # buffered as tensors until `log`
    trainer._flush_sas_stats("train")
    metrics = {k: v[-1] for k, v in trainer._metrics["train"].items() if k.startswith("sas/")}
    assert metrics["sas/zeroed_frac_correct"] == pytest.approx(
        ((zero & correct).sum() / (valid & correct).sum()).item()
    )
    assert metrics["sas/zeroed_frac_failed"] == pytest.approx(
        ((zero & ~correct).sum() / (valid & ~correct).sum()).item()
    )
    assert metrics["sas/zeroed_frac"] == pytest.approx((zero.sum() / valid.sum()).item())
    assert metrics["sas/steps_per_rollout"] == pytest.approx((3 + 2 + 2 + 4) / 4)
    assert metrics["sas/truncated_frac"] == 0.25
    assert metrics["sas/failed_truncated_frac"] == 0.5


# --------------------------------------------------------------------------------------------------
# (c) real training runs
# --------------------------------------------------------------------------------------------------

SAS_METRICS = [
    "sas/zeroed_frac",
    "sas/steps_per_rollout",
    "sas/truncated_frac",
]


def count_forward_passes(monkeypatch):
    calls = []
    real = GRPOTrainer._get_per_token_logps_and_entropies

    def counting(self, *args, **kwargs):
        calls.append(1)
        return real(self, *args, **kwargs)

    monkeypatch.setattr(GRPOTrainer, "_get_per_token_logps_and_entropies", counting)
    return calls


@pytest.mark.parametrize(
    "setting",
    [
        {},
        {"num_iterations": 2, "beta": 0.04, "gradient_accumulation_steps": 2, "steps_per_generation": 4},
        {"loss_type": "grpo", "sas_selection": "random", "sas_granularity": "token", "sas_ranking": "std"},
        {"sas_count_mode": "release"},
        {"sas_failed_scope": "truncated", "sas_strategy": "failed_only"},
    ],
    ids=["default", "iterations-accumulation-kl", "ablations", "release", "failed-truncated"],
)
def test_training_runs_log_metrics_and_cost_no_extra_forward(tmp_path, tiny_model_dir, monkeypatch, setting):
    args = make_args(tmp_path, max_steps=3, sas_ratio=0.5, **setting)
    calls = count_forward_passes(monkeypatch)
    trainer = make_trainer(SASGRPOTrainer, tiny_model_dir, args)
    trainer.train()
    sas_calls = len(calls)
    logs = [entry for entry in trainer.state.log_history if "loss" in entry]
    assert len(logs) == 3
    for entry in logs:
        assert math.isfinite(entry["loss"])
        for name in SAS_METRICS:
            assert 0.0 <= entry[name] <= (24 if "steps" in name else 1.0), name
    assert any(entry.get("sas/zeroed_frac", 0) > 0 for entry in logs)

    calls.clear()
    make_trainer(GRPOTrainer, tiny_model_dir, args).train()
    assert sas_calls == len(calls)  # the same forward passes as plain GRPO


def test_peft_model_trains(tmp_path, tiny_model_dir):
    from peft import LoraConfig

    args = make_args(tmp_path, max_steps=2, sas_ratio=0.5, learning_rate=1e-2)
    dataset = Dataset.from_list([{"prompt": p} for p in PROMPTS])
    trainer = SASGRPOTrainer(
        model=str(tiny_model_dir),
        reward_funcs=length_parity_reward,
        args=args,
        train_dataset=dataset,
        peft_config=LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"]),
    )
    before = {n: p.detach().clone() for n, p in trainer.model.named_parameters() if p.requires_grad}
    assert before and all("lora" in n for n in before)
    trainer.train()
    assert "sas/zeroed_frac" in trainer.state.log_history[0]
    after = dict(trainer.model.named_parameters())
    assert any(not torch.equal(before[n], after[n]) for n in before)


# --------------------------------------------------------------------------------------------------
# Construction errors
# --------------------------------------------------------------------------------------------------


def test_rejects_plain_grpo_config(tmp_path, tiny_model_dir):
    from trl import GRPOConfig

    with pytest.raises(TypeError, match="SASConfig"):
        SASGRPOTrainer(
            model=str(tiny_model_dir),
            reward_funcs=length_parity_reward,
            args=GRPOConfig(output_dir=str(tmp_path), use_cpu=True, bf16=False),
        )


def test_rejects_missing_correctness_reward(tmp_path, tiny_model_dir):
    with pytest.raises(ValueError, match="sas_correct_reward_index=1"):
        make_trainer(SASGRPOTrainer, tiny_model_dir, make_args(tmp_path, sas_correct_reward_index=1))


def test_warns_when_vocabulary_lacks_think_end(tmp_path, tiny_model_dir):
    with pytest.warns(UserWarning, match="sas_think_end='</reasoning>'"):
        make_trainer(SASGRPOTrainer, tiny_model_dir, make_args(tmp_path, sas_think_end="</reasoning>"))


def test_warns_when_think_end_is_a_special_token(tmp_path, tiny_model_dir):
    # "<|endoftext|>" stands in for a </think> registered as special: decoded away before any reward sees it.
    with pytest.warns(UserWarning, match="special token"):
        make_trainer(SASGRPOTrainer, tiny_model_dir, make_args(tmp_path, sas_think_end="<|endoftext|>"))


# --------------------------------------------------------------------------------------------------
# Sequence-level importance sampling (GSPO): cispo and vespo stay token-level
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("loss_type", ["cispo", "vespo"])
def test_zeroed_tokens_get_no_policy_gradient_with_sequence_level_weights(tmp_path, tiny_model_dir, loss_type):
    args = make_args(tmp_path, loss_type=loss_type, sas_ratio=0.5, importance_sampling_level="sequence")
    trainer = make_trainer(ProbeTrainer, tiny_model_dir, args)
    inputs = handmade_inputs(trainer)
    # Off-policy old log-probs, so the sequence-level weight differs from 1 and would carry a gradient if not detached.
    logps = completion_logps(trainer, inputs)
    inputs["old_per_token_logps"] = logps - 0.2 * torch.rand(logps.shape, generator=torch.Generator().manual_seed(1))
    loss_and_grads(trainer, inputs)
    grad = trainer.probe.grad
    steps = segment_steps(inputs["completion_ids"], inputs["completion_mask"], trainer.processing_class)
    zero = select_zero_mask(steps, inputs["old_per_token_logps"], inputs["sas_is_correct"], 0.5)
    valid = inputs["completion_mask"].bool()
    assert zero.any(dim=1).all()
    assert (grad[zero] == 0).all()  # exactly 0, not small
    assert (grad[valid & ~zero] != 0).all()


def test_sequence_level_weights_spread_the_gradient_for_the_refused_loss_types(tmp_path, tiny_model_dir):
    """Why the refusal: with grpo and sequence-level IS, a zeroed token's gradient is not 0 (checked at ratio 0.5
    with the config check bypassed; the rollout's other tokens carry it through the shared weight)."""
    args = make_args(tmp_path, loss_type="grpo", sas_ratio=0.5)
    trainer = make_trainer(ProbeTrainer, tiny_model_dir, args)
    trainer.importance_sampling_level = "sequence"
    inputs = handmade_inputs(trainer)
    logps = completion_logps(trainer, inputs)
    inputs["old_per_token_logps"] = logps - 0.05
    loss_and_grads(trainer, inputs)
    steps = segment_steps(inputs["completion_ids"], inputs["completion_mask"], trainer.processing_class)
    zero = select_zero_mask(steps, inputs["old_per_token_logps"], inputs["sas_is_correct"], 0.5)
    assert (trainer.probe.grad[zero] != 0).all()


# --------------------------------------------------------------------------------------------------
# SAS's own clip ratios: over the tokens it keeps
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("loss_type", ["dapo", "cispo"])
def test_sas_clip_ratios_count_only_kept_tokens(tmp_path, tiny_model_dir, loss_type):
    eps = {"epsilon": 0.05, "epsilon_high": 0.05} if loss_type == "dapo" else {"epsilon_high": 1.02}
    trainer = make_trainer(
        ProbeTrainer, tiny_model_dir, make_args(tmp_path, loss_type=loss_type, sas_ratio=0.5, **eps)
    )
    inputs = handmade_inputs(trainer)
    logps = completion_logps(trainer, inputs)
    shift = 0.3 * torch.randn(logps.shape, generator=torch.Generator().manual_seed(0))
    inputs["old_per_token_logps"] = logps + shift
    loss_and_grads(trainer, inputs)
    trainer._flush_sas_stats("train")
    logged = {k: v[-1] for k, v in trainer._metrics["train"].items()}

    steps = segment_steps(inputs["completion_ids"], inputs["completion_mask"], trainer.processing_class)
    zero = select_zero_mask(steps, inputs["old_per_token_logps"], inputs["sas_is_correct"], 0.5)
    valid = inputs["completion_mask"].bool()
    kept = valid & ~zero
    ratio = torch.exp(trainer.probe.detach() - inputs["old_per_token_logps"])
    advantages = torch.tensor(ADVANTAGES).unsqueeze(1).expand_as(zero).masked_fill(zero, 0.0)
    if loss_type == "dapo":
        low = (ratio < 0.95) & (advantages < 0)
        high = (ratio > 1.05) & (advantages > 0)
        expected = {
            "sas/clip_ratio/low_mean": (low & kept).sum() / kept.sum(),
            "sas/clip_ratio/high_mean": (high & kept).sum() / kept.sum(),
            "sas/clip_ratio/region_mean": ((low | high) & kept).sum() / kept.sum(),
        }
        # TRL's own metric divides by every valid token, zeroed ones included (never clipped: advantage 0).
        assert logged["clip_ratio/region_mean"] == pytest.approx((((low | high) & valid).sum() / valid.sum()).item())
        assert logged["clip_ratio/region_mean"] < logged["sas/clip_ratio/region_mean"]
    else:
        high = (ratio > 1.02) & (advantages > 0)
        expected = {"sas/cispo_clip_ratio": (high & kept).sum() / kept.sum()}
    for name, value in expected.items():
        assert logged[name] == pytest.approx(value.item(), rel=1e-12), name
    assert any(value > 0 for value in expected.values())


@pytest.mark.parametrize("level", ["token", "sequence"])
def test_sas_clip_ratios_equal_trls_with_sas_off_at_both_levels(tmp_path, tiny_model_dir, level):
    # TRL weights tokens at token level and rollouts at sequence level; SAS's metric follows it at each level.
    args = make_args(tmp_path, loss_type="dapo", sas_ratio=0.0, importance_sampling_level=level, epsilon=0.05)
    trainer = make_trainer(ProbeTrainer, tiny_model_dir, args)
    inputs = handmade_inputs(trainer)
    logps = completion_logps(trainer, inputs)
    inputs["old_per_token_logps"] = logps + 0.3 * torch.randn(logps.shape, generator=torch.Generator().manual_seed(1))
    loss_and_grads(trainer, inputs)
    trainer._flush_sas_stats("train")
    logged = {k: v[-1] for k, v in trainer._metrics["train"].items()}
    for side in ("low", "high", "region"):
        assert logged[f"sas/clip_ratio/{side}_mean"] == pytest.approx(logged[f"clip_ratio/{side}_mean"], abs=1e-7)
    valid = inputs["completion_mask"].bool()
    log_ratio = trainer.probe.detach() - inputs["old_per_token_logps"]
    if level == "sequence":  # by hand: one ratio per rollout, the fraction of the 4 rollouts clipped
        ratio = torch.exp((log_ratio * valid).sum(1) / valid.sum(1))
        advantages = torch.tensor(ADVANTAGES)
        clipped = ((ratio < 0.95) & (advantages < 0)) | ((ratio > 1.05) & (advantages > 0))
        assert logged["sas/clip_ratio/region_mean"] == pytest.approx(clipped.sum().item() / 4)
    else:
        ratio, advantages = torch.exp(log_ratio), torch.tensor(ADVANTAGES).unsqueeze(1)
        clipped = (((ratio < 0.95) & (advantages < 0)) | ((ratio > 1.05) & (advantages > 0))) & valid
        assert logged["sas/clip_ratio/region_mean"] == pytest.approx((clipped.sum() / valid.sum()).item())
    assert 0 < logged["sas/clip_ratio/region_mean"] < 1


def test_sas_clip_ratio_at_sequence_level_counts_rollouts(tmp_path, tiny_model_dir):
    # cispo keeps SAS on at sequence level: a rollout counts once, with the sign of the advantage it keeps.
    args = make_args(
        tmp_path, loss_type="cispo", sas_ratio=0.5, importance_sampling_level="sequence", epsilon_high=1.0
    )
    trainer = make_trainer(ProbeTrainer, tiny_model_dir, args)
    inputs = handmade_inputs(trainer)
    logps = completion_logps(trainer, inputs)
    inputs["old_per_token_logps"] = logps - 0.1  # every rollout's ratio is e^0.1 > 1.0
    loss_and_grads(trainer, inputs)
    trainer._flush_sas_stats("train")
    logged = {k: v[-1] for k, v in trainer._metrics["train"].items()}
    # Rollouts 0 and 2 have positive advantages and keep tokens (r = 0.5 zeroes half their steps): 2 of 4.
    assert logged["sas/cispo_clip_ratio"] == pytest.approx(0.5)


# --------------------------------------------------------------------------------------------------
# Which log-probs SAS ranks by, in real runs: TRL's condition for old_per_token_logps
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("setting", "trl_has_old"),
    [
        ({}, False),
        ({"num_iterations": 2}, True),  # 1 % (1 * 2) != 0
        ({"num_iterations": 2, "gradient_accumulation_steps": 2, "steps_per_generation": 1}, False),  # 2 % (1 * 2)
        ({"steps_per_generation": 2, "per_device_train_batch_size": 2}, True),  # 1 % 2 != 0
        ({"steps_per_generation": 2, "gradient_accumulation_steps": 2, "per_device_train_batch_size": 2}, False),
    ],
    ids=["default", "iterations", "iterations-within-one-step", "generation-spans-steps", "aligned"],
)
def test_confidence_source_follows_trls_condition(tmp_path, tiny_model_dir, setting, trl_has_old):
    args = make_args(tmp_path, max_steps=2, sas_ratio=0.5, **setting)
    generate_every = args.steps_per_generation * args.num_iterations
    assert (args.gradient_accumulation_steps % generate_every != 0) == trl_has_old  # TRL 1.16's rule, restated

    sources = []

    class Spy(SASGRPOTrainer):
        def _apply_sas(self, inputs, token_logps, policy_logps=None):
            old = inputs.get("old_per_token_logps")
            sources.append("old" if old is not None and token_logps is old else "loss")
            if old is None:  # the loss's own forward pass, detached
                assert token_logps is policy_logps and not token_logps.requires_grad
            super()._apply_sas(inputs, token_logps, policy_logps)

    make_trainer(Spy, tiny_model_dir, args).train()
    assert sources and set(sources) == {"old" if trl_has_old else "loss"}


# --------------------------------------------------------------------------------------------------
# The hot path reads nothing back to the host
# --------------------------------------------------------------------------------------------------

READ_BACKS = ("item", "tolist", "__bool__", "__int__", "__float__", "__index__", "numpy")


def test_apply_sas_reads_nothing_back_with_static_slots(tmp_path, tiny_model_dir, monkeypatch):
    """What runs on an accelerator (static step slots) never turns a tensor into a Python value or all-reduces."""
    args = make_args(tmp_path, sas_ratio=0.5, sas_selection="random")
    trainer = make_trainer(ProbeTrainer, tiny_model_dir, args)
    trainer._sas_degenerate_checked = True  # the one-time check reads back once, by design
    inputs = handmade_inputs(trainer, sas_random_keys=torch.rand(4, 64))
    reference = dict(inputs)
    trainer._apply_sas(reference, completion_logps(trainer, inputs))  # CPU path: S read from the data

    real_apply = SASGRPOTrainer._apply_sas
    calls = []

    def no_read_back(*args, **kwargs):
        raise AssertionError("a tensor was read back to the host in the SAS hot path")

    def strict_apply(self, *args, **kwargs):
        calls.append(1)
        with monkeypatch.context() as patch:
            for name in READ_BACKS:
                patch.setattr(torch.Tensor, name, no_read_back)
            patch.setattr(torch, "aminmax", no_read_back)
            patch.setattr(self.accelerator, "reduce", no_read_back)
            return real_apply(self, *args, **kwargs)

    monkeypatch.setattr(SASGRPOTrainer, "_apply_sas", strict_apply)
    monkeypatch.setattr(SASGRPOTrainer, "_sas_num_slots", staticmethod(lambda ids: ids.size(1)))  # the GPU choice
    static = dict(inputs)
    trainer._apply_sas(static, completion_logps(trainer, inputs))
    assert calls and torch.equal(static["advantages"], reference["advantages"])
    assert (static["advantages"] == 0).any()


def test_sas_off_is_decided_from_the_config(tmp_path, tiny_model_dir, monkeypatch):
    """Ratio 0 never runs the selection and hands TRL its own (B,) advantages; the metrics still flow."""
    trainer = make_trainer(SASGRPOTrainer, tiny_model_dir, make_args(tmp_path, sas_ratio=0.0))
    monkeypatch.setattr(SASRule, "zero_mask", lambda *a, **k: pytest.fail("selection ran"))
    inputs = handmade_inputs(trainer)
    trainer.model.train()
    trainer._apply_sas(inputs, completion_logps(trainer, inputs))
    assert inputs["advantages"].dim() == 1
    trainer._flush_sas_stats("train")
    assert trainer._metrics["train"]["sas/zeroed_frac"] == [0.0]
    assert trainer._metrics["train"]["sas/steps_per_rollout"] == [(3 + 2 + 2 + 4) / 4]


def test_metrics_are_reduced_once_per_logging_step(tmp_path, tiny_model_dir, monkeypatch):
    args = make_args(
        tmp_path, max_steps=2, sas_ratio=0.5, gradient_accumulation_steps=2, per_device_train_batch_size=2
    )
    trainer = make_trainer(SASGRPOTrainer, tiny_model_dir, args)
    trainer._sas_degenerate_checked = True
    reduced = []
    real_flush = trainer._flush_sas_stats

    def counting_flush(mode):
        reduced.append(trainer._sas_stats.pending(mode))
        real_flush(mode)

    monkeypatch.setattr(trainer, "_flush_sas_stats", counting_flush)
    trainer.train()
    assert reduced[:2] == [2, 2]  # one reduction per logging step, over its 2 micro-batches
    logs = [entry for entry in trainer.state.log_history if "loss" in entry]
    assert len(logs) == 2 and all(0 <= entry["sas/zeroed_frac"] <= 1 for entry in logs)


# --------------------------------------------------------------------------------------------------
# SAS with TRL's overlong filtering (mask_truncated_completions)
# --------------------------------------------------------------------------------------------------


def test_with_overlong_filtering_sas_acts_on_the_rollouts_left_in_the_loss(tmp_path, tiny_model_dir):
    # TRL zeroes a truncated completion's completion_mask at generation (row 3 here). SAS then zeroes nothing in it,
    # and the failed-side shield acts on the failed rollout that ended (row 1) only. The loss is exactly SAS's loss
    # on the batch without the truncated rollout (token-mean: it is out of the denominator too).
    args = make_args(tmp_path, loss_type="dapo", sas_ratio=0.5, mask_truncated_completions=True)
    trainer = make_trainer(ProbeTrainer, tiny_model_dir, args)
    inputs = handmade_inputs(trainer)
    inputs["completion_mask"] = inputs["completion_mask"].clone()
    inputs["completion_mask"][3] = 0  # what TRL's mask_truncated_completions does to the truncated row
    inputs["num_items_in_batch"] = inputs["completion_mask"].sum()
    inputs["old_per_token_logps"] = completion_logps(trainer, inputs)

    seen = {}
    original = trainer._apply_sas

    def keep(batch, *rest, **kwargs):
        original(batch, *rest, **kwargs)
        seen["advantages"] = batch["advantages"]

    trainer._apply_sas = keep
    loss, _ = loss_and_grads(trainer, inputs)
    zeroed = (seen["advantages"] == 0) & inputs["completion_mask"].bool()
    assert not zeroed[3].any() and zeroed[1].any() and zeroed[0].any()  # shield on row 1, none on the cut row 3
    steps = segment_steps(inputs["completion_ids"], inputs["completion_mask"], trainer.processing_class)
    expected = select_zero_mask(steps, inputs["old_per_token_logps"], inputs["sas_is_correct"], 0.5)
    assert torch.equal(zeroed, expected & inputs["completion_mask"].bool())

    kept_rows = {
        key: value[:3] if torch.is_tensor(value) and value.dim() >= 1 and value.size(0) == 4 else value
        for key, value in inputs.items()
    }
    without, _ = loss_and_grads(trainer, kept_rows)
    assert torch.allclose(loss, without, atol=1e-6)
    # Masking is not zeroing: the same rollout left in the loss with advantage 0 (what SAS does to a step) keeps
    # its tokens in the denominator, so the loss differs.
    zeroed_not_masked = dict(handmade_inputs(trainer), old_per_token_logps=inputs["old_per_token_logps"])
    zeroed_not_masked["advantages"] = torch.tensor(ADVANTAGES[:3] + [0.0])
    other, _ = loss_and_grads(trainer, zeroed_not_masked)
    assert not torch.allclose(loss, other, atol=1e-6)
